import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { getBlock } from './blocks.ts'
import { WrongContentTypeError } from './errors.ts'
import type { Blocks } from '@helia/interface'
import type { AbortOptions } from '@libp2p/interface'
import type { RawNode, UnixFSFile } from 'ipfs-unixfs-exporter'
import type { CID } from 'multiformats/cid'

const RAW = 0x55
const IDENTITY = 0x00

/** Leaves fetched ahead of the reader: enough to keep bitswap busy, few enough to bound memory (16 × 256 KiB). */
export const READ_AHEAD = 16

interface Piece {
  /** Offset of the piece's first byte in the file. */
  start: number
  bytes: () => Promise<Uint8Array>
}

function leafData (cid: CID, block: Uint8Array): Uint8Array {
  if (cid.code === RAW) return block
  const node = dagPb.decode(block)
  return node.Data == null ? new Uint8Array(0) : (UnixFS.unmarshal(node.Data).data ?? new Uint8Array(0))
}

/**
 * The pieces of a UnixFS file that overlap [from, to), in file order. Inner
 * nodes are read as the walk reaches them; leaves are left to the caller to
 * fetch, so that it can fetch several at once.
 */
async function * pieces (blocks: Pick<Blocks, 'get'>, cid: CID, start: number, from: number, to: number, options: AbortOptions, known?: dagPb.PBNode): AsyncGenerator<Piece> {
  if (cid.multihash.code === IDENTITY) {
    yield { start, bytes: async () => cid.multihash.digest }
    return
  }
  if (cid.code === RAW) {
    yield { start, bytes: async () => getBlock(blocks, cid, options) }
    return
  }
  if (cid.code !== dagPb.code) throw new WrongContentTypeError(`${cid} is not a UnixFS file block`)
  if (known == null) {
    const block = await getBlock(blocks, cid, options)
    if (dagPb.decode(block).Links.length === 0) {
      yield { start, bytes: async () => leafData(cid, block) }
      return
    }
  }
  const node = known ?? dagPb.decode(await getBlock(blocks, cid, options))
  const unixfs = UnixFS.unmarshal(node.Data ?? new Uint8Array(0))
  let offset = start
  if (unixfs.data != null && unixfs.data.byteLength > 0) {
    const data = unixfs.data
    yield { start: offset, bytes: async () => data }
    offset += data.byteLength
  }
  for (const [i, link] of node.Links.entries()) {
    const size = Number(unixfs.blockSizes[i] ?? 0n)
    if (offset + size > from && offset < to) yield * pieces(blocks, link.Hash, offset, from, to, options)
    offset += size
    if (offset >= to) return
  }
}

/**
 * Streams bytes [offset, offset + length) of a UnixFS file. Unlike the
 * exporter, which queues every block it reads whether or not the reader keeps
 * up, it reads ahead at most READ_AHEAD leaves: memory stays flat for any file
 * size and a slow client slows the reads down.
 */
export async function * readFile (blocks: Pick<Blocks, 'get'>, file: UnixFSFile | RawNode, offset: number, length: number, options: AbortOptions = {}): AsyncGenerator<Uint8Array> {
  const to = offset + length
  const walk = file.type === 'raw'
    ? (async function * () { yield { start: 0, bytes: async () => file.node } })()
    : pieces(blocks, file.cid, 0, offset, to, options, file.node)
  const window: Array<{ piece: Piece, bytes: Promise<Uint8Array> }> = []
  let walked = false
  const fill = async (): Promise<void> => {
    while (!walked && window.length < READ_AHEAD) {
      const next = await walk.next()
      if (next.done === true) {
        walked = true
        return
      }
      const bytes = next.value.bytes()
      bytes.catch(() => {})
      window.push({ piece: next.value, bytes })
    }
  }
  try {
    await fill()
    while (window.length > 0) {
      const { piece, bytes } = window.shift() as { piece: Piece, bytes: Promise<Uint8Array> }
      const data = await bytes
      await fill()
      const begin = Math.max(0, offset - piece.start)
      const end = Math.min(data.byteLength, to - piece.start)
      if (end > begin) yield begin === 0 && end === data.byteLength ? data : data.subarray(begin, end)
    }
  } finally {
    await walk.return(undefined)
  }
}
