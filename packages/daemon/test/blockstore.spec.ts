import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { base32upper } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { PackBlockstore } from '../src/blockstore.ts'

async function block (size: number): Promise<{ cid: CID, bytes: Uint8Array }> {
  const bytes = randomBytes(size)
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

async function bytesOf (store: PackBlockstore, cid: CID): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of store.get(cid)) chunks.push(chunk)
  return Buffer.concat(chunks)
}

async function allOf (store: PackBlockstore): Promise<string[]> {
  const keys: string[] = []
  for await (const { cid } of store.getAll()) keys.push(cid.toString())
  return keys.sort()
}

async function packBytes (dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size
  return total
}

/** Overwrites every pack with zeros: what a read from the packs gives from then on. */
async function zeroPacks (dir: string): Promise<void> {
  for (const name of await readdir(dir)) await writeFile(join(dir, name), Buffer.alloc((await stat(join(dir, name))).size))
}

async function opened (dir: string, packBytes?: number): Promise<PackBlockstore> {
  const store = new PackBlockstore(dir, { packBytes })
  await store.open()
  return store
}

describe('pack blockstore', () => {
  let root: string
  let n = 0
  const fresh = (): string => join(root, `store-${n++}`)

  before(async () => { root = await mkdtemp(join(tmpdir(), 'node-daemon-packs-')) })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  it('keeps blocks by multihash across a reopen, and a deleted one stays deleted', async () => {
    const dir = fresh()
    let store = await opened(dir)
    const blocks = await Promise.all([1, 1000, 262_158, 0].map(block))
    await Promise.all(blocks.map(async b => store.put(b.cid, b.bytes)))
    // CIDv0 and CIDv1 of the same multihash are one block.
    const v0 = CID.createV0(await sha256.digest(blocks[2].bytes))
    assert.equal(await store.has(v0), true)
    assert.deepEqual(await bytesOf(store, v0), Buffer.from(blocks[2].bytes))
    await store.delete(blocks[1].cid)
    await store.close()

    store = await opened(dir)
    assert.equal(await store.has(blocks[1].cid), false)
    await assert.rejects(bytesOf(store, blocks[1].cid), { name: 'NotFoundError' })
    for (const b of [blocks[0], blocks[2], blocks[3]]) assert.deepEqual(await bytesOf(store, b.cid), Buffer.from(b.bytes))
    assert.deepEqual(await allOf(store), [blocks[0], blocks[2], blocks[3]].map(b => b.cid.toString()).sort())
    // Put again after its deletion, a block is back for good.
    await store.put(blocks[1].cid, blocks[1].bytes)
    await store.close()
    store = await opened(dir)
    assert.deepEqual(await bytesOf(store, blocks[1].cid), Buffer.from(blocks[1].bytes))
    await store.close()
  })

  it('drops a record a crash cut short, and only it, and writes on after it', async () => {
    const dir = fresh()
    let store = await opened(dir)
    const [a, b, c] = await Promise.all([100, 200, 300].map(block))
    for (const x of [a, b]) await store.put(x.cid, x.bytes)
    await store.close()
    const [pack] = await readdir(dir)
    const whole = (await stat(join(dir, pack))).size
    await truncate(join(dir, pack), whole - 10)

    store = await opened(dir)
    assert.equal(await store.has(a.cid), true)
    assert.equal(await store.has(b.cid), false)
    assert.ok((await stat(join(dir, pack))).size < whole - 10, 'the torn record is cut off')
    await store.put(c.cid, c.bytes)
    await store.close()
    store = await opened(dir)
    assert.deepEqual(await allOf(store), [a, c].map(x => x.cid.toString()).sort())
    await store.close()
  })

  it('gives back the room of deleted blocks, and no deleted block comes back after a reopen', async () => {
    const dir = fresh()
    let store = await opened(dir, 4096)
    const blocks = await Promise.all(Array.from({ length: 24 }, async () => block(1000)))
    for (const b of blocks) await store.put(b.cid, b.bytes)
    assert.ok((await readdir(dir)).length >= 5, 'several packs')
    const kept = blocks.filter((_, i) => i % 4 === 0)
    for (const b of blocks) if (!kept.includes(b)) await store.delete(b.cid)
    const before = await packBytes(dir)
    await store.compact()
    const after = await packBytes(dir)
    assert.ok(after < before / 2, `packs went from ${before} to ${after} bytes`)
    for (const b of kept) assert.deepEqual(await bytesOf(store, b.cid), Buffer.from(b.bytes))
    await store.close()

    store = await opened(dir, 4096)
    assert.deepEqual(await allOf(store), kept.map(b => b.cid.toString()).sort())
    await store.close()
  })

  it('keeps a tombstone while the pack of the block it deletes is still there', async () => {
    const dir = fresh()
    let store = await opened(dir, 4000)
    const [a, b, c, d, e, f] = await Promise.all(Array.from({ length: 6 }, async () => block(1000)))
    // Pack 1 holds a, b, c and f; a's deletion goes into pack 2 with d and e.
    for (const x of [a, b, c, f, d]) await store.put(x.cid, x.bytes)
    await store.delete(a.cid)
    await store.put(e.cid, e.bytes)
    // Pack 2 is now all garbage, pack 1 only a quarter: compacting pack 2 must carry a's tombstone along.
    await store.delete(d.cid)
    await store.delete(e.cid)
    await store.compact()
    assert.equal((await readdir(dir)).length, 2, 'pack 1 stays, pack 2 is replaced')
    await store.close()
    store = await opened(dir, 4000)
    assert.deepEqual(await allOf(store), [b, c, f].map(x => x.cid.toString()).sort())
    await store.close()
  })

  it('moves the blocks of a repo in Kubo\'s flatfs layout into packs', async () => {
    const dir = fresh()
    const blocks = await Promise.all([10, 262_144].map(block))
    const leaf = dagPb.encode({ Data: randomBytes(50), Links: [] })
    const v0 = CID.createV0(await sha256.digest(leaf))
    for (const { cid, bytes } of [...blocks, { cid: v0, bytes: leaf }]) {
      const name = base32upper.encode(cid.multihash.bytes)
      await mkdir(join(dir, name.slice(-3, -1)), { recursive: true })
      await writeFile(join(dir, name.slice(-3, -1), `${name}.data`), bytes)
    }
    await mkdir(join(dir, 'AA'))
    await writeFile(join(dir, 'AA', 'CIQX.data.123.tmp'), 'torn')

    let store = await opened(dir)
    assert.deepEqual((await readdir(dir)).filter(name => !name.endsWith('.pack')), [], 'the shard directories are gone')
    for (const b of blocks) assert.deepEqual(await bytesOf(store, b.cid), Buffer.from(b.bytes))
    assert.deepEqual(await bytesOf(store, v0), Buffer.from(leaf))
    await store.close()
    store = await opened(dir)
    assert.equal((await allOf(store)).length, 3)
    await store.close()
  })

  it('reads from more packs than it keeps open', async () => {
    const dir = fresh()
    let store = await opened(dir, 100)
    const blocks = await Promise.all(Array.from({ length: 100 }, async () => block(200)))
    for (const b of blocks) await store.put(b.cid, b.bytes)
    await store.close()
    assert.equal((await readdir(dir)).length, 100)
    store = await opened(dir, 100)
    for (const round of [0, 1]) {
      for (const b of blocks) assert.deepEqual(await bytesOf(store, b.cid), Buffer.from(b.bytes), `round ${round}`)
    }
    await store.close()
  })

  it('writes a block put many times at once once, in one record of its own', async () => {
    const dir = fresh()
    let store = await opened(dir)
    const blocks = await Promise.all(Array.from({ length: 40 }, async (_, i) => block(i * 1000)))
    await Promise.all([...blocks, ...blocks, ...blocks].map(async b => store.put(b.cid, b.bytes)))
    await store.close()
    const records = blocks.reduce((sum, b) => sum + 8 + b.cid.multihash.bytes.byteLength + b.bytes.byteLength, 0)
    assert.equal(await packBytes(dir), records)
    store = await opened(dir)
    for (const b of blocks) assert.deepEqual(await bytesOf(store, b.cid), Buffer.from(b.bytes))
    await store.close()
  })

  it('serves small blocks it wrote or read lately from memory, and large ones and deleted ones not', async () => {
    const dir = fresh()
    let store = await opened(dir)
    const [small, large, gone] = await Promise.all([1024, 65_536, 512].map(block))
    for (const b of [small, large, gone]) await store.put(b.cid, b.bytes)
    await store.sync()
    await store.delete(gone.cid)
    await zeroPacks(dir)
    assert.deepEqual(await bytesOf(store, small.cid), Buffer.from(small.bytes))
    assert.deepEqual(await bytesOf(store, large.cid), Buffer.alloc(large.bytes.byteLength))
    await assert.rejects(bytesOf(store, gone.cid), { name: 'NotFoundError' })
    await store.close()

    // Read once from its pack, a small block is kept too.
    const other = fresh()
    store = await opened(other)
    await store.put(small.cid, small.bytes)
    await store.close()
    store = await opened(other)
    assert.deepEqual(await bytesOf(store, small.cid), Buffer.from(small.bytes))
    await zeroPacks(other)
    assert.deepEqual(await bytesOf(store, small.cid), Buffer.from(small.bytes))
    await store.close()
  })
})
