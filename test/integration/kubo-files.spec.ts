import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import { collect } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

const HELLO = 'hello world\n'
/** Kubo's CIDs for the same content: `ipfs add` of HELLO, and the empty directory Kubo's MFS starts from. */
const HELLO_CID = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
/** Kubo's files/write of 'Hello world' into a new file, as js-kubo-rpc-client's files.ls test reads it from Kubo. */
const KUBO_WRITTEN_HELLO = 'Qmetpc7cZmN25Wcc6R27cGCAvCDqCS5GjHG4v7xABEfpmJ'
const EMPTY_DIR_CID = 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn'

/** Kubo's empty directory block, and that block hashed with blake2b-256 as Kubo's sharness test of Import.HashFunction reads it. */
const EMPTY_DIR_BLOCK = dagPb.encode({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: [] })
const EMPTY_DIR_BLAKE2B = 'bafykbzacebugfutjir6qie7apo5shpry32ruwfi762uytd5g3u2gk7tpscndq'

/** A directory block holding `links`, and its CID as `version` and `hash` make it: computed here, not by the daemon. */
async function directoryCid (links: Array<{ Name: string, Hash: CID, Tsize: number }>, version: 0 | 1, hash: typeof sha256 | typeof sha512): Promise<{ cid: CID, size: number }> {
  const block = dagPb.encode(dagPb.prepare({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: links }))
  const digest = await hash.digest(block)
  return { cid: version === 0 ? CID.createV0(digest as Parameters<typeof CID.createV0>[0]) : CID.createV1(dagPb.code, digest), size: block.length + links.reduce((sum, l) => sum + l.Tsize, 0) }
}

/**
 * A one-chunk file as Kubo's files/write builds it (its DagModifier appends to
 * an empty file node with the trickle builder): a root over one leaf, the leaf
 * a dag-pb node of UnixFS type raw, or with raw leaves a raw block. Built here
 * from the formats, not by the daemon; returns the root and the bytes of both blocks.
 */
async function kuboWrittenFile (bytes: Uint8Array, version: 0 | 1 = 0, hash: typeof sha256 | typeof sha512 = sha256): Promise<{ cid: CID, cumulativeSize: number }> {
  const cidOf = async (code: number, block: Uint8Array): Promise<CID> => {
    const digest = await hash.digest(block)
    return version === 0 ? CID.createV0(digest as Parameters<typeof CID.createV0>[0]) : CID.createV1(code, digest)
  }
  const leafBlock = version === 0 ? dagPb.encode(dagPb.prepare({ Data: new UnixFS({ type: 'raw', data: bytes }).marshal() })) : bytes
  const leaf = await cidOf(version === 0 ? dagPb.code : raw.code, leafBlock)
  const root = dagPb.encode(dagPb.prepare({ Data: new UnixFS({ type: 'file', blockSizes: [BigInt(bytes.length)] }).marshal(), Links: [{ Name: '', Hash: leaf, Tsize: leafBlock.length }] }))
  return { cid: await cidOf(dagPb.code, root), cumulativeSize: root.length + leafBlock.length }
}

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
    // Not add's CID: Kubo's files/write puts a root over even one leaf (its stat's cumulative size counts both).
    await client.files.write('/Hello.txt', 'Hello world', { create: true })
    assert.equal((await client.files.stat('/Hello.txt')).cid.toString(), KUBO_WRITTEN_HELLO)
    assert.equal((await kuboWrittenFile(Buffer.from('Hello world'))).cid.toString(), KUBO_WRITTEN_HELLO, 'the helper builds as Kubo')
    await client.files.rm('/Hello.txt')
    await client.files.write('/hello.txt', HELLO, { create: true })
    assert.equal(await readString(client, '/hello.txt'), HELLO)
    const stat = await client.files.stat('/hello.txt')
    assert.equal(stat.cid.toString(), (await kuboWrittenFile(Buffer.from(HELLO))).cid.toString())
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

  it('writes count bytes of a large body and reads the rest, so the next request on the connection is answered', async () => {
    // Stopping at count left the body unread, and the connection was reset under the next request (ECONNRESET).
    await client.files.write('/limited', new Uint8Array(490_668).fill(3), { create: true, length: 2 })
    for (let i = 0; i < 3; i++) await client.files.write('/limited-next', 'x', { create: true })
    assert.deepEqual([...Buffer.concat(await collect(client.files.read('/limited')))], [3, 3])
    await client.files.rm(['/limited', '/limited-next'])
  })

  it('fills a write past the end of a file with zeros, as Kubo\'s sparse files', async () => {
    await client.files.write('/sparse', Uint8Array.from([1, 2]), { create: true, offset: 3 })
    assert.deepEqual([...Buffer.concat(await collect(client.files.read('/sparse')))], [0, 0, 0, 1, 2])
    await client.files.write('/sparse', Uint8Array.from([9]), { offset: 7 })
    assert.deepEqual([...Buffer.concat(await collect(client.files.read('/sparse')))], [0, 0, 0, 1, 2, 0, 0, 9])
    await client.files.rm('/sparse')
  })

  it('says a path through a file is not a directory, in Kubo\'s words', async () => {
    await client.files.write('/plain', 'x', { create: true })
    await assert.rejects(client.files.write('/plain/inner.txt', 'y', { create: true }), /cannot access plain\/inner\.txt: Not a directory/)
    await assert.rejects(client.files.stat('/plain/inner.txt/deeper'), /cannot access plain\/inner\.txt: Not a directory/)
    await assert.rejects(client.files.mkdir('/plain/dir', { parents: true }), /Not a directory/)
    await client.files.rm('/plain')
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
    assert.equal(byName.get('f.txt')?.cid.toString(), (await kuboWrittenFile(Buffer.from(HELLO))).cid.toString())
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
    // Kubo's words (core/commands/files.go).
    await assert.rejects(client.files.rm('/gone'), /^HTTPError: path is a directory, use -r to remove directories$/)
    await assert.rejects(collect(client.files.read('/gone')), /^HTTPError: \/gone was not a file$/)
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
    const written = await kuboWrittenFile(Buffer.from(HELLO))
    assert.deepEqual(stat, { Hash: written.cid.toString(), Size: 12, CumulativeSize: written.cumulativeSize, Blocks: 1, Type: 'file', WithLocality: false })
    // As Kubo, an /ipfs/ path too: kubo-rpc-client's ls stats an empty directory so.
    await client.add(HELLO)
    assert.deepEqual(await (await rpc(d, 'files/stat', { arg: `/ipfs/${HELLO_CID}` })).json(), { Hash: HELLO_CID, Size: 12, CumulativeSize: 20, Blocks: 0, Type: 'file', WithLocality: false })
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
    const write = await rpc(d, 'files/write', { arg: '/raw.txt', create: 'true', hash: 'md4' }, { body: formOf([{ path: 'data', content: 'x' }]) })
    assert.equal(write.status, 400)
    const refused = await write.json()
    assert.deepEqual([refused.Message, refused.Code, refused.Type], ['unrecognized hash function: "md4"', 0, 'error'])
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

  describe('hash', () => {
    it('makes a directory with sha2-512 in a CIDv0 parent, which stays CIDv0 with sha2-256', async () => {
      await client.files.mkdir('/h0', { cidVersion: 0 })
      await client.files.mkdir('/h0/sub', { hashAlg: 'sha2-512' })
      const sub = await client.files.stat('/h0/sub')
      assert.equal(sub.cid.toString(), CID.createV1(dagPb.code, await sha512.digest(EMPTY_DIR_BLOCK)).toString())
      const parent = await directoryCid([{ Name: 'sub', Hash: sub.cid, Tsize: EMPTY_DIR_BLOCK.length }], 0, sha256)
      assert.equal((await client.files.stat('/h0')).cid.toString(), parent.cid.toString())
    })

    it('writes a file with sha2-512 as CIDv1 even when cid-version says 0, and an edit of its directory keeps the directory\'s hash', async () => {
      const bytes = Uint8Array.from([0, 1, 2, 3])
      // Kubo's getPrefix: a hash function makes the version 1.
      await client.files.write('/h0/sub/f', bytes, { create: true, hashAlg: 'sha2-512', cidVersion: 0 })
      const file = await client.files.stat('/h0/sub/f')
      assert.equal(file.cid.toString(), (await kuboWrittenFile(bytes, 1, sha512)).cid.toString())
      assert.deepEqual(Buffer.concat(await collect(client.files.read('/h0/sub/f'))), Buffer.from(bytes))
      const sub = await directoryCid([{ Name: 'f', Hash: file.cid, Tsize: (await kuboWrittenFile(bytes, 1, sha512)).cumulativeSize }], 1, sha512)
      assert.equal((await client.files.stat('/h0/sub')).cid.toString(), sub.cid.toString())
      // An existing file keeps its prefix when written again without options, as Kubo's DagModifier.
      await client.files.write('/h0/sub/f', Uint8Array.from([9]), { offset: 4 })
      const grown = Uint8Array.from([0, 1, 2, 3, 9])
      assert.equal((await client.files.stat('/h0/sub/f')).cid.toString(), (await kuboWrittenFile(grown, 1, sha512)).cid.toString())
      await client.files.rm('/h0/sub/f')
      assert.equal((await client.files.stat('/h0/sub')).cid.toString(), CID.createV1(dagPb.code, await sha512.digest(EMPTY_DIR_BLOCK)).toString())
    })

    it('makes parents with the hash of the directory asked for', async () => {
      await client.files.mkdir('/h1/a/b', { parents: true, hashAlg: 'sha2-512' })
      const b = CID.createV1(dagPb.code, await sha512.digest(EMPTY_DIR_BLOCK))
      const a = await directoryCid([{ Name: 'b', Hash: b, Tsize: EMPTY_DIR_BLOCK.length }], 1, sha512)
      const h1 = await directoryCid([{ Name: 'a', Hash: a.cid, Tsize: a.size }], 1, sha512)
      assert.equal((await client.files.stat('/h1')).cid.toString(), h1.cid.toString())
    })

    it('changes a directory\'s hash with chcid to Kubo\'s CID, refusing the root and files', async () => {
      await client.files.mkdir('/chcid-test')
      assert.equal((await rpc(d, 'files/chcid', { arg: '/chcid-test', hash: 'blake2b-256' })).status, 200)
      assert.equal((await client.files.stat('/chcid-test')).cid.toString(), EMPTY_DIR_BLAKE2B)
      // Only the version: Kubo's prefix for it hashes with sha2-256 again.
      assert.equal((await rpc(d, 'files/chcid', { arg: '/chcid-test', 'cid-version': '1' })).status, 200)
      assert.equal((await client.files.stat('/chcid-test')).cid.toString(), CID.createV1(dagPb.code, await sha256.digest(EMPTY_DIR_BLOCK)).toString())
      const root = await rpc(d, 'files/chcid', { arg: '/', 'cid-version': '1' })
      assert.equal(root.status, 400)
      assert.match((await root.json()).Message, /Import\.CidVersion/)
      const file = await rpc(d, 'files/chcid', { arg: '/hello.txt', hash: 'sha2-512' })
      assert.equal(file.status, 400)
      assert.equal((await file.json()).Message, 'can only update directories')
    })
  })

  describe('sharding', () => {
    /** What a directory block is: Kubo's MFS turns a directory into a HAMT shard and back by its size. */
    async function kindOf (path: string): Promise<string> {
      const block = await client.block.get((await client.files.stat(path)).cid)
      return UnixFS.unmarshal(dagPb.decode(block).Data ?? new Uint8Array()).type
    }

    it('shards a directory when Kubo\'s size estimate passes 256 KiB, not at a count of entries, and unshards it at or below', async () => {
      // boxo's BasicDirectory estimates a directory as the sum of each link's name and CID bytes, and
      // turns it into a HAMT when that passes Import.UnixFSHAMTDirectorySizeThreshold, 262,144 bytes
      // ("> not >=": a directory exactly at the threshold stays basic). js-ipfs' old rule sharded at
      // 1,001 entries; here 1,121 entries fill the threshold exactly and the directory stays basic.
      const file = await client.add('x')
      const cidLength = file.cid.bytes.length
      const longName = (i: number): string => i.toString().padStart(4, '0') + 'n'.repeat(196)
      const links = Array.from({ length: 1120 }, (_, i) => ({ Name: longName(i), Hash: file.cid, Tsize: file.size }))
      const estimate = (names: string[]): number => names.reduce((sum, name) => sum + Buffer.byteLength(name) + cidLength, 0)
      const last = 'l'.repeat(262_144 - estimate(links.map(l => l.Name)) - cidLength)
      const block = dagPb.encode(dagPb.prepare({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: links }))
      const put = await client.block.put(block, { format: 'dag-pb' })
      await client.files.cp(`/ipfs/${put}`, '/big')
      await client.files.cp(`/ipfs/${file.cid}`, `/big/${last}`)
      assert.equal(estimate([...links.map(l => l.Name), last]), 262_144)
      assert.equal(await kindOf('/big'), 'directory')
      const basic = await directoryCid([...links, { Name: last, Hash: file.cid, Tsize: file.size }], put.version, sha256)
      assert.equal((await client.files.stat('/big')).cid.toString(), basic.cid.toString())

      // One more byte of estimate, and it is a HAMT that lists every entry.
      await client.files.cp(`/ipfs/${file.cid}`, '/big/z')
      assert.equal(await kindOf('/big'), 'hamt-sharded-directory')
      assert.equal((await collect(client.files.ls('/big'))).length, 1122)
      assert.equal(await readString(client, '/big/z'), 'x')

      // Back at the threshold, it is the same basic directory again.
      await client.files.rm('/big/z')
      assert.equal(await kindOf('/big'), 'directory')
      assert.equal((await client.files.stat('/big')).cid.toString(), basic.cid.toString())
      await client.files.rm('/big', { recursive: true })
    })

    it('keeps a sha2-512 directory\'s hash in every shard block, and when it unshards', async () => {
      const file = await client.add('x')
      // 1,121 entries of 234 bytes of estimate: 262,314, one entry over the threshold.
      const links = Array.from({ length: 1121 }, (_, i) => ({ Name: i.toString().padStart(4, '0') + 'n'.repeat(196), Hash: file.cid, Tsize: file.size }))
      const block = dagPb.encode(dagPb.prepare({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: links }))
      const put = await client.block.put(block, { format: 'dag-pb', mhtype: 'sha2-512' })
      assert.equal(put.multihash.code, sha512.code)
      await client.files.cp(`/ipfs/${put}`, '/big512')
      await client.files.cp(`/ipfs/${file.cid}`, '/big512/z')
      assert.equal(await kindOf('/big512'), 'hamt-sharded-directory')
      const root = (await client.files.stat('/big512')).cid
      assert.equal(root.multihash.code, sha512.code)
      // Every shard block below is hashed as the directory is; the entries keep their own CIDs.
      const shards = dagPb.decode(await client.block.get(root)).Links.filter(l => l.Name?.length === 2)
      assert.ok(shards.length > 0, 'sub-shards')
      assert.ok(shards.every(l => l.Hash.multihash.code === sha512.code && l.Hash.version === 1), shards.map(l => l.Hash.toString()).join(' '))
      assert.equal(await readString(client, '/big512/z'), 'x')
      await client.files.rm('/big512/z')
      assert.equal(await kindOf('/big512'), 'hamt-sharded-directory')
      await client.files.rm(`/big512/${links[1120].Name}`)
      assert.equal(await kindOf('/big512'), 'directory')
      const basic = dagPb.encode(dagPb.prepare({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: links.slice(0, 1120) }))
      assert.equal((await client.files.stat('/big512')).cid.toString(), CID.createV1(dagPb.code, await sha512.digest(basic)).toString())
      await client.files.rm('/big512', { recursive: true })
    })
  })
})
