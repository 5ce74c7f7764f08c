/**
 * Durable Raft storage: a MemoryStorage answers the library's synchronous
 * reads and every change is written through to one directory:
 *
 *   wal-<seq>.log       write-ahead log segments (16-digit sequence numbers), appended in order
 *   snap-<index>.snap   one snapshot each, written as <name>.tmp, fsync'd, renamed, directory fsync'd
 *
 * A segment is a run of records `u32 LE length | u32 LE CRC-32 of payload | payload`, the
 * payload's first byte its type (numbers are varints, see storage-format.ts):
 *   0 header      version, seq                          first record of every segment
 *   1 entries     first index, count, then per entry: term, data length * 2 + (1 if conf-change), data
 *   2 hard state  term, commit, vote
 *   3 snapshot    index, term: a snapshot from the leader replaced the log
 *   4 compact     snapshot index and term, base index and term: a local snapshot, entries up to base dropped
 * A snapshot file is one record of type 5: version, index, term, the four id lists of the
 * ConfState, autoLeave, then the data.
 *
 * One save() is one write() of all its records; saves queued while a write is
 * under way go out together with one fsync. A segment is created (tmp +
 * rename) holding a header, a compact and a hard state record that restate the
 * state so far, so replay can start at any segment: a segment is deleted once
 * every entry it holds is at or below the base. On open, a bad record at the
 * tail of the last segment is a write cut short by a crash and is truncated
 * away; a bad record anywhere else, or with a good one after it, is
 * RaftStorageCorruptError. What open reads is synced (the last segment, the
 * directory, and the directory's own name when open creates it), since Raft
 * takes it as stable and a killed writer may have left it in the page cache. The caller holds the directory exclusively (the
 * repo lock); two processes writing one log would corrupt it.
 */
import { dirname, join, resolve } from 'node:path'
import { MemoryStorage, NONE, UnavailableError, emptyConfState } from '@node-daemon/raft'
import { nodeFs } from './fs.ts'
import { RaftStorageClosedError, RaftStorageCorruptError } from './storage-errors.ts'
import { FRAME_BYTES, RecordWriter, decodeRecord, decodeSnapshotFile, frameAt, validFrameAfter } from './storage-format.ts'
import type { RaftFile, RaftFs } from './fs.ts'
import type { Mark, WalRecord } from './storage-format.ts'
import type { ConfState, Entry, HardState, Snapshot, Storage } from '@node-daemon/raft'

export { RaftStorageClosedError, RaftStorageCorruptError } from './storage-errors.ts'

export interface RaftStorageInit {
  /** Membership for a brand-new log (a bootstrap snapshot at index 0, term 0). Ignored when the directory already holds a log. */
  confState?: ConfState
  /** Rotate to a new WAL segment once the current one exceeds this. Default 64 MiB. */
  segmentBytes?: number
}

export interface RaftStorage extends Storage {
  /**
   * Makes a Ready's snapshot, entries and hard state durable, applied in that
   * order: a received snapshot replaces the log, entries are appended
   * (replacing any conflicting suffix), then the hard state is set. Reads see
   * the change at once; the promise resolves once it is written, and fsync'd
   * when `sync` is true or it carries a snapshot. Calls may overlap; they
   * reach the disk in call order.
   */
  save(ready: { hardState?: HardState, entries: Entry[], snapshot?: Snapshot }, sync: boolean): Promise<void>
  /**
   * Durably records a snapshot of the applied state at `index` and drops the
   * entries up to `index - keepEntries` (default 1000), kept so that slow
   * followers can catch up without being sent the snapshot.
   */
  createSnapshot(index: number, confState: ConfState | undefined, data: Uint8Array, keepEntries?: number): Promise<Snapshot>
  close(): Promise<void>
}

export interface RaftStorageComponents {
  /** Default node:fs; the simulation passes a disk that loses unsynced writes. */
  fs?: RaftFs
}

export async function openRaftStorage (dir: string, init: RaftStorageInit = {}, options: { signal?: AbortSignal } = {}, components: RaftStorageComponents = {}): Promise<RaftStorage> {
  return await DurableStorage.open(components.fs ?? nodeFs, dir, init, options.signal)
}

const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
const DEFAULT_KEEP_ENTRIES = 1000
const SEGMENT_NAME = /^wal-(\d{16})\.log$/
const SNAPSHOT_NAME = /^snap-(\d{16})\.snap$/

function segmentName (seq: number): string {
  return `wal-${String(seq).padStart(16, '0')}.log`
}

function snapshotName (index: number): string {
  return `snap-${String(index).padStart(16, '0')}.snap`
}

/**
 * What the records written so far say: enough to restate it at the head of a
 * new segment and to tell which files are no longer needed.
 */
class WalState {
  hardState: HardState = { term: 0, vote: NONE, commit: 0 }
  snap: Mark = { index: 0, term: 0 }
  /** The index below the first entry kept, and its term. */
  base: Mark = { index: 0, term: 0 }
  /** Segments in order, each with the highest index it holds that a replay may still need. */
  readonly segments: Array<{ seq: number, maxIndex: number }> = []

  startSegment (seq: number): void {
    this.segments.push({ seq, maxIndex: 0 })
  }

  entries (lastIndex: number): void {
    const current = this.segments[this.segments.length - 1]
    current.maxIndex = Math.max(current.maxIndex, lastIndex)
  }

  snapshot (snap: Mark): void {
    this.snap = snap
    this.base = snap
    // the log was replaced: nothing written before is needed
    for (const segment of this.segments) segment.maxIndex = 0
  }

  /** Takes the newer of each mark: snapshot files are written concurrently, so compact records may arrive out of order. */
  compact (snap: Mark, base: Mark): void {
    if (snap.index > this.snap.index) this.snap = snap
    if (base.index > this.base.index) this.base = base
  }

  /** How many segments at the head hold nothing above the base (never the current one). */
  obsoleteSegments (): number {
    let n = 0
    while (n < this.segments.length - 1 && this.segments[n].maxIndex <= this.base.index) n++
    return n
  }

  head (seq: number): Uint8Array {
    return new RecordWriter().header(seq).compact(this.snap, this.base).hardState(this.hardState).finish()
  }
}

/** The entries seen by replay. Deleted segments may leave a gap, but only below the final base. */
class ReplayLog {
  start = 1
  ents: Entry[] = []

  append (batch: Entry[]): void {
    const first = batch[0].index
    if (first >= this.start && first <= this.start + this.ents.length) {
      this.ents.length = first - this.start
      for (const e of batch) this.ents.push(e)
    } else {
      this.start = first
      this.ents = batch
    }
  }

  dropThrough (index: number): void {
    if (this.start > index) return
    this.ents = this.ents.slice(index + 1 - this.start)
    this.start = index + 1
  }

  reset (index: number): void {
    this.ents = []
    this.start = index + 1
  }
}

interface Job {
  bytes: Uint8Array
  sync: boolean
  /** Settles once the snapshot file the records refer to is on disk, with the error if writing it failed. */
  before?: Promise<Error | undefined>
  /** What the records change, applied to the WalState once they are written. */
  effect: (wal: WalState) => void
  resolve: () => void
  reject: (err: Error) => void
}

class DurableStorage implements RaftStorage {
  private readonly fs: RaftFs
  private readonly dir: string
  private readonly segmentBytes: number
  private readonly memory: MemoryStorage
  private readonly wal: WalState
  /** Indexes of the snapshot files on disk. */
  private readonly snapFiles: Set<number>
  private file: RaftFile
  private fileSize: number
  private readonly queue: Job[] = []
  private draining: Promise<void> | undefined
  private readonly snapshotting = new Set<Promise<unknown>>()
  private closed = false
  private failure: Error | undefined

  private constructor (fields: { fs: RaftFs, dir: string, segmentBytes: number, memory: MemoryStorage, wal: WalState, snapFiles: Set<number>, file: RaftFile, fileSize: number }) {
    this.fs = fields.fs
    this.dir = fields.dir
    this.segmentBytes = fields.segmentBytes
    this.memory = fields.memory
    this.wal = fields.wal
    this.snapFiles = fields.snapFiles
    this.file = fields.file
    this.fileSize = fields.fileSize
  }

  static async open (fs: RaftFs, dir: string, init: RaftStorageInit, signal?: AbortSignal): Promise<DurableStorage> {
    signal?.throwIfAborted()
    const created = await fs.mkdir(dir)
    // a new directory's name lasts a power loss only once its parent is synced, as etcd's WAL does
    for (let d = resolve(dir); created !== undefined; d = dirname(d)) {
      await syncDir(fs, dirname(d))
      if (d === resolve(created) || dirname(d) === d) break
    }
    const names = await fs.readdir(dir)
    for (const name of names) {
      if (name.endsWith('.tmp')) await fs.rm(join(dir, name), { force: true })
    }
    const seqs = matching(names, SEGMENT_NAME)
    const segmentBytes = init.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    let storage: DurableStorage
    let leftovers: number[] = []
    if (seqs.length === 0) {
      const confState = init.confState ?? emptyConfState()
      await writeSnapshotFile(fs, dir, { metadata: { index: 0, term: 0, confState }, data: new Uint8Array(0) })
      const wal = new WalState()
      const { file, size } = await createSegment(fs, dir, 1, wal)
      wal.startSegment(1)
      storage = new DurableStorage({ fs, dir, segmentBytes, memory: new MemoryStorage(confState), wal, snapFiles: new Set([0]), file, fileSize: size })
    } else {
      // segments are deleted oldest first: ones before a gap were being deleted when the process stopped
      let from = seqs.length - 1
      while (from > 0 && seqs[from - 1] === seqs[from] - 1) from--
      leftovers = seqs.slice(0, from)
      const { wal, log, tailEnd } = await replay(fs, dir, seqs.slice(from), signal)
      log.dropThrough(wal.base.index)
      if (log.ents.length > 0 && log.start !== wal.base.index + 1) {
        throw new RaftStorageCorruptError(`${dir}: entries ${wal.base.index + 1} to ${log.start - 1} are missing`)
      }
      const snapshot = await readSnapshotFile(fs, dir, wal.snap, signal)
      const memory = restoreMemory(dir, snapshot, wal.base, log.ents, wal.hardState)
      const last = wal.segments[wal.segments.length - 1]
      const file = await fs.open(join(dir, segmentName(last.seq)), 'r+')
      try {
        if ((await file.stat()).size > tailEnd) await file.truncate(tailEnd)
        // Raft takes what was read as stable, but a killed writer's last records may be in the page cache only
        await file.datasync()
      } catch (err) {
        await file.close()
        throw err
      }
      storage = new DurableStorage({ fs, dir, segmentBytes, memory, wal, snapFiles: new Set([wal.snap.index]), file, fileSize: tailEnd })
    }
    try {
      for (const seq of leftovers) await fs.rm(join(dir, segmentName(seq)), { force: true })
      // snapshot files no record names: older ones, or ones whose save never completed
      for (const index of matching(names, SNAPSHOT_NAME)) {
        if (!storage.snapFiles.has(index)) await fs.rm(join(dir, snapshotName(index)), { force: true })
      }
      await storage.collectGarbage()
      // and so may the names it read: a segment renamed into place just before the writer was killed
      await syncDir(fs, dir)
    } catch (err) {
      await storage.file.close()
      throw err
    }
    return storage
  }

  initialState (): { hardState: HardState, confState: ConfState } {
    return this.memory.initialState()
  }

  entries (lo: number, hi: number, maxSize?: number): Entry[] {
    return this.memory.entries(lo, hi, maxSize)
  }

  term (index: number): number {
    return this.memory.term(index)
  }

  lastIndex (): number {
    return this.memory.lastIndex()
  }

  firstIndex (): number {
    return this.memory.firstIndex()
  }

  snapshot (): Snapshot {
    return this.memory.snapshot()
  }

  async save (ready: { hardState?: HardState, entries: Entry[], snapshot?: Snapshot }, sync: boolean): Promise<void> {
    this.checkOpen()
    const { hardState, entries, snapshot } = ready
    for (let i = 1; i < entries.length; i++) {
      if (entries[i].index !== entries[0].index + i) throw new RangeError(`entry ${i} has index ${entries[i].index}, expected ${entries[0].index + i}`)
    }
    // refuse before changing anything, so that memory never holds what is not queued for disk
    const lastIndex = snapshot?.metadata.index ?? this.memory.lastIndex()
    if (entries.length > 0 && entries[0].index > lastIndex + 1) {
      throw new UnavailableError(`missing log entry [last: ${lastIndex}, append at: ${entries[0].index}]`)
    }
    if (snapshot !== undefined) this.memory.applySnapshot(snapshot)
    this.memory.append(entries)
    if (hardState !== undefined) this.memory.setHardState(hardState)

    const records = new RecordWriter()
    const snap = snapshot === undefined ? undefined : { index: snapshot.metadata.index, term: snapshot.metadata.term }
    const last = entries.length === 0 ? undefined : entries[entries.length - 1].index
    const hs = hardState === undefined ? undefined : { ...hardState }
    let before: Promise<Error | undefined> | undefined
    if (snapshot !== undefined && snap !== undefined) {
      before = this.writeSnapshot(snapshot).then(() => undefined, (err: Error) => err)
      records.snapshot(snap)
    }
    if (entries.length > 0) records.entries(entries)
    if (hs !== undefined) records.hardState(hs)
    // A snapshot is synced whatever `sync` says (Raft's mustSync leaves it out, as etcd's does: its storage syncs SaveSnap):
    // the follower acknowledges its index once this resolves, and a leader never looks below a follower's match again.
    await this.enqueue(records.finish(), sync || snapshot !== undefined, before, (wal) => {
      if (snap !== undefined) wal.snapshot(snap)
      if (last !== undefined) wal.entries(last)
      if (hs !== undefined) wal.hardState = hs
    })
  }

  async createSnapshot (index: number, confState: ConfState | undefined, data: Uint8Array, keepEntries = DEFAULT_KEEP_ENTRIES): Promise<Snapshot> {
    this.checkOpen()
    const snapshot = this.memory.createSnapshot(index, confState, data)
    if (index - keepEntries >= this.memory.firstIndex()) this.memory.compact(index - keepEntries)
    const baseIndex = this.memory.firstIndex() - 1
    const base = { index: baseIndex, term: this.memory.term(baseIndex) }
    const snap = { index, term: snapshot.metadata.term }
    // the file is written beside the queue so that saves do not wait for it; only the record is queued
    const op = this.writeSnapshot(snapshot).then(async () => {
      await this.enqueue(new RecordWriter().compact(snap, base).finish(), true, undefined, (wal) => { wal.compact(snap, base) })
    })
    this.snapshotting.add(op)
    try {
      await op
    } finally {
      this.snapshotting.delete(op)
    }
    return snapshot
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled(this.snapshotting)
    await this.draining
    try {
      if (this.failure === undefined) await this.file.datasync()
    } finally {
      await this.file.close()
    }
  }

  private checkOpen (): void {
    if (this.closed) throw new RaftStorageClosedError()
    if (this.failure !== undefined) throw this.failure
  }

  private async writeSnapshot (snapshot: Snapshot): Promise<void> {
    await writeSnapshotFile(this.fs, this.dir, snapshot)
    this.snapFiles.add(snapshot.metadata.index)
  }

  private async enqueue (bytes: Uint8Array, sync: boolean, before: Promise<Error | undefined> | undefined, effect: (wal: WalState) => void): Promise<void> {
    if (this.failure !== undefined) throw this.failure
    await new Promise<void>((resolve, reject) => {
      this.queue.push({ bytes, sync, before, effect, resolve, reject })
      this.draining ??= this.drain()
    })
  }

  /** Writes queued jobs in order, all those waiting at once in one write and one fsync. */
  private async drain (): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0)
      try {
        await this.writeBatch(batch)
      } catch (err) {
        // what is on disk no longer matches memory: refuse everything after
        this.failure = new RaftStorageClosedError(`raft storage failed: ${(err as Error).message}`, { cause: err })
        for (const job of batch) job.reject(err as Error)
        for (const job of this.queue.splice(0)) job.reject(this.failure)
      }
    }
    this.draining = undefined
  }

  private async writeBatch (batch: Job[]): Promise<void> {
    for (const job of batch) {
      const err = await job.before
      if (err !== undefined) throw err
    }
    const bytes = batch.length === 1 ? batch[0].bytes : Buffer.concat(batch.map((job) => job.bytes))
    for (let done = 0; done < bytes.byteLength;) done += this.file.writeSync(bytes, done, bytes.byteLength - done, this.fileSize + done)
    this.fileSize += bytes.byteLength
    for (const job of batch) job.effect(this.wal)
    const sync = batch.some((job) => job.sync)
    if (sync) {
      await this.file.datasync()
      // files may go only once the records that make them unneeded are durable
      await this.collectGarbage()
    }
    for (const job of batch) job.resolve()
    if (this.fileSize >= this.segmentBytes) await this.rotate(sync)
  }

  private async rotate (synced: boolean): Promise<void> {
    // a segment before the last is whole on disk, so damage in it is never taken for a torn write
    if (!synced) await this.file.datasync()
    const seq = this.wal.segments[this.wal.segments.length - 1].seq + 1
    const { file, size } = await createSegment(this.fs, this.dir, seq, this.wal)
    await this.file.close()
    this.file = file
    this.fileSize = size
    this.wal.startSegment(seq)
  }

  private async collectGarbage (): Promise<void> {
    for (const { seq } of this.wal.segments.splice(0, this.wal.obsoleteSegments())) {
      await this.fs.rm(join(this.dir, segmentName(seq)))
    }
    for (const index of this.snapFiles) {
      if (index >= this.wal.snap.index) continue
      await this.fs.rm(join(this.dir, snapshotName(index)), { force: true })
      this.snapFiles.delete(index)
    }
  }
}

async function replay (fs: RaftFs, dir: string, seqs: number[], signal?: AbortSignal): Promise<{ wal: WalState, log: ReplayLog, tailEnd: number }> {
  const wal = new WalState()
  const log = new ReplayLog()
  let pos = 0
  for (const [i, seq] of seqs.entries()) {
    signal?.throwIfAborted()
    const path = join(dir, segmentName(seq))
    const buf = await fs.readFile(path, { signal })
    wal.startSegment(seq)
    pos = 0
    while (pos < buf.byteLength) {
      const payload = frameAt(buf, pos)
      if (payload === undefined) {
        if (i < seqs.length - 1 || validFrameAfter(buf, pos)) throw new RaftStorageCorruptError(`${path}: damaged record at byte ${pos}`)
        // a write cut short by a crash: dropped when the segment is opened for appending
        break
      }
      let record: WalRecord
      try {
        record = decodeRecord(payload)
      } catch (err) {
        throw new RaftStorageCorruptError(`${path}: bad record at byte ${pos}: ${(err as Error).message}`, { cause: err })
      }
      if ((pos === 0) !== (record.type === 'header') || (record.type === 'header' && record.seq !== seq)) {
        throw new RaftStorageCorruptError(`${path}: bad segment header at byte ${pos}`)
      }
      applyRecord(record, wal, log)
      pos += FRAME_BYTES + payload.byteLength
    }
    if (pos === 0) throw new RaftStorageCorruptError(`${path}: no segment header`)
  }
  return { wal, log, tailEnd: pos }
}

function applyRecord (record: WalRecord, wal: WalState, log: ReplayLog): void {
  switch (record.type) {
    case 'header':
      break
    case 'entries':
      log.append(record.entries)
      wal.entries(record.entries[record.entries.length - 1].index)
      break
    case 'hard-state':
      wal.hardState = record.hardState
      break
    case 'snapshot': {
      wal.snapshot(record.snap)
      log.reset(record.snap.index)
      // The hard state saved with it follows in the same write and may have been torn off. A snapshot holds only
      // committed entries, of a term the node had reached; a vote of that term was never durable, so never sent.
      const hs = wal.hardState
      if (record.snap.term > hs.term) wal.hardState = { term: record.snap.term, vote: NONE, commit: record.snap.index }
      else if (record.snap.index > hs.commit) wal.hardState = { ...hs, commit: record.snap.index }
      break
    }
    case 'compact':
      wal.compact(record.snap, record.base)
      log.dropThrough(wal.base.index)
      break
  }
}

/** A MemoryStorage holding `snapshot`, the entries after `base`, and `hs`. */
function restoreMemory (dir: string, snapshot: Snapshot, base: Mark, ents: Entry[], hs: HardState): MemoryStorage {
  const { index, term, confState } = snapshot.metadata
  let memory: MemoryStorage
  if (base.index === 0) {
    memory = new MemoryStorage(confState)
  } else {
    memory = new MemoryStorage()
    // entries kept below the snapshot need a log that starts at the base: a stand-in snapshot there, replaced below
    memory.applySnapshot(base.index === index ? snapshot : { metadata: { ...base, confState }, data: new Uint8Array(0) })
  }
  memory.append(ents)
  if (index > base.index) {
    if (index > memory.lastIndex() || memory.term(index) !== term) {
      throw new RaftStorageCorruptError(`${dir}: the log does not hold snapshot ${index} at term ${term}`)
    }
    memory.createSnapshot(index, confState, snapshot.data)
  }
  if (hs.commit > memory.lastIndex()) {
    throw new RaftStorageCorruptError(`${dir}: commit index ${hs.commit} is beyond the last entry ${memory.lastIndex()}`)
  }
  memory.setHardState(hs)
  return memory
}

async function readSnapshotFile (fs: RaftFs, dir: string, mark: Mark, signal?: AbortSignal): Promise<Snapshot> {
  const path = join(dir, snapshotName(mark.index))
  const buf = await fs.readFile(path, { signal }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new RaftStorageCorruptError(`${path}: missing, the log names it as the latest snapshot`)
    throw err
  })
  let snapshot: Snapshot
  try {
    snapshot = decodeSnapshotFile(buf)
  } catch (err) {
    throw new RaftStorageCorruptError(`${path}: ${(err as Error).message}`, { cause: err })
  }
  if (snapshot.metadata.index !== mark.index || snapshot.metadata.term !== mark.term) {
    throw new RaftStorageCorruptError(`${path}: holds snapshot ${snapshot.metadata.index} at term ${snapshot.metadata.term}, the log names term ${mark.term}`)
  }
  return snapshot
}

async function writeSnapshotFile (fs: RaftFs, dir: string, snapshot: Snapshot): Promise<void> {
  const path = join(dir, snapshotName(snapshot.metadata.index))
  const file = await fs.open(`${path}.tmp`, 'w')
  try {
    await writeAll(file, new RecordWriter().snapshotFile(snapshot).finish(), 0)
    await file.datasync()
  } finally {
    await file.close()
  }
  await fs.rename(`${path}.tmp`, path)
  await syncDir(fs, dir)
}

/** A new segment holding the records that restate `wal`, made whole before it gets its name. */
async function createSegment (fs: RaftFs, dir: string, seq: number, wal: WalState): Promise<{ file: RaftFile, size: number }> {
  const path = join(dir, segmentName(seq))
  const head = wal.head(seq)
  const file = await fs.open(`${path}.tmp`, 'w')
  try {
    await writeAll(file, head, 0)
    await file.datasync()
    await fs.rename(`${path}.tmp`, path)
    await syncDir(fs, dir)
  } catch (err) {
    await file.close()
    throw err
  }
  return { file, size: head.byteLength }
}

async function writeAll (file: RaftFile, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.byteLength;) {
    const { bytesWritten } = await file.write(bytes, done, bytes.byteLength - done, position + done)
    done += bytesWritten
  }
}

/** Makes created, renamed and deleted names in `dir` durable. */
async function syncDir (fs: RaftFs, dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** The numbers in the names that match `pattern`, ascending. */
function matching (names: string[], pattern: RegExp): number[] {
  return names.flatMap((name) => {
    const m = pattern.exec(name)
    return m === null ? [] : [Number(m[1])]
  }).sort((a, b) => a - b)
}
