import * as dagPb from '@ipld/dag-pb'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import * as varint from 'uint8-varint'
import { Uint8ArrayList } from 'uint8arraylist'
import { equals } from 'uint8arrays/equals'
import { askSealedChannel, SealedChannels } from '@node-daemon/swarm'
import { BlockRequest, BlockResponse } from '../../../protocols/blocks.js'
import { getBlock } from './blocks.ts'
import { CountedBitswap } from './bitswap.ts'
import type { BitswapOptions } from '@helia/bitswap'
import type { HeliaWithLibp2p } from '@helia/libp2p'
import type { Blocks, BlockBroker, BlockRetrievalOptions, SessionBlockBroker } from '@helia/interface'
import type { ComponentLogger, Connection, Libp2p, Logger, MultiaddrConnection, PeerId, ServiceMap, Startable, Stream } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { MultihashHasher } from 'multiformats/hashes/interface'

/** Versioned id of the block-stream protocol; the wire format is protocols/blocks.proto. */
export const BLOCK_STREAM_PROTOCOL = '/node-daemon/blocks/1.0.0'
/** How long opening a sealed channel may take before block streams go over libp2p instead. */
const SEALED_OPEN_MS = 3_000
/** Offers of a sealed channel for block streams (ChannelOffer in protocols/blocks.proto). */
export const BLOCK_CHANNEL_PROTOCOL = '/node-daemon/blocks-channel/1.0.0'

/** Largest block served or accepted; bitswap implementations cap blocks at 2-4 MiB too. */
export const MAX_BLOCK_BYTES = 4 * 1024 * 1024
/** A response is one block plus its id, status and protobuf framing. */
const MAX_RESPONSE_BYTES = MAX_BLOCK_BYTES + 1024
/** A request is an id and a CID; CIDs with identity digests stay under Helia's 128-byte cap. */
const MAX_REQUEST_BYTES = 1024
/**
 * Requests a server keeps per stream before it drops the stream as abusive. The
 * client stays well below (pipelineDepth × streamsPerPeer), so only a peer that
 * ignores its answers gets there.
 */
const MAX_QUEUED_REQUESTS = 1024

export interface BlockStreamInit {
  /** Outbound streams per peer; requests go to the least loaded. Default 2. */
  streamsPerPeer?: number
  /** Requests in flight on one stream before another stream to the same peer is opened. Default 16. */
  pipelineDepth?: number
  /**
   * The interface this node's sealed channels listen on (its swarm's host).
   * Unset, block streams stay on libp2p streams; set, peers reached over TCP
   * under noise get a sealed channel of their own for them (see
   * packages/swarm's sealed-channel.ts for why one layer of encryption is
   * enough there), and libp2p streams remain the fallback.
   */
  channelHost?: string
  /** Blocks a server reads from its blockstore at once, per inbound stream. Default 8. */
  serveConcurrency?: number
  /** An inbound stream without requests for this long is closed. Default 60 s. */
  idleTimeoutMs?: number
  /** A response that the asker does not take within this long ends the inbound stream. Default 30 s. */
  writeTimeoutMs?: number
  /** A peer that does not answer one request within this long is skipped for that block. Default 30 s. */
  requestTimeoutMs?: number
  /** Peers asked for one block before giving up on it (bitswap may still find it). Default 4. */
  maxPeersPerBlock?: number
  /**
   * Children of a UnixFS file node fetched ahead of their reader, per file
   * node; 0 turns read-ahead off. Default 16. See `readAhead`.
   */
  prefetch?: number
}

export interface BlockStreamComponents {
  /** Helia creates libp2p when it starts, so the broker asks for it then. */
  libp2p: () => Pick<Libp2p, 'handle' | 'unhandle' | 'register' | 'unregister' | 'getConnections' | 'peerStore' | 'metrics'>
  /** Helia's blockstore: `has` keeps read-ahead from fetching what is local. */
  blockstore: Pick<Blocks, 'has'>
  /**
   * The node's own blocks, which serving reads: a peer's request never makes
   * this node fetch. Helia's blockstore, offline, took its GC read lock and
   * looked twice (has, then get) for each block asked, 4% of the CPU of the
   * node that served a cluster's pins in the pin ingestion bench.
   */
  local: Pick<Blockstore, 'get'>
  /** Hashers by multihash code, to verify blocks when Helia gives no `validateFn`. */
  getHasher: (code: number) => MultihashHasher | Promise<MultihashHasher>
  logger: ComponentLogger
}

/** Counters, for tests and metrics: what this node served and what it received over the protocol. */
export interface BlockStreamStats {
  /** Block streams opened to peers on sealed channels, and on libp2p streams. */
  sealedChannels: number
  libp2pChannels: number
  blocksServed: number
  bytesServed: number
  missingAnswered: number
  blocksReceived: number
  bytesReceived: number
  /** Blocks fetched ahead of their reader and then asked for (a subset of blocksReceived). */
  prefetchHits: number
}

/** No peer that speaks the protocol had the block (or none is connected); bitswap may still find it. */
export class BlockUnavailableError extends Error {
  static name = 'BlockUnavailableError'
  name = 'BlockUnavailableError'
}

/** A peer sent bytes that do not hash to the CID asked for. */
export class BlockVerificationError extends Error {
  static name = 'BlockVerificationError'
  name = 'BlockVerificationError'
}

/** The stream a request was waiting on ended before its answer came. */
export class BlockStreamClosedError extends Error {
  static name = 'BlockStreamClosedError'
  name = 'BlockStreamClosedError'
}

/** A peer broke the protocol: an oversized message, or more requests queued than a server keeps. */
export class BlockStreamProtocolError extends Error {
  static name = 'BlockStreamProtocolError'
  name = 'BlockStreamProtocolError'
}

/** A peer took longer than requestTimeoutMs to answer. */
export class BlockRequestTimeoutError extends Error {
  static name = 'BlockRequestTimeoutError'
  name = 'BlockRequestTimeoutError'
}

/** A peer's recent answers, halved past this many so that they follow what it holds now. */
const ANSWERS_KEPT = 64

/** Counts a peer's answer: whether it held what it was asked for. */
function answered (peer: PeerEntry, held: boolean): void {
  if (held) peer.hits++
  else peer.misses++
  if (peer.hits + peer.misses > ANSWERS_KEPT) {
    peer.hits /= 2
    peer.misses /= 2
  }
}

/**
 * A length-prefixed BlockResponse of status OK, byte for byte what protons
 * writes (the id, then the block; OK is the enum's default and is left out),
 * with the block as a chunk of its own: protons would copy every block served
 * into the message it makes.
 */
export function framedBlock (id: number, block: Uint8Array): Uint8ArrayList {
  // Protons leaves out fields at their defaults: an id of 0, an empty block.
  const head = new Uint8ArrayList()
  if (id !== 0) head.append(Uint8Array.of(0x08), varint.encode(id))
  if (block.byteLength === 0) return new Uint8ArrayList(varint.encode(head.byteLength), head.subarray())
  head.append(Uint8Array.of(0x1a), varint.encode(block.byteLength))
  return new Uint8ArrayList(varint.encode(head.byteLength + block.byteLength), head.subarray(), block)
}

function lengthPrefixed (message: Uint8Array): Uint8ArrayList {
  return new Uint8ArrayList(varint.encode(message.byteLength), message)
}

/** Resolves or rejects as `promise` does, or rejects as soon as `signal` aborts. */
async function raceAbort<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) return promise
  signal.throwIfAborted()
  let onAbort = (): void => {}
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => {
      onAbort = () => { reject(signal.reason) }
      signal.addEventListener('abort', onAbort, { once: true })
    })])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/**
 * One outbound stream to a peer with many requests in flight, answered by id.
 * Writing a request never waits for an earlier answer: that is what keeps a
 * link busy where bitswap's want-list round trips leave it idle.
 */
class Channel {
  readonly stream: Stream
  closed = false
  private readonly pending = new Map<number, { resolve: (res: BlockResponse) => void, reject: (err: Error) => void }>()
  private nextId = 0
  private readonly log: Logger

  constructor (stream: Stream, log: Logger, onClose: (channel: Channel) => void) {
    this.stream = stream
    this.log = log
    void this.read().finally(() => { onClose(this) })
  }

  /** Requests waiting for their answer. */
  get load (): number {
    return this.pending.size
  }

  /**
   * One block's answer, refused after `timeoutMs`. The deadline is a timer of
   * the request's own: an AbortSignal.timeout joined to the caller's signal
   * with AbortSignal.any, for every block, was 4% of a node's CPU as it
   * fetched a file.
   */
  async request (cid: CID, timeoutMs: number, signal?: AbortSignal): Promise<BlockResponse> {
    signal?.throwIfAborted()
    if (this.closed) throw new BlockStreamClosedError('the stream to the peer has closed')
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1
    const id = this.nextId
    let rejectAnswer: (err: Error) => void = () => {}
    const answer = new Promise<BlockResponse>((resolve, reject) => {
      rejectAnswer = reject
      this.pending.set(id, { resolve, reject })
    })
    // Settled while the request may still be waiting to be written; handled below.
    answer.catch(() => {})
    // An abandoned request's answer still arrives; it is dropped as an unknown id.
    const timer = setTimeout(() => { rejectAnswer(new BlockRequestTimeoutError(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
    timer.unref()
    const onAbort = (): void => { rejectAnswer(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      if (!this.stream.send(lengthPrefixed(BlockRequest.encode({ id, cid: cid.bytes })))) {
        await Promise.race([this.stream.onDrain({ signal }), answer])
      }
      return await answer
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      this.pending.delete(id)
    }
  }

  abort (err: Error): void {
    this.stream.abort(err)
  }

  private async read (): Promise<void> {
    // maxDataLength is the cap that matters: the buffer cap is checked after a
    // chunk is appended, and one chunk from the muxer may carry many answers
    // (no more than the requests in flight asked for).
    const decoder = new LengthPrefixedDecoder({ maxDataLength: MAX_RESPONSE_BYTES, maxBufferSize: Number.MAX_SAFE_INTEGER })
    let failure: Error | undefined
    try {
      for await (const chunk of this.stream) {
        for (const message of decoder.decode(chunk)) {
          const response = BlockResponse.decode(message)
          this.pending.get(response.id)?.resolve(response)
        }
      }
    } catch (err: any) {
      failure = err
      this.log('block stream to %p failed - %e', this.stream.id, err)
    }
    this.closed = true
    const closed = new BlockStreamClosedError(failure == null ? 'the peer closed the stream' : `the stream failed: ${failure.message}`)
    for (const { reject } of this.pending.values()) reject(closed)
    this.pending.clear()
    if (failure != null) {
      this.stream.abort(failure)
    } else {
      await this.stream.close({ signal: AbortSignal.timeout(5_000) }).catch((err: Error) => { this.stream.abort(err) })
    }
  }
}

interface PeerEntry {
  id: PeerId
  channels: Channel[]
  opening?: Promise<Channel>
  /** False once the peer could not give a sealed channel: its block streams stay on libp2p. */
  sealed: boolean
  /** Recent answers, decayed: how often the peer lacked what it was asked for. */
  hits: number
  misses: number
}

/**
 * The block-stream protocol between cluster members, as a Helia BlockBroker
 * beside bitswap: it serves blocks from the local blockstore to peers that ask,
 * and fetches blocks from connected peers that speak it, with many requests in
 * flight on a few long-lived streams per peer. Bitswap stays for every other
 * IPFS node; Helia races both brokers and keeps the first verified block.
 */
export class BlockStream implements BlockBroker, Startable {
  readonly name = 'block-stream'
  readonly stats: BlockStreamStats = { sealedChannels: 0, libp2pChannels: 0, blocksServed: 0, bytesServed: 0, missingAnswered: 0, blocksReceived: 0, bytesReceived: 0, prefetchHits: 0 }
  private readonly components: BlockStreamComponents
  private readonly init: Required<Omit<BlockStreamInit, 'channelHost'>>
  private readonly log: Logger
  /** Connected peers known (from identify) to speak the protocol, by peer id string. */
  private readonly peers = new Map<string, PeerEntry>()
  private readonly inbound = new Set<Stream>()
  /** Connections to peers that do not speak the protocol, as far as the peer store knew when discover looked. */
  private readonly silent = new WeakSet<Connection>()
  private readonly channels?: SealedChannels
  private topologyId?: string
  /** Blocks being fetched or fetched ahead of their reader, oldest first; unverified until taken. */
  private readonly prefetched = new Map<string, Promise<Uint8Array>>()
  /** Where each child of a recently fetched UnixFS file node sits among its siblings, oldest first. */
  private readonly siblings = new Map<string, { children: CID[], index: number }>()
  private shutdown = new AbortController()
  private started = false

  constructor (components: BlockStreamComponents, init: BlockStreamInit = {}) {
    this.components = components
    this.init = {
      streamsPerPeer: init.streamsPerPeer ?? 2,
      pipelineDepth: init.pipelineDepth ?? 16,
      serveConcurrency: init.serveConcurrency ?? 8,
      idleTimeoutMs: init.idleTimeoutMs ?? 60_000,
      writeTimeoutMs: init.writeTimeoutMs ?? 30_000,
      requestTimeoutMs: init.requestTimeoutMs ?? 30_000,
      maxPeersPerBlock: init.maxPeersPerBlock ?? 4,
      prefetch: init.prefetch ?? 16
    }
    this.log = components.logger.forComponent('node-daemon:block-stream')
    if (init.channelHost != null) {
      this.channels = new SealedChannels({ libp2p: components.libp2p, log: components.logger.forComponent('node-daemon:block-stream:sealed') }, {
        host: init.channelHost,
        offerProtocol: BLOCK_CHANNEL_PROTOCOL,
        // Behind the private network's key, every peer that connected may fetch blocks.
        allow: () => true,
        onStream: (stream, peer) => { void this.serve(this.counted(stream), peer) }
      })
    }
  }

  isStarted (): boolean {
    return this.started
  }

  async start (): Promise<void> {
    if (this.started) return
    const libp2p = this.components.libp2p()
    this.shutdown = new AbortController()
    await libp2p.handle(BLOCK_STREAM_PROTOCOL, (stream, connection) => this.serve(stream, connection.remotePeer), {
      maxInboundStreams: 4 * this.init.streamsPerPeer,
      maxOutboundStreams: 4 * this.init.streamsPerPeer
    })
    try {
      await this.channels?.start()
      // Identify tells the topology which peers speak the protocol as they connect (see discover).
      this.topologyId = await libp2p.register(BLOCK_STREAM_PROTOCOL, {
        onConnect: (peerId) => { this.addPeer(peerId) },
        onDisconnect: (peerId) => { this.removePeer(peerId) }
      })
    } catch (err) {
      await this.stop()
      throw err
    }
    this.started = true
  }

  async stop (): Promise<void> {
    const libp2p = this.components.libp2p()
    this.shutdown.abort(new BlockStreamClosedError('the node is stopping'))
    if (this.topologyId != null) libp2p.unregister(this.topologyId)
    this.topologyId = undefined
    // Helia stops libp2p before its brokers; a stopped peer store may refuse the update.
    await libp2p.unhandle(BLOCK_STREAM_PROTOCOL).catch((err: Error) => { this.log('unhandle failed - %e', err) })
    await this.channels?.stop()
    for (const peerId of [...this.peers.values()].map(p => p.id)) this.removePeer(peerId)
    for (const stream of this.inbound) stream.abort(new BlockStreamClosedError('the node is stopping'))
    this.inbound.clear()
    this.prefetched.clear()
    this.siblings.clear()
    this.started = false
  }

  /** Peers the broker would ask for blocks now. */
  protocolPeers (): PeerId[] {
    return [...this.peers.values()].map(p => p.id)
  }

  private addPeer (peerId: PeerId): void {
    const key = peerId.toString()
    if (!this.peers.has(key)) this.peers.set(key, { id: peerId, channels: [], sealed: this.channels != null, hits: 0, misses: 0 })
  }

  /**
   * Adds the connected peers that speak the protocol, as the peer store says,
   * but that the topology did not report: those connected before the broker
   * started; those whose identify failed on the connection they have now (it
   * timed out under packet loss or while the peer was paused, and libp2p does
   * not run it again on that connection); and those whose disconnect was
   * reported after they had connected again. The peer store keeps what their
   * last identify said. A connection to a peer that does not speak the
   * protocol is looked up once.
   */
  private async discover (): Promise<void> {
    const libp2p = this.components.libp2p()
    for (const connection of libp2p.getConnections()) {
      if (connection.status !== 'open' || connection.limits != null || this.silent.has(connection) || this.peers.has(connection.remotePeer.toString())) continue
      const peer = await libp2p.peerStore.get(connection.remotePeer).catch(() => undefined)
      if (peer?.protocols.includes(BLOCK_STREAM_PROTOCOL) === true) this.addPeer(connection.remotePeer)
      else this.silent.add(connection)
    }
  }

  private removePeer (peerId: PeerId): void {
    const key = peerId.toString()
    const peer = this.peers.get(key)
    if (peer == null) return
    this.peers.delete(key)
    for (const channel of peer.channels) channel.abort(new BlockStreamClosedError('the peer disconnected'))
  }

  // ---- client ----

  async retrieve (cid: CID, options: BlockRetrievalOptions = {}): Promise<Uint8Array> {
    options.signal?.throwIfAborted()
    const key = cid.toString()
    this.readAhead(key)
    const early = this.prefetched.get(key)
    let block: Uint8Array | undefined
    if (early != null) {
      this.prefetched.delete(key)
      try {
        block = await raceAbort(early, options.signal)
        await this.verify(cid, block, options)
        this.stats.prefetchHits++
      } catch (err) {
        options.signal?.throwIfAborted()
        this.log('block %c fetched ahead was unusable, asking again - %e', cid, err)
        block = undefined
      }
    }
    block ??= await this.fetch(cid, options, true)
    this.stats.blocksReceived++
    this.stats.bytesReceived += block.byteLength
    this.learn(cid, block)
    return block
  }

  /** Asks peers in turn for one block; `verify` false leaves the check to whoever takes a block fetched ahead. */
  private async fetch (cid: CID, options: BlockRetrievalOptions, verify: boolean): Promise<Uint8Array> {
    options.signal?.throwIfAborted()
    const maxSize = Math.min(options.maxSize ?? MAX_BLOCK_BYTES, MAX_BLOCK_BYTES)
    const tried = new Set<string>()
    const failures: string[] = []
    let reopened = false
    let discovered = false
    for (let attempt = 0; attempt < this.init.maxPeersPerBlock + 1; attempt++) {
      let peer = this.choosePeer(tried)
      if (peer == null && !discovered) {
        discovered = true
        await this.discover()
        peer = this.choosePeer(tried)
      }
      if (peer == null) break
      const key = peer.id.toString()
      tried.add(key)
      let response: BlockResponse
      try {
        const channel = await this.channelTo(peer, options.signal)
        response = await channel.request(cid, this.init.requestTimeoutMs, options.signal)
      } catch (err: any) {
        options.signal?.throwIfAborted()
        // A stream that closed under the request (the server's idle timeout met
        // a new request on the way) is no fault of the peer: ask it once more.
        if (err instanceof BlockStreamClosedError && !reopened) {
          reopened = true
          tried.delete(key)
          continue
        }
        failures.push(`${key}: ${err.message}`)
        continue
      }
      if (response.status !== BlockResponse.Status.OK) {
        if (response.status === BlockResponse.Status.MISSING) answered(peer, false)
        failures.push(`${key}: ${response.status.toLowerCase()}`)
        continue
      }
      answered(peer, true)
      const block = response.block
      if (block.byteLength > maxSize) {
        failures.push(`${key}: block of ${block.byteLength} bytes exceeds ${maxSize}`)
        continue
      }
      try {
        if (verify) await this.verify(cid, block, options)
      } catch (err: any) {
        options.signal?.throwIfAborted()
        this.log.error('%p sent a block for %c that does not match it - %e', peer.id, cid, err)
        failures.push(`${key}: ${err.message}`)
        continue
      }
      return block
    }
    throw new BlockUnavailableError(failures.length === 0
      ? `no connected peer speaks ${BLOCK_STREAM_PROTOCOL}`
      : `no peer had ${cid} (${failures.join('; ')})`)
  }

  /**
   * Read-ahead for DAGs whose blocks are fetched one at a time. A UnixFS file
   * with dag-pb leaves (Kubo's default) is walked node by node: its reader
   * cannot know a child is a leaf before fetching it, so however far it reads
   * ahead, one block crosses the link per round trip. When this broker fetches
   * a file node, it remembers the node's children; each time one of them is
   * asked for, the next `prefetch` siblings are fetched too, so the reader's
   * next requests find their blocks on the way or already here. Only UnixFS
   * file nodes count: a file is read in order, a directory seldom is. Memory
   * stays bounded: at most 4 × prefetch blocks wait, the oldest dropped first.
   */
  private learn (cid: CID, block: Uint8Array): void {
    if (this.init.prefetch === 0 || cid.code !== dagPb.code) return
    let children: CID[]
    try {
      const node = dagPb.decode(block)
      if (node.Links.length === 0 || node.Data == null || UnixFS.unmarshal(node.Data).type !== 'file') return
      children = node.Links.map(link => link.Hash)
    } catch {
      return
    }
    const limit = 64 * this.init.prefetch
    for (const [index, child] of children.entries()) {
      this.siblings.set(child.toString(), { children, index })
      if (this.siblings.size > limit) this.siblings.delete(this.siblings.keys().next().value as string)
    }
    // The first children are asked for next, by the reader or by readAhead.
    for (const child of children.slice(0, this.init.prefetch)) this.prefetch(child)
  }

  /** `key` is being asked for: fetch the siblings that follow it. */
  private readAhead (key: string): void {
    const at = this.siblings.get(key)
    if (at == null) return
    this.siblings.delete(key)
    for (const child of at.children.slice(at.index + 1, at.index + 1 + this.init.prefetch)) this.prefetch(child)
  }

  private prefetch (cid: CID): void {
    const key = cid.toString()
    if (this.prefetched.has(key) || this.peers.size === 0) return
    // Each request of the fetch has its deadline; the blockstore is local.
    const signal = this.shutdown.signal
    const fetching = (async () => {
      if (await this.components.blockstore.has(cid, { signal })) throw new Error('the block is local')
      return this.fetch(cid, { signal }, false)
    })()
    fetching.catch(() => { if (this.prefetched.get(key) === fetching) this.prefetched.delete(key) })
    this.prefetched.set(key, fetching)
    if (this.prefetched.size > 4 * this.init.prefetch) this.prefetched.delete(this.prefetched.keys().next().value as string)
  }

  /**
   * Sessions add nothing here: every connected peer that speaks the protocol
   * is already a candidate. The method lets Helia sessions use the broker too.
   */
  createSession (): SessionBlockBroker {
    return {
      name: 'block-stream-session',
      retrieve: async (cid, options) => this.retrieve(cid, options),
      addPeer: async () => {}
    }
  }

  /**
   * Hash-checks a received block. Helia passes `validateFn` (its own check
   * against the CID) to brokers and checks blocks itself when a broker does not
   * call it; calling it here means a bad block costs only a retry with another
   * peer, and the block is hashed once, not twice.
   */
  private async verify (cid: CID, block: Uint8Array, options: BlockRetrievalOptions): Promise<void> {
    if (options.validateFn != null) {
      await options.validateFn(block)
      return
    }
    const hasher = await this.components.getHasher(cid.multihash.code)
    const digest = await hasher.digest(block)
    if (!equals(digest.digest, cid.multihash.digest)) throw new BlockVerificationError(`the bytes received do not hash to ${cid}`)
  }

  /**
   * The untried peer that should answer soonest: requests go to every peer
   * that holds blocks at once, each by its requests in flight, so a DAG held
   * by several peers comes from all of them. A peer that lately lacked what it
   * was asked for counts as up to pipelineDepth requests busier: a peer
   * without the DAG is asked only when its holders are that far behind, and
   * one that is fetching the same DAG (a replica being made beside this one)
   * is asked again as it gets blocks.
   */
  private choosePeer (tried: Set<string>): PeerEntry | undefined {
    let best: PeerEntry | undefined
    let bestCost = Infinity
    for (const [key, peer] of this.peers) {
      if (tried.has(key)) continue
      const load = peer.channels.reduce((sum, c) => sum + c.load, 0)
      const cost = load + this.init.pipelineDepth * peer.misses / (peer.hits + peer.misses + 1)
      if (cost < bestCost) {
        best = peer
        bestCost = cost
      }
    }
    return best
  }

  /**
   * The peer's least loaded open stream. Another stream opens (up to
   * streamsPerPeer) once that one carries pipelineDepth requests; until it is
   * open, requests keep going to the busy one rather than wait.
   */
  private async channelTo (peer: PeerEntry, signal?: AbortSignal): Promise<Channel> {
    let best: Channel | undefined
    for (const channel of peer.channels) {
      if (!channel.closed && (best == null || channel.load < best.load)) best = channel
    }
    const open = peer.channels.filter(c => !c.closed).length
    if (best != null && (best.load < this.init.pipelineDepth || open >= this.init.streamsPerPeer)) return best
    if (peer.opening == null) {
      const opening = this.openChannel(peer)
      peer.opening = opening
      opening.catch(() => {}).finally(() => { if (peer.opening === opening) peer.opening = undefined })
    }
    return best ?? raceAbort(peer.opening, signal)
  }

  /**
   * Opens a stream on an existing connection: the broker asks the peers it is
   * connected to and never dials. The stream outlives the request that opened
   * it, so only the node's shutdown and a dial deadline bound the opening.
   */
  private async openChannel (peer: PeerEntry): Promise<Channel> {
    const connection = this.components.libp2p().getConnections(peer.id).find(c => c.status === 'open' && c.limits == null)
    if (connection == null) {
      this.removePeer(peer.id)
      throw new BlockStreamClosedError(`not connected to ${peer.id}`)
    }
    const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.init.requestTimeoutMs)])
    let stream: Stream | undefined
    if (peer.sealed) {
      try {
        // A port a firewall drops would otherwise hold the first fetch from this peer for the whole request timeout.
        stream = this.counted(await askSealedChannel(connection, BLOCK_CHANNEL_PROTOCOL, this.log, { signal: AbortSignal.any([signal, AbortSignal.timeout(SEALED_OPEN_MS)]) }))
      } catch (err: any) {
        this.shutdown.signal.throwIfAborted()
        this.log('no sealed channel to %p, block streams go over libp2p - %e', peer.id, err)
        peer.sealed = false
      }
    }
    if (stream != null) {
      this.stats.sealedChannels++
    } else {
      stream = await connection.newStream(BLOCK_STREAM_PROTOCOL, { signal })
      this.stats.libp2pChannels++
    }
    const channel = new Channel(stream, this.log, (closed) => {
      peer.channels = peer.channels.filter(c => c !== closed)
    })
    if (this.peers.get(peer.id.toString()) !== peer) {
      channel.abort(new BlockStreamClosedError('the peer disconnected'))
      throw new BlockStreamClosedError(`${peer.id} disconnected`)
    }
    peer.channels.push(channel)
    return channel
  }

  // ---- server ----

  /**
   * Answers one inbound stream: requests are decoded as they arrive and served
   * serveConcurrency at a time, each answered as soon as its read finishes.
   * The stream has its own deadlines: it closes after idleTimeoutMs without
   * requests, and ends if the asker leaves an answer unread for writeTimeoutMs.
   */
  /**
   * A sealed channel's bytes counted where libp2p counts a connection's and a
   * block stream's (libp2p_data_transfer_bytes_total), so that stats/bw,
   * network_usage and /metrics still see the blocks that leave libp2p.
   */
  private counted (stream: Stream): Stream {
    const metrics = this.components.libp2p().metrics
    stream.protocol = BLOCK_STREAM_PROTOCOL
    // A channel is a connection of its own: libp2p's count only wraps its send and message events.
    metrics?.trackMultiaddrConnection(stream as unknown as MultiaddrConnection)
    metrics?.trackProtocolStream(stream)
    return stream
  }

  private async serve (stream: Stream, remotePeer: PeerId): Promise<void> {
    this.inbound.add(stream)
    const queue: BlockRequest[] = []
    let active = 0
    let idle: Promise<void> | undefined
    let wake: (() => void) | undefined
    const drained = (): Promise<void> => {
      if (active === 0 && queue.length === 0) return Promise.resolve()
      idle ??= new Promise(resolve => { wake = resolve })
      return idle
    }
    const pump = (): void => {
      while (active < this.init.serveConcurrency && queue.length > 0) {
        const request = queue.shift() as BlockRequest
        active++
        this.answer(stream, request)
          .catch((err: Error) => {
            this.log('answering %p failed - %e', remotePeer, err)
            stream.abort(err)
          })
          .finally(() => {
            active--
            timer.refresh()
            pump()
            if (active === 0 && queue.length === 0 && wake != null) {
              wake()
              idle = undefined
              wake = undefined
            }
          })
      }
    }
    const timer = setTimeout(function onIdle () {
      if (active > 0 || queue.length > 0) {
        timer.refresh()
        return
      }
      // Closing our side ends the asker's channel; it opens a new stream when it next needs one.
      stream.close({ signal: AbortSignal.timeout(5_000) }).catch((err: Error) => { stream.abort(err) })
    }, this.init.idleTimeoutMs)
    const decoder = new LengthPrefixedDecoder({ maxDataLength: MAX_REQUEST_BYTES, maxBufferSize: MAX_QUEUED_REQUESTS * MAX_REQUEST_BYTES })
    try {
      for await (const chunk of stream) {
        timer.refresh()
        for (const message of decoder.decode(chunk)) {
          if (queue.length >= MAX_QUEUED_REQUESTS) throw new BlockStreamProtocolError(`more than ${MAX_QUEUED_REQUESTS} requests queued`)
          queue.push(BlockRequest.decode(message))
        }
        pump()
      }
      // The asker has closed its side: answer what it asked, then close ours.
      await raceAbort(drained(), this.shutdown.signal)
      if (stream.writeStatus === 'writable') await stream.close({ signal: AbortSignal.timeout(this.init.writeTimeoutMs) })
    } catch (err: any) {
      this.log('inbound block stream from %p ended - %e', remotePeer, err)
      stream.abort(err)
    } finally {
      clearTimeout(timer)
      queue.length = 0
      this.inbound.delete(stream)
    }
  }

  /** Reads one block from the local blockstore only and writes its answer. */
  private async answer (stream: Stream, request: BlockRequest): Promise<void> {
    const response: Partial<BlockResponse> = { id: request.id }
    let cid: CID | undefined
    try {
      cid = CID.decode(request.cid)
    } catch {
      response.status = BlockResponse.Status.ERROR
    }
    if (cid != null) {
      try {
        const block = await getBlock(this.components.local, cid, { signal: this.shutdown.signal })
        if (block.byteLength > MAX_BLOCK_BYTES) {
          response.status = BlockResponse.Status.TOO_LARGE
        } else {
          response.status = BlockResponse.Status.OK
          response.block = block as Uint8Array<ArrayBuffer>
        }
      } catch (err: any) {
        this.shutdown.signal.throwIfAborted()
        if (err.name === 'NotFoundError') {
          response.status = BlockResponse.Status.MISSING
        } else {
          this.log.error('reading %c for a peer failed - %e', cid, err)
          response.status = BlockResponse.Status.ERROR
        }
      }
    }
    if (stream.writeStatus !== 'writable') return
    if (!stream.send(response.status === BlockResponse.Status.OK && response.block != null ? framedBlock(request.id, response.block) : lengthPrefixed(BlockResponse.encode(response)))) {
      await stream.onDrain({ signal: AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.init.writeTimeoutMs)]) })
    }
    if (response.status === BlockResponse.Status.OK) {
      this.stats.blocksServed++
      this.stats.bytesServed += response.block?.byteLength ?? 0
    } else if (response.status === BlockResponse.Status.MISSING) {
      this.stats.missingAnswered++
    }
  }
}

/**
 * Block brokers of a daemon: cluster peers first, the IPFS network second.
 * Helia races every broker for every missing block, and bitswap's want lists
 * and DHT provider lookups then cost the receiving node more CPU than the
 * block-stream transfer itself; so bitswap is asked only for blocks that no
 * block-stream peer has. It still announces new blocks to other IPFS nodes.
 * Started as createHeliaNode's `beforeListen`: neither broker can start
 * before libp2p exists, and both must handle their protocols before a peer
 * can connect.
 */
export async function startBrokers<S extends ServiceMap> (helia: HeliaWithLibp2p<S>, stream: BlockStream, bitswapInit: BitswapOptions = {}): Promise<CountedBitswap | undefined> {
  if (helia.hasBlockBroker('cluster-first')) return
  // @helia/bitswap exports only withBitswap, which would add bitswap to the race.
  const counted = new CountedBitswap({ libp2p: helia.libp2p, blockstore: helia.blockstore, routing: helia.routing, logger: helia.logger, getHasher: helia.getHasher }, bitswapInit)
  const bitswap = counted.bitswap
  await bitswap.start()
  await stream.start()
  const clusterFirst: BlockBroker & Startable = {
    name: 'cluster-first',
    start: async () => {},
    stop: async () => { await Promise.all([stream.stop(), bitswap.stop()]) },
    retrieve: async (cid, options: BlockRetrievalOptions = {}) => {
      try {
        return await stream.retrieve(cid, options)
      } catch (err) {
        options.signal?.throwIfAborted()
        return counted.want(cid, options)
      }
    },
    announce: async (cid, options) => { await bitswap.notify(cid, options) }
  }
  helia.addBlockBroker(clusterFirst)
  return counted
}
