import { createHash } from 'node:crypto'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import * as varint from 'uint8-varint'
import type { BufferImporter } from 'ipfs-unixfs-importer'
import type { Chunker } from 'ipfs-unixfs-importer/chunker'
import type { Version } from 'multiformats/cid'

/** Where the chunk goes in the dag-pb block of a file leaf of `size` bytes, and how long the block is. */
function leafLayout (size: number): { sizeLength: number, unixfsLength: number, head: number, total: number } {
  const sizeLength = varint.encodingLength(size)
  // Type (2 bytes), Data (tag, length, bytes; left out when empty, as UnixFS.marshal does) and filesize (tag, varint).
  const dataLength = size === 0 ? 0 : 1 + sizeLength + size
  const unixfsLength = 2 + dataLength + 1 + sizeLength
  const total = 1 + varint.encodingLength(unixfsLength) + unixfsLength
  return { sizeLength, unixfsLength, head: total - 1 - sizeLength - size, total }
}

/** The buffers leafChunker made, each a leaf's length with its chunk where encodeFileLeaf puts it. */
const laidOut = new WeakSet<ArrayBufferLike>()

/**
 * The importer's fixed-size chunker, except that each chunk is read into the
 * buffer of its future leaf, between the room for the leaf's header and its
 * trailer, so that encodeFileLeaf only writes those around it: the stock
 * chunker joins the parts it reads into a new buffer, which the leaf copies
 * again. The chunk's bytes are the same, so the CIDs are too.
 */
export function leafChunker (chunkSize: number): Chunker {
  return async function * (source) {
    const { head, total } = leafLayout(chunkSize)
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool.
    let leaf = Buffer.allocUnsafeSlow(total)
    let filled = 0
    let emitted = false
    for await (const buffer of source) {
      for (let at = 0; at < buffer.byteLength;) {
        const n = Math.min(chunkSize - filled, buffer.byteLength - at)
        leaf.set(buffer.subarray(at, at + n), head + filled)
        filled += n
        at += n
        if (filled === chunkSize) {
          laidOut.add(leaf.buffer)
          yield leaf.subarray(head, head + chunkSize)
          emitted = true
          leaf = Buffer.allocUnsafeSlow(total)
          filled = 0
        }
      }
    }
    // The last chunk is shorter, so its leaf's header is too: encodeFileLeaf copies it.
    if (!emitted || filled > 0) yield leaf.subarray(head, head + filled)
  }
}

/**
 * The dag-pb block of a UnixFS file leaf, `{Data: UnixFS{Type: File, Data,
 * filesize}}`, written into one buffer with one copy of the chunk, or none
 * when leafChunker read the chunk into its place already. The stock importer
 * marshals UnixFS and then encodes dag-pb, two full copies per chunk, and the
 * garbage of both was a fifth of the time of an add. The bytes are the same,
 * so the CIDs are too (the add tests check them against Kubo's).
 */
export function encodeFileLeaf (chunk: Uint8Array): Uint8Array {
  const size = chunk.byteLength
  const { sizeLength, unixfsLength, head, total } = leafLayout(size)
  const inPlace = laidOut.has(chunk.buffer) && chunk.byteOffset === head && chunk.buffer.byteLength === total
  const block = inPlace ? Buffer.from(chunk.buffer, 0, total) : Buffer.allocUnsafe(total)
  let offset = 0
  block[offset++] = 0x0a // PBNode.Data, length-delimited
  varint.encodeUint8Array(unixfsLength, block, offset)
  offset += varint.encodingLength(unixfsLength)
  block[offset++] = 0x08 // UnixFS.Type
  block[offset++] = 0x02 // File
  if (size > 0) {
    block[offset++] = 0x12 // UnixFS.Data, length-delimited
    varint.encodeUint8Array(size, block, offset)
    offset += sizeLength
    if (!inPlace) block.set(chunk, offset)
    offset += size
  }
  block[offset++] = 0x18 // UnixFS.filesize
  varint.encodeUint8Array(size, block, offset)
  return block
}

/**
 * The importer's leaf step for dag-pb leaves of type file (Kubo's default),
 * with encodeFileLeaf. SHA-256 runs here, on the leaf just written and still
 * in cache: WebCrypto's digest would run it in libuv's pool, but first copies
 * the leaf into fresh memory on this thread, which cost more than the hash
 * (300 against 200 ms of this thread a 200 MB add). A worker thread would take
 * the leaf without a copy, but carries its own V8 and Node (~25 MB resident),
 * and on two cores the add is bound by all of its CPU, not this thread's.
 */
export function fileLeafImporter (cidVersion: Version): BufferImporter {
  return async function * (file, blockstore) {
    for await (const chunk of file.content) {
      yield async () => {
        const block = encodeFileLeaf(chunk)
        const digest = Digest.create(sha256.code, createHash('sha256').update(block).digest())
        const cid = cidVersion === 0 ? CID.createV0(digest) : CID.createV1(dagPb.code, digest)
        await blockstore.put(cid, block)
        // The layout keeps every leaf of a parent until it builds the parent, and it
        // only needs each leaf's file size: recorded as a block size, it does not
        // hold on to the chunk (174 × 256 KiB per level otherwise).
        // `block` is the chunk, not the leaf: the importer reads it only for a one-chunk
        // file with a mode or mtime, which it rebuilds as one node with the chunk as its
        // data (Kubo's form), where the encoded leaf would be wrapped in it.
        return { cid, unixfs: new UnixFS({ type: 'file', blockSizes: [BigInt(chunk.byteLength)] }), size: BigInt(block.byteLength), block: chunk }
      }
    }
  }
}
