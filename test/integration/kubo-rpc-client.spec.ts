import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { multiaddr } from '@multiformats/multiaddr'
import { create } from 'kubo-rpc-client'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { rpc, startTestDaemon } from '../helpers/daemon.ts'
import { collect } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

const encoder = new TextEncoder()
const HELLO = 'hello world\n'
/** Kubo's CIDs, as `ipfs add` prints them with its defaults. */
const HELLO_CID = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const HELLO_NO_NEWLINE_CID = 'Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD'
const EMPTY_DIR_CID = 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn'
/** The one dag-pb block of "hello world\n" as a UnixFS file is 20 bytes. */
const HELLO_BLOCK_SIZE = 20

/** A raw CIDv1, computed here from the bytes alone. */
function rawCid (bytes: Uint8Array): string {
  const digest = createHash('sha256').update(bytes).digest()
  return CID.createV1(0x55, { code: 0x12, size: 32, digest, bytes: Uint8Array.from([0x12, 0x20, ...digest]) }).toString()
}

/** A UnixFS directory node built by hand with dag-pb, for checking the daemon's directory CIDs; size is Kubo's cumulative size. */
async function dir (links: Array<{ name: string, cid: string, tsize: number }>): Promise<{ cid: string, size: number }> {
  const block = dagPb.encode(dagPb.prepare({
    Data: Uint8Array.from([0x08, 0x01]),
    Links: links.map(l => ({ Name: l.name, Hash: CID.parse(l.cid), Tsize: l.tsize }))
  }))
  return { cid: CID.createV0(await sha256.digest(block)).toString(), size: block.length + links.reduce((sum, l) => sum + l.tsize, 0) }
}

async function dirCid (links: Array<{ name: string, cid: string, tsize: number }>): Promise<string> {
  return (await dir(links)).cid
}

async function catString (client: KuboRPCClient, path: string, options: { offset?: number, length?: number } = {}): Promise<string> {
  const chunks = await collect(client.cat(path, options))
  return Buffer.concat(chunks).toString()
}

/** Polls `check` until it holds, at most `tries` times `ms` apart. */
async function eventually (check: () => Promise<boolean>, what: string, tries = 50, ms = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, ms))
  }
  assert.fail(`timed out waiting for ${what}`)
}

describe('kubo-rpc-client against the daemon', { timeout: 90_000 }, () => {
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

  describe('add', () => {
    it('adds a string with Kubo defaults', async () => {
      const added = await client.add(HELLO)
      assert.equal(added.cid.toString(), HELLO_CID)
      assert.equal(added.path, HELLO_CID)
      assert.equal(added.size, HELLO_BLOCK_SIZE)
    })

    it('adds bytes', async () => {
      const added = await client.add(encoder.encode('hello world'))
      assert.equal(added.cid.toString(), HELLO_NO_NEWLINE_CID)
    })

    it('adds with cidVersion 1 as raw leaves', async () => {
      const added = await client.add(HELLO, { cidVersion: 1 })
      assert.equal(added.cid.toString(), rawCid(encoder.encode(HELLO)))
      assert.equal(added.cid.toString(), 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4')
      assert.equal(await catString(client, added.cid.toString()), HELLO)
    })

    it('wraps a file in a directory', async () => {
      const added = await client.add({ path: 'hello.txt', content: HELLO }, { wrapWithDirectory: true })
      const expected = await dirCid([{ name: 'hello.txt', cid: HELLO_CID, tsize: HELLO_BLOCK_SIZE }])
      assert.equal(added.cid.toString(), expected)
      assert.equal(added.path, '')
      assert.equal(await catString(client, `/ipfs/${expected}/hello.txt`), HELLO)
    })

    it('adds files and directories with addAll, root last', async () => {
      const results = await collect(client.addAll([
        { path: 'root/a.txt', content: HELLO },
        { path: 'root/sub' },
        { path: 'root/sub/b.txt', content: 'hello world' },
        { path: 'root/empty' }
      ]))
      const byPath = new Map(results.map(r => [r.path, r.cid.toString()]))
      assert.equal(byPath.get('root/a.txt'), HELLO_CID)
      assert.equal(byPath.get('root/sub/b.txt'), HELLO_NO_NEWLINE_CID)
      assert.equal(byPath.get('root/empty'), EMPTY_DIR_CID)
      const sub = await dir([{ name: 'b.txt', cid: HELLO_NO_NEWLINE_CID, tsize: 19 }])
      assert.equal(byPath.get('root/sub'), sub.cid)
      const root = await dirCid([
        { name: 'a.txt', cid: HELLO_CID, tsize: HELLO_BLOCK_SIZE },
        { name: 'empty', cid: EMPTY_DIR_CID, tsize: 4 },
        { name: 'sub', cid: sub.cid, tsize: sub.size }
      ])
      assert.deepEqual(results.map(r => r.path), ['root/a.txt', 'root/sub/b.txt', 'root/sub', 'root/empty', 'root'])
      assert.equal(results.find(r => r.path === 'root/empty')?.size, 4)
      assert.equal(results.at(-1)?.path, 'root')
      assert.equal(results.at(-1)?.cid.toString(), root)
      assert.equal(await catString(client, `${root}/sub/b.txt`), 'hello world')
    })

    it('reports each empty directory once, top level or wrapped', async () => {
      const alone = await collect(client.addAll([{ path: 'lonely' }]))
      assert.deepEqual(alone.map(r => [r.path, r.cid.toString(), r.size]), [['lonely', EMPTY_DIR_CID, 4]])
      const wrapped = await collect(client.addAll([{ path: 'e' }, { path: 'f.txt', content: HELLO }], { wrapWithDirectory: true }))
      const root = await dirCid([
        { name: 'e', cid: EMPTY_DIR_CID, tsize: 4 },
        { name: 'f.txt', cid: HELLO_CID, tsize: HELLO_BLOCK_SIZE }
      ])
      assert.deepEqual(wrapped.map(r => [r.path, r.cid.toString()]), [['f.txt', HELLO_CID], ['e', EMPTY_DIR_CID], ['', root]])
      const v1 = await collect(client.addAll([{ path: 'd/e' }, { path: 'd/x', content: 'x' }], { cidVersion: 1 }))
      assert.equal(v1.find(r => r.path === 'd/e')?.cid.toString(), CID.parse(EMPTY_DIR_CID).toV1().toString())
    })

    it('only hashes with onlyHash, storing nothing', async () => {
      const text = `only hash ${Date.now()} ${Math.random()}`
      const added = await client.add(text, { onlyHash: true, cidVersion: 1 })
      assert.equal(added.cid.toString(), rawCid(encoder.encode(text)))
      // Nothing has the block, so only Kubo's timeout option ends the search for it.
      await assert.rejects(client.block.stat(added.cid, { timeout: 500 }), { name: 'TimeoutError' })
      const pins = await collect(client.pin.ls({ paths: [added.cid] })).catch(() => [])
      assert.deepEqual(pins, [])
    })

    it('reports progress to the callback', async () => {
      const size = 600_000
      const data = new Uint8Array(size).fill(7)
      const seen: Array<[number, string | undefined]> = []
      const added = await client.add({ path: 'big.bin', content: data }, { progress: (bytes, path) => { seen.push([bytes, path]) } })
      assert.ok(seen.length >= 2, `expected several progress events, got ${seen.length}`)
      assert.deepEqual(seen.at(-1), [size, 'big.bin'])
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i][0] >= seen[i - 1][0])
      assert.equal(added.size > size, true)
    })
  })

  describe('add pins the roots it reports, as Kubo, whatever the shape of the parts', () => {
    let n = 0
    /** Bytes no other test adds, so that their pins are this test's alone. */
    const unique = (label: string): string => `${label} ${Date.now()} ${n++}\n`

    interface Part { disposition: string, type?: string, body?: string }

    /** POSTs hand-built multipart parts to add and returns its lines. */
    async function addParts (parts: Part[], query: Record<string, string> = {}): Promise<Array<{ Name: string, Hash: string }>> {
      const body = parts.map(p => `--B\r\nContent-Disposition: form-data; ${p.disposition}\r\n${p.type == null ? '' : `Content-Type: ${p.type}\r\n`}\r\n${p.body ?? ''}\r\n`).join('') + '--B--\r\n'
      const res = await rpc(a, 'add', query, { body, headers: { 'content-type': 'multipart/form-data; boundary=B' } })
      const text = await res.text()
      assert.equal(res.status, 200, text)
      return text.trim().split('\n').map(line => JSON.parse(line))
    }

    /** How a CID is pinned: recursive, direct, indirect (Kubo's "indirect through <root>"), or undefined when it is not. */
    async function pinType (cid: string): Promise<string | undefined> {
      const pins = await collect(client.pin.ls({ paths: [CID.parse(cid)] })).catch(() => [])
      return pins[0]?.type.replace(/^indirect through \S+$/, 'indirect')
    }

    async function pinTypes (lines: Array<{ Name: string, Hash: string }>): Promise<Array<[string, string | undefined]>> {
      const out: Array<[string, string | undefined]> = []
      for (const line of lines) out.push([line.Name, await pinType(line.Hash)])
      return out
    }

    const file = (disposition: string, body: string): Part => ({ disposition, type: 'application/octet-stream', body })

    it('pins bare bytes from kubo-rpc-client, sent with an empty filename', async () => {
      const added = await client.add(encoder.encode(unique('bare bytes')))
      assert.equal(await pinType(added.cid.toString()), 'recursive')
      const wrapped = await client.add(encoder.encode(unique('bare wrapped')), { wrapWithDirectory: true })
      assert.equal(await pinType(wrapped.cid.toString()), 'recursive')
    })

    it('pins a file part with no filename, an empty one or a name, each named as Kubo names it', async () => {
      const noName = await addParts([file('name="file"', unique('no filename'))])
      const empty = await addParts([file('name="file"; filename=""', unique('empty filename'))])
      const named = await addParts([file('name="file"; filename="named.txt"', unique('named'))])
      assert.deepEqual(await pinTypes(noName), [[noName[0].Hash, 'recursive']])
      assert.deepEqual(await pinTypes(empty), [[empty[0].Hash, 'recursive']])
      assert.deepEqual(await pinTypes(named), [['named.txt', 'recursive']])
    })

    it('pins the top directory of a path, escaped or sent with its slashes', async () => {
      const escaped = await addParts([file('name="file"; filename="d%2Fsub%2Fx.txt"', unique('escaped path'))])
      assert.deepEqual(await pinTypes(escaped), [['d/sub/x.txt', 'indirect'], ['d/sub', 'indirect'], ['d', 'recursive']])
      const literal = await addParts([file('name="file"; filename="e/x.txt"', unique('literal path'))])
      assert.deepEqual(await pinTypes(literal), [['e/x.txt', 'indirect'], ['e', 'recursive']])
      // Kubo unescapes names as a query string, so its own CLI's `+` is a space.
      const plus = await addParts([file('name="file"; filename="my+file.txt"', unique('plus'))])
      assert.deepEqual(plus.map(l => l.Name), ['my file.txt'])
    })

    it('pins only the wrapper with wrap-with-directory, with a nameless file in it under its CID', async () => {
      const lines = await addParts([
        file('name="file"; filename=""', unique('wrapped nameless')),
        file('name="file-1"; filename="w.txt"', unique('wrapped named'))
      ], { 'wrap-with-directory': 'true' })
      const nameless = lines[0].Hash
      assert.deepEqual(await pinTypes(lines), [[nameless, 'indirect'], ['w.txt', 'indirect'], ['', 'recursive']])
      const entries = await collect(client.ls(lines[2].Hash))
      assert.deepEqual(entries.map(e => [e.name, e.cid.toString()]).sort(), [[nameless, nameless], ['w.txt', lines[1].Hash]].sort())
    })

    it('pins every top-level part of several, files and directories', async () => {
      const lines = await addParts([
        file('name="file"; filename="one.txt"', unique('one')),
        file('name="file-1"', unique('nameless among several')),
        { disposition: 'name="file-2"; filename="dir"', type: 'application/x-directory' },
        file('name="file-3"; filename="dir%2Fin.txt"', unique('in dir'))
      ])
      assert.deepEqual(await pinTypes(lines), [['one.txt', 'recursive'], [lines[1].Hash, 'recursive'], ['dir/in.txt', 'indirect'], ['dir', 'recursive']])
    })

    it('pins nothing with pin=false, in the query or as a form field', async () => {
      const query = await addParts([file('name="file"', unique('unpinned')), file('name="file-1"; filename="u%2Fv.txt"', unique('unpinned v'))], { pin: 'false' })
      assert.deepEqual(await pinTypes(query), [[query[0].Hash, undefined], ['u/v.txt', undefined], ['u', undefined]])
      const field = await addParts([file('name="file"; filename=""', unique('unpinned by field')), { disposition: 'name="pin"', body: 'false' }])
      assert.deepEqual(await pinTypes(field), [[field[0].Hash, undefined]])
    })
  })

  describe('read', () => {
    it('cats a file, with offset and length', async () => {
      await client.add('0123456789abcdef')
      const { cid } = await client.add('0123456789abcdef')
      assert.equal(await catString(client, cid.toString()), '0123456789abcdef')
      assert.equal(await catString(client, cid.toString(), { offset: 4 }), '456789abcdef')
      assert.equal(await catString(client, cid.toString(), { offset: 4, length: 3 }), '456')
      assert.equal(await catString(client, `/ipfs/${cid.toString()}`, { length: 2 }), '01')
    })

    it('lists a directory', async () => {
      const root = (await collect(client.addAll([
        { path: 'dir/x.txt', content: HELLO },
        { path: 'dir/y', content: 'hello world' },
        { path: 'dir/z' }
      ]))).at(-1)
      assert.ok(root != null)
      const entries = await collect(client.ls(root.cid))
      assert.deepEqual(entries.map(e => ({ name: e.name, cid: e.cid.toString(), type: e.type, size: e.size, path: e.path })), [
        { name: 'x.txt', cid: HELLO_CID, type: 'file', size: 12, path: `${root.cid}/x.txt` },
        { name: 'y', cid: HELLO_NO_NEWLINE_CID, type: 'file', size: 11, path: `${root.cid}/y` },
        { name: 'z', cid: EMPTY_DIR_CID, type: 'dir', size: 0, path: `${root.cid}/z` }
      ])
    })
  })

  describe('timeouts', () => {
    it('ends a search for content nobody has when Kubo\'s timeout option runs out', async () => {
      const missing = rawCid(encoder.encode(`nobody has this ${Date.now()}`))
      const started = Date.now()
      await assert.rejects(collect(client.cat(missing, { timeout: 300 })), { name: 'TimeoutError' })
      await assert.rejects(client.pin.add(CID.parse(missing), { timeout: 300 }), { name: 'TimeoutError' })
      await assert.rejects(collect(client.ls(missing, { timeout: 300 })), { name: 'TimeoutError' })
      assert.ok(Date.now() - started < 10_000)
      assert.equal((await client.add(HELLO)).cid.toString(), HELLO_CID)
    })
  })

  describe('pins', () => {
    it('adds, lists by every type, and removes pins', async () => {
      const root = (await collect(client.addAll([
        { path: 'p/one', content: 'pin one' },
        { path: 'p/two', content: 'pin two' }
      ], { pin: false }))).at(-1)
      assert.ok(root != null)
      const direct = await client.block.put(encoder.encode(`direct ${Date.now()}`))

      assert.equal((await client.pin.add(root.cid)).toString(), root.cid.toString())
      assert.equal((await client.pin.add(direct, { recursive: false })).toString(), direct.toString())

      const listed = async (type: 'all' | 'recursive' | 'direct' | 'indirect'): Promise<Map<string, string>> =>
        new Map((await collect(client.pin.ls({ type }))).map(p => [p.cid.toString(), p.type]))

      const recursive = await listed('recursive')
      assert.equal(recursive.get(root.cid.toString()), 'recursive')
      assert.equal(recursive.has(direct.toString()), false)

      const directs = await listed('direct')
      assert.equal(directs.get(direct.toString()), 'direct')
      assert.equal(directs.has(root.cid.toString()), false)

      const children = (await collect(client.ls(root.cid))).map(e => e.cid.toString())
      assert.equal(children.length, 2)
      const indirect = await listed('indirect')
      for (const child of children) assert.equal(indirect.get(child), 'indirect')
      assert.equal(indirect.has(root.cid.toString()), false)

      const all = await listed('all')
      assert.equal(all.get(root.cid.toString()), 'recursive')
      assert.equal(all.get(direct.toString()), 'direct')
      for (const child of children) assert.equal(all.get(child), 'indirect')

      const one = await collect(client.pin.ls({ paths: [children[0]] }))
      assert.deepEqual(one.map(p => [p.cid.toString(), p.type]), [[children[0], `indirect through ${root.cid}`]])

      assert.equal((await client.pin.rm(root.cid)).toString(), root.cid.toString())
      assert.equal((await client.pin.rm(direct, { recursive: false })).toString(), direct.toString())
      const after = await listed('all')
      assert.equal(after.has(root.cid.toString()), false)
      assert.equal(after.has(direct.toString()), false)
      for (const child of children) assert.equal(after.has(child), false)
      await assert.rejects(client.pin.rm(root.cid), /not pinned/)
    })
  })

  describe('blocks and dags', () => {
    it('puts, gets and stats a raw block', async () => {
      const bytes = encoder.encode('a raw block')
      const cid = await client.block.put(bytes)
      assert.equal(cid.toString(), rawCid(bytes))
      assert.deepEqual(await client.block.get(cid), bytes)
      const stat = await client.block.stat(cid)
      assert.equal(stat.cid.toString(), cid.toString())
      assert.equal(stat.size, bytes.byteLength)
    })

    it('stats the block of a UnixFS file', async () => {
      const stat = await client.block.stat(CID.parse((await client.add(HELLO)).cid.toString()))
      assert.equal(stat.size, HELLO_BLOCK_SIZE)
    })

    it('puts dag-cbor nodes and gets values by path, across links', async () => {
      const leafValue = { text: 'leaf', n: 42 }
      const leaf = await client.dag.put(leafValue)
      assert.equal(leaf.toString(), CID.createV1(dagCbor.code, await sha256.digest(dagCbor.encode(leafValue))).toString())
      const rootValue = { name: 'root', child: leaf, list: [1, 2, 3] }
      const root = await client.dag.put(rootValue)
      assert.equal(root.toString(), CID.createV1(dagCbor.code, await sha256.digest(dagCbor.encode(rootValue))).toString())

      const whole = await client.dag.get(root)
      assert.equal((whole.value as { name: string }).name, 'root')
      assert.equal(((whole.value as { child: CID }).child).toString(), leaf.toString())
      assert.equal((await client.dag.get(root, { path: 'list/1' })).value, 2)
      assert.equal((await client.dag.get(root, { path: 'child/n' })).value, 42)
      assert.deepEqual((await client.dag.get(root, { path: '/child' })).value, leafValue)
    })

    it('puts dag-json input stored as dag-cbor', async () => {
      const json = encoder.encode('{"hello":"world"}')
      const cid = await client.dag.put(json, { inputCodec: 'dag-json', storeCodec: 'dag-cbor' })
      assert.equal(cid.toString(), CID.createV1(dagCbor.code, await sha256.digest(dagCbor.encode({ hello: 'world' }))).toString())
      assert.deepEqual((await client.dag.get(cid)).value, { hello: 'world' })
    })
  })

  describe('names and keys', () => {
    it('publishes and resolves with the default key', async () => {
      const { cid } = await client.add(HELLO)
      const id = await client.id()
      const published = await client.name.publish(`/ipfs/${cid}`)
      assert.equal(published.value, `/ipfs/${cid}`)
      assert.equal(published.name, id.id.toCID().toString(base36))
      // The path as published, CIDv0 and all, as Kubo gives it back.
      assert.deepEqual(await collect(client.name.resolve(published.name)), [`/ipfs/${cid}`])
      assert.deepEqual(await collect(client.name.resolve(`/ipns/${id.id.toString()}`)), [`/ipfs/${cid}`])
      const keys = await client.key.list()
      assert.deepEqual(keys.find(k => k.name === 'self'), { name: 'self', id: published.name })
    })

    it('generates a key, publishes with it, lists and removes it', async () => {
      const name = `k${Date.now()}`
      const key = await client.key.gen(name, { type: 'ed25519' })
      assert.equal(key.name, name)
      assert.match(key.id, /^k51/)
      await assert.rejects(client.key.gen(name, { type: 'ed25519' }), /already exists/)

      const { cid } = await client.add('published under a named key')
      const published = await client.name.publish(cid, { key: name, lifetime: '1h' })
      assert.equal(published.name, key.id)
      assert.equal(published.value, `/ipfs/${cid}`)
      assert.deepEqual(await collect(client.name.resolve(key.id)), [`/ipfs/${cid}`])
      assert.deepEqual(await collect(client.name.resolve(`/ipns/${key.id}`)), [`/ipfs/${cid}`])

      const listed = await client.key.list()
      assert.equal(listed[0].name, 'self')
      assert.deepEqual(listed.find(k => k.name === name), { name, id: key.id })

      const removed = await client.key.rm(name)
      assert.deepEqual(removed, { name, id: key.id })
      assert.equal((await client.key.list()).some(k => k.name === name), false)
      await assert.rejects(client.key.rm(name), /no key named/)
    })
  })

  describe('node and swarm', () => {
    it('tells its identity', async () => {
      const id = await client.id()
      assert.equal(id.id.toString(), a.node.peerId)
      assert.ok(id.addresses.some(ma => ma.toString() === a.swarmAddr), `addresses ${id.addresses.join(', ')} should include ${a.swarmAddr}`)
      assert.match(id.agentVersion, /^node-daemon\//)
      assert.equal(id.protocolVersion, 'ipfs/0.1.0')
      assert.ok(id.protocols.some(p => String(p).startsWith('/ipfs/bitswap')))
    })

    it('tells its version', async () => {
      const version = await client.version()
      assert.equal(version.version, a.node.version().version)
      assert.equal(typeof version.repo, 'string')
      assert.equal(version.commit, a.node.version().commit)
    })

    it('connects two daemons with swarm.connect and lists them with swarm.peers', async () => {
      const result = await clientB.swarm.connect(multiaddr(a.swarmAddr))
      assert.deepEqual(result, [`connect ${a.node.peerId} success`])
      const peersOfB = await clientB.swarm.peers()
      const toA = peersOfB.find(p => p.peer.toString() === a.node.peerId)
      assert.ok(toA != null)
      assert.equal(`${toA.addr.toString()}/p2p/${toA.peer.toString()}`, a.swarmAddr)
      await eventually(async () => (await client.swarm.peers()).some(p => p.peer.toString() === b.node.peerId), 'a to see b')
    })
  })

  describe('pubsub', () => {
    it('subscribes, publishes and receives on one node', async () => {
      const topic = `local-${Date.now()}`
      const received: Array<{ data: Uint8Array, from?: string, topic: string }> = []
      const controller = new AbortController()
      try {
        await client.pubsub.subscribe(topic, (msg) => {
          received.push({ data: msg.data, topic: msg.topic, from: msg.type === 'signed' ? msg.from.toString() : undefined })
        }, { signal: controller.signal })
        assert.deepEqual(await client.pubsub.ls(), [topic])
        await client.pubsub.publish(topic, encoder.encode('hi there'))
        await eventually(async () => received.length > 0, 'the message')
        assert.deepEqual(received, [{ data: encoder.encode('hi there'), topic, from: a.node.peerId }])
      } finally {
        controller.abort()
      }
      await eventually(async () => !(await client.pubsub.ls()).includes(topic), 'unsubscribe after abort')
    })

    it('delivers messages between connected daemons and lists topic peers', async () => {
      const topic = `remote-${Date.now()}`
      // Make sure of the connection even if run alone.
      await clientB.swarm.connect(multiaddr(a.swarmAddr))
      const received: string[] = []
      const controller = new AbortController()
      try {
        await clientB.pubsub.subscribe(topic, (msg) => { received.push(Buffer.from(msg.data).toString()) }, { signal: controller.signal })
        await client.pubsub.subscribe(topic, () => {}, { signal: controller.signal })
        await eventually(async () => (await client.pubsub.peers(topic)).map(String).includes(b.node.peerId), 'a to see b on the topic')
        assert.deepEqual((await clientB.pubsub.peers(topic)).map(String), [a.node.peerId])
        // Gossipsub forms its mesh on heartbeats; publish again until one arrives.
        await eventually(async () => {
          if (received.length > 0) return true
          await client.pubsub.publish(topic, encoder.encode('over the wire'))
          return false
        }, 'the remote message', 40, 250)
        assert.equal(received[0], 'over the wire')
      } finally {
        controller.abort()
      }
    })
  })
})
