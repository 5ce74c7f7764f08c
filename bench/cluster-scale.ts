/**
 * Cluster scale simulation: N nodes (default 100) in this one process, each a
 * real Content (Helia, blocks and datastore in memory) and ClusterService on
 * the in-memory libp2p transport, with its Raft log in a temp dir. Node 0
 * founds the cluster; the others join in waves, each through random members.
 * Prints the time until every node is a member and has caught up (with the
 * voter and learner counts), until every node has heard every other's
 * heartbeat (the resources gossip), and, for M pins of small blocks put on
 * node 0 with replication factor 3, the time to add them and the time until
 * every allocated node has pinned its replicas, with the spread of the
 * allocations. The join is told against issue 23's target of 60 s, and the
 * memory each node holds once all joined against what each held at 10 nodes.
 *
 * The same run first takes a 3-node cluster of the same kind through the same
 * steps, and the N-node figures are given as ratios to it.
 *
 * All N nodes share one JavaScript thread, so what N machines would each do
 * for themselves is done here N times over: every heartbeat is sent, checked
 * and forwarded by every node, which is O(N²) work per period here and O(N)
 * per machine in a deployment. Hence a heartbeat period far above a
 * deployment's (1 s): at 100 nodes, gossip alone at 1 s would need many
 * cores. Joins go one at a time by default: the cluster admits one membership
 * change at a time, and concurrent joins fail and back off.
 *
 * Env: BENCH_CLUSTER_NODES (100), BENCH_CLUSTER_PINS (200), BENCH_CLUSTER_TICK_MS
 * (100, the Raft driver's default),
 * BENCH_CLUSTER_WAVE (1) nodes started at once, BENCH_CLUSTER_HEARTBEAT_MS
 * (30000), BENCH_CLUSTER_DEADLINE_S (1200) for the whole run: past it the
 * bench prints what was reached and exits with 1.
 */
import { randomBytes } from 'node:crypto'
import { cpus, loadavg } from 'node:os'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { withCleanup } from './lib/cleanup.ts'
import { numberFromEnv, say } from './lib/cli.ts'
import { MB } from './lib/files.ts'
import { BOOTSTRAP_PEERS, ConvergenceTimeoutError, createMemoryCluster, gossip, membership, pinning, waitFor } from '../packages/cluster/test/helpers/memory-cluster.ts'
import type { Cleanup } from './lib/cleanup.ts'
import type { ClusterTimings } from '../packages/cluster/test/helpers/memory-cluster.ts'

const VOTERS = 3
/** A node is marked offline, and a voter replaced, after this many heartbeat periods of silence. */
const TIMEOUT_BEATS = 4
const REPLICATION = 3
const BLOCK_BYTES = 1024
const BASELINE_NODES = 3
const STOP_TIMEOUT_MS = 10_000
/** Issue 23's target for the whole join. */
const JOIN_TARGET_MS = 60_000
/** Where memory per node is first taken, to compare with it at the full size. */
const SMALL_NODES = 10

// A full collection before each reading, so that RSS counts what the nodes hold rather than garbage not yet collected.
setFlagsFromString('--expose-gc')
const gc: () => void = runInNewContext('gc')
const rssMB = (): number => {
  gc()
  return process.memoryUsage().rss / MB
}
interface Settings {
  pins: number
  wave: number
  timings: ClusterTimings
  deadlineMs: number
  /** Aborted at the deadline, or by SIGINT/SIGTERM. */
  signal: AbortSignal
}

interface Figures {
  nodes: number
  /** All nodes members of the replicated state and caught up, from the first start. */
  joinMs: number
  /** Ditto, with the target number of voters. */
  votersMs: number
  voters: number
  learners: number
  /** Every node heard every other's heartbeat, from the first start. */
  heardMs: number
  /** Every pinAdd answered, from the first. */
  ingestMs: number
  /** Every allocation pinned, from the first pinAdd. */
  convergeMs: number
  min: number
  max: number
  rssMB: number
  cores: number
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`
const ratio = (ms: number, base: number): string => `${(ms / base).toFixed(1)} x`

/** Forms a cluster of `size` nodes and converges the pinset on it; stops it before returning. */
async function scenario (size: number, settings: Settings, cleanup: Cleanup): Promise<Figures> {
  const cluster = await createMemoryCluster(settings.timings)
  const stop = cleanup.defer(async () => {
    const t0 = performance.now()
    const stuck = await cluster.stop(STOP_TIMEOUT_MS)
    say(`  stopped ${cluster.nodes.length} nodes in ${seconds(performance.now() - t0)}${stuck.length > 0 ? `; ${stuck.length} did not stop within ${STOP_TIMEOUT_MS} ms each` : ''}`)
  })
  const wait = { timeoutMs: settings.deadlineMs, signal: settings.signal }
  const rss0 = rssMB()
  let smallPerNodeMB = Number.NaN
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await cluster.grow(size, {
    wave: settings.wave,
    joinTimeoutMs: settings.deadlineMs,
    signal: settings.signal,
    // A line every tenth node, so that a run that stalls shows where.
    onWave: (members, detail) => {
      if (members === SMALL_NODES) smallPerNodeMB = (rssMB() - rss0) / members
      if (members % 10 === 0) say(`  ${members} nodes after ${seconds(performance.now() - t0)}: ${detail}`)
    }
  })
  const joinMs = performance.now() - t0
  const perNodeMB = (rssMB() - rss0) / size
  const voters = Math.min(size, VOTERS)
  // The leader promotes learners on its heartbeats, so both wait on the heartbeat period: timed side by side.
  const [promotedMs, allHeardMs] = await Promise.all([
    waitFor('voter promotion', () => {
      const m = membership(cluster.nodes)
      return { ...m, done: m.done && m.voters === voters }
    }, wait),
    waitFor('heartbeats', () => gossip(cluster.nodes), wait)
  ])
  const votersMs = joinMs + promotedMs
  const heardMs = joinMs + allHeardMs
  const m = membership(cluster.nodes)
  say(`  joined: ${size} nodes members and caught up after ${seconds(joinMs)}, ${m.voters} voters and ${m.learners} learners after ${seconds(votersMs)}`)
  say(`  gossip: every node heard every other's heartbeat after ${seconds(heardMs)}`)
  // Told here, so that a later step that fails leaves them printed.
  if (size > SMALL_NODES) {
    say(`  join against the target: ${seconds(joinMs)} = ${(joinMs / JOIN_TARGET_MS).toFixed(2)} x the ${seconds(JOIN_TARGET_MS)} target`)
    say(`  memory per node: ${perNodeMB.toFixed(1)} MB at ${size} nodes = ${(perNodeMB / smallPerNodeMB).toFixed(2)} x the ${smallPerNodeMB.toFixed(1)} MB at ${SMALL_NODES} nodes  [RSS after a full GC, over that before the first node started, once every node joined]`)
  }

  const [first] = cluster.nodes
  const cids: string[] = []
  for (let i = 0; i < settings.pins; i++) cids.push((await first.content.blockPut(randomBytes(BLOCK_BYTES))).toString())
  const t1 = performance.now()
  await Promise.all(cids.map(async cid => first.cluster.pinAdd(cid, { replicationFactor: REPLICATION })))
  const ingestMs = performance.now() - t1
  await waitFor('pin convergence', () => pinning(cluster.nodes, cids), wait)
  const convergeMs = performance.now() - t1
  const { min, max } = pinning(cluster.nodes, cids)
  const cpu = process.cpuUsage(cpu0)
  const figures: Figures = {
    nodes: size,
    joinMs,
    votersMs,
    voters: m.voters,
    learners: m.learners,
    heardMs,
    ingestMs,
    convergeMs,
    min,
    max,
    rssMB: process.memoryUsage().rss / MB,
    cores: (cpu.user + cpu.system) / 1000 / (performance.now() - t0)
  }
  say(`  pins: ${settings.pins} added in ${seconds(ingestMs)} (${(settings.pins / ingestMs * 1000).toFixed(0)} pins/s), all ${settings.pins * REPLICATION} replicas pinned after ${seconds(convergeMs)}, ${min}-${max} per node`)
  await stop()
  return figures
}

export async function main (): Promise<number> {
  const nodes = numberFromEnv('BENCH_CLUSTER_NODES', 100, 1000, { whole: true })
  const pins = numberFromEnv('BENCH_CLUSTER_PINS', 200, 100_000, { whole: true })
  const wave = numberFromEnv('BENCH_CLUSTER_WAVE', 1, 1000, { whole: true })
  const heartbeatMs = numberFromEnv('BENCH_CLUSTER_HEARTBEAT_MS', 30_000, 600_000, { whole: true })
  // Raft's leader heartbeats every member each tick, learners too: at 100 ms and 100 nodes that is
  // most of the one thread's messaging, which separate machines would share out.
  const tickMs = numberFromEnv('BENCH_CLUSTER_TICK_MS', 100, 10_000, { whole: true })
  const timings: ClusterTimings = { voters: VOTERS, tickMs, heartbeatMs, nodeTimeoutMs: TIMEOUT_BEATS * heartbeatMs, voterTimeoutMs: TIMEOUT_BEATS * heartbeatMs }
  const deadlineS = numberFromEnv('BENCH_CLUSTER_DEADLINE_S', 1200, 86_400, { whole: true })
  say(`cluster-scale bench: ${nodes} nodes in one process on @libp2p/memory, joining in waves of ${wave} through ${BOOTSTRAP_PEERS} random members each; tickMs ${tickMs}, heartbeatMs ${heartbeatMs}, nodeTimeoutMs and voterTimeoutMs ${TIMEOUT_BEATS * heartbeatMs}, ${VOTERS} voters; ${pins} pins of ${BLOCK_BYTES}-byte blocks with replication factor ${REPLICATION}; deadline ${deadlineS} s; node ${process.version}, ${cpus().length} cpus, load average ${loadavg()[0].toFixed(2)}`)
  return withCleanup(async (cleanup) => {
    const settings: Settings = { pins, wave, timings, deadlineMs: deadlineS * 1000, signal: AbortSignal.any([cleanup.signal, AbortSignal.timeout(deadlineS * 1000)]) }
    try {
      say(`baseline, ${BASELINE_NODES} nodes:`)
      const base = await scenario(BASELINE_NODES, settings, cleanup)
      say(`${nodes} nodes:`)
      const big = await scenario(nodes, settings, cleanup)
      const average = pins * REPLICATION / nodes
      say(`time to join: ${seconds(big.joinMs)} = ${ratio(big.joinMs, base.joinMs)} the ${BASELINE_NODES}-node cluster's ${seconds(base.joinMs)}  [${big.voters} voters, ${big.learners} learners; voters complete after ${seconds(big.votersMs)}]`)
      say(`time to hear all heartbeats: ${seconds(big.heardMs)} from the first start = ${ratio(big.heardMs, base.heardMs)} the ${BASELINE_NODES}-node cluster's ${seconds(base.heardMs)}  [${seconds(big.heardMs - big.joinMs)} after the last node joined; ${big.nodes * (big.nodes - 1)} node pairs]`)
      say(`pin ingestion: ${seconds(big.ingestMs)} for ${pins} pins = ${ratio(big.ingestMs, base.ingestMs)} the ${BASELINE_NODES}-node cluster's ${seconds(base.ingestMs)}`)
      say(`time to converge the pinset: ${seconds(big.convergeMs)} from the first pinAdd = ${ratio(big.convergeMs, base.convergeMs)} the ${BASELINE_NODES}-node cluster's ${seconds(base.convergeMs)}  [allocations per node ${big.min}-${big.max}, average ${average.toFixed(1)}]`)
      say(`process: rss ${big.rssMB.toFixed(0)} MB with ${nodes} nodes (${(big.rssMB / nodes).toFixed(1)} MB per node), ${big.cores.toFixed(2)} cores busy on average over the ${nodes}-node run`)
      return 0
    } catch (err: any) {
      if (!(err instanceof ConvergenceTimeoutError) && !settings.signal.aborted) throw err
      say(`did not finish: ${err.message}`)
      return 1
    }
  })
}
