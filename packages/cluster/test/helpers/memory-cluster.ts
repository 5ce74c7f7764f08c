/**
 * Clusters of real nodes in one process, for the scale test and the
 * cluster-scale bench: each node is a Content (Helia with its blocks and
 * datastore in memory) on a swarm built by swarmOptions() over the in-memory
 * libp2p transport, plus a ClusterService whose Raft log lives in a temp dir
 * of its own. Node 0 founds the cluster; later nodes join in waves, each
 * through random members, so that no node is a hot spot.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { prefixLogger } from '@libp2p/logger'
import { memory } from '@libp2p/memory'
import { plaintext } from '@libp2p/plaintext'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Content } from '@node-daemon/content'
import { formatSwarmKey, swarmOptions } from '@node-daemon/swarm'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { MemoryDatastore } from 'datastore-core/memory'
import { createCluster } from '../../src/cluster.ts'
import type { ClusterInit, ClusterService } from '../../src/cluster.ts'

/** Told to the cluster service only, which then admits by it as it does by a swarm key; the swarm itself stays unprotected. */
const SWARM_KEY = formatSwarmKey(randomBytes(32))

export type ClusterTimings = Pick<ClusterInit, 'voters' | 'tickMs' | 'electionTick' | 'heartbeatMs' | 'nodeTimeoutMs' | 'voterTimeoutMs'>

export interface MemoryNode {
  readonly id: string
  /** Its swarm address, with /p2p/. */
  readonly addr: string
  readonly content: Content
  readonly cluster: ClusterService
  readonly running: boolean
  /** Stops the cluster service, then Helia and the swarm. */
  stop (): Promise<void>
}

/** Members a joining node is given to join through. */
export const BOOTSTRAP_PEERS = 2
const POLL_MS = 100

/** Starts one node in a temp dir under `root`; with no bootstrap peers it founds a cluster of one. */
export async function startMemoryNode (root: string, bootstrap: string[], timings: ClusterTimings): Promise<MemoryNode> {
  const repoDir = await mkdtemp(join(root, 'node-'))
  const privateKey = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(privateKey).toString()
  const datastore = new MemoryDatastore()
  const content = new Content({
    blockstore: new MemoryBlockstore(),
    datastore,
    identity: privateKeyToProtobuf(privateKey),
    libp2p: (dhtRecords) => ({
      ...swarmOptions({
        privateKey,
        port: 0,
        bootstrap,
        dhtRecords,
        transports: [memory()],
        listen: [`/memory/${randomUUID()}`],
        // Nothing leaves the process, and noise's framing and ciphers were a quarter of its one thread at 80 nodes.
        connectionEncrypters: [plaintext()]
      }),
      // libp2p pings every connection every 10 s to find dead ones, which in-memory connections never are. The DHT connects
      // every node to every other, so 100 nodes in one thread made ~1,000 pings a second: 80 nodes took 215 s to join, 110 s without.
      connectionMonitor: { enabled: false }
    })
  })
  const cluster = createCluster({
    get libp2p () { return content.swarm },
    content,
    datastore,
    logger: prefixLogger(id),
    privateKey
  }, {
    dir: join(repoDir, 'cluster'),
    repoDir,
    bootstrap,
    // The in-memory transport reaches the nodes of this process only, as a private network would.
    swarmKey: SWARM_KEY,
    ...timings
  })
  let running = false
  const node: MemoryNode = {
    id,
    get addr () { return content.swarm.getMultiaddrs()[0].toString() },
    content,
    cluster,
    get running () { return running },
    async stop () {
      running = false
      await cluster.stop()
      await content.stop()
    }
  }
  await content.start()
  try {
    await cluster.start()
  } catch (err) {
    await node.stop().catch(() => {})
    throw err
  }
  running = true
  return node
}

/** How far a cluster has come toward a goal. */
export interface Progress {
  done: boolean
  /** What was reached, for a report or a timeout. */
  detail: string
}

export class ConvergenceTimeoutError extends Error {
  static name = 'ConvergenceTimeoutError'
  name = 'ConvergenceTimeoutError'
}

/** Polls `check` until it is done; returns the ms it took. Throws ConvergenceTimeoutError (or the signal's reason) with what was reached. */
export async function waitFor (what: string, check: () => Progress, options: { timeoutMs: number, signal?: AbortSignal }): Promise<number> {
  const t0 = performance.now()
  for (;;) {
    const progress = check()
    if (progress.done) return performance.now() - t0
    const elapsed = performance.now() - t0
    if (elapsed > options.timeoutMs || options.signal?.aborted === true) {
      const why = options.signal?.aborted === true ? `stopped (${String(options.signal.reason?.message ?? options.signal.reason)})` : 'timed out'
      throw new ConvergenceTimeoutError(`${what}: ${why} after ${Math.round(elapsed)} ms; reached ${progress.detail}`)
    }
    await new Promise(resolve => setTimeout(resolve, POLL_MS))
  }
}

/** The running node that leads, as it sees itself. */
export function leaderOf (nodes: MemoryNode[]): MemoryNode | undefined {
  return nodes.find(n => n.running && n.cluster.status().role === 'leader')
}

/**
 * Every running node is in the leader's replicated state, and every one has
 * caught up: it knows a leader and its own state lists them all. (isReady()
 * alone is a snapshot that flickers while entries keep committing: a node is
 * briefly behind between learning a commit index and applying it.) Counts
 * the voters and learners.
 */
export function membership (nodes: MemoryNode[]): Progress & { voters: number, learners: number } {
  const running = nodes.filter(n => n.running)
  const leader = leaderOf(running)
  if (leader == null) return { done: false, detail: 'no leader', voters: 0, learners: 0 }
  const members = running.filter(n => leader.cluster.state.nodes.has(n.id)).length
  const caughtUp = running.filter(n => n.cluster.status().leader !== '' && running.every(m => n.cluster.state.nodes.has(m.id))).length
  const ready = running.filter(n => n.cluster.isReady()).length
  const { voters, learners } = leader.cluster.status()
  return {
    done: members === running.length && caughtUp === running.length,
    detail: `${members} of ${running.length} nodes in the state, ${caughtUp} caught up (${ready} ready now), ${voters.length} voters and ${learners.length} learners`,
    voters: voters.length,
    learners: learners.length
  }
}

/** Every running node has heard a heartbeat from every other. */
export function gossip (nodes: MemoryNode[]): Progress {
  const running = nodes.filter(n => n.running)
  let heard = 0
  let deafest = running.length
  for (const n of running) {
    const count = running.filter(m => m !== n && n.cluster.heard.has(m.id)).length
    heard += count
    deafest = Math.min(deafest, count)
  }
  const pairs = running.length * (running.length - 1)
  return { done: heard === pairs, detail: `${heard} of ${pairs} node pairs heard, the deafest node heard ${deafest} of ${running.length - 1}` }
}

/**
 * Every pin of `cids` is allocated to as many running nodes as it wants, in
 * the leader's state, and each of those nodes reports it pinned locally.
 * Counts the allocations each running node holds.
 */
export function pinning (nodes: MemoryNode[], cids: string[]): Progress & { min: number, max: number } {
  const running = nodes.filter(n => n.running)
  const leader = leaderOf(running)
  if (leader == null) return { done: false, detail: 'no leader', min: 0, max: 0 }
  const pinned = new Map(running.map(n => [n.id, new Set(n.cluster.localPins().filter(p => p.status.status === 'pinned').map(p => p.pin.cid))]))
  const load = new Map(running.map(n => [n.id, 0]))
  let wanted = 0
  let done = 0
  let complete = 0
  for (const cid of cids) {
    const pin = leader.cluster.state.pins.get(cid)
    const want = pin == null ? 1 : pin.replicationFactorMax === -1 ? running.length : pin.replicationFactorMax
    wanted += want
    const here = (pin?.allocations ?? []).filter(id => pinned.get(id)?.has(cid) === true).length
    done += here
    if (here >= want) complete++
    for (const id of pin?.allocations ?? []) if (load.has(id)) load.set(id, (load.get(id) ?? 0) + 1)
  }
  const counts = [...load.values()]
  const min = Math.min(...counts)
  const max = Math.max(...counts)
  return { done: complete === cids.length, detail: `${done} of ${wanted} replicas pinned, ${complete} of ${cids.length} pins complete, ${min}-${max} allocations per node`, min, max }
}

export interface MemoryCluster {
  /** In start order: nodes[0] founded the cluster. */
  readonly nodes: MemoryNode[]
  /** Starts nodes, `wave` at a time, until there are `total`; each wave joins before the next starts. */
  grow (total: number, options: { wave: number, joinTimeoutMs: number, signal?: AbortSignal, onWave?: (members: number, detail: string) => void }): Promise<void>
  /** Stops every node, the last started first, each within `timeoutMs`; removes the temp dirs. Returns the ids of nodes that did not stop in time. */
  stop (timeoutMs: number): Promise<string[]>
}

export async function createMemoryCluster (timings: ClusterTimings): Promise<MemoryCluster> {
  const root = await mkdtemp(join(tmpdir(), 'node-daemon-memory-cluster-'))
  const nodes: MemoryNode[] = []

  /**
   * Up to BOOTSTRAP_PEERS distinct random members. Members, not ready ones:
   * isReady() flickers while entries commit, and a node started with no
   * bootstrap peers founds a cluster of its own.
   */
  const bootstrapPeers = (): string[] => {
    const members = nodes.filter(n => n.running && n.cluster.state.nodes.has(n.id))
    const picked: string[] = []
    while (picked.length < Math.min(BOOTSTRAP_PEERS, members.length)) {
      const [m] = members.splice(Math.floor(Math.random() * members.length), 1)
      picked.push(m.addr)
    }
    return picked
  }

  return {
    nodes,
    async grow (total, options) {
      while (nodes.length < total) {
        options.signal?.throwIfAborted()
        const bootstrap = nodes.length === 0 ? undefined : bootstrapPeers
        const size = nodes.length === 0 ? 1 : Math.min(options.wave, total - nodes.length)
        const first = nodes.length
        const started = Promise.all(Array.from({ length: size }, async () => {
          nodes.push(await startMemoryNode(root, bootstrap?.() ?? [], timings))
        }))
        // A start that never returns is told at the deadline, as a join that never completes is.
        let settled = false
        started.then(() => { settled = true }, () => { settled = true })
        await waitFor(`starting nodes ${first} to ${first + size - 1}`, () => ({ done: settled, detail: `${nodes.length - first} of ${size} started` }), { timeoutMs: options.joinTimeoutMs, signal: options.signal })
        await started
        await waitFor(`joining nodes ${nodes.length - size} to ${nodes.length - 1}`, () => membership(nodes), { timeoutMs: options.joinTimeoutMs, signal: options.signal })
        options.onWave?.(nodes.length, membership(nodes).detail)
      }
    },
    async stop (timeoutMs) {
      const stuck: string[] = []
      for (const node of [...nodes].reverse()) {
        let timer: ReturnType<typeof setTimeout> | undefined
        const late = new Promise<'late'>(resolve => { timer = setTimeout(() => { resolve('late') }, timeoutMs) })
        const outcome = await Promise.race([node.stop().catch(() => 'failed' as const), late])
        clearTimeout(timer)
        if (outcome !== undefined) stuck.push(node.id)
      }
      await rm(root, { recursive: true, force: true, maxRetries: 3 })
      return stuck
    }
  }
}
