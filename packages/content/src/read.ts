import { exporter } from 'ipfs-unixfs-exporter'
import { NotFoundError, WrongContentTypeError } from './errors.ts'
import { readFile } from './file-reader.ts'
import { parsePath, toExporterPath } from './paths.ts'
import type { ReadOptions } from './blocks.ts'
import type { ReadableStorage, UnixFSEntry } from 'ipfs-unixfs-exporter'
import type { CID } from 'multiformats/cid'

export interface CatOptions extends ReadOptions {
  offset?: number
  length?: number
}

export interface FileStat {
  cid: CID
  size: number
  /** Name of the last path segment, when the path had one. */
  name: string
}

export type LinkType = 'file' | 'directory'

export interface LsEntry {
  name: string
  cid: CID
  /** File size for files, 0 for directories, as Kubo's ls. */
  size: number
  type: LinkType
}

export interface Listing {
  cid: CID
  /** Whether the path is a directory; else its entries are a file's chunks, or none. */
  directory: boolean
  entries: LsEntry[]
}

/** Resolves a path to its UnixFS entry, mapping the exporter's errors to ours. */
export async function resolveEntry (blockstore: ReadableStorage, path: string, options: ReadOptions = {}): Promise<UnixFSEntry> {
  const parsed = parsePath(path)
  try {
    const entry = await exporter(toExporterPath(parsed), blockstore, options)
    // The exporter stops at a file and drops one segment after it (a/file/x reads
    // a/file); Kubo fails such a path, so do we.
    if (entry.path.split('/').length !== parsed.rest.length + 1) {
      throw new NotFoundError(`no link named ${JSON.stringify(parsed.rest.join('/'))} under ${parsed.cid}`)
    }
    return entry
  } catch (err: any) {
    // The exporter's own NotFoundError is a link missing from a node; ours, a block not on this node.
    if (err.name === 'NotFoundError' && !(err instanceof NotFoundError)) {
      throw new NotFoundError(`no link named ${JSON.stringify(parsed.rest.join('/'))} under ${parsed.cid}`)
    }
    if (err.name === 'NoResolverError' || err.name === 'NotUnixFSError') {
      throw new WrongContentTypeError(`${path} is not UnixFS content: ${err.message}`)
    }
    throw err
  }
}

type FileEntry = Extract<UnixFSEntry, { content: unknown }>

/** Resolves a path that must name a file: UnixFS file, raw block or identity CID. */
async function resolveFile (blockstore: ReadableStorage, path: string, options: ReadOptions): Promise<FileEntry> {
  const entry = await resolveEntry(blockstore, path, options)
  if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
    // A directory in Kubo's words (boxo's ErrIsDir), which its clients match.
    throw new WrongContentTypeError(entry.type === 'directory' ? `${path}: this dag node is a directory` : `${path} is a non-UnixFS node, not a file`)
  }
  return entry
}

export async function stat (blockstore: ReadableStorage, path: string, options: ReadOptions = {}): Promise<FileStat> {
  const entry = await resolveFile(blockstore, path, options)
  return { cid: entry.cid, size: Number(entry.size), name: entry.name }
}

/** Streams the bytes of a file, from `offset` for `length` bytes. */
export async function * cat (blockstore: ReadableStorage, path: string, options: CatOptions = {}): AsyncGenerator<Uint8Array> {
  const entry = await resolveFile(blockstore, path, options)
  const size = Number(entry.size)
  const offset = options.offset ?? 0
  if (options.length === 0 || offset >= size) return
  const length = Math.min(options.length ?? size, size - offset)
  if (entry.type === 'identity') {
    yield * entry.content({ offset, length })
    return
  }
  yield * readFile(blockstore, entry, offset, length, { signal: options.signal, offline: options.offline })
}

/**
 * Lists a directory; a file lists its chunks, unnamed, and a one-block file
 * nothing, as in Kubo.
 */
export async function ls (blockstore: ReadableStorage, path: string, options: ReadOptions = {}): Promise<Listing> {
  const entry = await resolveEntry(blockstore, path, options)
  const children = entry.type === 'directory'
    ? entry.entries(options)
    : entry.type === 'file' ? entry.node.Links.map(link => ({ name: link.Name ?? '', cid: link.Hash })) : []
  const entries: LsEntry[] = []
  for await (const child of children) {
    const resolved = await exporter(child.cid, blockstore, options)
    const type: LinkType = resolved.type === 'directory' ? 'directory' : 'file'
    entries.push({ name: child.name, cid: child.cid, size: type === 'file' ? Number(resolved.size) : 0, type })
  }
  return { cid: entry.cid, directory: entry.type === 'directory', entries }
}
