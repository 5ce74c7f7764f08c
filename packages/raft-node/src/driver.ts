import { TypedEventEmitter } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { ProposalDroppedError, RawNode } from '@node-daemon/raft'
import { systemClock } from './clock.ts'
import { decodeEntry, encodeProposal } from './codec.ts'
import { LeaderTransferError, NotLeaderError, ProposalLostError, ProposalOutcomeUnknownError, ProposalTimeoutError, RaftStoppedError, ReadTimeoutError } from './errors.ts'
import type { Clock } from './clock.ts'
import type { RaftStorage } from './storage.ts'
import type { RaftTransport } from './transport.ts'
import type { ComponentLogger, Logger, Startable } from '@libp2p/interface'
import type { ConfChange, ConfState, Entry, Message, RaftConfig, Ready, Snapshot, Status } from '@node-daemon/raft'

/**
 * The application's replicated state. `apply` runs for every committed
 * command, in log order, on every node, and must be deterministic; what it
 * returns (or throws) settles the proposer's `propose()`. `snapshot` and
 * `restore` move the whole state when the log is compacted or a lagging node
 * catches up from a snapshot.
 */
export interface StateMachine {
  apply (command: Uint8Array, index: number, term: number): unknown
  /**
   * A membership change was applied at `index`: `confState` is the new
   * membership, `context` what the proposer passed in `cc.context`. Lets the
   * application keep its own records of members in step with Raft's.
   */
  applyConfChange? (cc: ConfChange, confState: ConfState, context: Uint8Array, index: number, term: number): void
  snapshot (): Uint8Array
  restore (data: Uint8Array): void
}

export interface RaftNodeComponents {
  transport: RaftTransport
  storage: RaftStorage
  logger?: ComponentLogger
  /** Timers and now; default the system's. */
  clock?: Clock
  /** A number in [0, 1) for election timeouts, request ids and campaign delays; default Math.random. */
  random?: () => number
}

export interface RaftNodeInit {
  /** This node's id in the cluster: its libp2p peer id. */
  id: string
  stateMachine: StateMachine
  /** Milliseconds per Raft tick. Default 100. */
  tickMs?: number
  /** Ticks without a leader before a follower campaigns (randomized in [n, 2n)). Default 10. */
  electionTick?: number
  /** Ticks between the leader's heartbeats. Default 1. */
  heartbeatTick?: number
  /** Applied entries between snapshots of the state machine, after which the log is compacted; 0 never. Default 10,000. */
  snapshotEvery?: number
  /** Entries kept behind a snapshot, so that a follower slightly behind catches up from the log. Default 1,000. */
  snapshotKeepEntries?: number
  /**
   * A proposal without outcome for this long is rejected with
   * ProposalTimeoutError. Default 5 election timeouts.
   */
  proposalTimeoutMs?: number
  /** A read barrier without a confirmed read index for this long is rejected. Default 5 election timeouts. */
  readTimeoutMs?: number
  /** Further library settings (flow control, check-quorum, pre-vote). */
  raft?: Omit<RaftConfig, 'id' | 'storage' | 'electionTick' | 'heartbeatTick' | 'applied'>
}

export interface LeaderChange {
  /** The new leader's peer id, empty when there is none. */
  leader: string
  term: number
}

export interface RaftNodeEvents {
  /** The known leader changed (to none too). */
  leader: CustomEvent<LeaderChange>
  /** The node failed (its storage refused a write) and stopped. */
  error: CustomEvent<Error>
}

export interface WaitOptions {
  signal?: AbortSignal
}

interface Waiter<T> {
  resolve (value: T): void
  reject (err: Error): void
  deadline: number
  detach (): void
}

/** A proposal waiting for its entry to be applied, or to be known lost. */
interface Pending extends Waiter<unknown> {
  key: number
  /** Where the proposal's entry sits in this node's log, once seen there. */
  index?: number
  term?: number
}

/** Reads that share one ReadIndex request. */
interface ReadBatch {
  ctx: Uint8Array
  reads: Array<Waiter<void>>
  /** The confirmed read index, once the leader answered. */
  index?: number
  issuedAt: number
}

const ID_BYTES = 16

/**
 * Drives a RawNode: ticks it on a timer, steps messages from the transport,
 * and carries out each Ready in order: persist (fsync when it must), then
 * send, then apply, then advance. A leader sends and applies while it
 * persists and takes the next Ready at once, counting itself towards a
 * commit only once its write is done. While a write is under way, new
 * proposals and messages accumulate, so the next Ready (and the next fsync)
 * carries them all: that batching is what gives throughput.
 */
export class RaftNode extends TypedEventEmitter<RaftNodeEvents> implements Startable {
  readonly id: string
  private readonly transport: RaftTransport
  private readonly storage: RaftStorage
  private readonly stateMachine: StateMachine
  private readonly log: Logger
  private readonly clock: Clock
  private readonly random: () => number
  private readonly settings: Required<Omit<RaftNodeInit, 'id' | 'stateMachine' | 'raft'>> & { raft: RaftNodeInit['raft'] }
  private node?: RawNode
  private running = false
  private processing?: Promise<void>
  /** A leader's saves still being written (see persisting). */
  private readonly writes = new Set<Promise<void>>()
  private ticker?: unknown
  /** A broadcast of the commit index waits for the next turn of the event loop (deferCommitBroadcast). */
  private commitDeferred = false
  /** Distinguishes this run's request ids from every other node's and run's. */
  private readonly idPrefix: Uint8Array
  private nextKey = 0
  private readonly pending = new Map<number, Pending>()
  /** What applying the current Ready's entries answers their proposers, told once it is carried out. */
  private readonly applyOutcomes: Array<() => void> = []
  /** Pending proposals whose entry was seen in the log, by index. */
  private readonly placed = new Map<number, Pending>()
  private queuedReads: Array<Waiter<void>> = []
  private readonly readBatches = new Map<number, ReadBatch>()
  private readonly transfers = new Set<Waiter<void> & { to: string }>()
  private applied = 0
  private appliedTerm = 0
  private snapshotIndex = 0
  private confState?: ConfState
  private leader = ''
  private term = 0
  /**
   * Campaigns, having lost the leader's connection: a timer of its own, not
   * the next tick, since survivors whose tickers run in step would otherwise
   * campaign in the same tick and split the vote.
   */
  private campaignTimer?: unknown
  private readonly onMessage = (evt: CustomEvent<Message>): void => { this.step(evt.detail) }
  private readonly onUnreachable = (evt: CustomEvent<string>): void => {
    this.node?.reportUnreachable(evt.detail)
    this.schedule()
  }

  private readonly onSnapshotStatus = (evt: CustomEvent<{ to: string, failure: boolean }>): void => {
    this.node?.reportSnapshot(evt.detail.to, evt.detail.failure)
    this.schedule()
  }

  /**
   * The leader's connection closed, as when its process dies: forget it and
   * campaign soon instead of after a whole election timeout. The other
   * followers saw the same close, forgot it too and grant the pre-vote. The
   * survivors take turns by id, a turn after one tick and each next half an
   * election timeout later, and stand down for a campaign that reaches them
   * first (see step): two that campaigned at once would split the vote and
   * wait out the election timeout, as random delays sometimes did. A later
   * turn comes only when the first could not win, and early when a survivor
   * sees why: the candidate's log is behind its own, or it refused the
   * candidate's pre-vote while it still had the leader, its close not seen
   * yet (see step). A leader that is still alive keeps its lease with them,
   * and the pre-vote fails harmlessly.
   */
  private readonly onDisconnect = (evt: CustomEvent<string>): void => {
    const lost = evt.detail
    if (lost !== this.leader || this.node?.status().softState.raftState !== 'follower') return
    this.node.forgetLeader()
    this.standDown()
    const voters = [...new Set([...this.confState?.voters ?? [], ...this.confState?.votersOutgoing ?? []])].filter(id => id !== lost).sort()
    const refusedLately = this.clock.now() - this.refusedCampaignAt < this.settings.electionTick * this.settings.tickMs
    const turn = refusedLately ? 0 : voters.indexOf(this.id)
    if (voters.includes(this.id)) this.campaignIn(this.settings.tickMs * (1 + turn * this.settings.electionTick / 2))
    this.schedule()
  }

  /** When a (pre-)vote reached this node while it still had a leader: the candidate saw the leader go first and waits on this node. */
  private refusedCampaignAt = -Infinity

  private campaignIn (ms: number): void {
    this.standDown()
    this.campaignTimer = this.clock.setTimeout(() => {
      this.campaignTimer = undefined
      // someone else may have won meanwhile
      if (this.running && this.leader === '') this.campaign()
    }, ms)
  }

  private standDown (): void {
    if (this.campaignTimer !== undefined) this.clock.clearTimeout(this.campaignTimer)
    this.campaignTimer = undefined
  }

  constructor (components: RaftNodeComponents, init: RaftNodeInit) {
    super()
    this.id = init.id
    this.transport = components.transport
    this.storage = components.storage
    this.stateMachine = init.stateMachine
    this.log = (components.logger ?? defaultLogger()).forComponent('node-daemon:raft')
    this.clock = components.clock ?? systemClock
    this.random = components.random ?? Math.random
    // 64 random bits; unique per run, not secret
    this.idPrefix = Uint8Array.from({ length: ID_BYTES / 2 }, () => Math.floor(this.random() * 256))
    const tickMs = init.tickMs ?? 100
    const electionTick = init.electionTick ?? 10
    this.settings = {
      tickMs,
      electionTick,
      heartbeatTick: init.heartbeatTick ?? 1,
      snapshotEvery: init.snapshotEvery ?? 10_000,
      snapshotKeepEntries: init.snapshotKeepEntries ?? 1_000,
      proposalTimeoutMs: init.proposalTimeoutMs ?? 5 * electionTick * tickMs,
      readTimeoutMs: init.readTimeoutMs ?? 5 * electionTick * tickMs,
      raft: init.raft
    }
  }

  isStarted (): boolean {
    return this.running
  }

  /** Restores the state machine from the stored snapshot; committed entries after it are applied again as the log replays. */
  async start (): Promise<void> {
    if (this.running) return
    const snap = this.storage.snapshot()
    if (snap.metadata.index > 0) this.stateMachine.restore(snap.data)
    const { hardState, confState } = this.storage.initialState()
    this.applied = snap.metadata.index
    this.appliedTerm = snap.metadata.term
    this.snapshotIndex = snap.metadata.index
    this.confState = confState
    this.term = hardState.term
    this.leader = ''
    this.node = new RawNode({
      deferCommitBroadcast: true,
      ...this.settings.raft,
      id: this.id,
      storage: this.storage,
      electionTick: this.settings.electionTick,
      heartbeatTick: this.settings.heartbeatTick,
      applied: this.applied,
      random: this.settings.raft?.random ?? this.random
    })
    this.transport.setPeers(this.others(confState), this.electors(confState))
    this.transport.addEventListener('message', this.onMessage)
    this.transport.addEventListener('unreachable', this.onUnreachable)
    this.transport.addEventListener('snapshot-status', this.onSnapshotStatus)
    this.transport.addEventListener('disconnect', this.onDisconnect)
    this.running = true
    const ticker = (): void => {
      this.ticker = this.clock.setTimeout(ticker, this.settings.tickMs)
      this.tick()
    }
    this.ticker = this.clock.setTimeout(ticker, this.settings.tickMs)
    this.schedule()
  }

  /**
   * Stops ticking and stepping, lets a Ready being carried out finish (so
   * that storage may be closed next), and rejects whatever waits.
   */
  async stop (): Promise<void> {
    if (!this.running && this.processing == null) return
    this.halt()
    await this.processing
    await Promise.all(this.writes)
    this.rejectAll(new RaftStoppedError('the raft node stopped'))
  }

  /**
   * Replicates `command` and resolves with what the state machine's apply
   * returned for it here, once this node applied it. Rejects with
   * NotLeaderError when no leader can take it (retry is safe),
   * ProposalLostError when its entry can no longer be committed (retry is
   * safe), ProposalTimeoutError or ProposalOutcomeUnknownError when its fate
   * is unknown.
   */
  async propose (command: Uint8Array, options: WaitOptions = {}): Promise<unknown> {
    const { id, promise } = this.register(options)
    this.submit(id, () => { this.node?.propose(encodeProposal({ id, command })) })
    return promise
  }

  /**
   * Proposes a membership change and resolves with the configuration once it
   * is applied here. The driver carries its request id in `cc.context`,
   * around the caller's context.
   */
  async proposeConfChange (cc: ConfChange, options: WaitOptions = {}): Promise<ConfState> {
    const { id, promise } = this.register(options)
    const context = encodeProposal({ id, command: cc.context ?? new Uint8Array(0) })
    this.submit(id, () => { this.node?.proposeConfChange({ ...cc, context }) })
    return promise as Promise<ConfState>
  }

  /**
   * A linearizable read barrier: resolves once this node has applied
   * everything committed before the call, as confirmed by a quorum through
   * the leader. Concurrent reads share one ReadIndex request.
   */
  async read (options: WaitOptions = {}): Promise<void> {
    this.ensureRunning()
    options.signal?.throwIfAborted()
    const { waiter, promise } = this.waiter<void>(this.settings.readTimeoutMs, options, () => {
      this.queuedReads = this.queuedReads.filter(r => r !== waiter)
      for (const [key, batch] of this.readBatches) {
        batch.reads = batch.reads.filter(r => r !== waiter)
        if (batch.reads.length === 0) this.readBatches.delete(key)
      }
    })
    this.queuedReads.push(waiter)
    this.schedule()
    return promise
  }

  /** Campaigns now rather than at the election timeout, e.g. to pick the first leader of a new cluster. */
  campaign (): void {
    this.ensureRunning()
    this.node?.campaign()
    this.schedule()
  }

  /** Asks the leader to hand over to `to`; resolves once `to` leads, rejects with LeaderTransferError after two election timeouts. */
  async transferLeader (to: string, options: WaitOptions = {}): Promise<void> {
    this.ensureRunning()
    options.signal?.throwIfAborted()
    if (this.leader === to) return
    const { waiter, promise } = this.waiter<void>(2 * this.settings.electionTick * this.settings.tickMs, options, () => { this.transfers.delete(transfer) })
    const transfer = Object.assign(waiter, { to })
    this.transfers.add(transfer)
    this.node?.transferLeader(to)
    this.schedule()
    return promise
  }

  /** The library's view: term, vote, commit, leader, role, membership, and on the leader its followers' progress. */
  status (): Status {
    if (this.node == null) throw new RaftStoppedError('the raft node has not started')
    return this.node.status()
  }

  /** The known leader's peer id, empty when there is none. */
  get leaderId (): string {
    return this.leader
  }

  private ensureRunning (): void {
    if (!this.running) throw new RaftStoppedError('the raft node is not running')
  }

  /** Voters and learners other than this node, to whom the transport keeps streams. */
  private others (cs: ConfState): string[] {
    return [...new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext])].filter(id => id !== this.id)
  }

  /**
   * The members whose streams open ahead of a message: for a voter, the
   * other voters, whose votes an election waits on. A learner never
   * campaigns, and opening streams to every member would mesh a large
   * cluster (100 nodes joined in 293 s rather than 50-90).
   */
  private electors (cs: ConfState): string[] {
    const voters = new Set([...cs.voters, ...cs.votersOutgoing])
    return voters.has(this.id) ? [...voters].filter(id => id !== this.id) : []
  }

  // ---- waiting

  /** A waiter with a deadline (checked on ticks) and the caller's signal; `detach` removes it from where it waits. */
  private waiter<T> (timeoutMs: number, options: WaitOptions, detach: () => void): { waiter: Waiter<T>, promise: Promise<T> } {
    let waiter!: Waiter<T>
    const promise = new Promise<T>((resolve, reject) => {
      const signal = options.signal
      const onAbort = (): void => { waiter.detach(); reject(signal?.reason) }
      signal?.addEventListener('abort', onAbort, { once: true })
      const done = (): void => { signal?.removeEventListener('abort', onAbort) }
      waiter = {
        resolve: (value) => { done(); resolve(value) },
        reject: (err) => { done(); reject(err) },
        deadline: this.clock.now() + timeoutMs,
        detach: () => { done(); detach() }
      }
    })
    return { waiter, promise }
  }

  private register (options: WaitOptions): { id: Uint8Array, promise: Promise<unknown> } {
    this.ensureRunning()
    options.signal?.throwIfAborted()
    const key = ++this.nextKey
    const id = new Uint8Array(ID_BYTES)
    id.set(this.idPrefix)
    new DataView(id.buffer).setFloat64(ID_BYTES / 2, key)
    const { waiter, promise } = this.waiter<unknown>(this.settings.proposalTimeoutMs, options, () => { this.forget(pending) })
    const pending: Pending = Object.assign(waiter, { key })
    this.pending.set(key, pending)
    return { id, promise }
  }

  /** Hands a registered proposal to the library; a refusal rejects it at once. */
  private submit (id: Uint8Array, propose: () => void): void {
    try {
      propose()
    } catch (err: any) {
      const pending = this.pending.get(this.keyOf(id) ?? -1)
      if (pending == null) return
      this.forget(pending)
      pending.reject(err instanceof ProposalDroppedError ? new NotLeaderError(err.message, err.leader) : err)
      return
    }
    this.schedule()
  }

  private forget (p: Pending): void {
    this.pending.delete(p.key)
    if (p.index !== undefined && this.placed.get(p.index) === p) this.placed.delete(p.index)
  }

  /** The key of a request id of this node's current run, else undefined. */
  private keyOf (id: Uint8Array): number | undefined {
    if (id.byteLength !== ID_BYTES) return undefined
    for (let i = 0; i < ID_BYTES / 2; i++) if (id[i] !== this.idPrefix[i]) return undefined
    return new DataView(id.buffer, id.byteOffset, id.byteLength).getFloat64(ID_BYTES / 2)
  }

  /** The proposal of this run that carries request id `id`, if any. */
  private pendingFor (id: Uint8Array | undefined): Pending | undefined {
    if (id == null || this.pending.size === 0) return undefined
    const key = this.keyOf(id)
    return key === undefined ? undefined : this.pending.get(key)
  }

  private rejectAll (err: Error): void {
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
    this.placed.clear()
    for (const r of this.queuedReads) r.reject(err)
    this.queuedReads = []
    for (const batch of this.readBatches.values()) for (const r of batch.reads) r.reject(err)
    this.readBatches.clear()
    for (const t of this.transfers) t.reject(err)
    this.transfers.clear()
  }

  // ---- the loop

  private tick (): void {
    if (!this.running) return
    // A throw here would escape the timer and take the process down: the node fails instead, and says why.
    try {
      this.node?.tick()
    } catch (err: any) {
      this.fail(err)
      return
    }
    const now = this.clock.now()
    // Same timeout for all, so insertion order is deadline order.
    for (const p of this.pending.values()) {
      if (p.deadline > now) break
      this.forget(p)
      p.reject(new ProposalTimeoutError(`no outcome within ${this.settings.proposalTimeoutMs} ms; the command may still be applied`))
    }
    for (const [key, batch] of this.readBatches) {
      batch.reads = batch.reads.filter(r => {
        if (r.deadline > now) return true
        r.reject(new ReadTimeoutError(`no read index confirmed within ${this.settings.readTimeoutMs} ms`))
        return false
      })
      if (batch.reads.length === 0) {
        this.readBatches.delete(key)
      } else if (batch.index === undefined && now - batch.issuedAt >= this.settings.electionTick * this.settings.tickMs) {
        // The request or its answer was lost, or there was no leader: ask again.
        batch.issuedAt = now
        this.node?.readIndex(batch.ctx)
      }
    }
    for (const t of this.transfers) {
      if (t.deadline > now) continue
      this.transfers.delete(t)
      t.reject(new LeaderTransferError(`${t.to} did not become leader in time; the leader is ${this.leader === '' ? 'unknown' : this.leader}`))
    }
    this.schedule()
  }

  private step (m: Message): void {
    if (!this.running || m.to !== this.id) return
    if (m.type === 'MsgPreVote' || m.type === 'MsgVote') {
      if (!this.logNotAhead(m)) {
        // it cannot win here, and this node, waiting its turn, can: no need to wait
        if (this.campaignTimer !== undefined) this.campaignIn(0)
      } else if (this.leader !== '') {
        this.refusedCampaignAt = this.clock.now()
      } else {
        // another survivor that can win campaigns already: helping it beats splitting the vote with it
        this.standDown()
      }
    }
    try {
      this.node?.step(m)
    } catch (err: any) {
      this.log('stepping %s from %s failed - %e', m.type, m.from, err)
      return
    }
    this.schedule()
  }

  /** Whether a candidate's last entry (m.logTerm, m.index) is at least as recent as this node's stored one: if not, it cannot win here. */
  private logNotAhead (m: Message): boolean {
    const last = this.storage.lastIndex()
    let term: number
    try {
      term = this.storage.term(last)
    } catch {
      // compacted away meanwhile: no telling, so do as if it could win
      return true
    }
    return m.logTerm > term || (m.logTerm === term && m.index >= last)
  }

  /** Runs the loop soon, unless it runs already: what arrives meanwhile goes into the next Ready. */
  private schedule (): void {
    if (!this.running || this.processing != null) return
    this.processing = new Promise<void>(resolve => { this.clock.setImmediate(resolve) })
      .then(async () => { await this.process() })
      .catch((err: Error) => { this.fail(err) })
      .finally(() => {
        this.processing = undefined
        // Whatever arrived in the microtasks since the loop last looked.
        if (this.queuedReads.length > 0 || this.node?.hasReady() === true) this.schedule()
        else this.deferCommitBroadcast()
      })
  }

  /**
   * Tells followers of a new commit index at the next turn of the event loop,
   * unless appends of entries proposed meanwhile have told them: a writer
   * that writes again as soon as its last write committed (promise
   * continuations run first) saves each follower a message and its answer
   * per commit, and followers learn of a commit at most a turn later when
   * none follows.
   */
  private deferCommitBroadcast (): void {
    const node = this.node
    if (this.commitDeferred || node?.commitUnsent !== true) return
    this.commitDeferred = true
    this.clock.setImmediate(() => {
      this.commitDeferred = false
      if (!this.running || this.node !== node) return
      node.broadcastCommit()
      this.schedule()
    })
  }

  private async process (): Promise<void> {
    const node = this.node
    while (this.running && node != null) {
      this.issueReads(node)
      if (!node.hasReady()) return
      const rd = node.ready()
      try {
        const write = this.carryOut(rd, node)
        if (rd.sendBeforePersist) {
          // a leader takes the next Ready while this one is written: saves queued meanwhile share one fsync
          this.persisting(write, node.advanceBeforePersist(), node)
        } else {
          if (write != null) await write
          if (!this.running) return
          this.sendAndApply(rd, node)
          node.advance()
        }
      } finally {
        // once the library knows the entries are applied: a conf change proposed by the caller next is not refused as one still pending
        for (const settle of this.applyOutcomes.splice(0)) settle()
      }
      // only now: a log compacted past what the library holds as applied breaks its campaign (it reads the unapplied entries)
      await this.maybeSnapshot()
    }
  }

  /** Tells the library once the leader's entries up to `last` are written: only then does it count itself towards their commit. */
  private persisting (write: Promise<void> | undefined, last: { index: number, term: number } | undefined, node: RawNode): void {
    if (write == null) return
    const done: Promise<void> = write.then(() => {
      if (!this.running || this.node !== node) return
      if (last != null) node.persisted(last.index, last.term)
      this.schedule()
    }, (err: Error) => { this.fail(err) }).finally(() => { this.writes.delete(done) })
    this.writes.add(done)
  }

  private issueReads (node: RawNode): void {
    if (this.queuedReads.length === 0) return
    const key = ++this.nextKey
    const ctx = new Uint8Array(ID_BYTES)
    ctx.set(this.idPrefix)
    new DataView(ctx.buffer).setFloat64(ID_BYTES / 2, key)
    this.readBatches.set(key, { ctx, reads: this.queuedReads, issuedAt: this.clock.now() })
    this.queuedReads = []
    node.readIndex(ctx)
  }

  /**
   * Starts persisting the Ready and returns the write; a leader's Ready is
   * sent and applied at once (rd.sendBeforePersist), anyone else's is the
   * caller's to send and apply once the write is done.
   */
  private carryOut (rd: Ready, node: RawNode): Promise<void> | undefined {
    if (rd.hardState != null) this.term = rd.hardState.term
    if (rd.softState != null && rd.softState.lead !== this.leader) {
      this.leader = rd.softState.lead
      this.safeDispatchEvent('leader', { detail: { leader: this.leader, term: this.term } })
      for (const t of this.transfers) {
        if (t.to !== this.leader) continue
        this.transfers.delete(t)
        t.resolve()
      }
    }
    const write = rd.hardState != null || rd.entries.length > 0 || rd.snapshot != null
      ? this.storage.save({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot }, rd.mustSync)
      : undefined
    // a leader's followers write while it writes; everyone else sends what is on disk
    if (rd.sendBeforePersist) this.sendAndApply(rd, node)
    return write
  }

  private sendAndApply (rd: Ready, node: RawNode): void {
    this.place(rd.entries)
    if (rd.messages.length > 0) this.transport.send(rd.messages.map(m => m.type === 'MsgSnap' ? this.freshSnapshot(m) : m))
    if (rd.snapshot != null) this.restore(rd.snapshot)
    for (const e of rd.committedEntries) this.apply(e, node)
    for (const rs of rd.readStates) {
      const key = this.keyOf(rs.requestCtx)
      const batch = key === undefined ? undefined : this.readBatches.get(key)
      if (batch != null) batch.index = rs.index
    }
    this.releaseReads()
  }

  /**
   * The stored snapshot may predate the recipient's own membership, and a
   * node refuses a snapshot whose configuration leaves it out: so a snapshot
   * goes out as the state now is, as etcd's server does. The log holds every
   * entry after `applied`, so the recipient goes on from there.
   */
  private freshSnapshot (m: Message): Message {
    if (m.snapshot == null || this.applied <= m.snapshot.metadata.index || this.confState == null) return m
    const metadata = { index: this.applied, term: this.appliedTerm, confState: this.confState }
    return { ...m, snapshot: { metadata, data: this.stateMachine.snapshot() } }
  }

  /** Notes where this node's own proposals landed in the log, to tell later whether they can still commit. */
  private place (entries: Entry[]): void {
    if (this.pending.size === 0) return
    for (const e of entries) {
      const p = this.pendingFor(decodeEntry(e)?.id)
      if (p == null) continue
      if (p.index !== undefined && this.placed.get(p.index) === p) this.placed.delete(p.index)
      p.index = e.index
      p.term = e.term
      this.placed.set(e.index, p)
    }
  }

  /**
   * Applies one committed entry and settles proposals. Commitment is final,
   * so a proposal is known lost when another entry commits at its index, or
   * when an entry of a later term commits before its index: every future
   * leader holds that entry, and terms never decrease along a log.
   */
  private apply (e: Entry, node: RawNode): void {
    if (e.index <= this.applied) return
    // undefined for an empty normal entry: a new leader's first, committing its term.
    const proposal = decodeEntry(e)
    const mine = this.pendingFor(proposal?.id)
    if (mine != null) this.forget(mine)
    const other = this.placed.get(e.index)
    if (other != null) {
      this.forget(other)
      other.reject(new ProposalLostError(`another entry was committed at index ${e.index}`))
    }
    if (e.term > this.appliedTerm && this.placed.size > 0) {
      for (const p of [...this.placed.values()]) {
        if ((p.term ?? 0) >= e.term) continue
        this.forget(p)
        p.reject(new ProposalLostError(`an entry of term ${e.term} was committed before index ${p.index} of term ${p.term}`))
      }
    }
    this.applied = e.index
    this.appliedTerm = e.term
    if (proposal?.type === 'conf-change') {
      this.confState = node.applyConfChange(proposal.confChange)
      this.transport.setPeers(this.others(this.confState), this.electors(this.confState))
      try {
        this.stateMachine.applyConfChange?.(proposal.confChange, this.confState, proposal.context, e.index, e.term)
      } catch (err: any) {
        // Raft's membership changed regardless; the application's records are its own concern.
        this.log.error('applying conf change %d to the state machine failed - %e', e.index, err)
      }
      const confState = this.confState
      if (mine != null) this.applyOutcomes.push(() => { mine.resolve(confState) })
      return
    }
    if (proposal == null) return
    let result: unknown
    try {
      result = this.stateMachine.apply(proposal.command, e.index, e.term)
    } catch (err: any) {
      // Deterministic, so every node failed alike: the proposer hears why.
      if (mine != null) this.applyOutcomes.push(() => { mine.reject(err) })
      return
    }
    if (mine != null) this.applyOutcomes.push(() => { mine.resolve(result) })
  }

  /** A snapshot from the leader replaced the log: the state machine takes its state. */
  private restore (snap: Snapshot): void {
    this.stateMachine.restore(snap.data)
    this.applied = snap.metadata.index
    this.appliedTerm = snap.metadata.term
    this.snapshotIndex = snap.metadata.index
    this.confState = snap.metadata.confState
    this.transport.setPeers(this.others(this.confState), this.electors(this.confState))
    for (const p of [...this.placed.values()]) {
      if ((p.index ?? 0) > snap.metadata.index) continue
      this.forget(p)
      p.reject(new ProposalOutcomeUnknownError(`index ${p.index} arrived inside a snapshot; the command may or may not have been applied`))
    }
  }

  private releaseReads (): void {
    for (const [key, batch] of this.readBatches) {
      if (batch.index === undefined || batch.index > this.applied) continue
      this.readBatches.delete(key)
      for (const r of batch.reads) r.resolve()
    }
  }

  private async maybeSnapshot (): Promise<void> {
    const every = this.settings.snapshotEvery
    if (every <= 0 || this.applied - this.snapshotIndex < every) return
    // Taken now, between entries: the state is exactly that of index `applied`.
    const index = this.applied
    await this.storage.createSnapshot(index, this.confState, this.stateMachine.snapshot(), this.settings.snapshotKeepEntries)
    this.snapshotIndex = index
  }

  private halt (): void {
    this.running = false
    this.standDown()
    if (this.ticker !== undefined) this.clock.clearTimeout(this.ticker)
    this.ticker = undefined
    this.transport.removeEventListener('message', this.onMessage)
    this.transport.removeEventListener('unreachable', this.onUnreachable)
    this.transport.removeEventListener('snapshot-status', this.onSnapshotStatus)
    this.transport.removeEventListener('disconnect', this.onDisconnect)
  }

  /** Storage refused a write: the node must not go on as if it were durable. */
  private fail (err: Error): void {
    this.log.error('raft node failed - %e', err)
    this.halt()
    this.rejectAll(new RaftStoppedError(`the raft node failed: ${err.message}`, { cause: err }))
    this.safeDispatchEvent('error', { detail: err })
  }
}

export function createRaftNode (components: RaftNodeComponents, init: RaftNodeInit): RaftNode {
  return new RaftNode(components, init)
}
