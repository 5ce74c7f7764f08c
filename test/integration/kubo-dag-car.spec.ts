import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import { CarBlockIterator, CarWriter } from '@ipld/car'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { rpc, startTestDaemon } from '../helpers/daemon.ts'
import { collect } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

async function cborBlock (value: unknown): Promise<{ cid: CID, bytes: Uint8Array }> {
  const bytes = dagCbor.encode(value)
  return { cid: CID.createV1(dagCbor.code, await sha256.digest(bytes)), bytes }
}

/** A CARv1 of `blocks` under `roots`, written with @ipld/car. */
async function carOf (roots: CID[], blocks: Array<{ cid: CID, bytes: Uint8Array }>): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create(roots)
  const chunks = collect(out)
  for (const block of blocks) await writer.put(block)
  await writer.close()
  return Buffer.concat(await chunks)
}

describe('dag/export and dag/import', { timeout: 120_000 }, () => {
  let a: TestDaemon
  let b: TestDaemon
  let client: KuboRPCClient
  let clientB: KuboRPCClient

  before(async () => {
    ;[a, b] = await Promise.all([startTestDaemon(), startTestDaemon()])
    client = create({ url: `${a.url}/api/v0`, timeout: 30_000 })
    clientB = create({ url: `${b.url}/api/v0`, timeout: 30_000 })
  })

  after(async () => {
    await Promise.allSettled([a?.cleanup(), b?.cleanup()])
  })

  it('imports a DAG whose blocks are linked many times over, pinned, and exports the CAR Kubo writes', async () => {
    // A chain as Lotus exports one: each node links to the one before twice, so there are
    // 2^40 paths down it. Pinning walked every path; the walk now takes each block once.
    const chain = [await cborBlock({ genesis: true, tag: CID.createV1(dagCbor.code, identity.digest(dagCbor.encode('id'))) })]
    for (let i = 1; i <= 40; i++) chain.push(await cborBlock({ height: i, parents: [chain[i - 1].cid, chain[i - 1].cid], state: chain[0].cid }))
    const root = chain[chain.length - 1]
    const idBlock = { cid: CID.createV1(dagCbor.code, identity.digest(dagCbor.encode('id'))), bytes: dagCbor.encode('id') }
    // Kubo's order (go-car's TraverseV1, no duplicate puts): depth first, links in node order, each block
    // once, identity blocks too. dag-cbor orders keys shortest first: a node's state before its parents.
    const canonical = await carOf([root.cid], [root, chain[0], idBlock, ...chain.slice(1, -1).reverse()])
    const shuffled = await carOf([root.cid], [idBlock, ...chain])
    const started = Date.now()
    const imported = await collect(client.dag.import((async function * () { yield shuffled })()))
    assert.deepEqual(imported.map(r => [r.root.cid.toString(), r.root.pinErrorMsg]), [[root.cid.toString(), '']])
    assert.ok(Date.now() - started < 30_000, 'the pin walks each block once')
    const exported = Buffer.concat(await collect(client.dag.export(root.cid)))
    assert.deepEqual(exported, Buffer.from(canonical))
  })

  it('exports a DAG that another node imports, roots pinned', async () => {
    const dir = (await collect(client.addAll([{ path: 'd/a.txt', content: 'aaa' }, { path: 'd/b.txt', content: 'bbb' }]))).at(-1)
    assert.ok(dir != null)
    const car = Buffer.concat(await collect(client.dag.export(dir.cid)))
    const reader = await CarBlockIterator.fromBytes(car)
    assert.deepEqual((await reader.getRoots()).map(String), [dir.cid.toString()])
    assert.equal((await collect(reader)).length, 3)

    const imported = await collect(clientB.dag.import([car]))
    assert.deepEqual(imported, [{ root: { cid: dir.cid, pinErrorMsg: '' } }])
    const pins = await collect(clientB.pin.ls({ paths: [dir.cid] }))
    assert.equal(pins[0]?.type, 'recursive')
    const cat = await rpc(b, 'cat', { arg: `/ipfs/${dir.cid}/b.txt`, offline: 'true' })
    assert.equal(await cat.text(), 'bbb')
  })

  it('leaves roots unpinned with pin-roots=false, and counts with stats', async () => {
    const block = await cborBlock({ hello: 'car', at: 1 })
    const form = new FormData()
    form.append('file', new Blob([await carOf([block.cid], [block]) as BlobPart]), 'x.car')
    const res = await rpc(b, 'dag/import', { 'pin-roots': 'false', stats: 'true' }, { body: form })
    assert.equal(res.status, 200)
    const lines = (await res.text()).trim().split('\n').map(l => JSON.parse(l))
    assert.deepEqual(lines, [
      { Root: { Cid: { '/': block.cid.toString() }, PinErrorMsg: '' } },
      { Stats: { BlockCount: 1, BlockBytesCount: block.bytes.length } }
    ])
    assert.equal((await collect(clientB.pin.ls({ type: 'recursive' }))).some(p => p.cid.equals(block.cid)), false)
    assert.equal((await rpc(b, 'block/stat', { arg: block.cid.toString(), offline: 'true' })).status, 200)
  })

  it('says why a root whose DAG is not all in the CARs is not pinned', async () => {
    const missing = await cborBlock({ missing: true })
    const parent = await cborBlock({ child: missing.cid })
    const lines = await collect(clientB.dag.import([await carOf([parent.cid], [parent])]))
    assert.equal(lines.length, 1)
    assert.notEqual(lines[0].root.pinErrorMsg, '')
    // A root that is not in the CARs at all, in Kubo's words.
    const absent = await cborBlock({ absent: true })
    const [alone] = await collect(clientB.dag.import([await carOf([absent.cid], [])]))
    assert.equal(alone.root.pinErrorMsg, `ipld: could not find ${absent.cid}`)
  })

  it('refuses a block that does not match its CID, and a body that is not a CAR, with 400', async () => {
    const good = await cborBlock({ good: true })
    const bad = await carOf([good.cid], [{ cid: good.cid, bytes: dagCbor.encode({ good: false }) }])
    for (const body of [bad, new TextEncoder().encode('not a car at all')]) {
      const form = new FormData()
      form.append('file', new Blob([body as BlobPart]), 'x.car')
      const res = await rpc(b, 'dag/import', {}, { body: form })
      assert.equal(res.status, 400)
      const err = await res.json()
      assert.equal(err.Type, 'error')
    }
    assert.equal((await rpc(b, 'block/stat', { arg: good.cid.toString(), offline: 'true' })).status, 404)
  })

  it('answers 404 to an export of what is not there, offline', async () => {
    const absent = await cborBlock({ absent: true })
    const res = await rpc(a, 'dag/export', { arg: absent.cid.toString(), offline: 'true' })
    assert.equal(res.status, 404)
    assert.equal((await res.json()).Type, 'error')
  })
})
