import type { ConfState, NodeId } from './types.ts'

/**
 * The leader's view of each follower: how far their log matches, what to send
 * next, and how many appends are in flight. Mirrors etcd's tracker package.
 */

/** MsgApps sent in replicate state and not yet acknowledged: a ring of (last index, bytes). */
export class Inflights {
  private readonly size: number
  private readonly maxBytes: number
  private readonly indexes: number[]
  private readonly sizes: number[]
  private start = 0
  count = 0
  bytes = 0

  constructor (size: number, maxBytes: number) {
    this.size = size
    this.maxBytes = maxBytes
    this.indexes = new Array<number>(size).fill(0)
    this.sizes = new Array<number>(size).fill(0)
  }

  clone (): Inflights {
    const c = new Inflights(this.size, this.maxBytes)
    for (let i = 0; i < this.count; i++) c.add(this.indexes[(this.start + i) % this.size], this.sizes[(this.start + i) % this.size])
    return c
  }

  add (index: number, bytes: number): void {
    if (this.full()) throw new Error('cannot add into a full inflights')
    const next = (this.start + this.count) % this.size
    this.indexes[next] = index
    this.sizes[next] = bytes
    this.count++
    this.bytes += bytes
  }

  /** Frees the messages whose last index is at most `to`. */
  freeLE (to: number): void {
    while (this.count > 0 && this.indexes[this.start] <= to) {
      this.bytes -= this.sizes[this.start]
      this.start = (this.start + 1) % this.size
      this.count--
    }
    if (this.count === 0) this.start = 0
  }

  freeFirstOne (): void {
    if (this.count > 0) this.freeLE(this.indexes[this.start])
  }

  full (): boolean {
    return this.count === this.size || (this.maxBytes > 0 && this.bytes >= this.maxBytes)
  }

  reset (): void {
    this.count = 0
    this.start = 0
    this.bytes = 0
  }
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot'

export class Progress {
  match = 0
  next = 1
  /**
   * probe: one MsgApp at a time until we learn where the logs agree;
   * replicate: optimistic pipelining; snapshot: waiting for a snapshot to land.
   */
  state: ProgressState = 'probe'
  pendingSnapshot = 0
  /** Heard from since the last check-quorum round. */
  recentActive = false
  /** In probe state: a MsgApp went out and was not answered yet. */
  msgAppFlowPaused = false
  inflights: Inflights
  isLearner: boolean

  constructor (next: number, inflights: Inflights, isLearner: boolean) {
    this.next = next
    this.inflights = inflights
    this.isLearner = isLearner
  }

  clone (): Progress {
    const p = new Progress(this.next, this.inflights.clone(), this.isLearner)
    p.match = this.match
    p.state = this.state
    p.pendingSnapshot = this.pendingSnapshot
    p.recentActive = this.recentActive
    p.msgAppFlowPaused = this.msgAppFlowPaused
    return p
  }

  private resetState (state: ProgressState): void {
    this.msgAppFlowPaused = false
    this.pendingSnapshot = 0
    this.state = state
    this.inflights.reset()
  }

  becomeProbe (): void {
    if (this.state === 'snapshot') {
      // the snapshot, if it landed, is where the follower's log now starts
      const pending = this.pendingSnapshot
      this.resetState('probe')
      this.next = Math.max(this.match + 1, pending + 1)
    } else {
      this.resetState('probe')
      this.next = this.match + 1
    }
  }

  becomeReplicate (): void {
    this.resetState('replicate')
    this.next = this.match + 1
  }

  becomeSnapshot (snapshotIndex: number): void {
    this.resetState('snapshot')
    this.pendingSnapshot = snapshotIndex
  }

  /** Records a MsgApp of `entries` entries (`bytes` of data) sent from `next`. */
  sentEntries (entries: number, bytes: number): void {
    if (this.state === 'replicate') {
      if (entries > 0) {
        this.next += entries
        this.inflights.add(this.next - 1, bytes)
      }
    } else if (this.state === 'probe' && entries > 0) {
      this.msgAppFlowPaused = true
    }
  }

  /** An acknowledgement up to n; false when it tells nothing new. */
  maybeUpdate (n: number): boolean {
    if (this.match >= n) return false
    this.match = n
    this.next = Math.max(this.next, n + 1)
    this.msgAppFlowPaused = false
    return true
  }

  /**
   * A rejection of the MsgApp at `rejected`; moves next back towards the
   * follower's hint. False when the rejection is stale.
   */
  maybeDecrTo (rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false
      this.next = this.match + 1
      return true
    }
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1)
    this.msgAppFlowPaused = false
    return true
  }

  isPaused (): boolean {
    switch (this.state) {
      case 'probe': return this.msgAppFlowPaused
      case 'replicate': return this.inflights.full()
      case 'snapshot': return true
    }
  }
}

export type VoteResult = 'pending' | 'lost' | 'won'

/** The committed index of a majority config: the highest index a majority has matched. */
function majorityCommitted (voters: Set<NodeId>, matchOf: (id: NodeId) => number | undefined): number {
  if (voters.size === 0) return Number.POSITIVE_INFINITY // an empty half of a joint config agrees to anything
  const matched: number[] = []
  for (const id of voters) matched.push(matchOf(id) ?? 0)
  matched.sort((a, b) => a - b)
  return matched[matched.length - (Math.floor(matched.length / 2) + 1)]
}

function majorityVote (voters: Set<NodeId>, votes: Map<NodeId, boolean>): VoteResult {
  if (voters.size === 0) return 'won'
  let yes = 0
  let missing = 0
  for (const id of voters) {
    const v = votes.get(id)
    if (v === undefined) missing++
    else if (v) yes++
  }
  const q = Math.floor(voters.size / 2) + 1
  if (yes >= q) return 'won'
  if (yes + missing >= q) return 'pending'
  return 'lost'
}

/** The membership: voters of the incoming and (when joint) the outgoing config, and learners. */
export interface TrackerConfig {
  voters: [Set<NodeId>, Set<NodeId>]
  learners: Set<NodeId>
  learnersNext: Set<NodeId>
  autoLeave: boolean
}

export function cloneTrackerConfig (c: TrackerConfig): TrackerConfig {
  return {
    voters: [new Set(c.voters[0]), new Set(c.voters[1])],
    learners: new Set(c.learners),
    learnersNext: new Set(c.learnersNext),
    autoLeave: c.autoLeave
  }
}

export function jointCommitted (c: TrackerConfig, matchOf: (id: NodeId) => number | undefined): number {
  const committed = Math.min(majorityCommitted(c.voters[0], matchOf), majorityCommitted(c.voters[1], matchOf))
  return committed === Number.POSITIVE_INFINITY ? 0 : committed
}

export function jointVote (c: TrackerConfig, votes: Map<NodeId, boolean>): VoteResult {
  const r1 = majorityVote(c.voters[0], votes)
  const r2 = majorityVote(c.voters[1], votes)
  if (r1 === r2) return r1
  if (r1 === 'lost' || r2 === 'lost') return 'lost'
  return 'pending'
}

const sorted = (s: Iterable<NodeId>): NodeId[] => [...s].sort()

export class ProgressTracker {
  config: TrackerConfig = { voters: [new Set(), new Set()], learners: new Set(), learnersNext: new Set(), autoLeave: false }
  progress = new Map<NodeId, Progress>()
  votes = new Map<NodeId, boolean>()
  readonly maxInflight: number
  readonly maxInflightBytes: number

  constructor (maxInflight: number, maxInflightBytes: number) {
    this.maxInflight = maxInflight
    this.maxInflightBytes = maxInflightBytes
  }

  newProgress (next: number, isLearner: boolean): Progress {
    return new Progress(next, new Inflights(this.maxInflight, this.maxInflightBytes), isLearner)
  }

  confState (): ConfState {
    return {
      voters: sorted(this.config.voters[0]),
      votersOutgoing: sorted(this.config.voters[1]),
      learners: sorted(this.config.learners),
      learnersNext: sorted(this.config.learnersNext),
      autoLeave: this.config.autoLeave
    }
  }

  isJoint (): boolean {
    return this.config.voters[1].size > 0
  }

  isSingleton (): boolean {
    return this.config.voters[0].size === 1 && this.config.voters[1].size === 0
  }

  isVoter (id: NodeId): boolean {
    return this.config.voters[0].has(id) || this.config.voters[1].has(id)
  }

  /** The highest index that a quorum of voters has in its log. */
  committed (): number {
    return jointCommitted(this.config, id => this.progress.get(id)?.match)
  }

  /** A quorum of voters was heard from recently (the leader itself always counts). */
  quorumActive (self: NodeId): boolean {
    const votes = new Map<NodeId, boolean>()
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue
      votes.set(id, id === self || pr.recentActive)
    }
    return jointVote(this.config, votes) === 'won'
  }

  voterIds (): NodeId[] {
    return sorted(new Set([...this.config.voters[0], ...this.config.voters[1]]))
  }

  /** Every node with a progress, in a stable order so that simulations replay. */
  ids (): NodeId[] {
    return sorted(this.progress.keys())
  }

  resetVotes (): void {
    this.votes.clear()
  }

  recordVote (id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted)
  }

  voteResult (): VoteResult {
    return jointVote(this.config, this.votes)
  }
}
