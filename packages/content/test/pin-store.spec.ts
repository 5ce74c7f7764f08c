import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core/memory'
import * as cborg from 'cborg'
import { MemoryDatastore } from 'datastore-core/memory'
import { Key } from 'interface-datastore'
import drain from 'it-drain'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { codecByCode } from '../src/codecs.ts'
import { windowedWalker } from '../src/dag-walker.ts'
import { beside } from '../src/helia-node.ts'
import { PinStore } from '../src/pin-store.ts'
import type { SyncReadDatastore } from '../src/pin-store.ts'
import { collect } from './fixtures/node.ts'
import type { CodecLoader, Pins } from '@helia/interface'
import type { Blockstore } from 'interface-blockstore'
import type { Datastore } from 'interface-datastore'

type HeliaPins = new (datastore: Datastore, blockstore: Blockstore, getCodec: CodecLoader) => Pins
const { PinsImpl } = await beside<{ PinsImpl: HeliaPins }>('helia', 'pins.js')

const getCodec = (async (code: number) => codecByCode(code)) as CodecLoader

async function rawBlock (blockstore: Blockstore, text: string): Promise<CID> {
  const bytes = new TextEncoder().encode(text)
  const cid = CID.createV1(raw.code, await sha256.digest(bytes))
  await blockstore.put(cid, bytes)
  return cid
}

/** A dag-pb node linking to `links`, as CIDv0 (Kubo's default) unless told otherwise. */
async function node (blockstore: Blockstore, links: CID[], version: 0 | 1 = 0): Promise<CID> {
  const bytes = dagPb.encode(dagPb.prepare({ Links: links.map((Hash, i) => ({ Hash, Name: `${i}`, Tsize: 1 })) }))
  const digest = await sha256.digest(bytes)
  const cid = version === 0 ? CID.createV0(digest) : CID.createV1(dagPb.code, digest)
  await blockstore.put(cid, bytes)
  return cid
}

/** Two DAGs sharing a subtree, as a repo holds them: three roots, seven blocks. */
async function dags (blockstore: Blockstore): Promise<{ a: CID, b: CID, shared: CID, leaves: CID[], all: CID[] }> {
  const leaves = await Promise.all(['one', 'two', 'three', 'four'].map(async t => rawBlock(blockstore, t)))
  const shared = await node(blockstore, leaves.slice(0, 2))
  const a = await node(blockstore, [shared, leaves[2]])
  const b = await node(blockstore, [shared, leaves[3]], 1)
  return { a, b, shared, leaves, all: [a, b, shared, ...leaves] }
}

async function contents (datastore: Datastore): Promise<Array<[string, string]>> {
  const all: Array<[string, string]> = []
  for await (const { key, value } of datastore.query({})) all.push([key.toString(), Buffer.from(value).toString('hex')])
  return all.sort((x, y) => x[0].localeCompare(y[0]))
}

async function recordKeys (datastore: Datastore): Promise<string[]> {
  const keys: string[] = []
  for await (const key of datastore.queryKeys({ prefix: '/pinned-block/' })) keys.push(key.toString())
  return keys
}

async function pinned (pins: Pins, cids: CID[]): Promise<boolean[]> {
  return Promise.all(cids.map(async cid => pins.isPinned(cid)))
}

/** A memory datastore that also reads at once, as the daemon's LevelDB one does, and counts those reads. */
class SyncMemoryDatastore extends MemoryDatastore implements SyncReadDatastore {
  // Not a #field: a test reaches this store through Object.create, which private fields do not follow.
  readonly copy = new Map<string, Uint8Array>()
  syncReads = 0

  put (key: Key, value: Uint8Array): Key {
    this.copy.set(key.toString(), value)
    return super.put(key, value) as Key
  }

  delete (key: Key): void {
    this.copy.delete(key.toString())
    super.delete(key)
  }

  getSync (key: Key): Uint8Array | undefined {
    this.syncReads++
    return this.copy.get(key.toString())
  }
}

/** Which datastore the suite below runs on. */
let syncReads = false

function stores (): { datastore: MemoryDatastore, blockstore: MemoryBlockstore, ours: PinStore, helias: Pins } {
  const datastore = syncReads ? new SyncMemoryDatastore() : new MemoryDatastore()
  const blockstore = new MemoryBlockstore()
  return { datastore, blockstore, ours: new PinStore({ datastore, blockstore, getCodec }, { chunkBlocks: 2 }), helias: new PinsImpl(datastore, blockstore, getCodec) }
}

for (const sync of [false, true]) {
  describe(`pin store${sync ? ' on a datastore that reads at once' : ''}`, () => {
    before(() => { syncReads = sync })

    it('writes the same datastore as Helia\'s Pins for the same pins', async () => {
      const written = []
      for (const make of [(s: ReturnType<typeof stores>) => s.helias, (s: ReturnType<typeof stores>) => s.ours]) {
        const s = stores()
        const { a, b, shared } = await dags(s.blockstore)
        const pins = make(s)
        await drain(pins.add(a, { metadata: { cid: a.toString(), name: 'a' } }))
        await drain(pins.add(b))
        await drain(pins.add(shared, { depth: 0 }))
        written.push(await contents(s.datastore))
      }
      assert.ok(written[0].length > 3)
      assert.deepEqual(written[1], written[0])
    })

    it('reads and unpins a repo Helia\'s Pins wrote, and Helia\'s reads what it leaves', async () => {
      const { datastore, blockstore, ours, helias } = stores()
      const { a, b, shared, leaves, all } = await dags(blockstore)
      await drain(helias.add(a, { metadata: { name: 'a' } }))
      await drain(helias.add(b))
      assert.deepEqual((await collect(ours.ls())).map(p => [p.cid.toString(), p.depth, p.metadata]).sort(),
        [[a.toV1().toString(), Infinity, { name: 'a' }], [b.toString(), Infinity, {}]].sort())
      assert.deepEqual((await ours.get(a)).metadata, { name: 'a' })
      assert.deepEqual(await pinned(ours, all), all.map(() => true))

      await drain(ours.rm(a))
      // Only b's blocks stay pinned, each by b alone, as Helia counts them.
      assert.deepEqual(await pinned(helias, [a, leaves[2]]), [false, false])
      assert.deepEqual(await pinned(helias, [b, shared, leaves[0], leaves[1], leaves[3]]), [true, true, true, true, true])
      await drain(helias.rm(b))
      assert.deepEqual(await recordKeys(datastore), [])
      assert.deepEqual(await collect(ours.ls()), [])
    })

    it('leaves no record of a pin aborted half way, so that nothing it reached looks pinned', async () => {
      const { datastore, blockstore, ours } = stores()
      const { a, b, all } = await dags(blockstore)
      await drain(ours.add(b))
      const before = await contents(datastore)
      const controller = new AbortController()
      let blocks = 0
      // Aborted after two batches of two blocks were written.
      const walker = windowedWalker({ maxBlocks: 1, onBlock: () => { if (++blocks === 5) controller.abort(new Error('stop')) } })
      await assert.rejects(drain(ours.add(a, { walker, signal: controller.signal })), { message: 'stop' })
      assert.equal(blocks, 5)
      assert.deepEqual(await contents(datastore), before)
      assert.deepEqual((await collect(ours.ls())).map(p => p.cid.toString()), [b.toString()])
      // Pinned again, a's blocks count it once.
      await drain(ours.add(a))
      await drain(ours.rm(b))
      await drain(ours.rm(a))
      assert.deepEqual(await recordKeys(datastore), [])
      assert.deepEqual(await pinned(ours, all), all.map(() => false))
    })

    it('counts every one of many pins made at once over the same blocks, and frees them when all are gone', async () => {
      const { datastore, blockstore, ours } = stores()
      const { shared, leaves } = await dags(blockstore)
      const roots = await Promise.all(Array.from({ length: 24 }, async (_, i) => node(blockstore, [shared, await rawBlock(blockstore, `leaf ${i}`)])))
      await Promise.all(roots.map(async root => drain(ours.add(root))))
      const record = await datastore.get(new Key(`/pinned-block/${base36.encode(shared.multihash.bytes)}`))
      const { pinCount, pinnedBy } = cborg.decode(record) as { pinCount: number, pinnedBy: Uint8Array[] }
      assert.equal(pinCount, roots.length)
      assert.equal(pinnedBy.length, roots.length)
      await Promise.all(roots.map(async root => drain(ours.rm(root))))
      assert.deepEqual(await recordKeys(datastore), [])
      assert.deepEqual(await pinned(ours, [shared, ...leaves.slice(0, 2)]), [false, false, false])
    })

    it('keeps a block pinned while a pin over it stays, whichever others were removed and made again', async () => {
      const { blockstore, ours } = stores()
      const { a, b, shared, leaves } = await dags(blockstore)
      await drain(ours.add(a))
      await drain(ours.add(b))
      await drain(ours.rm(a))
      await drain(ours.add(a))
      await drain(ours.rm(b))
      assert.deepEqual(await pinned(ours, [shared, ...leaves.slice(0, 3)]), [true, true, true, true])
      // A CIDv0 pin removed by its CIDv1 is the same pin.
      await drain(ours.rm(a.toV1()))
      assert.deepEqual(await pinned(ours, [a, shared, ...leaves]), [false, false, false, false, false, false])
    })

    it('writes a caller\'s notes in the batch that writes the pin\'s key, and on their own when it is pinned already', async () => {
      const { datastore, blockstore } = stores()
      const batches: Array<{ puts: string[] }> = []
      const counted = Object.assign(Object.create(datastore), {
        batch: () => {
          const inner = datastore.batch()
          const puts: string[] = []
          batches.push({ puts })
          return { put: (key: Key, value: Uint8Array) => { puts.push(key.toString()); inner.put(key, value) }, delete: (key: Key) => { inner.delete(key) }, commit: async () => inner.commit() }
        }
      }) as MemoryDatastore
      const ours = new PinStore({ datastore: counted, blockstore, getCodec })
      const { a } = await dags(blockstore)
      const note = (n: number): { key: Key, value: Uint8Array } => ({ key: new Key(`/noted/${n}`), value: Uint8Array.of(n) })
      await drain(ours.add(a, { notes: [note(1)] }))
      assert.equal(batches.length, 1)
      assert.ok(batches[0].puts.includes(`/pin/${a.toV1().toString(base36)}`))
      assert.ok(batches[0].puts.includes('/noted/1'))
      assert.equal(batches[0].puts.length, 5 + 2, 'the records of a\'s five blocks, its key and the note')
      await assert.rejects(drain(ours.add(a, { notes: [note(2)] })), { name: 'AlreadyPinnedError' })
      assert.deepEqual(batches[1].puts, ['/noted/2'])
      assert.deepEqual([...await datastore.get(new Key('/noted/2'))], [2])
    })

    it('refuses a pin that exists with AlreadyPinnedError', async () => {
      const { blockstore, ours } = stores()
      const { a } = await dags(blockstore)
      await drain(ours.add(a))
      await assert.rejects(drain(ours.add(a.toV1())), { name: 'AlreadyPinnedError' })
    })

    it(sync ? 'reads its keys and records at once' : 'reads through the datastore\'s promises', async () => {
      const { datastore, blockstore, ours } = stores()
      const { a } = await dags(blockstore)
      await drain(ours.add(a))
      assert.equal(await ours.isPinned(a), true)
      assert.equal(datastore instanceof SyncMemoryDatastore && datastore.syncReads > 0, sync)
    })
  })
}
