import { collectDefaultMetrics, Counter, Gauge, Histogram } from 'prom-client'
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'

/** The API's open WebSocket connections, of every route. */
export function websocketConnections (app: FastifyInstance): number {
  return app.websocketServer.clients.size
}

/** Request counts and latencies by route, errors by type, and open connections, in the node's registry. */
export function registerHttpMetrics (app: FastifyInstance, registry: Registry): { countError: (type: string) => void } {
  collectDefaultMetrics({ register: registry })
  const requests = new Counter({
    name: 'node_daemon_http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [registry]
  })
  const latency = new Histogram({
    name: 'node_daemon_http_request_duration_seconds',
    help: 'HTTP request latency by route and method',
    labelNames: ['route', 'method'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry]
  })
  const errors = new Counter({
    name: 'node_daemon_http_errors_total',
    help: 'API errors by error_type',
    labelNames: ['error_type'],
    registers: [registry]
  })
  // Document 000's active connections.
  registry.registerMetric(new Gauge({
    name: 'node_daemon_http_connections',
    help: 'Open TCP connections to the API, WebSockets included',
    registers: [],
    async collect () {
      this.set(await new Promise<number>((resolve, reject) => { app.server.getConnections((err, count) => { if (err == null) resolve(count); else reject(err) }) }))
    }
  }))
  registry.registerMetric(new Gauge({
    name: 'node_daemon_websocket_connections',
    help: 'Open WebSocket connections to the API',
    registers: [],
    collect () { this.set(websocketConnections(app)) }
  }))
  app.addHook('onResponse', async (request, reply) => {
    // Unknown paths share one label so that scanners cannot blow up the label set.
    const route = request.routeOptions.url ?? 'unmatched'
    requests.inc({ route, method: request.method, status: String(reply.statusCode) })
    latency.observe({ route, method: request.method }, reply.elapsedTime / 1000)
  })
  return { countError: (type) => { errors.inc({ error_type: type }) } }
}
