/** Bytes from a peer or from the log that are not a valid Raft message, entry or proposal. */
export class RaftCodecError extends Error {
  static name = 'RaftCodecError'
  name = 'RaftCodecError'
}

/** A peer broke the transport protocol: an oversized message, or one that claims to come from another node. */
export class RaftProtocolError extends Error {
  static name = 'RaftProtocolError'
  name = 'RaftProtocolError'
}

/** An inbound stream carried no message for the idle timeout, and was reset. */
export class RaftIdleError extends Error {
  static name = 'RaftIdleError'
  name = 'RaftIdleError'
}

/** The node is stopped, or stopped while the operation waited. */
export class RaftStoppedError extends Error {
  static name = 'RaftStoppedError'
  name = 'RaftStoppedError'
}

/**
 * The library refused the proposal: no leader is known, a leadership transfer
 * is under way, or the node may not propose. `leader` is the known leader's
 * peer id, empty when there is none. Nothing was appended: retrying is safe.
 */
export class NotLeaderError extends Error {
  static name = 'NotLeaderError'
  name = 'NotLeaderError'
  readonly leader: string
  constructor (message: string, leader: string) {
    super(message)
    this.leader = leader
  }
}

/**
 * The proposal's entry will never be committed: another entry was committed
 * at its index, or an entry of a later term before it. Retrying is safe.
 */
export class ProposalLostError extends Error {
  static name = 'ProposalLostError'
  name = 'ProposalLostError'
}

/**
 * The proposal had no outcome within the deadline. It may still be applied
 * later: retry only commands that are idempotent.
 */
export class ProposalTimeoutError extends Error {
  static name = 'ProposalTimeoutError'
  name = 'ProposalTimeoutError'
}

/**
 * The proposal's index was covered by a snapshot from the leader before this
 * node applied it, so whether it was applied cannot be told.
 */
export class ProposalOutcomeUnknownError extends Error {
  static name = 'ProposalOutcomeUnknownError'
  name = 'ProposalOutcomeUnknownError'
}

/** No leader confirmed a read index within the deadline. */
export class ReadTimeoutError extends Error {
  static name = 'ReadTimeoutError'
  name = 'ReadTimeoutError'
}

/** Leadership did not move to the node asked for within the deadline. */
export class LeaderTransferError extends Error {
  static name = 'LeaderTransferError'
  name = 'LeaderTransferError'
}
