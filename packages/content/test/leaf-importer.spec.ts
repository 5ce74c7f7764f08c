import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { encodeFileLeaf, leafChunker } from '../src/leaf-importer.ts'

describe('encodeFileLeaf', () => {
  it('writes the bytes UnixFS.marshal and dag-pb encode would, for sizes across varint boundaries', () => {
    for (const size of [0, 1, 127, 128, 16_383, 16_384, 262_144, 1_048_576 + 262_144]) {
      const chunk = randomBytes(size)
      const stock = dagPb.encode({ Data: new UnixFS({ type: 'file', data: chunk }).marshal(), Links: [] })
      assert.deepEqual(Buffer.from(encodeFileLeaf(chunk)), Buffer.from(stock), `size ${size}`)
    }
  })
})

describe('leafChunker', () => {
  it('cuts what the stock chunker cuts, and each chunk encodes in place to the stock leaf', async () => {
    const data = randomBytes(3 * 1000 + 17)
    for (const parts of [[data], [data.subarray(0, 1), data.subarray(1, 2500), data.subarray(2500)], Array.from({ length: 31 }, (_, i) => data.subarray(i * 100, (i + 1) * 100))]) {
      const source = async function * (): AsyncGenerator<Uint8Array> { yield * parts }
      const ours: Uint8Array[] = []
      for await (const chunk of leafChunker(1000)(source())) ours.push(chunk)
      const stock: Uint8Array[] = []
      for await (const chunk of fixedSize({ chunkSize: 1000 })(source())) stock.push(chunk)
      assert.deepEqual(ours.map(c => Buffer.from(c)), stock.map(c => Buffer.from(c)))
      for (const [i, chunk] of ours.entries()) {
        const leaf = encodeFileLeaf(chunk)
        assert.deepEqual(Buffer.from(leaf), Buffer.from(dagPb.encode({ Data: new UnixFS({ type: 'file', data: stock[i] }).marshal(), Links: [] })))
        // A whole chunk's leaf is the buffer the chunk was read into.
        if (chunk.byteLength === 1000) assert.equal(leaf.buffer, chunk.buffer)
      }
    }
    const empty: Uint8Array[] = []
    for await (const chunk of leafChunker(1000)((async function * () {})())) empty.push(chunk)
    assert.deepEqual(empty.map(c => c.byteLength), [0])
  })
})
