import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { importer } from 'ipfs-unixfs-importer'
import { pushable } from 'it-pushable'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { InvalidParameterError } from './errors.ts'
import { heldPut } from './gc.ts'
import { beside } from './helia-node.ts'
import { fileLeafImporter } from './leaf-importer.ts'
import { pinAdd } from './pins.ts'
import type { BlockGuard } from './gc.ts'
import type { PinComponents } from './pins.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { ImportCandidate, ImporterOptions, WritableStorage } from 'ipfs-unixfs-importer'
import type { Version } from 'multiformats/cid'

type FileBuilder = NonNullable<ImporterOptions['fileBuilder']>
const { defaultFileBuilder } = await beside<{ defaultFileBuilder: FileBuilder }>('ipfs-unixfs-importer', 'dag-builder/file.js')

/**
 * The importer leaves a file without a name out of every directory and out of
 * its results' paths; Kubo's adder names it by its CID, which puts it in a
 * wrapping directory under that name and makes it a root of its own. The
 * original path is named too, or the importer would take the other parts for
 * one tree and wrap them all.
 */
const namedByCid: FileBuilder = async (file, blockstore, options) => {
  const built = await defaultFileBuilder(file, blockstore, options)
  if (built.path == null || built.path === '') {
    built.path = built.cid.toString()
    built.originalPath = built.path
  }
  return built
}

export interface AddOptions extends AbortOptions {
  /**
   * Pin the top-level results recursively; default true, as Kubo. A function
   * is asked once every file has been read.
   */
  pin?: boolean | (() => boolean)
  cidVersion?: Version
  /** Defaults to true with CIDv1 and false with CIDv0, as Kubo. */
  rawLeaves?: boolean
  /** Kubo's chunker syntax; only `size-N` is supported. */
  chunker?: string
  onlyHash?: boolean
  wrapWithDirectory?: boolean
  /** Emit `progress` events while files are read. */
  progress?: boolean
}

export type AddEvent =
  | { type: 'progress', name: string, bytes: number }
  | { type: 'entry', name: string, cid: CID, size: number }

/** Kubo caps chunks at 1 MiB + 256 KiB so that a leaf fits in a bitswap message. */
const MAX_CHUNK_SIZE = 1_048_576 + 262_144

export function parseChunker (chunker: string | undefined): number {
  if (chunker == null || chunker === '') return 262_144
  const match = /^size-(\d+)$/.exec(chunker)
  const size = match == null ? NaN : Number(match[1])
  if (!Number.isSafeInteger(size) || size <= 0 || size > MAX_CHUNK_SIZE) {
    throw new InvalidParameterError(`unsupported chunker ${JSON.stringify(chunker)}: use size-N with 0 < N <= ${MAX_CHUNK_SIZE}`)
  }
  return size
}

/** A sink that only hashes: what `only-hash` imports into. */
const hashOnly: WritableStorage = { put: async (cid) => cid }

function isTopLevel (path: string | undefined, wrap: boolean): boolean {
  return wrap ? path === '' : path != null && !path.includes('/')
}

/** The CID and size of an empty directory, built as the importer builds it. */
async function emptyDirectory (candidate: ImportCandidate, cidVersion: Version): Promise<{ cid: CID, size: number }> {
  const block = dagPb.encode(dagPb.prepare({ Data: new UnixFS({ type: 'directory', mtime: candidate.mtime, mode: candidate.mode }).marshal() }))
  const digest = await sha256.digest(block)
  return { cid: cidVersion === 0 ? CID.createV0(digest) : CID.createV1(dagPb.code, digest), size: block.length }
}

const parentOf = (path: string): string => path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : ''

export interface AddComponents extends PinComponents {
  blockstore: PinComponents['blockstore'] & WritableStorage
  /** Keeps what the add writes from GC until it is pinned. */
  guard: BlockGuard
}

/**
 * Imports files and directories with Kubo's defaults (CIDv0, 256 KiB chunks,
 * balanced DAG of 174 links), so that the same bytes get the same CIDs. Yields
 * progress while reading and one entry per file and directory, root last.
 */
export async function * addAll (components: AddComponents, source: AsyncIterable<ImportCandidate> | Iterable<ImportCandidate>, options: AddOptions = {}): AsyncGenerator<AddEvent> {
  const cidVersion = options.cidVersion ?? 0
  if (cidVersion !== 0 && cidVersion !== 1) {
    throw new InvalidParameterError(`cid-version must be 0 or 1, not ${String(cidVersion)}`)
  }
  const chunkSize = parseChunker(options.chunker)
  const wrap = options.wrapWithDirectory ?? false
  const events = pushable<AddEvent>({ objectMode: true })
  const roots: CID[] = []

  // The importer builds empty directories into their parents but reports none
  // of them; Kubo reports each, so they are noted here and told before their parent.
  const emptyDirs = new Map<string, ImportCandidate>()
  const noted = (async function * () {
    for await (const candidate of source) {
      if (!('content' in candidate && candidate.content != null) && candidate.path != null) {
        emptyDirs.set(candidate.path.split('/').filter(p => p !== '' && p !== '.').join('/'), candidate)
      }
      yield candidate
    }
  })()

  // Each block is held before it is written, so that a GC running beside the add keeps it.
  const hold = components.guard.hold()
  const held: WritableStorage = { put: heldPut(components.blockstore, hold) }
  const run = async (): Promise<void> => {
    const rawLeaves = options.rawLeaves ?? cidVersion === 1
    const entries = importer(noted, options.onlyHash === true ? hashOnly : held, {
      profile: 'unixfs-v0-2015',
      cidVersion,
      rawLeaves,
      bufferImporter: rawLeaves ? undefined : fileLeafImporter(cidVersion),
      fileBuilder: namedByCid,
      chunker: fixedSize({ chunkSize }),
      wrapWithDirectory: wrap,
      // Multipart parts arrive one after another, so files are read in order.
      fileImportConcurrency: 1,
      onProgress: options.progress === true
        ? (evt) => {
            if (evt.type === 'unixfs:importer:progress:file:read') {
              // bytesRead already counts every byte of the file read so far.
              events.push({ type: 'progress', name: evt.detail.path ?? '', bytes: Number(evt.detail.bytesRead) })
            }
          }
        : undefined
    })
    for await (const entry of entries) {
      options.signal?.throwIfAborted()
      emptyDirs.delete(entry.path ?? '')
      if (entry.unixfs?.isDirectory() === true) {
        for (const [path, candidate] of emptyDirs) {
          if (parentOf(path) !== (entry.path ?? '')) continue
          emptyDirs.delete(path)
          events.push({ type: 'entry', name: path, ...await emptyDirectory(candidate, cidVersion) })
        }
      }
      if (isTopLevel(entry.path, wrap)) roots.push(entry.cid)
      events.push({ type: 'entry', name: entry.path ?? '', cid: entry.cid, size: Number(entry.size) })
    }
    const pin = typeof options.pin === 'function' ? options.pin() : options.pin
    if (pin !== false && options.onlyHash !== true) {
      for (const cid of roots) await pinAdd(components, cid, true, { ...options, hold })
    }
  }

  run().finally(() => { hold.release() }).then(() => events.end(), (err) => events.end(err))
  yield * events
}
