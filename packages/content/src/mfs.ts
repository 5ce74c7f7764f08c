import * as dagPb from '@ipld/dag-pb'
import { unixfs } from '@helia/unixfs'
import { Key } from 'interface-datastore'
import { CID } from 'multiformats/cid'
import { addAll } from './add.ts'
import { FileExistsError, InvalidParameterError, NotFoundError, WrongContentTypeError } from './errors.ts'
import { getBlock } from './blocks.ts'
import { heldPut } from './gc.ts'
import { parsePath } from './paths.ts'
import { cat, resolveEntry } from './read.ts'
import type { BlockGuard, Hold } from './gc.ts'
import type { Blocks, Pins } from '@helia/interface'
import type { UnixFS } from '@helia/unixfs'
import type { AbortOptions } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'
import type { Version } from 'multiformats/cid'

/** Where Kubo keeps its MFS root, so that a repo reads the same key. */
const ROOT_KEY = new Key('/local/filesroot')

export interface MfsComponents {
  /** Reads as the node's content reads go: fetched when not local, each fetch bounded. */
  reads: Pick<Blocks, 'get' | 'has'>
  blockstore: Pick<Blocks, 'put'>
  datastore: Pick<Datastore, 'get' | 'put' | 'has'>
  pins: Pins
  guard: BlockGuard
}

export type MfsType = 'file' | 'directory'

export interface MfsStat {
  cid: CID
  type: MfsType
  /** Bytes of a file; 0 for a directory, as Kubo. */
  size: number
  /** The node's block and every block under it, by the sizes its links record. */
  cumulativeSize: number
  /** Links of the node. */
  blocks: number
}

export interface MfsEntry {
  name: string
  type: MfsType
  size: number
  cid: CID
}

export interface MfsWriteOptions extends AbortOptions {
  offset?: number
  /** Write at most this many bytes of the input. */
  count?: number
  create?: boolean
  /** Drop what the file held after the written bytes. */
  truncate?: boolean
  parents?: boolean
  cidVersion?: Version
  rawLeaves?: boolean
}

export interface MfsMkdirOptions extends AbortOptions {
  parents?: boolean
  cidVersion?: Version
}

/** `/a/b` as its segments; MFS paths are absolute, as Kubo's. */
function segments (path: string): string[] {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidParameterError(`paths must start with a leading slash: ${JSON.stringify(path)}`)
  const parts = path.split('/').filter(p => p !== '')
  if (parts.some(p => p === '.' || p === '..')) throw new InvalidParameterError(`paths must not hold . or ..: ${JSON.stringify(path)}`)
  return parts
}

const display = (parts: string[]): string => '/' + parts.join('/')

/** The same dag-pb node under another CID version: its bytes, and so its hash, do not change. */
function withVersion (cid: CID, version: Version): CID {
  if (cid.version === version) return cid
  if (version === 1) return CID.createV1(cid.code, cid.multihash)
  if (cid.code !== dagPb.code) throw new InvalidParameterError(`${cid} is not dag-pb: it has no CIDv0`)
  return CID.createV0(cid.multihash as Parameters<typeof CID.createV0>[0])
}

/**
 * Kubo's mutable file system: a tree of UnixFS directories whose root CID is
 * kept in the datastore, each change a new root made by relinking the
 * directories on the changed path. Changes run one at a time, and the blocks
 * each writes are held from GC until the new root that keeps them is stored.
 */
export class Mfs {
  readonly #components: MfsComponents
  #root?: CID
  #queue: Promise<unknown> = Promise.resolve()

  constructor (components: MfsComponents) {
    this.#components = components
  }

  /** Loads the stored root, or makes an empty directory the root of a new repo. */
  async start (): Promise<void> {
    const { datastore } = this.#components
    if (await datastore.has(ROOT_KEY)) {
      this.#root = CID.decode(await datastore.get(ROOT_KEY))
      return
    }
    await this.#change(async (fs) => fs.addDirectory({}, { cidVersion: 0 }))
  }

  /** The root as last stored; GC keeps everything under it. */
  get root (): CID | undefined {
    return this.#root
  }

  /** UnixFS over the node's reads, writing through `hold` when given. */
  #fs (hold?: Hold): UnixFS {
    const { reads, blockstore } = this.#components
    const put: Blocks['put'] = hold == null ? blockstore.put.bind(blockstore) : heldPut(blockstore, hold)
    return unixfs({ blockstore: { get: reads.get.bind(reads), has: reads.has.bind(reads), put } })
  }

  /** Runs a change after those before it, then stores the root it returns. */
  async #change (change: (fs: UnixFS, hold: Hold) => Promise<CID>): Promise<void> {
    const turn = this.#queue.then(async () => {
      const hold = this.#components.guard.hold()
      try {
        const root = await change(this.#fs(hold), hold)
        await this.#components.datastore.put(ROOT_KEY, root.bytes)
        this.#root = root
      } finally {
        hold.release()
      }
    })
    this.#queue = turn.catch(() => {})
    return turn
  }

  #current (): CID {
    if (this.#root == null) throw new Error('the MFS root is loaded when the node starts')
    return this.#root
  }

  /** The CID at a path under `root`, or undefined when nothing is there. */
  async #lookup (fs: UnixFS, root: CID, parts: string[], options?: AbortOptions): Promise<CID | undefined> {
    if (parts.length === 0) return root
    try {
      return (await fs.stat(root, { ...options, path: parts.join('/') })).cid
    } catch (err: any) {
      if (err.name === 'NotFoundError' || err.name === 'NoPropError' || err.name === 'NotADirectoryError') return undefined
      throw err
    }
  }

  async #existing (fs: UnixFS, root: CID, parts: string[], options?: AbortOptions): Promise<CID> {
    const cid = await this.#lookup(fs, root, parts, options)
    if (cid == null) throw new NotFoundError(`file does not exist: ${display(parts)}`)
    return cid
  }

  async #type (fs: UnixFS, cid: CID, options?: AbortOptions): Promise<MfsType> {
    const stat = await fs.stat(cid, options)
    return stat.type === 'directory' ? 'directory' : 'file'
  }

  /**
   * The root with `cid` linked at `parts` (or the link removed, when
   * undefined): the parent gets the new link, and each directory above it the
   * new CID of the one below.
   */
  async #relink (fs: UnixFS, root: CID, parts: string[], cid: CID | undefined, options?: AbortOptions): Promise<CID> {
    if (parts.length === 0) {
      if (cid == null) throw new InvalidParameterError('cannot remove the root')
      return cid
    }
    const dirs = [root]
    for (let i = 1; i < parts.length; i++) {
      const dir = await this.#lookup(fs, root, parts.slice(0, i), options)
      if (dir == null) throw new NotFoundError(`file does not exist: ${display(parts.slice(0, i))}`)
      if (await this.#type(fs, dir, options) !== 'directory') throw new WrongContentTypeError(`not a directory: ${display(parts.slice(0, i))}`)
      dirs.push(dir)
    }
    const name = parts[parts.length - 1]
    let child = cid == null
      ? await fs.rm(dirs[dirs.length - 1], name, options)
      : await fs.cp(cid, dirs[dirs.length - 1], name, { ...options, force: true })
    for (let i = parts.length - 2; i >= 0; i--) child = await fs.cp(child, dirs[i], parts[i], { ...options, force: true })
    return child
  }

  /** The root with the missing directories of `parts` made, as `mkdir -p`. */
  async #makeParents (fs: UnixFS, root: CID, parts: string[], cidVersion: Version, options?: AbortOptions): Promise<CID> {
    let have = parts.length
    while (have > 0 && await this.#lookup(fs, root, parts.slice(0, have), options) == null) have--
    if (have === parts.length) {
      if (await this.#type(fs, await this.#existing(fs, root, parts, options), options) !== 'directory') throw new FileExistsError(`file already exists and is not a directory: ${display(parts)}`)
      return root
    }
    const empty = await fs.addDirectory({}, { cidVersion })
    let built = empty
    for (let i = parts.length - 1; i > have; i--) built = await fs.cp(built, empty, parts[i], options)
    return this.#relink(fs, root, parts.slice(0, have + 1), built, options)
  }

  /** An MFS path, or as Kubo's files/stat also takes, an /ipfs/ path (kubo-rpc-client's ls asks it so of an empty directory). */
  async stat (path: string, options?: AbortOptions): Promise<MfsStat> {
    const fs = this.#fs()
    const cid = path.startsWith('/ipfs/') ? (await resolveEntry(this.#components.reads, path, options)).cid : await this.#existing(fs, this.#current(), segments(path), options)
    const stat = await fs.stat(cid, options)
    const block = await getBlock(this.#components.reads, cid, options)
    if (cid.code !== dagPb.code) return { cid, type: 'file', size: block.length, cumulativeSize: block.length, blocks: 0 }
    const node = dagPb.decode(block)
    const type = stat.type === 'directory' ? 'directory' : 'file'
    return {
      cid,
      type,
      size: type === 'directory' ? 0 : Number(stat.size),
      cumulativeSize: block.length + node.Links.reduce((sum, link) => sum + (link.Tsize ?? 0), 0),
      blocks: node.Links.length
    }
  }

  /** The entries of a directory, or the file itself, as Kubo lists a file. */
  async ls (path: string, options?: AbortOptions): Promise<MfsEntry[]> {
    const fs = this.#fs()
    const parts = segments(path)
    const cid = await this.#existing(fs, this.#current(), parts, options)
    const entryOf = async (name: string, cid: CID): Promise<MfsEntry> => {
      const stat = await fs.stat(cid, options)
      const type = stat.type === 'directory' ? 'directory' : 'file'
      return { name, cid, type, size: type === 'directory' ? 0 : Number(stat.size) }
    }
    if (await this.#type(fs, cid, options) !== 'directory') return [await entryOf(parts[parts.length - 1], cid)]
    const entries: MfsEntry[] = []
    for await (const entry of fs.ls(cid, options)) entries.push(await entryOf(entry.name, entry.cid))
    return entries
  }

  async * read (path: string, options: AbortOptions & { offset?: number, length?: number } = {}): AsyncGenerator<Uint8Array> {
    const fs = this.#fs()
    const cid = await this.#existing(fs, this.#current(), segments(path), options)
    if (await this.#type(fs, cid, options) !== 'file') throw new WrongContentTypeError(`${path} is a directory`)
    yield * cat(this.#components.reads, cid.toString(), options)
  }

  async mkdir (path: string, options: MfsMkdirOptions = {}): Promise<void> {
    const parts = segments(path)
    const cidVersion = options.cidVersion ?? 0
    await this.#change(async (fs) => {
      const root = this.#current()
      if (options.parents === true) return this.#makeParents(fs, root, parts, cidVersion, options)
      if (parts.length === 0 || await this.#lookup(fs, root, parts, options) != null) throw new FileExistsError(`file already exists: ${display(parts)}`)
      return this.#relink(fs, root, parts, await fs.addDirectory({}, { cidVersion }), options)
    })
  }

  /**
   * Writes bytes into a file at `offset`, as Kubo's files/write: the file is
   * imported again from its bytes before the offset, the new bytes and, unless
   * `truncate`, its bytes after them.
   */
  async write (path: string, source: AsyncIterable<Uint8Array>, options: MfsWriteOptions = {}): Promise<void> {
    const parts = segments(path)
    if (parts.length === 0) throw new WrongContentTypeError('/ is a directory')
    const offset = options.offset ?? 0
    const { reads, pins, guard } = this.#components
    await this.#change(async (fs, hold) => {
      let root = this.#current()
      if (options.parents === true) root = await this.#makeParents(fs, root, parts.slice(0, -1), options.cidVersion ?? 0, options)
      const existing = await this.#lookup(fs, root, parts, options)
      if (existing == null && options.create !== true) throw new NotFoundError(`file does not exist: ${display(parts)}`)
      let size = 0
      if (existing != null) {
        const stat = await fs.stat(existing, options)
        if (stat.type === 'directory') throw new WrongContentTypeError(`${display(parts)} is a directory`)
        size = Number(stat.size)
      }
      if (offset > size) throw new InvalidParameterError(`offset was past end of file (${offset} > ${size})`)
      const content = (async function * () {
        if (existing != null && offset > 0) yield * cat(reads, existing.toString(), { signal: options.signal, length: offset })
        let written = 0
        for await (const chunk of source) {
          const left = (options.count ?? Infinity) - written
          if (left <= 0) break
          const part = chunk.length > left ? chunk.subarray(0, left) : chunk
          written += part.length
          yield part
        }
        if (existing != null && options.truncate !== true && offset + written < size) yield * cat(reads, existing.toString(), { signal: options.signal, offset: offset + written })
      })()
      const blockstore = { get: reads.get.bind(reads), put: heldPut(this.#components.blockstore, hold) }
      let file: CID | undefined
      for await (const evt of addAll({ blockstore, pins, guard }, [{ content }], { signal: options.signal, cidVersion: options.cidVersion, rawLeaves: options.rawLeaves, pin: false })) {
        if (evt.type === 'entry') file = evt.cid
      }
      if (file == null) throw new Error('the import gave no file')
      return this.#relink(fs, root, parts, file, options)
    })
  }

  /**
   * Copies `/ipfs/<cid>[/path]` or an MFS path to `dest`; a `dest` that ends in
   * a slash takes the source's name. An existing entry is kept unless `force`.
   */
  async cp (source: string, dest: string, options: AbortOptions & { parents?: boolean, force?: boolean } = {}): Promise<void> {
    const fromIpfs = source.startsWith('/ipfs/')
    const srcParts = fromIpfs ? [] : segments(source)
    let parts = segments(dest)
    if (dest.endsWith('/')) parts = [...parts, fromIpfs ? parsePath(source).rest.at(-1) ?? parsePath(source).cid.toString() : srcParts[srcParts.length - 1]]
    if (parts.length === 0) throw new InvalidParameterError('cannot copy onto the root')
    await this.#change(async (fs) => {
      let root = this.#current()
      const cid = fromIpfs ? (await resolveEntry(this.#components.reads, source, options)).cid : await this.#existing(fs, root, srcParts, options)
      if (options.parents === true) root = await this.#makeParents(fs, root, parts.slice(0, -1), 0, options)
      if (options.force !== true && await this.#lookup(fs, root, parts, options) != null) throw new FileExistsError(`directory already has entry by that name: ${display(parts)}`)
      return this.#relink(fs, root, parts, cid, options)
    })
  }

  /** Moves sources to `dest`: into it when it is a directory, else renamed to it (one source only). */
  async mv (sources: string[], dest: string, options?: AbortOptions): Promise<void> {
    const destParts = segments(dest)
    const srcs = sources.map(segments)
    await this.#change(async (fs) => {
      let root = this.#current()
      const target = await this.#lookup(fs, root, destParts, options)
      const into = target != null && await this.#type(fs, target, options) === 'directory'
      if (!into && srcs.length > 1) throw new InvalidParameterError(`moving ${srcs.length} sources needs a directory as the destination: ${dest}`)
      for (const src of srcs) {
        if (src.length === 0) throw new InvalidParameterError('cannot move the root')
        const to = into ? [...destParts, src[src.length - 1]] : destParts
        if (to.length >= src.length && src.every((p, i) => p === to[i])) {
          if (to.length === src.length) continue
          throw new InvalidParameterError(`cannot move ${display(src)} into itself`)
        }
        const cid = await this.#existing(fs, root, src, options)
        if (into && await this.#lookup(fs, root, to, options) != null) throw new FileExistsError(`directory already has entry by that name: ${display(to)}`)
        root = await this.#relink(fs, await this.#relink(fs, root, src, undefined, options), to, cid, options)
      }
      return root
    })
  }

  async rm (paths: string[], options: AbortOptions & { recursive?: boolean, force?: boolean } = {}): Promise<void> {
    const all = paths.map(segments)
    await this.#change(async (fs) => {
      let root = this.#current()
      for (const parts of all) {
        if (parts.length === 0) throw new InvalidParameterError('cannot delete root')
        const cid = await this.#lookup(fs, root, parts, options)
        if (cid == null) {
          if (options.force === true) continue
          throw new NotFoundError(`file does not exist: ${display(parts)}`)
        }
        if (options.recursive !== true && options.force !== true && await this.#type(fs, cid, options) === 'directory') {
          throw new WrongContentTypeError(`${display(parts)} is a directory, use -r to remove directories`)
        }
        root = await this.#relink(fs, root, parts, undefined, options)
      }
      return root
    })
  }

  /** Every change is stored as it is made: the CID at the path, as Kubo's flush answers. */
  async flush (path: string, options?: AbortOptions): Promise<CID> {
    return this.#existing(this.#fs(), this.#current(), segments(path), options)
  }

  /** Gives the node at `path` another CID version; what is written under it afterwards takes the same. */
  async chcid (path: string, options: AbortOptions & { cidVersion?: Version } = {}): Promise<void> {
    const parts = segments(path)
    const version = options.cidVersion
    if (version == null) return
    await this.#change(async (fs) => {
      const root = this.#current()
      const cid = await this.#existing(fs, root, parts, options)
      return this.#relink(fs, root, parts, withVersion(cid, version), options)
    })
  }
}
