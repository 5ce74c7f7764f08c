import * as dagPb from '@ipld/dag-pb'
import drain from 'it-drain'
import { CID } from 'multiformats/cid'
import { blockKey, getBlock } from './blocks.ts'
import { codecByCode } from './codecs.ts'
import { windowedWalker } from './dag-walker.ts'
import { InvalidParameterError, NotFoundError, PinError } from './errors.ts'
import { createUnsafe } from 'multiformats/block'
import type { ReadOptions } from './blocks.ts'
import type { Hold } from './gc.ts'
import type { PinNote } from './pin-store.ts'
import type { Blocks, Pin, Pins } from '@helia/interface'
import type { AbortOptions } from '@libp2p/interface'

export type PinType = 'recursive' | 'direct' | 'indirect'
export type PinFilter = PinType | 'all'

export interface PinEntry {
  cid: CID
  type: PinType
  /** The name a recursive or direct pin was given. */
  name?: string
  /** For an indirect pin asked for by path: the recursive pin it is under, as Kubo's "indirect through <cid>". */
  through?: CID
}

export interface PinLsOptions extends AbortOptions {
  /** Only pins whose name contains this (case-sensitive), as Kubo's `pin ls --name`; indirect pins have none. */
  name?: string
}

/** A CID asked for by pin ls, with the path it came from, which Kubo's errors name. */
export interface PinTarget {
  cid: CID
  path: string
}

/** Pin names are kept in the pin's metadata; Kubo's datastore keys limit them the same way. */
const MAX_PIN_NAME_BYTES = 255

export interface PinComponents {
  pins: Pins
  blockstore: Pick<Blocks, 'get'>
}

const RAW = 0x55

const walker = windowedWalker()

export interface PinAddOptions extends ReadOptions {
  /** Keeps every block the pin reads from GC until the caller releases it, after the pin is made. */
  hold?: Hold
  /** How long a block that is not local may take to arrive (see boundedFetches). */
  fetchTimeoutMs?: number
  /** A name for the pin, as Kubo's `pin add --name`. */
  name?: string
  /** Called with the bytes of each block the pin takes, local or fetched. */
  onBlock?: (bytes: number) => void
  /** Local blocks known to link to nothing, which the pin need not read (see WindowedWalkerInit). */
  linkless?: (cid: CID) => boolean
  /** The caller's records about the pin, written with it, or when it exists already (see PinStoreAddOptions). */
  notes?: PinNote[]
}

/** Pins recursively (the whole DAG, fetched if missing) or directly (the one block). */
export async function pinAdd (components: PinComponents, cid: CID, recursive: boolean, options: PinAddOptions = {}): Promise<void> {
  const depth = recursive ? Infinity : 0
  // `notes` stays in `rest`: every pins.add below hands them to the PinStore.
  const { hold, fetchTimeoutMs, name, onBlock, linkless, ...rest } = options
  if (name != null && Buffer.byteLength(name) > MAX_PIN_NAME_BYTES) throw new InvalidParameterError(`a pin name is at most ${MAX_PIN_NAME_BYTES} bytes`)
  // Held before a direct pin is replaced, so that the block stays between the two.
  await hold?.keep(cid)
  // Helia keys pins by CIDv1; the metadata keeps the CID as the user gave it, as Kubo lists it.
  const metadata: Record<string, string> = { cid: cid.toString() }
  if (name != null && name !== '') metadata.name = name
  const add = async (): Promise<void> => drain(components.pins.add(cid, { ...rest, depth, walker: windowedWalker({ keep: hold?.keep, fetchTimeoutMs, onBlock, linkless }), metadata }))
  // Most pins are new: the store refuses one that exists before it reads any block, and
  // only then is the existing pin read, which for a new one was a lookup for nothing.
  try {
    await add()
    return
  } catch (err: any) {
    if (err.name !== 'AlreadyPinnedError') throw err
  }
  const existing = await components.pins.get(cid, rest).catch(() => undefined)
  if (existing?.depth === depth) {
    // Pinned again under another name, Kubo renames the pin.
    if (name != null && name !== '' && existing.metadata.name !== name) await components.pins.setMetadata(cid, { ...existing.metadata, name }, rest)
    return
  }
  if (existing != null) {
    if (!recursive) throw new PinError(`${cid} is already pinned recursively`)
    await drain(components.pins.rm(cid, { ...rest, walker }))
  }
  try {
    await add()
  } catch (err: any) {
    // A concurrent call (two requests storing the same prompt) pinned it since this one looked: the same pin is no failure.
    if (err.name !== 'AlreadyPinnedError' || (await components.pins.get(cid, rest).catch(() => undefined))?.depth !== depth) throw err
  }
}

/**
 * Kubo's pin update: pins `to` recursively with the name `from` had, then
 * unpins `from` unless told to keep it. Blocks the two share are read once.
 */
export async function pinUpdate (components: PinComponents, from: CID, to: CID, options: PinAddOptions & { unpin?: boolean } = {}): Promise<void> {
  const existing = await components.pins.get(from, options).catch(() => undefined)
  if (existing?.depth !== Infinity) throw new PinError('\'from\' cid was not recursively pinned already')
  // Helia keys pins by multihash: the same block under another CID is the same pin.
  if (blockKey(from) === blockKey(to)) return
  await pinAdd(components, to, true, { ...options, name: pinName(existing) })
  if (options.unpin !== false) await pinRm(components, from, true, options)
}

function pinName (pin: Pin): string | undefined {
  return typeof pin.metadata.name === 'string' ? pin.metadata.name : undefined
}

/** The CID of a pin as it was given (Helia keeps CIDv1). */
export function pinnedCID (pin: Pin): CID {
  return typeof pin.metadata.cid === 'string' ? CID.parse(pin.metadata.cid) : pin.cid
}

export async function pinRm (components: PinComponents, cid: CID, recursive: boolean, options: AbortOptions = {}): Promise<void> {
  const existing = await components.pins.get(cid, options).catch(() => undefined)
  if (existing == null) {
    const indirect = await components.pins.isPinned(cid, options)
    throw new PinError(indirect ? `${cid} is pinned indirectly, not directly or recursively` : `${cid} is not pinned`)
  }
  if (!recursive && existing.depth === Infinity) throw new PinError(`${cid} is pinned recursively`)
  try {
    // Offline: unpinning never fetches. Helia drops the pin before it walks the DAG, so a
    // block missing under it leaves nothing pinned that GC would keep.
    await drain(components.pins.rm(cid, { ...options, walker, offline: true } as AbortOptions))
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err
  }
}

/**
 * Lists pins as Kubo does: recursive and direct pins from the pin store, and
 * indirect ones (blocks under a recursive pin) by walking the local DAGs.
 * With `targets`, tells how each is pinned and fails on one that is not; as
 * Kubo's IsPinnedWithType, a type asked for is checked alone, so a block
 * pinned directly under a recursive pin is found as direct and as indirect.
 */
export async function * pinLs (components: PinComponents, filter: PinFilter = 'all', targets: PinTarget[] = [], options: PinLsOptions = {}): AsyncGenerator<PinEntry> {
  const named = (entry: PinEntry): boolean => options.name == null || (entry.name?.includes(options.name) ?? false)
  if (targets.length > 0) {
    for (const { cid, path } of targets) {
      const entry = await pinnedAs(components, cid, filter, options)
      if (entry == null) throw new PinError(`path '${path}' is not pinned`)
      if (named(entry)) yield entry
    }
    return
  }
  const roots: CID[] = []
  const listed = new Set<string>()
  for await (const pin of components.pins.ls(options)) {
    const type: PinType = pin.depth === Infinity ? 'recursive' : 'direct'
    const entry: PinEntry = { cid: pinnedCID(pin), type, ...nameOf(pin) }
    if (type === 'recursive') roots.push(entry.cid)
    // Listed or not, a direct pin is never also listed as indirect, as in Kubo.
    listed.add(entry.cid.toString())
    if ((filter === 'all' || filter === type) && named(entry)) yield entry
  }
  if ((filter !== 'all' && filter !== 'indirect') || options.name != null) return
  for (const root of roots) {
    for await (const cid of descendants(components.blockstore, root, options)) {
      const key = cid.toString()
      if (listed.has(key) || roots.some(r => r.equals(cid))) continue
      listed.add(key)
      yield { cid, type: 'indirect' }
    }
  }
}

function nameOf (pin: Pin): { name?: string } {
  const name = pinName(pin)
  return name == null ? {} : { name }
}

/** How `cid` is pinned, among the types `filter` allows, in Kubo's order: recursive, direct, indirect. */
async function pinnedAs (components: PinComponents, cid: CID, filter: PinFilter, options: AbortOptions): Promise<PinEntry | undefined> {
  const pin = await components.pins.get(cid, options).catch(() => undefined)
  if (pin != null) {
    const type: PinType = pin.depth === Infinity ? 'recursive' : 'direct'
    if (filter === 'all' || filter === type) return { cid, type, ...nameOf(pin) }
  }
  if (filter !== 'all' && filter !== 'indirect') return undefined
  if (!await components.pins.isPinned(cid, options)) return undefined
  // isPinned also holds for a pin's own root: only a recursive pin above it makes it indirect.
  const key = blockKey(cid)
  for await (const root of components.pins.ls(options)) {
    if (root.depth !== Infinity || blockKey(root.cid) === key) continue
    for await (const child of descendants(components.blockstore, root.cid, { ...options, skipMissing: true })) {
      if (blockKey(child) === key) return { cid, type: 'indirect', through: pinnedCID(root) }
    }
  }
  return undefined
}

export interface DescendantsOptions extends AbortOptions {
  /** Blocks already walked, by multihash: neither yielded nor walked again. Default: a set of this walk's own. */
  seen?: Set<string>
  /** Levels below the root; default all. */
  depth?: number
  /** Walk past blocks that are not local instead of failing. */
  skipMissing?: boolean
}

/** Every block under `root`, depth first, read from the local store only. */
export async function * descendants (blockstore: Pick<Blocks, 'get'>, root: CID, options: DescendantsOptions = {}): AsyncGenerator<CID> {
  const { seen = new Set<string>(), depth = Infinity, skipMissing = false } = options
  const stack: Array<[CID, number]> = [[root, 0]]
  while (stack.length > 0) {
    const [cid, level] = stack.pop() as [CID, number]
    if (cid.code === RAW || level >= depth) continue
    let bytes: Uint8Array
    try {
      bytes = await getBlock(blockstore, cid, { ...options, offline: true })
    } catch (err: any) {
      if (skipMissing && err.name === 'NotFoundError') continue
      throw err
    }
    for (const [, child] of createUnsafe({ cid, bytes, codec: codecByCode(cid.code) }).links()) {
      const key = blockKey(child)
      if (seen.has(key)) continue
      seen.add(key)
      yield child
      stack.push([child, level + 1])
    }
  }
}

/**
 * The bytes of the DAG under `root` as Kubo's CumulativeSize counts them: a
 * dag-pb node's own bytes and the sizes its links carry, so that a unixfs
 * model or file costs one block read; a DAG of another codec is walked.
 * Local blocks only: a root this node lacks is undefined, found by one lookup
 * without an exception (a cluster node asks for every pin sent to it, and
 * Helia's offline get threw two errors for each it did not hold); a missing
 * block under a root that is here is a NotFoundError.
 */
export async function dagSize (blockstore: Pick<Blocks, 'get' | 'has'>, root: CID, options: AbortOptions = {}): Promise<number | undefined> {
  if (!await blockstore.has(root, options)) return undefined
  const bytes = await getBlock(blockstore, root, { ...options, offline: true })
  if (root.code === dagPb.code) return dagPb.decode(bytes).Links.reduce((sum, link) => sum + (link.Tsize ?? 0), bytes.byteLength)
  let size = bytes.byteLength
  for await (const cid of descendants(blockstore, root, options)) size += (await getBlock(blockstore, cid, { ...options, offline: true })).byteLength
  return size
}
