import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { IncomingMessage } from 'node:http'
import multipart from '@fastify/multipart'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import websocket from '@fastify/websocket'
import Fastify, { LogController } from 'fastify'
import { Type } from 'typebox'
import { registerAccess, registerCors, securitySchemes } from './access.ts'
import { distributedShape, envelopeShape, farmShape, PINNING_PREFIX, pinningShape, shapeOfPath, taskShape, trainingShape } from './error-shapes.ts'
import { familyRoutes } from './inference.ts'
import { compileOnFirstUse } from './lazy-validators.ts'
import { BadRequestError, envelope, MethodNotAllowedError, RouteNotFoundError, UpgradeRequiredError } from './errors.ts'
import { registerHttpMetrics } from './metrics.ts'
import { adminRoutes } from './routes/admin.ts'
import { aiRoutes } from './routes/ai.ts'
import { authRoutes } from './routes/auth.ts'
import { bitswapRoutes } from './routes/bitswap.ts'
import { blockRoutes } from './routes/blocks.ts'
import { clientRoutes } from './routes/clients.ts'
import { clusterRoutes } from './routes/cluster.ts'
import { consensusRoutes } from './routes/consensus.ts'
import { consoleRoutes } from './routes/console.ts'
import { contentRoutes } from './routes/content.ts'
import { dagCarRoutes } from './routes/dag-car.ts'
import { dataLoaderRoutes } from './routes/dataloader.ts'
import { diagnosticsRoutes } from './routes/diagnostics.ts'
import { RequestLog } from './request-log.ts'
import { distributedRoutes } from './routes/distributed.ts'
import { documentRoutes } from './routes/documents.ts'
import { filesRoutes } from './routes/files.ts'
import { nameRoutes } from './routes/names.ts'
import { networkRoutes } from './routes/network.ts'
import { nodeRoutes } from './routes/nodes.ts'
import { p2pStreamRoutes } from './routes/p2p-stream.ts'
import { objectRoutes } from './routes/objects.ts'
import { ollamaRoutes } from './routes/ollama.ts'
import { openaiRoutes } from './routes/openai.ts'
import { peerRoutes } from './routes/peers.ts'
import { pinRoutes } from './routes/pins.ts'
import { pinningServiceRoutes } from './routes/pinning-service.ts'
import { remotePinRoutes } from './routes/remote-pins.ts'
import { methodRoutes } from './routes/methods.ts'
import { eventRoutes } from './routes/events.ts'
import { graphqlRoutes } from './routes/graphql.ts'
import { liveRoutes } from './routes/live.ts'
import { pubsubRoutes } from './routes/pubsub.ts'
import { refsRoutes } from './routes/refs.ts'
import { repoRoutes } from './routes/repo.ts'
import { resourceRoutes } from './routes/resources.ts'
import { searchRoutes } from './routes/search.ts'
import { routingRoutes } from './routes/routing.ts'
import { settingsRoutes } from './routes/settings.ts'
import { swarmOpsRoutes } from './routes/swarm-ops.ts'
import { systemRoutes } from './routes/system.ts'
import { taskMetricRoutes } from './routes/task-metrics.ts'
import { transferRoutes } from './routes/transfers.ts'
import { taskRoutes } from './routes/tasks.ts'
import { trainingRoutes } from './routes/training.ts'
import { webrtcRoutes } from './routes/webrtc.ts'
import { workerRoutes } from './routes/workers.ts'
import type { Duplex } from 'node:stream'
import type { ErrorShape } from './error-shapes.ts'
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Node } from '@node-daemon/daemon'
import type { Logger } from 'pino'

export interface ApiInit {
  /** Largest JSON or text body; files go through multipart or raw streams, unbounded. */
  bodyLimit?: number
  logger?: Logger
  /** Stops the daemon, as Kubo's `shutdown` asks; without it, that route is refused. */
  requestStop?: () => void
}

export interface ApiContext {
  node: Node
  /** Aborted when the server starts closing: long-lived reads and subscriptions end with it. */
  shutdown: AbortSignal
  /** Stops the daemon once the current answer is out (Kubo's `shutdown`). */
  requestStop?: () => void
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A parametric route that answers what no other route does: its path tells no 405. */
    catchAll?: boolean
  }
}

export type Routes = (app: FastifyInstance, ctx: ApiContext) => void

/** What is read and dropped of a body refused as too large, so that its client sees the answer rather than a reset. */
const DISCARD_BYTES = 64 * 1_048_576

/**
 * Reads and drops the rest of a refused body, as Go's servers do with theirs:
 * a client still writing to a closed socket gets a reset instead of the 413.
 * Past DISCARD_BYTES the connection is cut.
 */
function discardBody (raw: IncomingMessage): void {
  let read = 0
  raw.on('data', (chunk: Buffer) => {
    read += chunk.byteLength
    if (read > DISCARD_BYTES) raw.socket.destroy()
  })
  raw.resume()
}

/**
 * A request Node's HTTP parser refused before any route saw it (headers too
 * large, a malformed request line): answered in document 000's envelope, on
 * a connection that then closes.
 */
function answerClientError (err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return
  // Data after a request that closes its connection, or a fault after an answer went out: nothing more to say.
  if (err.code === 'HPE_CLOSED_CONNECTION' || (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true) {
    socket.destroy()
    return
  }
  const shaped = envelope(err.code === 'HPE_HEADER_OVERFLOW' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? err : new BadRequestError(`the request could not be read: ${err.code ?? err.message}`))
  const body = JSON.stringify(shaped)
  const status = shaped.status_code
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}

/**
 * The HTTP and WebSocket API: fastify with a schema on every route, one error
 * mapper, OpenAPI from the schemas, and Prometheus metrics. Routes are thin:
 * parse, call the node, shape the documented response.
 */
export async function createApiServer (node: Node, init: ApiInit = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: init.logger?.child({ component: 'api' }) as FastifyBaseLogger | undefined,
    // Requests are counted in /metrics; logging each one would drown the daemon's log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: init.bodyLimit ?? 1_048_576,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: true },
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false }, onCreate: compileOnFirstUse },
    // A URL that does not decode is bad input like any other, in the same envelope.
    frameworkErrors: (err, request, reply) => {
      const { status, body } = shapeOfPath(request.url)(err, request)
      void (reply as FastifyReply).code(status).send(body)
    },
    clientErrorHandler: answerClientError,
    // Each answer's X-Request-Id, unique across the cluster's nodes; a client's own is not taken.
    genReqId: () => randomUUID(),
    requestIdHeader: false
  })
  const shutdown = new AbortController()
  // Closing waits for in-flight requests (an add finishes writing), then drops every keep-alive
  // socket: Node's own idle tracking misses some, which would hold close up for the keep-alive timeout.
  let inflight = 0
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.upgrade != null) return
    inflight++
    reply.raw.once('close', () => { inflight-- })
  })
  // An upgrade answered with an HTTP error (a refused origin, a bad credential) keeps its socket, which
  // nothing would ever close: the server could not stop.
  app.addHook('onResponse', async (request) => {
    if (request.headers.upgrade != null && !request.ws) request.raw.socket?.destroy()
  })
  app.addHook('preClose', async () => {
    shutdown.abort(new Error('the daemon is stopping'))
    const sweep = setInterval(() => { if (inflight === 0) app.server.closeAllConnections() }, 50)
    app.server.once('close', () => { clearInterval(sweep) })
  })
  const { countError } = registerHttpMetrics(app, node.metrics)

  app.setErrorHandler(async (err, request, reply) => {
    const shape = request.routeOptions.config.errorShape ?? envelopeShape
    const { status, type, body } = shape(err as FastifyError, request)
    countError(type)
    if (status >= 500) request.log.error({ err }, 'request failed')
    else request.log.info({ status, type, url: request.url.slice(0, 200) }, (err as Error).message)
    if (reply.sent || reply.raw.headersSent) return
    if (status === 413) discardBody(request.raw)
    // A 429 says when to come back.
    if (status === 429) void reply.header('retry-after', String((err as { retryAfterSeconds?: number }).retryAfterSeconds ?? 60))
    return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(body)
  })
  // @fastify/websocket hides a `websocket: true` route from the OpenAPI document and answers a plain GET of
  // it with an empty 404; as a route with a wsHandler it stays documented, and a GET is told to upgrade.
  app.addHook('onRoute', (route) => {
    if (route.websocket !== true) return
    route.wsHandler = route.handler as unknown as typeof route.wsHandler
    route.handler = async () => { throw new UpgradeRequiredError(`${route.url} is a WebSocket: connect with an Upgrade request`) }
    delete route.websocket
  })
  // A body the schema makes optional (TypeBox's Optional) may be left out, as the documents' bare POSTs
  // (/api/v1/training/stop) leave it: fastify would check the absent body against the object and refuse it.
  app.addHook('onRoute', (route) => {
    if (route.schema?.body == null || !Type.IsOptional(route.schema.body)) return
    route.preValidation = [async (request: FastifyRequest) => { request.body ??= {} }, ...[route.preValidation ?? []].flat()]
  })
  // Every route's methods by the pattern of its path, to tell a wrong method (405) from a wrong path (404).
  const patterns: Array<{ path: RegExp, methods: string[] }> = []
  app.addHook('onRoute', (route) => {
    // The method caller's POST /api/:method_name would make every unknown /api/ path a 405.
    if (route.config?.catchAll === true) return
    const pattern = route.url.split('/').map(part => part.startsWith(':') ? '[^/]+' : part === '*' ? '.*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('/')
    patterns.push({ path: new RegExp(`^${pattern}/?$`), methods: [route.method].flat() })
  })
  app.setNotFoundHandler(async (request, reply) => {
    const url = request.url.split('?')[0]
    // HEAD comes with every GET, and CORS answers OPTIONS on every path: neither makes a path exist.
    const other = [...new Set(patterns.filter(p => p.path.test(url)).flatMap(p => p.methods))].filter(m => m !== 'HEAD' && m !== 'OPTIONS' && m !== request.method)
    const err = other.length > 0
      ? new MethodNotAllowedError(`${request.method} is not allowed on ${url}; use ${other.join(' or ')}`)
      : new RouteNotFoundError(`no route ${request.method} ${url}`)
    if (other.length > 0) reply.header('allow', other.join(', '))
    const { status, type, body } = shapeOfPath(url)(err, request)
    countError(type)
    return reply.code(status).send(body)
  })

  await registerAccess(app, { guard: node.access.guard })
  await registerCors(app, node.access.guard, node.config.access.cors)
  await app.register(multipart, {
    limits: { fileSize: Infinity, files: Infinity, parts: Infinity, fieldSize: 1_048_576, fields: 1000 }
  })
  await app.register(websocket, { options: { maxPayload: 16 * 1_048_576 } })
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'node-daemon API',
        description: 'Kubo-compatible content API and the documented APIs of node-daemon. See README.md for the API families.',
        version: node.version().version
      },
      components: { securitySchemes: securitySchemes as any },
      tags: [{ name: 'pinning service', description: `The IPFS Pinning Service API (github.com/ipfs/pinning-services-api-spec) over the cluster's pinset: a Pinning Service endpoint is ${PINNING_PREFIX}; requestid is the pin's CID, and access is a bearer token with the pins permission` }]
    }
  })
  await app.register(swaggerUi, { routePrefix: '/api/v0/docs' })

  // After the access hooks: a request they refuse never ran, so Kubo's request log does not list it.
  const requests = new RequestLog()
  requests.register(app)
  const ctx: ApiContext = { node, shutdown: shutdown.signal, requestStop: init.requestStop }
  // The error bodies of the families whose route files serve one document (the inference families name theirs in their files).
  const shapes = new Map<Routes, ErrorShape>([
    [distributedRoutes, distributedShape], [nodeRoutes, distributedShape], [transferRoutes, distributedShape], [adminRoutes, distributedShape], [liveRoutes, distributedShape],
    [clientRoutes, farmShape], [pinningServiceRoutes, pinningShape], [resourceRoutes, taskShape()],
    [consensusRoutes, trainingShape], [networkRoutes, trainingShape]
  ])
  for (const routes of [
    systemRoutes, authRoutes, contentRoutes, pinRoutes, remotePinRoutes, pinningServiceRoutes, nameRoutes, peerRoutes, pubsubRoutes, blockRoutes,
    clusterRoutes, distributedRoutes, nodeRoutes, networkRoutes, consensusRoutes, resourceRoutes, clientRoutes,
    ollamaRoutes, openaiRoutes, taskRoutes, taskMetricRoutes, transferRoutes, adminRoutes, liveRoutes, aiRoutes, searchRoutes, documentRoutes, dataLoaderRoutes, trainingRoutes, workerRoutes, consoleRoutes,
    methodRoutes, eventRoutes, p2pStreamRoutes, webrtcRoutes, graphqlRoutes, filesRoutes, dagCarRoutes, refsRoutes, repoRoutes, swarmOpsRoutes, settingsRoutes,
    bitswapRoutes, routingRoutes, objectRoutes, diagnosticsRoutes(requests)
  ]) {
    const shape = shapes.get(routes)
    if (shape == null) routes(app, ctx)
    else familyRoutes(app, shape, scope => { routes(scope, ctx) })
  }
  // Raw uploads take any content type as a stream, in a context of their own.
  return app
}
