/**
 * The settings a command line parses before it knows which command runs, and
 * where the repo is. Only light imports: every thin client and
 * `node-daemon --version` load this, not the node (packages/cli's
 * startup test checks).
 */
import envPaths from 'env-paths'
import { ConfigError } from './errors.ts'

/** The value of cluster.secret that turns the private network off. */
export const OPEN_SWARM = 'off'
const SECRET = /^[0-9a-f]{64}$/i

export function defaultRepo (env: NodeJS.ProcessEnv = process.env): string {
  return env.NODE_DAEMON_REPO ?? envPaths('node-daemon', { suffix: '' }).data
}

export function port (value: unknown, source: string): number | undefined {
  if (value == null || value === '') return undefined
  const n = typeof value === 'number' ? value : Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${source}: ${JSON.stringify(value)} is not a TCP port`)
  return n
}

export function text (value: unknown, source: string): string | undefined {
  if (value == null || value === '') return undefined
  if (typeof value !== 'string') throw new ConfigError(`${source}: expected a string, got ${JSON.stringify(value)}`)
  return value
}

/** Checks a private-network key; hex is lower-cased so that equal keys compare equal. */
export function parseSecret (value: unknown, source: string): string | undefined {
  const s = text(value, source)?.trim()
  if (s == null || s === '') return undefined
  if (s.toLowerCase() === OPEN_SWARM) return OPEN_SWARM
  if (!SECRET.test(s)) throw new ConfigError(`${source}: the cluster secret must be 64 hex digits or '${OPEN_SWARM}'`)
  return s.toLowerCase()
}

/** Parses a port given on the command line. */
export function parsePort (value: string, name: string): number {
  const n = port(value, name)
  if (n == null) throw new ConfigError(`${name} needs a value`)
  return n
}
