import * as dagPb from '@ipld/dag-pb'
import { unixfs } from '@helia/unixfs'
import { Key } from 'interface-datastore'
import { UnixFS as UnixFSData } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { concat } from 'uint8arrays/concat'
import { addAll } from './add.ts'
import { blockKey, getBlock } from './blocks.ts'
import { digestOf, hasherByCode, hashers } from './codecs.ts'
import { FileExistsError, InvalidParameterError, NotFoundError, WrongContentTypeError } from './errors.ts'
import { heldPut } from './gc.ts'
import { parsePath } from './paths.ts'
import { cat, resolveEntry } from './read.ts'
import { Rehasher } from './rehash.ts'
import type { BlockGuard, Hold } from './gc.ts'
import type { Blocks, Pins } from '@helia/interface'
import type { UnixFS } from '@helia/unixfs'
import type { AbortOptions } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'
import type { Version } from 'multiformats/cid'
import type { MultihashHasher } from 'multiformats/hashes/interface'

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
  /** With `hash`, the CID prefix of a new file (an existing one keeps its own, as Kubo) and of the parents made. */
  cidVersion?: Version
  hash?: string
  rawLeaves?: boolean
}

export interface MfsMkdirOptions extends AbortOptions {
  parents?: boolean
  cidVersion?: Version
  hash?: string
}

/** Kubo's cid.Prefix of an MFS node: the CID version and the hash function it is stored under. */
interface Prefix {
  version: Version
  hasher: MultihashHasher
}

/**
 * Kubo's getPrefix: a hash function means CIDv1 whatever cid-version says;
 * without either option, Kubo's default Import settings (CIDv0, sha2-256).
 */
function prefixOf (options: { cidVersion?: Version, hash?: string }): Prefix {
  if (options.hash == null) return { version: options.cidVersion ?? 0, hasher: sha256 }
  const hasher = hashers[options.hash.toLowerCase()]
  if (hasher == null) throw new InvalidParameterError(`unrecognized hash function: ${JSON.stringify(options.hash)}`)
  return { version: 1, hasher }
}

/** The prefix a node was stored with, which its next versions keep. */
function prefixOfCid (cid: CID): Prefix {
  const hasher = hasherByCode(cid.multihash.code)
  if (hasher == null) throw new InvalidParameterError(`${cid} uses a hash function the node does not support`)
  return { version: cid.version, hasher }
}

/**
 * Kubo's Import.UnixFSHAMTDirectorySizeThreshold: a directory whose entries'
 * names and CIDs add up to more bytes than this is a HAMT shard. UnixFS
 * shards by the same estimate and threshold.
 */
const HAMT_THRESHOLD = 262_144

/** The size of the runs of zeros that fill a write past the end of a file. */
const ZERO_CHUNK = 262_144

/** Kubo's empty directory, `{Data: UnixFS{Type: Directory}}`. */
const EMPTY_DIRECTORY = dagPb.encode(dagPb.prepare({ Data: new UnixFSData({ type: 'directory' }).marshal() }))

/** `/a/b` as its segments; MFS paths are absolute, as Kubo's. */
function segments (path: string): string[] {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidParameterError(`paths must start with a leading slash: ${JSON.stringify(path)}`)
  const parts = path.split('/').filter(p => p !== '')
  if (parts.some(p => p === '.' || p === '..')) throw new InvalidParameterError(`paths must not hold . or ..: ${JSON.stringify(path)}`)
  return parts
}

const display = (parts: string[]): string => '/' + parts.join('/')

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
    await this.#change(async (_fs, hold) => this.#store(hold, EMPTY_DIRECTORY, prefixOf({})))
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

  /** Stores a dag-pb block under `prefix`, as Kubo's CID builder of the node it is. */
  async #store (hold: Hold, block: Uint8Array, prefix: Prefix): Promise<CID> {
    const cid = prefix.version === 0
      ? CID.createV0(await sha256.digest(block))
      : CID.createV1(dagPb.code, await digestOf(prefix.hasher, block))
    await heldPut(this.#components.blockstore, hold)(cid, block)
    return cid
  }

  /**
   * Runs an edit of the directory `dir` through UnixFS, which hashes what it
   * writes with sha2-256 only: for a directory of another hash function, as
   * Kubo's directories keep the CID builder they were made with, each block
   * written is stored rehashed, its links to the others rewritten, and UnixFS
   * reads back the blocks it wrote (a directory it turned into a shard) under
   * the CIDs it gave them.
   */
  async #edit (hold: Hold, dir: CID, edit: (fs: UnixFS) => Promise<CID>): Promise<CID> {
    const { hasher } = prefixOfCid(dir)
    if (hasher.code === sha256.code) return edit(this.#fs(hold))
    const { reads, blockstore } = this.#components
    const rehasher = new Rehasher({ put: heldPut(blockstore, hold) }, { hasher })
    const written = new Map<string, Uint8Array>()
    const fs = unixfs({
      blockstore: {
        get: async function * (cid, options) {
          const block = written.get(blockKey(cid))
          if (block != null) yield block
          else yield * reads.get(cid, options)
        },
        has: async (cid, options) => written.has(blockKey(cid)) || reads.has(cid, options),
        put: async (cid, bytes, options) => {
          // UnixFS writes whole blocks; the type allows streams of them.
          let block: Uint8Array
          if (bytes instanceof Uint8Array) block = bytes
          else {
            const chunks: Uint8Array[] = []
            for await (const chunk of bytes) chunks.push(chunk)
            block = concat(chunks)
          }
          written.set(blockKey(cid), block)
          return rehasher.store.put(cid, block, options)
        }
      }
    })
    return rehasher.cidOf(await edit(fs))
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

  /**
   * The CID at a path under `root`, or undefined when nothing is there. A
   * path through a file is an error, as Kubo's lookup says it.
   */
  async #lookup (root: CID, parts: string[], options?: AbortOptions): Promise<CID | undefined> {
    if (parts.length === 0) return root
    try {
      // resolveEntry, not UnixFS's stat: the exporter under both reads a/file/x as a/file.
      return (await resolveEntry(this.#components.reads, `/ipfs/${root}/${parts.join('/')}`, options)).cid
    } catch (err: any) {
      // The exporter fails a path through a file in several ways; Kubo's error names it.
      if (err.name !== 'NotFoundError' && err.name !== 'WrongContentTypeError') throw err
      await this.#checkNoFileOnPath(root, parts, options)
      if (err.name !== 'NotFoundError') throw err
      return undefined
    }
  }

  /** Kubo's error for a path that goes on past a file, naming the path up to the segment after it. */
  async #checkNoFileOnPath (root: CID, parts: string[], options?: AbortOptions): Promise<void> {
    for (let i = 1; i < parts.length; i++) {
      let type: string
      try {
        type = (await resolveEntry(this.#components.reads, `/ipfs/${root}/${parts.slice(0, i).join('/')}`, options)).type
      } catch {
        return
      }
      if (type !== 'directory') throw new WrongContentTypeError(`cannot access ${parts.slice(0, i + 1).join('/')}: Not a directory`)
    }
  }

  async #existing (root: CID, parts: string[], options?: AbortOptions): Promise<CID> {
    const cid = await this.#lookup(root, parts, options)
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
  async #relink (fs: UnixFS, hold: Hold, root: CID, parts: string[], cid: CID | undefined, options?: AbortOptions): Promise<CID> {
    if (parts.length === 0) {
      if (cid == null) throw new InvalidParameterError('cannot remove the root')
      return cid
    }
    const dirs = [root]
    for (let i = 1; i < parts.length; i++) {
      const dir = await this.#lookup(root, parts.slice(0, i), options)
      if (dir == null) throw new NotFoundError(`file does not exist: ${display(parts.slice(0, i))}`)
      if (await this.#type(fs, dir, options) !== 'directory') throw new WrongContentTypeError(`cannot access ${parts.slice(0, i + 1).join('/')}: Not a directory`)
      dirs.push(dir)
    }
    const name = parts[parts.length - 1]
    const parent = dirs[dirs.length - 1]
    // Kubo turns a HAMT back into a basic directory only on an edit that makes its estimate smaller.
    const shrinks = (old: CID | undefined, next: CID | undefined): boolean => next == null || (old != null && next.bytes.length < old.bytes.length)
    let child = cid == null
      ? await this.#edit(hold, parent, async (fs) => fs.rm(parent, name, options))
      : await this.#edit(hold, parent, async (fs) => fs.cp(cid, parent, name, { ...options, force: true }))
    if (shrinks(cid == null ? undefined : await this.#lookup(root, parts, options), cid)) child = await this.#unshardIfSmall(hold, child, options)
    for (let i = parts.length - 2; i >= 0; i--) {
      const below = child
      child = await this.#edit(hold, dirs[i], async (fs) => fs.cp(below, dirs[i], parts[i], { ...options, force: true }))
      if (shrinks(dirs[i + 1], below)) child = await this.#unshardIfSmall(hold, child, options)
    }
    return child
  }

  /**
   * A HAMT shard whose entries' estimate is back at or under Kubo's threshold,
   * as the basic directory Kubo (boxo's HAMTDirectory.needsToSwitchToBasicDir)
   * turns it into: the same entries, mode and mtime, under the shard's prefix.
   * UnixFS does the same after a removal, but its estimate also counts the
   * links to sub-shards, and counts a sub-shard's entries twice, so a
   * directory Kubo would unshard stayed a HAMT.
   */
  async #unshardIfSmall (hold: Hold, dir: CID, options?: AbortOptions): Promise<CID> {
    const { reads } = this.#components
    const node = dagPb.decode(await getBlock(reads, dir, options))
    const data = UnixFSData.unmarshal(node.Data ?? new Uint8Array())
    if (data.type !== 'hamt-sharded-directory') return dir
    const prefixLength = (Number(data.fanout ?? 256n) - 1).toString(16).length
    const links: dagPb.PBLink[] = []
    let estimate = 0
    const walk = async (shard: dagPb.PBNode): Promise<boolean> => {
      for (const link of shard.Links) {
        const linkName = link.Name ?? ''
        if (linkName.length === prefixLength) {
          if (!await walk(dagPb.decode(await getBlock(reads, link.Hash, options)))) return false
          continue
        }
        const entry = linkName.slice(prefixLength)
        estimate += Buffer.byteLength(entry) + link.Hash.bytes.byteLength
        if (estimate > HAMT_THRESHOLD) return false
        links.push({ Name: entry, Hash: link.Hash, Tsize: link.Tsize })
      }
      return true
    }
    if (!await walk(node)) return dir
    const basic = dagPb.encode(dagPb.prepare({ Data: new UnixFSData({ type: 'directory', mode: data.mode, mtime: data.mtime }).marshal(), Links: links }))
    return this.#store(hold, basic, prefixOfCid(dir))
  }

  /** The root with the missing directories of `parts` made, as `mkdir -p`. */
  async #makeParents (fs: UnixFS, hold: Hold, root: CID, parts: string[], prefix: Prefix, options?: AbortOptions): Promise<CID> {
    let have = parts.length
    while (have > 0 && await this.#lookup(root, parts.slice(0, have), options) == null) have--
    if (have === parts.length) {
      if (await this.#type(fs, await this.#existing(root, parts, options), options) !== 'directory') throw new FileExistsError(`file already exists and is not a directory: ${display(parts)}`)
      return root
    }
    const empty = await this.#store(hold, EMPTY_DIRECTORY, prefix)
    let built = empty
    for (let i = parts.length - 1; i > have; i--) {
      const below = built
      built = await this.#edit(hold, empty, async (fs) => fs.cp(below, empty, parts[i], options))
    }
    return this.#relink(fs, hold, root, parts.slice(0, have + 1), built, options)
  }

  /** An MFS path, or as Kubo's files/stat also takes, an /ipfs/ path (kubo-rpc-client's ls asks it so of an empty directory). */
  async stat (path: string, options?: AbortOptions): Promise<MfsStat> {
    const fs = this.#fs()
    const cid = path.startsWith('/ipfs/') ? (await resolveEntry(this.#components.reads, path, options)).cid : await this.#existing(this.#current(), segments(path), options)
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
    const cid = await this.#existing(this.#current(), parts, options)
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
    const cid = await this.#existing(this.#current(), segments(path), options)
    if (await this.#type(fs, cid, options) !== 'file') throw new WrongContentTypeError(`${path} was not a file`)
    yield * cat(this.#components.reads, cid.toString(), options)
  }

  /** Makes a directory with the prefix the options give (Kubo's default without them, not the parent's). */
  async mkdir (path: string, options: MfsMkdirOptions = {}): Promise<void> {
    const parts = segments(path)
    const prefix = prefixOf(options)
    await this.#change(async (fs, hold) => {
      const root = this.#current()
      if (options.parents === true) return this.#makeParents(fs, hold, root, parts, prefix, options)
      if (parts.length === 0 || await this.#lookup(root, parts, options) != null) throw new FileExistsError(`file already exists: ${display(parts)}`)
      return this.#relink(fs, hold, root, parts, await this.#store(hold, EMPTY_DIRECTORY, prefix), options)
    })
  }

  /**
   * Writes bytes into a file at `offset`, as Kubo's files/write: the file is
   * imported again from its bytes before the offset, the new bytes and, unless
   * `truncate`, its bytes after them. A new file takes the options' CID
   * prefix; an existing one keeps its own, as Kubo's DagModifier does. The
   * file is built as that DagModifier appends to an empty file, so a new file
   * gets Kubo's CID; Kubo edits an existing file's leaves in place, so a file
   * rewritten here has Kubo's bytes but, unless its leaves fall the same way,
   * not Kubo's CID.
   */
  async write (path: string, source: AsyncIterable<Uint8Array>, options: MfsWriteOptions = {}): Promise<void> {
    const parts = segments(path)
    if (parts.length === 0) throw new WrongContentTypeError('/ is a directory')
    const offset = options.offset ?? 0
    const given = prefixOf(options)
    const { reads, pins, guard } = this.#components
    await this.#change(async (fs, hold) => {
      let root = this.#current()
      if (options.parents === true) root = await this.#makeParents(fs, hold, root, parts.slice(0, -1), given, options)
      const existing = await this.#lookup(root, parts, options)
      if (existing == null && options.create !== true) throw new NotFoundError(`file does not exist: ${display(parts)}`)
      let size = 0
      let prefix = given
      if (existing != null) {
        prefix = prefixOfCid(existing)
        const stat = await fs.stat(existing, options)
        if (stat.type === 'directory') throw new WrongContentTypeError(`${display(parts)} is a directory`)
        size = Number(stat.size)
      }
      const content = (async function * () {
        if (existing != null && offset > 0) yield * cat(reads, existing.toString(), { signal: options.signal, length: offset })
        // Past the end, the gap is zeros, as Kubo's DagModifier expands a sparse file.
        for (let gap = offset - size; gap > 0; gap -= ZERO_CHUNK) yield new Uint8Array(Math.min(gap, ZERO_CHUNK))
        let written = 0
        for await (const chunk of source) {
          const left = (options.count ?? Infinity) - written
          // Past count the input is still read to its end: it may be a request body still arriving.
          if (left <= 0) continue
          const part = chunk.length > left ? chunk.subarray(0, left) : chunk
          written += part.length
          yield part
        }
        if (existing != null && options.truncate !== true && offset + written < size) yield * cat(reads, existing.toString(), { signal: options.signal, offset: offset + written })
      })()
      const blockstore = { get: reads.get.bind(reads), put: heldPut(this.#components.blockstore, hold) }
      let file: CID | undefined
      const add = { signal: options.signal, cidVersion: prefix.version, hash: prefix.hasher.name, rawLeaves: options.rawLeaves, modifierLayout: true, pin: false }
      for await (const evt of addAll({ blockstore, pins, guard }, [{ content }], add)) {
        if (evt.type === 'entry') file = evt.cid
      }
      if (file == null) throw new Error('the import gave no file')
      return this.#relink(fs, hold, root, parts, file, options)
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
    await this.#change(async (fs, hold) => {
      let root = this.#current()
      const cid = fromIpfs ? (await resolveEntry(this.#components.reads, source, options)).cid : await this.#existing(root, srcParts, options)
      if (options.parents === true) root = await this.#makeParents(fs, hold, root, parts.slice(0, -1), prefixOf({}), options)
      if (options.force !== true && await this.#lookup(root, parts, options) != null) throw new FileExistsError(`directory already has entry by that name: ${display(parts)}`)
      return this.#relink(fs, hold, root, parts, cid, options)
    })
  }

  /** Moves sources to `dest`: into it when it is a directory, else renamed to it (one source only). */
  async mv (sources: string[], dest: string, options?: AbortOptions): Promise<void> {
    const destParts = segments(dest)
    const srcs = sources.map(segments)
    await this.#change(async (fs, hold) => {
      let root = this.#current()
      const target = await this.#lookup(root, destParts, options)
      const into = target != null && await this.#type(fs, target, options) === 'directory'
      if (!into && srcs.length > 1) throw new InvalidParameterError(`moving ${srcs.length} sources needs a directory as the destination: ${dest}`)
      for (const src of srcs) {
        if (src.length === 0) throw new InvalidParameterError('cannot move the root')
        const to = into ? [...destParts, src[src.length - 1]] : destParts
        if (to.length >= src.length && src.every((p, i) => p === to[i])) {
          if (to.length === src.length) continue
          throw new InvalidParameterError(`cannot move ${display(src)} into itself`)
        }
        const cid = await this.#existing(root, src, options)
        if (into && await this.#lookup(root, to, options) != null) throw new FileExistsError(`directory already has entry by that name: ${display(to)}`)
        root = await this.#relink(fs, hold, await this.#relink(fs, hold, root, src, undefined, options), to, cid, options)
      }
      return root
    })
  }

  async rm (paths: string[], options: AbortOptions & { recursive?: boolean, force?: boolean } = {}): Promise<void> {
    const all = paths.map(segments)
    await this.#change(async (fs, hold) => {
      let root = this.#current()
      for (const parts of all) {
        if (parts.length === 0) throw new InvalidParameterError('cannot delete root')
        const cid = await this.#lookup(root, parts, options)
        if (cid == null) {
          if (options.force === true) continue
          throw new NotFoundError(`file does not exist: ${display(parts)}`)
        }
        if (options.recursive !== true && options.force !== true && await this.#type(fs, cid, options) === 'directory') {
          throw new WrongContentTypeError('path is a directory, use -r to remove directories')
        }
        root = await this.#relink(fs, hold, root, parts, undefined, options)
      }
      return root
    })
  }

  /** Every change is stored as it is made: the CID at the path, as Kubo's flush answers. */
  async flush (path: string, options?: AbortOptions): Promise<CID> {
    return this.#existing(this.#current(), segments(path), options)
  }

  /**
   * Stores the directory at `path` under another CID prefix, as Kubo's
   * files/chcid: the version and hash function the options give (the hash
   * sha2-256 when only the version is given); nothing without either. Its
   * edits keep that prefix. Kubo's root takes its prefix from the Import
   * config, not from chcid.
   */
  async chcid (path: string, options: AbortOptions & { cidVersion?: Version, hash?: string } = {}): Promise<void> {
    const parts = segments(path)
    if (parts.length === 0) throw new InvalidParameterError('cannot change CID format of the MFS root; use \'ipfs config Import.CidVersion\' and \'ipfs config Import.HashFunction\' instead')
    if (options.cidVersion == null && options.hash == null) return
    const prefix = prefixOf(options)
    await this.#change(async (fs, hold) => {
      const root = this.#current()
      const cid = await this.#existing(root, parts, options)
      if (await this.#type(fs, cid, options) !== 'directory') throw new WrongContentTypeError('can only update directories')
      const block = await getBlock(this.#components.reads, cid, options)
      return this.#relink(fs, hold, root, parts, await this.#store(hold, block, prefix), options)
    })
  }
}
