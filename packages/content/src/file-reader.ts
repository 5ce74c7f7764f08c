import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { getBlock } from './blocks.ts'
import type { ReadOptions } from './blocks.ts'
import { WrongContentTypeError } from './errors.ts'
import type { Blocks } from '@helia/interface'
import type { RawNode, UnixFSFile } from 'ipfs-unixfs-exporter'
import type { CID } from 'multiformats/cid'

const RAW = 0x55
const IDENTITY = 0x00

/**
 * Children of a node fetched ahead of the reader: enough to keep a peer link
 * busy, few enough to bound memory (16 × 256 KiB per level of the DAG).
 */
export const READ_AHEAD = 16

function dataOf (node: dagPb.PBNode): Uint8Array {
  return node.Data == null ? new Uint8Array(0) : (UnixFS.unmarshal(node.Data).data ?? new Uint8Array(0))
}

/** Bytes of a UnixFS block that are file content: a raw block, or the data of a dag-pb node. */
function ownData (cid: CID, block: Uint8Array): { node?: dagPb.PBNode, data: Uint8Array } {
  if (cid.code === RAW) return { data: block }
  if (cid.code !== dagPb.code) throw new WrongContentTypeError(`${cid} is not a UnixFS file block`)
  const node = dagPb.decode(block)
  return { node, data: dataOf(node) }
}

/**
 * The data of a UnixFS file that overlaps [from, to), in file order, as
 * (file offset, bytes) pairs. Each inner node fetches up to READ_AHEAD of its
 * children before they are reached, whether they are raw leaves or dag-pb
 * nodes, so a slow peer is asked for many blocks at once.
 */
async function * walk (blocks: Pick<Blocks, 'get'>, node: dagPb.PBNode, start: number, from: number, to: number, options: ReadOptions): AsyncGenerator<[number, Uint8Array]> {
  const unixfs = UnixFS.unmarshal(node.Data ?? new Uint8Array(0))
  let offset = start
  if (unixfs.data != null && unixfs.data.byteLength > 0) {
    yield [offset, unixfs.data]
    offset += unixfs.data.byteLength
  }
  const wanted: Array<{ cid: CID, start: number }> = []
  for (const [i, link] of node.Links.entries()) {
    const size = Number(unixfs.blockSizes[i] ?? 0n)
    if (offset + size > from && offset < to) wanted.push({ cid: link.Hash, start: offset })
    offset += size
  }
  const fetching: Array<Promise<Uint8Array>> = []
  const fetch = (cid: CID): Promise<Uint8Array> => {
    const block = cid.multihash.code === IDENTITY ? Promise.resolve(cid.multihash.digest) : getBlock(blocks, cid, options)
    block.catch(() => {})
    return block
  }
  for (const [i, child] of wanted.entries()) {
    while (fetching.length < READ_AHEAD && i + fetching.length < wanted.length) fetching.push(fetch(wanted[i + fetching.length].cid))
    const block = await (fetching.shift() as Promise<Uint8Array>)
    if (child.cid.multihash.code === IDENTITY) {
      yield [child.start, block]
      continue
    }
    const { node: inner, data } = ownData(child.cid, block)
    if (inner == null || inner.Links.length === 0) yield [child.start, data]
    else yield * walk(blocks, inner, child.start, from, to, options)
  }
}

/**
 * Streams bytes [offset, offset + length) of a UnixFS file. Unlike the
 * exporter, which queues every block it reads whether or not the reader keeps
 * up, it reads ahead a bounded number of blocks: memory stays flat for any
 * file size, and a slow client slows the reads down.
 */
export async function * readFile (blocks: Pick<Blocks, 'get'>, file: UnixFSFile | RawNode, offset: number, length: number, options: ReadOptions = {}): AsyncGenerator<Uint8Array> {
  const to = offset + length
  const parts: Iterable<[number, Uint8Array]> | AsyncIterable<[number, Uint8Array]> = file.type === 'raw'
    ? [[0, file.node]]
    : file.node.Links.length === 0 ? [[0, dataOf(file.node)]] : walk(blocks, file.node, 0, offset, to, options)
  for await (const [start, data] of parts) {
    const begin = Math.max(0, offset - start)
    const end = Math.min(data.byteLength, to - start)
    if (end > begin) yield begin === 0 && end === data.byteLength ? data : data.subarray(begin, end)
  }
}
