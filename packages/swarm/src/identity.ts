import { publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { InvalidPeerIdError, PeerNotFoundError } from './errors.ts'
import type { Swarm } from './options.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'

export interface PeerIdentity {
  id: string
  /** The public key in libp2p's protobuf encoding, base64, as Kubo prints it. */
  publicKey: string
  addresses: string[]
  agentVersion: string
  protocolVersion: string
  protocols: string[]
}

const decoder = new TextDecoder()
/** How long a DHT lookup of a peer this node does not know may take. */
const FIND_PEER_TIMEOUT_MS = 30_000

/**
 * Longer than any peer id: Ed25519 and secp256k1 ones are 52 characters,
 * RSA ones 46. Base58 decoding takes time quadratic in the length, so longer
 * input is refused before it is decoded.
 */
export const MAX_PEER_ID_LENGTH = 128

/** A peer id from user input, refusing what no peer id looks like before decoding it. */
export function parsePeerId (peer: string): PeerId {
  if (peer.length > MAX_PEER_ID_LENGTH) throw new InvalidPeerIdError(`invalid peer id: ${peer.length} characters, more than a peer id has`)
  try {
    return peerIdFromString(peer)
  } catch {
    throw new InvalidPeerIdError(`invalid peer id ${JSON.stringify(peer)}`)
  }
}

function publicKeyOf (peerId: PeerId): string {
  return peerId.publicKey == null ? '' : Buffer.from(publicKeyToProtobuf(peerId.publicKey)).toString('base64')
}

/**
 * Describes this node, or another peer from the peer store (filled by
 * identify), looking it up on the DHT when it is not known yet.
 */
export async function describePeer (swarm: Swarm, agentVersion: string, peer?: string, options: AbortOptions = {}): Promise<PeerIdentity> {
  if (peer == null || peer === '' || peer === swarm.peerId.toString()) {
    return {
      id: swarm.peerId.toString(),
      publicKey: publicKeyOf(swarm.peerId),
      addresses: swarm.getMultiaddrs().map(ma => ma.toString()),
      agentVersion,
      protocolVersion: 'ipfs/0.1.0',
      protocols: swarm.getProtocols().sort()
    }
  }
  const peerId = parsePeerId(peer)
  if (!await swarm.peerStore.has(peerId)) {
    // As Kubo's DHT does with an empty routing table: nobody to ask is an answer now, not after a timeout.
    if (swarm.getConnections().length === 0) throw new PeerNotFoundError(`peer ${peer} not found: this node is connected to no peers to ask`)
    try {
      const deadline = AbortSignal.timeout(FIND_PEER_TIMEOUT_MS)
      await swarm.peerRouting.findPeer(peerId, { signal: options.signal == null ? deadline : AbortSignal.any([options.signal, deadline]) })
    } catch (err: any) {
      throw new PeerNotFoundError(`peer ${peer} not found: ${err.message}`)
    }
  }
  const info = await swarm.peerStore.get(peerId)
  return {
    id: peerId.toString(),
    publicKey: publicKeyOf(info.id),
    addresses: info.addresses.map(a => a.multiaddr.toString()),
    agentVersion: decoder.decode(info.metadata.get('AgentVersion') ?? new Uint8Array()),
    protocolVersion: decoder.decode(info.metadata.get('ProtocolVersion') ?? new Uint8Array()),
    protocols: [...info.protocols].sort()
  }
}
