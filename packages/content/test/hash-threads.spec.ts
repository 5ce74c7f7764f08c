import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { HashThreads } from '../src/hash-threads.ts'

describe('HashThreads', () => {
  it('hashes blocks in threads, sending each back whole, and takes only blocks that own their buffer', async () => {
    const threads = new HashThreads(2)
    try {
      const blocks = Array.from({ length: 6 }, (_, i) => new Uint8Array(randomBytes(1000 + i * 50_000)))
      const expected = blocks.map(b => ({ digest: createHash('sha256').update(b).digest('hex'), bytes: Buffer.from(b) }))
      assert.ok(blocks.every(b => threads.movable(b)))
      const replies = await Promise.all(blocks.map(async b => threads.sha256(b as Uint8Array<ArrayBuffer>)))
      assert.deepEqual(replies.map(r => ({ digest: Buffer.from(r.digest).toString('hex'), bytes: Buffer.from(r.block) })), expected)
      // Sent away, a block is gone from here until it comes back.
      assert.ok(blocks.every(b => b.byteLength === 0))
      assert.equal(threads.movable(Buffer.from('a slice of the pool')), false)
      assert.equal(threads.movable(new Uint8Array(new ArrayBuffer(10), 2)), false)
    } finally {
      await threads.stop()
    }
    assert.equal(threads.movable(new Uint8Array(10)), false)
    await assert.rejects(threads.sha256(new Uint8Array(10)))
  })
})
