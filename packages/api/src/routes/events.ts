import { BadRequestError, envelope } from '../errors.ts'
import type { Routes } from '../server.ts'
import type { ClusterEvents } from '@node-daemon/cluster'
import type { ContentEvents } from '@node-daemon/content'
import type { Node } from '@node-daemon/daemon'
import type { SearchEvents } from '@node-daemon/search'

/** The node's content events, under their own names: document 000's `add`, `pin` and `unpin`. */
const CONTENT_EVENTS: ReadonlyArray<keyof ContentEvents> = ['add', 'pin', 'unpin']

/** The cluster's events (the Raft-applied state changes every node sees), by the names the socket gives them. */
const CLUSTER_EVENTS: Record<keyof ClusterEvents, string> = {
  PinChanged: 'cluster_pin',
  PinRemoved: 'cluster_unpin',
  NodeJoined: 'node_joined',
  NodeLeft: 'node_left',
  NodeStatus: 'node_status',
  ResourcesUpdated: 'resources_updated',
  ModelRegistered: 'model_registered',
  ModelUpdated: 'model_updated',
  InferenceRequested: 'inference_requested',
  JobStarted: 'job_started',
  InferenceCompleted: 'inference_completed',
  JobFailed: 'job_failed',
  TrainingUpdated: 'training_updated',
  CollectionChanged: 'collection_changed'
}

/** The names of the cluster's events, as listenEvents gives them. */
export const CLUSTER_EVENT_NAMES: readonly string[] = Object.values(CLUSTER_EVENTS)

/** This node's indexing jobs: a line per batch taken in, and their end. */
const SEARCH_EVENTS: Record<keyof SearchEvents, string> = { IndexProgress: 'index_progress' }

export const EVENT_NAMES: readonly string[] = [...CONTENT_EVENTS, ...CLUSTER_EVENT_NAMES, ...Object.values(SEARCH_EVENTS)]

/**
 * Calls `onEvent` with each event of the node's content and of the cluster, by its socket name, until the
 * returned function is called. Listeners on the node's own event targets: nothing is polled.
 */
export function listenEvents (node: Node, onEvent: (name: string, data: unknown) => void): () => void {
  const listeners = [
    ...CONTENT_EVENTS.map(type => ({ target: node.content as EventTarget, type, name: type as string })),
    ...Object.entries(CLUSTER_EVENTS).map(([type, name]) => ({ target: node.cluster as EventTarget, type, name })),
    ...Object.entries(SEARCH_EVENTS).map(([type, name]) => ({ target: node.search as EventTarget, type, name }))
  ].map(({ target, type, name }) => ({ target, type, listener: (e: Event) => { onEvent(name, (e as CustomEvent).detail) } }))
  for (const { target, type, listener } of listeners) target.addEventListener(type, listener)
  return () => { for (const { target, type, listener } of listeners) target.removeEventListener(type, listener) }
}

/** The names of a subscription message, checked: anything else is answered with what can be asked for. */
function subscription (text: string): string[] {
  let message: unknown
  try {
    message = JSON.parse(text)
  } catch {
    throw new BadRequestError('send a JSON message {"events": [...]}')
  }
  const events = (message as { events?: unknown } | null)?.events
  if (!Array.isArray(events) || events.some(e => typeof e !== 'string')) throw new BadRequestError('the message needs "events", an array of event names')
  const unknown = events.filter(e => !EVENT_NAMES.includes(e))
  if (unknown.length > 0) throw new BadRequestError(`unknown events ${unknown.join(', ')}; known events: ${EVENT_NAMES.join(', ')}`)
  return events
}

/**
 * Document 000's event socket: the client sends {"events": [...]} (again, to
 * change what it gets), is told {"event": "subscribed"}, then receives
 * {"event", "data"} as the node's content and the cluster's state change.
 */
export const eventRoutes: Routes = (app, { node, shutdown }) => {
  app.get('/ws/v0/events', {
    permission: 'content:read',
    websocket: true,
    schema: { tags: ['events'], summary: `WebSocket: send {"events": [...]} of ${EVENT_NAMES.join(', ')}; receive {"event", "data"}` }
  }, (socket) => {
    let wanted = new Set<string>()
    const send = (event: string, data: unknown): void => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ event, data }))
    }
    const unlisten = listenEvents(node, (name, data) => { if (wanted.has(name)) send(name, data) })

    socket.on('message', (data, isBinary) => {
      try {
        if (isBinary) throw new BadRequestError('send a JSON text message {"events": [...]}')
        wanted = new Set(subscription(data.toString()))
        send('subscribed', { events: [...wanted] })
      } catch (err: any) {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(envelope(err)))
      }
    })
    const stop = (): void => { socket.close(1001, 'the daemon is stopping') }
    shutdown.addEventListener('abort', stop, { once: true })
    socket.once('close', () => {
      unlisten()
      shutdown.removeEventListener('abort', stop)
    })
  })
}
