import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { rpc, startTestDaemon } from '../helpers/daemon.ts'
import { collect, ndjson } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

describe('refs, refs/local, dag/resolve and resolve', { timeout: 120_000 }, () => {
  let d: TestDaemon
  let client: KuboRPCClient
  /** root/{a.txt, sub/{b.txt, c.txt}}, and their CIDs by path. */
  const cids = new Map<string, string>()

  before(async () => {
    d = await startTestDaemon()
    client = create({ url: `${d.url}/api/v0`, timeout: 30_000 })
    for await (const entry of client.addAll([
      { path: 'root/a.txt', content: 'aaa' },
      { path: 'root/sub/b.txt', content: 'bbb' },
      { path: 'root/sub/c.txt', content: 'ccc' }
    ])) cids.set(entry.path, entry.cid.toString())
  })

  after(async () => {
    await d?.cleanup()
  })

  it('lists a node\'s own links without recursive, and all of them depth first with it', async () => {
    const root = cids.get('root') as string
    const direct = await collect(client.refs(root))
    assert.deepEqual(direct.map(r => r.ref), [cids.get('root/a.txt'), cids.get('root/sub')])
    const all = await collect(client.refs(root, { recursive: true }))
    assert.deepEqual(all.map(r => r.ref), [cids.get('root/a.txt'), cids.get('root/sub'), cids.get('root/sub/b.txt'), cids.get('root/sub/c.txt')])
    const shallow = await collect(client.refs(root, { recursive: true, maxDepth: 1 }))
    assert.equal(shallow.length, 2)
  })

  it('formats edges and link names, and refuses both at once', async () => {
    const root = cids.get('root') as string
    const edges = await ndjson(await rpc(d, 'refs', { arg: root, edges: 'true' }))
    assert.deepEqual(edges[0], { Ref: `${root} -> ${cids.get('root/a.txt')}`, Err: '' })
    const named = await ndjson(await rpc(d, 'refs', { arg: root, format: '<linkname>: <dst>' }))
    assert.equal(named[1].Ref, `sub: ${cids.get('root/sub')}`)
    const both = await rpc(d, 'refs', { arg: root, edges: 'true', format: '<src>' })
    assert.equal(both.status, 400)
    assert.equal((await both.json()).Type, 'error')
  })

  it('gives each block once with unique', async () => {
    const dup = (await collect(client.addAll([{ path: 'dup/x.txt', content: 'same' }, { path: 'dup/y.txt', content: 'same' }]))).at(-1)
    assert.ok(dup != null)
    assert.equal((await collect(client.refs(dup.cid))).length, 2)
    assert.equal((await collect(client.refs(dup.cid, { unique: true }))).length, 1)
  })

  it('lists every local block with refs/local', async () => {
    const local = new Set((await collect(client.refs.local())).map(r => CID.parse(r.ref).multihash.toString()))
    for (const cid of cids.values()) assert.ok(local.has(CID.parse(cid).multihash.toString()), cid)
  })

  it('resolves paths with dag/resolve, through dag-cbor fields too', async () => {
    const root = cids.get('root') as string
    const res = await (await rpc(d, 'dag/resolve', { arg: `/ipfs/${root}/sub/b.txt` })).json()
    assert.deepEqual(res, { Cid: { '/': cids.get('root/sub/b.txt') }, RemPath: '' })
    const node = await client.dag.put({ file: CID.parse(cids.get('root/a.txt') as string), meta: { name: 'a' } })
    const viaLink = await (await rpc(d, 'dag/resolve', { arg: `/ipfs/${node}/file` })).json()
    assert.deepEqual(viaLink, { Cid: { '/': cids.get('root/a.txt') }, RemPath: '' })
    const inside = await (await rpc(d, 'dag/resolve', { arg: `/ipfs/${node}/meta/name` })).json()
    // Kubo answers boxo's path.SegmentsToString of the remainder: with a leading slash.
    assert.deepEqual(inside, { Cid: { '/': node.toString() }, RemPath: '/meta/name' })
    assert.deepEqual(await client.dag.resolve(node, { path: '/meta/name' }), { cid: node, remainderPath: '/meta/name' })
    // A dag-pb node that is not UnixFS resolves by its links' names too.
    const child = await client.dag.put({ Data: Buffer.from('some other data'), Links: [] }, { storeCodec: 'dag-pb' })
    const parent = await client.dag.put({ Data: Buffer.from('derp'), Links: [{ Name: 'foo', Tsize: 17, Hash: child }] }, { storeCodec: 'dag-pb' })
    assert.deepEqual(await client.dag.resolve(parent, { path: '/foo' }), { cid: child, remainderPath: '' })
    assert.equal((await rpc(d, 'dag/resolve', { arg: `/ipfs/${parent}/bar` })).status, 404)
    const missing = await rpc(d, 'dag/resolve', { arg: `/ipfs/${node}/nope` })
    assert.equal(missing.status, 404)
    const proto = await rpc(d, 'dag/resolve', { arg: `/ipfs/${node}/constructor` })
    assert.equal(proto.status, 404)
  })

  it('resolves /ipfs/ paths and /ipns/ names with resolve', async () => {
    const root = cids.get('root') as string
    assert.equal(await client.resolve(`/ipfs/${root}/sub/c.txt`), `/ipfs/${cids.get('root/sub/c.txt')}`)
    const published = await client.name.publish(`/ipfs/${root}`, { resolve: false })
    assert.equal(await client.resolve(`/ipns/${published.name}/sub`), `/ipfs/${cids.get('root/sub')}`)
    const bad = await rpc(d, 'resolve', { arg: '/ipfs/not-a-cid' })
    assert.equal(bad.status, 400)
  })
})
