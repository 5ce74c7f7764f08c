import * as dagPb from '@ipld/dag-pb'
import { createUnsafe } from 'multiformats/block'
import { getBlock } from './blocks.ts'
import { codecByCode } from './codecs.ts'
import type { ReadOptions } from './blocks.ts'
import type { Blocks } from '@helia/interface'
import type { CID } from 'multiformats/cid'

const RAW = 0x55

export interface Ref {
  src: CID
  dst: CID
  /** The link's name: a dag-pb link's Name, or the path of a link inside another codec's node. */
  name: string
}

export interface RefsOptions extends ReadOptions {
  /** How many levels of links to follow; Kubo's default is one, and -1 (or Infinity) is all. */
  maxDepth?: number
  /** Each block once: a link to a block already given is left out, and not followed again. */
  unique?: boolean
}

function linksOf (cid: CID, bytes: Uint8Array): Array<{ name: string, cid: CID }> {
  if (cid.code === dagPb.code) return dagPb.decode(bytes).Links.map(link => ({ name: link.Name ?? '', cid: link.Hash }))
  return [...createUnsafe({ cid, bytes, codec: codecByCode(cid.code) }).links()].map(([name, child]) => ({ name, cid: child }))
}

/**
 * The links under `root`, depth first and in link order, as Kubo's refs
 * lists them: each link as its source and destination, just before the links
 * under it.
 */
export async function * refs (blocks: Pick<Blocks, 'get'>, root: CID, options: RefsOptions = {}): AsyncGenerator<Ref> {
  const maxDepth = options.maxDepth == null || options.maxDepth < 0 ? Infinity : options.maxDepth
  type Edge = Ref & { depth: number }
  // Reversed, so that the stack gives them back in link order.
  const under = async (cid: CID, depth: number): Promise<Edge[]> => depth >= maxDepth || cid.code === RAW
    ? []
    : linksOf(cid, await getBlock(blocks, cid, options)).map(link => ({ src: cid, dst: link.cid, name: link.name, depth: depth + 1 })).reverse()
  const seen = new Set<string>()
  const stack = await under(root, 0)
  while (stack.length > 0) {
    const { depth, ...ref } = stack.pop() as Edge
    if (options.unique === true) {
      if (seen.has(ref.dst.toString())) continue
      seen.add(ref.dst.toString())
    }
    yield ref
    stack.push(...await under(ref.dst, depth))
  }
}
