import { parseCID } from '@node-daemon/content'
import { BadRequestError } from './errors.ts'
import type { FastifyRequest } from 'fastify'

/**
 * Kubo passes arguments as repeated `arg` query parameters; the documents of
 * the earlier APIs pass them as JSON body fields (`cid`, `path`, `addr`...).
 * Routes accept both.
 */
export function args (request: FastifyRequest, ...bodyKeys: string[]): string[] {
  const query = (request.query as { arg?: string | string[] } | undefined)?.arg
  const fromQuery = query == null ? [] : Array.isArray(query) ? query : [query]
  const body = request.body as Record<string, unknown> | undefined
  const fromBody: string[] = []
  if (body != null && typeof body === 'object' && !Buffer.isBuffer(body)) {
    for (const key of ['arg', ...bodyKeys]) {
      const value = body[key]
      if (typeof value === 'string') fromBody.push(value)
      else if (Array.isArray(value)) fromBody.push(...value.filter((v): v is string => typeof v === 'string'))
    }
  }
  return [...fromQuery, ...fromBody]
}

export function firstArg (request: FastifyRequest, what: string, ...bodyKeys: string[]): string {
  const [arg] = args(request, ...bodyKeys)
  if (arg == null || arg === '') throw new BadRequestError(`argument "${what}" is required`)
  return arg
}

/**
 * An option from the query string, else from a JSON body. A value the query
 * schema filled in as its default does not hide the same field of the body:
 * only a parameter the URL itself carries comes first.
 */
export function option<T> (request: FastifyRequest, name: string): T | undefined {
  const query = (request.query as Record<string, unknown> | undefined)?.[name]
  const body = request.body as Record<string, unknown> | undefined
  const fromBody = body != null && typeof body === 'object' && !Buffer.isBuffer(body) ? body[name] : undefined
  if (fromBody !== undefined && !new URLSearchParams(request.url.split('?')[1] ?? '').has(name)) return fromBody as T
  return query as T | undefined
}

/** Kubo's booleans: `true`, `false`, or the bare flag. */
export function flag (value: unknown, fallback: boolean): boolean {
  if (value == null) return fallback
  if (typeof value === 'boolean') return value
  if (value === '' || value === 'true' || value === '1') return true
  if (value === 'false' || value === '0') return false
  throw new BadRequestError(`expected a boolean, got ${JSON.stringify(value)}`)
}

/** Kubo durations such as `24h`, `90s` or `1h30m`, in milliseconds. */
export function duration (value: unknown, name: string): number | undefined {
  if (value == null || value === '') return undefined
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  const text = String(value)
  // Go's time.ParseDuration takes a bare 0 (Kubo's profile-time=0).
  if (text === '0') return 0
  let total = 0
  let rest = text
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest)
    if (match == null) throw new BadRequestError(`${name}: invalid duration ${JSON.stringify(text)}: use one such as 24h or 90s`)
    total += Number(match[1]) * units[match[2]]
    rest = rest.slice(match[0].length)
  }
  return total
}

/** Values of an option given repeated, or comma-separated in one value (Kubo's delimited options, the Pinning Service API's arrays). */
export function delimited (values: string[] | undefined): string[] | undefined {
  return values?.flatMap(v => v.split(',')).map(v => v.trim()).filter(v => v !== '')
}

/** A CID given as an option, in its canonical form. */
export function cidOption (raw: string, name = 'cid'): string {
  try {
    return parseCID(raw).toString()
  } catch {
    throw new BadRequestError(`${name} ${JSON.stringify(raw.slice(0, 100))} is not a valid CID`)
  }
}
