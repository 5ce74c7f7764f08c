import { join } from 'node:path'
import { prefixLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { AccessService } from '@node-daemon/access'
import { createCluster } from '@node-daemon/cluster'
import { AutoGc, Content, parseCID } from '@node-daemon/content'
import { createInference } from '@node-daemon/inference'
import { RemotePinning } from '@node-daemon/pinning'
import { Runtime } from '@node-daemon/runtime'
import { createTraining } from '@node-daemon/training'
import { createSearch } from '@node-daemon/search'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { connect, describePeer, listPeers, pingPeers, swarmOptions } from '@node-daemon/swarm'
import { registerSwarmMetrics } from './swarm-metrics.ts'
import { Gauge, Registry } from 'prom-client'
import { registerDefaultModels } from './default-models.ts'
import { systemDiagnostics } from './diagnostics.ts'
import { collectProfiles } from './profile.ts'
import { joinSettings } from './join.ts'
import { logControlOf } from './logger.ts'
import { REPO_VERSION } from './layout.ts'
import { openRepo, repoBlockBytes, saveRemoteServices } from './repo.ts'
import { versionInfo } from './version.ts'
import type { Config } from './config.ts'
import type { SystemDiagnostics } from './diagnostics.ts'
import type { ProfileOptions, Profiles } from './profile.ts'
import type { LogControl, Logger } from './logger.ts'
import type { Repo } from './repo.ts'
import type { VersionInfo } from './version.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { PeerConnection, PeerIdentity, Swarm } from '@node-daemon/swarm'
import type { Cluster } from '@node-daemon/cluster'
import type { Inference } from '@node-daemon/inference'
import type { TrainingService } from '@node-daemon/training'
import type { SearchService } from '@node-daemon/search'

/** What the HTTP API sees of a node: one object per concern, plus the node's own facts. */
export interface Node {
  readonly config: Config
  readonly content: Content
  /** Membership, the Raft-replicated state (pinset, models, jobs, history) and replication of content. */
  readonly cluster: Cluster
  readonly swarm: Swarm
  /** Models, generation and embeddings across the cluster, and document 001's tasks. */
  readonly inference: Inference
  /** Data-parallel training jobs, datasets and trained models. */
  readonly training: TrainingService
  /** Search collections over the cluster's content, and hybrid queries of them. */
  readonly search: SearchService
  /** Who may use the node: credentials, permissions, origins, rate limits. */
  readonly access: AccessService
  /** Kubo's pin/remote: the remote pinning services in the settings, and pins on them. */
  readonly remotePinning: RemotePinning
  readonly peerId: string
  /** The peers the swarm was told to join through at start: the configured ones and a join token's. */
  readonly bootstrap: readonly string[]
  readonly startedAt: Date
  /** What the node still does before it is ready (registering the default models), or undefined once done. */
  starting(): string | undefined
  /** Prometheus registry of this node: libp2p, repo and API metrics. */
  readonly metrics: Registry
  version(): VersionInfo
  identity(peerId?: string, options?: AbortOptions): Promise<PeerIdentity>
  peers(): PeerConnection[]
  /** Round-trip time to each connected peer by the ping protocol; null for one that did not answer within `timeoutMs`. */
  pingPeers(options?: AbortOptions & { timeoutMs?: number }): Promise<Array<{ peer: string, latencyMs: number | null, error?: string }>>
  connect(addr: string, options?: AbortOptions): Promise<string>
  /** Kubo's repo/stat: bytes of blocks, the GC limit, and (unless `sizeOnly`) how many blocks there are. */
  repoStat(options?: AbortOptions & { sizeOnly?: boolean }): Promise<RepoStat>
  /** Kubo's diag/sys: the runtime, the repo's disk, memory and network interfaces. */
  diagnostics(): Promise<SystemDiagnostics>
  /** Kubo's diag/profile: this process's CPU and heap samples over a time; one at a time. */
  profile(options: ProfileOptions): Promise<Profiles>
  /** Kubo's log/*: levels of the operator log and its components, and its lines as they are logged. */
  readonly logs: LogControl
}

export interface RepoStat {
  repoSize: number
  storageMax: number
  numObjects?: number
  version: string
}

export interface DaemonNode extends Node {
  start(): Promise<void>
  stop(): Promise<void>
  /** Records where the API listens, so that CLI commands find the daemon. */
  setApiAddress(url: string): Promise<void>
}

export interface NodeComponents {
  logger: Logger
}

/**
 * Builds a node from its config: opens the repo, then assembles the content
 * stack on the swarm. `start()` joins the network; `stop()` leaves it and
 * closes the stores, after the API has stopped taking requests.
 */
export async function createNode (config: Config, components: NodeComponents): Promise<DaemonNode> {
  const logs = logControlOf(components.logger)
  if (logs == null) throw new Error('the node\'s logger must come from createLogger, which makes it controllable')
  // onnxruntime 1.30 starts Microsoft's telemetry client with its first session, a client built to upload events over HTTPS,
  // and leaves /tmp/mat-debug-<pid>.log behind in every process. A daemon sends nothing it was not asked to; 0 turns it back on.
  process.env.ORT_DISABLE_TELEMETRY ??= '1'
  const joining = await joinSettings(config)
  const repo: Repo = await openRepo(config.repo, { secret: joining.secret })
  const metrics = new Registry()
  /** What `id` says this node runs, here and to peers through identify. */
  const agentVersion = `node-daemon/${versionInfo(REPO_VERSION).version}`
  const blocksDir = repo.blockstore.path
  metrics.registerMetric(new Gauge({
    name: 'node_daemon_blockstore_bytes',
    help: 'Bytes of blocks in the repo',
    registers: [],
    async collect () { this.set(await repoBlockBytes(blocksDir)) }
  }))
  const content = new Content({
    blockstore: repo.blockstore,
    datastore: repo.datastore,
    identity: repo.identity,
    fetchTimeoutMs: config.content.timeoutMs,
    // Bulk block streams between members get sealed channels on the swarm's interface.
    blockStream: { channelHost: config.swarm.host },
    // The cluster's pin tracker pins what it allocates here; GC keeps the pins it has not finished too.
    keep: () => cluster.localPins().map(local => local.pin.cid),
    libp2p: (dhtRecords) => swarmOptions({
      privateKey: repo.privateKey,
      host: config.swarm.host,
      port: config.swarm.port,
      bootstrap: joining.bootstrap,
      metricsRegistry: metrics,
      dhtRecords,
      swarmKey: repo.swarmKey,
      mdns: config.swarm.mdns,
      agentVersion
    })
  })
  const cluster = createCluster({
    get libp2p () { return content.swarm },
    content,
    datastore: repo.datastore,
    logger: prefixLogger(peerIdFromPrivateKey(repo.privateKey).toString()),
    privateKey: repo.privateKey,
    operatorLog: components.logger
  }, {
    dir: join(config.repo, 'cluster'),
    repoDir: config.repo,
    bootstrap: joining.bootstrap,
    voters: config.cluster.voters,
    tickMs: config.cluster.tickMs,
    heartbeatMs: config.cluster.heartbeatMs,
    nodeTimeoutMs: config.cluster.nodeTimeoutMs,
    voterTimeoutMs: config.cluster.voterTimeoutMs,
    snapshotEvery: config.cluster.snapshotEvery,
    executionProvider: config.inference.executionProvider,
    apiUrl: () => apiAddress,
    swarmKey: repo.swarmKey,
    trustedPeers: config.cluster.trustedPeers,
    joinToken: config.cluster.joinToken,
    allocationLimits: config.cluster.allocationLimits
  })
  const runtime = new Runtime({
    executionProvider: async () => (await cluster.resources()).executionProvider === 'cuda' ? 'cuda' : 'cpu',
    logger: components.logger.child({ component: 'runtime' })
  }, { keepAliveMs: config.inference.keepAliveMs, threads: config.inference.threads, prefixCacheBytes: config.inference.prefixCacheBytes })
  const peerId = peerIdFromPrivateKey(repo.privateKey).toString()
  const inference = createInference({
    get libp2p () { return content.swarm },
    content,
    cluster,
    runtime,
    peerId,
    log: prefixLogger(peerId).forComponent('node-daemon:inference')
  }, { modelsDir: join(config.repo, 'models') })
  const training = createTraining({
    get libp2p () { return content.swarm },
    content,
    cluster,
    models: {
      resolve: async (name, options) => inference.show(name, options),
      import: async (params, options) => inference.import(params, options)
    },
    log: prefixLogger(peerId).forComponent('node-daemon:training')
  }, { threads: config.inference.threads, channelHost: config.swarm.host })
  registerSwarmMetrics(metrics, { cluster, pingPeers: async (options) => pingPeers(content.swarm, options) })
  const search = createSearch({
    content,
    cluster,
    inference,
    log: prefixLogger(peerId).forComponent('node-daemon:search')
  }, { dir: join(config.repo, 'search'), defaultModel: DEFAULT_MODELS.embed })
  const access = new AccessService({ store: cluster.credentials }, {
    config: config.access,
    repo: config.repo,
    loopback: isLoopback(config.api.host),
    open: config.api.insecure,
    adminToken: config.api.adminToken
  })
  let apiAddress: string | undefined
  const log = components.logger
  const remotePinning = new RemotePinning({
    services: config.pinning.remoteServices,
    save: async (services) => {
      await saveRemoteServices(config.repo, services)
      // config/show tells what the settings are now, as Kubo's does after a service add.
      config.pinning.remoteServices = services
    },
    resolve: async (path, options) => {
      const ipfs = path.startsWith('/ipns/') ? await content.names.resolve(path, { recursive: true, signal: options.signal }) : path
      return (await content.dagResolve(ipfs, options)).cid.toString()
    },
    has: async (cid) => repo.blockstore.has(parseCID(cid)),
    addrs: () => content.swarm.getMultiaddrs().map(String),
    connect: async (addr, options) => connect(content.swarm, addr, options),
    log
  })
  const autoGc = config.content.autoGc
    ? new AutoGc({ usage: async () => repoBlockBytes(blocksDir), gc: (options) => content.gc(options), log }, {
      storageMax: config.content.storageMax,
      watermark: config.content.storageGcWatermark,
      periodMs: config.content.gcPeriodMs
    })
    : undefined
  let startedAt = new Date()
  let startup: string | undefined
  let started = false
  let background = new AbortController()

  const node: DaemonNode = {
    config,
    content,
    cluster,
    inference,
    training,
    search,
    access,
    remotePinning,
    metrics,
    get swarm () { return content.swarm },
    peerId,
    bootstrap: joining.bootstrap,
    get startedAt () { return startedAt },
    starting: () => startup,
    version: () => versionInfo(REPO_VERSION),
    identity: async (peerId, options) => describePeer(content.swarm, agentVersion, peerId, options),
    peers: () => listPeers(content.swarm),
    pingPeers: async (options) => pingPeers(content.swarm, options),
    setApiAddress: async (url) => {
      apiAddress = url
      await repo.setApiAddress(url)
    },
    connect: async (addr, options) => connect(content.swarm, addr, options),
    diagnostics: async () => systemDiagnostics(config.repo, versionInfo(REPO_VERSION), started),
    profile: collectProfiles,
    logs,
    repoStat: async (options = {}) => {
      let numObjects: number | undefined
      if (options.sizeOnly !== true) {
        numObjects = 0
        for await (const _ of content.refsLocal(options)) numObjects++
      }
      return { repoSize: await repoBlockBytes(blocksDir), storageMax: config.content.storageMax, numObjects, version: `fs-repo@${REPO_VERSION}` }
    },
    async start () {
      if (started) return
      try {
        await content.start()
      } catch (err) {
        await repo.close().catch(() => {})
        throw err
      }
      try {
        await access.start()
        await cluster.start()
        await runtime.start()
        await inference.start()
        await training.start()
        await search.start()
      } catch (err) {
        await search.stop().catch(() => {})
        await training.stop().catch(() => {})
        await inference.stop().catch(() => {})
        await runtime.stop().catch(() => {})
        await cluster.stop().catch(() => {})
        await access.stop().catch(() => {})
        await content.stop().catch(() => {})
        await repo.close().catch(() => {})
        throw err
      }
      started = true
      startedAt = new Date()
      background = new AbortController()
      autoGc?.start()
      publishSigningKey(access, log, background.signal)
      if (config.inference.defaultModels) {
        // Not ready until then, so that a client that waits for ready sees the defaults' pins already made.
        startup = 'registering the default models'
        registerDefaultModels(cluster, inference, log, background.signal).catch(err => {
          if (!background.signal.aborted) log.warn({ err }, 'registering the default models failed')
        }).finally(() => { startup = undefined })
      }
      log.info({ peerId: node.peerId }, 'node started')
    },
    async stop () {
      if (!started) {
        await repo.close().catch(() => {})
        return
      }
      started = false
      background.abort(new Error('the node is stopping'))
      await autoGc?.stop()
      await search.stop()
      await training.stop()
      await inference.stop()
      await runtime.stop()
      await cluster.stop()
      await access.stop()
      await content.stop()
      await repo.close()
      log.info('node stopped')
    }
  }
  return node
}

/** Whether an API address is reachable from this machine only. */
export function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
}

/**
 * Publishes the node's JWT key to the cluster, retrying until there is a
 * leader to take it: tokens this node issues verify on the others once it is in.
 */
function publishSigningKey (access: AccessService, log: Logger, signal: AbortSignal): void {
  void (async () => {
    for (let wait = 500; !signal.aborted; wait = Math.min(wait * 2, 30_000)) {
      try {
        await access.publishSigningKey({ signal })
        return
      } catch (err: any) {
        if (signal.aborted) return
        log.debug({ err: err.message }, 'publishing the JWT key failed; retrying')
        await new Promise(resolve => setTimeout(resolve, wait).unref())
      }
    }
  })()
}
