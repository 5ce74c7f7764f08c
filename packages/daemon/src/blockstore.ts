import { randomBytes } from 'node:crypto'
import { mkdirSync, statSync } from 'node:fs'
import { mkdir, opendir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BaseBlockstore } from 'blockstore-core'
import { NotFoundError } from 'interface-store'
import { base32upper } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import type { AbortOptions } from '@libp2p/interface'
import type { Pair } from 'interface-blockstore'

const RAW = 0x55
/** The characters of RFC 4648 base32, upper case: the names of the shard directories are pairs of them. */
const BASE32_UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/**
 * Blocks as files, in Kubo's flatfs layout (next-to-last/2): `<BASE32
 * multihash>.data` under a directory named by the two characters before its last, so CIDv0 and CIDv1 of
 * the same bytes share one file. A block is written to a temp file and renamed,
 * so a crash leaves it absent or whole; it is read back in one call. (This
 * replaces blockstore-fs, whose per-block write queue and 64 KiB read stream
 * were most of the time of an add and a cat.)
 */
export class FlatfsBlockstore extends BaseBlockstore {
  readonly path: string
  /** Shard directories known to exist, so that writes need no mkdir. */
  private readonly dirs = new Set<string>()

  constructor (path: string) {
    super()
    this.path = path
  }

  /**
   * Creates the 1024 shard directories once, when the store is new, so that
   * writing a block never waits on a mkdir (a fifth of an add's block writes
   * otherwise went to creating directories).
   */
  async open (): Promise<void> {
    await mkdir(this.path, { recursive: true })
    const existing = new Set(await readdir(this.path))
    for (const a of BASE32_UPPER) {
      for (const b of BASE32_UPPER) {
        const shard = `${a}${b}`
        // Synchronous: this runs once at start-up, before anything else waits on the event loop.
        if (!existing.has(shard)) mkdirSync(join(this.path, shard), { recursive: true })
        this.dirs.add(join(this.path, shard))
      }
    }
  }

  private locate (cid: CID): { dir: string, file: string } {
    const name = base32upper.encode(cid.multihash.bytes)
    const dir = join(this.path, name.slice(-3, -1))
    return { dir, file: join(dir, `${name}.data`) }
  }

  async put (cid: CID, bytes: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options: AbortOptions = {}): Promise<CID> {
    options.signal?.throwIfAborted()
    const { dir, file } = this.locate(cid)
    if (exists(file)) return cid
    const data = bytes instanceof Uint8Array ? bytes : await collect(bytes)
    if (!this.dirs.has(dir)) {
      await mkdir(dir, { recursive: true })
      this.dirs.add(dir)
    }
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
    await writeFile(tmp, data)
    await rename(tmp, file)
    return cid
  }

  async * get (cid: CID, options: AbortOptions = {}): AsyncGenerator<Uint8Array> {
    options.signal?.throwIfAborted()
    try {
      yield await readFile(this.locate(cid).file)
    } catch (err: any) {
      if (err.code === 'ENOENT') throw new NotFoundError(`block ${cid} is not in the blockstore`)
      throw err
    }
  }

  async has (cid: CID): Promise<boolean> {
    return exists(this.locate(cid).file)
  }

  async delete (cid: CID): Promise<void> {
    await unlink(this.locate(cid).file).catch((err) => { if (err.code !== 'ENOENT') throw err })
  }

  /** Every block, as a raw CIDv1: the store keeps multihashes, not codecs. */
  async * getAll (options: AbortOptions = {}): AsyncGenerator<Pair> {
    for await (const shard of await opendir(this.path)) {
      if (!shard.isDirectory()) continue
      for await (const entry of await opendir(join(this.path, shard.name))) {
        options.signal?.throwIfAborted()
        if (!entry.name.endsWith('.data')) continue
        const cid = CID.createV1(RAW, Digest.decode(base32upper.decode(entry.name.slice(0, -'.data'.length))))
        const file = join(this.path, shard.name, entry.name)
        yield { cid, bytes: (async function * () { yield await readFile(file) })() }
      }
    }
  }

  /** Removes temp files a crash left behind. */
  async sweep (): Promise<void> {
    for await (const shard of await opendir(this.path)) {
      if (!shard.isDirectory()) continue
      for await (const entry of await opendir(join(this.path, shard.name))) {
        if (entry.name.endsWith('.tmp')) await rm(join(this.path, shard.name, entry.name), { force: true })
      }
    }
  }
}

/**
 * A stat on the calling thread: Helia asks `has` before every get, and a
 * missing block is the common case when fetching; the async form would cost a
 * thread-pool round trip and a thrown error each time.
 */
function exists (file: string): boolean {
  return statSync(file, { throwIfNoEntry: false }) != null
}

async function collect (source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const chunk of source) chunks.push(chunk)
  return Buffer.concat(chunks)
}
