import assert from 'node:assert/strict'
import { createHash, createPrivateKey } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { gunzipSync } from 'node:zlib'
import * as dagPb from '@ipld/dag-pb'
import * as dagJose from 'dag-jose'
import { UnixFS } from 'ipfs-unixfs'
import { CompactSign, generateKeyPair } from 'jose'
import { readTar } from '@node-daemon/api'
import { peerIdFromString } from '@libp2p/peer-id'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { rpc, startTestDaemon } from '../helpers/daemon.ts'
import { collect } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

// The Kubo RPC commands as kubo-rpc-client's interface tests call them, and the
// fields of Kubo's RPC reference (docs.ipfs.tech/reference/kubo/rpc) that the
// client hides, over raw HTTP.

const encoder = new TextEncoder()

function fileForm (bytes: Uint8Array): FormData {
  const form = new FormData()
  form.append('file', new Blob([bytes as BlobPart]))
  return form
}

describe('Kubo RPC conformance', { timeout: 120_000 }, () => {
  let d: TestDaemon
  let client: KuboRPCClient

  before(async () => {
    d = await startTestDaemon()
    client = create({ url: `${d.url}/api/v0`, timeout: 30_000 })
  })

  after(async () => {
    await d?.cleanup()
  })

  describe('block and dag', () => {
    it('stores bytes that are not dag-pb under a dag-pb CID, as Kubo', async () => {
      const bytes = encoder.encode('not a protobuf')
      const cid = await client.block.put(bytes, { format: 'dag-pb' })
      assert.equal(cid.code, dagPb.code)
      assert.equal(Buffer.from(cid.multihash.digest).toString('hex'), createHash('sha256').update(bytes).digest('hex'))
      assert.deepEqual(await client.block.get(cid), bytes)
    })

    it('refuses a block over 1 MiB with a 400 unless allow-big-block', async () => {
      const big = new Uint8Array(1_048_577).fill(1)
      const refused = await rpc(d, 'block/put', {}, { body: fileForm(big) })
      assert.equal(refused.status, 400)
      assert.match((await refused.json()).Message, /over 1MiB.*allow-big-block/)
      const stored = await rpc(d, 'block/put', { 'allow-big-block': 'true' }, { body: fileForm(big) })
      assert.equal(stored.status, 200)
      assert.equal((await stored.json()).Size, 1_048_577)
    })

    it('stores and reads a dag-jose node', async () => {
      const payload = await client.dag.put({ hello: 'jose' })
      const { privateKey } = await generateKeyPair('ES256')
      const jws = await new CompactSign(payload.bytes).setProtectedHeader({ alg: 'ES256' }).sign(privateKey)
      const cid = await client.dag.put(dagJose.toGeneral(jws), { storeCodec: 'dag-jose', hashAlg: 'sha2-256' })
      assert.equal(cid.code, dagJose.code)
      const { value } = await client.dag.get(cid)
      assert.equal(CID.asCID((value as { link: unknown }).link)?.toString(), payload.toString())
      const res = await rpc(d, 'dag/get', { arg: `${cid}/link` })
      assert.deepEqual(await res.json(), { hello: 'jose' })
    })

    it('refuses git-raw, for which no maintained codec exists, with a 400 naming the codecs it has', async () => {
      const res = await rpc(d, 'block/put', { 'cid-codec': 'git-raw' }, { body: fileForm(encoder.encode('blob 0\0')) })
      assert.equal(res.status, 400)
      assert.match((await res.json()).Message, /unsupported codec "git-raw"; use one of .*dag-jose/)
    })
  })

  describe('add options', () => {
    it('hashes with sha2-512 [Kubo add_test shortStringCidV1Sha512]', async () => {
      const { cid } = await client.add('hello world', { hashAlg: 'sha2-512', pin: false })
      assert.equal(cid.toString(), 'bafkrgqbqt3gerhas23vuzrapkdeqf4vu2dwxp3srdj6hvg6nhsug2tgyn6mj3u23yx7utftq3i2ckw2fwdh5qmhid5qf3t35yvkc5e5ottlw6')
    })

    it('stores a file\'s mode and mtime sent per part, and reports them as Mode and Mtime', async () => {
      const added = await client.add({ content: 'with metadata\n', mode: 0o600, mtime: { secs: 1_700_000_000n, nsecs: 5 } }, { pin: false })
      assert.deepEqual([added.mode, added.mtime], [0o600, { secs: 1_700_000_000, nsecs: 5 }])
      const node = dagPb.encode({ Data: new UnixFS({ type: 'file', data: encoder.encode('with metadata\n'), mode: 0o600, mtime: { secs: 1_700_000_000n, nsecs: 5 } }).marshal(), Links: [] })
      assert.equal(added.cid.toString(), CID.createV0(await sha256.digest(node)).toString())
      // The query's mode applies to every part that brings none; raw HTTP shows Kubo's fields.
      const form = new FormData()
      form.append('file', new Blob([encoder.encode('query mode\n')]), 'q.txt')
      const res = await rpc(d, 'add', { mode: '0640', mtime: '1700000001', pin: 'false' }, { body: form })
      const line = JSON.parse((await res.text()).trim())
      assert.deepEqual([line.Mode, line.Mtime, line.MtimeNsecs], ['0640', 1_700_000_001, undefined])
    })

    it('lays a file out as a trickle DAG, and inlines small blocks with inline', async () => {
      const data = new Uint8Array(200 * 16).fill(5)
      const balanced = await client.add(data, { chunker: 'size-16', pin: false })
      const trickled = await client.add(data, { chunker: 'size-16', trickle: true, pin: false })
      assert.notEqual(trickled.cid.toString(), balanced.cid.toString())
      assert.equal(dagPb.decode(await client.block.get(trickled.cid)).Links.length, 175)
      // kubo-rpc-client has no inline option: raw HTTP.
      const form = new FormData()
      form.append('file', new Blob([encoder.encode('tiny')]), 'tiny.txt')
      const line = JSON.parse((await (await rpc(d, 'add', { inline: 'true', pin: 'false' }, { body: form })).text()).trim())
      assert.equal(CID.parse(line.Hash).multihash.code, 0)
    })

    it('refuses with a 400 the options it cannot honour: to-files without MFS, nocopy without a filestore', async () => {
      const refused: Array<Record<string, string>> = [{ 'to-files': '/x' }, { nocopy: 'true' }]
      for (const params of refused) {
        const form = new FormData()
        form.append('file', new Blob([encoder.encode('refused\n')]), 'r.txt')
        const res = await rpc(d, 'add', params, { body: form })
        assert.equal(res.status, 400, JSON.stringify(params))
      }
      const form = new FormData()
      form.append('file', new Blob([encoder.encode('refused\n')]), 'r.txt')
      assert.equal((await rpc(d, 'add', { hash: 'md5' }, { body: form })).status, 400)
    })
  })

  describe('get', () => {
    it('gzips a file alone, or its tar with archive, at the level asked; refuses a directory without archive and a level past 9', async () => {
      const bytes = encoder.encode('Plz add me!\n'.repeat(100))
      const { cid } = await client.add(bytes)
      const alone = gunzipSync(Buffer.concat(await collect(client.get(cid, { compress: true, compressionLevel: 5 }))))
      assert.deepEqual(new Uint8Array(alone), bytes)
      const tarred = gunzipSync(Buffer.concat(await collect(client.get(cid, { archive: true, compress: true }))))
      const entries: Array<{ path: string, bytes: Buffer }> = []
      // An entry's bytes are read before the next entry is.
      for await (const entry of readTar((async function * () { yield new Uint8Array(tarred) })())) entries.push({ path: entry.path, bytes: Buffer.concat(await collect(entry.content)) })
      assert.deepEqual(entries, [{ path: cid.toString(), bytes: Buffer.from(bytes) }])
      await assert.rejects(collect(client.get(cid, { compress: true, compressionLevel: 10 as 9 })), /between 1 and 9/)
      const dir = await client.add({ path: 'd/a.txt', content: bytes }, { wrapWithDirectory: true })
      await assert.rejects(collect(client.get(dir.cid, { compress: true })), /file is not regular/)
      const plain = await collect(client.get(dir.cid))
      assert.ok(plain.length > 0, 'a directory without compress is a tar, as before')
    })
  })

  describe('two daemons: swarm/peers and id', () => {
    let b: TestDaemon

    before(async () => {
      b = await startTestDaemon()
      await b.node.connect(d.swarmAddr)
    })

    after(async () => {
      await b?.cleanup()
    })

    it('gives Latency, Direction and Streams only when asked, or with verbose, as Kubo', async () => {
      const peerOf = async (params: Record<string, string>): Promise<Record<string, unknown>> => {
        const body = await (await rpc(b, 'swarm/peers', params)).json()
        return body.Peers.find((p: { Peer: string }) => p.Peer === d.node.peerId)
      }
      assert.deepEqual(Object.keys(await peerOf({})).sort(), ['Addr', 'Peer'])
      assert.deepEqual(Object.keys(await peerOf({ direction: 'true' })).sort(), ['Addr', 'Direction', 'Peer'])
      assert.equal((await peerOf({ direction: 'true' })).Direction, 2)
      assert.match(String((await peerOf({ latency: 'true' })).Latency), /^(n\/a|[\d.]+ms)$/)
      assert.ok(Array.isArray((await peerOf({ streams: 'true' })).Streams))
      const verbose = await peerOf({ verbose: 'true' })
      // Kubo's connInfo has a Muxer field that it never fills (omitempty): no Muxer, as kubo-rpc-client's tests expect.
      assert.deepEqual(Object.keys(verbose).sort(), ['Addr', 'Direction', 'Identify', 'Latency', 'Peer', 'Streams'])
      assert.equal((verbose.Identify as { AgentVersion: string }).AgentVersion, `node-daemon/${d.node.version().version}`)
      const viaClient = (await create({ url: `${b.url}/api/v0` }).swarm.peers({ direction: true })).find(p => p.peer.toString() === d.node.peerId)
      assert.equal(viaClient?.direction, 'outbound')
    })

    it('says node-daemon/<version> as the AgentVersion of another daemon, learnt through identify', async () => {
      const id = await create({ url: `${b.url}/api/v0` }).id({ peerId: peerIdFromString(d.node.peerId) })
      assert.equal(id.agentVersion, `node-daemon/${d.node.version().version}`)
    })
  })

  describe('name/resolve', () => {
    it('gives back a CIDv0 path as published', async () => {
      const { cid } = await client.add('published as v0\n')
      const published = await client.name.publish(cid, { allowOffline: true })
      assert.deepEqual(await collect(client.name.resolve(published.name)), [`/ipfs/${cid}`])
    })

    it('takes a DNSLink name, and says why it cannot resolve it (404) rather than calling it invalid', async () => {
      const res = await rpc(d, 'name/resolve', { arg: '/ipns/example.invalid' })
      assert.equal(res.status, 404)
      assert.match((await res.json()).Message, /could not resolve DNSLink name example\.invalid: (no dnslink= TXT record|DNS did not answer)/)
    })
  })

  describe('keys', () => {
    it('generates an RSA key, lists, renames, publishes with and removes it', async () => {
      const key = await client.key.gen('rsa-conf', { type: 'rsa', size: 2048 })
      assert.match(key.id, /^k2k4r8/)
      assert.ok((await client.key.list()).some(k => k.name === 'rsa-conf' && k.id === key.id))
      const renamed = await client.key.rename('rsa-conf', 'rsa-renamed')
      assert.deepEqual(renamed, { was: 'rsa-conf', now: 'rsa-renamed', id: key.id, overwrite: false })
      const cid = await client.block.put(encoder.encode('published with rsa'))
      const published = await client.name.publish(cid, { key: 'rsa-renamed', allowOffline: true })
      assert.equal(published.name, key.id)
      assert.deepEqual((await client.key.rm('rsa-renamed')).id, key.id)
    })

    it('refuses key/gen with an unknown type or too small an RSA key, as a request that breaks the schema (422)', async () => {
      assert.equal((await rpc(d, 'key/gen', { arg: 'k', type: 'dsa' })).status, 422)
      assert.equal((await rpc(d, 'key/gen', { arg: 'k', type: 'rsa', size: '1024' })).status, 422)
      assert.equal((await rpc(d, 'key/gen', { arg: 'k', size: '2048' })).status, 400)
    })

    it('exports a key and imports it back in both of Kubo\'s formats', async () => {
      const key = await client.key.gen('to-export')
      for (const format of ['libp2p-protobuf-cleartext', 'pem-pkcs8-cleartext']) {
        const exported = await rpc(d, 'key/export', { arg: 'to-export', format })
        assert.equal(exported.status, 200)
        const bytes = new Uint8Array(await exported.arrayBuffer())
        if (format === 'pem-pkcs8-cleartext') assert.equal(createPrivateKey(Buffer.from(bytes)).asymmetricKeyType, 'ed25519')
        const imported = await rpc(d, 'key/import', { arg: `imported-${format}`, format }, { body: fileForm(bytes) })
        assert.deepEqual(await imported.json(), { Name: `imported-${format}`, Id: key.id })
        await client.key.rm(`imported-${format}`)
      }
      assert.equal((await rpc(d, 'key/export', { arg: 'self' })).status, 400)
      assert.equal((await rpc(d, 'key/export', { arg: 'to-export', format: 'pem-pkcs1' })).status, 422)
      await client.key.rm('to-export')
    })
  })

  describe('pins', () => {
    it('adds named pins, filters by name, and gives names only when asked', async () => {
      const [one, two] = await Promise.all([client.block.put(encoder.encode('named one')), client.block.put(encoder.encode('named two'))])
      await client.pin.add(one, { name: 'conf-file-one' })
      await client.pin.add(two, { name: 'conf-file-two', recursive: false })
      try {
        const named = await collect(client.pin.ls({ name: 'conf-file' }))
        assert.deepEqual(named.map(p => [p.cid.toString(), p.type, p.name]).sort(), [[one.toString(), 'recursive', 'conf-file-one'], [two.toString(), 'direct', 'conf-file-two']].sort())
        assert.deepEqual(await collect(client.pin.ls({ name: 'conf-file-one' })), [{ cid: one, type: 'recursive', name: 'conf-file-one' }])
        // Without names, no Name field, as Kubo.
        assert.ok((await collect(client.pin.ls())).some(p => p.cid.equals(one) && p.name === undefined))
        const body = await (await rpc(d, 'pin/ls', { names: 'true', type: 'direct' })).json()
        assert.deepEqual(body.Keys[two.toString()], { Type: 'direct', Name: 'conf-file-two' })
        // Pinned again under another name, Kubo renames the pin.
        await client.pin.add(one, { name: 'conf-file-renamed' })
        assert.deepEqual(await collect(client.pin.ls({ name: 'conf-file-one' })), [])
        assert.deepEqual(await collect(client.pin.ls({ name: 'conf-file-renamed' })), [{ cid: one, type: 'recursive', name: 'conf-file-renamed' }])
      } finally {
        await client.pin.rm(one)
        await client.pin.rm(two, { recursive: false })
      }
    })

    it('says "indirect through <cid>", names the path asked for in errors, and finds a direct pin under a recursive one as both', async () => {
      const file = await client.add('under a directory\n', { pin: false })
      const root = await client.dag.put({ Data: new Uint8Array([8, 1]), Links: [{ Name: 'f.txt', Hash: file.cid, Tsize: file.size }] }, { storeCodec: 'dag-pb' })
      await client.pin.add(file.cid, { recursive: false })
      await client.pin.add(root)
      try {
        assert.deepEqual(await collect(client.pin.ls({ paths: `/ipfs/${root}/f.txt`, type: 'indirect' })), [{ cid: file.cid, type: `indirect through ${root}` }])
        assert.deepEqual(await collect(client.pin.ls({ paths: file.cid, type: 'direct' })), [{ cid: file.cid, type: 'direct' }])
        await assert.rejects(collect(client.pin.ls({ paths: `/ipfs/${root}/f.txt`, type: 'recursive' })), { message: `path '/ipfs/${root}/f.txt' is not pinned` })
      } finally {
        await client.pin.rm(root)
        await client.pin.rm(file.cid, { recursive: false })
      }
    })

    it('updates a recursive pin, keeping its name', async () => {
      const [a, b] = await Promise.all([client.block.put(encoder.encode('update from')), client.block.put(encoder.encode('update to'))])
      await client.pin.add(a, { name: 'conf-update' })
      assert.deepEqual((await client.pin.update(a, b)).map(String), [a.toString(), b.toString()])
      assert.deepEqual(await collect(client.pin.ls({ name: 'conf-update' })), [{ cid: b, type: 'recursive', name: 'conf-update' }])
      await assert.rejects(client.pin.update(a, b), /not recursively pinned/)
      await client.pin.rm(b)
    })
  })

  describe('a fresh node with the default models', () => {
    let fresh: TestDaemon | undefined

    after(async () => {
      await fresh?.cleanup()
    })

    it('answers ready only once the default models\' pins are made, so that pin/ls right after is stable', async () => {
      fresh = await startTestDaemon({ inference: { defaultModels: true } })
      const deadline = Date.now() + 90_000
      let status = 0
      for (let i = 0; i < 900 && status !== 200 && Date.now() < deadline; i++) {
        const res = await fetch(`${fresh.url}/health/ready`)
        status = res.status
        if (status !== 200) {
          await res.arrayBuffer()
          await new Promise(resolve => setTimeout(resolve, 100))
        }
      }
      assert.equal(status, 200)
      const pins = async (): Promise<string[]> => Object.keys((await (await rpc(fresh as TestDaemon, 'pin/ls', { type: 'recursive' })).json()).Keys).sort()
      const first = await pins()
      const models = (await fresh.node.cluster.getAllModels()).map(m => m.modelCID)
      assert.ok(models.length >= 2)
      for (const cid of models) assert.ok(first.includes(cid), `${cid} is not pinned yet at ready`)
      await new Promise(resolve => setTimeout(resolve, 1000))
      assert.deepEqual(await pins(), first)
    })
  })
})
