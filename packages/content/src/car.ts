import * as dagPb from '@ipld/dag-pb'
import { CarBlockIterator } from '@ipld/car/iterator'
import { CarWriter } from '@ipld/car/writer'
import { createUnsafe } from 'multiformats/block'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { getBlock, SOFT_BLOCK_LIMIT } from './blocks.ts'
import { codecByCode, hasherByCode } from './codecs.ts'
import { InvalidParameterError } from './errors.ts'
import { pinAdd } from './pins.ts'
import type { Hold } from './gc.ts'
import type { PinComponents } from './pins.ts'
import type { ReadOptions } from './blocks.ts'
import type { Blocks } from '@helia/interface'
import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface CarImportOptions extends AbortOptions {
  /** Pin each CAR's roots recursively; default true, as Kubo's `pin-roots`. */
  pinRoots?: boolean
  /** Kubo's `allow-big-block`. */
  allowBigBlock?: boolean
}

export type CarImportEvent =
  | { type: 'root', cid: CID, pinError: string }
  | { type: 'stats', blocks: number, bytes: number }

export interface CarImportComponents extends PinComponents {
  blockstore: PinComponents['blockstore'] & Pick<Blocks, 'put' | 'has'>
  hold: Hold
  /** Makes the blocks written durable, before their roots are pinned. */
  sync?: () => Promise<void>
}

/** The links of a block in the order its node holds them, as IPLD's traversal meets them. */
function linksOf (cid: CID, bytes: Uint8Array): CID[] {
  if (cid.code === raw.code) return []
  if (cid.code === dagPb.code) return dagPb.decode(bytes).Links.map(link => link.Hash)
  const codec = codecByCode(cid.code)
  return [...createUnsafe({ cid, bytes, value: codec.decode(bytes), codec }).links()].map(([, link]) => link)
}

/**
 * Streams the DAG under `root` as a CARv1, fetching what is not local unless
 * `offline`, in the order of Kubo's dag/export (go-car's TraverseV1 over
 * ExploreAllRecursively without duplicate puts): depth first, each node's
 * links in order, every block once, identity blocks too. @helia/car walks
 * breadth first, writes a block as often as it is linked and leaves identity
 * blocks out, so a CAR exported again was not the one imported.
 */
export async function * exportCar (blocks: Pick<Blocks, 'get'>, root: CID, options: ReadOptions = {}): AsyncGenerator<Uint8Array> {
  const { writer, out } = CarWriter.create([root])
  let failure: Error | undefined
  const writing = (async () => {
    try {
      const written = new Set<string>()
      const stack = [root]
      for (let cid = stack.pop(); cid != null; cid = stack.pop()) {
        options.signal?.throwIfAborted()
        if (written.has(cid.toString())) continue
        written.add(cid.toString())
        const bytes = cid.multihash.code === identity.code ? cid.multihash.digest : await getBlock(blocks, cid, options)
        await writer.put({ cid, bytes })
        stack.push(...linksOf(cid, bytes).reverse())
      }
    } catch (err: any) {
      failure = err
    } finally {
      await writer.close()
    }
  })()
  yield * out
  await writing
  if (failure != null) throw failure
}

/** Checks a block against its CID's multihash; an InvalidParameterError says why it does not match. */
export async function verifyBlock (cid: CID, bytes: Uint8Array): Promise<void> {
  const code = cid.multihash.code
  const hasher = hasherByCode(code)
  if (hasher == null) throw new InvalidParameterError(`block ${cid} uses a hash function the node does not verify (0x${code.toString(16)})`)
  const digest = await hasher.digest(bytes)
  if (!Buffer.from(digest.bytes).equals(cid.multihash.bytes)) throw new InvalidParameterError(`block ${cid} does not match its bytes`)
}

/**
 * Stores the blocks of each CAR, checking every block against its CID, then
 * pins every CAR's roots as Kubo's dag/import does: each root only if its DAG
 * is all here, with the reason it is not pinned otherwise.
 */
export async function * importCars (components: CarImportComponents, cars: AsyncIterable<AsyncIterable<Uint8Array>>, options: CarImportOptions = {}): AsyncGenerator<CarImportEvent> {
  const roots = new Map<string, CID>()
  let blocks = 0
  let bytes = 0
  for await (const source of cars) {
    let reader: CarBlockIterator
    try {
      reader = await CarBlockIterator.fromIterable(source)
    } catch (err: any) {
      throw new InvalidParameterError(`not a CAR file: ${err.message}`)
    }
    for (const root of await reader.getRoots()) roots.set(root.toString(), root)
    try {
      for await (const block of reader) {
        if (block.bytes.length > SOFT_BLOCK_LIMIT && options.allowBigBlock !== true) {
          throw new InvalidParameterError(`block ${block.cid} is ${block.bytes.length} bytes, over the ${SOFT_BLOCK_LIMIT}-byte limit: allow-big-block takes it`)
        }
        await verifyBlock(block.cid, block.bytes)
        await components.hold.keep(block.cid)
        await components.blockstore.put(block.cid, block.bytes, options)
        blocks++
        bytes += block.bytes.length
      }
    } catch (err: any) {
      if (err instanceof InvalidParameterError || options.signal?.aborted === true) throw err
      throw new InvalidParameterError(`malformed CAR file: ${err.message}`)
    }
  }
  await components.sync?.()
  for (const cid of roots.values()) {
    let pinError = ''
    if (options.pinRoots !== false && !await components.blockstore.has(cid, { signal: options.signal })) {
      // Kubo reads the root before it pins: its words for one that is not there.
      pinError = `ipld: could not find ${cid}`
    } else if (options.pinRoots !== false) {
      try {
        await pinAdd(components, cid, true, { signal: options.signal, offline: true, hold: components.hold })
      } catch (err: any) {
        if (options.signal?.aborted === true) throw err
        pinError = `could not pin ${cid}: ${err.message}`
      }
    }
    yield { type: 'root', cid, pinError }
  }
  yield { type: 'stats', blocks, bytes }
}
