import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { rpc, startTestDaemon } from '../helpers/daemon.ts'
import { collect } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

/** Kubo's empty UnixFS directory (`ipfs object new unixfs-dir` of old). */
const EMPTY_DIR = 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn'
const HELLO = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'

describe('Kubo object/diff and object/patch', { timeout: 120_000 }, () => {
  let daemon: TestDaemon
  let client: KuboRPCClient
  let emptyDir: CID

  before(async () => {
    daemon = await startTestDaemon()
    client = create({ url: `${daemon.url}/api/v0`, timeout: 30_000 })
    const bytes = dagPb.encode({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: [] })
    emptyDir = await client.block.put(bytes, { format: 'v0' })
    assert.equal(emptyDir.toString(), EMPTY_DIR)
    assert.equal((await client.add('hello world\n')).cid.toString(), HELLO)
  })

  after(async () => {
    await daemon?.cleanup()
  })

  const decoder = new TextDecoder()
  const cat = async (path: string): Promise<string> => decoder.decode(Buffer.concat(await collect(client.cat(path))))

  it('adds a link as Kubo\'s add wraps a file, and removes it again', async () => {
    const added = await client.object.patch.addLink(emptyDir, { Name: 'hello', Hash: CID.parse(HELLO), Tsize: 0 })
    const wrapped = await collect(client.addAll([{ path: 'hello', content: 'hello world\n' }], { wrapWithDirectory: true }))
    assert.equal(added.toString(), wrapped.at(-1)?.cid.toString(), 'the same directory node, Tsize and all')
    assert.equal(await cat(`/ipfs/${added}/hello`), 'hello world\n')
    const removed = await client.object.patch.rmLink(added, { Name: 'hello', Hash: CID.parse(HELLO) })
    assert.equal(removed.toString(), EMPTY_DIR)
  })

  it('makes the directories of a path with create, and refuses a path without', async () => {
    const missing = await rpc(daemon, 'object/patch/add-link', { arg: [EMPTY_DIR, 'a/b/hello', HELLO] })
    assert.equal(missing.status, 404)
    assert.equal((await missing.json()).Type, 'error')
    const res = await rpc(daemon, 'object/patch/add-link', { arg: [EMPTY_DIR, 'a/b/hello', HELLO], create: 'true' })
    assert.equal(res.status, 200)
    const { Hash } = await res.json()
    assert.equal(await cat(`/ipfs/${Hash}/a/b/hello`), 'hello world\n')
    assert.equal(CID.parse(Hash).version, 0, 'a CIDv0 root stays v0, as Kubo keeps the node\'s prefix')
    const removed = await (await rpc(daemon, 'object/patch/rm-link', { arg: [Hash, 'a/b/hello'] })).json()
    const listing = await (await rpc(daemon, 'ls', { arg: `/ipfs/${removed.Hash}/a/b` })).json()
    assert.deepEqual(listing.Objects[0].Links, [], 'a/b is empty again')
  })

  it('edits only UnixFS directories unless allow-non-unixfs', async () => {
    const onFile = await rpc(daemon, 'object/patch/add-link', { arg: [HELLO, 'x', HELLO] })
    assert.equal(onFile.status, 400)
    assert.match((await onFile.json()).Message, /not a UnixFS directory/)
    const allowed = await rpc(daemon, 'object/patch/add-link', { arg: [HELLO, 'x', HELLO], 'allow-non-unixfs': 'true' })
    assert.equal(allowed.status, 200)
    const raw = await client.block.put(new TextEncoder().encode('raw'))
    assert.equal((await rpc(daemon, 'object/patch/add-link', { arg: [raw.toString(), 'x', HELLO] })).status, 400)
    assert.equal((await rpc(daemon, 'object/patch/add-link', { arg: [EMPTY_DIR, 'x'] })).status, 400)
    assert.equal((await rpc(daemon, 'object/patch/rm-link', { arg: [EMPTY_DIR, 'nothing'] })).status, 404)
  })

  it('diffs two directories: added, removed and changed links, into shared subdirectories', async () => {
    const before = await collect(client.addAll([
      { path: 'd/same', content: 'same\n' },
      { path: 'd/changed', content: 'one\n' },
      { path: 'd/gone', content: 'gone\n' },
      { path: 'd/sub/deep', content: 'deep one\n' }
    ]))
    const after = await collect(client.addAll([
      { path: 'd/same', content: 'same\n' },
      { path: 'd/changed', content: 'two\n' },
      { path: 'd/new', content: 'new\n' },
      { path: 'd/sub/deep', content: 'deep two\n' }
    ]))
    const cidOf = (entries: typeof before, path: string): string => String(entries.find(e => e.path === path)?.cid)
    const res = await rpc(daemon, 'object/diff', { arg: [cidOf(before, 'd'), cidOf(after, 'd')] })
    assert.equal(res.status, 200)
    const { Changes } = await res.json()
    const byPath = new Map(Changes.map((c: { Path: string }) => [c.Path, c]))
    assert.deepEqual(byPath.get('changed'), { Type: 2, Path: 'changed', Before: { '/': cidOf(before, 'd/changed') }, After: { '/': cidOf(after, 'd/changed') } })
    assert.deepEqual(byPath.get('sub/deep'), { Type: 2, Path: 'sub/deep', Before: { '/': cidOf(before, 'd/sub/deep') }, After: { '/': cidOf(after, 'd/sub/deep') } })
    assert.deepEqual(byPath.get('gone'), { Type: 1, Path: 'gone', Before: { '/': cidOf(before, 'd/gone') }, After: null })
    assert.deepEqual(byPath.get('new'), { Type: 0, Path: 'new', Before: null, After: { '/': cidOf(after, 'd/new') } })
    assert.equal(Changes.length, 4)
    const same = await (await rpc(daemon, 'object/diff', { arg: [cidOf(before, 'd'), cidOf(before, 'd')] })).json()
    assert.deepEqual(same, { Changes: [] })
    assert.equal((await rpc(daemon, 'object/diff', { arg: [cidOf(before, 'd')] })).status, 400)
  })
})
