import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { codecByCode } from '../src/codecs.ts'
import { windowedWalker } from '../src/dag-walker.ts'
import { collect } from './fixtures/node.ts'
import type { WindowedWalkerInit } from '../src/dag-walker.ts'
import type { GraphNode, GraphWalkerComponents, WalkOptions } from '@helia/interface'
import type { AbortOptions } from '@libp2p/interface'

type Blocks = Map<string, Uint8Array>

async function rawLeaf (blocks: Blocks, bytes: Uint8Array): Promise<{ cid: CID, size: number }> {
  const cid = CID.createV1(raw.code, await sha256.digest(bytes))
  blocks.set(cid.toString(), bytes)
  return { cid, size: bytes.byteLength }
}

/** A dag-pb node whose links carry the sizes of what they link to, as the UnixFS importer writes them. */
async function pbNode (blocks: Blocks, links: Array<{ cid: CID, size: number }>): Promise<{ cid: CID, size: number }> {
  const bytes = dagPb.encode(dagPb.prepare({ Links: links.map(link => ({ Hash: link.cid, Tsize: link.size })) }))
  const cid = CID.createV1(dagPb.code, await sha256.digest(bytes))
  blocks.set(cid.toString(), bytes)
  return { cid, size: bytes.byteLength + links.reduce((sum, link) => sum + link.size, 0) }
}

/** A root over `inner` nodes of `leaves` raw leaves of 1000 bytes each, all different. */
async function tree (inner: number, leaves: number): Promise<{ root: CID, blocks: Blocks }> {
  const blocks: Blocks = new Map()
  const children = []
  for (let i = 0; i < inner; i++) {
    const under = []
    for (let j = 0; j < leaves; j++) under.push(await rawLeaf(blocks, new Uint8Array(1000).fill(i * leaves + j)))
    children.push(await pbNode(blocks, under))
  }
  return { root: (await pbNode(blocks, children)).cid, blocks }
}

/**
 * A blockstore that holds `blocks` and takes `delayMs` to answer each get, as
 * a peer or a disk would; it counts the gets it serves at once, and the most.
 */
function slowStore (blocks: Blocks, { local = false, delayMs = 5, hang }: { local?: boolean, delayMs?: number, hang?: CID } = {}) {
  const store = {
    active: 0,
    most: 0,
    started: [] as string[],
    signals: [] as Array<AbortSignal | undefined>,
    has: async () => local,
    get: async function * (cid: CID, options: AbortOptions = {}): AsyncGenerator<Uint8Array> {
      store.started.push(cid.toString())
      store.signals.push(options.signal)
      store.most = Math.max(store.most, ++store.active)
      try {
        // A block no one has: only the walk's signal ends the wait.
        if (hang?.equals(cid) === true) await new Promise((_resolve, reject) => { options.signal?.addEventListener('abort', () => { reject(options.signal?.reason) }) })
        await sleep(delayMs, undefined, { signal: options.signal })
        const bytes = blocks.get(cid.toString())
        if (bytes == null) throw new Error(`no block ${cid}`)
        yield bytes
      } finally {
        store.active--
      }
    }
  }
  return store
}

function walk (store: ReturnType<typeof slowStore>, root: CID, init?: WindowedWalkerInit, options?: WalkOptions<unknown>): AsyncGenerator<GraphNode> {
  const components = { blockstore: store, getCodec: (code: number) => codecByCode(code) } as unknown as GraphWalkerComponents
  return windowedWalker(init)(components).walk(root, options)
}

describe('windowedWalker', () => {
  it('yields every block of the DAG once, with its depth and its path from the root', async () => {
    const { root, blocks } = await tree(3, 20)
    const nodes = await collect(walk(slowStore(blocks), root))
    assert.equal(nodes.length, blocks.size)
    assert.deepEqual(new Set(nodes.map(n => n.block.cid.toString())), new Set(blocks.keys()))
    for (const node of nodes) {
      assert.equal(node.path.length, node.depth + 1)
      assert.ok(node.path[0].equals(root))
      assert.ok(node.path[node.depth].equals(node.block.cid))
      assert.equal(node.depth, node.block.cid.code === raw.code ? 2 : node.block.cid.equals(root) ? 0 : 1)
    }
  })

  it('starts the children of a node at a random one, so that walks of one DAG on several nodes fetch different blocks first', async () => {
    const { root, blocks } = await tree(1, 16)
    const firstLeaves = new Set<string>()
    for (let i = 0; i < 8; i++) {
      const nodes = await collect(walk(slowStore(blocks, { delayMs: 0 }), root, { maxBlocks: 1 }))
      assert.equal(nodes.length, 18)
      firstLeaves.add(nodes[2].block.cid.toString())
    }
    // Eight walks all starting at one of sixteen leaves happen once in 16^7.
    assert.ok(firstLeaves.size > 1, 'every walk began at the same leaf')
  })

  it('stops at the depth asked for', async () => {
    const { root, blocks } = await tree(3, 20)
    const nodes = await collect(walk(slowStore(blocks), root, {}, { depth: 1 }))
    assert.deepEqual(nodes.map(n => n.depth).sort(), [0, 1, 1, 1])
  })

  it('keeps at most maxBlocks blocks read or waiting for the pinner, and fills that window', async () => {
    const { root, blocks } = await tree(2, 40)
    const store = slowStore(blocks)
    let taken = 0
    let held = 0
    const get = store.get
    store.get = async function * (cid, options) {
      // Blocks started and not yet done with by the pinner.
      held = Math.max(held, store.started.length + 1 - taken)
      yield * get(cid, options)
    }
    for await (const _ of walk(store, root, { maxBlocks: 6 })) {
      await sleep(1)
      taken++
    }
    assert.equal(taken, blocks.size)
    // Reads in flight alone may never reach 6 on a loaded machine, where blocks wait, read, for the pinner.
    assert.equal(held, 6, 'the window was never full')
    assert.ok(store.most > 1, 'blocks not local were read one at a time')
  })

  it('keeps the bytes in the window under maxBytes, by the sizes the links give', async () => {
    const { root, blocks } = await tree(2, 40)
    const store = slowStore(blocks)
    const nodes = await collect(walk(store, root, { maxBlocks: 32, maxBytes: 3500 }))
    assert.equal(nodes.length, blocks.size)
    // Leaves of 1000 bytes: three at once; the nodes above, whose links count their whole subtree, one at a time.
    assert.equal(store.most, 3)
  })

  it('reads local blocks two at a time: the pinner is the slower', async () => {
    const { root, blocks } = await tree(2, 40)
    const store = slowStore(blocks, { local: true })
    const nodes = await collect(walk(store, root, { maxBlocks: 32 }))
    assert.equal(nodes.length, blocks.size)
    assert.equal(store.most, 2)
  })

  it('walks a block linked many times once, as Kubo\'s pinner, and every path only to a depth', async () => {
    const blocks: Blocks = new Map()
    const leaf = await rawLeaf(blocks, new Uint8Array(1000))
    const { cid: root } = await pbNode(blocks, Array(5).fill(leaf))
    const store = slowStore(blocks)
    const nodes = await collect(walk(store, root))
    assert.deepEqual(nodes.map(n => n.block.cid.toString()), [root.toString(), leaf.cid.toString()])
    assert.deepEqual(store.started, [root.toString(), leaf.cid.toString()])
    // Bounded by depth, a block met deeper first may be met shallower later: each path is taken.
    const bounded = slowStore(blocks)
    assert.equal((await collect(walk(bounded, root, {}, { depth: 1 }))).length, 6)
    assert.deepEqual(bounded.started, [root.toString(), leaf.cid.toString()])
  })

  it('fails with the abort when a block never comes, and ends the other reads', async () => {
    const { root, blocks } = await tree(2, 40)
    const missing = [...blocks.keys()].map(key => CID.parse(key)).find(cid => cid.code === raw.code) as CID
    const store = slowStore(blocks, { hang: missing, delayMs: 20 })
    const t0 = performance.now()
    await assert.rejects(collect(walk(store, root, {}, { signal: AbortSignal.timeout(300) })), { name: 'TimeoutError' })
    assert.ok(performance.now() - t0 < 2_000)
    assert.equal(store.active, 0)
  })

  it('aborts nothing once every block was taken: an abort costs an exception and an event per walk', async () => {
    const { root, blocks } = await tree(2, 3)
    const store = slowStore(blocks, { delayMs: 0 })
    assert.equal((await collect(walk(store, root))).length, blocks.size)
    assert.equal(store.signals.length, blocks.size)
    assert.ok(store.signals.every(signal => signal?.aborted === false))
  })

  it('ends its reads when the pinner stops taking blocks', async () => {
    const { root, blocks } = await tree(2, 40)
    const store = slowStore(blocks, { delayMs: 50 })
    for await (const node of walk(store, root)) {
      if (node.depth === 2) break
    }
    // The reads in flight were aborted: none is left waiting, none starts later.
    await sleep(10)
    assert.equal(store.active, 0)
    const started = store.started.length
    await sleep(100)
    assert.equal(store.started.length, started)
  })
})
