import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { tcp } from '@libp2p/tcp'
import { noiseCrypto } from './noise-crypto.ts'
import { quietLengthPrefixes } from './length-prefix.ts'
import { privateNetwork } from './private-network.ts'
import { halveYamuxWindowUpdates } from './yamux-window.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { Libp2p, PeerDiscovery, PrivateKey } from '@libp2p/interface'
import type { KadDHT, KadDHTInit } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { Libp2pOptions } from 'libp2p'
import type { Registry } from 'prom-client'

export interface SwarmInit {
  privateKey: PrivateKey
  /** Interface to listen on; tests use 127.0.0.1. */
  host?: string
  /** TCP port; 0 picks an ephemeral one. */
  port: number
  /** Multiaddrs (with /p2p/) dialled at start and kept connected. */
  bootstrap?: string[]
  /** Where libp2p's own metrics go; one registry per node keeps in-process nodes apart. */
  metricsRegistry?: Registry
  /** DHT record validators and selectors by key prefix, e.g. `ipns` from the content layer. */
  dhtRecords?: Pick<KadDHTInit, 'validators' | 'selectors'>
  /**
   * The cluster's private-network key, as a swarm.key file holds it. With one,
   * every connection is encrypted with it first, so only nodes that hold the
   * same key can connect; without one the swarm is open to public IPFS nodes.
   */
  swarmKey?: Uint8Array
  /** Announce and find peers on the LAN by multicast DNS. */
  mdns?: boolean
  /** Transports in place of TCP, e.g. `@libp2p/memory` for simulations that run many nodes in one process. */
  transports?: Libp2pOptions['transports']
  /** Listen addresses in place of `/ip4/<host>/tcp/<port>`, as the transports above need. */
  listen?: string[]
  /**
   * Encrypters in place of noise: a simulation of many nodes in one process,
   * where no byte leaves memory, may use plaintext to spare its one thread.
   */
  connectionEncrypters?: Libp2pOptions['connectionEncrypters']
  /** What identify tells peers this node runs (Kubo's AgentVersion), e.g. `node-daemon/0.1.0`. */
  agentVersion?: string
}

/** The DHT of a private cluster: public Amino peers could not reach it anyway, so it gets its own protocol. */
export const PRIVATE_DHT_PROTOCOL = '/node-daemon/kad/1.0.0'
/** mDNS service of private clusters, so that IPFS nodes on the LAN do not dial nodes they cannot talk to. */
export const PRIVATE_MDNS_SERVICE = '_node-daemon._udp.local'

export type SwarmServices = {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
}

export type Swarm = Libp2p<SwarmServices>

/**
 * A message's author and sequence number: what gossipsub's id of a signed
 * message is made of. Without it gossipsub checks the signature of every copy
 * that mesh peers forward before it finds the copy a duplicate; with it only
 * the first valid copy is checked (invalid ones never enter the cache).
 */
function fastMessageId (msg: { from?: Uint8Array, seqno?: Uint8Array }): string {
  const base64 = (bytes: Uint8Array = new Uint8Array(0)): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  return `${base64(msg.from)}.${base64(msg.seqno)}`
}

/**
 * libp2p options for a node. The DHT keeps private and loopback addresses,
 * because clusters are mostly LANs; it speaks the public Amino protocol in an
 * open swarm and a cluster-only one behind a swarm key. The node never dials
 * out to the public bootstrap list on its own.
 */
export function swarmOptions (init: SwarmInit): Libp2pOptions<SwarmServices> {
  const host = init.host ?? '0.0.0.0'
  const peerDiscovery: Array<(components: any) => PeerDiscovery> = []
  if (init.bootstrap != null && init.bootstrap.length > 0) {
    peerDiscovery.push(bootstrap({ list: init.bootstrap, timeout: 100 }))
  }
  if (init.mdns === true) {
    peerDiscovery.push(mdns(init.swarmKey == null ? {} : { serviceTag: PRIVATE_MDNS_SERVICE }))
  }
  const dhtProtocol: Pick<KadDHTInit, 'protocol'> = init.swarmKey == null ? {} : { protocol: PRIVATE_DHT_PROTOCOL }
  halveYamuxWindowUpdates()
  quietLengthPrefixes()
  return {
    privateKey: init.privateKey,
    nodeInfo: init.agentVersion == null ? undefined : { userAgent: init.agentVersion },
    addresses: { listen: init.listen ?? [`/ip4/${host}/tcp/${init.port}`] },
    transports: init.transports ?? [tcp()],
    connectionEncrypters: init.connectionEncrypters ?? [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux()],
    connectionProtector: init.swarmKey == null ? undefined : privateNetwork({ psk: init.swarmKey }),
    peerDiscovery,
    metrics: init.metricsRegistry == null ? undefined : prometheusMetrics({ registry: init.metricsRegistry, collectDefaultMetrics: false, preserveExistingMetrics: true }),
    services: {
      identify: identify(),
      // libp2p's connection monitor pings every connection over this protocol and aborts the connection when a ping fails. With ping's
      // default of one stream, a ping still closing on a busy node made the next one fail, which took training and bitswap streams down with it.
      ping: ping({ maxOutboundStreams: 4, maxInboundStreams: 4 }),
      dht: kadDHT({ clientMode: false, peerInfoMapper: passthroughMapper, ...dhtProtocol, ...init.dhtRecords }),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: true, fallbackToFloodsub: false, fastMsgIdFn: fastMessageId })
    }
  }
}
