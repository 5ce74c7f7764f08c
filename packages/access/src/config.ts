/**
 * The `auth`, `cors` and `rate_limits` sections of config.yaml, in the forms
 * the API documents write them: document 000's auth methods, cors_origins
 * and rate limits, document 003's cors and JWT expiry.
 */
import { parseDuration } from './duration.ts'
import { AccessConfigError } from './errors.ts'
import { expandPermissions } from './permissions.ts'
import { hashSecret, isPasswordHash, isSecretHash } from './secrets.ts'
import type { StoredCredential } from './credentials.ts'

export interface Limit {
  requests: number
  periodMs: number
}

export interface AccessConfig {
  /** `auto`: on once any credential exists, and always when the API listens beyond loopback. */
  enabled: boolean | 'auto'
  /** The config file's credentials, their secrets already hashed. */
  credentials: StoredCredential[]
  jwt: {
    expiryMs: number
    issuer: string
    audience: string
    /** Files of other issuers' public keys: SPKI PEM, and JWKS documents. */
    publicKeyFiles: string[]
    jwksFiles: string[]
  }
  cors: { origins: string[], methods: string[], headers: string[] }
  rateLimits: {
    /** `auto`: on whenever auth is. */
    enabled: boolean | 'auto'
    /** Overrides of the built-in limits, by route path. */
    endpoints: Record<string, Limit>
    /** Replaces the limit of authenticated requests that no other class covers. */
    default?: Limit
    /** Failed authentications an address may make: a guesser gets 429s, not endless 401s. */
    failedAuth: Limit
    websocketsPerIp: number
  }
}

export function defaultAccessConfig (): AccessConfig {
  return {
    enabled: 'auto',
    credentials: [],
    jwt: { expiryMs: 24 * 3600_000, issuer: 'node-daemon', audience: 'node-daemon', publicKeyFiles: [], jwksFiles: [] },
    cors: { origins: [], methods: ['GET', 'POST', 'PUT', 'DELETE'], headers: ['Authorization', 'Content-Type', 'X-API-Key'] },
    rateLimits: { enabled: 'auto', endpoints: {}, failedAuth: { requests: 100, periodMs: 60_000 }, websocketsPerIp: 10 }
  }
}

type Doc = Record<string, unknown>

function mapping (value: unknown, what: string, keys: string[]): Doc {
  if (value == null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw new AccessConfigError(`${what}: expected a mapping`)
  for (const key of Object.keys(value)) if (!keys.includes(key)) throw new AccessConfigError(`unknown setting ${JSON.stringify(`${what}.${key}`)}`)
  return value as Doc
}

function items (value: unknown, what: string): unknown[] {
  if (value == null) return []
  if (!Array.isArray(value)) throw new AccessConfigError(`${what}: expected a list`)
  return value
}

function strings (value: unknown, what: string): string[] {
  if (value == null) return []
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean)
  if (!Array.isArray(value) || !value.every(v => typeof v === 'string')) throw new AccessConfigError(`${what}: expected a list of strings`)
  return value
}

function word (value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new AccessConfigError(`${what}: expected a non-empty string`)
  return value
}

function permissions (value: unknown, what: string): string[] {
  const list = strings(value, what)
  const checked = expandPermissions(list)
  if (typeof checked === 'string') throw new AccessConfigError(`${what}: ${JSON.stringify(checked)} is not a permission`)
  return list
}

function onOff (value: unknown, what: string): boolean | 'auto' {
  if (value == null || value === 'auto') return 'auto'
  if (typeof value === 'boolean') return value
  if (value === 'true') return true
  if (value === 'false') return false
  throw new AccessConfigError(`${what}: expected true, false or auto`)
}

function limit (value: unknown, what: string): Limit {
  const doc = mapping(value, what, ['requests', 'period'])
  const requests = Number(doc.requests)
  if (!Number.isSafeInteger(requests) || requests <= 0) throw new AccessConfigError(`${what}.requests: expected a positive whole number`)
  return { requests, periodMs: parseDuration(doc.period ?? 60, `${what}.period`) }
}

/** A key or token as the config writes it: the secret itself (hashed here) or its `sha256:` hash. */
function secretCredential (entry: unknown, what: string, kind: 'api_key' | 'bearer_token', field: 'key' | 'token', index: number): StoredCredential {
  const doc = mapping(entry, what, [field, `${field}_hash`, 'name', 'permissions', 'expires'])
  const plain = doc[field]
  const hashed = doc[`${field}_hash`]
  if ((plain == null) === (hashed == null)) throw new AccessConfigError(`${what}: give either ${field} or ${field}_hash`)
  const hash = plain != null ? hashSecret(word(plain, `${what}.${field}`)) : word(hashed, `${what}.${field}_hash`)
  if (!isSecretHash(hash)) throw new AccessConfigError(`${what}.${field}_hash: expected sha256: and 64 hex digits`)
  const name = word(doc.name ?? `${kind}-${index}`, `${what}.name`)
  const expires = doc.expires == null ? undefined : new Date(String(doc.expires))
  if (expires != null && Number.isNaN(expires.getTime())) throw new AccessConfigError(`${what}.expires: expected a date`)
  return { id: `config-${name}`, kind, name, permissions: permissions(doc.permissions ?? ['*'], `${what}.permissions`), hash, expiresAt: expires?.toISOString() }
}

/**
 * The access settings of a parsed config document (its top-level `auth`,
 * `cors`, `cors_origins` and `rate_limits`); `source` names it in errors.
 */
export function parseAccessConfig (doc: { auth?: unknown, cors?: unknown, cors_origins?: unknown, rate_limits?: unknown }, source: string): Partial<AccessConfig> {
  const out: Partial<AccessConfig> = {}
  try {
    if (doc.auth != null) {
      const auth = mapping(doc.auth, 'auth', ['enabled', 'methods', 'jwt'])
      out.enabled = onOff(auth.enabled, 'auth.enabled')
      const credentials: StoredCredential[] = []
      items(auth.methods, 'auth.methods').forEach((method, m) => {
        const type = (method as Doc | null)?.type
        const what = `auth.methods[${m}]`
        if (type === 'api_key') {
          const entries = items(mapping(method, what, ['type', 'keys']).keys, `${what}.keys`)
          entries.forEach((e, i) => credentials.push(secretCredential(e, `${what}.keys[${i}]`, 'api_key', 'key', i)))
        } else if (type === 'bearer_token') {
          const entries = items(mapping(method, what, ['type', 'tokens']).tokens, `${what}.tokens`)
          entries.forEach((e, i) => credentials.push(secretCredential(e, `${what}.tokens[${i}]`, 'bearer_token', 'token', i)))
        } else if (type === 'basic_auth') {
          items(mapping(method, what, ['type', 'users']).users, `${what}.users`).forEach((e, i) => {
            const user = mapping(e, `${what}.users[${i}]`, ['username', 'password_hash', 'permissions'])
            const name = word(user.username, `${what}.users[${i}].username`)
            const hash = word(user.password_hash, `${what}.users[${i}].password_hash`)
            if (!isPasswordHash(hash)) throw new AccessConfigError(`${what}.users[${i}].password_hash: expected a bcrypt hash ($2b$...)`)
            credentials.push({ id: `config-${name}`, kind: 'user', name, permissions: permissions(user.permissions ?? ['*'], `${what}.users[${i}].permissions`), hash })
          })
        } else {
          throw new AccessConfigError(`${what}.type: expected api_key, bearer_token or basic_auth`)
        }
      })
      out.credentials = credentials
      const jwt = mapping(auth.jwt, 'auth.jwt', ['token_expiry', 'issuer', 'audience', 'public_keys', 'jwks'])
      const base = defaultAccessConfig().jwt
      out.jwt = {
        expiryMs: jwt.token_expiry == null ? base.expiryMs : parseDuration(jwt.token_expiry, 'auth.jwt.token_expiry'),
        issuer: jwt.issuer == null ? base.issuer : word(jwt.issuer, 'auth.jwt.issuer'),
        audience: jwt.audience == null ? base.audience : word(jwt.audience, 'auth.jwt.audience'),
        publicKeyFiles: strings(jwt.public_keys, 'auth.jwt.public_keys'),
        jwksFiles: strings(jwt.jwks, 'auth.jwt.jwks')
      }
    }
    if (doc.cors != null || doc.cors_origins != null) {
      const cors = mapping(doc.cors, 'cors', ['origins', 'methods', 'headers'])
      const base = defaultAccessConfig().cors
      out.cors = {
        origins: [...strings(cors.origins, 'cors.origins'), ...strings(doc.cors_origins, 'cors_origins')],
        methods: cors.methods == null ? base.methods : strings(cors.methods, 'cors.methods').map(m => m.toUpperCase()),
        headers: cors.headers == null ? base.headers : strings(cors.headers, 'cors.headers')
      }
    }
    if (doc.rate_limits != null) {
      const limits = mapping(doc.rate_limits, 'rate_limits', ['enabled', 'default', 'endpoints', 'failed_auth', 'websockets_per_ip'])
      const endpoints = mapping(limits.endpoints, 'rate_limits.endpoints', Object.keys((limits.endpoints as Doc | undefined) ?? {}))
      const websockets = limits.websockets_per_ip == null ? 10 : Number(limits.websockets_per_ip)
      if (!Number.isSafeInteger(websockets) || websockets <= 0) throw new AccessConfigError('rate_limits.websockets_per_ip: expected a positive whole number')
      out.rateLimits = {
        enabled: onOff(limits.enabled, 'rate_limits.enabled'),
        default: limits.default == null ? undefined : limit(limits.default, 'rate_limits.default'),
        endpoints: Object.fromEntries(Object.entries(endpoints).map(([path, value]) => [path, limit(value, `rate_limits.endpoints.${path}`)])),
        failedAuth: limits.failed_auth == null ? defaultAccessConfig().rateLimits.failedAuth : limit(limits.failed_auth, 'rate_limits.failed_auth'),
        websocketsPerIp: websockets
      }
    }
  } catch (err) {
    if (err instanceof AccessConfigError) throw new AccessConfigError(`${source}: ${err.message}`)
    throw err
  }
  return out
}

/** Later layers win, section by section. */
export function mergeAccessConfig (base: AccessConfig, ...layers: Array<Partial<AccessConfig> | undefined>): AccessConfig {
  const out = structuredClone(base)
  for (const layer of layers) {
    if (layer == null) continue
    if (layer.enabled != null) out.enabled = layer.enabled
    if (layer.credentials != null) out.credentials = [...out.credentials, ...layer.credentials]
    if (layer.jwt != null) out.jwt = layer.jwt
    if (layer.cors != null) out.cors = layer.cors
    if (layer.rateLimits != null) out.rateLimits = layer.rateLimits
  }
  return out
}
