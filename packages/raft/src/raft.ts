import { resolveConfig } from './config.ts'
import { Changer, decodeConfChange, encodeConfChange, isLeaveJoint, restoreConfig } from './confchange.ts'
import { ConfChangeError, ProposalDroppedError, SnapshotTemporarilyUnavailableError } from './errors.ts'
import { RaftLog } from './log.ts'
import { ReadOnly } from './read-only.ts'
import { ProgressTracker, jointVote } from './tracker.ts'
import { NONE } from './types.ts'
import type { RaftConfig, ResolvedConfig } from './config.ts'
import type { ConfChangeResult } from './confchange.ts'
import type { ConfChange, ConfState, Entry, HardState, Message, MessageType, NodeId, ReadState, Snapshot, SoftState, StateType } from './types.ts'

type CampaignKind = 'pre-election' | 'election' | 'transfer'

/** The context of a MsgVote sent on a leader's request: it bypasses the lease of the voters. */
const CAMPAIGN_TRANSFER = new TextEncoder().encode('CampaignTransfer')

/**
 * Builds a message with every field set, so that consumers never see holes.
 * Field by field rather than defaults spread over with `m`: every message of
 * a node passes here, and a spread builds each one on V8's slow path.
 */
export function message (m: Partial<Message> & Pick<Message, 'type'>): Message {
  const out: Message = {
    type: m.type,
    to: m.to ?? NONE,
    from: m.from ?? NONE,
    term: m.term ?? 0,
    logTerm: m.logTerm ?? 0,
    index: m.index ?? 0,
    entries: m.entries ?? [],
    commit: m.commit ?? 0,
    reject: m.reject ?? false,
    rejectHint: m.rejectHint ?? 0
  }
  if (m.snapshot !== undefined) out.snapshot = m.snapshot
  if (m.context !== undefined) out.context = m.context
  return out
}

const voteResponseType = (t: MessageType): MessageType => t === 'MsgVote' ? 'MsgVoteResp' : 'MsgPreVoteResp'

function sameBytes (a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a == null || a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

function payloadSize (ents: Entry[]): number {
  let s = 0
  for (const e of ents) s += e.data.byteLength
  return s
}

/**
 * The Raft state machine of one node (§5 of the paper plus pre-vote,
 * check-quorum, joint consensus, ReadIndex and leader transfer), as etcd's
 * `raft` struct. Everything happens inside `step()` and `tick()`; outputs
 * accumulate in `msgs`, `readStates` and the log for RawNode to hand out.
 */
export class Raft {
  readonly id: NodeId
  term = 0
  vote: NodeId = NONE
  lead: NodeId = NONE
  state: StateType = 'follower'
  isLearner = false
  readonly log: RaftLog
  tracker: ProgressTracker
  msgs: Message[] = []
  readStates: ReadState[] = []
  /** The node a leadership transfer is handing over to. */
  leadTransferee: NodeId = NONE
  /** Index of the newest conf change in the log: at most one may be unapplied. */
  pendingConfIndex = 0
  private uncommittedSize = 0
  /** Proposals were appended and not yet broadcast. */
  appendsPending = false
  /** The commit index advanced and no append has told the followers yet (deferCommitBroadcast). */
  commitUnsent = false
  private readOnly = new ReadOnly()
  /** ReadIndex requests that arrived before this leader committed an entry of its term. */
  private pendingReadIndexMessages: Message[] = []
  private electionElapsed = 0
  private heartbeatElapsed = 0
  private randomizedElectionTimeout = 0
  private readonly cfg: ResolvedConfig

  constructor (config: RaftConfig) {
    const c = resolveConfig(config)
    this.cfg = c
    this.id = c.id
    this.log = new RaftLog(c.storage, c.maxCommittedSizePerReady)
    this.tracker = new ProgressTracker(c.maxInflightMsgs, c.maxInflightBytes)
    const { hardState, confState } = c.storage.initialState()
    this.switchToConfig(restoreConfig(this.tracker, confState, this.log.lastIndex()))
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState)
    if (c.applied > 0) this.log.appliedTo(c.applied)
    this.becomeFollower(this.term, NONE)
  }

  softState (): SoftState {
    return { lead: this.lead, raftState: this.state }
  }

  hardState (): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed }
  }

  private loadState (hs: HardState): void {
    if (hs.commit < this.log.committed || hs.commit > this.log.lastIndex()) {
      throw new Error(`${this.id} state.commit ${hs.commit} is out of range [${this.log.committed}, ${this.log.lastIndex()}]`)
    }
    this.log.committed = hs.commit
    this.term = hs.term
    this.vote = hs.vote
  }

  // ---- sending

  private send (m: Message): void {
    if (m.from === NONE) m.from = this.id
    if (m.type === 'MsgVote' || m.type === 'MsgVoteResp' || m.type === 'MsgPreVote' || m.type === 'MsgPreVoteResp') {
      if (m.term === 0) throw new Error(`term should be set when sending ${m.type}`)
    } else {
      if (m.term !== 0) throw new Error(`term should not be set when sending ${m.type} (was ${m.term})`)
      // proposals and read requests forwarded to the leader are local messages there
      if (m.type !== 'MsgProp' && m.type !== 'MsgReadIndex') m.term = this.term
    }
    this.msgs.push(m)
  }

  /**
   * Sends entries (or a snapshot when they are compacted) to a follower.
   * Returns false when nothing was sent: paused, or nothing new and not forced.
   */
  private maybeSendAppend (to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.tracker.progress.get(to)
    if (pr == null || pr.isPaused()) return false
    const prevIndex = pr.next - 1
    const prevTerm = this.log.term(prevIndex)
    let ents: Entry[] | undefined
    if (prevTerm !== undefined) {
      try {
        ents = this.log.entries(pr.next, this.cfg.maxSizePerMsg)
      } catch {
        ents = undefined
      }
    }
    if (ents !== undefined && ents.length === 0 && !sendIfEmpty) return false
    if (prevTerm === undefined || ents === undefined) {
      // the follower needs what was compacted: send the snapshot instead
      if (!pr.recentActive) return false
      let snapshot: Snapshot
      try {
        snapshot = this.log.snapshot()
      } catch (err) {
        if (err instanceof SnapshotTemporarilyUnavailableError) return false
        throw err
      }
      pr.becomeSnapshot(snapshot.metadata.index)
      this.send(message({ type: 'MsgSnap', to, snapshot }))
      return true
    }
    this.send(message({ type: 'MsgApp', to, index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.log.committed }))
    pr.sentEntries(ents.length, payloadSize(ents))
    return true
  }

  private sendAppend (to: NodeId): void {
    this.maybeSendAppend(to, true)
  }

  private sendHeartbeat (to: NodeId, ctx: Uint8Array | undefined): void {
    // a follower may not have the entries up to our commit index yet
    const commit = Math.min(this.tracker.progress.get(to)?.match ?? 0, this.log.committed)
    this.send(message({ type: 'MsgHeartbeat', to, commit, context: ctx }))
  }

  private bcastAppend (): void {
    // every append carries the commit index
    this.commitUnsent = false
    for (const id of this.tracker.ids()) if (id !== this.id) this.sendAppend(id)
  }

  private bcastHeartbeat (ctx = this.readOnly.lastPendingRequestCtx()): void {
    for (const id of this.tracker.ids()) if (id !== this.id) this.sendHeartbeat(id, ctx)
  }

  // ---- state transitions

  private reset (term: number): void {
    this.commitUnsent = false
    if (this.term !== term) {
      // a leader of the new term may replace entries acknowledged in the old one before they are persisted:
      // acknowledgements still queued would then vouch for what the disk never holds
      this.msgs = this.msgs.filter(m => m.type !== 'MsgAppResp' || m.reject)
      this.term = term
      this.vote = NONE
    }
    this.lead = NONE
    this.electionElapsed = 0
    this.heartbeatElapsed = 0
    this.randomizedElectionTimeout = this.cfg.electionTick + Math.floor(this.cfg.random() * this.cfg.electionTick)
    this.leadTransferee = NONE
    this.tracker.resetVotes()
    const last = this.log.lastIndex()
    for (const [id, pr] of this.tracker.progress) {
      const fresh = this.tracker.newProgress(last + 1, pr.isLearner)
      // what is on our own disk; unstable entries count once stableTo() says so
      if (id === this.id) fresh.match = Math.min(last, this.log.unstable.offset - 1)
      this.tracker.progress.set(id, fresh)
    }
    this.pendingConfIndex = 0
    this.uncommittedSize = 0
    this.readOnly = new ReadOnly()
    this.pendingReadIndexMessages = []
  }

  becomeFollower (term: number, lead: NodeId): void {
    this.reset(term)
    this.lead = lead
    this.state = 'follower'
  }

  private becomeCandidate (): void {
    if (this.state === 'leader') throw new Error('invalid transition [leader -> candidate]')
    this.reset(this.term + 1)
    this.vote = this.id
    this.state = 'candidate'
  }

  /** A pre-candidate asks for votes for term+1 without changing its term or vote. */
  private becomePreCandidate (): void {
    if (this.state === 'leader') throw new Error('invalid transition [leader -> pre-candidate]')
    this.tracker.resetVotes()
    this.lead = NONE
    this.state = 'pre-candidate'
  }

  private becomeLeader (): void {
    if (this.state === 'follower') throw new Error('invalid transition [follower -> leader]')
    this.reset(this.term)
    this.lead = this.id
    this.state = 'leader'
    this.tracker.progress.get(this.id)?.becomeReplicate()
    // conservatively, any entry not known to be applied may be a conf change
    this.pendingConfIndex = this.log.lastIndex()
    // an empty entry of the new term lets the leader commit what earlier terms left (§5.4.2)
    this.appendEntry([{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }])
  }

  private promotable (): boolean {
    const pr = this.tracker.progress.get(this.id)
    return pr != null && !pr.isLearner && !this.log.hasPendingSnapshot()
  }

  private hup (kind: CampaignKind): void {
    if (this.state === 'leader' || !this.promotable()) return
    // a conf change that is committed but unapplied could change who may vote
    if (this.log.committed > this.log.applied) {
      const ents = this.log.slice(this.log.applied + 1, this.log.committed + 1)
      if (ents.some(e => e.type === 'conf-change')) return
    }
    this.campaign(kind)
  }

  private campaign (kind: CampaignKind): void {
    let term: number
    let voteType: MessageType
    if (kind === 'pre-election') {
      this.becomePreCandidate()
      voteType = 'MsgPreVote'
      term = this.term + 1
    } else {
      this.becomeCandidate()
      voteType = 'MsgVote'
      term = this.term
    }
    this.tracker.recordVote(this.id, true)
    if (this.tracker.voteResult() === 'won') {
      // a single-voter cluster wins at once
      if (kind === 'pre-election') this.campaign('election')
      else this.becomeLeader()
      return
    }
    const lastIndex = this.log.lastIndex()
    const lastTerm = this.log.lastTerm()
    for (const id of this.tracker.voterIds()) {
      if (id === this.id) continue
      this.send(message({
        type: voteType,
        to: id,
        term,
        index: lastIndex,
        logTerm: lastTerm,
        context: kind === 'transfer' ? CAMPAIGN_TRANSFER : undefined
      }))
    }
  }

  /**
   * A follower drops its leader (etcd's ForgetLeader): it stays a follower
   * in its term, but it no longer holds the leader's lease, so it grants
   * pre-votes at once. When a quorum learns from elsewhere (a closed
   * connection) that the leader died, a new one is elected without waiting
   * out an election timeout; if the leader is alive, its next heartbeat
   * brings it back.
   */
  forgetLeader (): void {
    if (this.state === 'follower') this.lead = NONE
  }

  // ---- ticks

  tick (): void {
    if (this.state === 'leader') this.tickHeartbeat()
    else this.tickElection()
  }

  private tickElection (): void {
    this.electionElapsed++
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0
      this.step(message({ type: 'MsgHup', from: this.id }))
    }
  }

  private tickHeartbeat (): void {
    this.heartbeatElapsed++
    this.electionElapsed++
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0
      if (this.cfg.checkQuorum) this.step(message({ type: 'MsgCheckQuorum', from: this.id }))
      // a transfer that did not finish within an election timeout is abandoned
      if (this.state === 'leader') this.leadTransferee = NONE
    }
    if (this.state !== 'leader') return
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0
      this.step(message({ type: 'MsgBeat', from: this.id }))
    }
  }

  // ---- step

  step (m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
        const force = sameBytes(m.context, CAMPAIGN_TRANSFER)
        const inLease = this.cfg.checkQuorum && this.lead !== NONE && this.electionElapsed < this.cfg.electionTick
        // a node that heard from a leader within the election timeout keeps it (§6 disruptive servers)
        if (!force && inLease) return
      }
      if (m.type === 'MsgPreVote') {
        // a pre-vote never changes our term
      } else if (m.type === 'MsgPreVoteResp' && !m.reject) {
        // pre-votes are asked for term+1; the term is taken only when the election is won
      } else if (m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap') {
        this.becomeFollower(m.term, m.from)
      } else {
        this.becomeFollower(m.term, NONE)
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'MsgHeartbeat' || m.type === 'MsgApp')) {
        // a leader cut off by a partition learns our higher term from this and steps down
        this.send(message({ type: 'MsgAppResp', to: m.from }))
      } else if (m.type === 'MsgPreVote') {
        // without a rejection the pre-candidate would wait forever
        this.send(message({ type: 'MsgPreVoteResp', to: m.from, term: this.term, reject: true }))
      }
      return
    }

    switch (m.type) {
      case 'MsgHup':
        this.hup(this.cfg.preVote ? 'pre-election' : 'election')
        return
      case 'MsgVote':
      case 'MsgPreVote': {
        const canVote = this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === 'MsgPreVote' && m.term > this.term)
        if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
          // the response carries the request's term: a pre-vote grant is for a future term
          this.send(message({ type: voteResponseType(m.type), to: m.from, term: m.term }))
          if (m.type === 'MsgVote') {
            this.electionElapsed = 0
            this.vote = m.from
          }
        } else {
          this.send(message({ type: voteResponseType(m.type), to: m.from, term: this.term, reject: true }))
        }
        return
      }
    }
    if (this.state === 'leader') this.stepLeader(m)
    else if (this.state === 'follower') this.stepFollower(m)
    else this.stepCandidate(m)
  }

  private stepLeader (m: Message): void {
    switch (m.type) {
      case 'MsgBeat':
        this.bcastHeartbeat()
        return
      case 'MsgCheckQuorum':
        if (!this.tracker.quorumActive(this.id)) this.becomeFollower(this.term, NONE)
        for (const [id, pr] of this.tracker.progress) if (id !== this.id) pr.recentActive = false
        return
      case 'MsgProp':
        this.handleProposal(m)
        return
      case 'MsgReadIndex':
        if (this.tracker.isSingleton()) {
          this.respondToReadIndex(m, this.log.committed)
        } else if (!this.committedEntryInCurrentTerm()) {
          // until then the commit index may lag what an earlier leader committed
          this.pendingReadIndexMessages.push(m)
        } else {
          this.confirmReadIndex(m)
        }
        return
    }

    const pr = this.tracker.progress.get(m.from)
    if (pr == null) return
    switch (m.type) {
      case 'MsgAppResp':
        pr.recentActive = true
        if (m.reject) {
          let nextProbe = m.rejectHint
          if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index
          if (pr.maybeDecrTo(m.index, nextProbe)) {
            if (pr.state === 'replicate') pr.becomeProbe()
            this.sendAppend(m.from)
          }
        } else {
          const wasPaused = pr.isPaused()
          if (pr.maybeUpdate(m.index)) {
            if (pr.state === 'probe') {
              pr.becomeReplicate()
            } else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
              pr.becomeProbe()
              pr.becomeReplicate()
            } else if (pr.state === 'replicate') {
              pr.inflights.freeLE(m.index)
            }
            const before = this.log.committed
            if (this.maybeCommit()) {
              this.releasePendingReadIndexMessages()
              this.commitAdvanced(before)
            } else if (wasPaused) {
              this.sendAppend(m.from)
            }
            // pipeline: keep sending while the window allows (bounded by the log's length)
            for (let i = 0; i < this.cfg.maxInflightMsgs && this.maybeSendAppend(m.from, false); i++);
            if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
              this.send(message({ type: 'MsgTimeoutNow', to: m.from }))
            }
          }
        }
        return
      case 'MsgHeartbeatResp': {
        pr.recentActive = true
        pr.msgAppFlowPaused = false
        // a lost MsgApp would otherwise keep a full window full forever
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne()
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from)
        if (m.context == null || m.context.byteLength === 0) return
        const acks = this.readOnly.recvAck(m.from, m.context)
        if (acks == null) return
        const votes = new Map<NodeId, boolean>()
        for (const id of acks) votes.set(id, true)
        if (jointVote(this.tracker.config, votes) !== 'won') return
        for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.request, rs.index)
        return
      }
      case 'MsgSnapStatus':
        if (pr.state !== 'snapshot') return
        if (m.reject) pr.pendingSnapshot = 0
        pr.becomeProbe()
        // wait for the follower's answer (or a heartbeat) before probing again
        pr.msgAppFlowPaused = true
        return
      case 'MsgUnreachable':
        if (pr.state === 'replicate') pr.becomeProbe()
        return
      case 'MsgTransferLeader': {
        if (pr.isLearner) return
        const transferee = m.from
        if (this.leadTransferee !== NONE) {
          if (this.leadTransferee === transferee) return
          this.leadTransferee = NONE
        }
        if (transferee === this.id) return
        this.electionElapsed = 0
        this.leadTransferee = transferee
        if (pr.match === this.log.lastIndex()) this.send(message({ type: 'MsgTimeoutNow', to: transferee }))
        else this.sendAppend(transferee)
      }
    }
  }

  /**
   * Appends proposed entries. A conf change is refused (replaced by an empty
   * entry when forwarded, an error when local) while another one is unapplied
   * or when it does not fit the current config.
   */
  private handleProposal (m: Message): void {
    const local = m.from === this.id
    const drop = (why: string): never => { throw new ProposalDroppedError(why, this.lead) }
    if (m.entries.length === 0) throw new Error('stepped empty MsgProp')
    if (!this.tracker.progress.has(this.id)) drop('this leader was removed from the configuration')
    if (this.leadTransferee !== NONE) drop(`leadership is being transferred to ${this.leadTransferee}`)
    const entries = m.entries.map((e, i) => {
      if (e.type !== 'conf-change') return e
      const refused = this.refuseConfChange(e.data, i)
      if (refused == null) return e
      if (local) throw new ConfChangeError(refused)
      return { ...e, type: 'normal' as const, data: new Uint8Array(0) }
    })
    if (!this.appendEntry(entries)) drop('too many uncommitted entries')
    // sent at the next Ready, so that the proposals made until then share one MsgApp per follower
    this.appendsPending = true
  }

  /** Broadcasts the entries proposed since the last Ready. */
  flushAppends (): void {
    if (!this.appendsPending) return
    this.appendsPending = false
    if (this.state === 'leader') this.bcastAppend()
  }

  /** Tells the followers of the commit index, unless appends sent since did, or those of the next Ready will. */
  broadcastCommit (): void {
    if (!this.commitUnsent || this.appendsPending) return
    this.commitUnsent = false
    if (this.state === 'leader') this.bcastAppend()
  }

  private refuseConfChange (data: Uint8Array, offset: number): string | undefined {
    let cc: ConfChange
    try {
      cc = decodeConfChange(data)
    } catch (err: any) {
      return err.message
    }
    const alreadyJoint = this.tracker.isJoint()
    const leave = isLeaveJoint(cc)
    if (this.pendingConfIndex > this.log.applied) return 'possible unapplied conf change'
    if (alreadyJoint && !leave) return 'must transition out of joint config first'
    if (!alreadyJoint && leave) return 'not in joint state; refusing empty conf change'
    try {
      new Changer(this.tracker, this.log.lastIndex()).change(cc)
    } catch (err: any) {
      return err.message
    }
    this.pendingConfIndex = this.log.lastIndex() + offset + 1
    return undefined
  }

  private stepCandidate (m: Message): void {
    const myVoteResp: MessageType = this.state === 'pre-candidate' ? 'MsgPreVoteResp' : 'MsgVoteResp'
    switch (m.type) {
      case 'MsgProp':
        throw new ProposalDroppedError('no leader: an election is in progress')
      case 'MsgApp':
        this.becomeFollower(m.term, m.from)
        this.handleAppendEntries(m)
        return
      case 'MsgHeartbeat':
        this.becomeFollower(m.term, m.from)
        this.handleHeartbeat(m)
        return
      case 'MsgSnap':
        this.becomeFollower(m.term, m.from)
        this.handleSnapshot(m)
        return
      case myVoteResp:
        this.tracker.recordVote(m.from, !m.reject)
        switch (this.tracker.voteResult()) {
          case 'won':
            if (this.state === 'pre-candidate') {
              this.campaign('election')
            } else {
              this.becomeLeader()
              this.bcastAppend()
            }
            return
          case 'lost':
            // a quorum refused: wait for a leader, or time out and try again
            this.becomeFollower(this.term, NONE)
        }
    }
  }

  private stepFollower (m: Message): void {
    switch (m.type) {
      case 'MsgProp':
        if (this.lead === NONE) throw new ProposalDroppedError('no leader')
        if (this.cfg.disableProposalForwarding) throw new ProposalDroppedError(`not the leader; the leader is ${this.lead}`, this.lead)
        this.send({ ...m, to: this.lead })
        return
      case 'MsgApp':
        this.electionElapsed = 0
        this.lead = m.from
        this.handleAppendEntries(m)
        return
      case 'MsgHeartbeat':
        this.electionElapsed = 0
        this.lead = m.from
        this.handleHeartbeat(m)
        return
      case 'MsgSnap':
        this.electionElapsed = 0
        this.lead = m.from
        this.handleSnapshot(m)
        return
      case 'MsgTransferLeader':
      case 'MsgReadIndex':
        if (this.lead === NONE) return
        this.send({ ...m, to: this.lead, term: 0 })
        return
      case 'MsgTimeoutNow':
        // the leader asked us to take over: campaign at once, skipping pre-vote
        this.hup('transfer')
        return
      case 'MsgReadIndexResp':
        if (m.context == null) return
        this.readStates.push({ index: m.index, requestCtx: m.context })
    }
  }

  private handleAppendEntries (m: Message): void {
    if (m.index < this.log.committed) {
      this.send(message({ type: 'MsgAppResp', to: m.from, index: this.log.committed }))
      return
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries)
    if (lastNew !== undefined) {
      this.send(message({ type: 'MsgAppResp', to: m.from, index: lastNew }))
      return
    }
    // tell the leader where our log may agree with its, a whole term back at a time
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm)
    this.send(message({ type: 'MsgAppResp', to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term }))
  }

  private handleHeartbeat (m: Message): void {
    this.log.commitTo(m.commit)
    this.send(message({ type: 'MsgHeartbeatResp', to: m.from, context: m.context }))
  }

  private handleSnapshot (m: Message): void {
    if (m.snapshot == null) return
    if (this.restore(m.snapshot)) {
      this.send(message({ type: 'MsgAppResp', to: m.from, index: this.log.lastIndex() }))
    } else {
      this.send(message({ type: 'MsgAppResp', to: m.from, index: this.log.committed }))
    }
  }

  /** Installs a snapshot from the leader; false when it brings nothing new. */
  private restore (s: Snapshot): boolean {
    if (s.metadata.index <= this.log.committed) return false
    if (this.state !== 'follower') {
      // only a follower can be sent a snapshot: something is wrong, so start over in a new term
      this.becomeFollower(this.term + 1, NONE)
      return false
    }
    const cs = s.metadata.confState
    const member = [...cs.voters, ...cs.learners, ...cs.votersOutgoing].includes(this.id)
    if (!member) return false
    if (this.log.matchTerm(s.metadata.index, s.metadata.term)) {
      // we have the snapshot's last entry: just fast-forward the commit index
      this.log.commitTo(s.metadata.index)
      return false
    }
    this.log.restore(s)
    this.tracker = new ProgressTracker(this.tracker.maxInflight, this.tracker.maxInflightBytes)
    this.switchToConfig(restoreConfig(this.tracker, cs, this.log.lastIndex()))
    const pr = this.tracker.progress.get(this.id)
    pr?.maybeUpdate(pr.next - 1)
    return true
  }

  // ---- log and commit

  private appendEntry (es: Entry[]): boolean {
    const li = this.log.lastIndex()
    const ents = es.map((e, i) => ({ ...e, term: this.term, index: li + 1 + i }))
    const size = payloadSize(ents)
    // an empty entry is always accepted, so that a new leader can commit
    if (this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > this.cfg.maxUncommittedEntriesSize) return false
    this.uncommittedSize += size
    this.log.append(ents)
    // the leader counts itself for these entries only once they are on its disk: see stableTo()
    return true
  }

  /**
   * Entries up to (index, term) reached this node's disk. A leader's own
   * acknowledgement counts only from now, which is what lets it send entries
   * while it is still writing them (Raft thesis §10.2.1).
   */
  stableTo (index: number, term: number): void {
    this.log.stableTo(index, term)
    if (this.state !== 'leader' || this.log.unstable.offset <= index) return
    const pr = this.tracker.progress.get(this.id)
    const before = this.log.committed
    if (pr?.maybeUpdate(index) === true && this.maybeCommit()) {
      this.releasePendingReadIndexMessages()
      this.commitAdvanced(before)
    }
  }

  private maybeCommit (): boolean {
    return this.log.maybeCommit(this.tracker.committed(), this.term)
  }

  /**
   * The commit index moved on from `before`: followers are told now, or, with
   * deferCommitBroadcast, by broadcastCommit(). A conf change that committed
   * is told at once: a member it removes learns of its removal only from
   * these appends, as the later ones go to members only.
   */
  private commitAdvanced (before: number): void {
    const confChange = before < this.pendingConfIndex && this.pendingConfIndex <= this.log.committed
    if (this.cfg.deferCommitBroadcast && !confChange) this.commitUnsent = true
    else this.bcastAppend()
  }

  reduceUncommittedSize (ents: Entry[]): void {
    if (this.state !== 'leader') return
    this.uncommittedSize = Math.max(0, this.uncommittedSize - payloadSize(ents))
  }

  private committedEntryInCurrentTerm (): boolean {
    return this.log.term(this.log.committed) === this.term
  }

  // ---- reads

  private confirmReadIndex (m: Message): void {
    const ctx = m.context ?? new Uint8Array(0)
    this.readOnly.addRequest(this.log.committed, m, ctx)
    this.readOnly.recvAck(this.id, ctx)
    this.bcastHeartbeat(ctx)
  }

  private respondToReadIndex (req: Message, index: number): void {
    const ctx = req.context ?? new Uint8Array(0)
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestCtx: ctx })
    } else {
      this.send(message({ type: 'MsgReadIndexResp', to: req.from, index, context: ctx }))
    }
  }

  private releasePendingReadIndexMessages (): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return
    const pending = this.pendingReadIndexMessages
    this.pendingReadIndexMessages = []
    for (const m of pending) this.confirmReadIndex(m)
  }

  // ---- membership

  applyConfChange (cc: ConfChange): ConfState {
    return this.switchToConfig(new Changer(this.tracker, this.log.lastIndex()).change(cc))
  }

  private switchToConfig (r: ConfChangeResult): ConfState {
    this.tracker.config = r.config
    this.tracker.progress = r.progress
    const cs = this.tracker.confState()
    const pr = this.tracker.progress.get(this.id)
    this.isLearner = pr?.isLearner === true
    if ((pr == null || this.isLearner) && this.state === 'leader') {
      // a leader that was removed or demoted steps down; the rest elect a new one
      this.becomeFollower(this.term, NONE)
      return cs
    }
    if (this.state !== 'leader' || cs.voters.length === 0) return cs
    // the change may have made entries committed (a smaller quorum) or added nodes to catch up
    if (this.maybeCommit()) {
      this.bcastAppend()
    } else {
      for (const id of this.tracker.ids()) if (id !== this.id) this.maybeSendAppend(id, false)
    }
    if (this.leadTransferee !== NONE && !this.tracker.isVoter(this.leadTransferee)) this.leadTransferee = NONE
    return cs
  }

  /**
   * Called once the application applied up to `applied`: a joint config
   * with autoLeave is left by proposing the empty conf change.
   */
  appliedTo (applied: number): void {
    const old = this.log.applied
    this.log.appliedTo(applied)
    if (this.tracker.config.autoLeave && old <= this.pendingConfIndex && applied >= this.pendingConfIndex && this.state === 'leader') {
      const leave: Entry = { term: 0, index: 0, type: 'conf-change', data: encodeConfChange({ changes: [] }) }
      if (!this.appendEntry([leave])) throw new Error('refused to leave the joint config automatically')
      this.pendingConfIndex = this.log.lastIndex()
      this.bcastAppend()
    }
  }
}
