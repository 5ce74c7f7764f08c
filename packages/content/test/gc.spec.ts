import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { blockKey, getBlock } from '../src/blocks.ts'
import { BlockGuard } from '../src/gc.ts'
import { bytes, collect, concat, connectContent, rootOf, startContent } from './fixtures/node.ts'
import type { Content } from '../src/content.ts'
import type { GcResult } from '../src/gc.ts'
import type { AbortOptions } from '@libp2p/interface'

/** Polls `check` every 10 ms, at most 500 times. */
async function until (check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  assert.fail(`timed out waiting for ${what}`)
}

/** A promise and the function that settles it. */
function gate (): { opened: Promise<void>, open: () => void } {
  let open = (): void => {}
  const opened = new Promise<void>(resolve => { open = resolve })
  return { opened, open }
}

/** Whether a promise is still pending after the event loop has turned a few times. */
async function pending (promise: Promise<unknown>): Promise<boolean> {
  let settled = false
  promise.then(() => { settled = true }, () => { settled = true })
  for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
  return !settled
}

/** A memory blockstore whose writes and deletions of chosen blocks wait for a gate. */
class GatedBlockstore extends MemoryBlockstore {
  readonly putGates = new Map<string, Promise<void>>()
  readonly deleteGates = new Map<string, Promise<void>>()
  readonly deletesStarted = new Set<string>()

  put (cid: CID, block: any, options?: AbortOptions): any {
    const wait = this.putGates.get(blockKey(cid))
    return wait == null ? super.put(cid, block, options) : wait.then(() => super.put(cid, block, options))
  }

  async delete (cid: CID, options?: AbortOptions): Promise<void> {
    this.deletesStarted.add(blockKey(cid))
    await this.deleteGates.get(blockKey(cid))
    await super.delete(cid, options)
  }
}

const removed = (results: GcResult[]): string[] => results.flatMap(r => 'cid' in r ? [blockKey(r.cid)] : [])
const rawCid = async (data: Uint8Array): Promise<CID> => CID.createV1(raw.code, await sha256.digest(data))

/** The root and every block under it, from the local store. */
async function dagOf (content: Content, root: string): Promise<CID[]> {
  const out: CID[] = []
  const stack = [CID.parse(root)]
  while (stack.length > 0) {
    const cid = stack.pop() as CID
    out.push(cid)
    if (cid.code === dagPb.code) stack.push(...dagPb.decode(await getBlock(content.helia.blockstore, cid, { offline: true })).Links.map(l => l.Hash))
  }
  return out
}

async function hasAll (content: Content, cids: CID[]): Promise<boolean> {
  for (const cid of cids) if (!await content.helia.blockstore.has(cid)) return false
  return true
}

describe('BlockGuard', () => {
  const cid = CID.parse('bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4')

  it('deletes a block nothing holds, and keeps a held one until it is released', async () => {
    const guard = new BlockGuard()
    const deleted: string[] = []
    const remove = async (): Promise<void> => { deleted.push(cid.toString()) }
    const hold = guard.hold()
    await hold.keep(cid)
    // The same block under its CIDv0-style multihash is the same file.
    assert.equal(guard.held(CID.createV1(0x70, cid.multihash)), true)
    assert.equal(await guard.delete(cid, remove), false)
    hold.release()
    assert.equal(await guard.delete(cid, remove), true)
    assert.deepEqual(deleted, [cid.toString()])
  })

  it('makes a keep wait out a deletion of the block already under way', async () => {
    const guard = new BlockGuard()
    const removal = gate()
    const deletion = guard.delete(cid, async () => { await removal.opened })
    const keep = guard.hold().keep(cid)
    assert.equal(await pending(keep), true)
    removal.open()
    assert.equal(await deletion, true)
    await keep
    assert.equal(guard.held(cid), true)
  })

  it('runs collections one at a time, and defers a release during one to its end', async () => {
    const guard = new BlockGuard()
    const hold = guard.hold()
    await hold.keep(cid)
    const first = gate()
    const order: string[] = []
    const one = guard.collect(async () => {
      order.push('one starts')
      await first.opened
      order.push('one ends')
    })
    const two = guard.collect(async () => { order.push('two runs') })
    await until(() => order.length === 1, 'the first collection to start')
    hold.release()
    assert.equal(guard.held(cid), true)
    assert.equal(await pending(two), true)
    first.open()
    await Promise.all([one, two])
    assert.deepEqual(order, ['one starts', 'one ends', 'two runs'])
    assert.equal(guard.held(cid), false)
  })
})

describe('gc', { timeout: 120_000 }, () => {
  let content: Content

  before(async () => {
    content = await startContent()
  })

  after(async () => {
    await content?.stop()
  })

  it('removes what nothing pins, as raw CIDv1s, and keeps recursive, indirect and direct pins', async () => {
    const unpinned = await rootOf(content, [{ path: 'u/a.txt', content: bytes(`unpinned ${Math.random()}`) }], { pin: false })
    const pinned = await rootOf(content, [{ path: 'p/a.txt', content: randomBytes(3000) }], { chunker: 'size-1024' })
    const direct = await content.blockPut(bytes(`direct ${Math.random()}`))
    await content.pinAdd(direct.toString(), false)
    const loose = await content.blockPut(bytes(`loose ${Math.random()}`))
    const unpinnedDag = await dagOf(content, unpinned)
    const pinnedDag = await dagOf(content, pinned)

    const gone = removed(await collect(content.gc()))
    for (const cid of [...unpinnedDag, loose]) {
      assert.ok(gone.includes(blockKey(cid)), `${cid} was not removed`)
      assert.equal(await content.helia.blockstore.has(cid), false)
    }
    for (const cid of [...pinnedDag, direct]) {
      assert.equal(gone.includes(blockKey(cid)), false, `${cid} was removed`)
      assert.equal(await content.helia.blockstore.has(cid), true)
    }
    const results = await collect(content.gc())
    assert.ok(results.every(r => 'cid' in r && r.cid.version === 1 && r.cid.code === raw.code))
    assert.equal(await hasAll(content, pinnedDag), true)
  })

  it('frees what pin rm unpinned', async () => {
    const root = await rootOf(content, [{ path: 'freed/a.bin', content: randomBytes(5000) }], { chunker: 'size-1024' })
    const dag = await dagOf(content, root)
    await collect(content.gc())
    assert.equal(await hasAll(content, dag), true)
    await content.pinRm(root)
    const gone = removed(await collect(content.gc()))
    assert.deepEqual(gone.sort(), dag.map(blockKey).sort())
  })

  it('keeps what a pin needs after pins sharing its blocks came and went', async () => {
    // Helia counts pins per block, and a pin removed and added again beside another one sharing
    // its blocks leaves the count one short; GC marks from the pins instead, as Kubo does.
    const file = await rootOf(content, [{ path: 'shared.bin', content: randomBytes(3000) }], { chunker: 'size-1024' })
    const wrapper = await rootOf(content, [{ path: 'shared.bin', content: concat(await collect(content.cat(file))) }], { chunker: 'size-1024', wrapWithDirectory: true })
    const dag = await dagOf(content, wrapper)
    await content.pinRm(wrapper)
    await content.pinAdd(wrapper)
    await content.pinRm(file)
    await collect(content.gc())
    assert.equal(await hasAll(content, dag), true)
    await content.pinRm(wrapper)
  })

  it('keeps the DAGs under the roots it is told to keep (the cluster\'s allocations), as far as they are local', async () => {
    const allocated: string[] = []
    const kept = await startContent({ keep: () => allocated })
    try {
      const root = await rootOf(kept, [{ path: 'alloc.bin', content: randomBytes(4000) }], { chunker: 'size-1024', pin: false })
      const dag = await dagOf(kept, root)
      allocated.push(root)
      // As when a pin is still being fetched: part of the DAG is missing.
      await kept.helia.blockstore.delete(dag[1])
      assert.deepEqual(removed(await collect(kept.gc())), [])
      assert.equal(await hasAll(kept, [dag[0], ...dag.slice(2)]), true)
      allocated.pop()
      assert.equal(removed(await collect(kept.gc())).length, dag.length - 1)
    } finally {
      await kept.stop()
    }
  })

  it('removes the blocks of an add that failed before it pinned them', async () => {
    const chunks = Array.from({ length: 24 }, () => randomBytes(1024))
    const leaves = await Promise.all(chunks.map(rawCid))
    async function * cut (): AsyncGenerator<Uint8Array> {
      yield * chunks
      // The upload breaks off once the blocks so far are written.
      await until(() => hasAll(content, leaves.slice(0, 10)), 'the first blocks to be written')
      throw new Error('the client went away')
    }
    await assert.rejects(collect(content.addAll([{ path: 'cut.bin', content: cut() }], { cidVersion: 1, chunker: 'size-1024' })), /went away/)
    const gone = removed(await collect(content.gc()))
    for (const leaf of leaves.slice(0, 10)) assert.ok(gone.includes(blockKey(leaf)), `${leaf} was not removed`)
  })

  it('keeps the blocks an add wrote while it has not pinned them yet', async () => {
    const chunks = Array.from({ length: 24 }, () => randomBytes(1024))
    const leaves = await Promise.all(chunks.map(rawCid))
    const rest = gate()
    async function * paused (): AsyncGenerator<Uint8Array> {
      yield * chunks.slice(0, 16)
      await rest.opened
      yield * chunks.slice(16)
    }
    const adding = collect(content.addAll([{ path: 'paused.bin', content: paused() }], { cidVersion: 1, chunker: 'size-1024', signal: AbortSignal.timeout(30_000) }))
    adding.catch(() => {})
    await until(() => hasAll(content, leaves.slice(0, 10)), 'the first blocks to be written')
    const gone = removed(await collect(content.gc()))
    for (const leaf of leaves.slice(0, 10)) assert.equal(gone.includes(blockKey(leaf)), false, `${leaf} was removed while its add ran`)
    rest.open()
    const root = (await adding).at(-1)
    assert.ok(root?.type === 'entry')
    assert.deepEqual(await collect(content.pinLs('recursive', [root.cid.toString()])), [{ cid: root.cid, type: 'recursive' }])
    assert.equal(await hasAll(content, await dagOf(content, root.cid.toString())), true)
    assert.deepEqual(Buffer.from(concat(await collect(content.cat(root.cid.toString())))), Buffer.concat(chunks))
  })

  it('writes again a block that an add stores while GC is deleting it', async () => {
    const store = new GatedBlockstore()
    const node = await startContent({ blockstore: store })
    try {
      const data = bytes(`deleted and written again ${Math.random()}`)
      const cid = await node.blockPut(data)
      const deletion = gate()
      store.deleteGates.set(blockKey(cid), deletion.opened)
      const collecting = collect(node.gc())
      await until(() => store.deletesStarted.has(blockKey(cid)), 'GC to start deleting the block')
      const putting = node.blockPut(data, { pin: true })
      putting.catch(() => {})
      // Held off until the deletion is done, or the deletion would remove what it writes.
      assert.equal(await pending(putting), true)
      deletion.open()
      assert.ok(removed(await collecting).includes(blockKey(cid)))
      assert.equal((await putting).toString(), cid.toString())
      assert.equal(await node.helia.blockstore.has(cid), true)
      assert.deepEqual(await collect(node.gc()), [])
    } finally {
      await node.stop()
    }
  })

  it('keeps the blocks a pin has fetched while it still fetches the rest', async () => {
    const a = await startContent()
    const store = new GatedBlockstore()
    const b = await startContent({ blockstore: store })
    try {
      await connectContent(a, b)
      const root = await rootOf(a, [{ content: randomBytes(20 * 1024) }], { chunker: 'size-1024', cidVersion: 1, pin: false })
      const dag = await dagOf(a, root)
      const rest = gate()
      // The last leaf waits: the pin has fetched the root and the other leaves, and is not done.
      store.putGates.set(blockKey(dag[dag.length - 1]), rest.opened)
      const pinning = b.pinAdd(root, true, { signal: AbortSignal.timeout(30_000) })
      pinning.catch(() => {})
      await until(() => hasAll(b, dag.slice(0, -1)), 'the pin to fetch all but one block')
      assert.deepEqual(removed(await collect(b.gc())), [])
      rest.open()
      await pinning
      assert.equal(await hasAll(b, dag), true)
    } finally {
      await Promise.allSettled([a.stop(), b.stop()])
    }
  })

  it('reports a block it cannot remove, removes the others, and ends with a GcError', async () => {
    const store = new GatedBlockstore()
    const node = await startContent({ blockstore: store })
    try {
      const stuck = await node.blockPut(bytes(`stuck ${Math.random()}`))
      const loose = await node.blockPut(bytes(`loose ${Math.random()}`))
      const refused = Promise.reject(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }))
      refused.catch(() => {})
      store.deleteGates.set(blockKey(stuck), refused)
      const results: GcResult[] = []
      await assert.rejects((async () => { for await (const result of node.gc()) results.push(result) })(), { name: 'GcError', message: /could not remove 1 blocks/ })
      assert.deepEqual(removed(results), [blockKey(loose)])
      assert.deepEqual(results.flatMap(r => 'error' in r ? [r.error.message] : []), [`could not remove ${CID.createV1(raw.code, stuck.multihash)}: EACCES: permission denied`])
    } finally {
      await node.stop()
    }
  })

  describe('block rm', () => {
    it('refuses pinned blocks with Kubo\'s messages and removes unpinned ones', async () => {
      const root = await rootOf(content, [{ path: 'rm/a.bin', content: randomBytes(3000) }], { chunker: 'size-1024' })
      const [, child] = await dagOf(content, root)
      const direct = await content.blockPut(bytes(`direct for rm ${Math.random()}`), { pin: true })
      await content.pinRm(direct.toString())
      await content.pinAdd(direct.toString(), false)
      const loose = await content.blockPut(bytes(`loose for rm ${Math.random()}`))
      const results = await collect(content.blockRm([root, child.toString(), direct.toString(), loose.toString()]))
      assert.deepEqual(results.map(r => [r.cid.toString(), r.error]), [
        [root, 'pinned: recursive'],
        [child.toString(), `pinned via ${root}`],
        [direct.toString(), 'pinned: direct'],
        [loose.toString(), undefined]
      ])
      assert.equal(await content.helia.blockstore.has(loose), false)
      assert.equal(await content.helia.blockstore.has(child), true)
    })

    it('reports a block that is not here, unless forced', async () => {
      const missing = await rawCid(bytes(`never stored ${Math.random()}`))
      assert.deepEqual(await collect(content.blockRm([missing.toString()])), [{ cid: missing, error: `ipld: could not find ${missing}` }])
      assert.deepEqual(await collect(content.blockRm([missing.toString()], { force: true })), [{ cid: missing }])
    })
  })
})
