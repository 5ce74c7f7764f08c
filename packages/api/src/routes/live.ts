import { Type } from 'typebox'
import { jobJson } from '../cluster-views.ts'
import { websocketConnections } from '../metrics.ts'
import { TrafficMeter } from '../traffic.ts'
import { distributedMetrics } from './distributed.ts'
import { CLUSTER_EVENT_NAMES, listenEvents } from './events.ts'
import { transfers } from './transfers.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

const LiveQuery = Type.Object({
  interval: Type.Integer({ minimum: 1, maximum: 300, default: 5, description: 'Seconds between metrics and transfer updates' })
})

/** The cluster's events that tell a request's (an inference job's) progress. */
const REQUEST_EVENTS = new Set(['inference_requested', 'job_started', 'inference_completed', 'job_failed'])
/** A client that leaves so much unread is closed (4429) rather than buffered without end. */
const MAX_UNREAD_BYTES = 4 * 1_048_576

/**
 * Document 002's /ws: the four things it lists, as {type, data, timestamp}
 * with data in the form of the document's own routes. `metrics` is GET
 * /api/distributed/metrics, sent on connecting and every `interval`;
 * `transfer_progress` is GET /api/v1/transfers, sent with it while any
 * transfer runs (and once more when the last one ended, empty);
 * `cluster_event` is {event, data}, each event of /ws/v0/events's cluster
 * events as it happens; `request_status` is a job of GET
 * /api/distributed/requests each time it changes (requested, running,
 * completed, failed).
 */
export const liveRoutes: Routes = (app, { node, shutdown }) => {
  app.get('/ws', {
    permission: 'cluster:read',
    websocket: true,
    schema: {
      querystring: LiveQuery,
      tags: ['distributed'],
      summary: 'WebSocket: live metrics, transfer progress, cluster events and request status as {"type": "metrics" | "transfer_progress" | "cluster_event" | "request_status", "data", "timestamp"}'
    }
  }, (socket, request) => {
    const { interval } = request.query as Static<typeof LiveQuery>
    const send = (type: string, data: unknown): void => {
      if (socket.readyState !== socket.OPEN) return
      if (socket.bufferedAmount > MAX_UNREAD_BYTES) socket.close(4429, 'too many updates left unread')
      else socket.send(JSON.stringify({ type, data, timestamp: new Date().toISOString() }))
    }
    const failed = (what: string) => (err: Error): void => { request.log.info(`/ws ${what}: ${err.message}`) }
    // Reads of this node's replica: a live view needs no round to the leader for each update.
    const options = { local: true, signal: shutdown }

    let transfersShown = false
    // Each update's network_usage is the traffic since the one before.
    const traffic = new TrafficMeter(node)
    let ticking = false
    const tick = async (): Promise<void> => {
      // A tick that outlasts the interval (a slow pin status round) is not stacked on.
      if (ticking) return
      ticking = true
      try {
        send('metrics', await distributedMetrics(node, options, websocketConnections(app), traffic))
        const list = await transfers(node, options)
        if (list.length > 0 || transfersShown) send('transfer_progress', { transfers: list, count: list.length })
        transfersShown = list.length > 0
      } finally {
        ticking = false
      }
    }
    void tick().catch(failed('metrics'))
    const timer = setInterval(() => { void tick().catch(failed('metrics')) }, interval * 1000)

    const unlisten = listenEvents(node, (name, data) => {
      if (!CLUSTER_EVENT_NAMES.includes(name)) return
      send('cluster_event', { event: name, data })
      if (!REQUEST_EVENTS.has(name)) return
      node.cluster.job((data as { jobId: number }).jobId, options).then(job => { send('request_status', jobJson(job)) }, failed('request status'))
    })
    const stop = (): void => { socket.close(1001, 'the daemon is stopping') }
    shutdown.addEventListener('abort', stop, { once: true })
    socket.once('close', () => {
      clearInterval(timer)
      unlisten()
      shutdown.removeEventListener('abort', stop)
    })
  })
}
