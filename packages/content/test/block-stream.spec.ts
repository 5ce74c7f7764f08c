import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { formatSwarmKey } from '@node-daemon/swarm'
import { BLOCK_STREAM_PROTOCOL, BlockUnavailableError, framedBlock } from '../src/block-stream.ts'
import { BlockResponse } from '../../../protocols/blocks.js'
import * as varint from 'uint8-varint'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { collect, concat, connectContent, rootOf, startConnectedPair, startContent } from './fixtures/node.ts'
import type { Content } from '../src/content.ts'
import type { AbortOptions, Libp2p, PeerId, Startable } from '@libp2p/interface'

describe('block-stream', () => {
  let a: Content
  let b: Content
  let stop = async (): Promise<void> => {}

  before(async () => { ({ a, b, stop } = await startConnectedPair()) })
  after(async () => { await stop() })

  it('registers the protocol with libp2p while started', () => {
    assert.ok(a.swarm.getProtocols().includes(BLOCK_STREAM_PROTOCOL))
  })

  it('fetches a block straight from the broker, verified against its CID', async () => {
    const bytes = randomBytes(100_000)
    const cid = CID.createV1(0x55, await sha256.digest(bytes))
    await a.helia.blockstore.put(cid, bytes)
    const got = await b.blockStream.retrieve(cid, { signal: AbortSignal.timeout(10_000) })
    assert.deepEqual(Buffer.from(got), bytes)
  })

  it('moves a multi-block file over the protocol when B cats it', async () => {
    // 3 MiB in 256 KiB leaves: 12 leaves and a root.
    const data = randomBytes(3 * 1024 * 1024)
    const root = await rootOf(a, [{ path: 'f.bin', content: data }], { rawLeaves: true, cidVersion: 1 })
    const servedBefore = a.blockStream.stats.blocksServed
    const receivedBefore = b.blockStream.stats.blocksReceived
    const got = concat(await collect(b.cat(root, { signal: AbortSignal.timeout(30_000) })))
    assert.deepEqual(Buffer.from(got), data)
    // Helia races bitswap against the broker; at least the leaves it waits longest for come by stream.
    assert.ok(b.blockStream.stats.blocksReceived - receivedBefore >= 10, `received ${b.blockStream.stats.blocksReceived - receivedBefore} blocks by stream`)
    assert.ok(a.blockStream.stats.blocksServed - servedBefore >= 10)
  })

  it('reads ahead through a file with dag-pb leaves, which its reader walks one block at a time', async () => {
    // Kubo's defaults: CIDv0, dag-pb leaves; 12 leaves under one root.
    const data = randomBytes(3 * 1024 * 1024)
    const root = await rootOf(a, [{ path: 'v0.bin', content: data }])
    const hits = b.blockStream.stats.prefetchHits
    const got = concat(await collect(b.cat(root, { signal: AbortSignal.timeout(30_000) })))
    assert.deepEqual(Buffer.from(got), data)
    assert.ok(b.blockStream.stats.prefetchHits - hits >= 8, `${b.blockStream.stats.prefetchHits - hits} blocks came from read-ahead`)
  })

  it('serves from the store under Helia\'s blockstore, without its GC lock and its second lookup', async () => {
    const bytes = randomBytes(1000)
    const cid = CID.createV1(0x55, await sha256.digest(bytes))
    await a.helia.blockstore.put(cid, bytes)
    const blockstore = a.helia.blockstore
    const get = blockstore.get
    let helias = 0
    blockstore.get = function (...args) { helias++; return get.apply(this, args) }
    try {
      assert.deepEqual(Buffer.from(await b.blockStream.retrieve(cid, { signal: AbortSignal.timeout(10_000) })), bytes)
    } finally {
      blockstore.get = get
    }
    assert.equal(helias, 0)
  })

  it('answers missing for a block the server lacks, without hanging and without fetching it', async () => {
    const bytes = randomBytes(1000)
    const cid = CID.createV1(0x55, await sha256.digest(bytes))
    const missingBefore = a.blockStream.stats.missingAnswered
    const t0 = performance.now()
    await assert.rejects(b.blockStream.retrieve(cid, { signal: AbortSignal.timeout(10_000) }), (err: Error) => err.name === BlockUnavailableError.name && /missing/.test(err.message))
    assert.ok(performance.now() - t0 < 5_000)
    assert.equal(a.blockStream.stats.missingAnswered, missingBefore + 1)
    // The server answered from its own blockstore: it did not go and fetch the block.
    assert.equal(await a.helia.blockstore.has(cid), false)
  })

  it('rejects a block whose bytes do not hash to the CID', async () => {
    const bytes = randomBytes(1000)
    const cid = CID.createV1(0x55, await sha256.digest(bytes))
    // Store other bytes under the CID on A, as a faulty or malicious peer would (Helia's put does not hash).
    await a.helia.blockstore.put(cid, randomBytes(1000))
    await assert.rejects(b.blockStream.retrieve(cid, { signal: AbortSignal.timeout(10_000) }), { name: BlockUnavailableError.name })
    assert.equal(await b.helia.blockstore.has(cid), false)
  })

  it('gives up at once when aborted', async () => {
    const bytes = randomBytes(1000)
    const cid = CID.createV1(0x55, await sha256.digest(bytes))
    await assert.rejects(b.blockStream.retrieve(cid, { signal: AbortSignal.abort() }), { name: 'AbortError' })
  })

  it('gives up on a peer that does not answer within requestTimeoutMs, and says so', async () => {
    const bytes = randomBytes(1000)
    const cid = CID.createV1(0x55, await sha256.digest(bytes))
    // A's reads of this block hang until the test ends, so that it never answers.
    let release = (): void => {}
    const held = new Promise<void>(resolve => { release = resolve })
    class Stalling extends MemoryBlockstore {
      override async * get (key: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
        if (key.equals(cid)) await held
        yield * super.get(key, options)
      }
    }
    const blockstore = new Stalling()
    await blockstore.put(cid, bytes)
    // Only A holds the block, in the store that stalls; B has its own.
    const server = await startContent({ blockstore })
    const asker = await startContent({ blockStream: { requestTimeoutMs: 300 } })
    try {
      await connectContent(server, asker)
      const t0 = performance.now()
      await assert.rejects(asker.blockStream.retrieve(cid, { signal: AbortSignal.timeout(10_000) }), (err: Error) => err.name === BlockUnavailableError.name && /no answer within 300 ms/.test(err.message))
      const ms = performance.now() - t0
      assert.ok(ms >= 250 && ms < 5_000, `gave up after ${ms.toFixed(0)} ms`)
    } finally {
      release()
      await Promise.allSettled([server.stop(), asker.stop()])
    }
  })

  it('serves many requests in flight on few streams', async () => {
    const cids: CID[] = []
    const blocks: Buffer[] = []
    for (let i = 0; i < 64; i++) {
      const bytes = randomBytes(16_384)
      const cid = CID.createV1(0x55, await sha256.digest(bytes))
      await a.helia.blockstore.put(cid, bytes)
      cids.push(cid)
      blocks.push(bytes)
    }
    const got = await Promise.all(cids.map(async cid => b.blockStream.retrieve(cid, { signal: AbortSignal.timeout(10_000) })))
    got.forEach((bytes, i) => { assert.deepEqual(Buffer.from(bytes), blocks[i]) })
    const streams = b.swarm.getConnections(a.swarm.peerId).flatMap(c => c.streams).filter(s => s.protocol === BLOCK_STREAM_PROTOCOL)
    assert.ok(streams.length >= 1 && streams.length <= 2, `${streams.length} streams`)
  })
})

describe('block-stream between peers that reconnect', () => {
  const nodes: Content[] = []
  after(async () => { await Promise.allSettled(nodes.map(async node => node.stop())) })

  async function blockOn (node: Content): Promise<{ cid: CID, bytes: Uint8Array }> {
    const bytes = randomBytes(10_000)
    const cid = CID.createV1(0x55, await sha256.digest(bytes))
    await node.helia.blockstore.put(cid, bytes)
    return { cid, bytes }
  }

  it('serves a peer that connected while the node was starting', async () => {
    const a = await startContent()
    nodes.push(a)
    // B dials A as soon as its libp2p has started, as a restarted daemon's peers
    // do (they retry their dials), and waits until A has identified it.
    const dialAtStart = (components: { peerId: PeerId, connectionManager: { openConnection: (addr: ReturnType<Libp2p['getMultiaddrs']>[number]) => Promise<unknown> } }): Startable => ({
      start: () => {},
      stop: () => {},
      afterStart: async () => {
        const identified = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => { reject(new Error('A never identified B')) }, 10_000)
          a.swarm.addEventListener('peer:identify', function onIdentify (evt) {
            if (!evt.detail.peerId.equals(components.peerId)) return
            clearTimeout(timer)
            a.swarm.removeEventListener('peer:identify', onIdentify)
            resolve()
          })
        })
        await components.connectionManager.openConnection(a.swarm.getMultiaddrs()[0])
        await identified
      }
    })
    const b = await startContent({ services: { dialAtStart } })
    nodes.push(b)
    const { cid, bytes } = await blockOn(b)
    const served = b.blockStream.stats.blocksServed
    const got = await a.blockGet(cid.toString(), { signal: AbortSignal.timeout(10_000) })
    assert.deepEqual(Buffer.from(got), Buffer.from(bytes))
    assert.equal(b.blockStream.stats.blocksServed, served + 1)
  })

  it('asks a connected peer whose identify failed on the connection it has now', async () => {
    const pair = await startConnectedPair()
    nodes.push(pair.a, pair.b)
    const { a, b } = pair
    const { cid, bytes } = await blockOn(a)
    // A stops answering identify, as a peer paused or behind a lossy link
    // does not answer in time: B's identify of the next connection fails,
    // and libp2p does not run it again on that connection.
    await a.swarm.unhandle('/ipfs/id/1.0.0')
    await b.swarm.hangUp(a.swarm.peerId)
    await b.swarm.dial(a.swarm.getMultiaddrs()[0])
    const got = await b.blockGet(cid.toString(), { signal: AbortSignal.timeout(10_000) })
    assert.deepEqual(Buffer.from(got), Buffer.from(bytes))
  })
})

describe('block-stream framing', () => {
  it('frames a block served as protons does, without copying it', () => {
    for (const [id, size] of [[1, 0], [0, 10], [127, 1], [128, 300], [0xffffffff, 262_144]]) {
      const block = randomBytes(size)
      const framed = framedBlock(id, block)
      const message = BlockResponse.encode({ id, status: BlockResponse.Status.OK, block })
      assert.deepEqual(Buffer.from(framed.subarray()), Buffer.concat([varint.encode(message.byteLength), message]))
      if (size > 0) assert.ok([...framed].some(chunk => chunk === block), 'the block is a chunk of the frame')
    }
  })
})

describe('block-stream on sealed channels', () => {
  const nodes: Content[] = []
  after(async () => { await Promise.allSettled(nodes.map(async node => node.stop())) })

  it('moves a file over a sealed channel when both nodes offer them, and no libp2p block stream', async () => {
    const pair = await startConnectedPair({ blockStream: { channelHost: '127.0.0.1' } })
    nodes.push(pair.a, pair.b)
    const { a, b } = pair
    const data = randomBytes(3 * 1024 * 1024)
    const root = await rootOf(a, [{ path: 'sealed.bin', content: data }])
    const got = concat(await collect(b.cat(root, { signal: AbortSignal.timeout(30_000) })))
    assert.deepEqual(Buffer.from(got), data)
    assert.ok(b.blockStream.stats.sealedChannels >= 1, `${b.blockStream.stats.sealedChannels} sealed channels`)
    assert.equal(b.blockStream.stats.libp2pChannels, 0)
    assert.ok(a.blockStream.stats.blocksServed >= 12)
    const streams = b.swarm.getConnections(a.swarm.peerId).flatMap(c => c.streams).filter(s => s.protocol === BLOCK_STREAM_PROTOCOL)
    assert.equal(streams.length, 0)
  })

  it('serves members of a private network on sealed channels, and lets a node without the key neither connect nor fetch', async () => {
    const swarmKey = formatSwarmKey(randomBytes(32))
    const init = { blockStream: { channelHost: '127.0.0.1' }, swarmKey }
    const pair = await startConnectedPair(init)
    nodes.push(pair.a, pair.b)
    const { a, b } = pair
    const data = randomBytes(1024 * 1024)
    const root = await rootOf(a, [{ path: 'members.bin', content: data }])
    assert.deepEqual(Buffer.from(concat(await collect(b.cat(root, { signal: AbortSignal.timeout(30_000) })))), data)
    assert.ok(b.blockStream.stats.sealedChannels >= 1)
    for (const key of [undefined, formatSwarmKey(randomBytes(32))]) {
      const outsider = await startContent({ ...init, swarmKey: key })
      nodes.push(outsider)
      await assert.rejects(outsider.swarm.dial(a.swarm.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) }))
      await assert.rejects(collect(outsider.cat(root, { signal: AbortSignal.timeout(3_000) })))
      assert.equal(outsider.blockStream.stats.blocksReceived, 0)
      assert.equal(outsider.blockStream.stats.sealedChannels + outsider.blockStream.stats.libp2pChannels, 0)
    }
  })

  it('falls back to libp2p streams with a peer that offers no channel', async () => {
    const a = await startContent()
    nodes.push(a)
    const b = await startContent({ blockStream: { channelHost: '127.0.0.1' } })
    nodes.push(b)
    await connectContent(a, b)
    const data = randomBytes(1024 * 1024)
    const root = await rootOf(a, [{ path: 'plain.bin', content: data }])
    const got = concat(await collect(b.cat(root, { signal: AbortSignal.timeout(30_000) })))
    assert.deepEqual(Buffer.from(got), data)
    assert.equal(b.blockStream.stats.sealedChannels, 0)
    assert.ok(b.blockStream.stats.libp2pChannels >= 1)
  })
})

describe('block-stream from several holders', () => {
  const nodes: Content[] = []
  after(async () => { await Promise.allSettled(nodes.map(async node => node.stop())) })

  it('pulls the blocks of one file from every peer that holds them', async () => {
    const [a, b, c] = await Promise.all([startContent(), startContent(), startContent()])
    nodes.push(a, b, c)
    await connectContent(a, b)
    await connectContent(c, b)
    // 8 MiB in 32 leaves, the same DAG on A and on C.
    const data = randomBytes(8 * 1024 * 1024)
    const [rootA, rootC] = await Promise.all([a, c].map(async node => rootOf(node, [{ path: 'both.bin', content: data }])))
    assert.equal(rootA, rootC)
    const got = concat(await collect(b.cat(rootA, { signal: AbortSignal.timeout(30_000) })))
    assert.deepEqual(Buffer.from(got), data)
    const fromA = a.blockStream.stats.blocksServed
    const fromC = c.blockStream.stats.blocksServed
    assert.ok(fromA >= 4 && fromC >= 4, `A served ${fromA} blocks, C ${fromC}`)
  })
})
