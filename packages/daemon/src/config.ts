import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parsePeerId } from '@node-daemon/swarm'
import { parse as parseYaml } from 'yaml'
import { defaultAccessConfig, mergeAccessConfig, parseAccessConfig } from '@node-daemon/access'
import { ConfigError } from './errors.ts'
import { defaultRepo, parseSecret, port, text } from './settings.ts'
import type { AccessConfig } from '@node-daemon/access'
import type { Allocation } from '@node-daemon/cluster'

export interface Config {
  repo: string
  api: ApiConfig
  /** Credentials, CORS and rate limits (config.yaml's auth, cors and rate_limits). */
  access: AccessConfig
  swarm: { host: string, port: number, bootstrap: string[], mdns: boolean }
  cluster: ClusterConfig
  inference: InferenceConfig
  content: ContentConfig
  pinning: PinningConfig
  log: { level: string }
}

export interface PinningConfig {
  /** Kubo's Pinning.RemoteServices: remote Pinning Service APIs by name, which `pin remote service add|rm` edit. */
  remoteServices: Record<string, { endpoint: string, key: string }>
}

export interface ApiConfig {
  host: string
  port: number
  /** Serve beyond loopback without credentials: refused unless this is set. */
  insecure: boolean
  /** Document 002's admin token (NODE_DAEMON_ADMIN_TOKEN): every permission. */
  adminToken?: string
  /** With no credential in the cluster yet, make an admin key on start and print it once (the Docker image does). */
  initAdminKey: boolean
}

export interface ContentConfig {
  /** How long a block that is not local may take to arrive before the request fails with a 504. */
  timeoutMs: number
  /** Kubo's --enable-gc: run a GC every gcPeriodMs while the blocks are past the watermark. */
  autoGc: boolean
  /** Kubo's Datastore.StorageMax, in bytes. */
  storageMax: number
  /** Kubo's Datastore.StorageGCWatermark: a percentage of storageMax. */
  storageGcWatermark: number
  /** Kubo's Datastore.GCPeriod. */
  gcPeriodMs: number
}

export interface InferenceConfig {
  /** How long an idle model stays loaded, as Ollama's keep_alive. */
  keepAliveMs: number
  /** `auto` takes CUDA when onnxruntime has it and the node has a GPU, else the CPU. */
  executionProvider: 'auto' | 'cpu' | 'cuda'
  /** onnxruntime's threads per session, inference and training alike; unset, all cores. */
  threads?: number
  /** Register the embedded default models on start when the cluster lacks them. */
  defaultModels: boolean
  /** Bytes of keys and values each loaded model keeps for prompts that begin as recent ones did; 0 keeps none; unset, 256 MiB. */
  prefixCacheBytes?: number
}

export interface ClusterConfig {
  /**
   * The private-network key: 64 hex digits, or 'off' for an open swarm that
   * public IPFS nodes can join. Unset: the repo's swarm.key.
   */
  secret?: string
  /** Raft voters; the other members are learners. Odd, 1 to 7. */
  voters: number
  heartbeatMs: number
  /** A node unheard for this long is marked offline. */
  nodeTimeoutMs: number
  /** A voter unheard for this long is replaced by a learner. */
  voterTimeoutMs: number
  /** Raft's logical clock. */
  tickMs: number
  /** Applied entries between Raft snapshots of the cluster state, after which the log is compacted. */
  snapshotEvery: number
  /**
   * IPFS Cluster's trusted_peers: peer ids of the members that may become
   * voters and call admin operations, or `*` for all. Unset: `*` with a
   * private-network key, else none (the founder and nodes joined with a
   * voter token are trusted regardless).
   */
  trustedPeers?: string[]
  /** The join token a new node presents; needed to join over an open swarm. */
  joinToken?: string
  /**
   * The most of each resource this node's allocation may give the cluster,
   * in percent: the operator's ceiling on what /api/resources and node
   * registration set. 100 each by default.
   */
  allocationLimits: Allocation
}

/** Settings as they come from one source: any of them may be missing. */
export interface ConfigLayer {
  repo?: string
  api?: Partial<ApiConfig>
  access?: Partial<AccessConfig>
  swarm?: { host?: string, port?: number, bootstrap?: string[], mdns?: boolean }
  cluster?: Partial<Omit<ClusterConfig, 'allocationLimits'>> & { allocationLimits?: Partial<Allocation> }
  inference?: Partial<InferenceConfig>
  content?: Partial<ContentConfig>
  pinning?: Partial<PinningConfig>
  log?: { level?: string }
}

export const CONFIG_FILE = 'config.yaml'
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
export function defaults (env: NodeJS.ProcessEnv = process.env): Config {
  return {
    repo: defaultRepo(env),
    api: { host: '127.0.0.1', port: 8000, insecure: false, initAdminKey: false },
    access: defaultAccessConfig(),
    swarm: { host: '0.0.0.0', port: 4001, bootstrap: [], mdns: false },
    cluster: { voters: 3, heartbeatMs: 1000, nodeTimeoutMs: 10_000, voterTimeoutMs: 30_000, tickMs: 100, snapshotEvery: 10_000, allocationLimits: { cpu: 100, memory: 100, gpu: 100, storage: 100 } },
    inference: { keepAliveMs: 5 * 60_000, executionProvider: 'auto', defaultModels: true },
    content: { timeoutMs: 2 * 60_000, autoGc: false, storageMax: 10_000_000_000, storageGcWatermark: 90, gcPeriodMs: 60 * 60_000 },
    pinning: { remoteServices: {} },
    log: { level: 'info' }
  }
}

function list (value: unknown, source: string): string[] | undefined {
  if (value == null || value === '') return undefined
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean)
  if (!Array.isArray(value) || !value.every(v => typeof v === 'string')) throw new ConfigError(`${source}: expected a list of multiaddrs`)
  return value
}

function bool (value: unknown, source: string): boolean | undefined {
  if (value == null || value === '') return undefined
  if (typeof value === 'boolean') return value
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase()
    if (v === 'true' || v === '1') return true
    if (v === 'false' || v === '0') return false
  }
  throw new ConfigError(`${source}: expected true or false, got ${JSON.stringify(value)}`)
}

function positive (value: unknown, source: string): number | undefined {
  if (value == null || value === '') return undefined
  const n = typeof value === 'number' ? value : Number(value)
  if (!Number.isSafeInteger(n) || n <= 0) throw new ConfigError(`${source}: ${JSON.stringify(value)} is not a positive integer`)
  return n
}

const BYTE_UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 }

/** A size in bytes, or with a unit as Kubo writes StorageMax: 10GB, 500MB, 1.5TiB. */
function byteSize (value: unknown, source: string): number | undefined {
  if (value == null || value === '') return undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(value))
  const unit = BYTE_UNITS[(match?.[2] ?? '').toUpperCase() || 'B']
  const n = match == null || unit == null ? NaN : Math.floor(Number(match[1]) * unit)
  if (!Number.isSafeInteger(n) || n <= 0) throw new ConfigError(`${source}: ${JSON.stringify(value)} is not a size such as 10GB or 500MB`)
  return n
}

/** A size, or 0 for none. */
function sizeOrZero (value: unknown, source: string): number | undefined {
  return value === 0 || value === '0' ? 0 : byteSize(value, source)
}

function percent (value: unknown, source: string): number | undefined {
  const n = positive(value, source)
  if (n != null && n > 100) throw new ConfigError(`${source}: ${n} is not a percentage from 1 to 100`)
  return n
}

/** A share from 0 to 100: a limit of 0 keeps a resource from the cluster. */
function share (value: unknown, source: string): number | undefined {
  if (value == null || value === '') return undefined
  const n = typeof value === 'number' ? value : Number(value)
  if (!Number.isFinite(n) || n < 0 || n > 100) throw new ConfigError(`${source}: ${JSON.stringify(value)} is not a percentage from 0 to 100`)
  return n
}

function allocationLimits (value: unknown, source: string): Partial<Allocation> | undefined {
  if (value == null) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${source}: expected cpu, memory, gpu and storage percentages`)
  const known = ['cpu', 'memory', 'gpu', 'storage'] as const
  const unknown = Object.keys(value).find(k => !(known as readonly string[]).includes(k))
  if (unknown != null) throw new ConfigError(`${source}: unknown resource ${JSON.stringify(unknown)}; known: ${known.join(', ')}`)
  const limits: Partial<Allocation> = {}
  for (const k of known) {
    const n = share((value as Record<string, unknown>)[k], `${source}.${k}`)
    if (n != null) limits[k] = n
  }
  return limits
}

function voters (value: unknown, source: string): number | undefined {
  const n = positive(value, source)
  // An even count adds a voter without adding a failure the cluster survives.
  if (n != null && (n % 2 === 0 || n > 7)) throw new ConfigError(`${source}: voters must be 1, 3, 5 or 7, got ${n}`)
  return n
}

/** Trusted peers: peer ids, or `*` for every peer. */
export function parseTrustedPeers (value: unknown, source: string): string[] | undefined {
  if (value == null || value === '') return undefined
  const ids = typeof value === 'string' ? value.split(/[\s,]+/).filter(Boolean) : value
  if (!Array.isArray(ids) || !ids.every(v => typeof v === 'string')) throw new ConfigError(`${source}: expected a list of peer ids or '*'`)
  for (const id of ids) {
    if (id === '*') continue
    try {
      parsePeerId(id)
    } catch (err: any) {
      throw new ConfigError(`${source}: ${err.message as string}`)
    }
  }
  return ids
}

/** Remote pinning services by name, each with its endpoint and key, as `pin remote service add` writes them. */
function remoteServices (value: unknown, source: string): PinningConfig['remoteServices'] | undefined {
  if (value == null) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${source}: expected a mapping of service names`)
  const out: PinningConfig['remoteServices'] = {}
  for (const [name, service] of Object.entries(value)) {
    const s = section(service, name, ['endpoint', 'key'], `${source}`)
    const endpoint = text(s.endpoint, `${source}.${name}.endpoint`)
    const key = text(s.key, `${source}.${name}.key`)
    if (endpoint == null || key == null) throw new ConfigError(`${source}.${name}: needs an endpoint and a key`)
    out[name] = { endpoint, key }
  }
  return out
}

/** A YAML section: a mapping with known keys only, so a misspelt key is not silently ignored. */
function section (value: unknown, name: string, keys: string[], source: string): Record<string, unknown> {
  if (value == null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${source} ${name}: expected a mapping`)
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) throw new ConfigError(`${source}: unknown setting ${JSON.stringify(`${name}.${key}`)}`)
  }
  return value as Record<string, unknown>
}

const PROVIDERS = ['auto', 'cpu', 'cuda'] as const

function provider (value: unknown, source: string): InferenceConfig['executionProvider'] | undefined {
  const p = text(value, source)
  if (p != null && !(PROVIDERS as readonly string[]).includes(p)) throw new ConfigError(`${source}: execution provider must be one of ${PROVIDERS.join(', ')}`)
  return p as InferenceConfig['executionProvider'] | undefined
}

function level (value: unknown, source: string): string | undefined {
  const l = text(value, source)
  if (l != null && !LOG_LEVELS.includes(l)) throw new ConfigError(`${source}: log level must be one of ${LOG_LEVELS.join(', ')}`)
  return l
}

/** The access sections of a YAML document, their errors as ConfigErrors. */
function accessLayer (d: Record<string, unknown>, source: string): Partial<AccessConfig> | undefined {
  try {
    return parseAccessConfig(d, source)
  } catch (err: any) {
    if (err.name === 'AccessConfigError') throw new ConfigError(err.message)
    throw err
  }
}

/** Checks a parsed YAML document and turns it into a layer. */
export function layerFromObject (doc: unknown, source: string): ConfigLayer {
  if (doc == null) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`${source}: expected a mapping at the top level`)
  const d = doc as Record<string, any>
  const known = new Set(['repo', 'api', 'swarm', 'cluster', 'inference', 'content', 'pinning', 'log', 'auth', 'cors', 'cors_origins', 'rate_limits'])
  for (const key of Object.keys(d)) if (!known.has(key)) throw new ConfigError(`${source}: unknown setting ${JSON.stringify(key)}`)
  const swarm = d.swarm ?? {}
  const cluster = section(d.cluster, 'cluster', ['secret', 'voters', 'heartbeat_ms', 'node_timeout_ms', 'voter_timeout_ms', 'tick_ms', 'snapshot_every', 'trusted_peers', 'join_token', 'allocation_limits'], source)
  const inference = section(d.inference, 'inference', ['keep_alive_ms', 'execution_provider', 'threads', 'default_models', 'prefix_cache'], source)
  const content = section(d.content, 'content', ['timeout_ms', 'auto_gc', 'storage_max', 'storage_gc_watermark', 'gc_period_ms'], source)
  const pinning = section(d.pinning, 'pinning', ['remote_services'], source)
  return {
    repo: text(d.repo, `${source} repo`),
    api: { host: text(d.api?.host, `${source} api.host`), port: port(d.api?.port, `${source} api.port`), insecure: bool(d.api?.insecure, `${source} api.insecure`) },
    access: accessLayer(d, source),
    swarm: {
      host: text(swarm.host, `${source} swarm.host`),
      port: port(swarm.port, `${source} swarm.port`),
      bootstrap: list(swarm.bootstrap, `${source} swarm.bootstrap`),
      mdns: bool(swarm.mdns, `${source} swarm.mdns`)
    },
    cluster: {
      secret: parseSecret(cluster.secret, `${source} cluster.secret`),
      voters: voters(cluster.voters, `${source} cluster.voters`),
      heartbeatMs: positive(cluster.heartbeat_ms, `${source} cluster.heartbeat_ms`),
      nodeTimeoutMs: positive(cluster.node_timeout_ms, `${source} cluster.node_timeout_ms`),
      voterTimeoutMs: positive(cluster.voter_timeout_ms, `${source} cluster.voter_timeout_ms`),
      tickMs: positive(cluster.tick_ms, `${source} cluster.tick_ms`),
      snapshotEvery: positive(cluster.snapshot_every, `${source} cluster.snapshot_every`),
      trustedPeers: parseTrustedPeers(cluster.trusted_peers, `${source} cluster.trusted_peers`),
      joinToken: text(cluster.join_token, `${source} cluster.join_token`),
      allocationLimits: allocationLimits(cluster.allocation_limits, `${source} cluster.allocation_limits`)
    },
    inference: {
      keepAliveMs: positive(inference.keep_alive_ms, `${source} inference.keep_alive_ms`),
      executionProvider: provider(inference.execution_provider, `${source} inference.execution_provider`),
      threads: positive(inference.threads, `${source} inference.threads`),
      defaultModels: bool(inference.default_models, `${source} inference.default_models`),
      prefixCacheBytes: sizeOrZero(inference.prefix_cache, `${source} inference.prefix_cache`)
    },
    content: {
      timeoutMs: positive(content.timeout_ms, `${source} content.timeout_ms`),
      autoGc: bool(content.auto_gc, `${source} content.auto_gc`),
      storageMax: byteSize(content.storage_max, `${source} content.storage_max`),
      storageGcWatermark: percent(content.storage_gc_watermark, `${source} content.storage_gc_watermark`),
      gcPeriodMs: positive(content.gc_period_ms, `${source} content.gc_period_ms`)
    },
    pinning: { remoteServices: remoteServices(pinning.remote_services, `${source} pinning.remote_services`) },
    log: { level: level(d.log?.level, `${source} log.level`) }
  }
}

export async function layerFromFile (file: string, optional = false): Promise<ConfigLayer> {
  let body: string
  try {
    body = await readFile(file, 'utf8')
  } catch (err: any) {
    if (optional && err.code === 'ENOENT') return {}
    throw new ConfigError(`cannot read config ${file}: ${err.message}`)
  }
  try {
    return layerFromObject(parseYaml(body), file)
  } catch (err: any) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError(`${file} is not valid YAML: ${err.message}`)
  }
}

export function layerFromEnv (env: NodeJS.ProcessEnv): ConfigLayer {
  return {
    api: {
      host: text(env.NODE_DAEMON_API_HOST, 'NODE_DAEMON_API_HOST'),
      port: port(env.NODE_DAEMON_API_PORT, 'NODE_DAEMON_API_PORT'),
      insecure: bool(env.NODE_DAEMON_API_INSECURE, 'NODE_DAEMON_API_INSECURE'),
      adminToken: text(env.NODE_DAEMON_ADMIN_TOKEN, 'NODE_DAEMON_ADMIN_TOKEN'),
      initAdminKey: bool(env.NODE_DAEMON_INIT_ADMIN_KEY, 'NODE_DAEMON_INIT_ADMIN_KEY')
    },
    swarm: {
      host: text(env.NODE_DAEMON_SWARM_HOST, 'NODE_DAEMON_SWARM_HOST'),
      port: port(env.NODE_DAEMON_SWARM_PORT, 'NODE_DAEMON_SWARM_PORT'),
      bootstrap: list(env.NODE_DAEMON_BOOTSTRAP, 'NODE_DAEMON_BOOTSTRAP'),
      mdns: bool(env.NODE_DAEMON_MDNS, 'NODE_DAEMON_MDNS')
    },
    cluster: {
      secret: parseSecret(env.NODE_DAEMON_CLUSTER_SECRET, 'NODE_DAEMON_CLUSTER_SECRET'),
      voters: voters(env.NODE_DAEMON_CLUSTER_VOTERS, 'NODE_DAEMON_CLUSTER_VOTERS'),
      trustedPeers: parseTrustedPeers(env.NODE_DAEMON_CLUSTER_TRUSTED_PEERS, 'NODE_DAEMON_CLUSTER_TRUSTED_PEERS'),
      joinToken: text(env.NODE_DAEMON_JOIN_TOKEN, 'NODE_DAEMON_JOIN_TOKEN')
    },
    inference: {
      executionProvider: provider(env.NODE_DAEMON_EXECUTION_PROVIDER, 'NODE_DAEMON_EXECUTION_PROVIDER'),
      defaultModels: bool(env.NODE_DAEMON_DEFAULT_MODELS, 'NODE_DAEMON_DEFAULT_MODELS')
    },
    content: {
      timeoutMs: positive(env.NODE_DAEMON_CONTENT_TIMEOUT_MS, 'NODE_DAEMON_CONTENT_TIMEOUT_MS'),
      autoGc: bool(env.NODE_DAEMON_ENABLE_GC, 'NODE_DAEMON_ENABLE_GC'),
      storageMax: byteSize(env.NODE_DAEMON_STORAGE_MAX, 'NODE_DAEMON_STORAGE_MAX')
    },
    log: { level: level(env.NODE_DAEMON_LOG_LEVEL, 'NODE_DAEMON_LOG_LEVEL') }
  }
}

/** Later layers win, key by key; a missing value never overrides. */
export function merge (base: Config, ...layers: ConfigLayer[]): Config {
  const out: Config = structuredClone(base)
  for (const layer of layers) {
    out.repo = layer.repo ?? out.repo
    out.api = { ...out.api, ...defined(layer.api ?? {}) }
    out.access = mergeAccessConfig(out.access, layer.access)
    out.swarm.host = layer.swarm?.host ?? out.swarm.host
    out.swarm.port = layer.swarm?.port ?? out.swarm.port
    out.swarm.bootstrap = layer.swarm?.bootstrap ?? out.swarm.bootstrap
    out.swarm.mdns = layer.swarm?.mdns ?? out.swarm.mdns
    // Set only when given, so that an unset secret stays absent rather than undefined.
    if (layer.cluster?.secret != null) out.cluster.secret = layer.cluster.secret
    out.cluster.voters = layer.cluster?.voters ?? out.cluster.voters
    out.cluster.heartbeatMs = layer.cluster?.heartbeatMs ?? out.cluster.heartbeatMs
    out.cluster.nodeTimeoutMs = layer.cluster?.nodeTimeoutMs ?? out.cluster.nodeTimeoutMs
    out.cluster.voterTimeoutMs = layer.cluster?.voterTimeoutMs ?? out.cluster.voterTimeoutMs
    out.cluster.tickMs = layer.cluster?.tickMs ?? out.cluster.tickMs
    out.cluster.snapshotEvery = layer.cluster?.snapshotEvery ?? out.cluster.snapshotEvery
    if (layer.cluster?.trustedPeers != null) out.cluster.trustedPeers = layer.cluster.trustedPeers
    if (layer.cluster?.joinToken != null) out.cluster.joinToken = layer.cluster.joinToken
    out.cluster.allocationLimits = { ...out.cluster.allocationLimits, ...defined(layer.cluster?.allocationLimits ?? {}) }
    out.inference.keepAliveMs = layer.inference?.keepAliveMs ?? out.inference.keepAliveMs
    out.inference.executionProvider = layer.inference?.executionProvider ?? out.inference.executionProvider
    if (layer.inference?.threads != null) out.inference.threads = layer.inference.threads
    out.inference.defaultModels = layer.inference?.defaultModels ?? out.inference.defaultModels
    if (layer.inference?.prefixCacheBytes != null) out.inference.prefixCacheBytes = layer.inference.prefixCacheBytes
    out.content = { ...out.content, ...defined(layer.content ?? {}) }
    // Services by name: a later file adds to or replaces those of an earlier one.
    out.pinning.remoteServices = { ...out.pinning.remoteServices, ...layer.pinning?.remoteServices }
    out.log.level = layer.log?.level ?? out.log.level
  }
  return out
}

export interface LoadConfigOptions {
  /** Settings from command-line flags: they win over everything. */
  flags?: ConfigLayer
  /** A YAML file named with --config. */
  configFile?: string
  env?: NodeJS.ProcessEnv
}

/**
 * Resolves the settings: defaults, then the repo's config.yaml, then the file
 * given with --config, then NODE_DAEMON_* env vars, then flags.
 */
export async function loadConfig (options: LoadConfigOptions = {}): Promise<Config> {
  const env = options.env ?? process.env
  const flags = options.flags ?? {}
  const explicit = options.configFile != null ? await layerFromFile(options.configFile) : {}
  const repo = flags.repo ?? env.NODE_DAEMON_REPO ?? explicit.repo ?? defaultRepo(env)
  const inRepo = await layerFromFile(join(repo, CONFIG_FILE), true)
  return checkConfig(merge(defaults(env), inRepo, explicit, layerFromEnv(env), flags, { repo }))
}

/** The keys of a layer's section that are set: a missing value never overrides. */
function defined<T extends object> (section: T): Partial<T> {
  return Object.fromEntries(Object.entries(section).filter(([, value]) => value !== undefined)) as Partial<T>
}

/** Checks settings that are only wrong together. */
export function checkConfig (config: Config): Config {
  const { heartbeatMs, nodeTimeoutMs, voterTimeoutMs } = config.cluster
  // Otherwise every node would be marked offline between two of its own heartbeats.
  if (nodeTimeoutMs <= heartbeatMs) throw new ConfigError(`cluster.node_timeout_ms (${nodeTimeoutMs}) must be longer than cluster.heartbeat_ms (${heartbeatMs})`)
  if (voterTimeoutMs < nodeTimeoutMs) throw new ConfigError(`cluster.voter_timeout_ms (${voterTimeoutMs}) must not be shorter than cluster.node_timeout_ms (${nodeTimeoutMs})`)
  return config
}
