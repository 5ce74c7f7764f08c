import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { formOf, rpc, startPair, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

/** Waits (at most ~10 s) until identify has told B that A speaks the block-stream protocol. */
async function untilStreamPeer (from: TestDaemon, to: TestDaemon): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (from.node.content.blockStream.protocolPeers().some(p => p.toString() === to.node.peerId)) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  assert.fail(`${from.node.peerId} never learnt that ${to.node.peerId} speaks the block-stream protocol`)
}

describe('block-stream between two daemons', () => {
  let a: TestDaemon
  let b: TestDaemon

  before(async () => {
    ;[a, b] = await startPair()
    await untilStreamPeer(b, a)
  })

  after(async () => {
    await Promise.allSettled([a?.cleanup(), b?.cleanup()])
  })

  it('moves a file added on A to B over /node-daemon/blocks/1.0.0', async () => {
    // 2.5 MB with Kubo's defaults: CIDv0, dag-pb leaves of 256 KiB, so B walks the DAG node by node.
    const data = randomBytes(2_500_000)
    const added = await (await rpc(a, 'add', {}, { body: formOf([{ path: 'random.bin', content: data }]) })).json() as { Hash: string }
    const served = a.node.content.blockStream.stats.blocksServed
    const received = b.node.content.blockStream.stats.blocksReceived
    const res = await rpc(b, 'cat', { arg: added.Hash })
    assert.equal(res.status, 200)
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data)
    // Ten leaves and a root: the leaves at least came by stream (Helia races bitswap for the first blocks).
    assert.ok(b.node.content.blockStream.stats.blocksReceived - received >= 10, `B received ${b.node.content.blockStream.stats.blocksReceived - received} blocks by stream`)
    assert.ok(a.node.content.blockStream.stats.blocksServed - served >= 10)
    // Daemons give each other sealed channels for block streams, on the swarm's interface.
    assert.ok(b.node.content.blockStream.stats.sealedChannels >= 1, 'B opened no sealed channel')
    assert.equal(b.node.content.blockStream.stats.libp2pChannels, 0)
  })

  it('answers missing for a block A lacks, at once, and A does not go looking for it', async () => {
    const absent = CID.createV1(0x55, await sha256.digest(randomBytes(2048)))
    const missing = a.node.content.blockStream.stats.missingAnswered
    const t0 = performance.now()
    await assert.rejects(b.node.content.blockStream.retrieve(absent, { signal: AbortSignal.timeout(10_000) }), (err: Error) => err.name === 'BlockUnavailableError' && /missing/.test(err.message))
    assert.ok(performance.now() - t0 < 5_000, 'the answer took too long')
    assert.equal(a.node.content.blockStream.stats.missingAnswered, missing + 1)
    assert.equal(await a.node.content.helia.blockstore.has(absent), false)
  })

  it('falls back to bitswap for a peer that does not speak the protocol, as a Kubo node would not', async () => {
    const c = await startTestDaemon()
    try {
      // C stops serving block-stream, so it looks to B like any other IPFS node.
      await c.node.content.blockStream.stop()
      await b.node.connect(c.swarmAddr)
      const data = randomBytes(600_000)
      const added = await (await rpc(c, 'add', {}, { body: formOf([{ path: 'x.bin', content: data }]) })).json() as { Hash: string }
      const received = b.node.content.blockStream.stats.blocksReceived
      const res = await rpc(b, 'cat', { arg: added.Hash })
      assert.equal(res.status, 200)
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data)
      assert.equal(b.node.content.blockStream.stats.blocksReceived, received, 'no block came by stream')
    } finally {
      await c.cleanup()
    }
  })
})
