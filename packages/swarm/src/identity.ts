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

function parsePeerId (peer: string): PeerId {
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
    try {
      await swarm.peerRouting.findPeer(peerId, { signal: options.signal ?? AbortSignal.timeout(30_000) })
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
