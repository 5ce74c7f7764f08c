/**
 * The libp2p swarm of a node: TCP, noise, yamux, identify, ping, kad-dht and
 * gossipsub, plus bootstrap dialling and the private network (swarm.key). Every peer-to-peer concern of the daemon
 * (bitswap, IPNS, pubsub, later Raft) runs over the one libp2p node built from
 * `swarmOptions()`, except bulk block streams between members: those run on
 * sealed channels (sealed-channel.ts, which says why one layer of encryption
 * is enough there), keyed inside that node's connections; so do training's
 * gradient streams (SealedChannels).
 */
export { swarmOptions } from './options.ts'
export type { SwarmInit, SwarmServices, Swarm } from './options.ts'
export { connect, disconnect, knownAddrs, listPeers, pingPeer, pingPeers } from './peers.ts'
export { dialPeer, isReservedProtocol, messageStreamOptions, openStream } from './streams.ts'
export { formatSwarmKey, parseSwarmKey } from './private-network.ts'
export type { PeerConnection } from './peers.ts'
export { describePeer, MAX_PEER_ID_LENGTH, parsePeerId } from './identity.ts'
export type { PeerIdentity } from './identity.ts'
export { closestPeers, findPeer, findProviders, provide, QueryEventType } from './routing.ts'
export type { RoutingEvent } from './routing.ts'
export { dialSealed, MAX_SEALED_FRAME_BYTES, SealedChannelError, SealedListener, SealedStream } from './sealed-channel.ts'
export type { SealedOffer } from './sealed-channel.ts'
export { askSealedChannel, SealedChannels } from './sealed-channels.ts'
export type { SealedChannelsComponents, SealedChannelsInit } from './sealed-channels.ts'
export * from './errors.ts'
