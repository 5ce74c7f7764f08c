/**
 * The data types of the library: log entries, messages, hard state, snapshots
 * and membership. They mirror etcd's raftpb so that a reader who knows etcd-raft
 * finds the same fields; numbers are safe integers (terms and indexes never
 * reach 2^53), node ids are strings (libp2p peer ids in the daemon).
 */

export type NodeId = string

/** The id that means "nobody" (no vote cast, no known leader). */
export const NONE: NodeId = ''

export type EntryType = 'normal' | 'conf-change'

export interface Entry {
  term: number
  index: number
  type: EntryType
  data: Uint8Array
}

/** What must be on stable storage before a node answers any message. */
export interface HardState {
  term: number
  vote: NodeId
  commit: number
}

/**
 * Membership. In a joint configuration `votersOutgoing` holds the old voters
 * and a decision needs a majority of both sets.
 */
export interface ConfState {
  voters: NodeId[]
  learners: NodeId[]
  votersOutgoing: NodeId[]
  /** Voters of the outgoing config that become learners when the joint config is left. */
  learnersNext: NodeId[]
  /** Leave the joint configuration automatically once it is committed. */
  autoLeave: boolean
}

export interface SnapshotMetadata {
  index: number
  term: number
  confState: ConfState
}

export interface Snapshot {
  metadata: SnapshotMetadata
  data: Uint8Array
}

/**
 * Message types, named as in etcd. Local ones (Hup, Beat, Unreachable,
 * SnapStatus, CheckQuorum) never leave the node; Prop, ReadIndex and
 * TransferLeader are forwarded to the leader when stepped on a follower.
 */
export type MessageType =
  | 'MsgHup'
  | 'MsgBeat'
  | 'MsgProp'
  | 'MsgApp'
  | 'MsgAppResp'
  | 'MsgVote'
  | 'MsgVoteResp'
  | 'MsgPreVote'
  | 'MsgPreVoteResp'
  | 'MsgSnap'
  | 'MsgHeartbeat'
  | 'MsgHeartbeatResp'
  | 'MsgUnreachable'
  | 'MsgSnapStatus'
  | 'MsgCheckQuorum'
  | 'MsgTransferLeader'
  | 'MsgTimeoutNow'
  | 'MsgReadIndex'
  | 'MsgReadIndexResp'

export interface Message {
  type: MessageType
  to: NodeId
  from: NodeId
  term: number
  /** Term of the entry at `index` (MsgApp), or of the candidate's last entry (votes). */
  logTerm: number
  index: number
  entries: Entry[]
  commit: number
  snapshot?: Snapshot
  reject: boolean
  /** On a rejected MsgAppResp: the follower's guess of where the logs agree. */
  rejectHint: number
  /** Opaque bytes: the ReadIndex request context, or the campaign kind of a vote. */
  context?: Uint8Array
}

export type ConfChangeType = 'add-node' | 'remove-node' | 'add-learner-node'

export interface ConfChangeSingle {
  type: ConfChangeType
  nodeId: NodeId
}

/**
 * `auto`: a single change is applied directly, several go through a joint
 * configuration that is left automatically. `implicit` is `auto` that always
 * uses a joint configuration when it has to, `explicit` uses a joint
 * configuration that the application leaves itself by proposing an empty change.
 */
export type ConfChangeTransition = 'auto' | 'implicit' | 'explicit'

export interface ConfChange {
  changes: ConfChangeSingle[]
  transition?: ConfChangeTransition
  context?: Uint8Array
}

export type StateType = 'follower' | 'pre-candidate' | 'candidate' | 'leader'

export interface SoftState {
  lead: NodeId
  raftState: StateType
}

/** The answer to a ReadIndex request: reads are linearizable once `index` is applied. */
export interface ReadState {
  index: number
  requestCtx: Uint8Array
}

/**
 * Everything the caller must do, in order: persist `hardState`, `entries`
 * and `snapshot` (syncing when `mustSync`), then send `messages`, then apply
 * `snapshot` and `committedEntries`, then call `advance()`.
 *
 * When `sendBeforePersist` is set the messages, and the committed entries,
 * may go ahead of the write instead: the node is a leader whose term and
 * vote are already durable, and a leader counts its own entries towards
 * commitment only after advance() (Raft thesis §10.2.1). Its committed
 * entries were written by an earlier Ready.
 */
export interface Ready {
  softState?: SoftState
  hardState?: HardState
  readStates: ReadState[]
  entries: Entry[]
  snapshot?: Snapshot
  committedEntries: Entry[]
  messages: Message[]
  sendBeforePersist: boolean
  mustSync: boolean
}

/**
 * The read side of the log that the library needs. Calls are synchronous:
 * implementations keep the log since the last snapshot in memory and make it
 * durable on their own write path.
 */
export interface Storage {
  initialState(): { hardState: HardState, confState: ConfState }
  /** Entries in [lo, hi), at least one if any, at most `maxSize` bytes of data. */
  entries(lo: number, hi: number, maxSize?: number): Entry[]
  term(index: number): number
  lastIndex(): number
  /** Index of the first entry still in the log (snapshot index + 1). */
  firstIndex(): number
  snapshot(): Snapshot
}
