import { StepLocalMessageError, ProposalDroppedError } from './errors.ts'
import { encodeConfChange } from './confchange.ts'
import { Raft, message } from './raft.ts'
import type { RaftConfig } from './config.ts'
import type { ConfChange, ConfState, HardState, Message, MessageType, NodeId, Ready, SoftState } from './types.ts'
import type { ProgressState } from './tracker.ts'

const LOCAL: ReadonlySet<MessageType> = new Set(['MsgHup', 'MsgBeat', 'MsgUnreachable', 'MsgSnapStatus', 'MsgCheckQuorum'])
const RESPONSES: ReadonlySet<MessageType> = new Set(['MsgAppResp', 'MsgVoteResp', 'MsgHeartbeatResp', 'MsgUnreachable', 'MsgPreVoteResp'])

export interface Status {
  id: NodeId
  hardState: HardState
  softState: SoftState
  applied: number
  leadTransferee: NodeId
  config: ConfState
  /** The leader's view of every member; only on the leader. */
  progress?: Record<NodeId, { match: number, next: number, state: ProgressState }>
}

/** What a Ready handed out, so that advance() acknowledges exactly that. */
interface Handed {
  lastEntry?: { index: number, term: number }
  snapshotIndex?: number
  applied?: number
  hardState?: HardState
  committedEntries: Ready['committedEntries']
  sendBeforePersist: boolean
}

/**
 * The thread-safe-less, clock-less, IO-less interface to one Raft node, as
 * etcd's RawNode. The caller loops: feed ticks, messages and proposals in;
 * when `hasReady()`, take `ready()`, do what it says in order, then
 * `advance()`. Calls other than ready() are fine between ready() and advance().
 */
export class RawNode {
  private readonly raft: Raft
  private prevSoftState: SoftState
  private prevHardState: HardState
  private handed?: Handed

  constructor (config: RaftConfig) {
    this.raft = new Raft(config)
    this.prevSoftState = this.raft.softState()
    this.prevHardState = this.raft.hardState()
  }

  tick (): void {
    this.raft.tick()
  }

  /** Starts an election now instead of waiting for the election timeout. */
  campaign (): void {
    this.raft.step(message({ type: 'MsgHup', from: this.raft.id }))
  }

  /**
   * Proposes data to be appended to the log. At a follower the proposal is
   * forwarded to the leader; throws ProposalDroppedError (with the leader's
   * id when known) when it cannot be accepted.
   */
  propose (data: Uint8Array): void {
    this.raft.step(message({ type: 'MsgProp', from: this.raft.id, entries: [{ term: 0, index: 0, type: 'normal', data }] }))
  }

  /** Proposes a membership change; apply it with applyConfChange() once it is committed. */
  proposeConfChange (cc: ConfChange): void {
    this.raft.step(message({ type: 'MsgProp', from: this.raft.id, entries: [{ term: 0, index: 0, type: 'conf-change', data: encodeConfChange(cc) }] }))
  }

  /** Applies a committed conf change (decoded with decodeConfChange) and returns the new membership. */
  applyConfChange (cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc)
  }

  /**
   * Feeds a message from the network. Responses from nodes outside the
   * configuration are ignored, and so are forwarded proposals this node cannot
   * take: the proposer times out as if the message were lost.
   */
  step (m: Message): void {
    if (LOCAL.has(m.type)) throw new StepLocalMessageError(`${m.type} is local to a node and cannot come from the network`)
    if (RESPONSES.has(m.type) && !this.raft.tracker.progress.has(m.from)) return
    try {
      this.raft.step(m)
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err
    }
  }

  /**
   * Asks for a linearizable read. A later Ready carries a ReadState with this
   * context; the read may be served once the state machine applied its index.
   * Contexts must be unique among pending requests.
   */
  readIndex (ctx: Uint8Array): void {
    this.raft.step(message({ type: 'MsgReadIndex', from: this.raft.id, context: ctx }))
  }

  /** Asks the leader to hand leadership to `to`, which must be a voter. */
  transferLeader (to: NodeId): void {
    this.raft.step(message({ type: 'MsgTransferLeader', from: to }))
  }

  /** This follower has reason to think its leader is gone: see Raft.forgetLeader. */
  forgetLeader (): void {
    this.raft.forgetLeader()
  }

  /** The transport could not deliver to `id`: stop pipelining to it. */
  reportUnreachable (id: NodeId): void {
    this.raft.step(message({ type: 'MsgUnreachable', from: id }))
  }

  /** With deferCommitBroadcast: the commit index advanced and followers have not been told; broadcastCommit() tells them. */
  get commitUnsent (): boolean {
    return this.raft.commitUnsent
  }

  /** With deferCommitBroadcast: sends the appends that tell followers of the commit index, where no append has yet; the next Ready holds them. */
  broadcastCommit (): void {
    this.raft.broadcastCommit()
  }

  /** The snapshot sent to `id` was delivered, or failed to be. */
  reportSnapshot (id: NodeId, failure: boolean): void {
    this.raft.step(message({ type: 'MsgSnapStatus', from: id, reject: failure }))
  }

  hasReady (): boolean {
    if (this.handed != null) return false
    const r = this.raft
    const hs = r.hardState()
    return r.appendsPending ||
      !sameSoftState(r.softState(), this.prevSoftState) ||
      !sameHardState(hs, this.prevHardState) ||
      r.log.hasPendingSnapshot() ||
      r.msgs.length > 0 ||
      r.log.hasNextUnstableEnts() ||
      r.log.hasNextCommittedEnts() ||
      r.readStates.length > 0
  }

  /**
   * What to do next. Must be followed by advance() before the next ready();
   * hasReady() is false in between.
   */
  ready (): Ready {
    if (this.handed != null) throw new Error('ready() called again before advance()')
    const r = this.raft
    r.flushAppends()
    const entries = r.log.nextUnstableEnts()
    const committedEntries = r.log.nextCommittedEnts()
    const softState = r.softState()
    const hardState = r.hardState()
    const rd: Ready = {
      readStates: r.readStates,
      entries,
      committedEntries,
      messages: r.msgs,
      sendBeforePersist: r.state === 'leader' && hardState.term === this.prevHardState.term && hardState.vote === this.prevHardState.vote && r.log.unstable.snapshot == null,
      mustSync: entries.length > 0 || hardState.vote !== this.prevHardState.vote || hardState.term !== this.prevHardState.term
    }
    if (!sameSoftState(softState, this.prevSoftState)) {
      rd.softState = softState
      this.prevSoftState = softState
    }
    if (!sameHardState(hardState, this.prevHardState)) rd.hardState = hardState
    const snapshot = r.log.unstable.snapshot
    if (snapshot != null) rd.snapshot = snapshot
    r.msgs = []
    r.readStates = []
    const last = entries.at(-1)
    const lastCommitted = committedEntries.at(-1)
    this.handed = {
      lastEntry: last == null ? undefined : { index: last.index, term: last.term },
      snapshotIndex: snapshot?.metadata.index,
      applied: lastCommitted?.index ?? snapshot?.metadata.index,
      hardState: rd.hardState,
      committedEntries,
      sendBeforePersist: rd.sendBeforePersist
    }
    return rd
  }

  /** The caller did what the last Ready said: persisted, sent and applied. */
  advance (): void {
    const h = this.accept()
    if (h == null) return
    if (h.lastEntry != null) this.raft.stableTo(h.lastEntry.index, h.lastEntry.term)
    if (h.snapshotIndex !== undefined) this.raft.log.stableSnapTo(h.snapshotIndex)
  }

  /**
   * As advance(), for a Ready with sendBeforePersist (a leader's) whose
   * write is still under way: the next ready() may come at once, without
   * these entries, so that a leader need not wait for its own disk to take
   * and send more (etcd's asynchronous storage writes). Call persisted() with
   * the entry returned once everything up to it is written; until then the
   * leader does not count itself towards committing it. Returns undefined
   * when the Ready had no entries.
   */
  advanceBeforePersist (): { index: number, term: number } | undefined {
    if (this.handed != null && !this.handed.sendBeforePersist) throw new Error('advanceBeforePersist() after a Ready that must be persisted before it is sent')
    const h = this.accept()
    if (h?.lastEntry != null) this.raft.log.acceptInProgress(h.lastEntry.index, h.lastEntry.term)
    return h?.lastEntry
  }

  /** The entries up to (index, term), handed out by a Ready advanced with advanceBeforePersist(), are on disk. */
  persisted (index: number, term: number): void {
    this.raft.stableTo(index, term)
  }

  /** Takes back the handed Ready: it was sent and applied. */
  private accept (): Handed | undefined {
    const h = this.handed
    if (h == null) return undefined
    this.handed = undefined
    const r = this.raft
    if (h.hardState != null) this.prevHardState = h.hardState
    r.reduceUncommittedSize(h.committedEntries)
    if (h.applied !== undefined) r.appliedTo(h.applied)
    return h
  }

  status (): Status {
    const r = this.raft
    const s: Status = {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.log.applied,
      leadTransferee: r.leadTransferee,
      config: r.tracker.confState()
    }
    if (r.state === 'leader') {
      s.progress = {}
      for (const [id, pr] of r.tracker.progress) s.progress[id] = { match: pr.match, next: pr.next, state: pr.state }
    }
    return s
  }
}

function sameSoftState (a: SoftState, b: SoftState): boolean {
  return a.lead === b.lead && a.raftState === b.raftState
}

function sameHardState (a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}
