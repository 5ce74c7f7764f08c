import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { importer } from 'ipfs-unixfs-importer'
import { trickle } from 'ipfs-unixfs-importer/layout'
import { pushable } from 'it-pushable'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { blockKey } from './blocks.ts'
import { hasherByName, MAX_IDENTITY_DIGEST } from './codecs.ts'
import { InvalidParameterError } from './errors.ts'
import { heldPut } from './gc.ts'
import { beside } from './helia-node.ts'
import { fileLeafImporter, leafChunker } from './leaf-importer.ts'
import { pinAdd } from './pins.ts'
import { Rehasher } from './rehash.ts'
import type { BlockGuard } from './gc.ts'
import type { PinComponents } from './pins.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Mtime } from 'ipfs-unixfs'
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
  /** Kubo's `hash`: the multihash of every block; one other than sha2-256 means CIDv1, as Kubo. */
  hash?: string
  /** Kubo's `trickle`: the trickle DAG layout instead of the balanced one. */
  trickle?: boolean
  /**
   * A file as Kubo's files/write builds one through its DagModifier: the
   * trickle layout, dag-pb leaves of UnixFS type raw (not file), and a root
   * above even a single leaf.
   */
  modifierLayout?: boolean
  /** Kubo's `inline`: blocks of at most `inlineLimit` bytes (default 32) get identity CIDs. */
  inline?: boolean
  inlineLimit?: number
  /** POSIX mode and modification time stored in every entry that does not bring its own. */
  mode?: number
  mtime?: Mtime
  /** Kubo's `pin-name`: the name of the roots' pins. */
  pinName?: string
  /**
   * Files imported at once; default 1. Many small files given in memory
   * add in a fraction of the time with more, since each waits on its block's
   * write; a multipart upload's parts arrive one after another anyway.
   */
  fileConcurrency?: number
}

export type AddEvent =
  | { type: 'progress', name: string, bytes: number }
  | { type: 'entry', name: string, cid: CID, size: number, mode?: number, mtime?: Mtime }

/** Kubo's default `inline-limit`. */
const INLINE_LIMIT = 32

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

/** Kubo's bounds: a mode is 12 bits of permissions and type flags; nanoseconds are below a second. */
function checkMetadata (options: AddOptions): void {
  if (options.mode != null && (!Number.isInteger(options.mode) || options.mode < 0 || options.mode > 0o7777)) {
    throw new InvalidParameterError(`mode must be an octal number up to 7777, not ${options.mode.toString(8)}`)
  }
  const nsecs = options.mtime?.nsecs
  if (nsecs != null && (!Number.isInteger(nsecs) || nsecs < 0 || nsecs > 999_999_999)) {
    throw new InvalidParameterError(`mtime-nsecs must be 0 to 999999999, not ${nsecs}`)
  }
}

const parentOf = (path: string): string => path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : ''

export interface AddComponents extends PinComponents {
  blockstore: PinComponents['blockstore'] & WritableStorage
  /** Keeps what the add writes from GC until it is pinned. */
  guard: BlockGuard
  /** Makes the blocks written durable: called before the add pins and ends. */
  sync?: () => Promise<void>
}

/**
 * Imports files and directories with Kubo's defaults (CIDv0, 256 KiB chunks,
 * balanced DAG of 174 links), so that the same bytes get the same CIDs. Yields
 * progress while reading and one entry per file and directory, root last.
 */
export async function * addAll (components: AddComponents, source: AsyncIterable<ImportCandidate> | Iterable<ImportCandidate>, options: AddOptions = {}): AsyncGenerator<AddEvent> {
  const hasher = hasherByName(options.hash ?? 'sha2-256')
  const sha256Only = hasher.code === sha256.code
  if (options.cidVersion === 0 && !sha256Only) throw new InvalidParameterError('CIDv0 only supports sha2-256')
  const cidVersion = options.cidVersion ?? (sha256Only ? 0 : 1)
  if (cidVersion !== 0 && cidVersion !== 1) {
    throw new InvalidParameterError(`cid-version must be 0 or 1, not ${String(cidVersion)}`)
  }
  const inlineLimit = options.inline === true ? (options.inlineLimit ?? INLINE_LIMIT) : undefined
  if (inlineLimit != null && (!Number.isInteger(inlineLimit) || inlineLimit < 0 || inlineLimit > MAX_IDENTITY_DIGEST)) {
    throw new InvalidParameterError(`inline-limit must be 0 to ${MAX_IDENTITY_DIGEST}, not ${inlineLimit}`)
  }
  checkMetadata(options)
  const chunkSize = parseChunker(options.chunker)
  const wrap = options.wrapWithDirectory ?? false
  const events = pushable<AddEvent>({ objectMode: true })
  const roots: CID[] = []

  // The importer builds empty directories into their parents but reports none
  // of them; Kubo reports each, so they are noted here and told before their parent.
  // The metadata of each entry is noted too, for Kubo's Mode and Mtime output fields.
  const emptyDirs = new Map<string, ImportCandidate>()
  // A nameless file is reported under its CID, so its metadata is kept in order instead.
  const metadata = new Map<string, { mode?: number, mtime?: Mtime }>()
  const nameless: Array<{ mode?: number, mtime?: Mtime }> = []
  const noted = (async function * () {
    for await (const given of source) {
      const candidate = { ...given, mode: given.mode ?? options.mode, mtime: given.mtime ?? options.mtime }
      const path = candidate.path?.split('/').filter(p => p !== '' && p !== '.').join('/')
      const meta = candidate.mode != null || candidate.mtime != null ? { mode: candidate.mode, mtime: candidate.mtime } : {}
      if (path == null || path === '') nameless.push(meta)
      else {
        if (!('content' in candidate && candidate.content != null)) emptyDirs.set(path, candidate)
        metadata.set(path, meta)
      }
      yield candidate
    }
  })()

  // Each block is held before it is written, so that a GC running beside the add keeps it.
  const hold = components.guard.hold()
  const put = heldPut(components.blockstore, hold)
  // The blocks written that link to nothing, by multihash, which the pin then need not read back.
  const leaves = new Set<string>()
  const held: WritableStorage = {
    put: async (cid, bytes, options) => {
      if (cid.code === raw.code || (cid.code === dagPb.code && bytes instanceof Uint8Array && dagPb.decode(bytes).Links.length === 0)) leaves.add(blockKey(cid))
      return put(cid, bytes, options)
    }
  }
  const sink = options.onlyHash === true ? hashOnly : held
  const rehasher = sha256Only && inlineLimit == null ? undefined : new Rehasher(sink, { hasher, inlineLimit })
  const cidOf = (cid: CID): CID => rehasher?.cidOf(cid) ?? cid
  const sizeOf = (cid: CID, size: number): number => rehasher?.sizeOf(cid, size) ?? size
  const run = async (): Promise<void> => {
    const rawLeaves = options.rawLeaves ?? cidVersion === 1
    const modifier = options.modifierLayout === true
    const entries = importer(noted, rehasher?.store ?? sink, {
      profile: 'unixfs-v0-2015',
      cidVersion,
      rawLeaves,
      bufferImporter: rawLeaves || modifier ? undefined : fileLeafImporter(cidVersion),
      leafType: modifier ? 'raw' : 'file',
      reduceSingleLeafToSelf: !modifier,
      fileBuilder: namedByCid,
      chunker: rawLeaves || modifier ? fixedSize({ chunkSize }) : leafChunker(chunkSize),
      layout: options.trickle === true || modifier ? trickle() : undefined,
      wrapWithDirectory: wrap,
      // Multipart parts arrive one after another, so files are read in order unless the caller holds them all.
      fileImportConcurrency: options.fileConcurrency ?? 1,
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
          const empty = await emptyDirectory(candidate, cidVersion)
          events.push({ type: 'entry', name: path, cid: cidOf(empty.cid), size: sizeOf(empty.cid, empty.size), ...metadata.get(path) })
        }
      }
      const cid = cidOf(entry.cid)
      if (isTopLevel(entry.path, wrap)) roots.push(cid)
      const meta = metadata.get(entry.path ?? '') ?? (entry.path === entry.cid.toString() ? nameless.shift() : undefined)
      events.push({ type: 'entry', name: entry.path ?? '', cid, size: sizeOf(entry.cid, Number(entry.size)), ...meta })
    }
    if (options.onlyHash !== true) await components.sync?.()
    const pin = typeof options.pin === 'function' ? options.pin() : options.pin
    if (pin !== false && options.onlyHash !== true) {
      for (const cid of roots) await pinAdd(components, cid, true, { ...options, hold, name: options.pinName, linkless: cid => leaves.has(blockKey(cid)) })
    }
  }

  run().finally(() => { hold.release() }).then(() => events.end(), (err) => events.end(err))
  yield * events
}
