/**
 * The bytes of the Raft storage files; see storage.ts for the layout. Numbers
 * are unsigned LEB128 varints (safe integers, so arithmetic rather than 32-bit
 * shifts), strings and byte strings are a varint length then the bytes.
 */
import { crc32 } from 'node:zlib'
import { RaftStorageCorruptError } from './storage-errors.ts'
import type { Entry, HardState, Snapshot } from '@node-daemon/raft'

/** Bytes in front of every record's payload: u32 LE payload length, u32 LE CRC-32 of the payload. */
export const FRAME_BYTES = 8
const FORMAT_VERSION = 1

const TAG_HEADER = 0
const TAG_ENTRIES = 1
const TAG_HARD_STATE = 2
const TAG_SNAPSHOT = 3
const TAG_COMPACT = 4
const TAG_SNAPSHOT_FILE = 5

/** An index and the term of the entry there. */
export interface Mark {
  index: number
  term: number
}

export type WalRecord =
  | { type: 'header', seq: number }
  | { type: 'entries', entries: Entry[] }
  | { type: 'hard-state', hardState: HardState }
  /** A snapshot from the leader replaced the whole log. */
  | { type: 'snapshot', snap: Mark }
  /** A local snapshot at `snap`; entries up to `base` were dropped. */
  | { type: 'compact', snap: Mark, base: Mark }

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Appends framed records to one growing buffer, so that a save is one write(). */
export class RecordWriter {
  private buf = new Uint8Array(256)
  private length = 0
  private frameStart = -1

  header (seq: number): this {
    this.begin(TAG_HEADER)
    this.byte(FORMAT_VERSION)
    this.varint(seq)
    return this.end()
  }

  entries (entries: Entry[]): this {
    this.begin(TAG_ENTRIES)
    // indexes in one save are consecutive: only the first is stored
    this.varint(entries[0].index)
    this.varint(entries.length)
    for (const e of entries) {
      this.varint(e.term)
      this.varint(e.data.byteLength * 2 + (e.type === 'conf-change' ? 1 : 0))
      this.raw(e.data)
    }
    return this.end()
  }

  hardState (hs: HardState): this {
    this.begin(TAG_HARD_STATE)
    this.varint(hs.term)
    this.varint(hs.commit)
    this.string(hs.vote)
    return this.end()
  }

  snapshot (snap: Mark): this {
    this.begin(TAG_SNAPSHOT)
    this.mark(snap)
    return this.end()
  }

  compact (snap: Mark, base: Mark): this {
    this.begin(TAG_COMPACT)
    this.mark(snap)
    this.mark(base)
    return this.end()
  }

  snapshotFile (snap: Snapshot): this {
    this.begin(TAG_SNAPSHOT_FILE)
    this.byte(FORMAT_VERSION)
    this.mark(snap.metadata)
    const cs = snap.metadata.confState
    for (const ids of [cs.voters, cs.learners, cs.votersOutgoing, cs.learnersNext]) {
      this.varint(ids.length)
      for (const id of ids) this.string(id)
    }
    this.byte(cs.autoLeave ? 1 : 0)
    this.raw(snap.data)
    return this.end()
  }

  finish (): Uint8Array {
    return this.buf.subarray(0, this.length)
  }

  private begin (tag: number): void {
    this.frameStart = this.length
    this.reserve(FRAME_BYTES + 1)
    this.length += FRAME_BYTES
    this.buf[this.length++] = tag
  }

  private end (): this {
    const start = this.frameStart
    const payload = this.buf.subarray(start + FRAME_BYTES, this.length)
    if (payload.byteLength > 0xffffffff) throw new RangeError(`a record of ${payload.byteLength} bytes does not fit its u32 length`)
    writeU32(this.buf, start, payload.byteLength)
    writeU32(this.buf, start + 4, crc32(payload))
    return this
  }

  private mark (m: Mark): void {
    this.varint(m.index)
    this.varint(m.term)
  }

  private byte (b: number): void {
    this.reserve(1)
    this.buf[this.length++] = b
  }

  private varint (n: number): void {
    this.reserve(8)
    while (n >= 0x80) {
      this.buf[this.length++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.buf[this.length++] = n
  }

  private string (s: string): void {
    const bytes = utf8.encode(s)
    this.varint(bytes.byteLength)
    this.raw(bytes)
  }

  private raw (bytes: Uint8Array): void {
    this.reserve(bytes.byteLength)
    this.buf.set(bytes, this.length)
    this.length += bytes.byteLength
  }

  private reserve (n: number): void {
    if (this.length + n <= this.buf.byteLength) return
    const grown = new Uint8Array(Math.max(this.buf.byteLength * 2, this.length + n))
    grown.set(this.buf.subarray(0, this.length))
    this.buf = grown
  }
}

/** The payload of the record at `pos`, or undefined when it is cut short or fails its CRC. */
export function frameAt (buf: Uint8Array, pos: number): Uint8Array | undefined {
  if (pos + FRAME_BYTES + 1 > buf.byteLength) return undefined
  const length = readU32(buf, pos)
  if (length < 1 || length > buf.byteLength - pos - FRAME_BYTES) return undefined
  const payload = buf.subarray(pos + FRAME_BYTES, pos + FRAME_BYTES + length)
  if (payload[0] > TAG_SNAPSHOT_FILE || crc32(payload) !== readU32(buf, pos + 4)) return undefined
  return payload
}

/**
 * Whether any valid record starts after `pos`. A write cut short by a crash
 * leaves nothing valid behind it; a damaged record in the middle does.
 */
export function validFrameAfter (buf: Uint8Array, pos: number): boolean {
  for (let p = pos + 1; p + FRAME_BYTES < buf.byteLength; p++) {
    if (frameAt(buf, p) !== undefined) return true
  }
  return false
}

export function decodeRecord (payload: Uint8Array): WalRecord {
  const r = new Reader(payload)
  const tag = r.byte()
  let record: WalRecord
  switch (tag) {
    case TAG_HEADER:
      r.version()
      record = { type: 'header', seq: r.varint() }
      break
    case TAG_ENTRIES: {
      const first = r.varint()
      const count = r.varint()
      const entries: Entry[] = []
      for (let i = 0; i < count; i++) {
        const term = r.varint()
        const lengthType = r.varint()
        // a copy, so that a retained entry does not pin the whole segment's buffer
        const data = r.copy(Math.floor(lengthType / 2))
        entries.push({ term, index: first + i, type: lengthType % 2 === 1 ? 'conf-change' : 'normal', data })
      }
      if (count === 0) throw new RaftStorageCorruptError('empty entries record')
      record = { type: 'entries', entries }
      break
    }
    case TAG_HARD_STATE: {
      const term = r.varint()
      const commit = r.varint()
      record = { type: 'hard-state', hardState: { term, vote: r.string(), commit } }
      break
    }
    case TAG_SNAPSHOT:
      record = { type: 'snapshot', snap: r.mark() }
      break
    case TAG_COMPACT:
      record = { type: 'compact', snap: r.mark(), base: r.mark() }
      break
    default:
      throw new RaftStorageCorruptError(`unknown record type ${tag}`)
  }
  r.done()
  return record
}

export function decodeSnapshotFile (buf: Uint8Array): Snapshot {
  const payload = frameAt(buf, 0)
  if (payload === undefined || FRAME_BYTES + payload.byteLength !== buf.byteLength) {
    throw new RaftStorageCorruptError('snapshot file is damaged')
  }
  const r = new Reader(payload)
  if (r.byte() !== TAG_SNAPSHOT_FILE) throw new RaftStorageCorruptError('not a snapshot file')
  r.version()
  const { index, term } = r.mark()
  const [voters, learners, votersOutgoing, learnersNext] = [0, 1, 2, 3].map(() => {
    const ids: string[] = []
    for (let n = r.varint(); n > 0; n--) ids.push(r.string())
    return ids
  })
  const autoLeave = r.byte() === 1
  const data = r.copy(payload.byteLength - r.pos)
  return { metadata: { index, term, confState: { voters, learners, votersOutgoing, learnersNext, autoLeave } }, data }
}

class Reader {
  pos = 0
  private readonly buf: Uint8Array

  constructor (buf: Uint8Array) {
    this.buf = buf
  }

  byte (): number {
    if (this.pos >= this.buf.byteLength) throw new RaftStorageCorruptError('record ends early')
    return this.buf[this.pos++]
  }

  varint (): number {
    let n = 0
    for (let scale = 1; ; scale *= 0x80) {
      const b = this.byte()
      n += (b & 0x7f) * scale
      if (b < 0x80) break
      if (scale > 2 ** 49) throw new RaftStorageCorruptError('varint too long')
    }
    if (!Number.isSafeInteger(n)) throw new RaftStorageCorruptError('varint out of range')
    return n
  }

  mark (): Mark {
    const index = this.varint()
    return { index, term: this.varint() }
  }

  version (): void {
    const v = this.byte()
    if (v !== FORMAT_VERSION) throw new RaftStorageCorruptError(`format version ${v}, this build reads ${FORMAT_VERSION}`)
  }

  copy (length: number): Uint8Array {
    if (length > this.buf.byteLength - this.pos) throw new RaftStorageCorruptError('record ends early')
    const bytes = new Uint8Array(this.buf.subarray(this.pos, this.pos + length))
    this.pos += length
    return bytes
  }

  string (): string {
    const length = this.varint()
    if (length > this.buf.byteLength - this.pos) throw new RaftStorageCorruptError('record ends early')
    const bytes = this.buf.subarray(this.pos, this.pos + length)
    this.pos += length
    try {
      return fromUtf8.decode(bytes)
    } catch (err) {
      throw new RaftStorageCorruptError('string is not UTF-8', { cause: err })
    }
  }

  done (): void {
    if (this.pos !== this.buf.byteLength) throw new RaftStorageCorruptError('trailing bytes in record')
  }
}

function readU32 (buf: Uint8Array, pos: number): number {
  return (buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16) | (buf[pos + 3] << 24)) >>> 0
}

function writeU32 (buf: Uint8Array, pos: number, n: number): void {
  buf[pos] = n & 0xff
  buf[pos + 1] = (n >>> 8) & 0xff
  buf[pos + 2] = (n >>> 16) & 0xff
  buf[pos + 3] = (n >>> 24) & 0xff
}
