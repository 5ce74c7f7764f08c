import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { create } from 'kubo-rpc-client'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import { collect } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

const HELLO = 'hello world\n'
/** Kubo's CIDs for the same content: `ipfs add` of HELLO, and the empty directory Kubo's MFS starts from. */
const HELLO_CID = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const EMPTY_DIR_CID = 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn'

async function readString (client: KuboRPCClient, path: string, options: { offset?: number, length?: number } = {}): Promise<string> {
  return Buffer.concat(await collect(client.files.read(path, options))).toString()
}

describe('files/* (MFS) with kubo-rpc-client', { timeout: 120_000 }, () => {
  let repo: string
  let d: TestDaemon
  let client: KuboRPCClient

  before(async () => {
    repo = await mkdtemp(join(tmpdir(), 'node-daemon-mfs-'))
    d = await startTestDaemon({ repo })
    client = create({ url: `${d.url}/api/v0`, timeout: 30_000 })
  })

  after(async () => {
    await d?.cleanup()
    if (repo != null) await rm(repo, { recursive: true, force: true })
  })

  it('starts from Kubo\'s empty directory', async () => {
    const stat = await client.files.stat('/')
    assert.equal(stat.cid.toString(), EMPTY_DIR_CID)
    assert.equal(stat.type, 'directory')
  })

  it('writes, reads, and gets Kubo\'s CID for the same bytes', async () => {
    await client.files.write('/hello.txt', HELLO, { create: true })
    assert.equal(await readString(client, '/hello.txt'), HELLO)
    const stat = await client.files.stat('/hello.txt')
    assert.equal(stat.cid.toString(), HELLO_CID)
    assert.equal(stat.size, HELLO.length)
    assert.equal(stat.type, 'file')
  })

  it('refuses to write a missing file without create', async () => {
    await assert.rejects(client.files.write('/nope.txt', 'x'), /file does not exist/)
  })

  it('writes at an offset, keeping the rest unless truncate', async () => {
    await client.files.write('/o.txt', 'abcdefgh', { create: true })
    await client.files.write('/o.txt', 'XY', { offset: 2 })
    assert.equal(await readString(client, '/o.txt'), 'abXYefgh')
    await client.files.write('/o.txt', '12345', { offset: 1, length: 2 })
    assert.equal(await readString(client, '/o.txt'), 'a12Yefgh')
    await client.files.write('/o.txt', 'Z', { offset: 3, truncate: true })
    assert.equal(await readString(client, '/o.txt'), 'a12Z')
    assert.equal(await readString(client, '/o.txt', { offset: 1, length: 2 }), '12')
  })

  it('makes directories, with parents, and lists them', async () => {
    await client.files.mkdir('/a/b/c', { parents: true })
    await client.files.mkdir('/a/b/c', { parents: true })
    await assert.rejects(client.files.mkdir('/a/b'), /already exists/)
    await assert.rejects(client.files.mkdir('/x/y'), /does not exist/)
    await client.files.write('/a/b/f.txt', HELLO, { create: true })
    const entries = await collect(client.files.ls('/a/b'))
    const byName = new Map(entries.map(e => [e.name, e]))
    assert.equal(byName.get('c')?.type, 'directory')
    assert.equal(byName.get('f.txt')?.type, 'file')
    assert.equal(byName.get('f.txt')?.cid.toString(), HELLO_CID)
    assert.equal(byName.get('f.txt')?.size, HELLO.length)
  })

  it('writes with parents into directories that do not exist yet', async () => {
    await client.files.write('/deep/er/file.txt', HELLO, { create: true, parents: true })
    assert.equal(await readString(client, '/deep/er/file.txt'), HELLO)
  })

  it('copies from /ipfs/ and within MFS, and moves', async () => {
    const added = await client.add(HELLO)
    await client.files.cp(added.cid, '/copied.txt')
    assert.equal(await readString(client, '/copied.txt'), HELLO)
    await assert.rejects(client.files.cp('/copied.txt', '/hello.txt'), /already has entry/)
    await client.files.cp('/copied.txt', '/a/')
    assert.equal(await readString(client, '/a/copied.txt'), HELLO)
    await client.files.mv('/copied.txt', '/moved.txt')
    await assert.rejects(client.files.stat('/copied.txt'), /does not exist/)
    assert.equal(await readString(client, '/moved.txt'), HELLO)
    await client.files.mv('/moved.txt', '/a')
    assert.equal(await readString(client, '/a/moved.txt'), HELLO)
  })

  it('removes files, and directories only with recursive', async () => {
    await client.files.mkdir('/gone/sub', { parents: true })
    await assert.rejects(client.files.rm('/gone'), /is a directory/)
    await client.files.rm('/gone', { recursive: true })
    await assert.rejects(client.files.stat('/gone'), /does not exist/)
    await assert.rejects(client.files.rm('/gone'), /does not exist/)
    // kubo-rpc-client does not type `force`; Kubo takes it.
    assert.equal((await rpc(d, 'files/rm', { arg: '/gone', force: 'true' })).status, 200)
  })

  it('flushes to the CID of a path, and changes CID versions', async () => {
    const cid = await client.files.flush('/a')
    assert.equal(cid.toString(), (await client.files.stat('/a')).cid.toString())
    const res = await rpc(d, 'files/chcid', { arg: '/a', 'cid-version': '1' })
    assert.equal(res.status, 200)
    const after = await client.files.stat('/a')
    assert.equal(after.cid.version, 1)
    assert.equal(after.cid.multihash.toString(), cid.multihash.toString())
  })

  it('answers with Kubo\'s shapes over raw HTTP', async () => {
    const ls = await (await rpc(d, 'files/ls', { arg: '/a/b' })).json()
    assert.deepEqual(ls.Entries.find((e: { Name: string }) => e.Name === 'f.txt'), { Name: 'f.txt', Type: 0, Size: 0, Hash: '' })
    const stat = await (await rpc(d, 'files/stat', { arg: '/hello.txt' })).json()
    assert.deepEqual(stat, { Hash: HELLO_CID, Size: 12, CumulativeSize: 20, Blocks: 0, Type: 'file', WithLocality: false })
    // As Kubo, an /ipfs/ path too: kubo-rpc-client's ls stats an empty directory so.
    assert.deepEqual(await (await rpc(d, 'files/stat', { arg: `/ipfs/${HELLO_CID}` })).json(), stat)
    const emptyDir = await client.add({ path: 'empty' }, { wrapWithDirectory: false })
    const listed = await collect(client.ls(`/ipfs/${emptyDir.cid}`))
    assert.deepEqual(listed.map(e => e.cid.toString()), [emptyDir.cid.toString()])
    const bad = await rpc(d, 'files/stat', { arg: 'relative' })
    assert.equal(bad.status, 400)
    const body = await bad.json()
    assert.equal(body.Type, 'error')
    assert.match(body.Message, /leading slash/)
    const missing = await rpc(d, 'files/read', { arg: '/none' })
    assert.equal(missing.status, 404)
    const write = await rpc(d, 'files/write', { arg: '/raw.txt', create: 'true', hash: 'sha2-512' }, { body: formOf([{ path: 'data', content: 'x' }]) })
    assert.equal(write.status, 400)
  })

  it('keeps the tree from GC, and across a restart', async () => {
    // Written into MFS only, never pinned: GC must keep it as under a pin.
    const only = (await client.files.stat('/o.txt')).cid.toString()
    await collect(client.repo.gc())
    const cat = await rpc(d, 'cat', { arg: only, offline: 'true' })
    assert.equal(cat.status, 200)
    assert.equal(await cat.text(), 'a12Z')
    const root = (await client.files.stat('/')).cid.toString()
    await d.stop()
    d = await startTestDaemon({ repo })
    client = create({ url: `${d.url}/api/v0`, timeout: 30_000 })
    assert.equal((await client.files.stat('/')).cid.toString(), root)
    assert.equal(await readString(client, '/a/b/f.txt', { }), HELLO)
  })
})
