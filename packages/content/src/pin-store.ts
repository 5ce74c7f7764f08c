import * as dagPb from '@ipld/dag-pb'
import * as cborg from 'cborg'
import { Key } from 'interface-datastore'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { raceSignal } from 'race-signal'
import { equals } from 'uint8arrays/equals'
import { windowedWalker } from './dag-walker.ts'
import { AlreadyPinnedError, InvalidParameterError, NotFoundError } from './errors.ts'
import type { AddOptions, CodecLoader, Pin, Pins, RmOptions, LsOptions } from '@helia/interface'
import type { AbortOptions } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { Datastore } from 'interface-datastore'

/**
 * Helia's datastore layout for pins, which this store keeps so that a repo
 * written by Helia's own Pins reads the same here and back: a pin is
 * `/pin/<base36 CIDv1>` holding CBOR `{ depth, metadata }`; every block under
 * a pin has `/pinned-block/<base36 multihash>` holding CBOR
 * `{ pinCount, pinnedBy }` (the CID bytes of each pin over it), present
 * exactly while some pin holds the block.
 */
const PIN_PREFIX = '/pin/'
const BLOCK_PREFIX = '/pinned-block/'

interface PinValue { depth: number, metadata: Pin['metadata'] }
interface BlockRecord { pinCount: number, pinnedBy: Uint8Array[] }

/** A CIDv0 is the same pin as its CIDv1. */
const pinKey = (cid: CID): Key => new Key(`${PIN_PREFIX}${cid.toV1().toString(base36)}`, false)
const recordKey = (cid: CID): string => `${BLOCK_PREFIX}${base36.encode(cid.multihash.bytes)}`
/** Tells the bytes of a pin's CID in pinnedBy, as given: its CIDv1's, or its CIDv0's where it has one. */
function isPin (cid: CID): (bytes: Uint8Array) => boolean {
  const v1 = cid.toV1()
  const forms = [v1.bytes]
  if (v1.code === dagPb.code && v1.multihash.code === sha256.code) forms.push(v1.toV0().bytes)
  return (bytes) => forms.some(form => equals(form, bytes))
}

/** A caller's own datastore record about a pin (the cluster's mark of the pins it made), written with it. */
export interface PinNote { key: Key, value: Uint8Array }

export interface PinStoreAddOptions extends AddOptions {
  /**
   * Written in the batch that writes the pin's key, or on their own, before
   * the AlreadyPinnedError, when the pin exists already: as durable as the
   * pin, and without a write of their own for each new pin.
   */
  notes?: PinNote[]
}

/** Blocks of one pin whose records go in one batch; a larger DAG takes several. */
const CHUNK_BLOCKS = 1024

/** One pin's change to the records of some blocks, written in one batch with every other queued beside it. */
interface Update {
  blocks: CID[]
  /** Changes a block's record in place; false when it leaves it as it was. */
  change: (record: BlockRecord) => boolean
  /** The pin's own key, put (with its value) or deleted in the same batch. */
  pin?: { key: Key, value?: Uint8Array }
  /** The caller's notes, put in the same batch. */
  notes?: PinNote[]
  signal?: AbortSignal
  /** The blocks whose record changed. */
  resolve: (changed: CID[]) => void
  reject: (err: unknown) => void
}

/**
 * A datastore that can also answer a read at once. A pin reads its key and
 * its blocks' records; LevelDB answers such a read from its cache in about
 * 2 µs this way, where a read through its thread pool costs this thread about
 * 30 µs, the largest single cost of a cluster pin.
 */
export interface SyncReadDatastore extends Datastore {
  /** The value under a key, or undefined where there is none. */
  getSync: (key: Key) => Uint8Array | undefined
}

export interface PinStoreComponents {
  datastore: Datastore | SyncReadDatastore
  /** What a walk reads blocks through: Helia's networked blockstore, which fetches what is missing. */
  blockstore: Blockstore
  getCodec: CodecLoader
}

export interface PinStoreInit {
  /** Blocks of one pin written per batch; default 1024. */
  chunkBlocks?: number
}

/**
 * Helia's Pins on Helia's records, written in batches. Helia reads and writes
 * one block's record at a time, a get and a put each (a tenth of an add, and
 * part of every cluster pin). Here every record change goes through one
 * queue: the changes queued while a batch is written are read together and
 * written in the next one, whichever pins they come from, so concurrent pins
 * that share blocks count each other (Helia's read-then-write lost counts
 * between them). A pin's key is written in the batch with its last records,
 * so a pin listed always has all its records; a pin that fails or is aborted
 * on the way takes back the records it wrote, and unpinning one takes its pin
 * out of each record's pinnedBy (Helia's kept only that one).
 */
export class PinStore implements Pins {
  private readonly components: PinStoreComponents
  private readonly chunkBlocks: number
  private queue: Update[] = []
  private writing = false
  /** Adds and removals of one pin run one after another: a second waits for the first to end. */
  private readonly busy = new Map<string, Promise<void>>()

  constructor (components: PinStoreComponents, init: PinStoreInit = {}) {
    this.components = components
    this.chunkBlocks = Math.max(1, init.chunkBlocks ?? CHUNK_BLOCKS)
  }

  async * add (cid: CID, options: PinStoreAddOptions = {}): AsyncGenerator<CID, void, undefined> {
    const depth = Math.round(options.depth ?? Infinity)
    if (depth < 0) throw new InvalidParameterError('a pin\'s depth is 0 or more')
    const key = pinKey(cid)
    const release = await this.lock(key, options)
    const counted: CID[] = []
    let done = false
    try {
      const mine = isPin(cid)
      const change = (record: BlockRecord): boolean => {
        if (record.pinnedBy.some(mine)) return false
        record.pinCount++
        record.pinnedBy.push(cid.bytes)
        return true
      }
      if (await this.value(key, options) != null) {
        await this.update({ blocks: [], change, notes: options.notes, signal: options.signal })
        throw new AlreadyPinnedError(`${cid} is already pinned`)
      }
      let chunk: CID[] = []
      for await (const node of this.walk(cid, { ...options, depth }, options.walker)) {
        chunk.push(node)
        if (chunk.length < this.chunkBlocks) continue
        counted.push(...await this.update({ blocks: chunk, change, signal: options.signal }))
        yield * chunk
        chunk = []
      }
      counted.push(...await this.update({ blocks: chunk, change, pin: { key, value: cborg.encode({ depth, metadata: options.metadata ?? {} } satisfies PinValue) }, notes: options.notes, signal: options.signal }))
      done = true
      yield * chunk
    } finally {
      try {
        // Failed, aborted or abandoned before its key was written: what it counted is taken back.
        if (!done && counted.length > 0) await this.update({ blocks: counted, change: uncount(cid) })
      } finally {
        release()
      }
    }
  }

  async * rm (cid: CID, options: RmOptions = {}): AsyncGenerator<CID, void, undefined> {
    const key = pinKey(cid)
    const release = await this.lock(key, options)
    try {
      const pin = cborg.decode(await this.read(key, options)) as PinValue
      // Each record once, whatever the walk: a block under two CIDs has one record.
      const seen = new Set<string>()
      const change = uncount(cid)
      let chunk: CID[] = []
      // The key goes in the first batch, before the walk can fail: a block missing
      // under the pin then leaves no pin that GC would keep it for.
      let removal: Update['pin'] | undefined = { key }
      const flush = async (): Promise<CID[]> => {
        const blocks = chunk
        chunk = []
        await this.update({ blocks, change, pin: removal })
        removal = undefined
        return blocks
      }
      try {
        for await (const node of this.walk(cid, { ...options, depth: pin.depth }, options.walker)) {
          const record = recordKey(node)
          if (seen.has(record)) continue
          seen.add(record)
          chunk.push(node)
          if (chunk.length >= this.chunkBlocks) yield * await flush()
        }
      } catch (err) {
        // What was walked is written even when the walk failed.
        await flush()
        throw err
      }
      yield * await flush()
    } finally {
      release()
    }
  }

  async * ls (options: LsOptions = {}): AsyncGenerator<Pin, void, undefined> {
    const prefix = options.cid == null ? PIN_PREFIX : pinKey(options.cid).toString()
    for await (const { key, value } of this.components.datastore.query({ prefix }, options)) {
      yield { cid: CID.parse(key.toString().slice(PIN_PREFIX.length), base36), ...(cborg.decode(value) as PinValue) }
    }
  }

  async get (cid: CID, options?: AbortOptions): Promise<Pin> {
    return { cid, ...(cborg.decode(await this.read(pinKey(cid), options)) as PinValue) }
  }

  async isPinned (cid: CID, options?: AbortOptions): Promise<boolean> {
    return await this.value(new Key(recordKey(cid), false), options) != null
  }

  async setMetadata (cid: CID, metadata: Pin['metadata'] | undefined, options?: AbortOptions): Promise<void> {
    const key = pinKey(cid)
    const release = await this.lock(key, options)
    try {
      const pin = cborg.decode(await this.read(key, options)) as PinValue
      await this.components.datastore.put(key, cborg.encode({ ...pin, metadata: metadata ?? {} } satisfies PinValue), options)
    } finally {
      release()
    }
  }

  private async read (key: Key, options?: AbortOptions): Promise<Uint8Array> {
    const value = await this.value(key, options)
    if (value == null) throw new NotFoundError(`${key.toString().slice(PIN_PREFIX.length)} is not pinned`)
    return value
  }

  /** The value under a key, or undefined; read at once where the datastore can. */
  private async value (key: Key, options?: AbortOptions): Promise<Uint8Array | undefined> {
    const { datastore } = this.components
    if ('getSync' in datastore) return datastore.getSync(key)
    try {
      return await datastore.get(key, options)
    } catch (err: any) {
      if (err.name === 'NotFoundError') return undefined
      throw err
    }
  }

  private async * walk (cid: CID, options: AbortOptions & { depth: number }, walker = windowedWalker()): AsyncGenerator<CID> {
    const { blockstore, getCodec } = this.components
    for await (const node of walker({ blockstore, getCodec }).walk(cid, options)) yield node.block.cid
  }

  /** Waits for the pin's earlier add or removal to end; the caller releases once its own has. */
  private async lock (key: Key, options: AbortOptions = {}): Promise<() => void> {
    const name = key.toString()
    let release = (): void => {}
    const mine = new Promise<void>(resolve => { release = resolve })
    const before = this.busy.get(name)
    const turn = before == null ? mine : before.then(async () => mine)
    this.busy.set(name, turn)
    void turn.then(() => { if (this.busy.get(name) === turn) this.busy.delete(name) })
    if (before != null) {
      try {
        await raceSignal(before, options.signal)
      } catch (err) {
        release()
        throw err
      }
    }
    return release
  }

  /** Queues a change of some records; resolves with the blocks it changed once their batch is written. */
  private async update (update: Omit<Update, 'resolve' | 'reject'>): Promise<CID[]> {
    update.signal?.throwIfAborted()
    if (update.blocks.length === 0 && update.pin == null && (update.notes ?? []).length === 0) return []
    return new Promise<CID[]>((resolve, reject) => {
      this.queue.push({ ...update, resolve, reject })
      if (!this.writing) void this.write()
    })
  }

  /** Writes the queued changes, batch after batch, until none is left. */
  private async write (): Promise<void> {
    this.writing = true
    try {
      while (this.queue.length > 0) {
        const updates = this.queue.filter(u => {
          if (u.signal?.aborted === true) u.reject(u.signal.reason)
          return u.signal?.aborted !== true
        })
        this.queue = []
        try {
          const changed = await this.batch(updates)
          updates.forEach((u, i) => { u.resolve(changed[i]) })
        } catch (err) {
          for (const u of updates) u.reject(err)
        }
      }
    } finally {
      this.writing = false
    }
  }

  /** One batch: every record the updates touch read at once, changed in their order, written with their pins' keys. */
  private async batch (updates: Update[]): Promise<CID[][]> {
    const { datastore } = this.components
    const records = new Map<string, BlockRecord | undefined>()
    for (const u of updates) for (const cid of u.blocks) records.set(recordKey(cid), undefined)
    await Promise.all([...records.keys()].map(async (key) => {
      const value = await this.value(new Key(key, false))
      if (value != null) records.set(key, cborg.decode(value) as BlockRecord)
    }))
    const touched = new Set<string>()
    const changed = updates.map(u => u.blocks.filter(cid => {
      const key = recordKey(cid)
      const record = records.get(key) ?? { pinCount: 0, pinnedBy: [] }
      if (!u.change(record)) return false
      records.set(key, record)
      touched.add(key)
      return true
    }))
    const batch = datastore.batch()
    for (const key of touched) {
      const record = records.get(key) as BlockRecord
      if (record.pinCount > 0) batch.put(new Key(key, false), cborg.encode(record))
      else batch.delete(new Key(key, false))
    }
    for (const { pin, notes } of updates) {
      if (pin?.value != null) batch.put(pin.key, pin.value)
      else if (pin != null) batch.delete(pin.key)
      for (const note of notes ?? []) batch.put(note.key, note.value)
    }
    await batch.commit()
    return changed
  }
}

/** Takes a pin off a block's record: the count, as Helia keeps it, and the pin from pinnedBy. */
function uncount (cid: CID): (record: BlockRecord) => boolean {
  const mine = isPin(cid)
  return (record) => {
    record.pinCount--
    record.pinnedBy = record.pinnedBy.filter(bytes => !mine(bytes))
    return true
  }
}
