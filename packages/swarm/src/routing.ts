import { parsePeerId } from './identity.ts'
import { InvalidRoutingRequestError, NoPeersError } from './errors.ts'
import type { Swarm } from './options.ts'
import type { AbortOptions, PeerInfo } from '@libp2p/interface'
import type { QueryEvent, SingleKadDHT } from '@libp2p/kad-dht'
import type { CID } from 'multiformats/cid'

/**
 * The kinds of Kubo's routing query events (go-libp2p's routing.QueryEventType),
 * which kad-dht numbers the same way; its PATH_ENDED has no Kubo counterpart.
 */
export const QueryEventType = { SendingQuery: 0, PeerResponse: 1, FinalPeer: 2, QueryError: 3, Provider: 4, Value: 5, AddingPeer: 6, DialingPeer: 7 } as const

/** One step of a DHT query, as Kubo's routing commands stream them. */
export interface RoutingEvent {
  type: typeof QueryEventType[keyof typeof QueryEventType]
  /** The peer the step is about: the one asked, answering, added or dialled, or found. */
  peer?: string
  /** Peers with their addresses: the closer peers of an answer, the providers found, or the peer found. */
  responses?: Array<{ id: string, addrs: string[] }>
  /** Why a step failed. */
  error?: string
  /** A record found. */
  value?: Uint8Array
}

/**
 * kad-dht holds a query until its routing table has a peer, which on a node
 * connected to none is forever: such a query is refused at once instead. A
 * node with connections gets its DHT peers from them within moments.
 */
function needPeers (swarm: Swarm, what: string): void {
  // kadDHT() makes a single DHT, whose routing table the KadDHT interface leaves out.
  if ((swarm.services.dht as SingleKadDHT).routingTable.size === 0 && swarm.getConnections().length === 0) throw new NoPeersError(`${what}: the DHT has no peers to ask`)
}

const addrInfo = (info: PeerInfo): { id: string, addrs: string[] } => ({ id: info.id.toString(), addrs: info.multiaddrs.map(ma => ma.toString()) })

/** A kad-dht event as Kubo tells it; undefined for the ones Kubo does not have. */
function routingEvent (event: QueryEvent): RoutingEvent | undefined {
  switch (event.name) {
    case 'SEND_QUERY': return { type: QueryEventType.SendingQuery, peer: event.to.toString() }
    case 'PEER_RESPONSE': return { type: QueryEventType.PeerResponse, peer: event.from.toString(), responses: event.closer.map(addrInfo) }
    case 'FINAL_PEER': return { type: QueryEventType.FinalPeer, peer: event.from.toString(), responses: [addrInfo(event.peer)] }
    case 'QUERY_ERROR': return { type: QueryEventType.QueryError, peer: event.from.toString(), error: event.error.message }
    case 'PROVIDER': return { type: QueryEventType.Provider, peer: event.from.toString(), responses: event.providers.map(addrInfo) }
    case 'VALUE': return { type: QueryEventType.Value, peer: event.from.toString(), value: event.value }
    case 'ADD_PEER': return { type: QueryEventType.AddingPeer, responses: [{ id: event.peer.toString(), addrs: [] }] }
    case 'DIAL_PEER': return { type: QueryEventType.DialingPeer, peer: event.peer.toString() }
    default: return undefined
  }
}

/**
 * Kubo's routing/findprovs: the query's steps, and each provider once in its
 * own Provider event, until `count` providers were found or the query ends.
 */
export async function * findProviders (swarm: Swarm, cid: CID, options: AbortOptions & { count: number }): AsyncGenerator<RoutingEvent> {
  if (options.count < 1) throw new InvalidRoutingRequestError('number of providers must be greater than 0')
  needPeers(swarm, 'cannot find providers')
  const seen = new Set<string>()
  for await (const event of swarm.services.dht.findProviders(cid, options)) {
    if (event.name !== 'PROVIDER') {
      const step = routingEvent(event)
      if (step != null) yield step
      continue
    }
    for (const provider of event.providers) {
      const id = provider.id.toString()
      if (seen.has(id)) continue
      seen.add(id)
      yield { type: QueryEventType.Provider, peer: event.from.toString(), responses: [addrInfo(provider)] }
      if (seen.size >= options.count) return
    }
  }
}

/**
 * Kubo's routing/findpeer: a peer's addresses, from the peer store when they
 * are known (as Kubo answers for a connected peer), else from a DHT query.
 * Its last event is the peer found, or for a peer not found, as Kubo's, a
 * query error event (which Kubo's clients read; Kubo also sets a trailer).
 */
export async function * findPeer (swarm: Swarm, peer: string, options: AbortOptions = {}): AsyncGenerator<RoutingEvent> {
  const id = parsePeerId(peer)
  if (id.equals(swarm.peerId)) throw new InvalidRoutingRequestError('cannot find self')
  const known = await swarm.peerStore.get(id, options).catch(() => undefined)
  if (known != null && known.addresses.length > 0) {
    yield { type: QueryEventType.FinalPeer, responses: [{ id: id.toString(), addrs: known.addresses.map(a => a.multiaddr.toString()) }] }
    return
  }
  needPeers(swarm, 'routing: not found')
  try {
    for await (const event of swarm.services.dht.findPeer(id, options)) {
      const step = routingEvent(event)
      if (step == null) continue
      yield step
      if (event.name === 'FINAL_PEER' && event.peer.id.equals(id)) return
    }
  } catch (err: any) {
    // kad-dht's way to say the query ended without the peer.
    if (err.name !== 'NotFoundError') throw err
  }
  yield { type: QueryEventType.QueryError, error: 'routing: not found' }
}

/** Kubo's dht/query: the query's steps, then each of the peers closest to a peer id as a FinalPeer event naming it. */
export async function * closestPeers (swarm: Swarm, peer: string, options: AbortOptions = {}): AsyncGenerator<RoutingEvent> {
  const id = parsePeerId(peer)
  needPeers(swarm, 'failed to find any peer in table')
  for await (const event of swarm.services.dht.getClosestPeers(id.toMultihash().bytes, options)) {
    if (event.name === 'FINAL_PEER') {
      yield { type: QueryEventType.FinalPeer, peer: event.peer.id.toString() }
      continue
    }
    const step = routingEvent(event)
    if (step != null) yield step
  }
}

/** Kubo's routing/provide: announces this node as a provider of each CID to the DHT, with the query's steps. */
export async function * provide (swarm: Swarm, cids: AsyncIterable<CID> | Iterable<CID>, options: AbortOptions = {}): AsyncGenerator<RoutingEvent> {
  needPeers(swarm, 'cannot provide, no connected peers')
  for await (const cid of cids) {
    for await (const event of swarm.services.dht.provide(cid, options)) {
      const step = routingEvent(event)
      if (step != null) yield step
    }
  }
}
