import { Type } from 'typebox'
import { args, firstArg } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { firstPartBytes } from '../multipart.ts'
import { kuboRoute, ReadQuery } from './route.ts'
import { NotFoundError, parsePath } from '@node-daemon/content'
import { closestPeers, findPeer, findProviders, provide, QueryEventType } from '@node-daemon/swarm'
import type { Routes } from '../server.ts'
import type { Content } from '@node-daemon/content'
import type { RoutingEvent } from '@node-daemon/swarm'
import type { CID } from 'multiformats/cid'

/** Kubo's routing.QueryEvent as its RPC encodes it: empty strings and a null list where a field says nothing. */
function queryEvent (event: RoutingEvent): object {
  return {
    // Go's standard base64, as Kubo's routing/get gives a record.
    Extra: event.error ?? (event.value == null ? '' : Buffer.from(event.value).toString('base64')),
    ID: event.peer ?? '',
    Responses: event.responses?.map(r => ({ ID: r.id, Addrs: r.addrs })) ?? null,
    Type: event.type
  }
}

async function * queryEvents (events: AsyncIterable<RoutingEvent> | Iterable<RoutingEvent>): AsyncGenerator<object> {
  for await (const event of events) yield queryEvent(event)
}

/** The IPNS specification's cap on a record. */
const MAX_RECORD_BYTES = 10 * 1024

const Verbose = { verbose: Type.Optional(Type.Boolean({ description: "Kubo's flag for its text output; the lines are the same" })) }

/** The roots to provide, each checked to be here, as Kubo requires, before anything is announced. */
async function localRoots (content: Content, paths: string[], signal: AbortSignal): Promise<CID[]> {
  const roots: CID[] = []
  for (const path of paths) {
    const { cid } = parsePath(path)
    try {
      await content.blockStat(cid.toString(), { offline: true, signal })
    } catch (err: any) {
      if (err.name === 'NotFoundError') throw new NotFoundError(`block ${cid} not found locally, cannot provide`)
      throw err
    }
    roots.push(cid)
  }
  return roots
}

/** The roots, and with `recursive` every block under each (those that are here). */
async function * withDescendants (content: Content, roots: CID[], recursive: boolean, signal: AbortSignal): AsyncGenerator<CID> {
  for (const root of roots) {
    yield root
    if (recursive) {
      for await (const ref of content.refs(root.toString(), { offline: true, signal, unique: true, maxDepth: -1 })) yield ref.dst
    }
  }
}

/** The DHT from the API: Kubo's routing/findprovs, findpeer, provide, get and put, and dht/query, as NDJSON query events. */
export const routingRoutes: Routes = (app, { node }) => {
  kuboRoute(app, {
    path: 'routing/findprovs',
    permission: 'swarm',
    tags: ['routing'],
    summary: 'Peers that provide a CID, found in the DHT: NDJSON query events, a Provider event (Type 4) for each provider',
    schema: {
      querystring: Type.Object({
        arg: Type.Optional(Type.Array(Type.String(), { description: 'CID' })),
        'num-providers': Type.Optional(Type.Integer({ default: 20, description: 'Stop after this many providers' })),
        ...Verbose
      })
    },
    handler: async (request, reply) => {
      const { cid } = parsePath(firstArg(request, 'key'))
      const count = (request.query as { 'num-providers'?: number })['num-providers'] ?? 20
      return sendNdjson(reply, queryEvents(findProviders(node.swarm, cid, { count, signal: requestSignal(reply) })))
    }
  })

  kuboRoute(app, {
    path: 'routing/provide',
    permission: 'swarm',
    tags: ['routing'],
    summary: 'Announce to the DHT that this node provides local blocks (with recursive, every block under them): NDJSON query events',
    schema: {
      querystring: Type.Object({
        arg: Type.Optional(Type.Array(Type.String(), { description: 'CIDs of local blocks' })),
        recursive: Type.Optional(Type.Boolean({ default: false })),
        ...Verbose
      })
    },
    handler: async (request, reply) => {
      const paths = args(request)
      if (paths.length === 0) throw new BadRequestError('argument "key" is required')
      const recursive = (request.query as { recursive?: boolean }).recursive === true
      const signal = requestSignal(reply)
      const roots = await localRoots(node.content, paths, signal)
      return sendNdjson(reply, queryEvents(provide(node.swarm, withDescendants(node.content, roots, recursive, signal), { signal })))
    }
  })

  // Both take a peer ID and stream a query's events.
  const peerQueries = [
    { path: 'routing/findpeer', query: findPeer, summary: "A peer's addresses, from the peer store or the DHT: NDJSON query events ending with a FinalPeer event (Type 2), or a QueryError (Type 3) for a peer not found" },
    { path: 'dht/query', query: closestPeers, summary: 'The peers closest to a peer ID in the DHT: NDJSON query events, a FinalPeer event (Type 2) naming each' }
  ]
  for (const { path, query, summary } of peerQueries) {
    kuboRoute(app, {
      path,
      permission: 'swarm',
      tags: ['routing'],
      summary,
      schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'Peer ID' })), ...Verbose }) },
      handler: async (request, reply) => sendNdjson(reply, queryEvents(query(node.swarm, firstArg(request, 'peerID'), { signal: requestSignal(reply) })))
    })
  }

  kuboRoute(app, {
    path: 'routing/get',
    permission: 'names',
    tags: ['routing'],
    summary: 'The best IPNS record the routing has for /ipns/<name>: one NDJSON Value event (Type 5), the record base64 in Extra',
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: '/ipns/<name>' })), ...ReadQuery }) },
    handler: async (request, reply) => {
      const record = await node.content.names.getRecord(firstArg(request, 'key'), { signal: requestSignal(reply) })
      return sendNdjson(reply, queryEvents([{ type: QueryEventType.Value, value: record }]))
    }
  })

  kuboRoute(app, {
    path: 'routing/put',
    permission: 'names',
    tags: ['routing'],
    summary: 'Store a signed IPNS record (a multipart file) at /ipns/<name>, here and at the DHT\'s closest peers: one NDJSON Value event naming the peer',
    schema: {
      querystring: Type.Object({
        arg: Type.Optional(Type.Array(Type.String(), { description: '/ipns/<name>' })),
        'allow-offline': Type.Optional(Type.Boolean({ default: false, description: 'Store the record here only when no peer is connected, instead of failing' }))
      })
    },
    handler: async (request, reply) => {
      const key = firstArg(request, 'key')
      const record = await firstPartBytes(request, MAX_RECORD_BYTES)
      const allowOffline = (request.query as { 'allow-offline'?: boolean })['allow-offline'] === true
      const peer = await node.content.names.putRecord(key, record, { allowOffline, signal: requestSignal(reply) })
      return sendNdjson(reply, queryEvents([{ type: QueryEventType.Value, peer }]))
    }
  })
}
