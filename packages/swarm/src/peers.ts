import { multiaddr } from '@multiformats/multiaddr'
import { DialError, HandshakeFailedError, InvalidMultiaddrError, InvalidPeerIdError, PeerNotFoundError } from './errors.ts'
import { parsePeerId } from './identity.ts'
import type { Swarm } from './options.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface PeerConnection {
  peer: string
  addr: string
  direction: 'inbound' | 'outbound'
  muxer: string
  streams: number
  /** The protocol of each open stream, as Kubo's `swarm peers --streams` lists them. */
  protocols: string[]
  /** Round-trip time of the last identify/ping, in ms, when known. */
  latencyMs?: number
}

/**
 * Errors of a connection that reached the peer and failed in the upgrade: a
 * private-network key on one side only (the other reads its nonce as a
 * multistream header, or waits for one), or two different keys (noise then
 * reads noise).
 */
const HANDSHAKE_ERRORS = new Set([HandshakeFailedError.name, 'EncryptionFailedError'])

/** How long a dial may take, address lookup included. */
const DIAL_TIMEOUT_MS = 30_000

/** Longer than any multiaddr a node dials: a multiaddr's /p2p/ part is base58, quadratic to decode. */
const MAX_MULTIADDR_LENGTH = 1024

function parseMultiaddr (addr: string): Multiaddr {
  if (addr.length > MAX_MULTIADDR_LENGTH) throw new InvalidMultiaddrError(`invalid multiaddr: ${addr.length} characters, more than a multiaddr has`)
  try {
    const ma = multiaddr(addr)
    const peer = ma.getComponents().find(c => c.name === 'p2p')?.value
    if (peer == null) throw new InvalidMultiaddrError(`multiaddr ${addr} has no /p2p/ peer id`)
    // The multiaddr takes any string after /p2p/; a dial of one that is no peer id fails deep inside libp2p.
    try {
      parsePeerId(peer)
    } catch {
      throw new InvalidMultiaddrError(`multiaddr ${addr}: ${JSON.stringify(peer)} is not a peer id`)
    }
    return ma
  } catch (err: any) {
    if (err instanceof InvalidMultiaddrError) throw err
    throw new InvalidMultiaddrError(`invalid multiaddr ${JSON.stringify(addr)}: ${err.message}`)
  }
}

/** Dials a peer by a multiaddr that ends in /p2p/<peer id>; returns the peer id. */
export async function connect (swarm: Swarm, addr: string, options: AbortOptions = {}): Promise<string> {
  const ma = parseMultiaddr(addr)
  if (ma.getComponents().some(c => c.name === 'p2p' && c.value === swarm.peerId.toString())) throw new InvalidMultiaddrError(`multiaddr ${addr} names this node itself`)
  // A bare /p2p/<id> is dialled by asking peers where it is: with none to ask, that is an answer now.
  const bare = ma.getComponents().every(c => c.name === 'p2p' || c.name === 'ipfs')
  if (bare && swarm.getConnections().length === 0) throw new PeerNotFoundError(`could not connect to ${addr}: it names no address, and this node is connected to no peers to ask`)
  const deadline = AbortSignal.timeout(DIAL_TIMEOUT_MS)
  try {
    const conn = await swarm.dial(ma, { signal: options.signal == null ? deadline : AbortSignal.any([options.signal, deadline]) })
    return conn.remotePeer.toString()
  } catch (err: any) {
    if (HANDSHAKE_ERRORS.has(err.name)) throw new HandshakeFailedError(`could not connect to ${addr}: the peer answered but the handshake failed (${err.message}); the two nodes do not hold the same private-network key, or one holds none`)
    throw new DialError(`could not connect to ${addr}: ${err.message}`)
  }
}

export function listPeers (swarm: Swarm): PeerConnection[] {
  return swarm.getConnections().map(conn => ({
    peer: conn.remotePeer.toString(),
    addr: conn.remoteAddr.toString(),
    direction: conn.direction,
    muxer: conn.multiplexer ?? '',
    streams: conn.streams.length,
    protocols: conn.streams.map(stream => stream.protocol ?? '').sort(),
    latencyMs: conn.rtt
  }))
}

/** Pings every connected peer at once; a peer that does not answer within `timeoutMs` (default 2 s) gets null. */
export async function pingPeers (swarm: Swarm, options: AbortOptions & { timeoutMs?: number } = {}): Promise<Array<{ peer: string, latencyMs: number | null, error?: string }>> {
  const peers = new Map(swarm.getConnections().map(c => [c.remotePeer.toString(), c.remotePeer]))
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 2000)
  const signal = options.signal == null ? timeout : AbortSignal.any([options.signal, timeout])
  return Promise.all([...peers].map(async ([id, peer]) => {
    try {
      return { peer: id, latencyMs: await swarm.services.ping.ping(peer, { signal }) }
    } catch (err: any) {
      return { peer: id, latencyMs: null, error: err.message }
    }
  }))
}

/** The addresses the peer store holds for each peer it knows, as Kubo's swarm/addrs. */
export async function knownAddrs (swarm: Swarm): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {}
  for (const peer of await swarm.peerStore.all()) {
    if (peer.addresses.length > 0) out[peer.id.toString()] = peer.addresses.map(a => a.multiaddr.toString())
  }
  return out
}

/** Closes every connection to the peer a multiaddr (or a bare peer id) names; returns its id. */
export async function disconnect (swarm: Swarm, addr: string, options: AbortOptions = {}): Promise<string> {
  const peer = addr.startsWith('/') ? parseMultiaddr(addr).getComponents().find(c => c.name === 'p2p')?.value ?? '' : addr
  const id = parsePeerId(peer)
  if (swarm.getConnections(id).length === 0) throw new PeerNotFoundError(`not connected to ${peer}`)
  await swarm.hangUp(id, options)
  return id.toString()
}

/**
 * One round trip by the ping protocol to a peer by id or multiaddr, dialling
 * it if need be, in milliseconds; the peer's id comes with it.
 */
export async function pingPeer (swarm: Swarm, target: string, options: AbortOptions = {}): Promise<number> {
  const to = target.startsWith('/') ? parseMultiaddr(target) : parsePeerId(target)
  if (!target.startsWith('/') && swarm.peerId.equals(to as ReturnType<typeof parsePeerId>)) throw new InvalidPeerIdError('peer ID refers to self')
  try {
    // libp2p's ping counts whole milliseconds, 0 on loopback; Kubo reports nanoseconds.
    const start = performance.now()
    await swarm.services.ping.ping(to, options)
    return performance.now() - start
  } catch (err: any) {
    options.signal?.throwIfAborted()
    throw new DialError(`ping ${target}: ${err.message}`)
  }
}
