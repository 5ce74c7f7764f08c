/**
 * The Raft storage directory holds damage that is not a write cut short by a
 * crash: a bad record followed by good ones, a missing snapshot, a gap in the
 * log. Opening refuses it rather than silently dropping acknowledged entries.
 */
export class RaftStorageCorruptError extends Error {
  static name = 'RaftStorageCorruptError'
  name = 'RaftStorageCorruptError'
}

/** The storage was closed, or an earlier write failed so the disk no longer matches memory. */
export class RaftStorageClosedError extends Error {
  static name = 'RaftStorageClosedError'
  name = 'RaftStorageClosedError'
  constructor (message = 'raft storage is closed', options?: ErrorOptions) { super(message, options) }
}
