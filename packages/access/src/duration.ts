/**
 * Durations as config.yaml and the API write them. Its own module, with
 * only light imports, so that the command line checks a flag's duration
 * without loading the access service.
 */
import { AccessConfigError } from './errors.ts'

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000, w: 7 * 86_400_000 }

/** `24h`, `30d`, `1h30m`, `90s`, or a number of seconds. */
export function parseDuration (value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value * 1000
  const text = String(value ?? '').trim()
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)]
  if (text === '' || parts.map(p => p[0]).join('') !== text) throw new AccessConfigError(`${what}: ${JSON.stringify(value)} is not a duration such as 30s, 24h or 30d`)
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]], 0)
  if (!Number.isSafeInteger(Math.round(ms)) || ms <= 0) throw new AccessConfigError(`${what}: ${JSON.stringify(value)} is not a positive duration`)
  return Math.round(ms)
}
