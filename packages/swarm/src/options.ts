import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { tcp } from '@libp2p/tcp'
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
}

export type SwarmServices = {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
}

export type Swarm = Libp2p<SwarmServices>

/**
 * libp2p options for a node. The DHT speaks the public Amino protocol but keeps
 * private and loopback addresses, because clusters are mostly LANs; the node
 * never dials out to the public bootstrap list on its own.
 */
export function swarmOptions (init: SwarmInit): Libp2pOptions<SwarmServices> {
  const host = init.host ?? '0.0.0.0'
  const peerDiscovery: Array<(components: any) => PeerDiscovery> = []
  if (init.bootstrap != null && init.bootstrap.length > 0) {
    peerDiscovery.push(bootstrap({ list: init.bootstrap, timeout: 100 }))
  }
  return {
    privateKey: init.privateKey,
    addresses: { listen: [`/ip4/${host}/tcp/${init.port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery,
    metrics: init.metricsRegistry == null ? undefined : prometheusMetrics({ registry: init.metricsRegistry, collectDefaultMetrics: false, preserveExistingMetrics: true }),
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({ clientMode: false, peerInfoMapper: passthroughMapper, ...init.dhtRecords }),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: true, fallbackToFloodsub: false })
    }
  }
}
