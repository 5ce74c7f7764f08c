import * as dagPb from '@ipld/dag-pb'
import drain from 'it-drain'
import { CID } from 'multiformats/cid'
import { blockKey, getBlock } from './blocks.ts'
import { codecByCode } from './codecs.ts'
import { windowedWalker } from './dag-walker.ts'
import { NotFoundError, PinError } from './errors.ts'
import { createUnsafe } from 'multiformats/block'
import type { ReadOptions } from './blocks.ts'
import type { Hold } from './gc.ts'
import type { Blocks, Pin, Pins } from '@helia/interface'
import type { AbortOptions } from '@libp2p/interface'

export type PinType = 'recursive' | 'direct' | 'indirect'
export type PinFilter = PinType | 'all'

export interface PinEntry {
  cid: CID
  type: PinType
}

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
  /** Called with the bytes of each block the pin takes, local or fetched. */
  onBlock?: (bytes: number) => void
}

/** Pins recursively (the whole DAG, fetched if missing) or directly (the one block). */
export async function pinAdd (components: PinComponents, cid: CID, recursive: boolean, options: PinAddOptions = {}): Promise<void> {
  const depth = recursive ? Infinity : 0
  const { hold, fetchTimeoutMs, onBlock, ...rest } = options
  // Held before a direct pin is replaced, so that the block stays between the two.
  await hold?.keep(cid)
  const existing = await components.pins.get(cid, rest).catch(() => undefined)
  if (existing?.depth === depth) return
  if (existing != null) {
    if (!recursive) throw new PinError(`${cid} is already pinned recursively`)
    await drain(components.pins.rm(cid, { ...rest, walker }))
  }
  // Helia keys pins by CIDv1; the metadata keeps the CID as the user gave it, as Kubo lists it.
  await drain(components.pins.add(cid, { ...rest, depth, walker: windowedWalker({ keep: hold?.keep, fetchTimeoutMs, onBlock }), metadata: { cid: cid.toString() } }))
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
 * With `cids`, tells how each is pinned and fails on one that is not.
 */
export async function * pinLs (components: PinComponents, filter: PinFilter = 'all', cids: CID[] = [], options: AbortOptions = {}): AsyncGenerator<PinEntry> {
  if (cids.length > 0) {
    for (const cid of cids) {
      const pin = await components.pins.get(cid, options).catch(() => undefined)
      const type: PinType | undefined = pin != null
        ? (pin.depth === Infinity ? 'recursive' : 'direct')
        : (await components.pins.isPinned(cid, options) ? 'indirect' : undefined)
      if (type == null || (filter !== 'all' && filter !== type)) {
        throw new PinError(`path '${cid}' is not pinned${filter === 'all' ? '' : ` with type ${filter}`}`)
      }
      yield { cid, type }
    }
    return
  }
  const roots: CID[] = []
  const listed = new Set<string>()
  for await (const pin of components.pins.ls(options)) {
    const type: PinType = pin.depth === Infinity ? 'recursive' : 'direct'
    const cid = pinnedCID(pin)
    if (type === 'recursive') roots.push(cid)
    // Listed or not, a direct pin is never also listed as indirect, as in Kubo.
    listed.add(cid.toString())
    if (filter === 'all' || filter === type) yield { cid, type }
  }
  if (filter !== 'all' && filter !== 'indirect') return
  for (const root of roots) {
    for await (const cid of descendants(components.blockstore, root, options)) {
      const key = cid.toString()
      if (listed.has(key) || roots.some(r => r.equals(cid))) continue
      listed.add(key)
      yield { cid, type: 'indirect' }
    }
  }
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
 * Local blocks only: a DAG this node lacks is a NotFoundError at once.
 */
export async function dagSize (blockstore: Pick<Blocks, 'get'>, root: CID, options: AbortOptions = {}): Promise<number> {
  const bytes = await getBlock(blockstore, root, { ...options, offline: true })
  if (root.code === dagPb.code) return dagPb.decode(bytes).Links.reduce((sum, link) => sum + (link.Tsize ?? 0), bytes.byteLength)
  let size = bytes.byteLength
  for await (const cid of descendants(blockstore, root, options)) size += (await getBlock(blockstore, cid, { ...options, offline: true })).byteLength
  return size
}
