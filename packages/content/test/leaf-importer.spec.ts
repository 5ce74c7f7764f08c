import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { encodeFileLeaf } from '../src/leaf-importer.ts'

describe('encodeFileLeaf', () => {
  it('writes the bytes UnixFS.marshal and dag-pb encode would, for sizes across varint boundaries', () => {
    for (const size of [0, 1, 127, 128, 16_383, 16_384, 262_144, 1_048_576 + 262_144]) {
      const chunk = randomBytes(size)
      const stock = dagPb.encode({ Data: new UnixFS({ type: 'file', data: chunk }).marshal(), Links: [] })
      assert.deepEqual(Buffer.from(encodeFileLeaf(chunk)), Buffer.from(stock), `size ${size}`)
    }
  })
})
