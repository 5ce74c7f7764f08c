import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { repoBlockBytes } from '@node-daemon/daemon'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import { collect } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

const blockBytes = async (daemon: TestDaemon): Promise<number> => repoBlockBytes(join(daemon.repo, 'blocks'))

/** NDJSON lines of a response. */
async function lines (res: Response): Promise<any[]> {
  const text = await res.text()
  assert.equal(res.status, 200, text)
  return text.trim() === '' ? [] : text.trim().split('\n').map(line => JSON.parse(line))
}

describe('repo/gc and block/rm', { timeout: 120_000 }, () => {
  let d: TestDaemon
  let client: KuboRPCClient

  before(async () => {
    d = await startTestDaemon()
    client = create({ url: `${d.url}/api/v0`, timeout: 60_000 })
  })

  after(async () => {
    await d?.cleanup()
  })

  it('streams the removed blocks as Kubo\'s {"Key": {"/": cid}} lines, and keeps pinned content', async () => {
    const unpinned = await client.add(randomBytes(1000), { pin: false })
    const pinned = await client.add(randomBytes(1000))
    const res = await rpc(d, 'repo/gc', { quiet: 'true' })
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson')
    const keys = (await lines(res)).map(line => line.Key['/'])
    // Blocks are stored by multihash, so Kubo reports them as raw CIDv1s.
    assert.ok(keys.includes(CID.createV1(0x55, unpinned.cid.multihash).toString()))
    assert.ok(keys.every(key => CID.parse(key).code === 0x55))
    assert.equal(keys.includes(CID.createV1(0x55, pinned.cid.multihash).toString()), false)
    assert.equal((await client.block.stat(pinned.cid)).size > 0, true)
    // Through kubo-rpc-client, with nothing left to remove.
    assert.deepEqual(await collect(client.repo.gc()), [])
  })

  it('frees the disk after pin rm', async () => {
    const data = randomBytes(3 * 1_048_576)
    const { cid } = await client.add(data)
    const before = await blockBytes(d)
    await client.pin.rm(cid)
    const removed = await collect(client.repo.gc())
    assert.ok(removed.length >= 12, `${removed.length} blocks removed`)
    assert.ok(removed.every(r => r.err == null && r.cid != null))
    const after = await blockBytes(d)
    assert.ok(before - after >= data.byteLength, `blocks went from ${before} to ${after} bytes`)
    await assert.rejects(client.block.stat(cid, { offline: true } as any))
  })

  it('removes blocks with block/rm, refusing pinned ones in Kubo\'s words', async () => {
    const pinned = await client.add(randomBytes(500))
    const loose = await client.block.put(randomBytes(200))
    const missing = CID.createV1(0x55, (await client.add(randomBytes(100), { onlyHash: true, cidVersion: 1 })).cid.multihash)
    const results = await collect(client.block.rm([pinned.cid, loose, missing]))
    assert.deepEqual(results.map(r => [r.cid.toString(), r.error?.message]), [
      [pinned.cid.toString(), 'pinned: recursive'],
      [loose.toString(), undefined],
      [missing.toString(), `ipld: could not find ${missing}`]
    ])
    await assert.rejects(client.block.stat(loose, { offline: true } as any))
    // force: a block that is not here is no error; quiet: only the failures.
    const forced = await lines(await rpc(d, 'block/rm', { arg: [missing.toString(), pinned.cid.toString()], force: 'true', quiet: 'true' }))
    assert.deepEqual(forced, [{ Hash: pinned.cid.toString(), Error: 'pinned: recursive' }])
    const missingArg = await rpc(d, 'block/rm')
    assert.equal(missingArg.status, 400)
  })

  it('pins block/put and dag/put with pin=true before GC can see them', async () => {
    const block = await (await rpc(d, 'block/put', { pin: 'true' }, { body: formOf([{ path: 'b', content: randomBytes(64) }]) })).json()
    const node = await (await rpc(d, 'dag/put', { pin: 'true' }, { body: formOf([{ path: 'n', content: JSON.stringify({ n: Math.random() }) }]) })).json()
    await collect(client.repo.gc())
    assert.equal((await client.block.stat(CID.parse(block.Key), { offline: true } as any)).size, 64)
    assert.ok((await client.block.stat(CID.parse(node.cid), { offline: true } as any)).size > 0)
  })
})

describe('automatic GC past the watermark', { timeout: 120_000 }, () => {
  let d: TestDaemon

  before(async () => {
    d = await startTestDaemon({ content: { autoGc: true, storageMax: 1_000_000, storageGcWatermark: 50, gcPeriodMs: 100 } })
  })

  after(async () => {
    await d?.cleanup()
  })

  it('removes unpinned blocks once they take more than the watermark of storage_max, and keeps pinned ones', async () => {
    const client = create({ url: `${d.url}/api/v0`, timeout: 60_000 })
    const pinned = await client.add(randomBytes(300_000))
    const unpinned = await client.add(randomBytes(400_000), { pin: false })
    assert.ok(await blockBytes(d) > 500_000)
    let bytes = Infinity
    for (let i = 0; i < 200 && bytes > 500_000; i++) {
      await new Promise(resolve => setTimeout(resolve, 50))
      bytes = await blockBytes(d)
    }
    assert.ok(bytes <= 500_000, `the blocks still take ${bytes} bytes`)
    await assert.rejects(client.block.stat(unpinned.cid, { offline: true } as any))
    assert.deepEqual(Buffer.concat(await collect(client.cat(pinned.cid, { offline: true } as any))).byteLength, 300_000)
  })
})
