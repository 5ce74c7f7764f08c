/**
 * Access control on the API: every route names the permission it needs, the
 * OpenAPI document shows it, and before a route runs the node's guard checks
 * the Host, the Origin, the credentials and the permission, then counts the
 * request against its rate limit. Every answer carries X-Request-Id and
 * X-API-Version.
 */
import cors from '@fastify/cors'
import { RateLimiter, RateLimitError } from '@node-daemon/access'
import type { AccessGuard, LimitClass, Principal, RoutePermission } from '@node-daemon/access'
import type { FastifyInstance, FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface RouteShorthandOptions {
    /** What a caller needs to be allowed the route: every route names one. */
    permission?: RoutePermission
    /** The rate-limit class, where the permission does not tell it: training starts. */
    limitClass?: LimitClass
  }
  interface FastifyContextConfig {
    permission?: RoutePermission
    limitClass?: LimitClass
  }
  interface FastifyRequest {
    /** Who sent the request, once the guard passed it; unset on public routes without credentials. */
    principal?: Principal
  }
}

/** The credential schemes of the OpenAPI document; a route lists its permission as the scope of each. */
const SCHEMES = {
  apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
  apiKeyQuery: { type: 'apiKey', in: 'query', name: 'api_key' },
  bearer: { type: 'http', scheme: 'bearer', description: 'An API key, a bearer token or a JWT (POST /api/v1/auth/login)' },
  basic: { type: 'http', scheme: 'basic' }
} as const

/** Routes of plugins (the docs UI, GraphiQL, CORS preflights) that say nothing of access: public. */
const PUBLIC_PLUGIN_ROUTES = /^\/api\/v0\/(docs|graphql\/graphiql)(\/|$)/

export const API_VERSION = '1'

const secondsUntil = (ms: number): number => Math.max(1, Math.ceil((ms - Date.now()) / 1000))

export interface AccessInit {
  guard: AccessGuard
}

/** The security schemes the swagger plugin writes into the document's components. */
export const securitySchemes = SCHEMES

/**
 * Registers the hooks: must run before any route is added, so that a route
 * without a permission is refused at start rather than left open.
 */
export async function registerAccess (app: FastifyInstance, { guard }: AccessInit): Promise<void> {
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat()
    let permission = route.permission ?? route.config?.permission
    if (permission == null) {
      if (methods.every(m => m === 'OPTIONS' || m === 'HEAD') || PUBLIC_PLUGIN_ROUTES.test(route.url)) permission = 'public'
      else throw new Error(`${methods.join(',')} ${route.url} names no permission`)
    }
    const limitClass = route.limitClass ?? route.config?.limitClass ?? classOf(permission)
    route.config = { ...route.config, permission, limitClass }
    route.schema = { ...route.schema, security: permission === 'public' ? [] : Object.keys(SCHEMES).map(scheme => ({ [scheme]: [permission] })) }
  })

  const limiter = new RateLimiter()
  const websockets = new Map<string, number>()

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id).header('x-api-version', API_VERSION)
    const { permission, limitClass } = request.routeOptions.config
    // A path no route has: its 404 names nothing.
    if (permission == null) return
    const facts = { method: request.method, route: request.routeOptions.url ?? request.url, headers: request.headers, query: (request.query ?? {}) as Record<string, unknown>, ip: request.ip, permission }
    try {
      request.principal = await guard.check(facts)
    } catch (err: any) {
      // Counts requests that fail authentication by address: a guesser gets 429s, not an endless stream of 401s.
      const failureBucket = err.name === 'AuthenticationError' ? guard.failureBucket(request.ip) : undefined
      if (failureBucket != null) {
        const failures = limiter.take(failureBucket.key, failureBucket.limit)
        if (!failures.allowed) throw new RateLimitError('too many failed attempts from this address', secondsUntil(failures.resetAt))
      }
      throw err
    }
    // Counted before the body is read, so that a refused request costs no upload.
    const bucket = guard.bucket(facts, request.principal, limitClass)
    if (bucket != null) {
      const count = limiter.take(bucket.key, bucket.limit)
      // The documents give X-RateLimit-Reset as the time the window ends, in seconds since the epoch.
      void reply.header('x-ratelimit-limit', count.limit).header('x-ratelimit-remaining', count.remaining).header('x-ratelimit-reset', Math.ceil(count.resetAt / 1000))
      if (!count.allowed) throw new RateLimitError(`rate limit exceeded: ${count.limit} requests per ${bucket.limit.periodMs / 1000} s; retry in ${secondsUntil(count.resetAt)} s`, secondsUntil(count.resetAt))
    }
    if (request.headers.upgrade?.toLowerCase() === 'websocket') countWebsocket(request, websockets, guard)
  })
}

/** Registers CORS: the configured origins (and the API's own) get real answers to preflights. */
export async function registerCors (app: FastifyInstance, guard: AccessGuard, init: { methods: string[], headers: string[] }): Promise<void> {
  await app.register(cors, {
    delegator: (request, callback) => {
      const origin = request.headers.origin
      callback(null, {
        origin: origin != null && guard.originAllowed(origin, request.headers.host),
        methods: init.methods,
        allowedHeaders: init.headers,
        exposedHeaders: ['X-Request-Id', 'X-API-Version', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'Retry-After', 'X-Total-Count', 'Link'],
        maxAge: 600
      })
    }
  })
}

/** Document 001: at most so many open WebSockets per address. */
function countWebsocket (request: FastifyRequest, open: Map<string, number>, guard: AccessGuard): void {
  const limit = guard.websocketsPerIp()
  const count = open.get(request.ip) ?? 0
  if (count >= limit) throw new RateLimitError(`at most ${limit} WebSockets may be open from one address`, 10)
  open.set(request.ip, count + 1)
  request.raw.socket.once('close', () => {
    const left = (open.get(request.ip) ?? 1) - 1
    if (left <= 0) open.delete(request.ip)
    else open.set(request.ip, left)
  })
}

function classOf (permission: RoutePermission): LimitClass | undefined {
  if (permission === 'inference') return 'inference'
  if (permission === 'cluster:admin' || permission === 'auth:admin') return 'admin'
  return undefined
}
