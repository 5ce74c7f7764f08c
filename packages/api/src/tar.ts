import { Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { BadRequestError } from './errors.ts'
import type { Content, ReadOptions } from '@node-daemon/content'

const BLOCK = 512

/** Splits a path into ustar's prefix (155 bytes) and name (100 bytes) fields. */
function splitPath (path: string): [prefix: string, name: string] {
  if (Buffer.byteLength(path) <= 100) return ['', path]
  const cut = path.lastIndexOf('/', 155)
  if (cut > 0 && Buffer.byteLength(path.slice(0, cut)) <= 155 && Buffer.byteLength(path.slice(cut + 1)) <= 100) return [path.slice(0, cut), path.slice(cut + 1)]
  throw new BadRequestError(`${JSON.stringify(path)} is too long for a tar archive`)
}

function header (path: string, size: number, type: 'file' | 'directory'): Uint8Array {
  const block = Buffer.alloc(BLOCK)
  const [prefix, name] = splitPath(path)
  block.write(name, 0)
  block.write(type === 'directory' ? '0000755\0' : '0000644\0', 100)
  block.write('0000000\0', 108)
  block.write('0000000\0', 116)
  if (size < 8 ** 11) {
    block.write(`${size.toString(8).padStart(11, '0')}\0`, 124)
  } else {
    // Past 8 GiB, GNU tar's base-256 size: a marker bit, then the size big-endian.
    let rest = BigInt(size)
    for (let i = 135; i > 124; i--, rest >>= 8n) block[i] = Number(rest & 0xffn)
    block[124] = 0x80
  }
  block.write('00000000000\0', 136)
  block.write(type === 'directory' ? '5' : '0', 156)
  block.write('ustar\u000000', 257)
  block.write(prefix, 345)
  // The checksum is counted with its own field as spaces.
  block.fill(' ', 148, 156)
  const sum = block.reduce((total, byte) => total + byte, 0)
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
  return block
}

/** What an archive holds: its path inside the archive, and the content path it is read from. */
interface ArchiveEntry {
  path: string
  source: string
  type: 'file' | 'directory'
  size: number
}

/** The entries under the directory at `source`, as paths under `path`, each directory before what it holds. */
async function listTree (content: Pick<Content, 'ls'>, source: string, path: string, options: ReadOptions): Promise<ArchiveEntry[]> {
  const listed: ArchiveEntry[] = []
  for (const entry of (await content.ls(source, options)).entries) {
    const child = { path: path === '' ? entry.name : `${path}/${entry.name}`, source: `${source}/${entry.name}`, type: entry.type, size: entry.size }
    listed.push(child)
    if (entry.type === 'directory') listed.push(...await listTree(content, child.source, child.path, options))
  }
  return listed
}

/** A ustar archive of the entries, streamed: one header per entry, then its bytes padded to 512, then two empty blocks. */
async function * archive (content: Pick<Content, 'cat'>, entries: ArchiveEntry[], options: ReadOptions): AsyncGenerator<Uint8Array> {
  for (const entry of entries) {
    if (entry.type === 'directory') {
      // Without a trailing slash, as Go's archive/tar writes Kubo's: the type says it is a directory.
      yield header(entry.path, 0, 'directory')
      continue
    }
    yield header(entry.path, entry.size, 'file')
    yield * content.cat(entry.source, options)
    const padding = (BLOCK - entry.size % BLOCK) % BLOCK
    if (padding > 0) yield new Uint8Array(padding)
  }
  yield new Uint8Array(2 * BLOCK)
}

/** The files under a directory of content, as paths relative to it with their bytes read on demand: a model directory to import. */
export async function filesOf (content: Pick<Content, 'ls' | 'cat'>, cid: string, options: ReadOptions = {}): Promise<Array<{ path: string, content: AsyncIterable<Uint8Array> }>> {
  return (await listTree(content, cid, '', options)).filter(e => e.type === 'file').map(e => ({ path: e.path, content: content.cat(e.source, options) }))
}

/**
 * A directory of content as a ustar archive. Paths are relative to the
 * directory, so the archive unpacks where the client chooses.
 */
export async function * tarDirectory (content: Pick<Content, 'ls' | 'cat'>, cid: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
  yield * archive(content, await listTree(content, cid, '', options), options)
}

/**
 * A file or a directory as Kubo's `get` archives it, under the last segment
 * of its path, and the bytes of its files in total, for a progress bar. The
 * tree is listed before the first byte, so that a missing path is an error
 * status rather than a cut archive.
 */
export async function archiveOf (content: Pick<Content, 'ls' | 'cat' | 'stat'>, path: string, options: ReadOptions = {}): Promise<{ size: number, directory: boolean, tar: AsyncGenerator<Uint8Array> }> {
  const name = path.split('/').filter(s => s !== '').at(-1) ?? path
  let entries: ArchiveEntry[]
  try {
    entries = [{ path: name, source: path, type: 'file', size: (await content.stat(path, options)).size }]
  } catch (err: any) {
    // stat takes files only: a directory is listed instead, anything else keeps stat's error.
    if (err.name !== 'WrongContentTypeError' || !(await content.ls(path, options)).directory) throw err
    entries = [{ path: name, source: path, type: 'directory', size: 0 }, ...await listTree(content, path, name, options)]
  }
  return { size: entries.reduce((sum, e) => sum + e.size, 0), directory: entries[0].type === 'directory', tar: archive(content, entries, options) }
}

/** An entry of an archive: a directory, or a file whose bytes must be read to their end before the next entry is. */
export interface TarEntry {
  path: string
  type: 'file' | 'directory'
  content: AsyncIterable<Uint8Array>
}

/** Reads exactly `n` bytes at a time from a stream of chunks, or fewer at its end. */
class ByteReader {
  readonly #source: AsyncIterator<Uint8Array>
  #pending: Uint8Array = new Uint8Array(0)

  constructor (source: AsyncIterable<Uint8Array>) {
    this.#source = source[Symbol.asyncIterator]()
  }

  /** Up to `n` bytes, at most what one chunk holds: the bytes of a large file pass through without being gathered. */
  async some (n: number): Promise<Uint8Array> {
    while (this.#pending.byteLength === 0) {
      const next = await this.#source.next().catch((err: any) => {
        // zlib's errors are the archive's: its codes start with Z_.
        throw String(err.code).startsWith('Z_') ? new BadRequestError(`the archive is not valid gzip: ${err.message}`) : err
      })
      if (next.done === true) return new Uint8Array(0)
      this.#pending = next.value
    }
    const out = this.#pending.subarray(0, n)
    this.#pending = this.#pending.subarray(out.byteLength)
    return out
  }

  async exactly (n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n)
    for (let at = 0; at < n;) {
      const part = await this.some(n - at)
      if (part.byteLength === 0) throw new BadRequestError('the tar archive ends inside an entry')
      out.set(part, at)
      at += part.byteLength
    }
    return out
  }
}

const field = (block: Uint8Array, start: number, length: number): string => {
  const bytes = block.subarray(start, start + length)
  const end = bytes.indexOf(0)
  return Buffer.from(end < 0 ? bytes : bytes.subarray(0, end)).toString('utf8')
}

function entrySize (block: Uint8Array): number {
  // GNU's base-256 form, for sizes past 8 GiB, as `header` writes it.
  if ((block[124] & 0x80) !== 0) return block.subarray(125, 136).reduce((n, byte) => n * 256 + byte, 0)
  const size = Number.parseInt(field(block, 124, 12).trim() || '0', 8)
  if (!Number.isSafeInteger(size) || size < 0) throw new BadRequestError('the tar archive has an entry of no readable size')
  return size
}

/** pax's `path` record, of the records `<length> <key>=<value>\n`. */
function paxPath (records: Uint8Array): string | undefined {
  const text = Buffer.from(records).toString('utf8')
  return /(?:^|\n)\d+ path=([^\n]*)\n/.exec(text)?.[1]
}

/**
 * The entries of a ustar, GNU or pax archive (gzip-compressed or not), read
 * as it streams: ustar's prefix, GNU's long names and pax's `path` are
 * honoured, and an archive of one top directory (`tar czf m.tgz my-model/`)
 * gives the paths inside it, unless `keepTop`. Links and devices are refused:
 * a model is files, and so is what `get` archives.
 */
export async function * readTar (source: AsyncIterable<Uint8Array>, options: { keepTop?: boolean } = {}): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(await gunzipped(source))
  let longName: string | undefined
  let top: string | undefined
  let first = true
  while (true) {
    const block = await reader.some(BLOCK).then(async part => part.byteLength === BLOCK || part.byteLength === 0 ? part : concat(part, await reader.exactly(BLOCK - part.byteLength)))
    if (block.byteLength === 0 || block.every(byte => byte === 0)) return
    const size = entrySize(block)
    const type = String.fromCharCode(block[156] || 48)
    const padding = (BLOCK - size % BLOCK) % BLOCK
    if (type === 'L' || type === 'x') {
      const data = await reader.exactly(size)
      await reader.exactly(padding)
      longName = type === 'L' ? field(data, 0, data.byteLength) : paxPath(data) ?? longName
      continue
    }
    const prefix = field(block, 345, 155)
    let path = (longName ?? (prefix === '' ? field(block, 0, 100) : `${prefix}/${field(block, 0, 100)}`)).replace(/^(\.\/)+/, '')
    longName = undefined
    if (type === 'g') {
      await reader.exactly(size + padding)
      continue
    }
    if (type !== '0' && type !== '5' && type !== '7') throw new BadRequestError(`the tar archive's entry ${JSON.stringify(path.slice(0, 100))} is a link or a device, which a model directory may not hold`)
    if (options.keepTop !== true && first && type === '5' && /^[^/]+\/?$/.test(path)) top = path.replace(/\/$/, '') + '/'
    first = false
    if (top != null && path.startsWith(top)) path = path.slice(top.length)
    path = path.replace(/\/$/, '')
    if (type === '5') {
      if (path !== '' && path !== '.') yield { path, type: 'directory', content: (async function * () {})() }
      continue
    }
    let left = size
    const content = (async function * () {
      while (left > 0) {
        const part = await reader.some(left)
        if (part.byteLength === 0) throw new BadRequestError('the tar archive ends inside an entry')
        left -= part.byteLength
        yield part
      }
    })()
    yield { path, type: 'file', content }
    // Whatever the consumer left of this file is skipped to reach the next header.
    while (left > 0) left -= (await reader.exactly(Math.min(left, 65_536))).byteLength
    await reader.exactly(padding)
  }
}

function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a)
  out.set(b, a.byteLength)
  return out
}

/** The stream, gunzipped when it starts with gzip's magic bytes. */
async function gunzipped (source: AsyncIterable<Uint8Array>): Promise<AsyncIterable<Uint8Array>> {
  const iterator = source[Symbol.asyncIterator]()
  const head = await iterator.next()
  const rest = (async function * () {
    if (head.done !== true) yield head.value
    while (true) {
      const next = await iterator.next()
      if (next.done === true) return
      yield next.value
    }
  })()
  if (head.done === true || head.value[0] !== 0x1f || head.value[1] !== 0x8b) return rest
  return Readable.from(rest).pipe(createGunzip())
}
