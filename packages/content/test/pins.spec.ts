import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { Key } from 'interface-datastore'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { equals } from 'uint8arrays/equals'
import { getBlock } from '../src/blocks.ts'
import { dagSize, pinAdd, pinLs, pinRm } from '../src/pins.ts'
import { goRandom } from './fixtures/go-random.ts'
import { added, bytes, collect, concat, rootOf, startConnectedPair, startContent } from './fixtures/node.ts'
import type { PinEntry } from '../src/pins.ts'
import type { Content } from '../src/content.ts'

// The testData tree and its CIDs are those of ipfs/kubo test/sharness/t0045-ls.sh.
const TEST_DATA = 'QmfNy183bXiRVyrhyWtq3TwHn79yHEkiAGFr18P7YNzESj'
const D1 = 'QmSix55yz8CzWXf5ZVM9vgEvijnEeeXiTSarVtsqiiCJss'
const D2 = 'QmR3jhV4XpxxPjPT3Y8vNnWvWNvakdcT3H6vqpRBsX1MLy'
const D1_128 = 'QmQNd6ubRXaNG6Prov8o6vk3bn6eWsj9FxLGrAVDUAGkGe'
const D1_A = 'QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN'
const D2_1024 = 'QmbQBUSRL9raZtNXfpTDeaxQapibJEG6qEY8WqAN22aUzd'
const D2_A = 'QmaRGe7bVmVaLmxbrMiVNXqW4pRNNp3xq7hFtyRKA3mtJL'
const F1 = 'QmeomffUNfmQy76CQGy9NdmqEnnHU9soCexBnGU3ezPHVH'
const F2 = 'QmNtocSs7MoDkJMc1RkyisCSKvLadujPsfJfSdJ3e1eA1M'
const UNDER_TEST_DATA = [D1, D2, D1_128, D1_A, D2_1024, D2_A, F1, F2]

function entries (pins: PinEntry[]): Array<[string, string]> {
  return pins.map(p => [p.cid.toString(), p.type])
}

function sorted (pins: Array<[string, string]>): Array<[string, string]> {
  return [...pins].sort((a, b) => a[0].localeCompare(b[0]))
}

describe('pins', () => {
  let content: Content

  before(async () => {
    content = await startContent()
    // Added without pins: each test pins what it needs and unpins it again.
    await added(content.addAll([
      { path: 'testData/d1/128', content: concat([...goRandom(128, 42)]) },
      { path: 'testData/d1/a', content: bytes('hello\n') },
      { path: 'testData/d2/1024', content: concat([...goRandom(1024, 42)]) },
      { path: 'testData/d2/a', content: bytes('world\n') },
      { path: 'testData/f1', content: bytes('test\n') },
      { path: 'testData/f2', content: bytes('data\n') }
    ], { pin: false }))
  })

  after(async () => {
    await content?.stop()
  })

  async function unpinAll (): Promise<void> {
    for (const pin of await collect(content.pinLs('all'))) {
      if (pin.type !== 'indirect') await content.pinRm(pin.cid.toString(), pin.type === 'recursive')
    }
    assert.deepEqual(await collect(content.pinLs('all')), [])
  }

  it('lists nothing when nothing is pinned', async () => {
    assert.deepEqual(await collect(content.pinLs()), [])
  })

  it('lists a recursive pin, and every block under it as indirect', async () => {
    assert.equal((await content.pinAdd(TEST_DATA)).toString(), TEST_DATA)
    try {
      assert.deepEqual(entries(await collect(content.pinLs('recursive'))), [[TEST_DATA, 'recursive']])
      assert.deepEqual(entries(await collect(content.pinLs('direct'))), [])
      assert.deepEqual(sorted(entries(await collect(content.pinLs('indirect')))), sorted(UNDER_TEST_DATA.map(cid => [cid, 'indirect'])))
      const all = entries(await collect(content.pinLs('all')))
      assert.deepEqual(all[0], [TEST_DATA, 'recursive'])
      assert.deepEqual(sorted(all.slice(1)), sorted(UNDER_TEST_DATA.map(cid => [cid, 'indirect'])))
    } finally {
      await unpinAll()
    }
  })

  it('keeps listing CIDv0 pins as CIDv0, as Kubo does', async () => {
    await content.pinAdd(`/ipfs/${F1}`)
    try {
      const [pin] = await collect(content.pinLs('recursive'))
      assert.equal(pin.cid.toString(), F1)
      assert.equal(pin.cid.version, 0)
    } finally {
      await unpinAll()
    }
  })

  it('tells how specific CIDs are pinned, in the order asked', async () => {
    await content.pinAdd(D1)
    await content.pinAdd(F2, false)
    try {
      assert.deepEqual(entries(await collect(content.pinLs('all', [F2, D1_A, D1]))), [[F2, 'direct'], [D1_A, 'indirect'], [D1, 'recursive']])
      assert.deepEqual(entries(await collect(content.pinLs('indirect', [D1_128]))), [[D1_128, 'indirect']])
      await assert.rejects(collect(content.pinLs('all', [F1])), { name: 'PinError' })
      await assert.rejects(collect(content.pinLs('recursive', [D1_A])), { name: 'PinError' })
      await assert.rejects(collect(content.pinLs('direct', [D1])), { name: 'PinError' })
    } finally {
      await unpinAll()
    }
  })

  it('pins one block directly, and lists a direct pin under a recursive one as direct only', async () => {
    await content.pinAdd(TEST_DATA)
    await content.pinAdd(F1, false)
    try {
      assert.deepEqual(entries(await collect(content.pinLs('direct'))), [[F1, 'direct']])
      const all = entries(await collect(content.pinLs('all')))
      assert.deepEqual(all.filter(([cid]) => cid === F1), [[F1, 'direct']])
      // Kubo's `pin ls --type=indirect` leaves out what is pinned directly.
      const indirect = entries(await collect(content.pinLs('indirect')))
      assert.deepEqual(sorted(indirect), sorted(UNDER_TEST_DATA.filter(cid => cid !== F1).map(cid => [cid, 'indirect'])))
    } finally {
      await unpinAll()
    }
  })

  it('finds a direct pin under a recursive one as direct and as indirect when asked for each, as Kubo\'s IsPinnedWithType', async () => {
    await content.pinAdd(F1, false)
    await content.pinAdd(TEST_DATA)
    try {
      assert.deepEqual(entries(await collect(content.pinLs('direct', [F1]))), [[F1, 'direct']])
      const [indirect] = await collect(content.pinLs('indirect', [F1]))
      assert.deepEqual([indirect.type, indirect.through?.toString()], ['indirect', TEST_DATA])
      // With no type asked, the first that holds: direct.
      assert.deepEqual(entries(await collect(content.pinLs('all', [F1]))), [[F1, 'direct']])
      // The indirect pin tells which recursive pin it is under; a root is not indirect through itself.
      assert.equal((await collect(content.pinLs('all', [`${TEST_DATA}/d1/a`])))[0].through?.toString(), TEST_DATA)
      await assert.rejects(collect(content.pinLs('indirect', [TEST_DATA])), { name: 'PinError' })
    } finally {
      await unpinAll()
    }
  })

  it('names in its errors the path asked for, a bare CID as its /ipfs/ path, as Kubo', async () => {
    await content.pinAdd(TEST_DATA)
    try {
      await assert.rejects(collect(content.pinLs('direct', [`/ipfs/${TEST_DATA}/d1/a`])), { name: 'PinError', message: `path '/ipfs/${TEST_DATA}/d1/a' is not pinned` })
      await assert.rejects(collect(content.pinLs('direct', [D1])), { name: 'PinError', message: `path '/ipfs/${D1}' is not pinned` })
      await assert.rejects(collect(content.pinLs('all', [`/ipfs/${TEST_DATA}/nope`])), { name: 'NotFoundError', message: `no link named "nope" under ${TEST_DATA}` })
    } finally {
      await unpinAll()
    }
  })

  it('keeps the name a pin was given, and lists only pins whose name contains a filter', async () => {
    await content.pinAdd(D1, true, { name: 'file one' })
    await content.pinAdd(F2, false, { name: 'file two' })
    await content.pinAdd(D2)
    try {
      const all = await collect(content.pinLs('all'))
      assert.deepEqual(all.filter(p => p.type !== 'indirect').map(p => [p.cid.toString(), p.name]).sort(), [[D1, 'file one'], [D2, undefined], [F2, 'file two']].sort())
      assert.deepEqual(entries(await collect(content.pinLs('all', [], { name: 'file' }))).sort(), [[D1, 'recursive'], [F2, 'direct']].sort())
      assert.deepEqual(entries(await collect(content.pinLs('all', [], { name: 'two' }))), [[F2, 'direct']])
      assert.deepEqual(await collect(content.pinLs('all', [], { name: 'File' })), [])
      assert.deepEqual(entries(await collect(content.pinLs('recursive', [D1, D2], { name: 'one' }))), [[D1, 'recursive']])
      await assert.rejects(content.pinAdd(F1, true, { name: 'x'.repeat(256) }), { name: 'InvalidParameterError' })
    } finally {
      await unpinAll()
    }
  })

  it('moves a recursive pin with its name, unpinning the old one unless told not to, as Kubo\'s pin update', async () => {
    await content.pinAdd(D1, true, { name: 'moving' })
    try {
      assert.deepEqual((await content.pinUpdate(D1, D2)).map(String), [D1, D2])
      assert.deepEqual((await collect(content.pinLs('recursive'))).map(p => [p.cid.toString(), p.name]), [[D2, 'moving']])
      await assert.rejects(collect(content.pinLs('all', [D1_A])), { name: 'PinError' })
    } catch (err) {
      await unpinAll()
      throw err
    }
    await assert.rejects(collect(content.pinLs('all', [D1])), { name: 'PinError' })
    try {
      await content.pinUpdate(D2, TEST_DATA, { unpin: false })
      assert.deepEqual(entries(await collect(content.pinLs('recursive'))).sort(), [[D2, 'recursive'], [TEST_DATA, 'recursive']].sort())
      await content.pinAdd(F1, false)
      await assert.rejects(content.pinUpdate(F1, F2), { name: 'PinError', message: /not recursively pinned/ })
      await assert.rejects(content.pinUpdate(D1, F2), { name: 'PinError', message: /not recursively pinned/ })
    } finally {
      await unpinAll()
    }
  })

  it('pins the same CID from concurrent calls once, each of them succeeding, also one that looked before another pinned it', async () => {
    try {
      // Both look for an existing pin before either makes it: the second to add it must not fail.
      await Promise.all([content.pinAdd(D2, true), content.pinAdd(D2, true), content.pinAdd(D2, true)])
      assert.deepEqual(entries(await collect(content.pinLs('recursive'))), [[D2, 'recursive']])
      // The race itself, made certain: a call that looked for the pin before another one made it.
      const { pins, blockstore } = content.helia
      let looked = false
      const late = { blockstore, pins: Object.assign(Object.create(pins), { get: async (...args: Parameters<typeof pins.get>) => { if (looked) return pins.get(...args); looked = true; throw new Error('not pinned yet') } }) }
      await pinAdd(late, CID.parse(D2), true)
    } finally {
      await unpinAll()
    }
  })

  it('pins a new CID without reading the pin store for it first, and one pinned already by reading it once', async () => {
    const { pins, blockstore } = content.helia
    let gets = 0
    const counted = { blockstore, pins: Object.assign(Object.create(pins), { get: async (...args: Parameters<typeof pins.get>) => { gets++; return pins.get(...args) } }) }
    try {
      await pinAdd(counted, CID.parse(D1), true)
      assert.equal(gets, 0)
      await pinAdd(counted, CID.parse(D1), true, { name: 'renamed' })
      assert.equal(gets, 1)
      assert.deepEqual((await collect(content.pinLs('recursive'))).map(p => [p.cid.toString(), p.name]), [[D1, 'renamed']])
    } finally {
      await unpinAll()
    }
  })

  it('finds a block indirectly pinned after other pins over it were removed and made again', async () => {
    await content.pinAdd(TEST_DATA)
    await content.pinAdd(D1)
    try {
      await content.pinRm(TEST_DATA)
      await content.pinAdd(TEST_DATA)
      await content.pinRm(D1)
      assert.deepEqual(entries(await collect(content.pinLs('indirect', [D1_A]))), [[D1_A, 'indirect']])
    } finally {
      await unpinAll()
    }
  })

  it('turns a direct pin into a recursive one, and refuses the reverse', async () => {
    await content.pinAdd(D2, false)
    try {
      assert.deepEqual(entries(await collect(content.pinLs('all'))), [[D2, 'direct']])
      await content.pinAdd(D2, true)
      assert.deepEqual(entries(await collect(content.pinLs('all'))), [[D2, 'recursive'], [D2_1024, 'indirect'], [D2_A, 'indirect']])
      await assert.rejects(content.pinAdd(D2, false), { name: 'PinError' })
      // Pinning again the same way changes nothing.
      await content.pinAdd(D2, true)
      assert.deepEqual(entries(await collect(content.pinLs('recursive'))), [[D2, 'recursive']])
    } finally {
      await unpinAll()
    }
  })

  it('refuses to unpin an indirect pin with PinError, and keeps it', async () => {
    await content.pinAdd(TEST_DATA)
    try {
      await assert.rejects(content.pinRm(F1), { name: 'PinError', message: new RegExp(`${F1} is pinned indirectly`) })
      await assert.rejects(content.pinRm(D1, false), { name: 'PinError' })
      assert.deepEqual(entries(await collect(content.pinLs('indirect', [F1]))), [[F1, 'indirect']])
    } finally {
      await unpinAll()
    }
  })

  it('refuses to unpin what is not pinned, and a recursive pin without recursive', async () => {
    await assert.rejects(content.pinRm(F2), { name: 'PinError', message: new RegExp(`${F2} is not pinned`) })
    await content.pinAdd(D1)
    try {
      await assert.rejects(content.pinRm(D1, false), { name: 'PinError', message: /pinned recursively/ })
      assert.deepEqual(entries(await collect(content.pinLs('recursive'))), [[D1, 'recursive']])
    } finally {
      await unpinAll()
    }
  })

  it('unpins recursive and direct pins', async () => {
    await content.pinAdd(D1)
    await content.pinAdd(F1, false)
    assert.equal((await content.pinRm(D1)).toString(), D1)
    assert.equal((await content.pinRm(F1, false)).toString(), F1)
    assert.deepEqual(await collect(content.pinLs()), [])
    assert.equal(await content.helia.pins.isPinned(CID.parse(D1_A)), false)
  })

  it('unpins a DAG that lost a block, without looking for the block', async () => {
    const store = new MemoryBlockstore()
    const node = await startContent({ blockstore: store })
    try {
      const root = await rootOf(node, [{ path: 'holed.bin', content: concat([...goRandom(5000, 7)]) }], { chunker: 'size-1024', rawLeaves: true })
      const leaf = dagPb.decode(await getBlock(node.helia.blockstore, CID.parse(root))).Links[2].Hash
      // Lost beneath Helia, which refuses to delete a pinned block.
      await store.delete(leaf)
      await node.pinRm(root, true, { signal: AbortSignal.timeout(10_000) })
      assert.deepEqual(await collect(node.pinLs('all')), [])
    } finally {
      await node.stop()
    }
  })

  it('pins, lists and unpins what a path names, not its root', async () => {
    await content.pinAdd(`/ipfs/${TEST_DATA}/d1`)
    try {
      assert.deepEqual(entries(await collect(content.pinLs('recursive'))), [[D1, 'recursive']])
      assert.deepEqual(entries(await collect(content.pinLs('all', [`${TEST_DATA}/d1/a`]))), [[D1_A, 'indirect']])
      assert.equal((await content.pinRm(`${TEST_DATA}/d1`)).toString(), D1)
      assert.deepEqual(await collect(content.pinLs()), [])
    } finally {
      await unpinAll()
    }
  })

  it('walks dag-cbor links for indirect pins', async () => {
    const leaf = await rootOf(content, [{ content: bytes('linked from cbor\n') }], { pin: false })
    const node = await content.dagPut(bytes(`{"list":[{"/":"${leaf}"}],"n":1}`))
    await content.pinAdd(node.toString())
    try {
      assert.deepEqual(entries(await collect(content.pinLs('all'))), [[node.toString(), 'recursive'], [leaf, 'indirect']])
    } finally {
      await unpinAll()
    }
  })

  it('writes a caller\'s notes into the datastore with a new pin, and with one that exists already', async () => {
    const cid = await rootOf(content, [{ content: bytes('noted\n') }], { pin: false })
    const note = (n: number): { key: Key, value: Uint8Array } => ({ key: new Key(`/test/noted/${n}`), value: Uint8Array.of(n) })
    try {
      await content.pinAdd(cid, true, { notes: [note(1)] })
      await content.pinAdd(cid, true, { notes: [note(2)] })
      assert.deepEqual([...await content.helia.datastore.get(note(1).key)], [1])
      assert.deepEqual([...await content.helia.datastore.get(note(2).key)], [2])
    } finally {
      await unpinAll()
    }
  })

  it('sizes a DAG, or tells that its root is not here, without Helia\'s blockstore, whose GC lock a cluster node took for every pin', async () => {
    const absent = CID.createV1(0x55, await sha256.digest(randomBytes(100)))
    const present = CID.parse(await rootOf(content, [{ content: randomBytes(3 * 262144) }], { pin: false }))
    const root = await content.blockGet(present.toString())
    // Helia's BlockStorage reads under this lock; boundedFetches holds its methods bound, so the lock is what can be watched.
    const { lock } = content.helia.blockstore as unknown as { lock: { readLock: (...args: unknown[]) => Promise<() => void> } }
    const readLock = lock.readLock
    let locked = 0
    lock.readLock = async function (...args) { locked++; return readLock.apply(this, args) }
    try {
      assert.equal(await content.dagSize(absent.toString()), undefined)
      assert.equal(await content.dagSize(present.toString()), root.byteLength + 3 * (262144 + 14))
    } finally {
      lock.readLock = readLock
    }
    assert.equal(locked, 0)
  })

  it('sizes a DAG from its local blocks, and one whose root is not here as undefined without reading it', async () => {
    const cid = CID.parse(await rootOf(content, [{ content: bytes('sized\n') }], { pin: false }))
    const block = await content.blockGet(cid.toString())
    const local = { has: async () => true, get: async function * () { yield block } }
    assert.equal(await dagSize(local, cid), block.byteLength)
    const absent = { has: async () => false, get: async function * () { throw new Error('not read') } }
    assert.equal(await dagSize(absent, cid), undefined)
  })

  describe('with a stub of the Pins interface', () => {
    it('pins recursively with depth Infinity and directly with depth 0, keeping the CID as given', async () => {
      const calls: Array<[string, number | undefined, unknown]> = []
      const components = {
        blockstore: { get: async function * () { throw new Error('not read') } },
        pins: {
          get: async () => { throw Object.assign(new Error('not pinned'), { name: 'NotFoundError' }) },
          add: async function * (cid: CID, options: { depth?: number, metadata?: unknown }) {
            calls.push([cid.toString(), options.depth, options.metadata])
            yield cid
          }
        }
      } as any
      await pinAdd(components, CID.parse(F1), true)
      await pinAdd(components, CID.parse(F2), false)
      assert.deepEqual(calls, [[F1, Infinity, { cid: F1 }], [F2, 0, { cid: F2 }]])
    })

    it('removes through pins.rm and lists from pins.ls', async () => {
      const removed: string[] = []
      const components = {
        blockstore: { get: async function * () { throw new Error('not read') } },
        pins: {
          get: async (cid: CID) => ({ cid, depth: 0, metadata: {} }),
          rm: async function * (cid: CID) { removed.push(cid.toString()); yield cid },
          ls: async function * () { yield { cid: CID.parse(F1).toV1(), depth: 0, metadata: { cid: F1 } } },
          isPinned: async () => false
        }
      } as any
      await pinRm(components, CID.parse(F2), false)
      assert.deepEqual(removed, [F2])
      assert.deepEqual(entries(await collect(pinLs(components, 'all'))), [[F1, 'direct']])
    })
  })

  describe('pinning a DAG that another node holds', () => {
    let a: Content
    let b: Content
    let stop = async (): Promise<void> => {}

    before(async () => { ({ a, b, stop } = await startConnectedPair()) })
    after(async () => { await stop() })

    /**
     * Kubo's layout in miniature on A, not pinned: dag-pb leaves of 1 KiB, more
     * than the 174 links of a node, so two levels of nodes above them.
     */
    async function onA (leaves: number): Promise<{ root: string, data: Uint8Array, leaf: CID }> {
      const data = randomBytes(leaves * 1024)
      const root = await rootOf(a, [{ content: data }], { pin: false, chunker: 'size-1024' })
      const inner = dagPb.decode(await getBlock(a.helia.blockstore, CID.parse(root)))
      const leaf = dagPb.decode(await getBlock(a.helia.blockstore, inner.Links[1].Hash)).Links[7].Hash
      return { root, data, leaf }
    }

    it('fetches the whole DAG, every block checked against its CID', async () => {
      const { root, data } = await onA(300)
      const received = b.blockStream.stats.blocksReceived
      await b.pinAdd(root, true, { signal: AbortSignal.timeout(30_000) })
      const pins = await collect(b.pinLs('all'))
      assert.deepEqual(entries(pins.filter(p => p.type === 'recursive')), [[root, 'recursive']])
      // 300 leaves, the 2 nodes above them and the root.
      assert.equal(pins.length, 303)
      for (const { cid } of pins) {
        const block = await getBlock(b.helia.blockstore, cid, { offline: true })
        assert.ok(equals((await sha256.digest(block)).digest, cid.multihash.digest), `${cid} does not hash to its CID`)
      }
      assert.ok(b.blockStream.stats.blocksReceived - received >= 300)
      assert.deepEqual(Buffer.from(concat(await collect(b.cat(root, { signal: AbortSignal.timeout(10_000) })))), data)
    })

    it('fails at the deadline when a block is missing everywhere, pinning nothing', async () => {
      const { root, leaf } = await onA(200)
      await a.helia.blockstore.delete(leaf)
      const t0 = performance.now()
      await assert.rejects(b.pinAdd(root, true, { signal: AbortSignal.timeout(2_000) }), { name: 'TimeoutError' })
      assert.ok(performance.now() - t0 < 6_000, `gave up after ${Math.round(performance.now() - t0)} ms`)
      assert.deepEqual(entries(await collect(b.pinLs('recursive'))).filter(([cid]) => cid === root), [])
      assert.equal(await b.helia.blockstore.has(leaf), false)
    })

    it('refuses a block whose bytes do not hash to its CID, and stores none of them', async () => {
      const { root, leaf } = await onA(200)
      // Other bytes under the leaf's CID on A, as a faulty or malicious peer would serve them (Helia's put does not hash).
      await a.helia.blockstore.delete(leaf)
      await a.helia.blockstore.put(leaf, randomBytes(1024))
      await assert.rejects(b.pinAdd(root, true, { signal: AbortSignal.timeout(2_000) }))
      assert.deepEqual(entries(await collect(b.pinLs('recursive'))).filter(([cid]) => cid === root), [])
      assert.equal(await b.helia.blockstore.has(leaf), false)
    })
  })
})
