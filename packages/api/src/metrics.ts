import { collectDefaultMetrics, Counter, Histogram } from 'prom-client'
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'

/** Request counts and latencies by route, and errors by type, in the node's registry. */
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
  app.addHook('onResponse', async (request, reply) => {
    // Unknown paths share one label so that scanners cannot blow up the label set.
    const route = request.routeOptions.url ?? 'unmatched'
    requests.inc({ route, method: request.method, status: String(reply.statusCode) })
    latency.observe({ route, method: request.method }, reply.elapsedTime / 1000)
  })
  return { countError: (type) => { errors.inc({ error_type: type }) } }
}
