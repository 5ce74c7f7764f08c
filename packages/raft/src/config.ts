import { RaftConfigError } from './errors.ts'
import type { NodeId, Storage } from './types.ts'

export interface RaftConfig {
  id: NodeId
  storage: Storage
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [n, 2n)). Default 10. */
  electionTick?: number
  /** Ticks between the leader's heartbeats. Default 1. */
  heartbeatTick?: number
  /** The last applied index, when restarting a node whose state machine is durable. */
  applied?: number
  /** Cap on the entry bytes of one MsgApp. Default 1 MiB. */
  maxSizePerMsg?: number
  /** Cap on the entry bytes of committedEntries in one Ready. Default 64 MiB. */
  maxCommittedSizePerReady?: number
  /** Cap on the bytes of proposed but uncommitted entries at the leader. Default 64 MiB. */
  maxUncommittedEntriesSize?: number
  /** Cap on MsgApp in flight to one follower. Default 256. */
  maxInflightMsgs?: number
  /** Cap on entry bytes in flight to one follower. Default 32 MiB. */
  maxInflightBytes?: number
  /** A leader that has not heard from a quorum for an election timeout steps down. Default true. */
  checkQuorum?: boolean
  /** Campaign in a pre-vote round first, so a rejoining node does not disrupt the cluster. Default true. */
  preVote?: boolean
  /** Reject proposals at followers instead of forwarding them to the leader. Default false. */
  disableProposalForwarding?: boolean
  /** Source of randomness for election timeouts; the simulator seeds it. Default Math.random. */
  random?: () => number
  /**
   * Leaves the appends that only tell followers of a new commit index to the
   * caller, who sends them with RawNode.broadcastCommit() a moment later:
   * appends of new entries sent meanwhile carry the commit index, and none is
   * then needed. Default false: sent at once, as etcd's raft does.
   */
  deferCommitBroadcast?: boolean
}

export type ResolvedConfig = Required<Omit<RaftConfig, 'applied'>> & { applied: number }

export function resolveConfig (c: RaftConfig): ResolvedConfig {
  const r: ResolvedConfig = {
    id: c.id,
    storage: c.storage,
    electionTick: c.electionTick ?? 10,
    heartbeatTick: c.heartbeatTick ?? 1,
    applied: c.applied ?? 0,
    maxSizePerMsg: c.maxSizePerMsg ?? 1024 * 1024,
    maxCommittedSizePerReady: c.maxCommittedSizePerReady ?? 64 * 1024 * 1024,
    maxUncommittedEntriesSize: c.maxUncommittedEntriesSize ?? 64 * 1024 * 1024,
    maxInflightMsgs: c.maxInflightMsgs ?? 256,
    maxInflightBytes: c.maxInflightBytes ?? 32 * 1024 * 1024,
    checkQuorum: c.checkQuorum ?? true,
    preVote: c.preVote ?? true,
    disableProposalForwarding: c.disableProposalForwarding ?? false,
    random: c.random ?? Math.random,
    deferCommitBroadcast: c.deferCommitBroadcast ?? false
  }
  if (r.id === '') throw new RaftConfigError('id must not be empty')
  if (r.heartbeatTick <= 0) throw new RaftConfigError('heartbeatTick must be greater than 0')
  if (r.electionTick <= r.heartbeatTick) throw new RaftConfigError('electionTick must be greater than heartbeatTick')
  if (r.maxInflightMsgs <= 0) throw new RaftConfigError('maxInflightMsgs must be greater than 0')
  return r
}
