/**
 * The checks every request passes before its route runs: the Host (which
 * defeats DNS rebinding of a node that serves local processes without
 * credentials), the browser Origin, the credentials, the route's permission,
 * and which rate limit counts it.
 */
import { AuthenticationError, AuthorizationError } from './errors.ts'
import { expandPermissions } from './permissions.ts'
import type { AccessConfig, Limit } from './config.ts'
import type { Credentials, Principal } from './credentials.ts'
import type { JwtAuthority } from './jwt.ts'
import type { Permission, RoutePermission } from './permissions.ts'
import type { JWK } from 'jose'

/** What the guard needs to know of a request. */
export interface RequestFacts {
  method: string
  /** The route's path pattern, e.g. /api/v1/nodes/:id. */
  route: string
  headers: Record<string, string | string[] | undefined>
  query: Record<string, unknown>
  ip: string
  permission: RoutePermission
}

export interface GuardComponents {
  credentials: Credentials
  jwt: JwtAuthority
  /** Another cluster node's JWT key, by kid. */
  clusterKey: (kid: string) => JWK | undefined
}

export interface GuardInit {
  config: AccessConfig
  /** The API listens on loopback addresses only. */
  loopback: boolean
  /** Serve anyone without credentials, on any address and for any Host (--api-insecure). */
  open?: boolean
}

/** A request's rate-limit bucket: what it counts against, and how much that allows. */
export interface LimitBucket {
  key: string
  limit: Limit
}

/** Who a request with no credentials is on a node that serves local processes without them. */
const LOCAL: Principal = { id: 'local', name: 'local', kind: 'local', permissions: expandPermissions(['*']) as Set<Permission> }

const LOOPBACK_HOST = /^(localhost|[\w-]+\.localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)(:\d+)?$/i
const JWT = /^[\w-]+\.[\w-]+\.[\w-]*$/

const MINUTE = 60_000
/** Documents 002 and 003: 100 a minute per address without credentials, 1,000 with; inference 100, admin 60, training starts 10. */
export const DEFAULT_LIMITS = {
  anonymous: { requests: 100, periodMs: MINUTE },
  authenticated: { requests: 1000, periodMs: MINUTE },
  inference: { requests: 100, periodMs: MINUTE },
  admin: { requests: 60, periodMs: MINUTE },
  'training-start': { requests: 10, periodMs: MINUTE }
} satisfies Record<string, Limit>

export type LimitClass = keyof typeof DEFAULT_LIMITS

export class AccessGuard {
  readonly #c: GuardComponents
  readonly #init: GuardInit

  constructor (components: GuardComponents, init: GuardInit) {
    this.#c = components
    this.#init = init
  }

  /** Whether requests need credentials: when configured so, once any credential exists, and always beyond loopback. */
  enabled (): boolean {
    const { enabled } = this.#init.config
    if (enabled !== 'auto') return enabled
    if (this.#init.open === true) return this.#c.credentials.any()
    return !this.#init.loopback || this.#c.credentials.any()
  }

  /** Whether rate limits apply: by default whenever credentials are needed. */
  limited (): boolean {
    const { enabled } = this.#init.config.rateLimits
    return enabled === 'auto' ? this.enabled() : enabled
  }

  /** Document 001's bound on open WebSockets per address, where rate limits apply. */
  websocketsPerIp (): number {
    return this.limited() ? this.#init.config.rateLimits.websocketsPerIp : Infinity
  }

  /** A browser origin that may call the API: a configured one, or the API's own. */
  originAllowed (origin: string, host: string | undefined): boolean {
    const { origins } = this.#init.config.cors
    if (origins.includes('*') || origins.includes(origin)) return true
    try {
      const url = new URL(origin)
      return (url.protocol === 'http:' || url.protocol === 'https:') && host != null && url.host === host.toLowerCase()
    } catch {
      return false
    }
  }

  /**
   * Who the request is from, once it passed every check; throws
   * AuthorizationError (403) for a refused Host, Origin or permission and
   * AuthenticationError (401) for missing or invalid credentials.
   */
  async check (facts: RequestFacts): Promise<Principal | undefined> {
    const enabled = this.enabled()
    const host = header(facts.headers, 'host')
    if (!enabled && this.#init.open !== true && host != null && !LOOPBACK_HOST.test(host)) {
      throw new AuthorizationError(`this node serves local processes only, and the Host ${JSON.stringify(host.slice(0, 100))} is not a loopback name: configure credentials (node-daemon auth key create) to use it from elsewhere`)
    }
    const origin = header(facts.headers, 'origin')
    if (origin != null && !this.originAllowed(origin, host)) {
      throw new AuthorizationError(`the origin ${JSON.stringify(origin.slice(0, 100))} may not use this API: add it to cors.origins`)
    }
    // A page of another site reaches the API without an Origin through tags and navigations; browsers say so in Sec-Fetch-Site.
    const site = header(facts.headers, 'sec-fetch-site')
    if (origin == null && (site === 'cross-site' || site === 'same-site')) throw new AuthorizationError('requests from other sites may not use this API')
    let principal: Principal | undefined
    try {
      principal = await this.authenticate(facts)
    } catch (err) {
      // A node without credentials ignores what clients send anyway, as Kubo and Ollama do (openai-node always sends a key).
      if (enabled) throw err
    }
    if (facts.permission === 'public') return principal
    if (principal == null) {
      if (!enabled) return LOCAL
      throw new AuthenticationError('credentials are required: an API key (X-API-Key or api_key), a bearer token, basic auth or a JWT')
    }
    if (!principal.permissions.has(facts.permission)) throw new AuthorizationError(`${principal.name} lacks the ${facts.permission} permission`)
    return principal
  }

  /** The credential a request presents, checked; undefined when it presents none. */
  async authenticate (facts: Pick<RequestFacts, 'headers' | 'query'>): Promise<Principal | undefined> {
    const authorization = header(facts.headers, 'authorization')
    const apiKey = header(facts.headers, 'x-api-key') ?? (typeof facts.query.api_key === 'string' ? facts.query.api_key : undefined)
    if (authorization != null) {
      const [scheme, value = ''] = authorization.trim().split(/\s+/, 2)
      if (/^bearer$/i.test(scheme) && value !== '') return JWT.test(value) ? this.#fromJwt(value) : this.#fromSecret(value)
      if (/^basic$/i.test(scheme) && value !== '') return this.#fromBasic(value)
      throw new AuthenticationError('the Authorization header must be Bearer <token> or Basic <credentials>')
    }
    // A JWT as api_key too: a browser's WebSocket cannot send it in a header.
    if (apiKey != null) return JWT.test(apiKey) ? this.#fromJwt(apiKey) : this.#fromSecret(apiKey)
    return undefined
  }

  /** Which bucket a request counts against, or undefined when rate limits are off. */
  bucket (facts: Pick<RequestFacts, 'ip' | 'route' | 'method'>, principal: Principal | undefined, limitClass: LimitClass | undefined): LimitBucket | undefined {
    // The node's own command line, with the repo's cookie, is no more limited than a local process is.
    if (!this.limited() || principal?.kind === 'local') return undefined
    const { endpoints, default: base } = this.#init.config.rateLimits
    const owner = principal == null ? `ip:${facts.ip}` : principal.id
    const endpoint = endpoints[facts.route]
    if (endpoint != null) return { key: `${facts.route}|${owner}`, limit: endpoint }
    const cls: LimitClass = limitClass ?? (principal == null ? 'anonymous' : 'authenticated')
    return { key: `${cls}|${owner}`, limit: cls === 'authenticated' && base != null ? base : DEFAULT_LIMITS[cls] }
  }

  /** The bucket a failed authentication counts against: its address's, or undefined when rate limits are off. */
  failureBucket (ip: string): LimitBucket | undefined {
    return this.limited() ? { key: `auth-failure|${ip}`, limit: this.#init.config.rateLimits.failedAuth } : undefined
  }

  #fromSecret (secret: string): Principal {
    const principal = this.#c.credentials.fromSecret(secret)
    if (principal == null) throw new AuthenticationError('invalid API key or token')
    return principal
  }

  async #fromBasic (encoded: string): Promise<Principal> {
    const decoded = Buffer.from(encoded, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 1) throw new AuthenticationError('basic credentials must be base64 of user:password')
    const principal = await this.#c.credentials.fromPassword(decoded.slice(0, colon), decoded.slice(colon + 1))
    if (principal == null) throw new AuthenticationError('invalid user name or password')
    return principal
  }

  async #fromJwt (token: string): Promise<Principal> {
    const verified = await this.#c.jwt.verify(token, this.#c.clusterKey)
    const ours = verified.kid != null && (verified.kid === this.#c.jwt.kid || this.#c.clusterKey(verified.kid) != null)
    if (ours) {
      // A token of this cluster stands for its user as the user is now: removing the user ends it.
      const user = this.#c.credentials.user(verified.subject)
      if (user == null) throw new AuthenticationError('invalid token: its user no longer exists')
      return { ...user, id: `jwt:${verified.subject}`, kind: 'jwt' }
    }
    const permissions = expandPermissions(verified.permissions)
    if (typeof permissions === 'string') throw new AuthenticationError(`invalid token: ${JSON.stringify(permissions)} is not a permission here`)
    return { id: `jwt:${verified.subject}`, name: verified.subject, kind: 'jwt', permissions }
  }
}

function header (headers: RequestFacts['headers'], name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}
