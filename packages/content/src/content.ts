import { addAll } from './add.ts'
import { BlockStream, startBrokers } from './block-stream.ts'
import { boundedFetches, dagGet, dagPut, getBlock, putBlock, statBlock } from './blocks.ts'
import { codecs, hashers } from './codecs.ts'
import { BlockGuard, collectGarbage, heldPut, removeBlocks } from './gc.ts'
import { createHeliaNode } from './helia-node.ts'
import { ipnsDhtRecords, Names } from './names.ts'
import { parsePath } from './paths.ts'
import { dagSize, pinAdd, pinLs, pinRm } from './pins.ts'
import { Topics } from './pubsub.ts'
import { cat, ls, resolveEntry, stat } from './read.ts'
import type { AddEvent, AddOptions } from './add.ts'
import type { BlockStreamInit } from './block-stream.ts'
import type { BlockPutOptions, DagPutOptions, ReadOptions } from './blocks.ts'
import type { BlockRmOptions, BlockRmResult, GcComponents, GcResult } from './gc.ts'
import type { DhtRecords } from './names.ts'
import type { PinAddOptions, PinEntry, PinFilter } from './pins.ts'
import type { CatOptions, FileStat, Listing } from './read.ts'
import type { Blocks } from '@helia/interface'
import type { HeliaWithLibp2p } from '@helia/libp2p'
import type { AbortOptions } from '@libp2p/interface'
import type { Swarm, SwarmServices } from '@node-daemon/swarm'
import type { Blockstore } from 'interface-blockstore'
import type { Datastore } from 'interface-datastore'
import type { ImportCandidate } from 'ipfs-unixfs-importer'
import type { Libp2pOptions } from 'libp2p'
import type { CID } from 'multiformats/cid'

export interface ContentInit {
  blockstore: Blockstore
  datastore: Datastore
  /**
   * The swarm's options, given the DHT record rules of IPNS; Helia creates and
   * owns the libp2p node.
   */
  libp2p: (dhtRecords: DhtRecords) => Libp2pOptions<SwarmServices>
  /** The node's identity key as a libp2p protobuf, made the IPNS `self` key. */
  identity: Uint8Array
  /** Tuning of the block-stream protocol between cluster members. */
  blockStream?: BlockStreamInit
  /** How long a block that is not local may take to arrive from the network; unset, as long as each request allows. */
  fetchTimeoutMs?: number
  /**
   * CIDs that GC keeps with everything under them, pinned here or not (yet):
   * the cluster's allocations to this node, pins still being fetched included.
   */
  keep?: () => Iterable<string>
}

/**
 * The IPFS content of one node: a Helia stack (blockstore, pins, bitswap, IPNS)
 * on the node's swarm. Each method is one Kubo RPC operation; the work lives in
 * one file per concern beside this class.
 */
export class Content {
  readonly helia: HeliaWithLibp2p<SwarmServices>
  /** Block transfer between daemons; bitswap, for other IPFS nodes, is asked only for what no daemon has. */
  readonly blockStream: BlockStream
  readonly names: Names
  readonly topics: Topics
  private readonly identity: Uint8Array
  /** The in-flight set of adds and pulls, which GC leaves alone. */
  private readonly guard = new BlockGuard()
  private readonly gcComponents: GcComponents
  /** Helia's blockstore as reads go through it: offline on request, and each fetch bounded. */
  private readonly reads: Pick<Blocks, 'get' | 'has'>
  private readonly fetchTimeoutMs?: number

  constructor (init: ContentInit) {
    this.helia = createHeliaNode({
      blockstore: init.blockstore,
      datastore: init.datastore,
      codecs: Object.values(codecs),
      hashers: Object.values(hashers)
    }, (helia) => init.libp2p(ipnsDhtRecords(helia.keychain)), async (helia) => { await startBrokers(helia, this.blockStream) })
    this.blockStream = new BlockStream({
      libp2p: () => this.helia.libp2p,
      blockstore: this.helia.blockstore,
      getHasher: this.helia.getHasher,
      logger: this.helia.logger
    }, init.blockStream)
    const { datastore, routing, logger, keychain, events, getCrypto } = this.helia
    this.names = new Names({ datastore, routing, logger, keychain, events, getCrypto, hasPeers: () => this.helia.libp2p.getConnections().length > 0 })
    this.topics = new Topics(() => this.helia.libp2p.services.pubsub)
    this.identity = init.identity
    this.fetchTimeoutMs = init.fetchTimeoutMs
    this.reads = boundedFetches(this.helia.blockstore, init.fetchTimeoutMs)
    this.gcComponents = { blockstore: init.blockstore, pins: this.helia.pins, guard: this.guard, keep: init.keep, log: logger.forComponent('node-daemon:gc') }
  }

  get swarm (): Swarm {
    return this.helia.libp2p
  }

  async start (): Promise<void> {
    await this.helia.start()
    try {
      this.topics.start()
      await this.names.setSelfKey(this.identity)
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async stop (): Promise<void> {
    if (this.helia.status === 'stopped') return
    this.topics.stop()
    await this.helia.stop()
  }

  addAll (source: AsyncIterable<ImportCandidate> | Iterable<ImportCandidate>, options?: AddOptions): AsyncGenerator<AddEvent> {
    return addAll({ blockstore: this.helia.blockstore, pins: this.helia.pins, guard: this.guard }, source, options)
  }

  /**
   * Adds files as one directory and returns its CID (undefined when the
   * source held nothing): a model, a checkpoint. Pinned, as addAll pins,
   * unless `pin` is false.
   */
  async addDirectory (source: AsyncIterable<ImportCandidate> | Iterable<ImportCandidate>, options: Omit<AddOptions, 'wrapWithDirectory'> = {}): Promise<CID | undefined> {
    let root: CID | undefined
    for await (const event of this.addAll(source, { ...options, wrapWithDirectory: true })) {
      if (event.type === 'entry' && event.name === '') root = event.cid
    }
    return root
  }

  cat (path: string, options?: CatOptions): AsyncGenerator<Uint8Array> {
    return cat(this.reads, path, options)
  }

  /** A whole file, for the small ones read at once: configs, datasets, checkpoints. */
  async readFile (path: string, options?: CatOptions): Promise<Uint8Array> {
    const chunks: Uint8Array[] = []
    for await (const chunk of this.cat(path, options)) chunks.push(chunk)
    return Buffer.concat(chunks)
  }

  stat (path: string, options?: ReadOptions): Promise<FileStat> {
    return stat(this.reads, path, options)
  }

  ls (path: string, options?: ReadOptions): Promise<Listing> {
    return ls(this.reads, path, options)
  }

  /** The CID a path names: its root, or what its segments lead to, as Kubo resolves paths. */
  private async resolve (path: string, options?: ReadOptions): Promise<CID> {
    const { cid, rest } = parsePath(path)
    return rest.length === 0 ? cid : (await resolveEntry(this.reads, path, options)).cid
  }

  async pinAdd (path: string, recursive = true, options?: ReadOptions & Pick<PinAddOptions, 'onBlock'>): Promise<CID> {
    const cid = await this.resolve(path, options)
    await this.pinHeld(cid, recursive, options)
    return cid
  }

  /** Pins with every block it reads held from GC until the pin is made. */
  private async pinHeld (cid: CID, recursive: boolean, options?: ReadOptions & Pick<PinAddOptions, 'onBlock'>, hold = this.guard.hold()): Promise<void> {
    try {
      await pinAdd(this.helia, cid, recursive, { ...options, hold, fetchTimeoutMs: this.fetchTimeoutMs })
    } finally {
      hold.release()
    }
  }

  /** The bytes of the DAG a path names, from local blocks only (see dagSize). */
  async dagSize (path: string, options?: AbortOptions): Promise<number> {
    return dagSize(this.reads, await this.resolve(path, { ...options, offline: true }), options)
  }

  async pinRm (path: string, recursive = true, options?: AbortOptions): Promise<CID> {
    const cid = await this.resolve(path, options)
    await pinRm(this.helia, cid, recursive, options)
    return cid
  }

  async * pinLs (filter?: PinFilter, paths: string[] = [], options?: AbortOptions): AsyncGenerator<PinEntry> {
    const cids: CID[] = []
    for (const path of paths) cids.push(await this.resolve(path, options))
    yield * pinLs(this.helia, filter, cids, options)
  }

  async blockGet (path: string, options?: ReadOptions): Promise<Uint8Array> {
    return getBlock(this.reads, await this.resolve(path, options), options)
  }

  /** Stores a block, and with `pin` pins it recursively before GC may see it, as Kubo's block put --pin. */
  async blockPut (bytes: Uint8Array, options: BlockPutOptions & { pin?: boolean } = {}): Promise<CID> {
    return this.store(async blocks => putBlock(blocks, bytes, options), options)
  }

  async blockStat (path: string, options?: ReadOptions): Promise<{ cid: CID, size: number }> {
    return statBlock(this.reads, await this.resolve(path, options), options)
  }

  /** Stores a node, and with `pin` pins it as blockPut does. */
  async dagPut (bytes: Uint8Array, options: DagPutOptions & { pin?: boolean } = {}): Promise<CID> {
    return this.store(async blocks => dagPut(blocks, bytes, options), options)
  }

  /** Writes through a blockstore that holds each block from GC, then pins what was written if asked. */
  private async store (write: (blocks: Pick<Blocks, 'get' | 'put' | 'has'>) => Promise<CID>, options: AbortOptions & { pin?: boolean }): Promise<CID> {
    const hold = this.guard.hold()
    const blockstore = this.helia.blockstore
    try {
      const cid = await write({ get: blockstore.get.bind(blockstore), has: blockstore.has.bind(blockstore), put: heldPut(blockstore, hold) })
      if (options.pin === true) await this.pinHeld(cid, true, options, hold)
      return cid
    } finally {
      hold.release()
    }
  }

  /**
   * Kubo's repo/gc: removes every local block that no pin, cluster allocation,
   * or add or pull in flight keeps, and yields each as it goes.
   */
  gc (options?: AbortOptions): AsyncGenerator<GcResult> {
    return collectGarbage(this.gcComponents, options)
  }

  /** Kubo's block/rm: one result per path; pinned blocks are refused. */
  async * blockRm (paths: string[], options?: BlockRmOptions): AsyncGenerator<BlockRmResult> {
    const cids: CID[] = []
    for (const path of paths) cids.push(await this.resolve(path, options))
    yield * removeBlocks(this.gcComponents, cids, options)
  }

  dagGet (path: string, outputCodec?: string, options?: ReadOptions): Promise<Uint8Array> {
    return dagGet(this.reads, path, outputCodec, options)
  }
}
