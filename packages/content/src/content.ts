import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { addAll } from './add.ts'
import { BlockStream, startBrokers } from './block-stream.ts'
import { exportCar, importCars, verifyBlock } from './car.ts'
import { dagResolve } from './dag-resolve.ts'
import { boundedFetches, dagGet, dagPut, getBlock, putBlock, statBlock } from './blocks.ts'
import { codecs, hashers } from './codecs.ts'
import { BlockGuard, collectGarbage, heldPut, removeBlocks } from './gc.ts'
import { createHeliaNode } from './helia-node.ts'
import { Mfs } from './mfs.ts'
import { addLink, diff, linkDirectory, rmLink } from './object.ts'
import { ipnsDhtRecords, Names } from './names.ts'
import { parsePath } from './paths.ts'
import { PinStore } from './pin-store.ts'
import { dagSize, pinAdd, pinLs, pinRm, pinUpdate } from './pins.ts'
import { refs } from './refs.ts'
import { Topics } from './pubsub.ts'
import { cat, ls, resolveEntry, stat } from './read.ts'
import { TypedEventEmitter } from '@libp2p/interface'
import type { AddEvent, AddOptions } from './add.ts'
import type { CountedBitswap } from './bitswap.ts'
import type { BlockStreamInit } from './block-stream.ts'
import type { CarImportEvent, CarImportOptions } from './car.ts'
import type { DagResolution } from './dag-resolve.ts'
import type { BlockPutOptions, DagPutOptions, ReadOptions } from './blocks.ts'
import type { BlockRmOptions, BlockRmResult, GcComponents, GcResult } from './gc.ts'
import type { DhtRecords, NameComponents } from './names.ts'
import type { DirectoryEntry, ObjectChange, ObjectPatchOptions } from './object.ts'
import type { PinAddOptions, PinEntry, PinFilter, PinLsOptions } from './pins.ts'
import type { Ref, RefsOptions } from './refs.ts'
import type { CatOptions, FileStat, Listing } from './read.ts'
import type { Blocks } from '@helia/interface'
import type { HeliaWithLibp2p } from '@helia/libp2p'
import type { AbortOptions } from '@libp2p/interface'
import type { Swarm, SwarmServices } from '@node-daemon/swarm'
import type { Blockstore } from 'interface-blockstore'
import type { Datastore } from 'interface-datastore'
import type { ImportCandidate } from 'ipfs-unixfs-importer'
import type { Libp2pOptions } from 'libp2p'

/**
 * A blockstore that writes durably only when asked (the repo's packs): `sync`
 * makes what it stored so far durable, `compact` gives back the room of what
 * it deleted. A store without them is durable at each put.
 */
export interface DurableBlockstore extends Blockstore {
  sync?(): Promise<void>
  compact?(options?: AbortOptions): Promise<void>
}

export interface ContentInit {
  blockstore: DurableBlockstore
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
  /** DNS TXT lookups for DNSLink names; node:dns unless given. */
  resolveTxt?: NameComponents['resolveTxt']
}

/** What the content of a node tells listeners (the events WebSocket): adds that stored, and pins made or removed here. */
export interface ContentEvents {
  /** A top-level entry of an add (a file, a directory, or the wrapping directory), once stored. */
  add: CustomEvent<{ cid: string, name: string, size: number }>
  pin: CustomEvent<{ cid: string, recursive: boolean }>
  unpin: CustomEvent<{ cid: string, recursive: boolean }>
}

/**
 * The IPFS content of one node: a Helia stack (blockstore, pins, bitswap, IPNS)
 * on the node's swarm. Each method is one Kubo RPC operation; the work lives in
 * one file per concern beside this class.
 */
export class Content extends TypedEventEmitter<ContentEvents> {
  readonly helia: HeliaWithLibp2p<SwarmServices>
  /** Block transfer between daemons; bitswap, for other IPFS nodes, is asked only for what no daemon has. */
  readonly blockStream: BlockStream
  readonly names: Names
  readonly topics: Topics
  /** Bitswap, with Kubo's bitswap/stat counted; set as the node starts. */
  private exchange?: CountedBitswap
  /** Kubo's files/* tree, whose root GC keeps as it keeps a pin. */
  readonly mfs: Mfs
  private readonly identity: Uint8Array
  /** The in-flight set of adds and pulls, which GC leaves alone. */
  private readonly guard = new BlockGuard()
  private readonly gcComponents: GcComponents
  /** Helia's blockstore as reads go through it: offline on request, and each fetch bounded. */
  private readonly reads: Pick<Blocks, 'get' | 'has'>
  /** The blocks on this node's disk, under Helia's blockstore: looked at without Helia's GC read lock, which our GC does not take. */
  private readonly local: Pick<Blockstore, 'get' | 'has'>
  private readonly fetchTimeoutMs?: number
  /** Makes what was stored durable; nothing to do for a store durable at each put. */
  private readonly sync: () => Promise<void>

  constructor (init: ContentInit) {
    super()
    this.local = init.blockstore
    this.helia = createHeliaNode({
      blockstore: init.blockstore,
      datastore: init.datastore,
      codecs: Object.values(codecs),
      hashers: Object.values(hashers)
    }, (helia) => init.libp2p(ipnsDhtRecords(helia.keychain)), async (helia) => { this.exchange = await startBrokers(helia, this.blockStream) ?? this.exchange })
    // Helia's own Pins write each block's record alone; this store keeps their format and batches them.
    // It walks what Helia's walked: the storage under Helia's blockstore, which fetches what is missing.
    const storage = (this.helia.blockstore as Blocks & { unwrap: () => Blockstore }).unwrap()
    this.helia.pins = new PinStore({ datastore: init.datastore, blockstore: storage, getCodec: this.helia.getCodec })
    this.blockStream = new BlockStream({
      libp2p: () => this.helia.libp2p,
      blockstore: this.helia.blockstore,
      local: this.local,
      getHasher: this.helia.getHasher,
      logger: this.helia.logger
    }, init.blockStream)
    const { datastore, routing, logger, keychain, events, getCrypto } = this.helia
    this.names = new Names({ datastore, routing, logger, keychain, events, getCrypto, hasPeers: () => this.helia.libp2p.getConnections().length > 0, resolveTxt: init.resolveTxt })
    this.topics = new Topics(() => this.helia.libp2p.services.pubsub)
    this.identity = init.identity
    this.fetchTimeoutMs = init.fetchTimeoutMs
    this.reads = boundedFetches(this.helia.blockstore, init.fetchTimeoutMs)
    this.mfs = new Mfs({ reads: this.reads, blockstore: this.helia.blockstore, datastore, pins: this.helia.pins, guard: this.guard })
    this.sync = async () => { await init.blockstore.sync?.() }
    this.gcComponents = { blockstore: init.blockstore, pins: this.helia.pins, guard: this.guard, keep: init.keep, mfsRoot: () => this.mfs.root, log: logger.forComponent('node-daemon:gc') }
  }

  get swarm (): Swarm {
    return this.helia.libp2p
  }

  /** Helia's bitswap, as Kubo's bitswap/* commands show it. */
  get bitswap (): CountedBitswap {
    if (this.exchange == null) throw new Error('bitswap exists once the node has started')
    return this.exchange
  }

  async start (): Promise<void> {
    await this.helia.start()
    try {
      this.topics.start()
      await this.names.setSelfKey(this.identity)
      await this.mfs.start()
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

  async * addAll (source: AsyncIterable<ImportCandidate> | Iterable<ImportCandidate>, options?: AddOptions): AsyncGenerator<AddEvent> {
    for await (const event of addAll({ blockstore: this.helia.blockstore, pins: this.helia.pins, guard: this.guard, sync: this.sync }, source, options)) {
      // Entries under a directory are told by their top-level one; an only-hash add stored nothing.
      if (event.type === 'entry' && !event.name.includes('/') && options?.onlyHash !== true) {
        this.safeDispatchEvent('add', { detail: { cid: event.cid.toString(), name: event.name, size: event.size } })
      }
      yield event
    }
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

  /**
   * A directory linking to files added before (each with its CID and the
   * cumulative size an add reported), stored and not pinned: addDirectory's
   * result for a tree most of whose files are stored already, without
   * reading them again.
   */
  async linkDirectory (entries: DirectoryEntry[], options: AbortOptions & { cidVersion?: 0 | 1 } = {}): Promise<CID> {
    return this.store(async blocks => (await linkDirectory(blocks, entries, options.cidVersion ?? 1, options)).cid, {})
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

  /** Pins what a path names; `name` labels the pin, as Kubo's `pin add --name`. */
  async pinAdd (path: string, recursive = true, options?: ReadOptions & Pick<PinAddOptions, 'name' | 'onBlock' | 'notes'>): Promise<CID> {
    const cid = await this.resolve(path, options)
    await this.pinHeld(cid, recursive, options)
    this.safeDispatchEvent('pin', { detail: { cid: cid.toString(), recursive } })
    return cid
  }

  /** Pins with every block it reads held from GC until the pin is made. */
  private async pinHeld (cid: CID, recursive: boolean, options?: ReadOptions & Pick<PinAddOptions, 'name' | 'onBlock' | 'notes'>, hold = this.guard.hold()): Promise<void> {
    try {
      await pinAdd(this.helia, cid, recursive, { ...options, hold, fetchTimeoutMs: this.fetchTimeoutMs })
    } finally {
      hold.release()
    }
  }

  /** Kubo's pin update: moves a recursive pin (and its name) from one path to another, unpinning the first unless `unpin` is false. */
  async pinUpdate (from: string, to: string, options: ReadOptions & { unpin?: boolean } = {}): Promise<[CID, CID]> {
    const fromCid = await this.resolve(from, options)
    const toCid = await this.resolve(to, options)
    const hold = this.guard.hold()
    try {
      await pinUpdate(this.helia, fromCid, toCid, { ...options, hold, fetchTimeoutMs: this.fetchTimeoutMs })
    } finally {
      hold.release()
    }
    return [fromCid, toCid]
  }

  /** The bytes of the DAG a path names, from local blocks only; undefined when its root is not here (see dagSize). */
  async dagSize (path: string, options?: AbortOptions): Promise<number | undefined> {
    const root = await this.resolve(path, { ...options, offline: true })
    // The node's own store answers (an identity CID holds its bytes): through Helia's blockstore
    // each lookup and read took Helia's GC read lock, which our GC does not use, and that lock
    // was most of a cluster node's size lookup of a pin.
    const inline = (cid: CID): boolean => cid.multihash.code === identity.code
    const has = async (cid: CID, o?: AbortOptions): Promise<boolean> => inline(cid) || await this.local.has(cid, o)
    return dagSize({ has, get: (cid, o) => inline(cid) ? this.reads.get(cid, o) : this.local.get(cid, o) }, root, options)
  }

  async pinRm (path: string, recursive = true, options?: AbortOptions): Promise<CID> {
    const cid = await this.resolve(path, options)
    await pinRm(this.helia, cid, recursive, options)
    this.safeDispatchEvent('unpin', { detail: { cid: cid.toString(), recursive } })
    return cid
  }

  async * pinLs (filter?: PinFilter, paths: string[] = [], options?: PinLsOptions): AsyncGenerator<PinEntry> {
    const targets = []
    // Kubo's errors name the path as asked for, a bare CID as its /ipfs/ path.
    for (const path of paths) targets.push({ cid: await this.resolve(path, options), path: path.startsWith('/') ? path : `/ipfs/${path}` })
    yield * pinLs(this.helia, filter, targets, options)
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
      await this.sync()
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

  /** Kubo's dag/export: the DAG under a path as a CAR stream; a root that cannot be read fails before the first byte. */
  async dagExport (path: string, options: ReadOptions = {}): Promise<AsyncGenerator<Uint8Array>> {
    const cid = await this.resolve(path, options)
    await getBlock(this.reads, cid, options)
    return exportCar(this.reads, cid, options)
  }

  /** Kubo's dag/import: CAR files into the blockstore, their roots pinned unless `pinRoots` is false. */
  async * dagImport (cars: AsyncIterable<AsyncIterable<Uint8Array>>, options?: CarImportOptions): AsyncGenerator<CarImportEvent> {
    const hold = this.guard.hold()
    try {
      yield * importCars({ blockstore: this.helia.blockstore, pins: this.helia.pins, hold, sync: this.sync }, cars, options)
    } finally {
      hold.release()
    }
  }

  /** Kubo's dag/resolve: the block an IPLD path reaches, and what is left of the path inside it. */
  dagResolve (path: string, options?: ReadOptions): Promise<DagResolution> {
    return dagResolve(this.reads, path, options)
  }

  /** Kubo's object/diff: the links added, removed and changed from one dag-pb DAG to another. */
  async objectDiff (a: string, b: string, options?: ReadOptions): Promise<ObjectChange[]> {
    return diff(this.reads, await this.resolve(a, options), await this.resolve(b, options), options)
  }

  /** Kubo's object/patch/add-link: a copy of the root with one more link, stored (not pinned). */
  async objectAddLink (root: string, name: string, child: string, options?: ObjectPatchOptions): Promise<CID> {
    const [rootCid, childCid] = [await this.resolve(root, options), await this.resolve(child, options)]
    return this.store(async blocks => addLink(blocks, rootCid, name, childCid, options), {})
  }

  /** Kubo's object/patch/rm-link: a copy of the root without one link, stored (not pinned). */
  async objectRmLink (root: string, name: string, options?: ObjectPatchOptions): Promise<CID> {
    const rootCid = await this.resolve(root, options)
    return this.store(async blocks => rmLink(blocks, rootCid, name, options), {})
  }

  /** Kubo's refs: the links under a path, depth first. */
  async * refs (path: string, options?: RefsOptions): AsyncGenerator<Ref> {
    yield * refs(this.reads, await this.resolve(path, options), options)
  }

  /** Kubo's refs/local: every block here, as a raw CIDv1, since blocks are kept by multihash. */
  async * refsLocal (options?: AbortOptions): AsyncGenerator<CID> {
    for await (const { cid } of this.gcComponents.blockstore.getAll(options)) yield CID.createV1(raw.code, cid.multihash)
  }

  /** Kubo's repo/verify: each local block checked against its CID, with why one does not match. */
  async * verifyBlocks (options?: AbortOptions): AsyncGenerator<{ cid: CID, error?: string }> {
    for await (const { cid, bytes } of this.gcComponents.blockstore.getAll(options)) {
      const chunks: Uint8Array[] = []
      for await (const chunk of bytes) chunks.push(chunk)
      try {
        await verifyBlock(cid, Buffer.concat(chunks))
        yield { cid }
      } catch (err: any) {
        yield { cid, error: err.message }
      }
    }
  }

  dagGet (path: string, outputCodec?: string, options?: ReadOptions): Promise<Uint8Array> {
    return dagGet(this.reads, path, outputCodec, options)
  }
}
