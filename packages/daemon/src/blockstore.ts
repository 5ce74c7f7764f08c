import { mkdir, open, opendir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { BaseBlockstore } from 'blockstore-core'
import { NotFoundError } from 'interface-store'
import { base32upper } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import type { AbortOptions } from '@libp2p/interface'
import type { Pair } from 'interface-blockstore'
import type { FileHandle } from 'node:fs/promises'

const RAW = 0x55
const MiB = 1_048_576

/** A record is a block, or a tombstone that deletes the block of its multihash from one pack. */
const BLOCK = 1
const TOMBSTONE = 2
/** kind (u8), zero (u8), multihash length (u16 LE), block length or the tombstone's pack (u32 LE); then the multihash, then the block. */
const HEADER = 8
/** A pack takes new records until it holds this much; then the next one is begun. */
const PACK_BYTES = 64 * MiB

export interface PackBlockstoreInit {
  /** The size at which a pack is full; default 64 MiB. */
  packBytes?: number
}
/** Records written in one writev at most: each is three buffers, under Linux's IOV_MAX of 1024. */
const BATCH_RECORDS = 256
/** Packs kept open for reading; more are closed, least recently used first, once no read uses them. */
const OPEN_PACKS = 64
/**
 * Bytes written to a pack after which it is synced in the background, so
 * that the sync an add waits for at its end has only the last of them to
 * write out (a 200 MB add's single fdatasync took about a second).
 */
const SYNC_AHEAD_BYTES = 16 * MiB
/** Bytes of blocks that may wait in memory for their write before a put waits for its own. */
const WRITE_BEHIND_BYTES = 32 * MiB
/** A pack is compacted once at least this share of it is deleted blocks or spent tombstones. */
const COMPACT_SHARE = 1 / 3
/**
 * Small blocks kept in memory once written or read, up to this many bytes in
 * all: a cluster's pins, directory nodes and a DAG's inner nodes are small and
 * asked for again soon (the other nodes fetch a block just added), and a read
 * from a pack is a thread-pool round trip whatever its size.
 */
const RECENT_BYTES = 8 * MiB
const RECENT_BLOCK_BYTES = 16 * 1024
/** Kubo's flatfs layout: shard directories named by two base32 characters, one `.data` file per block. */
const FLATFS_SHARD = /^[A-Z2-7]{2}$/
const PACK_NAME = /^(\d{8})\.pack$/

interface Entry {
  pack: number
  /** Where the block's bytes begin in the pack. */
  offset: number
  length: number
}

interface Tombstone { key: string, killed: number }

interface Write {
  position: number
  buffers: Uint8Array[]
  resolve: () => void
  reject: (err: Error) => void
}

interface Pack {
  id: number
  path: string
  /** Bytes appended, written or still queued. */
  size: number
  /** Bytes of the records of live blocks in it. */
  live: number
  tombstones: Tombstone[]
  handle?: FileHandle
  opening?: Promise<FileHandle>
  /** Reads using the handle now: it is closed only when there are none. */
  users: number
  queue: Write[]
  /** Set while a writev runs; resolves once the queue is empty. */
  draining?: Promise<void>
  /** A write failed: the pack takes no more records. */
  failed?: Error
  /** Bytes written since the last sync of the pack began. */
  unsyncedBytes: number
  /** The background sync under way. */
  syncingAhead?: Promise<void>
  /** A background sync failed: the next sync() says so, since Linux may report it only once. */
  syncError?: Error
  removed?: boolean
}

const keyOf = (multihash: Uint8Array): string => Buffer.from(multihash.buffer, multihash.byteOffset, multihash.byteLength).toString('latin1')
const multihashOf = (key: string): Uint8Array => Buffer.from(key, 'latin1')
const recordBytes = (key: string, length: number): number => HEADER + key.length + length
const packName = (id: number): string => `${String(id).padStart(8, '0')}.pack`

/**
 * Blocks appended to pack files of about 64 MiB under the repo's `blocks/`,
 * found through an index in memory that opening the store rebuilds from the
 * records' headers, keyed by multihash (so CIDv0 and CIDv1 of the same bytes
 * are one block). Writes are batched into one `writev` per turn of the pack's
 * queue, in place of a file, a rename and four threadpool round trips per
 * block; a read is one `pread`, or none for a small block written or read
 * lately (RECENT_BYTES).
 *
 * Durability: a put resolves once its record is queued (the block is served
 * from memory until it is written; with 32 MiB queued, a put waits for its own
 * write), and `sync()` makes everything put so far durable: it waits for the
 * queued writes, fails if one failed, and runs `fdatasync` on every pack
 * written since the last sync and `fsync` on the directory when a pack file
 * was created. Packs are also synced in the background every 16 MiB, so the
 * closing sync has little left to do. An add syncs before it pins and answers. A crash can cut the last
 * records of a pack short: opening truncates a pack at its first record that
 * does not fit in it or has no valid kind. Nothing synced is rewritten in
 * place: deleting appends a tombstone, and `compact()` copies the live blocks
 * of packs that are mostly garbage into the pack being written, syncs, and
 * only then unlinks them, oldest first (a tombstone is always in a newer pack
 * than the block it deletes, so no block comes back).
 *
 * A repo of Kubo's flatfs layout, which this store replaced, is moved into
 * packs when it opens: each block is appended, the packs are synced, and only
 * then are the old files removed, so a crash midway repeats the move.
 */
export class PackBlockstore extends BaseBlockstore {
  readonly path: string
  private readonly packBytes: number
  private readonly index = new Map<string, Entry>()
  /** Blocks whose write is still queued, served from memory meanwhile. */
  private readonly unwritten = new Map<string, Uint8Array>()
  /** Small blocks written or read lately, oldest first (see RECENT_BYTES). */
  private readonly recent = new Map<string, Uint8Array>()
  private recentBytes = 0
  private readonly packs = new Map<number, Pack>()
  private active?: Pack
  private starting?: Promise<Pack>
  private nextId = 1
  /** Packs written to since the last sync. */
  private readonly unsynced = new Set<Pack>()
  private dirUnsynced = false
  private syncing?: Promise<void>
  /** Bytes of blocks queued and not yet written. */
  private queuedBytes = 0
  /** A write that failed since the last sync, which that sync reports. */
  private writeError?: Error
  private compacting?: Promise<void>

  constructor (path: string, init: PackBlockstoreInit = {}) {
    super()
    this.path = path
    this.packBytes = init.packBytes ?? PACK_BYTES
  }

  /** Reads the packs' headers into the index, truncating torn tails, then moves any flatfs blocks into packs. */
  async open (): Promise<void> {
    await mkdir(this.path, { recursive: true })
    const ids: number[] = []
    const shards: string[] = []
    for await (const entry of await opendir(this.path)) {
      const id = PACK_NAME.exec(entry.name)?.[1]
      if (entry.isFile() && id != null) ids.push(Number(id))
      else if (entry.isDirectory() && FLATFS_SHARD.test(entry.name)) shards.push(entry.name)
    }
    for (const id of ids.sort((a, b) => a - b)) await this.scan(id)
    this.nextId = (ids.at(-1) ?? 0) + 1
    if (shards.length > 0) await this.migrate(shards)
  }

  /** Syncs what was written and closes the packs. */
  async close (): Promise<void> {
    await this.sync()
    for (const pack of this.packs.values()) {
      const handle = pack.handle
      pack.handle = undefined
      await handle?.close()
    }
  }

  private async scan (id: number): Promise<void> {
    const pack: Pack = { id, path: join(this.path, packName(id)), size: 0, live: 0, tombstones: [], users: 0, queue: [], unsyncedBytes: 0 }
    const handle = await open(pack.path, 'r+')
    pack.handle = handle
    this.packs.set(id, pack)
    const size = (await handle.stat()).size
    const head = Buffer.alloc(HEADER + 256)
    let position = 0
    while (position + HEADER <= size) {
      const { bytesRead } = await handle.read(head, 0, head.length, position)
      const kind = head[0]
      const mhLength = head.readUInt16LE(2)
      const length = head.readUInt32LE(4)
      const end = position + HEADER + mhLength + (kind === BLOCK ? length : 0)
      if ((kind !== BLOCK && kind !== TOMBSTONE) || head[1] !== 0 || mhLength === 0 || end > size) break
      let mh = head.subarray(HEADER, HEADER + mhLength)
      if (HEADER + mhLength > bytesRead) {
        mh = Buffer.alloc(mhLength)
        await handle.read(mh, 0, mhLength, position + HEADER)
      }
      const key = keyOf(mh)
      const existing = this.index.get(key)
      if (kind === BLOCK) {
        if (existing != null) this.forget(key, existing)
        this.index.set(key, { pack: id, offset: position + HEADER + mhLength, length })
        pack.live += end - position
      } else {
        pack.tombstones.push({ key, killed: length })
        if (existing?.pack === length) this.forget(key, existing)
      }
      position = end
    }
    // What follows the last whole record was being written when the process or the machine stopped.
    if (position < size) await handle.truncate(position)
    pack.size = position
    // Reopened for reading when a block in it is asked for: a large repo has more packs than it may keep open.
    await this.closePack(pack)
  }

  private forget (key: string, entry: Entry): void {
    this.index.delete(key)
    this.unremember(key)
    const pack = this.packs.get(entry.pack)
    if (pack != null) pack.live -= recordBytes(key, entry.length)
  }

  private async migrate (shards: string[]): Promise<void> {
    for (const shard of shards) {
      for await (const entry of await opendir(join(this.path, shard))) {
        if (!entry.name.endsWith('.data')) continue
        const multihash = base32upper.decode(entry.name.slice(0, -'.data'.length))
        if (!this.index.has(keyOf(multihash))) await this.append(keyOf(multihash), await readFile(join(this.path, shard, entry.name)))
      }
    }
    await this.sync()
    for (const shard of shards) await rm(join(this.path, shard), { recursive: true, force: true })
  }

  async put (cid: CID, bytes: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options: AbortOptions = {}): Promise<CID> {
    options.signal?.throwIfAborted()
    const key = keyOf(cid.multihash.bytes)
    if (this.index.has(key)) return cid
    const data = bytes instanceof Uint8Array ? bytes : await collect(bytes)
    if (!this.index.has(key)) await this.append(key, data)
    return cid
  }

  async * get (cid: CID, options: AbortOptions = {}): AsyncGenerator<Uint8Array> {
    options.signal?.throwIfAborted()
    yield await this.read(keyOf(cid.multihash.bytes), cid)
  }

  async has (cid: CID): Promise<boolean> {
    return this.index.has(keyOf(cid.multihash.bytes))
  }

  async delete (cid: CID): Promise<void> {
    const key = keyOf(cid.multihash.bytes)
    const entry = this.index.get(key)
    if (entry == null) return
    this.forget(key, entry)
    this.unwritten.delete(key)
    await this.appendTombstone(key, entry.pack)
  }

  /** Every block, as a raw CIDv1: the store keeps multihashes, not codecs. */
  async * getAll (options: AbortOptions = {}): AsyncGenerator<Pair> {
    for (const key of [...this.index.keys()]) {
      options.signal?.throwIfAborted()
      if (!this.index.has(key)) continue
      const cid = CID.createV1(RAW, Digest.decode(multihashOf(key)))
      const read = async (): Promise<Uint8Array> => this.read(key, cid)
      yield { cid, bytes: (async function * () { yield await read() })() }
    }
  }

  /** Makes every block written so far durable; concurrent calls share the syncs still to come. */
  async sync (): Promise<void> {
    // The writes queued now are waited for; those queued later are the next sync's.
    await Promise.all([...this.packs.values()].map(async pack => pack.draining))
    const previous = this.syncing
    const turn = (async () => {
      await previous?.catch(() => {})
      const packs = [...this.unsynced]
      this.unsynced.clear()
      const dir = this.dirUnsynced
      this.dirUnsynced = false
      const failed = this.writeError
      this.writeError = undefined
      try {
        // Its blocks left the index when it failed: the callers that wrote them must hear of it.
        if (failed != null) throw failed
        for (const pack of packs) {
          if (pack.handle == null || pack.removed === true) continue
          await pack.syncingAhead
          if (pack.syncError != null) throw pack.syncError
          pack.unsyncedBytes = 0
          await pack.handle.datasync()
        }
        if (dir) await syncDirectory(this.path)
      } catch (err) {
        for (const pack of packs) this.unsynced.add(pack)
        this.dirUnsynced ||= dir
        throw err
      }
    })()
    this.syncing = turn
    await turn
  }

  /**
   * Gives back the room of deleted blocks: each pack at least a third garbage
   * has its live blocks (and the tombstones still needed) copied into the
   * pack being written, and is removed once the copies are synced.
   */
  async compact (options: AbortOptions = {}): Promise<void> {
    const previous = this.compacting
    const turn = (async () => {
      await previous?.catch(() => {})
      const victims = [...this.packs.values()]
        .filter(p => p.removed !== true && p.size > 0 && (p.size - p.live) >= p.size * COMPACT_SHARE)
        .sort((a, b) => a.id - b.id)
      if (victims.length === 0) return
      const ids = new Set(victims.map(p => p.id))
      if (this.active != null && ids.has(this.active.id)) this.active = undefined
      for (const [key, entry] of [...this.index]) {
        options.signal?.throwIfAborted()
        if (!ids.has(entry.pack)) continue
        const bytes = await this.read(key)
        if (this.index.get(key) === entry) await this.append(key, bytes, true)
      }
      for (const pack of victims) {
        for (const { key, killed } of pack.tombstones) {
          const target = this.packs.get(killed)
          if (!ids.has(killed) && target != null && target.removed !== true) await this.appendTombstone(key, killed)
        }
      }
      await this.sync()
      for (const pack of victims) {
        pack.removed = true
        this.packs.delete(pack.id)
        this.unsynced.delete(pack)
        await rm(pack.path, { force: true })
        if (pack.users === 0) await this.closePack(pack)
      }
      await syncDirectory(this.path)
    })()
    this.compacting = turn
    await turn
  }

  private async read (key: string, cid?: CID): Promise<Uint8Array> {
    // A block moved by a compaction while it was read is read again where it went.
    for (let attempt = 0; ; attempt++) {
      const pending = this.unwritten.get(key) ?? this.recent.get(key)
      if (pending != null) return pending
      const entry = this.index.get(key)
      if (entry == null) throw new NotFoundError(`block ${cid ?? 'of that multihash'} is not in the blockstore`)
      const pack = this.packs.get(entry.pack)
      if (pack == null) throw new Error(`the index names pack ${packName(entry.pack)}, which is gone`)
      pack.users++
      try {
        const handle = await this.handleOf(pack)
        const bytes = Buffer.allocUnsafe(entry.length)
        let done = 0
        while (done < entry.length) {
          const { bytesRead } = await handle.read(bytes, done, entry.length - done, entry.offset + done)
          if (bytesRead === 0) throw new Error(`pack ${packName(pack.id)} ends inside a block`)
          done += bytesRead
        }
        if (this.index.get(key) === entry) this.remember(key, bytes)
        return bytes
      } catch (err) {
        if (attempt > 0 || this.index.get(key) === entry) throw err
      } finally {
        if (--pack.users === 0 && pack.removed === true) await this.closePack(pack)
      }
    }
  }

  /** Keeps a small block in memory, dropping the oldest beyond RECENT_BYTES; a copy when it is a view of a larger buffer. */
  private remember (key: string, bytes: Uint8Array): void {
    if (bytes.byteLength > RECENT_BLOCK_BYTES || this.recent.has(key)) return
    this.recent.set(key, bytes.byteLength === bytes.buffer.byteLength ? bytes : Uint8Array.prototype.slice.call(bytes))
    this.recentBytes += bytes.byteLength
    for (const [oldest, kept] of this.recent) {
      if (this.recentBytes <= RECENT_BYTES) break
      this.recent.delete(oldest)
      this.recentBytes -= kept.byteLength
    }
  }

  private unremember (key: string): void {
    const kept = this.recent.get(key)
    if (kept == null) return
    this.recent.delete(key)
    this.recentBytes -= kept.byteLength
  }

  private async handleOf (pack: Pack): Promise<FileHandle> {
    if (pack.handle != null) {
      // Most recently used last, for the closing of the least recently used.
      this.packs.delete(pack.id)
      this.packs.set(pack.id, pack)
      return pack.handle
    }
    pack.opening ??= open(pack.path, 'r').finally(() => { pack.opening = undefined })
    const handle = await pack.opening
    pack.handle ??= handle
    if (pack.handle !== handle) await handle.close()
    await this.closeIdle()
    return pack.handle
  }

  private async closeIdle (): Promise<void> {
    let open = [...this.packs.values()].filter(p => p.handle != null).length
    for (const pack of this.packs.values()) {
      if (open <= OPEN_PACKS) return
      if (pack.users > 0 || pack === this.active || pack.queue.length > 0 || pack.draining != null || this.unsynced.has(pack)) continue
      await this.closePack(pack)
      open--
    }
  }

  private async closePack (pack: Pack): Promise<void> {
    const handle = pack.handle
    pack.handle = undefined
    await handle?.close()
  }

  /**
   * The pack being written, begun anew when there is none, it is full, or a
   * write to it failed. The caller appends in the same turn as this returns,
   * so that a compaction that retires the pack meanwhile cannot miss the record.
   */
  private async writable (): Promise<Pack> {
    while (true) {
      const active = this.active
      if (active != null && active.size < this.packBytes && active.failed == null) return active
      this.starting ??= this.begin().finally(() => { this.starting = undefined })
      await this.starting
    }
  }

  private async begin (): Promise<Pack> {
    const id = this.nextId++
    const pack: Pack = { id, path: join(this.path, packName(id)), size: 0, live: 0, tombstones: [], users: 0, queue: [], unsyncedBytes: 0 }
    pack.handle = await open(pack.path, 'wx+')
    this.packs.set(id, pack)
    this.dirUnsynced = true
    this.active = pack
    return pack
  }

  private async append (key: string, bytes: Uint8Array, moving = false): Promise<void> {
    let pack = await this.writable()
    // Checked again after the await's turn: a compaction may have retired the pack in between.
    while (pack !== this.active || pack.size >= this.packBytes || pack.failed != null) pack = await this.writable()
    // Another put of the same block may have been appended meanwhile; a move replaces the entry.
    if (!moving && this.index.has(key)) return
    const header = Buffer.allocUnsafe(HEADER)
    header[0] = BLOCK
    header[1] = 0
    header.writeUInt16LE(key.length, 2)
    header.writeUInt32LE(bytes.byteLength, 4)
    const position = pack.size
    const entry = { pack: pack.id, offset: position + HEADER + key.length, length: bytes.byteLength }
    const previous = this.index.get(key)
    if (previous != null) this.forget(key, previous)
    this.index.set(key, entry)
    this.unwritten.set(key, bytes)
    pack.size += recordBytes(key, bytes.byteLength)
    pack.live += recordBytes(key, bytes.byteLength)
    this.queuedBytes += bytes.byteLength
    const written = this.enqueue(pack, position, [header, multihashOf(key), bytes]).then(() => {}, (err: Error) => {
      if (this.index.get(key) === entry) this.forget(key, entry)
      this.writeError ??= err
    }).finally(() => {
      this.queuedBytes -= bytes.byteLength
      if (this.unwritten.get(key) === bytes) {
        this.unwritten.delete(key)
        if (this.index.get(key) === entry) this.remember(key, bytes)
      }
    })
    // The put returns once the record is queued, so that an add does not wait on the disk
    // block by block; only when that much is queued does it wait for its own write.
    if (this.queuedBytes > WRITE_BEHIND_BYTES) await written
  }

  private async appendTombstone (key: string, killed: number): Promise<void> {
    let pack = await this.writable()
    while (pack !== this.active || pack.size >= this.packBytes || pack.failed != null) pack = await this.writable()
    const header = Buffer.allocUnsafe(HEADER)
    header[0] = TOMBSTONE
    header[1] = 0
    header.writeUInt16LE(key.length, 2)
    header.writeUInt32LE(killed, 4)
    const position = pack.size
    pack.size += recordBytes(key, 0)
    pack.tombstones.push({ key, killed })
    await this.enqueue(pack, position, [header, multihashOf(key)])
  }

  private async enqueue (pack: Pack, position: number, buffers: Uint8Array[]): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      pack.queue.push({ position, buffers, resolve, reject })
      pack.draining ??= this.drain(pack).finally(() => { pack.draining = undefined })
    })
  }

  private syncAhead (pack: Pack): void {
    pack.unsyncedBytes = 0
    pack.syncingAhead = (pack.handle as FileHandle).datasync()
      .catch((err) => { pack.syncError ??= err })
      .finally(() => { pack.syncingAhead = undefined })
  }

  /**
   * Writes the pack's queue in order, as many records per writev as have
   * queued meanwhile. After a failed write the pack takes nothing more, so
   * the records after a hole are never written and opening truncates there.
   */
  private async drain (pack: Pack): Promise<void> {
    // Starts on the next turn, so that the records queued in this one go together.
    await Promise.resolve()
    while (pack.queue.length > 0) {
      const batch = pack.queue.splice(0, BATCH_RECORDS)
      try {
        if (pack.failed != null) throw pack.failed
        const buffers = batch.flatMap(w => w.buffers)
        await writeAll(pack.handle as FileHandle, buffers, batch[0].position)
        this.unsynced.add(pack)
        pack.unsyncedBytes += buffers.reduce((sum, b) => sum + b.byteLength, 0)
        if (pack.unsyncedBytes >= SYNC_AHEAD_BYTES && pack.syncingAhead == null) this.syncAhead(pack)
        for (const write of batch) write.resolve()
      } catch (err: any) {
        pack.failed ??= err
        for (const write of batch) write.reject(err)
      }
    }
  }
}

/** writev until every byte is written: a regular file may take fewer at once. */
async function writeAll (handle: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  let rest = buffers
  let at = position
  while (rest.length > 0) {
    let { bytesWritten } = await handle.writev(rest, at)
    at += bytesWritten
    while (rest.length > 0 && bytesWritten >= rest[0].byteLength) {
      bytesWritten -= rest[0].byteLength
      rest = rest.slice(1)
    }
    if (bytesWritten > 0) rest = [rest[0].subarray(bytesWritten), ...rest.slice(1)]
  }
}

async function syncDirectory (path: string): Promise<void> {
  const dir = await open(path, 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

async function collect (source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const chunk of source) chunks.push(chunk)
  return Buffer.concat(chunks)
}
