/** The entries asked for were compacted into a snapshot. */
export class CompactedError extends Error {
  static name = 'CompactedError'
  name = 'CompactedError'
  constructor (message = 'requested index is unavailable due to compaction') { super(message) }
}

/** The entries asked for are beyond the end of the log. */
export class UnavailableError extends Error {
  static name = 'UnavailableError'
  name = 'UnavailableError'
  constructor (message = 'requested entry at index is unavailable') { super(message) }
}

/** The snapshot is being made; the caller should retry later. */
export class SnapshotTemporarilyUnavailableError extends Error {
  static name = 'SnapshotTemporarilyUnavailableError'
  name = 'SnapshotTemporarilyUnavailableError'
  constructor (message = 'snapshot is temporarily unavailable') { super(message) }
}

/** A snapshot older than the one in storage was offered. */
export class SnapshotOutOfDateError extends Error {
  static name = 'SnapshotOutOfDateError'
  name = 'SnapshotOutOfDateError'
  constructor (message = 'requested index is older than the existing snapshot') { super(message) }
}

/**
 * A proposal was not accepted: there is no leader, the node is not a voter,
 * forwarding is disabled, a leadership transfer is under way, or too much is
 * uncommitted. `leader` is the known leader's id, empty when there is none.
 */
export class ProposalDroppedError extends Error {
  static name = 'ProposalDroppedError'
  name = 'ProposalDroppedError'
  readonly leader: string
  constructor (message: string, leader = '') {
    super(message)
    this.leader = leader
  }
}

/** A local-only message type was passed to `step()` from the network. */
export class StepLocalMessageError extends Error {
  static name = 'StepLocalMessageError'
  name = 'StepLocalMessageError'
}

/** A membership change that would break the configuration's invariants. */
export class ConfChangeError extends Error {
  static name = 'ConfChangeError'
  name = 'ConfChangeError'
}

/** The configuration given to the library is unusable. */
export class RaftConfigError extends Error {
  static name = 'RaftConfigError'
  name = 'RaftConfigError'
}
