import multipart from '@fastify/multipart'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import websocket from '@fastify/websocket'
import Fastify, { LogController } from 'fastify'
import { envelopeShape } from './error-shapes.ts'
import { envelope, MethodNotAllowedError, RouteNotFoundError } from './errors.ts'
import { registerHttpMetrics } from './metrics.ts'
import { aiRoutes } from './routes/ai.ts'
import { blockRoutes } from './routes/blocks.ts'
import { clientRoutes } from './routes/clients.ts'
import { clusterRoutes } from './routes/cluster.ts'
import { consensusRoutes } from './routes/consensus.ts'
import { contentRoutes } from './routes/content.ts'
import { distributedRoutes } from './routes/distributed.ts'
import { nameRoutes } from './routes/names.ts'
import { networkRoutes } from './routes/network.ts'
import { nodeRoutes } from './routes/nodes.ts'
import { ollamaRoutes } from './routes/ollama.ts'
import { openaiRoutes } from './routes/openai.ts'
import { peerRoutes } from './routes/peers.ts'
import { pinRoutes } from './routes/pins.ts'
import { pubsubRoutes } from './routes/pubsub.ts'
import { resourceRoutes } from './routes/resources.ts'
import { systemRoutes } from './routes/system.ts'
import { taskMetricRoutes } from './routes/task-metrics.ts'
import { taskRoutes } from './routes/tasks.ts'
import { trainingRoutes } from './routes/training.ts'
import { workerRoutes } from './routes/workers.ts'
import type { FastifyBaseLogger, FastifyError, FastifyInstance } from 'fastify'
import type { Node } from '@node-daemon/daemon'
import type { Logger } from 'pino'

export interface ApiInit {
  /** Largest JSON or text body; files go through multipart or raw streams, unbounded. */
  bodyLimit?: number
  logger?: Logger
}

export interface ApiContext {
  node: Node
  /** Aborted when the server starts closing: long-lived reads and subscriptions end with it. */
  shutdown: AbortSignal
}

export type Routes = (app: FastifyInstance, ctx: ApiContext) => void

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
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false } }
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
    if (reply.sent || reply.raw.headersSent) return
    return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(body)
  })
  app.setNotFoundHandler(async (request, reply) => {
    const url = request.url.split('?')[0]
    const other = ['GET', 'POST', 'PUT', 'DELETE'].filter(method => app.hasRoute({ url, method: method as 'GET' }))
    const err = other.length > 0
      ? new MethodNotAllowedError(`${request.method} is not allowed on ${url}; use ${other.join(' or ')}`)
      : new RouteNotFoundError(`no route ${request.method} ${url}`)
    if (other.length > 0) reply.header('allow', other.join(', '))
    const body = envelope(err)
    countError(body.error_type)
    return reply.code(body.status_code).send(body)
  })

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
      }
    }
  })
  await app.register(swaggerUi, { routePrefix: '/api/v0/docs' })

  const ctx: ApiContext = { node, shutdown: shutdown.signal }
  for (const routes of [
    systemRoutes, contentRoutes, pinRoutes, nameRoutes, peerRoutes, pubsubRoutes, blockRoutes,
    clusterRoutes, distributedRoutes, nodeRoutes, networkRoutes, consensusRoutes, resourceRoutes, clientRoutes,
    ollamaRoutes, openaiRoutes, taskRoutes, taskMetricRoutes, aiRoutes, trainingRoutes, workerRoutes
  ]) {
    routes(app, ctx)
  }
  // Raw uploads take any content type as a stream, in a context of their own.
  return app
}
