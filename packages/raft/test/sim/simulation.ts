/**
 * A deterministic simulation of a Raft cluster: RawNodes over a simulated
 * network, all choices drawn from one seed. The harness plays the role of the
 * application around each node, following the Ready contract: persist the
 * snapshot, entries and hard state to the node's "disk" (its MemoryStorage),
 * then send the messages, then apply the snapshot and committed entries, then
 * advance(). A crash keeps the disk and loses everything else, so work a node
 * had not yet taken out of a Ready is lost with it.
 *
 * Safety is checked while the run goes (one leader per term, committed
 * entries never change, applied indexes move forward one by one, leader
 * completeness, snapshots agree) and the clients' history is checked for
 * linearizability at the end. After the faults heal, the cluster must elect a
 * leader, commit a write, hand leadership over and commit again in bounded
 * time (liveness).
 */
import { Buffer } from 'node:buffer'
import { ConfChangeError, MemoryStorage, ProposalDroppedError, RawNode, cloneConfState, decodeConfChange, emptyConfState } from '../../src/index.ts'
import type { ConfChange, ConfState, Entry, Message, MessageType, ReadState, Ready, Snapshot, StateType } from '../../src/types.ts'
import { KvStore, decodeCommand, encodeCommand } from './kv.ts'
import { checkKv } from './linearizability.ts'
import type { KvOperation } from './linearizability.ts'
import { chooseConfChange, describeNetworkFaults, describePartition, drawPartition } from './nemesis.ts'
import { Rng } from './rng.ts'

export interface Scenario {
  seed: number
  nodes: number
  /** Probability that a message is lost. */
  loss: number
  /** Probability that a message is delivered twice. */
  duplicate: number
  /** Messages take 1..maxDelay steps, so they overtake each other. */
  maxDelay: number
  partitions: boolean
  asymmetric: boolean
  crashes: boolean
  /** Probability that a node leaves its Ready for a later step (a slow disk), so a crash finds unpersisted work. */
  slowDisk: number
  membership: 'none' | 'single' | 'joint'
  /** Applied entries between snapshots (0: never compact). */
  compactEvery: number
  transfers: boolean
  preVote: boolean
  checkQuorum: boolean
  /** Small limits make the leader split appends, probe and wait on the flow control. */
  maxSizePerMsg: number
  maxInflightMsgs: number
  maxCommittedSizePerReady: number
  faultSteps: number
  livenessSteps: number
}

const FAULT_KINDS = ['loss', 'duplicate', 'partition', 'asymmetric', 'crash', 'membership', 'joint', 'snapshot'] as const

/** The scenario of a seed: one fault kind always on (by seed modulo, so a range of seeds covers them all), others at random. */
export function scenarioFor (seed: number, nodes?: number): Scenario {
  const rng = new Rng(seed ^ 0x5EED)
  const primary = FAULT_KINDS[seed % FAULT_KINDS.length]
  const on = (kind: typeof FAULT_KINDS[number], p: number): boolean => primary === kind || rng.chance(p)
  const membership = on('joint', 0.15) ? 'joint' : on('membership', 0.2) ? 'single' : 'none'
  const crashes = on('crash', 0.3)
  return {
    seed,
    nodes: nodes ?? rng.pick([3, 3, 3, 5, 5, 7]),
    loss: on('loss', 0.3) ? rng.pick([0.02, 0.05, 0.15]) : 0,
    duplicate: on('duplicate', 0.3) ? rng.pick([0.02, 0.1]) : 0,
    maxDelay: primary === 'duplicate' ? 25 : rng.pick([2, 5, 10]),
    partitions: on('partition', 0.3),
    asymmetric: on('asymmetric', 0.2),
    crashes,
    slowDisk: crashes && rng.chance(0.6) ? 0.3 : 0,
    membership,
    compactEvery: on('snapshot', 0.4) ? rng.pick([3, 8, 20]) : 0,
    transfers: rng.chance(0.4),
    preVote: rng.chance(0.75),
    checkQuorum: rng.chance(0.75),
    maxSizePerMsg: rng.pick([1024 * 1024, 300]),
    maxInflightMsgs: rng.pick([256, 4, 1]),
    maxCommittedSizePerReady: rng.pick([64 * 1024 * 1024, 300]),
    faultSteps: 5000,
    livenessSteps: 3000
  }
}

export function describeScenario (s: Scenario): string {
  const parts = [`${s.nodes} nodes`, ...describeNetworkFaults(s, `delay 1..${s.maxDelay}`)]
  if (s.crashes) parts.push(`crashes (slow disk ${s.slowDisk})`)
  if (s.membership !== 'none') parts.push(`membership ${s.membership}`)
  if (s.compactEvery > 0) parts.push(`compact every ${s.compactEvery}`)
  if (s.transfers) parts.push('transfers')
  parts.push(s.preVote ? 'prevote' : 'no prevote', s.checkQuorum ? 'checkquorum' : 'no checkquorum')
  if (s.maxSizePerMsg < 1024 || s.maxInflightMsgs < 256 || s.maxCommittedSizePerReady < 1024) {
    parts.push(`limits msg ${s.maxSizePerMsg} B, inflight ${s.maxInflightMsgs}, ready ${s.maxCommittedSizePerReady} B`)
  }
  return parts.join(', ')
}

export interface SeedResult {
  seed: number
  scenario: Scenario
  /** Safety and linearizability violations. */
  violations: string[]
  liveness: string[]
  /** The linearizability search ran out of budget: not a violation, but not checked either. */
  inconclusive: boolean
  history: KvOperation[]
  stats: Record<string, number>
}

export interface RunOptions {
  nodes?: number
  /**
   * Breaks the harness on purpose, to show the checks catch it: 'forget-vote'
   * never persists the hard state, 'early-read' answers reads without waiting
   * for the ReadState's index to be applied.
   */
  sabotage?: 'forget-vote' | 'early-read'

  /** Receives the trace of a verbose replay. */
  trace?: (line: string) => void
}

interface PendingRead {
  client: Client
  seq: number
  key: string
  call: number
  /** The ReadState's index, once it has come. */
  index: number | undefined
}

interface SimNode {
  id: string
  /** Ticks every `period` steps: clocks run at different rates. */
  period: number
  phase: number
  random: Rng
  /** The disk: only what the harness persisted from a Ready. */
  storage: MemoryStorage
  raw: RawNode | undefined
  kv: KvStore
  confState: ConfState
  applied: number
  term: number
  lead: string
  state: StateType
  retired: boolean
  downUntil: number
  reads: Map<string, PendingRead>
}

interface ClientOp {
  op: KvOperation
  seq: number
  node: string
  deadline: number
}

interface Client {
  id: string
  seq: number
  /** Where the client believes the leader is. */
  hint: string
  pending: ClientOp | undefined
}

interface Committed {
  term: number
  key: string
  /** The highest term any leader had when the entry was first applied: leaders of later terms must hold it. */
  leaderTermBound: number
}

class Violation extends Error {}

const LEADER_ONLY: ReadonlySet<MessageType> = new Set(['MsgApp', 'MsgSnap', 'MsgHeartbeat', 'MsgTimeoutNow'])
const KEYS = ['a', 'b', 'c']
const CLIENTS = 5
const OP_RATE = 0.05
/**
 * A node ticks every MIN_PERIOD..MAX_PERIOD steps. Clocks at different rates
 * test the election timer, but a node ticking twice as fast as another with a
 * stale log could win every timeout race without pre-vote, a liveness limit of
 * Raft rather than a bug, so the skew stays below 2.
 */
const MIN_PERIOD = 4
const MAX_PERIOD = 6
const OP_TIMEOUT = 500
const SPARE_IDS = 3
const encoder = new TextEncoder()
const decoder = new TextDecoder()

function entryKey (e: Entry): string {
  return `${e.type}:${Buffer.from(e.data).toString('latin1')}`
}

function cloneEntry (e: Entry): Entry {
  return { term: e.term, index: e.index, type: e.type, data: e.data.slice() }
}

function cloneSnapshot (s: Snapshot): Snapshot {
  return { metadata: { index: s.metadata.index, term: s.metadata.term, confState: cloneConfState(s.metadata.confState) }, data: s.data.slice() }
}

/** What a real transport would do: the receiver gets its own copy. */
function cloneMessage (m: Message): Message {
  const copy: Message = { ...m, entries: m.entries.map(cloneEntry) }
  if (m.snapshot !== undefined) copy.snapshot = cloneSnapshot(m.snapshot)
  if (m.context !== undefined) copy.context = m.context.slice()
  return copy
}

/** The disk as it is at the crash, copied so that the restarted node shares nothing with the dead one. */
function cloneStorage (s: MemoryStorage): MemoryStorage {
  const snap = s.snapshot()
  const c = new MemoryStorage(snap.metadata.index === 0 ? snap.metadata.confState : emptyConfState())
  if (snap.metadata.index > 0) c.applySnapshot(cloneSnapshot(snap))
  if (s.lastIndex() >= s.firstIndex()) c.append(s.entries(s.firstIndex(), s.lastIndex() + 1).map(cloneEntry))
  c.setHardState(s.initialState().hardState)
  return c
}

function inConfig (cs: ConfState, id: string): boolean {
  return cs.voters.includes(id) || cs.learners.includes(id) || cs.votersOutgoing.includes(id) || cs.learnersNext.includes(id)
}

function fmtConf (cs: ConfState): string {
  const out = cs.votersOutgoing.length > 0 ? ` && (${cs.votersOutgoing.join(',')})` : ''
  const lrn = cs.learners.length > 0 ? ` learners ${cs.learners.join(',')}` : ''
  const next = cs.learnersNext.length > 0 ? ` learnersNext ${cs.learnersNext.join(',')}` : ''
  return `voters (${cs.voters.join(',')})${out}${lrn}${next}${cs.autoLeave ? ' autoLeave' : ''}`
}

/** fmtConf(a) === fmtConf(b) without building the strings: it runs after every Ready. */
function sameConf (a: ConfState, b: ConfState): boolean {
  const same = (x: string[], y: string[]): boolean => x.length === y.length && x.every((id, i) => id === y[i])
  return a.autoLeave === b.autoLeave && same(a.voters, b.voters) && same(a.votersOutgoing, b.votersOutgoing) &&
    same(a.learners, b.learners) && same(a.learnersNext, b.learnersNext)
}

function fmtMessage (m: Message): string {
  const ents = m.entries.length > 0 ? ` ents ${m.entries[0].index}..${m.entries[m.entries.length - 1].index}` : ''
  const snap = m.snapshot !== undefined ? ` snap ${m.snapshot.metadata.index}@${m.snapshot.metadata.term}` : ''
  return `${m.type} ${m.from}->${m.to} t${m.term} lt${m.logTerm} i${m.index} c${m.commit}${m.reject ? ` reject hint ${m.rejectHint}` : ''}${ents}${snap}`
}

export class Simulation {
  private readonly scenario: Scenario
  private readonly sc: Scenario
  private readonly trace: ((line: string) => void) | undefined
  private readonly sabotage: RunOptions['sabotage']
  private readonly net: Rng
  private readonly faults: Rng
  private readonly clientRng: Rng
  private readonly member: Rng
  private readonly nodeRng: Rng
  private step = 0
  private subStep = 0
  private readonly nodes = new Map<string, SimNode>()
  private nextId: number
  private readonly inflight = new Map<number, Message[]>()
  /** Blocked directed links, as "from>to". */
  private readonly blocked = new Set<string>()
  private partitionEnds = 0
  /** Snapshot and unreachable reports, given to the sender at the next step, not inside its Ready handling. */
  private reports: Array<() => void> = []
  private readonly clients: Client[] = []
  private readonly history: KvOperation[] = []
  private readonly committed = new Map<number, Committed>()
  private readonly snapshots = new Map<number, string>()
  private readonly leaderOf = new Map<number, string>()
  private maxLeaderTerm = 0
  private readonly genesis: ConfState
  private readonly everMember = new Set<string>()
  /** Index of the latest configuration applied anywhere: replays of older ones say nothing new. */
  private lastConfIndex = 0
  private readonly toRetire = new Set<string>()
  private confProposedAt = -Infinity
  private confSeen = ''
  private nextConfAt = 100
  private livenessPhase: 'write' | 'transfer' | 'write-after-transfer' | 'done' = 'write'
  private transferTarget = ''
  private transferAt = 0
  /** Writes of the liveness check applied at the node they were proposed to. */
  private finalWrites = 0
  private readonly finalClient: Client = { id: 'final', seq: 0, hint: '', pending: undefined }
  private readonly stats: Record<string, number> = {
    crashes: 0, partitions: 0, snapshotsSent: 0, snapshotsApplied: 0, compactions: 0, confChanges: 0, transfers: 0, elections: 0
  }

  constructor (sc: Scenario, opts: RunOptions = {}) {
    this.scenario = sc
    // a copy, because healing turns the faults off
    this.sc = { ...sc }
    this.trace = opts.trace
    this.sabotage = opts.sabotage
    const root = new Rng(sc.seed)
    this.net = root.fork(1)
    this.faults = root.fork(2)
    this.clientRng = root.fork(3)
    this.member = root.fork(4)
    this.nodeRng = root.fork(5)
    const voters = Array.from({ length: sc.nodes }, (_, i) => String(i + 1))
    this.nextId = sc.nodes + 1
    // every node, a later joiner too, starts from the same genesis: membership at index 0
    // and an empty log, so the log replayed from index 1 rebuilds the same configurations
    this.genesis = { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }
    for (const id of voters) {
      this.addNode(id)
      this.everMember.add(id)
    }
    this.snapshots.set(0, Buffer.from(new KvStore().serialize()).toString('latin1'))
    for (let i = 0; i < CLIENTS; i++) this.clients.push({ id: `c${i + 1}`, seq: 0, hint: '', pending: undefined })
  }

  private log (line: () => string): void {
    if (this.trace !== undefined) this.trace(`[${this.step}] ${line()}`)
  }

  private fail (what: string): never {
    throw new Violation(`step ${this.step}: ${what}`)
  }

  /** Event times of the history: ordered within a step, readable as step * 1000 + n. */
  private now (): number {
    return this.step * 1000 + this.subStep++
  }

  private addNode (id: string): SimNode {
    const period = this.nodeRng.int(MIN_PERIOD, MAX_PERIOD)
    const n: SimNode = {
      id,
      period,
      phase: this.nodeRng.int(0, period - 1),
      random: this.nodeRng.fork(Number(id)),
      storage: new MemoryStorage(this.genesis),
      raw: undefined,
      kv: new KvStore(),
      confState: emptyConfState(),
      applied: 0,
      term: 0,
      lead: '',
      state: 'follower',
      retired: false,
      downUntil: 0,
      reads: new Map()
    }
    this.nodes.set(id, n)
    this.startNode(n)
    return n
  }

  /** Builds the node from its disk: membership and state machine from the snapshot, the rest replayed from the log. */
  private startNode (n: SimNode): void {
    const snap = n.storage.snapshot()
    n.raw = new RawNode({
      id: n.id,
      storage: n.storage,
      electionTick: 10,
      heartbeatTick: 1,
      applied: snap.metadata.index,
      random: () => n.random.next(),
      preVote: this.sc.preVote,
      checkQuorum: this.sc.checkQuorum,
      maxSizePerMsg: this.sc.maxSizePerMsg,
      maxInflightMsgs: this.sc.maxInflightMsgs,
      maxCommittedSizePerReady: this.sc.maxCommittedSizePerReady
    })
    n.kv = KvStore.restore(snap.data)
    n.confState = cloneConfState(snap.metadata.confState)
    n.applied = snap.metadata.index
    n.term = n.storage.initialState().hardState.term
    n.lead = ''
    n.state = 'follower'
    n.reads.clear()
    this.log(() => `start ${n.id}: applied ${n.applied}, log ${n.storage.firstIndex()}..${n.storage.lastIndex()}, term ${n.term}, tick every ${n.period}`)
  }

  private crash (n: SimNode): void {
    n.raw = undefined
    n.storage = cloneStorage(n.storage)
    n.reads.clear()
    n.state = 'follower'
    n.downUntil = this.step + this.faults.int(40, 1000)
    this.stats.crashes++
    this.log(() => `crash ${n.id} until ${n.downUntil}: disk has log ${n.storage.firstIndex()}..${n.storage.lastIndex()}, ${JSON.stringify(n.storage.initialState().hardState)}`)
  }

  run (): SeedResult {
    const violations: string[] = []
    const liveness: string[] = []
    const end = this.sc.faultSteps + this.sc.livenessSteps
    try {
      for (this.step = 0; this.step < end && this.livenessPhase !== 'done'; this.step++) {
        this.subStep = 0
        if (this.step === this.sc.faultSteps) this.heal()
        this.oneStep()
      }
      if (this.livenessPhase !== 'done') {
        const leader = this.currentLeader()
        liveness.push(`no progress within ${this.sc.livenessSteps} steps after the faults healed: stuck in phase '${this.livenessPhase}'` +
          `${this.livenessPhase === 'write' ? '' : ` (transfer to ${this.transferTarget})`}, leader ${leader?.id ?? 'none'}` +
          `, nodes ${[...this.nodes.values()].map(n => `${n.id}:${n.retired ? 'retired' : n.raw === undefined ? 'down' : `${n.state}/t${n.term}/a${n.applied}`}`).join(' ')}`)
      }
    } catch (err) {
      // anything thrown out of the library fails the seed, with the stack to find where
      violations.push(err instanceof Violation ? err.message : `step ${this.step}: threw ${(err as Error).stack ?? String(err)}`)
    }
    for (const c of [...this.clients, this.finalClient]) this.timeoutOp(c)
    let inconclusive = false
    if (violations.length === 0) {
      const r = checkKv(this.history)
      if (!r.ok) violations.push(`history not linearizable on key ${r.key ?? '?'}: ${r.explanation ?? ''}`)
      inconclusive = r.inconclusive === true
    }
    const ops = this.history.length
    const unknown = this.history.filter(op => op.ret === Infinity).length
    return { seed: this.sc.seed, scenario: this.scenario, violations, liveness, inconclusive, history: this.history, stats: { ...this.stats, steps: this.step, ops, unknown } }
  }

  private oneStep (): void {
    const reports = this.reports
    this.reports = []
    for (const r of reports) r()
    if (this.step < this.sc.faultSteps) this.injectFaults()
    for (const n of this.nodes.values()) {
      if (n.raw === undefined && !n.retired && this.step >= n.downUntil) this.startNode(n)
    }
    this.deliver()
    for (const n of this.nodes.values()) {
      if (n.raw !== undefined && (this.step + n.phase) % n.period === 0) n.raw.tick()
    }
    this.clientsAct()
    this.membership()
    if (this.step >= this.sc.faultSteps) this.livenessAct()
    for (const n of this.nodes.values()) {
      if (n.raw !== undefined && !this.faults.chance(this.sc.slowDisk)) this.handleReady(n)
    }
    for (const id of this.toRetire) this.retire(id)
    this.toRetire.clear()
  }

  // ---- network

  private send (m: Message): void {
    if (LEADER_ONLY.has(m.type)) {
      // a node may win and lose an election between two Readys, so sending as leader is what counts
      const leader = this.leaderOf.get(m.term)
      if (leader === undefined) {
        this.leaderOf.set(m.term, m.from)
        this.maxLeaderTerm = Math.max(this.maxLeaderTerm, m.term)
      } else if (leader !== m.from) this.fail(`two leaders in term ${m.term}: ${leader} and ${m.from} (sent ${fmtMessage(m)})`)
    }
    if (m.type === 'MsgSnap') this.stats.snapshotsSent++
    if (this.blocked.has(`${m.from}>${m.to}`) || this.net.chance(this.sc.loss)) {
      this.log(() => `lost ${fmtMessage(m)}`)
      this.reportLost(m)
      return
    }
    const copies = this.net.chance(this.sc.duplicate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      const at = this.step + this.net.int(1, this.sc.maxDelay)
      const bucket = this.inflight.get(at)
      if (bucket === undefined) this.inflight.set(at, [m])
      else bucket.push(m)
    }
  }

  /** The transport tells the sender what it knows: a snapshot that did not arrive, a peer it cannot reach. */
  private reportLost (m: Message): void {
    this.reports.push(() => {
      const from = this.nodes.get(m.from)?.raw
      if (from === undefined) return
      if (m.type === 'MsgSnap') from.reportSnapshot(m.to, true)
      else if (m.type === 'MsgApp' && this.blocked.has(`${m.from}>${m.to}`)) from.reportUnreachable(m.to)
    })
  }

  private deliver (): void {
    const due = this.inflight.get(this.step)
    if (due === undefined) return
    this.inflight.delete(this.step)
    for (let i = due.length - 1; i > 0; i--) {
      const j = this.net.int(0, i)
      ;[due[i], due[j]] = [due[j], due[i]]
    }
    for (const m of due) {
      const to = this.nodes.get(m.to)
      // a partition that starts while a message is in flight catches it too
      if (to?.raw === undefined || this.blocked.has(`${m.from}>${m.to}`)) {
        this.reportLost(m)
        continue
      }
      this.log(() => `deliver ${fmtMessage(m)}`)
      try {
        to.raw.step(cloneMessage(m))
      } catch (err) {
        this.fail(`${to.id} threw on ${fmtMessage(m)}: ${(err as Error).stack ?? String(err)}`)
      }
      if (m.type === 'MsgSnap') {
        this.reports.push(() => this.nodes.get(m.from)?.raw?.reportSnapshot(m.to, false))
      }
    }
  }

  // ---- faults

  private injectFaults (): void {
    const f = this.faults
    const live = [...this.nodes.values()].filter(n => !n.retired)
    if (this.blocked.size > 0 && this.step >= this.partitionEnds) {
      this.blocked.clear()
      this.log(() => 'partition healed')
    }
    if (this.blocked.size === 0 && (this.sc.partitions || this.sc.asymmetric) && f.chance(0.0025)) {
      const p = drawPartition(f, live.map(n => n.id), this.currentLeader()?.id, this.sc)
      for (const link of p.links) this.blocked.add(link)
      this.partitionEnds = this.step + f.int(80, 1200)
      this.stats.partitions++
      this.log(() => `partition until ${this.partitionEnds}${describePartition(p)}; blocked ${[...this.blocked].join(' ')}`)
    }
    if (this.sc.crashes && f.chance(0.002)) {
      const up = live.filter(n => n.raw !== undefined)
      if (up.length > 0) this.crash(f.pick(up))
    }
    if (this.sc.transfers && f.chance(0.001)) this.transfer(f)
  }

  private transfer (f: Rng): string | undefined {
    const leader = this.currentLeader()
    if (leader?.raw === undefined) return undefined
    const targets = leader.confState.voters.filter(id => id !== leader.id && this.nodes.get(id)?.raw !== undefined)
    if (targets.length === 0) return undefined
    const target = f.pick(targets)
    this.log(() => `transfer leadership ${leader.id} -> ${target}`)
    leader.raw.transferLeader(target)
    this.stats.transfers++
    return target
  }

  /** The end of the faults: links heal, messages flow promptly, crashed nodes come back. */
  private heal (): void {
    this.blocked.clear()
    this.sc.loss = 0
    this.sc.duplicate = 0
    this.sc.slowDisk = 0
    this.sc.maxDelay = Math.min(this.sc.maxDelay, 5)
    for (const n of this.nodes.values()) n.downUntil = Math.min(n.downUntil, this.step)
    this.log(() => 'faults healed')
  }

  private currentLeader (): SimNode | undefined {
    let best: SimNode | undefined
    for (const n of this.nodes.values()) {
      if (n.raw !== undefined && n.state === 'leader' && (best === undefined || n.term > best.term)) best = n
    }
    return best
  }

  // ---- the Ready loop

  private handleReady (n: SimNode): void {
    // bounded: each round hands over what the previous one produced
    for (let round = 0; round < 8 && n.raw?.hasReady() === true; round++) {
      const rd = n.raw.ready()
      this.persist(n, rd)
      if (rd.softState !== undefined) this.softState(n, rd)
      for (const m of rd.messages) this.send(m)
      if (rd.snapshot !== undefined) this.applySnapshot(n, rd.snapshot)
      for (const e of rd.committedEntries) this.applyEntry(n, e)
      for (const rs of rd.readStates) this.readState(n, rs)
      n.raw.advance()
      this.completeReads(n)
      this.maybeCompact(n)
    }
  }

  private persist (n: SimNode, rd: Ready): void {
    const before = n.storage.initialState().hardState
    if (rd.hardState !== undefined) {
      const hs = rd.hardState
      if (hs.term < before.term) this.fail(`${n.id} persisted term ${hs.term} after ${before.term}`)
      if (hs.term === before.term && before.vote !== '' && hs.vote !== before.vote) this.fail(`${n.id} changed its vote in term ${hs.term} from ${before.vote} to ${hs.vote}`)
      if (hs.commit < before.commit) this.fail(`${n.id} persisted commit ${hs.commit} after ${before.commit}`)
    }
    const stillLeader = n.state === 'leader' && (rd.softState === undefined || rd.softState.raftState === 'leader') &&
      (rd.hardState === undefined || rd.hardState.term === n.term)
    if (stillLeader && rd.entries.length > 0 && rd.entries[0].index <= n.storage.lastIndex()) {
      this.fail(`leader ${n.id} overwrote its log from index ${rd.entries[0].index} (last ${n.storage.lastIndex()})`)
    }
    if (rd.snapshot !== undefined) n.storage.applySnapshot(rd.snapshot)
    n.storage.append(rd.entries)
    if (rd.hardState !== undefined) {
      if (this.sabotage !== 'forget-vote') n.storage.setHardState(rd.hardState)
      n.term = rd.hardState.term
    }
  }

  private softState (n: SimNode, rd: Ready): void {
    const ss = rd.softState
    if (ss === undefined) return
    const was = n.state
    n.lead = ss.lead
    n.state = ss.raftState
    if (ss.raftState !== 'leader' || was === 'leader') return
    const term = n.term
    const other = this.leaderOf.get(term)
    if (other !== undefined && other !== n.id) this.fail(`two leaders in term ${term}: ${other} and ${n.id}`)
    this.leaderOf.set(term, n.id)
    this.maxLeaderTerm = Math.max(this.maxLeaderTerm, term)
    this.stats.elections++
    this.log(() => `${n.id} is leader in term ${term}, log ${n.storage.firstIndex()}..${n.storage.lastIndex()}`)
    // leader completeness: every entry committed before this term began is in the new leader's log
    for (const [index, c] of this.committed) {
      if (c.leaderTermBound >= term || index < n.storage.firstIndex()) continue
      if (index > n.storage.lastIndex() || n.storage.term(index) !== c.term) {
        this.fail(`leader ${n.id} of term ${term} lacks committed entry ${index}@${c.term} (its log ends at ${n.storage.lastIndex()})`)
      }
    }
  }

  private applySnapshot (n: SimNode, snap: Snapshot): void {
    const { index, term } = snap.metadata
    if (index <= n.applied) this.fail(`${n.id} was given snapshot ${index} after applying ${n.applied}`)
    this.checkSnapshot(n, index, snap.data)
    const c = this.committed.get(index)
    if (c !== undefined && c.term !== term) this.fail(`${n.id} got snapshot ${index}@${term} but entry ${index} was committed in term ${c.term}`)
    n.kv = KvStore.restore(snap.data)
    n.confState = cloneConfState(snap.metadata.confState)
    n.applied = index
    this.stats.snapshotsApplied++
    this.log(() => `${n.id} applied snapshot ${index}@${term}: ${fmtConf(n.confState)}`)
  }

  /** State machine safety for snapshots: every node's state at an index is the same. */
  private checkSnapshot (n: SimNode, index: number, data: Uint8Array): void {
    const key = Buffer.from(data).toString('latin1')
    const known = this.snapshots.get(index)
    if (known === undefined) this.snapshots.set(index, key)
    else if (known !== key) this.fail(`${n.id} state at index ${index} differs from another node's: ${key} vs ${known}`)
  }

  private applyEntry (n: SimNode, e: Entry): void {
    if (e.index !== n.applied + 1) this.fail(`${n.id} applied entry ${e.index} after ${n.applied}`)
    const key = entryKey(e)
    const known = this.committed.get(e.index)
    if (known === undefined) this.committed.set(e.index, { term: e.term, key, leaderTermBound: this.maxLeaderTerm })
    else if (known.term !== e.term || known.key !== key) {
      this.fail(`${n.id} applied entry ${e.index}@${e.term} ${key} but ${e.index}@${known.term} ${known.key} was applied before`)
    }
    n.applied = e.index
    if (e.type === 'conf-change') {
      const cc = decodeConfChange(e.data)
      try {
        n.confState = (n.raw as RawNode).applyConfChange(cc)
      } catch (err) {
        this.fail(`${n.id} failed to apply conf change ${JSON.stringify(cc)} at ${e.index}: ${(err as Error).message}`)
      }
      this.log(() => `${n.id} applied conf change ${e.index} ${JSON.stringify(cc.changes)}: ${fmtConf(n.confState)}`)
      if (e.index > this.lastConfIndex) {
        this.lastConfIndex = e.index
        this.confApplied(n)
      }
      return
    }
    if (e.data.byteLength === 0) return
    const cmd = decodeCommand(e.data)
    const outcome = n.kv.apply(cmd)
    this.log(() => `${n.id} applied ${e.index}@${e.term} put(${cmd.k}, ${cmd.v}) from ${cmd.c}#${cmd.s}: ${outcome}`)
    const client = cmd.c === this.finalClient.id ? this.finalClient : this.clients.find(c => c.id === cmd.c)
    const p = client?.pending
    if (client !== undefined && p !== undefined && p.seq === cmd.s && p.node === n.id && p.op.input.kind === 'put') {
      p.op.ret = this.now()
      this.history.push(p.op)
      client.pending = undefined
      client.hint = n.lead
      if (client === this.finalClient) this.finalWrites++
    }
  }

  private confApplied (n: SimNode): void {
    for (const id of [...n.confState.voters, ...n.confState.learners, ...n.confState.votersOutgoing]) this.everMember.add(id)
    // a member gone from a committed configuration is shut down by its operator
    for (const id of this.everMember) {
      if (!inConfig(n.confState, id) && this.nodes.get(id)?.retired === false) this.toRetire.add(id)
    }
  }

  private retire (id: string): void {
    const n = this.nodes.get(id)
    if (n === undefined || n.retired) return
    n.retired = true
    n.raw = undefined
    n.reads.clear()
    this.log(() => `retire ${id}: removed from the configuration`)
  }

  /**
   * Snapshots every compactEvery applied entries, and also as soon as the
   * membership differs from the last snapshot's: a node refuses a snapshot
   * whose configuration does not include it, so a joiner could otherwise wait
   * forever for a snapshot newer than its addition in an idle cluster.
   */
  private maybeCompact (n: SimNode): void {
    const last = n.storage.snapshot().metadata
    if (this.sc.compactEvery === 0 || n.applied === last.index) return
    if (n.applied - last.index < this.sc.compactEvery && sameConf(last.confState, n.confState)) return
    const data = n.kv.serialize()
    this.checkSnapshot(n, n.applied, data)
    n.storage.createSnapshot(n.applied, n.confState, data)
    // keep a short tail of the log, so a follower just behind gets entries rather than a snapshot
    const upTo = n.applied - (this.sc.seed % 3)
    if (upTo > n.storage.firstIndex() - 1) n.storage.compact(upTo)
    this.stats.compactions++
    this.log(() => `${n.id} snapshot at ${n.applied}, log now ${n.storage.firstIndex()}..${n.storage.lastIndex()}`)
  }

  // ---- clients

  private clientsAct (): void {
    for (const c of this.clients) {
      if (c.pending !== undefined && this.step >= c.pending.deadline) this.timeoutOp(c)
      if (c.pending === undefined && this.step < this.sc.faultSteps && this.clientRng.chance(OP_RATE)) this.startOp(c)
    }
    const f = this.finalClient
    if (f.pending !== undefined && this.step >= f.pending.deadline) this.timeoutOp(f)
  }

  /** A write with no answer may or may not have happened; a read with no answer had no effect and is forgotten. */
  private timeoutOp (c: Client): void {
    const p = c.pending
    if (p === undefined) return
    c.pending = undefined
    if (p.op.input.kind === 'put') this.history.push(p.op)
    else this.nodes.get(p.node)?.reads.delete(`${c.id}:${p.seq}`)
    this.log(() => `${c.id}#${p.seq} ${p.op.input.kind} timed out at ${p.node}`)
  }

  private startOp (c: Client): void {
    const up = [...this.nodes.values()].filter(n => n.raw !== undefined)
    if (up.length === 0) return
    const hinted = this.nodes.get(c.hint)
    const n = hinted?.raw !== undefined && this.clientRng.chance(0.7) ? hinted : this.clientRng.pick(up)
    const key = this.clientRng.pick(KEYS)
    if (this.clientRng.chance(0.5)) this.write(c, n, key)
    else this.read(c, n, key)
  }

  private write (c: Client, n: SimNode, key: string): void {
    const seq = ++c.seq
    const value = `${c.id}.${seq}`
    const op: KvOperation = { client: c.id, input: { kind: 'put', key, value }, output: null, call: this.now(), ret: Infinity }
    this.log(() => `${c.id}#${seq} put(${key}, ${value}) at ${n.id}`)
    try {
      ;(n.raw as RawNode).propose(encodeCommand({ c: c.id, s: seq, k: key, v: value }))
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err
      this.log(() => `${c.id}#${seq} dropped at ${n.id}: ${err.message}`)
      this.history.push(op)
      c.hint = err.leader
      return
    }
    c.pending = { op, seq, node: n.id, deadline: this.step + OP_TIMEOUT }
  }

  private read (c: Client, n: SimNode, key: string): void {
    const seq = ++c.seq
    const ctx = `${c.id}:${seq}`
    const op: KvOperation = { client: c.id, input: { kind: 'get', key }, output: null, call: this.now(), ret: Infinity }
    this.log(() => `${c.id}#${seq} get(${key}) at ${n.id}`)
    try {
      ;(n.raw as RawNode).readIndex(encoder.encode(ctx))
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err
      c.hint = err.leader
      return
    }
    n.reads.set(ctx, { client: c, seq, key, call: op.call, index: undefined })
    c.pending = { op, seq, node: n.id, deadline: this.step + OP_TIMEOUT }
  }

  private readState (n: SimNode, rs: ReadState): void {
    const r = n.reads.get(decoder.decode(rs.requestCtx))
    if (r !== undefined && r.index === undefined) r.index = rs.index
  }

  /** A read answers from the local state machine once it has applied up to the ReadState's index. */
  private completeReads (n: SimNode): void {
    for (const [ctx, r] of n.reads) {
      if (r.index === undefined || (r.index > n.applied && this.sabotage !== 'early-read')) continue
      n.reads.delete(ctx)
      const p = r.client.pending
      if (p === undefined || p.seq !== r.seq) continue
      p.op.output = n.kv.get(r.key)
      p.op.ret = this.now()
      this.history.push(p.op)
      r.client.pending = undefined
      r.client.hint = n.lead
      this.log(() => `${r.client.id}#${r.seq} get(${r.key}) -> ${p.op.output ?? 'nil'} at ${n.id} (read index ${r.index ?? '?'}, applied ${n.applied})`)
    }
  }

  // ---- membership

  private membership (): void {
    if (this.sc.membership === 'none' || this.step < this.nextConfAt) return
    const leader = this.currentLeader()
    if (leader?.raw === undefined) return
    const cfg = leader.raw.status().config
    const seen = fmtConf(cfg)
    // one change at a time: wait until the last one shows in the leader's configuration, or give up on it
    if (this.step - this.confProposedAt < 1200 && seen === this.confSeen) return
    this.nextConfAt = this.step + this.member.int(100, 800)
    const cc = this.chooseConfChange(cfg)
    if (cc === undefined) return
    this.log(() => `propose conf change at ${leader.id} ${JSON.stringify(cc)} on ${seen}`)
    try {
      leader.raw.proposeConfChange(cc)
    } catch (err) {
      // refused while the previous change is unapplied or when it does not fit: try again later
      if (!(err instanceof ProposalDroppedError) && !(err instanceof ConfChangeError)) throw err
      this.log(() => `conf change refused: ${(err as Error).message}`)
      return
    }
    this.stats.confChanges++
    this.confProposedAt = this.step
    this.confSeen = seen
  }

  private chooseConfChange (cfg: ConfState): ConfChange | undefined {
    // after the faults only an unfinished joint configuration is still worked on
    if (this.step >= this.sc.faultSteps && cfg.votersOutgoing.length === 0) return undefined
    const fresh = (): string => {
      const id = String(this.nextId++)
      // the new member starts from the genesis and learns the rest from the log or a snapshot
      this.addNode(id)
      return id
    }
    return chooseConfChange(this.member, cfg, this.sc.membership === 'joint' ? 0.5 : 0, this.nextId <= this.sc.nodes + SPARE_IDS ? fresh : undefined)
  }

  // ---- liveness after the faults

  private livenessAct (): void {
    if (this.finalClient.pending !== undefined) return
    const leader = this.currentLeader()
    if (leader?.raw === undefined) return
    switch (this.livenessPhase) {
      case 'write':
        if (this.finalWrites === 0) this.write(this.finalClient, leader, 'a')
        else this.livenessPhase = this.sc.transfers ? 'transfer' : 'done'
        return
      case 'transfer':
        if (leader.id === this.transferTarget) {
          this.livenessPhase = 'write-after-transfer'
          return
        }
        // a transfer to a node that is behind may be aborted: ask again now and then
        if (this.transferTarget === '' || this.step - this.transferAt > 400) {
          this.transferTarget = this.transfer(this.faults) ?? ''
          this.transferAt = this.step
        }
        return
      case 'write-after-transfer':
        if (this.finalWrites === 1) this.write(this.finalClient, leader, 'a')
        else this.livenessPhase = 'done'
    }
  }
}

export function runSeed (seed: number, opts: RunOptions = {}): SeedResult {
  return new Simulation(scenarioFor(seed, opts.nodes), opts).run()
}
