import { peerIdFromString } from '@libp2p/peer-id'
import { raceSignal } from 'race-signal'
import { beside } from './helia-node.ts'
import type { BitswapOptions, PeerWantListEntry, WantListEntry } from '@helia/bitswap'
import type { HasherLoader, Routing } from '@helia/interface'
import type { AbortOptions, ComponentLogger, Libp2p, Metrics, PeerId } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

/** Kubo's bitswap/stat: what bitswap (the exchange with IPFS nodes that are not daemons) moved since start. */
export interface BitswapStat {
  /** CIDs this node wants from bitswap peers now. */
  wantlist: CID[]
  /** Connected peers that speak bitswap. */
  peers: string[]
  blocksReceived: number
  dataReceived: number
  /** Blocks that arrived when the node already had them. */
  dupBlksReceived: number
  dupDataReceived: number
  messagesReceived: number
  blocksSent: number
  dataSent: number
}

/** Kubo's bitswap/ledger: bytes exchanged with one peer while it is connected, as Helia's bitswap keeps them. */
export interface BitswapLedger {
  peer: string
  /** Debt ratio: bytes sent / (bytes received + 1). */
  value: number
  sent: number
  recv: number
  exchanged: number
}

interface BitswapComponents {
  libp2p: Libp2p
  blockstore: Blockstore
  routing: Routing
  logger: ComponentLogger
  getHasher: HasherLoader
  metrics: Metrics
}

interface SharedWant { block: Promise<Uint8Array>, controller: AbortController, waiting: number }

interface BlockEvent { detail: { cid: CID, block: Uint8Array } }
interface PeerLedger { value: number, sent: number, received: number, exchanged: number }

/** The parts of @helia/bitswap's Bitswap class this daemon uses (the package exports only withBitswap). */
export interface HeliaBitswap {
  start(): Promise<void>
  stop(): Promise<void>
  want(cid: CID, options?: AbortOptions): Promise<Uint8Array>
  notify(cid: CID, options?: AbortOptions): Promise<void>
  getWantlist(): WantListEntry[]
  getPeerWantlist(peer: PeerId): PeerWantListEntry[] | undefined
  network: { addEventListener(type: 'bitswap:message', listener: () => void): void }
  wantList: { peers: { keys(): Iterable<PeerId> }, addEventListener(type: 'block', listener: (event: BlockEvent) => void): void }
  peerWantLists: { ledgerForPeer(peer: PeerId): PeerLedger | undefined }
}

const { Bitswap } = await beside<{ Bitswap: new (components: BitswapComponents, init: BitswapOptions) => HeliaBitswap }>('@helia/bitswap', 'bitswap.js')

/**
 * Helia's bitswap with Kubo's bitswap/stat counted. Bitswap counts the blocks
 * it sends only into a libp2p Metrics component (its received counters are
 * never updated), and libp2p's Prometheus metrics are shared by every node of
 * a process; so bitswap gets a component of its own that keeps the two sent
 * counters, and the received figures are counted from its messages and blocks.
 */
export class CountedBitswap {
  readonly bitswap: HeliaBitswap
  private readonly blockstore: Pick<Blockstore, 'has'>
  private readonly counts = { blocksReceived: 0, dataReceived: 0, dupBlksReceived: 0, dupDataReceived: 0, messagesReceived: 0, blocksSent: 0, dataSent: 0 }
  private readonly wants = new Map<string, SharedWant>()

  constructor (components: Omit<BitswapComponents, 'metrics'>, init: BitswapOptions = {}) {
    this.blockstore = components.blockstore
    this.bitswap = new Bitswap({ ...components, metrics: this.metrics() }, init)
    this.bitswap.network.addEventListener('bitswap:message', () => { this.counts.messagesReceived++ })
    this.bitswap.wantList.addEventListener('block', (event) => { this.received(event.detail.cid, event.detail.block.byteLength) })
  }

  /**
   * A block from bitswap peers. Callers that want the same block share one
   * want, withdrawn only once every one of them gave up: Helia's bitswap
   * withdraws a want shared by several callers at the first one's abort.
   */
  async want (cid: CID, options: AbortOptions = {}): Promise<Uint8Array> {
    options.signal?.throwIfAborted()
    const key = Buffer.from(cid.multihash.bytes).toString('base64')
    let shared = this.wants.get(key)
    if (shared == null) {
      const controller = new AbortController()
      const created: SharedWant = { block: this.bitswap.want(cid, { ...options, signal: controller.signal }), controller, waiting: 0 }
      created.block.then(() => { this.wants.delete(key) }, () => { if (this.wants.get(key) === created) this.wants.delete(key) })
      this.wants.set(key, created)
      shared = created
    }
    shared.waiting++
    try {
      return await raceSignal(shared.block, options.signal)
    } finally {
      shared.waiting--
      if (shared.waiting === 0) {
        shared.controller.abort()
        if (this.wants.get(key) === shared) this.wants.delete(key)
      }
    }
  }

  /** A block from a peer: a duplicate when it was here already (checked before bitswap stores it, as Kubo does). */
  private received (cid: CID, bytes: number): void {
    this.counts.blocksReceived++
    this.counts.dataReceived += bytes
    Promise.resolve(this.blockstore.has(cid)).then(had => {
      if (!had) return
      this.counts.dupBlksReceived++
      this.counts.dupDataReceived += bytes
    }, () => {})
  }

  /**
   * The Metrics component bitswap registers its counters and gauges on as it
   * is constructed: the two sent counters count here, the rest (gauges of its
   * maps and queues) are not exported. A registration it newly makes fails at
   * start, not later.
   */
  private metrics (): Metrics {
    const counters: Record<string, 'blocksSent' | 'dataSent'> = { helia_bitswap_sent_blocks_total: 'blocksSent', helia_bitswap_sent_data_bytes_total: 'dataSent' }
    const ignored = { update () {}, increment () {}, decrement () {}, reset () {}, timer: () => () => {} }
    const metrics: Pick<Metrics, 'registerCounter' | 'registerMetric' | 'registerMetricGroup'> = {
      registerCounter: ((name: string) => {
        const field = counters[name]
        return field == null ? ignored : { increment: (value = 1) => { this.counts[field] += value }, reset () {} }
      }) as Metrics['registerCounter'],
      registerMetric: (() => ignored) as Metrics['registerMetric'],
      registerMetricGroup: (() => ignored) as Metrics['registerMetricGroup']
    }
    return metrics as Metrics
  }

  stat (): BitswapStat {
    return {
      wantlist: this.bitswap.getWantlist().map(entry => entry.cid),
      peers: [...this.bitswap.wantList.peers.keys()].map(peer => peer.toString()),
      ...this.counts
    }
  }

  /** A peer's wants as it sent them to this node; empty for a peer that wants nothing or is not connected. */
  wantlistOf (peer: string): CID[] {
    return (this.bitswap.getPeerWantlist(peerIdFromString(peer)) ?? []).filter(entry => entry.status !== 'sent').map(entry => entry.cid)
  }

  /** The ledger of a peer; all zeros for one bitswap has exchanged nothing with since it connected, as Kubo answers. */
  ledger (peer: string): BitswapLedger {
    const ledger = this.bitswap.peerWantLists.ledgerForPeer(peerIdFromString(peer))
    return { peer, value: ledger?.value ?? 0, sent: ledger?.sent ?? 0, recv: ledger?.received ?? 0, exchanged: ledger?.exchanged ?? 0 }
  }
}
