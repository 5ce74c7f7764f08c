import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import envPaths from 'env-paths'
import { parse as parseYaml } from 'yaml'
import { ConfigError } from './errors.ts'

export interface Config {
  repo: string
  api: { host: string, port: number }
  swarm: { host: string, port: number, bootstrap: string[] }
  log: { level: string }
}

/** Settings as they come from one source: any of them may be missing. */
export interface ConfigLayer {
  repo?: string
  api?: { host?: string, port?: number }
  swarm?: { host?: string, port?: number, bootstrap?: string[] }
  log?: { level?: string }
}

export const CONFIG_FILE = 'config.yaml'
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export function defaultRepo (env: NodeJS.ProcessEnv = process.env): string {
  return env.NODE_DAEMON_REPO ?? envPaths('node-daemon', { suffix: '' }).data
}

export function defaults (env: NodeJS.ProcessEnv = process.env): Config {
  return {
    repo: defaultRepo(env),
    api: { host: '127.0.0.1', port: 8000 },
    swarm: { host: '0.0.0.0', port: 4001, bootstrap: [] },
    log: { level: 'info' }
  }
}

function port (value: unknown, source: string): number | undefined {
  if (value == null || value === '') return undefined
  const n = typeof value === 'number' ? value : Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${source}: ${JSON.stringify(value)} is not a TCP port`)
  return n
}

function text (value: unknown, source: string): string | undefined {
  if (value == null || value === '') return undefined
  if (typeof value !== 'string') throw new ConfigError(`${source}: expected a string, got ${JSON.stringify(value)}`)
  return value
}

function list (value: unknown, source: string): string[] | undefined {
  if (value == null || value === '') return undefined
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean)
  if (!Array.isArray(value) || !value.every(v => typeof v === 'string')) throw new ConfigError(`${source}: expected a list of multiaddrs`)
  return value
}

function level (value: unknown, source: string): string | undefined {
  const l = text(value, source)
  if (l != null && !LOG_LEVELS.includes(l)) throw new ConfigError(`${source}: log level must be one of ${LOG_LEVELS.join(', ')}`)
  return l
}

/** Checks a parsed YAML document and turns it into a layer. */
export function layerFromObject (doc: unknown, source: string): ConfigLayer {
  if (doc == null) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`${source}: expected a mapping at the top level`)
  const d = doc as Record<string, any>
  const known = new Set(['repo', 'api', 'swarm', 'log'])
  for (const key of Object.keys(d)) if (!known.has(key)) throw new ConfigError(`${source}: unknown setting ${JSON.stringify(key)}`)
  return {
    repo: text(d.repo, `${source} repo`),
    api: { host: text(d.api?.host, `${source} api.host`), port: port(d.api?.port, `${source} api.port`) },
    swarm: {
      host: text(d.swarm?.host, `${source} swarm.host`),
      port: port(d.swarm?.port, `${source} swarm.port`),
      bootstrap: list(d.swarm?.bootstrap, `${source} swarm.bootstrap`)
    },
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
    api: { host: text(env.NODE_DAEMON_API_HOST, 'NODE_DAEMON_API_HOST'), port: port(env.NODE_DAEMON_API_PORT, 'NODE_DAEMON_API_PORT') },
    swarm: {
      host: text(env.NODE_DAEMON_SWARM_HOST, 'NODE_DAEMON_SWARM_HOST'),
      port: port(env.NODE_DAEMON_SWARM_PORT, 'NODE_DAEMON_SWARM_PORT'),
      bootstrap: list(env.NODE_DAEMON_BOOTSTRAP, 'NODE_DAEMON_BOOTSTRAP')
    },
    log: { level: level(env.NODE_DAEMON_LOG_LEVEL, 'NODE_DAEMON_LOG_LEVEL') }
  }
}

/** Later layers win, key by key; a missing value never overrides. */
export function merge (base: Config, ...layers: ConfigLayer[]): Config {
  const out: Config = structuredClone(base)
  for (const layer of layers) {
    out.repo = layer.repo ?? out.repo
    out.api.host = layer.api?.host ?? out.api.host
    out.api.port = layer.api?.port ?? out.api.port
    out.swarm.host = layer.swarm?.host ?? out.swarm.host
    out.swarm.port = layer.swarm?.port ?? out.swarm.port
    out.swarm.bootstrap = layer.swarm?.bootstrap ?? out.swarm.bootstrap
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
  return merge(defaults(env), inRepo, explicit, layerFromEnv(env), flags, { repo })
}

/** Parses a port given on the command line. */
export function parsePort (value: string, name: string): number {
  const n = port(value, name)
  if (n == null) throw new ConfigError(`${name} needs a value`)
  return n
}
