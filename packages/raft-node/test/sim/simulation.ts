/**
 * A deterministic simulation of raft-node as the daemon runs it: the real
 * driver (RaftNode) and the real storage (write-ahead log and snapshots),
 * each node a simulated process over a simulated disk (disk.ts), talking
 * through a simulated network (network.ts), in virtual time (scheduler.ts).
 * Every choice is drawn from the seed, so a seed replays exactly.
 *
 * Clients write (unconditionally and compare-and-set on versions) and read
 * (through the driver's read barrier) while the nemesis partitions, loses,
 * delays and duplicates messages, kills processes (the kernel keeps what they
 * wrote), restarts them, cuts the power (only what was synced stays, the last
 * change torn), moves leadership and changes membership. A client retries an
 * operation, under the same id, only when the driver says that is safe
 * (NotLeaderError, ProposalLostError).
 *
 * Checked while it runs: one leader per term; every node applies the same
 * command at an index and holds the same state after it; no operation is
 * applied twice in a node's state; a follower's acknowledgement and a vote
 * are synced before they are sent; a reopened storage holds everything it
 * acknowledged as synced. At the end, after the faults heal: the cluster
 * elects a leader, commits a write and catches every node up (liveness);
 * every operation applied anywhere, every acknowledged write among them, is
 * in the final state; and the clients' history is linearizable.
 */
import { checkLinearizable } from '../../../raft/test/sim/linearizability.ts'
import { chooseConfChange, describeNetworkFaults, describePartition, drawPartition } from '../../../raft/test/sim/nemesis.ts'
import { Rng } from '../../../raft/test/sim/rng.ts'
import { createRaftNode } from '../../src/driver.ts'
import { openRaftStorage } from '../../src/storage.ts'
import { SimDisk } from './disk.ts'
import { SimNetwork } from './network.ts'
import { Process, Scheduler } from './scheduler.ts'
import { ApplyLedger, VersionedKv, encodeCommand, versionedKvModel } from './versioned-kv.ts'
import type { RaftNode } from '../../src/driver.ts'
import type { RaftStorage } from '../../src/storage.ts'
import type { KvInput, KvOperation } from './versioned-kv.ts'
import type { ConfState, Entry, HardState, Message, Snapshot } from '@node-daemon/raft'

export interface DriverScenario {
  seed: number
  nodes: number
  loss: number
  duplicate: number
  /** Milliseconds a message takes, at most. */
  maxDelay: number
  partitions: boolean
  asymmetric: boolean
  /** Processes killed: what they wrote stays in the page cache. */
  kills: boolean
  /** Power lost under a node: what was not synced is lost, the last change torn. */
  powerLoss: boolean
  /** Milliseconds an fsync takes, at most. */
  syncMs: number
  /** Applied entries between snapshots (0: never). */
  snapshotEvery: number
  snapshotKeepEntries: number
  segmentBytes: number
  transfers: boolean
  /** Learners added and promoted, voters demoted and removed, one at a time or jointly, as the cluster's operator does. */
  membership: boolean
  preVote: boolean
  checkQuorum: boolean
  keys: number
  clients: number
  faultMs: number
  livenessMs: number
}

export interface DriverRunOptions {
  nodes?: number
  /**
   * Breaks something on purpose, to show the checks catch it:
   * 'duplicate-proposals' lets the network deliver a MsgProp twice,
   * 'skip-fsync' acknowledges saves without syncing them,
   * 'dirty-read' answers reads without the driver's read barrier.
   */
  sabotage?: 'duplicate-proposals' | 'skip-fsync' | 'dirty-read'
  /** Receives the trace of a verbose replay. */
  trace?: (line: string) => void
}

export interface DriverSeedResult {
  seed: number
  scenario: DriverScenario
  violations: string[]
  liveness: string[]
  /** The linearizability search ran out of budget: not a violation, but not checked either. */
  inconclusive: boolean
  stats: Record<string, number>
}

const FAULT_KINDS = ['loss', 'duplicate', 'partition', 'asymmetric', 'kill', 'power-loss', 'snapshot', 'slow-disk', 'membership'] as const

/** The scenario of a seed: one fault kind always on (by seed modulo, so a range of seeds covers them all), others at random. */
export function driverScenarioFor (seed: number, nodes?: number): DriverScenario {
  const rng = new Rng(seed ^ 0xD21E)
  const primary = FAULT_KINDS[seed % FAULT_KINDS.length]
  const on = (kind: typeof FAULT_KINDS[number], p: number): boolean => primary === kind || rng.chance(p)
  return {
    seed,
    nodes: nodes ?? rng.pick([3, 3, 5]),
    loss: on('loss', 0.3) ? rng.pick([0.02, 0.05, 0.15]) : 0,
    duplicate: on('duplicate', 0.3) ? rng.pick([0.02, 0.1]) : 0,
    maxDelay: rng.pick([2, 10, 30]),
    partitions: on('partition', 0.3),
    asymmetric: on('asymmetric', 0.2),
    kills: on('kill', 0.3),
    powerLoss: on('power-loss', 0.3),
    syncMs: on('slow-disk', 0.2) ? rng.pick([20, 60]) : rng.pick([1, 4]),
    snapshotEvery: on('snapshot', 0.4) ? rng.pick([5, 20, 60]) : 0,
    snapshotKeepEntries: rng.pick([0, 3, 30]),
    segmentBytes: rng.pick([512, 4096, 1024 * 1024]),
    transfers: rng.chance(0.4),
    membership: on('membership', 0.2),
    preVote: rng.chance(0.75),
    checkQuorum: rng.chance(0.75),
    keys: rng.pick([2, 4, 8]),
    clients: rng.pick([4, 8, 12]),
    faultMs: 3000,
    livenessMs: 6000
  }
}

export function describeDriverScenario (s: DriverScenario): string {
  const parts = [`driver, ${s.nodes} nodes`, `${s.clients} clients on ${s.keys} keys`, ...describeNetworkFaults(s, `delay ≤${s.maxDelay} ms`)]
  if (s.kills) parts.push('kills')
  if (s.powerLoss) parts.push('power loss')
  parts.push(`fsync ≤${s.syncMs} ms`)
  if (s.snapshotEvery > 0) parts.push(`snapshot every ${s.snapshotEvery} keeping ${s.snapshotKeepEntries}`)
  parts.push(`segments of ${s.segmentBytes} B`)
  if (s.transfers) parts.push('transfers')
  if (s.membership) parts.push('membership')
  parts.push(s.preVote ? 'prevote' : 'no prevote', s.checkQuorum ? 'checkquorum' : 'no checkquorum')
  return parts.join(', ')
}

const DIR = '/repo/raft'
const ELECTION_TICK = 10
/** Milliseconds a client waits for one operation before taking its outcome as unknown. */
const OP_DEADLINE_MS = 1500
/** Milliseconds between a client's operations, at most. */
const THINK_MS = 60
/** Milliseconds between the nemesis' moves. */
const NEMESIS_MS = 10
/** Nodes that may join beyond the first ones. */
const SPARE_NODES = 3
const utf8 = new TextEncoder()

/**
 * What a node's storage acknowledged as synced, to hold a reopened storage
 * to it. Saves still unacknowledged at a crash may or may not have reached
 * the disk, so entries from the first index they would rewrite are excused.
 */
class Promised {
  hardState: HardState = { term: 0, vote: '', commit: 0 }
  /** Term by index of the entries acknowledged. */
  log = new Map<number, number>()
  private last = 0
  snapshot = 0
  private readonly inflight = new Set<{ from: number }>()
  private excuseFrom = Infinity

  begin (ready: { entries: Entry[], snapshot?: Snapshot }): { from: number } {
    const token = { from: ready.snapshot !== undefined ? 0 : ready.entries.length > 0 ? ready.entries[0].index : Infinity }
    this.inflight.add(token)
    return token
  }

  ack (token: { from: number }, ready: { hardState?: HardState, entries: Entry[], snapshot?: Snapshot }, sync: boolean): void {
    this.inflight.delete(token)
    // the storage syncs a save that carries a snapshot, whatever `sync` says
    if (!sync && ready.snapshot === undefined) return
    if (ready.snapshot !== undefined) {
      this.log.clear()
      this.last = 0
      this.snapshot = Math.max(this.snapshot, ready.snapshot.metadata.index)
    }
    if (ready.entries.length > 0) {
      // the appended entries replace the log from their first index on
      for (let i = ready.entries[0].index; i <= this.last; i++) this.log.delete(i)
      for (const e of ready.entries) this.log.set(e.index, e.term)
      this.last = ready.entries[ready.entries.length - 1].index
    }
    if (ready.hardState !== undefined) this.hardState = { ...ready.hardState }
  }

  /** Whether the entry at `index` (or a snapshot past it) was acknowledged as synced. */
  holds (index: number): boolean {
    return index <= this.snapshot || this.log.has(index)
  }

  describe (): string {
    return `synced: snapshot ${this.snapshot}, entries to ${this.last}, term ${this.hardState.term}, vote '${this.hardState.vote}'`
  }

  crashed (): void {
    for (const t of this.inflight) this.excuseFrom = Math.min(this.excuseFrom, t.from)
    this.inflight.clear()
  }

  /** What the reopened storage broke of the promises; then takes what it holds as the promise, since Raft takes it as stable. */
  check (s: RaftStorage): string | undefined {
    const hs = s.initialState().hardState
    const snap = s.snapshot().metadata.index
    const first = s.firstIndex()
    const last = s.lastIndex()
    let broken: string | undefined
    // the commit index may go back: Raft learns it again, and does not sync it
    if (hs.term < this.hardState.term || (hs.term === this.hardState.term && this.hardState.vote !== '' && hs.vote !== this.hardState.vote)) {
      broken = `reopened at term ${hs.term} with vote '${hs.vote}' after term ${this.hardState.term} with vote '${this.hardState.vote}' was synced`
    } else if (snap < this.snapshot) {
      broken = `reopened at snapshot ${snap} after snapshot ${this.snapshot} was synced`
    } else {
      for (const [i, t] of this.log) {
        if (i >= this.excuseFrom || i < first) continue
        if (i > last || s.term(i) !== t) {
          broken = `lost synced entry ${i}@${t}: the reopened log is ${first}..${last}${i <= last ? ` with term ${s.term(i)} there` : ''}`
          break
        }
      }
    }
    this.hardState = { ...hs }
    this.snapshot = snap
    this.log = new Map(last >= first ? s.entries(first, last + 1).map(e => [e.index, e.term]) : [])
    this.last = last
    this.excuseFrom = Infinity
    return broken
  }
}

/** The driver's storage, through which the simulation notes what was acknowledged. */
class CheckedStorage implements RaftStorage {
  private readonly inner: RaftStorage
  private readonly promised: Promised
  private readonly skipFsync: boolean
  /** Told of each leader's snapshot saved, for the nemesis to aim at. */
  private readonly onSnapshotSaved: () => void

  constructor (inner: RaftStorage, promised: Promised, skipFsync: boolean, onSnapshotSaved: () => void) {
    this.inner = inner
    this.promised = promised
    this.skipFsync = skipFsync
    this.onSnapshotSaved = onSnapshotSaved
  }

  initialState (): { hardState: HardState, confState: ConfState } { return this.inner.initialState() }
  entries (lo: number, hi: number, maxSize?: number): Entry[] { return this.inner.entries(lo, hi, maxSize) }
  term (index: number): number { return this.inner.term(index) }
  lastIndex (): number { return this.inner.lastIndex() }
  firstIndex (): number { return this.inner.firstIndex() }
  snapshot (): Snapshot { return this.inner.snapshot() }

  async save (ready: { hardState?: HardState, entries: Entry[], snapshot?: Snapshot }, sync: boolean): Promise<void> {
    const token = this.promised.begin(ready)
    await this.inner.save(ready, sync && !this.skipFsync)
    this.promised.ack(token, ready, sync)
    if (ready.snapshot !== undefined) this.onSnapshotSaved()
  }

  async createSnapshot (index: number, confState: ConfState | undefined, data: Uint8Array, keepEntries?: number): Promise<Snapshot> {
    const snap = await this.inner.createSnapshot(index, confState, data, keepEntries)
    this.promised.snapshot = Math.max(this.promised.snapshot, index)
    return snap
  }

  async close (): Promise<void> { await this.inner.close() }
}

interface SimNode {
  id: string
  disk: SimDisk
  tickMs: number
  proc: Process
  incarnation: number
  /** 'retired': removed from the configuration, and shut down for good. */
  state: 'booting' | 'up' | 'stopping' | 'down' | 'retired'
  /** Cut the power soon after the next boot: what the new process read of a killed one's writes may still be in the page cache only. */
  powerAfterBoot: boolean
  raft?: RaftNode
  storage?: RaftStorage
  machine?: VersionedKv
  promised: Promised
}

interface Client {
  id: string
  seq: number
  hint: string
  /** The version last seen of each key, for the next compare-and-set. */
  seen: Map<string, number>
  busy: boolean
}

interface Pending {
  op: KvOperation
  /** The operation's id, for writes. */
  id?: string
  /** A read given up on: it had no effect and leaves the history. */
  dropped: boolean
}

type Outcome<T> = { value: T } | { error: Error } | { timeout: true }

class Violation extends Error {}

export class DriverSimulation {
  private readonly sc: DriverScenario
  private readonly scenario: DriverScenario
  private readonly sabotage: DriverRunOptions['sabotage']
  private readonly traceLine: DriverRunOptions['trace']
  private readonly sched = new Scheduler()
  private readonly world = new Process('world')
  private readonly faults: Rng
  private readonly clientRng: Rng
  private readonly nodeRng: Rng
  private readonly memberRng: Rng
  private readonly net: SimNetwork
  private readonly ledger = new ApplyLedger()
  private readonly nodes: SimNode[] = []
  private readonly genesis: ConfState
  private readonly keys: string[]
  private readonly clients: Client[] = []
  private readonly pending: Pending[] = []
  private readonly leaders = new Map<number, string>()
  private time = 0
  private partitionEnds = 0
  private finished = false
  /** The operator waits on a membership change. */
  private changing = false
  private readonly stats: Record<string, number> = {
    kills: 0, powerLosses: 0, restarts: 0, partitions: 0, transfers: 0, elections: 0, retries: 0, acked: 0, unknown: 0, reads: 0, confChanges: 0, retired: 0
  }

  constructor (sc: DriverScenario, opts: DriverRunOptions = {}) {
    this.scenario = sc
    this.sc = { ...sc }
    this.sabotage = opts.sabotage
    this.traceLine = opts.trace
    const root = new Rng(sc.seed)
    const netRng = root.fork(1)
    this.faults = root.fork(2)
    this.clientRng = root.fork(3)
    this.nodeRng = root.fork(4)
    this.memberRng = root.fork(5)
    this.net = new SimNetwork(this.sched, netRng, {
      loss: sc.loss,
      duplicate: sc.duplicate,
      maxDelay: sc.maxDelay,
      duplicateProposals: opts.sabotage === 'duplicate-proposals'
    }, this.world, opts.trace === undefined ? undefined : (line) => { this.trace(line) })
    const ids = Array.from({ length: sc.nodes }, (_, i) => `n${i + 1}`)
    this.genesis = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }
    this.keys = Array.from({ length: sc.keys }, (_, i) => `k${i}`)
    for (let i = 0; i < sc.nodes; i++) this.addNode()
    this.net.inspect = (m) => { this.persistedBeforeSent(m) }
    for (let i = 0; i < sc.clients; i++) this.clients.push({ id: `c${i + 1}`, seq: 0, hint: '', seen: new Map(), busy: false })
  }

  /**
   * Raft's rule that what a message vouches for is on disk before it is sent:
   * a follower's acknowledgement of entries (or of a snapshot), and a vote.
   */
  private persistedBeforeSent (m: Message): void {
    const n = this.nodes.find(x => x.id === m.from)
    if (n === undefined || m.reject) return
    const p = n.promised
    if (m.type === 'MsgAppResp' && !p.holds(m.index)) {
      this.ledger.violation(`${n.proc.name} acknowledged index ${m.index} to ${m.to} before it was synced (${p.describe()})`)
    }
    // a later term synced is as good: the node can never vote in this one again
    if (m.type === 'MsgVoteResp' && (p.hardState.term < m.term || (p.hardState.term === m.term && p.hardState.vote !== m.to))) {
      this.ledger.violation(`${n.proc.name} granted its vote in term ${m.term} to ${m.to} before it was synced (${p.describe()})`)
    }
  }

  /** A node with its disk, not yet booted; every node starts from the genesis membership, a joiner too. */
  private addNode (): SimNode {
    const id = `n${this.nodes.length + 1}`
    const disk = new SimDisk(this.sched, this.nodeRng.fork(this.nodes.length + 1), { op: 0.2, sync: this.sc.syncMs })
    disk.mkdirSynced('/repo')
    const n: SimNode = { id, disk, tickMs: this.nodeRng.pick([9, 10, 11]), proc: this.world, incarnation: 0, state: 'down', powerAfterBoot: false, promised: new Promised() }
    this.nodes.push(n)
    return n
  }

  private trace (line: () => string): void {
    if (this.traceLine !== undefined) this.traceLine(`[${this.sched.now.toFixed(2)}] ${line()}`)
  }

  /** History times: a counter, since only the order of calls and returns matters. */
  private tick (): number {
    return ++this.time
  }

  private get violated (): boolean {
    return this.ledger.violations.length > 0
  }

  async run (): Promise<DriverSeedResult> {
    const violations: string[] = []
    const liveness: string[] = []
    let inconclusive = false
    try {
      for (const n of this.nodes) this.boot(n)
      for (const c of this.clients) this.spawn(this.clientLoop(c))
      this.sched.after(NEMESIS_MS, () => { this.nemesis() }, this.world)
      if (this.sc.membership) this.spawn(this.operator())
      await this.sched.run(this.sc.faultMs, () => this.violated)
      if (!this.violated) {
        this.heal()
        this.spawn(this.finish())
        await this.sched.run(this.sc.faultMs + this.sc.livenessMs, () => this.violated || this.finished)
        if (!this.violated && !this.finished) liveness.push(`no leader committed a write and caught every node up within ${this.sc.livenessMs} ms after the faults healed: ${this.describeNodes()}`)
      }
    } catch (err) {
      // thrown out of a timer: in the daemon, an uncaught exception
      violations.push(`threw at ${this.sched.now.toFixed(2)} ms: ${(err as Error).stack ?? String(err)}`)
    }
    violations.push(...this.ledger.violations)
    if (violations.length === 0 && this.finished) {
      violations.push(...this.finalChecks())
      if (violations.length === 0) {
        const r = checkLinearizable(versionedKvModel, this.history())
        if (!r.ok) violations.push(`history not linearizable on key ${r.key ?? '?'}: ${r.explanation ?? ''}`)
        inconclusive = r.inconclusive === true
      }
    }
    // a killed process's promises never settle: nothing may run on after the seed
    for (const n of this.nodes) n.proc.alive = false
    this.world.alive = false
    return { seed: this.sc.seed, scenario: this.scenario, violations, liveness, inconclusive, stats: this.collectStats() }
  }

  private collectStats (): Record<string, number> {
    const disk = { syncs: 0, tornWrites: 0, droppedChanges: 0 }
    for (const n of this.nodes) {
      disk.syncs += n.disk.stats.syncs
      disk.tornWrites += n.disk.stats.tornWrites
      disk.droppedChanges += n.disk.stats.droppedChanges
    }
    return { ...this.stats, ...disk, ...this.net.stats, ops: this.pending.length, virtualMs: Math.round(this.sched.now) }
  }

  /** Runs an async part of the simulation; what it throws fails the seed. */
  private spawn (p: Promise<void>): void {
    p.catch((err: Error) => { this.ledger.violation(err instanceof Violation ? err.message : `threw at ${this.sched.now.toFixed(2)} ms: ${err.stack ?? String(err)}`) })
  }

  private describeNodes (): string {
    return this.nodes.map(n => {
      if (n.state !== 'up' || n.raft === undefined) return `${n.id}:${n.state}`
      const s = n.raft.status()
      const progress = s.progress === undefined ? '' : ` (${Object.entries(s.progress).map(([id, p]) => `${id} ${p.state} match ${p.match} next ${p.next}`).join(', ')})`
      return `${n.id}:${s.softState.raftState}/t${s.hardState.term}/c${s.hardState.commit}/a${s.applied}${progress}`
    }).join(' ')
  }

  // ---- processes

  private boot (n: SimNode): void {
    const proc = new Process(`${n.id}.${++n.incarnation}`)
    n.proc = proc
    n.state = 'booting'
    this.trace(() => `boot ${proc.name}`)
    this.spawn(this.start(n, proc))
  }

  private async start (n: SimNode, proc: Process): Promise<void> {
    let storage: RaftStorage
    try {
      storage = await openRaftStorage(DIR, { confState: this.genesis, segmentBytes: this.sc.segmentBytes }, {}, { fs: n.disk.fsFor(proc) })
    } catch (err) {
      throw new Violation(`${proc.name} cannot open its storage: ${(err as Error).stack ?? String(err)}`)
    }
    const broken = n.promised.check(storage)
    if (broken !== undefined) this.ledger.violation(`${proc.name}: ${broken}`)
    this.trace(() => `${proc.name} opened: log ${storage.firstIndex()}..${storage.lastIndex()}, ${JSON.stringify(storage.initialState().hardState)}`)
    const machine = new VersionedKv(proc.name, this.ledger)
    // a power loss just after a leader's snapshot is installed finds what the follower acknowledged at once
    const checked = new CheckedStorage(storage, n.promised, this.sabotage === 'skip-fsync', () => {
      if (this.sc.powerLoss && this.sched.now < this.sc.faultMs && this.faults.chance(0.3)) this.sched.after(this.faults.next() * 5, () => { this.crash(n, true) }, proc)
    })
    const raft = createRaftNode({
      transport: this.net.attach(n.id, proc),
      storage: checked,
      clock: this.sched.clockFor(proc),
      random: () => this.nodeRng.next()
    }, {
      id: n.id,
      stateMachine: machine,
      tickMs: n.tickMs,
      electionTick: ELECTION_TICK,
      heartbeatTick: 1,
      snapshotEvery: this.sc.snapshotEvery,
      snapshotKeepEntries: this.sc.snapshotKeepEntries,
      raft: { preVote: this.sc.preVote, checkQuorum: this.sc.checkQuorum }
    })
    raft.addEventListener('leader', (evt) => {
      const { leader, term } = evt.detail
      this.trace(() => `${proc.name} sees leader ${leader === '' ? 'none' : leader} in term ${term}`)
      if (leader === '') return
      const known = this.leaders.get(term)
      if (known === undefined) {
        this.leaders.set(term, leader)
        this.stats.elections++
      } else if (known !== leader) {
        this.ledger.violation(`two leaders in term ${term}: ${known} and ${leader} (as ${proc.name} sees it)`)
      }
    })
    raft.addEventListener('error', (evt) => { this.ledger.violation(`${proc.name} failed: ${evt.detail.stack ?? evt.detail.message}`) })
    await raft.start()
    n.raft = raft
    n.storage = checked
    n.machine = machine
    n.state = 'up'
    if (n.powerAfterBoot && this.sched.now < this.sc.faultMs) {
      n.powerAfterBoot = false
      this.sched.after(this.faults.next() * 30, () => { this.crash(n, true) }, proc)
    }
  }

  /** The daemon stopped and started again: the driver stops, the storage closes, a new process opens it. */
  private async restart (n: SimNode): Promise<void> {
    const { proc, raft, storage } = n
    if (raft === undefined || storage === undefined) return
    n.state = 'stopping'
    n.raft = undefined
    n.machine = undefined
    this.stats.restarts++
    this.trace(() => `restart ${proc.name}`)
    await raft.stop()
    await storage.close()
    // crashed meanwhile (the power, say): its own restart is under way
    if (n.proc !== proc || n.state !== 'stopping') return
    proc.alive = false
    this.net.died(n.id)
    this.boot(n)
  }

  /** kill -9, or the power going under it (`power`): the process is gone, and with the power what was not synced. */
  private crash (n: SimNode, power: boolean): void {
    n.proc.alive = false
    n.state = 'down'
    n.raft = undefined
    n.machine = undefined
    this.net.died(n.id)
    if (power) {
      n.disk.powerLoss()
      this.stats.powerLosses++
    } else {
      this.stats.kills++
    }
    n.promised.crashed()
    n.powerAfterBoot = !power && this.sc.powerLoss && this.faults.chance(0.3)
    const incarnation = n.incarnation
    const downFor = this.faults.int(n.powerAfterBoot ? 1 : 20, n.powerAfterBoot ? 50 : 1500)
    this.trace(() => `${power ? 'power loss under' : 'kill'} ${n.proc.name}, down for ${downFor} ms`)
    this.sched.after(downFor, () => {
      if (n.state === 'down' && n.incarnation === incarnation) this.boot(n)
    }, this.world)
  }

  private up (): SimNode[] {
    return this.nodes.filter(n => n.state === 'up')
  }

  private leader (): SimNode | undefined {
    let best: SimNode | undefined
    let bestTerm = -1
    for (const n of this.up()) {
      const s = (n.raft as RaftNode).status()
      if (s.softState.raftState === 'leader' && s.hardState.term > bestTerm) {
        best = n
        bestTerm = s.hardState.term
      }
    }
    return best
  }

  // ---- the nemesis

  private nemesis (): void {
    if (this.sched.now >= this.sc.faultMs) return
    this.sched.after(NEMESIS_MS, () => { this.nemesis() }, this.world)
    const f = this.faults
    if (this.net.blocked.size > 0 && this.sched.now >= this.partitionEnds) {
      this.net.blocked.clear()
      this.trace(() => 'partition healed')
    }
    if (this.net.blocked.size === 0 && (this.sc.partitions || this.sc.asymmetric) && f.chance(0.01)) this.partition()
    if (this.sc.kills && f.chance(0.002)) {
      const up = this.up()
      if (up.length > 0) this.spawn(this.restart(f.pick(up)))
    }
    if ((this.sc.kills || this.sc.powerLoss) && f.chance(0.008)) {
      const up = this.nodes.filter(n => n.state === 'up' || n.state === 'booting')
      if (up.length > 0) this.crash(f.pick(up), this.sc.powerLoss && (!this.sc.kills || f.chance(0.5)))
    }
    if (this.sc.transfers && f.chance(0.004)) this.transfer()
  }

  private partition (): void {
    const p = drawPartition(this.faults, this.nodes.filter(n => n.state !== 'retired').map(n => n.id), this.leader()?.id, this.sc)
    for (const link of p.links) this.net.cut(link)
    this.partitionEnds = this.sched.now + this.faults.int(100, 1500)
    this.stats.partitions++
    this.trace(() => `partition until ${this.partitionEnds}${describePartition(p)}`)
  }

  private transfer (): void {
    const leader = this.leader()
    if (leader?.raft === undefined) return
    const voters = leader.raft.status().config.voters
    const targets = this.up().filter(n => n !== leader && voters.includes(n.id))
    if (targets.length === 0) return
    const target = this.faults.pick(targets)
    this.stats.transfers++
    this.trace(() => `transfer leadership ${leader.id} -> ${target.id}`)
    leader.raft.transferLeader(target.id).catch(() => {})
  }

  // ---- membership

  /** Changes the membership now and then, one change at a time, as an operator (or the cluster's own promotion of learners) does. */
  private async operator (): Promise<void> {
    while (!this.violated) {
      await this.sched.sleep(200 + this.memberRng.next() * 800, this.world)
      if (this.sched.now >= this.sc.faultMs) return
      this.changing = true
      await this.changeMembership()
      this.changing = false
    }
  }

  private async changeMembership (): Promise<void> {
    const leader = this.leader()
    if (leader?.raft === undefined) return
    const cfg = leader.raft.status().config
    this.retireOutside(cfg)
    const fresh = (): string => {
      // a joiner starts from the genesis membership and learns the rest from the log or a snapshot
      const n = this.addNode()
      this.boot(n)
      return n.id
    }
    const cc = chooseConfChange(this.memberRng, cfg, 0.3, this.nodes.length < this.sc.nodes + SPARE_NODES ? fresh : undefined)
    if (cc === undefined) return
    const n = ++this.stats.confChanges
    this.trace(() => `propose conf change #${n} at ${leader.proc.name}: ${JSON.stringify(cc.changes)} ${cc.transition ?? ''} on ${JSON.stringify(cfg)}`)
    const outcome = await this.within(leader.raft.proposeConfChange({ ...cc, context: utf8.encode(`change ${n}`) }), this.sched.now + OP_DEADLINE_MS)
    this.trace(() => `conf change #${n}: ${'value' in outcome ? JSON.stringify(outcome.value) : 'error' in outcome ? outcome.error.message : 'no answer'}`)
    if ('value' in outcome) this.retireOutside(outcome.value)
  }

  /** Shuts down for good the nodes a committed configuration leaves out, and those that never got in. */
  private retireOutside (cfg: ConfState): void {
    const members = new Set([...cfg.voters, ...cfg.learners, ...cfg.votersOutgoing, ...cfg.learnersNext])
    for (const n of this.nodes) {
      if (members.has(n.id) || n.state === 'retired' || n.state === 'stopping') continue
      this.trace(() => `retire ${n.proc.name}: not in ${JSON.stringify(cfg)}`)
      n.proc.alive = false
      n.state = 'retired'
      n.raft = undefined
      n.machine = undefined
      this.net.died(n.id)
      this.stats.retired++
    }
  }

  /** The end of the faults: links heal, messages flow promptly, processes come back. */
  private heal (): void {
    this.net.blocked.clear()
    this.net.faults = { ...this.net.faults, loss: 0, duplicate: 0, maxDelay: Math.min(this.sc.maxDelay, 5) }
    for (const n of this.nodes) if (n.state === 'down') this.boot(n)
    this.trace(() => 'faults healed')
  }

  // ---- clients

  private async clientLoop (c: Client): Promise<void> {
    while (this.sched.now < this.sc.faultMs && !this.violated) {
      await this.sched.sleep(this.clientRng.next() * THINK_MS, this.world)
      if (this.sched.now >= this.sc.faultMs) return
      c.busy = true
      await this.operate(c)
      c.busy = false
    }
  }

  private async operate (c: Client): Promise<void> {
    const r = this.clientRng
    const key = r.pick(this.keys)
    const dice = r.next()
    if (dice < 0.3) {
      await this.read(c, key)
      return
    }
    const id = `${c.id}.${++c.seq}`
    const input: KvInput = dice < 0.5
      ? { kind: 'put', key, value: id }
      // mostly the version last seen, so that some succeed; now and then one surely stale or ahead
      : { kind: 'cas', key, value: id, expect: Math.max(0, (c.seen.get(key) ?? 0) + (r.chance(0.8) ? 0 : r.int(-2, 1))) }
    await this.write(c, id, input)
  }

  private pickNode (c: Client): SimNode | undefined {
    const up = this.up()
    if (up.length === 0) return undefined
    const hinted = up.find(n => n.id === c.hint)
    return hinted !== undefined && this.clientRng.chance(0.8) ? hinted : this.clientRng.pick(up)
  }

  /** The promise's outcome, or a timeout at `deadline`: a killed node never answers. */
  private async within<T> (p: Promise<T>, deadline: number): Promise<Outcome<T>> {
    const outcome = p.then((value): Outcome<T> => ({ value }), (error: Error): Outcome<T> => ({ error }))
    const timeout = this.sched.sleep(Math.max(0, deadline - this.sched.now), this.world).then((): Outcome<T> => ({ timeout: true }))
    return await Promise.race([outcome, timeout])
  }

  private async write (c: Client, id: string, input: Exclude<KvInput, { kind: 'get' }>): Promise<void> {
    const op: KvOperation = { client: c.id, input, output: undefined, call: this.tick(), ret: Infinity }
    this.pending.push({ op, id, dropped: false })
    const command = encodeCommand({ id, key: input.key, value: input.value, expect: input.kind === 'cas' ? input.expect : undefined })
    const deadline = this.sched.now + OP_DEADLINE_MS
    this.trace(() => `${c.id} ${versionedKvModel.describe(op)}`)
    while (this.sched.now < deadline) {
      const n = this.pickNode(c)
      if (n?.raft === undefined) {
        await this.sched.sleep(10, this.world)
        continue
      }
      const outcome = await this.within(n.raft.propose(command), deadline)
      if ('value' in outcome) {
        op.output = { ok: true, version: outcome.value as number }
        op.ret = this.tick()
        c.seen.set(input.key, op.output.version)
        c.hint = n.id
        this.stats.acked++
        this.trace(() => `${c.id} ${versionedKvModel.describe(op)} at ${n.proc.name}`)
        return
      }
      if ('timeout' in outcome) break
      const err = outcome.error
      if (err.name === 'VersionMismatchError') {
        op.output = { ok: false, version: (err as Error & { version: number }).version }
        op.ret = this.tick()
        c.seen.set(input.key, op.output.version)
        this.trace(() => `${c.id} ${versionedKvModel.describe(op)} at ${n.proc.name}`)
        return
      }
      // the driver promises these were not and will not be applied: the same operation may go again
      if (err.name !== 'NotLeaderError' && err.name !== 'ProposalLostError') {
        this.trace(() => `${c.id} ${id} at ${n.proc.name}: ${err.name}, outcome unknown`)
        break
      }
      this.stats.retries++
      this.trace(() => `${c.id} ${id} at ${n.proc.name}: ${err.name}, retrying`)
      const leader = (err as Error & { leader?: string }).leader
      c.hint = leader !== undefined && leader !== '' ? leader : ''
      await this.sched.sleep(1 + this.clientRng.next() * 10, this.world)
    }
    this.stats.unknown++
  }

  private async read (c: Client, key: string): Promise<void> {
    const op: KvOperation = { client: c.id, input: { kind: 'get', key }, output: undefined, call: this.tick(), ret: Infinity }
    const pending: Pending = { op, dropped: false }
    this.pending.push(pending)
    const deadline = this.sched.now + OP_DEADLINE_MS
    while (this.sched.now < deadline) {
      const n = this.pickNode(c)
      const machine = n?.machine
      if (n?.raft === undefined || machine === undefined) {
        await this.sched.sleep(10, this.world)
        continue
      }
      const outcome = this.sabotage === 'dirty-read' ? { value: undefined } : await this.within(n.raft.read(), deadline)
      if ('value' in outcome) {
        const { value, version } = machine.get(key)
        op.output = { ok: true, value, version }
        op.ret = this.tick()
        c.seen.set(key, version)
        c.hint = n.raft.leaderId
        this.stats.reads++
        this.trace(() => `${c.id} ${versionedKvModel.describe(op)} at ${n.proc.name}`)
        return
      }
      if ('timeout' in outcome) break
      await this.sched.sleep(1 + this.clientRng.next() * 10, this.world)
    }
    pending.dropped = true
  }

  // ---- the end

  /** After the faults: a leader commits a write, every node catches up, and every key is read once more. */
  private async finish (): Promise<void> {
    const final: Client = { id: 'final', seq: 0, hint: '', seen: new Map(), busy: false }
    while (this.clients.some(c => c.busy) || this.changing) await this.sched.sleep(10, this.world)
    await this.settleMembership()
    let leader: SimNode | undefined
    while (leader === undefined) {
      leader = this.leader()
      if (leader === undefined) {
        await this.sched.sleep(10, this.world)
        continue
      }
      final.hint = leader.id
      const id = `final.${++final.seq}`
      await this.write(final, id, { kind: 'put', key: this.keys[0], value: id })
      // a write that is in the history, so that the final reads see what it did
      if (this.pending[this.pending.length - 1].op.ret === Infinity) leader = undefined
    }
    const target = (leader.raft as RaftNode).status().hardState.commit
    const behind = (n: SimNode): boolean => n.state !== 'retired' && (n.state !== 'up' || (n.raft as RaftNode).status().applied < target)
    while (this.nodes.some(behind)) {
      // a change whose answer was lost may have been applied since
      const cfg = this.leader()?.raft?.status().config
      if (cfg !== undefined) this.retireOutside(cfg)
      await this.sched.sleep(10, this.world)
    }
    for (const key of this.keys) {
      final.hint = leader.id
      await this.read(final, key)
    }
    this.finished = true
  }

  /** Waits until the leader's configuration is not joint (leaving it if asked to by hand), then retires who is outside it. */
  private async settleMembership (): Promise<void> {
    for (;;) {
      const leader = this.leader()
      const cfg = leader?.raft?.status().config
      if (cfg !== undefined && cfg.votersOutgoing.length === 0) {
        this.retireOutside(cfg)
        return
      }
      if (cfg !== undefined && !cfg.autoLeave) await this.changeMembership()
      await this.sched.sleep(10, this.world)
    }
  }

  /** Every operation applied anywhere is in every serving node's final state, at the index it was first applied at. */
  private finalChecks (): string[] {
    const out: string[] = []
    for (const n of this.nodes) {
      if (n.state === 'retired') continue
      const m = n.machine as VersionedKv
      // equal states at equal indexes, through the ledger
      m.snapshot()
      for (const [id, { index }] of this.ledger.outcomes) {
        const at = m.appliedAt(id)
        if (at !== index) {
          const acked = this.pending.some(p => p.id === id && p.op.ret !== Infinity)
          out.push(`${n.proc.name} ${at === undefined ? 'lacks' : `has at index ${at}`} ${acked ? 'acknowledged ' : ''}operation ${id}, first applied at index ${index}`)
          break
        }
      }
    }
    return [...out, ...this.ledger.violations]
  }

  /**
   * The history for the checker. A write of unknown outcome that no node
   * applied never took effect and leaves; one that was applied took effect
   * before the end of the run, with the outcome its application gave.
   */
  private history (): KvOperation[] {
    const end = this.tick()
    const ops: KvOperation[] = []
    for (const p of this.pending) {
      if (p.dropped) continue
      if (p.op.ret !== Infinity || p.id === undefined) {
        ops.push(p.op)
        continue
      }
      const applied = this.ledger.outcomes.get(p.id)
      if (applied !== undefined) ops.push({ ...p.op, output: { ok: applied.ok, version: applied.version }, ret: end })
    }
    return ops
  }
}

export async function runDriverSeed (seed: number, opts: DriverRunOptions = {}): Promise<DriverSeedResult> {
  return await new DriverSimulation(driverScenarioFor(seed, opts.nodes), opts).run()
}
