import { car } from '@helia/car'
import { CarBlockIterator } from '@ipld/car/iterator'
import { SOFT_BLOCK_LIMIT } from './blocks.ts'
import { hasherByCode } from './codecs.ts'
import { InvalidParameterError } from './errors.ts'
import { pinAdd } from './pins.ts'
import type { Hold } from './gc.ts'
import type { PinComponents } from './pins.ts'
import type { CarComponents } from '@helia/car'
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
  blockstore: PinComponents['blockstore'] & Pick<Blocks, 'put'>
  hold: Hold
}

/** Streams the DAG under `root` as a CARv1, fetching what is not local unless `offline`. */
export function exportCar (components: CarComponents, root: CID, options: AbortOptions & { offline?: boolean } = {}): AsyncGenerator<Uint8Array> {
  return car(components).export(root, options)
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
  for (const cid of roots.values()) {
    let pinError = ''
    if (options.pinRoots !== false) {
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
