import { raceSignal } from 'race-signal'
import { DialError } from './errors.ts'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'

/**
 * Options for `pbStream`/`lpStream` of a protocol whose messages run to
 * `maxBytes`. libp2p's byte stream buffers at most 4 MiB by default whatever
 * maxDataLength says, so a larger message was refused with "Read buffer
 * overflow": the buffer must hold one whole message and its length prefix.
 */
export function messageStreamOptions (maxBytes: number): { maxDataLength: number, maxBufferSize: number } {
  return { maxDataLength: maxBytes, maxBufferSize: maxBytes + 16 }
}

/** How long a connection for one request's stream may take to dial. */
const DIAL_TIMEOUT_MS = 30_000

/**
 * A connection to `peer`, dialled for one request. libp2p joins concurrent
 * dials to a peer into one, which runs under the first caller's signal: a
 * request that was aborted failed every other request dialing the same peer
 * with its reason. The connection is dialed under a deadline of its own, and
 * only the wait for it is the request's. A dial that fails is a DialError,
 * as swarm connect's.
 */
export async function dialPeer (libp2p: Pick<Libp2p, 'dial'>, peer: PeerId, signal?: AbortSignal): Promise<Connection> {
  try {
    return await raceSignal(libp2p.dial(peer, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) }), signal)
  } catch (err: any) {
    // The caller's own abort stays what it is; anything else is a peer that could not be reached, which callers map as one.
    if (signal?.aborted === true) throw err
    throw new DialError(`could not reach ${peer.toString()}: ${err.message}`)
  }
}

/** Opens a stream of `protocol` to `peer` for one request, on a connection dialled as `dialPeer` does. */
export async function openStream (libp2p: Pick<Libp2p, 'dial'>, peer: PeerId, protocol: string, signal?: AbortSignal): Promise<Stream> {
  const connection = await dialPeer(libp2p, peer, signal)
  return connection.newStream(protocol, { signal })
}

/**
 * The namespaces of the protocols the node itself speaks: the daemon's own
 * (Raft, cluster, inference, training, blocks, its DHT) and libp2p's services
 * (identify, ping, kad, bitswap, gossipsub, relay). A stream opened by hand
 * on one of them acts as this node towards the cluster: a forged Raft message
 * or a half-written bitswap frame carries this node's peer id.
 */
const RESERVED_PROTOCOL_PREFIXES = ['/node-daemon/', '/ipfs/', '/libp2p/', '/meshsub/', '/floodsub/', '/p2p/']

/** Whether `protocol` is one the node itself speaks (see RESERVED_PROTOCOL_PREFIXES). */
export function isReservedProtocol (protocol: string): boolean {
  return RESERVED_PROTOCOL_PREFIXES.some(prefix => protocol.startsWith(prefix))
}
