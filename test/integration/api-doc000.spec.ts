import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import { openSocket, wsUrl } from '../helpers/sockets.ts'
import type { Frame } from '../helpers/sockets.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

/** Kubo's CID of "Hello IPFS", the content of document 000's JavaScript example. */
const HELLO_IPFS_CID = 'QmVXBKtQTF6SCNE1YQEEUQUKNBG48uR1uKKXPpzLtEy6xM'
const HELLO_CID = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const TIMEOUT = AbortSignal.timeout.bind(AbortSignal)

function json (body: unknown): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: TIMEOUT(30_000) }
}

async function get (daemon: TestDaemon, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${daemon.url}${path}`, { signal: TIMEOUT(30_000), ...init })
}

/** A PNG signature and IHDR chunk, enough for the magic-number sniffer. */
function pngBytes (): Uint8Array {
  const chunk = (type: string, data: Buffer): Buffer => {
    const length = Buffer.alloc(4)
    length.writeUInt32BE(data.length)
    return Buffer.concat([length, Buffer.from(type, 'ascii'), data, Buffer.alloc(4)])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(1, 0)
  ihdr.writeUInt32BE(1, 4)
  ihdr[8] = 8
  ihdr[9] = 6
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', randomBytes(300)),
    chunk('IEND', Buffer.alloc(0))
  ])
}

/** Adds bytes through the multipart route and returns Kubo's Hash. */
async function addBytes (daemon: TestDaemon, content: Uint8Array | string, name = 'file'): Promise<string> {
  const res = await rpc(daemon, 'add', {}, { body: formOf([{ path: name, content }]) })
  assert.equal(res.status, 200)
  return ((await res.json()) as { Hash: string }).Hash
}

async function withDeadline<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what} took over ${ms} ms`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

describe('document 000 examples with plain fetch', { timeout: 60_000 }, () => {
  let a: TestDaemon
  let b: TestDaemon

  before(async () => {
    // One after the other: @libp2p/prometheus-metrics keeps its metrics in a
    // module-level map, so only the first libp2p node of a process gets libp2p series.
    a = await startTestDaemon()
    b = await startTestDaemon()
  })

  after(async () => {
    await Promise.allSettled([a?.cleanup(), b?.cleanup()])
  })

  describe('content', () => {
    it('adds with the JavaScript example\'s FormData and a pin field, then cats', async () => {
      const formData = new FormData()
      formData.append('file', new Blob(['Hello IPFS'], { type: 'text/plain' }), 'example.txt')
      formData.append('pin', 'true')
      const res = await fetch(`${a.url}/api/v0/add`, { method: 'POST', body: formData, signal: TIMEOUT(30_000) })
      assert.equal(res.status, 200)
      const result = await res.json() as Record<string, unknown>
      assert.deepEqual(result, {
        success: true,
        cid: HELLO_IPFS_CID,
        name: 'example.txt',
        size: 18,
        Name: 'example.txt',
        Hash: HELLO_IPFS_CID,
        Size: '18'
      })
      const pins = await (await get(a, `/api/v0/pin/ls?arg=${HELLO_IPFS_CID}`)).json() as { pins: Record<string, { Type: string }> }
      assert.deepEqual(pins.pins, { [HELLO_IPFS_CID]: { Type: 'recursive' } })

      const cat = await get(a, `/api/v0/cat?arg=${result.cid as string}`)
      assert.equal(cat.status, 200)
      assert.equal(await cat.text(), 'Hello IPFS')
    })

    it('honours a pin field of false, sent before or after the file', async () => {
      for (const before of [true, false]) {
        const content = `not pinned ${String(before)} ${Date.now()}`
        const form = new FormData()
        if (before) form.append('pin', 'false')
        form.append('file', new Blob([content]), 'unpinned.txt')
        if (!before) form.append('pin', 'false')
        const added = await (await fetch(`${a.url}/api/v0/add`, { method: 'POST', body: form, signal: TIMEOUT(30_000) })).json() as { cid: string }
        const res = await get(a, `/api/v0/pin/ls?arg=${added.cid}`)
        assert.equal(res.status, 400, `pin=false ${before ? 'before' : 'after'} the file should leave ${added.cid} unpinned`)
      }
    })

    it('lists a directory with GET ls', async () => {
      const form = formOf([{ path: 'docs' }, { path: 'docs/a.txt', content: 'hello world\n' }, { path: 'docs/sub' }])
      const lines = (await (await rpc(a, 'add', {}, { body: form })).text()).trim().split('\n').map(l => JSON.parse(l) as { Name: string, Hash: string })
      const root = lines.at(-1)
      assert.equal(root?.Name, 'docs')
      const res = await get(a, `/api/v0/ls?arg=${root.Hash}`)
      assert.equal(res.status, 200)
      const body = await res.json() as { success: boolean, entries: unknown[] }
      assert.equal(body.success, true)
      assert.deepEqual(body.entries, [
        { name: 'a.txt', cid: HELLO_CID, size: 12, type: 'file' },
        { name: 'sub', cid: 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn', size: 0, type: 'directory' }
      ])
    })
  })

  describe('pins', () => {
    it('pins and unpins with JSON {"cid"} and lists with GET pin/ls', async () => {
      const cid = await addBytes(a, `pin me ${Date.now()}`)
      assert.equal((await rpc(a, 'pin/rm', { arg: cid })).status, 200)

      const added = await fetch(`${a.url}/api/v0/pin/add`, json({ cid }))
      assert.equal(added.status, 200)
      assert.deepEqual(await added.json(), { success: true, pins: [cid], Pins: [cid] })

      const listed = await (await get(a, '/api/v0/pin/ls')).json() as { success: boolean, pins: Record<string, { Type: string }> }
      assert.equal(listed.success, true)
      assert.deepEqual(listed.pins[cid], { Type: 'recursive' })
      const recursive = await (await get(a, '/api/v0/pin/ls?type=recursive&quiet=true')).json() as { pins: string[], Keys: Record<string, { Type: string }> }
      assert.ok(recursive.pins.includes(cid), 'quiet lists the CIDs alone')
      assert.ok(recursive.pins.every(p => typeof p === 'string'))
      assert.deepEqual(recursive.Keys[cid], { Type: 'recursive' })

      const removed = await fetch(`${a.url}/api/v0/pin/rm`, json({ cid }))
      assert.equal(removed.status, 200)
      assert.deepEqual(await removed.json(), { success: true, pins: [cid], Pins: [cid] })

      // The body's recursive, not the query schema's default, decides.
      assert.equal((await fetch(`${a.url}/api/v0/pin/add`, json({ cid, recursive: false }))).status, 200)
      const direct = await (await get(a, `/api/v0/pin/ls?arg=${cid}`)).json() as { pins: Record<string, { Type: string }> }
      assert.deepEqual(direct.pins[cid], { Type: 'direct' })
      assert.equal((await fetch(`${a.url}/api/v0/pin/rm`, json({ cid, recursive: false }))).status, 200)
      const after = await (await get(a, '/api/v0/pin/ls')).json() as { pins: Record<string, unknown> }
      assert.equal(after.pins[cid], undefined)
    })
  })

  describe('IPNS', () => {
    it('publishes with JSON {"path"} and resolves with GET', async () => {
      const cid = await addBytes(a, `ipns ${Date.now()}`)
      const res = await fetch(`${a.url}/api/v0/name/publish`, json({ path: `/ipfs/${cid}` }))
      assert.equal(res.status, 200)
      const published = await res.json() as { success: boolean, name: string, value: string, Name: string, Value: string }
      assert.equal(published.success, true)
      assert.match(published.name, /^k51/)
      assert.equal(published.value, `/ipfs/${cid}`)
      assert.equal(published.Name, published.name)
      assert.equal(published.Value, published.value)

      const resolved = await (await get(a, `/api/v0/name/resolve?arg=${published.name}`)).json() as { success: boolean, path: string, Path: string }
      assert.equal(resolved.success, true)
      // The path as published (a CIDv0 stays v0), as Kubo.
      assert.equal(resolved.path, `/ipfs/${cid}`)
      assert.equal(resolved.Path, resolved.path)
      const self = await (await get(a, '/api/v0/name/resolve')).json() as { path: string }
      assert.equal(self.path, resolved.path)
    })

    it('publishes under a named key given in the JSON body', async () => {
      const keyName = `doc000-${Date.now()}`
      const key = await (await rpc(a, 'key/gen', { arg: keyName })).json() as { Id: string }
      const cid = await addBytes(a, `ipns key ${Date.now()}`)
      const res = await fetch(`${a.url}/api/v0/name/publish`, json({ path: `/ipfs/${cid}`, key: keyName }))
      assert.equal(res.status, 200)
      const published = await res.json() as { name: string }
      assert.equal(published.name, key.Id, 'the name is the key\'s, not the node\'s')
      const resolved = await (await get(a, `/api/v0/name/resolve?arg=${published.name}`)).json() as { path: string }
      assert.equal(resolved.path, `/ipfs/${cid}`)
    })
  })

  describe('peers', () => {
    it('tells its identity with GET id', async () => {
      const res = await get(a, '/api/v0/id')
      assert.equal(res.status, 200)
      const id = await res.json() as { success: boolean, id: string, addresses: string[], ID: string, Addresses: string[] }
      assert.equal(id.success, true)
      assert.equal(id.id, a.node.peerId)
      assert.equal(id.ID, a.node.peerId)
      assert.ok(id.addresses.includes(a.swarmAddr))
      assert.deepEqual(id.Addresses, id.addresses)
    })

    it('connects with JSON {"addr"} and lists with GET swarm/peers', async () => {
      const res = await fetch(`${b.url}/api/v0/swarm/connect`, json({ addr: a.swarmAddr }))
      assert.equal(res.status, 200)
      assert.deepEqual(await res.json(), { success: true, added: [a.swarmAddr], peers: [a.node.peerId], Strings: [`connect ${a.node.peerId} success`] })

      const peers = await (await get(b, '/api/v0/swarm/peers')).json() as { success: boolean, peers: Array<{ peer: string, addr: string, direction: string }>, count: number }
      assert.equal(peers.success, true)
      assert.equal(peers.count, peers.peers.length)
      const toA = peers.peers.find(p => p.peer === a.node.peerId)
      assert.ok(toA != null)
      assert.equal(toA.addr, a.swarmAddr)
      // Kubo's fields beside them: the transport address alone, and the peer id.
      const kubo = (await (await get(b, '/api/v0/swarm/peers')).json() as { Peers: Array<{ Addr: string, Peer: string }> }).Peers.find(p => p.Peer === a.node.peerId)
      assert.equal(`${kubo?.Addr}/p2p/${kubo?.Peer}`, a.swarmAddr)
      assert.equal(toA.direction, 'outbound')

      const health = await (await get(b, '/health')).json() as { services: { p2p_peers: number } }
      assert.ok(health.services.p2p_peers >= 1)
    })
  })

  describe('streaming', () => {
    it('streams media whole and by Range with a sniffed Content-Type', async () => {
      const png = pngBytes()
      const cid = await addBytes(a, png, 'image.png')

      const whole = await get(a, `/api/v0/stream/media?arg=${cid}`)
      assert.equal(whole.status, 200)
      assert.equal(whole.headers.get('content-type'), 'image/png')
      assert.equal(whole.headers.get('accept-ranges'), 'bytes')
      assert.equal(whole.headers.get('content-length'), String(png.length))
      assert.deepEqual(Buffer.from(await whole.arrayBuffer()), Buffer.from(png))

      const cases: Array<[string, number, number]> = [['bytes=0-7', 0, 7], ['bytes=10-', 10, png.length - 1], ['bytes=-4', png.length - 4, png.length - 1], [`bytes=5-${png.length + 100}`, 5, png.length - 1]]
      for (const [range, start, end] of cases) {
        const part = await get(a, `/api/v0/stream/media?arg=${cid}`, { headers: { range } })
        assert.equal(part.status, 206, range)
        assert.equal(part.headers.get('content-range'), `bytes ${start}-${end}/${png.length}`)
        assert.equal(part.headers.get('accept-ranges'), 'bytes')
        assert.equal(part.headers.get('content-type'), 'image/png')
        assert.equal(part.headers.get('content-length'), String(end - start + 1))
        assert.deepEqual(Buffer.from(await part.arrayBuffer()), Buffer.from(png.subarray(start, end + 1)))
      }

      const text = await get(a, `/api/v0/stream/media?arg=${HELLO_CID}`)
      assert.equal(text.headers.get('content-type'), 'text/plain; charset=utf-8')
      assert.equal(await text.text(), 'hello world\n')
    })

    it('takes a raw upload body and gives the CID that add gives', async () => {
      const data = randomBytes(700_000)
      const expected = await addBytes(a, data)
      const res = await fetch(`${a.url}/api/v0/stream/upload`, { method: 'POST', body: data, headers: { 'content-type': 'application/octet-stream' }, signal: TIMEOUT(30_000) })
      assert.equal(res.status, 200)
      const body = await res.json() as { success: boolean, cid: string, size: number }
      assert.equal(body.success, true)
      assert.equal(body.cid, expected)
      assert.ok(body.size > data.length)

      const small = await fetch(`${a.url}/api/v0/stream/upload`, { method: 'POST', body: 'hello world\n', signal: TIMEOUT(30_000) })
      assert.equal(((await small.json()) as { cid: string }).cid, HELLO_CID)
      const v1 = await fetch(`${a.url}/api/v0/stream/upload?cid-version=1`, { method: 'POST', body: 'hello world\n', signal: TIMEOUT(30_000) })
      assert.equal(((await v1.json()) as { cid: string }).cid, 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4')
    })
  })

  describe('WebSockets', () => {
    it('delivers pubsub messages published with POST pubsub/pub JSON to /ws/v0/pubsub/:topic', async () => {
      const topic = `my-topic-${Date.now()}`
      const socket = openSocket(wsUrl(a, `/ws/v0/pubsub/${topic}`))
      try {
        await withDeadline(socket.opened, 10_000, 'opening the socket')
        let message: Frame | undefined
        // The subscription is live once the socket is open; publish again a few times in case a message was early.
        for (let attempt = 0; attempt < 5 && message === undefined; attempt++) {
          const res = await fetch(`${a.url}/api/v0/pubsub/pub`, json({ topic, data: Buffer.from('Hello WebSocket').toString('base64') }))
          assert.equal(res.status, 200)
          assert.deepEqual(await res.json(), { success: true })
          message = await socket.next(2000).catch(() => undefined)
        }
        assert.equal(message?.binary, false)
        const parsed = JSON.parse(message.data.toString()) as { topic: string, data: string, from: string }
        assert.equal(parsed.topic, topic)
        assert.equal(Buffer.from(parsed.data, 'base64').toString(), 'Hello WebSocket')
        assert.equal(parsed.from, a.node.peerId)
      } finally {
        socket.ws.close()
      }
      const ls = await (await rpc(a, 'pubsub/ls')).json() as { topics: string[] }
      // The topic is left once the last reader is gone.
      for (let i = 0; i < 50 && ls.topics.includes(topic); i++) {
        await new Promise(resolve => setTimeout(resolve, 100))
        ls.topics = ((await (await rpc(a, 'pubsub/ls')).json()) as { topics: string[] }).topics
      }
      assert.equal(ls.topics.includes(topic), false)
    })

    it('streams a file down /ws/v0/stream/media as binary frames', async () => {
      const data = randomBytes(600_000)
      const cid = await addBytes(a, data)
      const socket = openSocket(wsUrl(a, '/ws/v0/stream/media'))
      await withDeadline(socket.opened, 10_000, 'opening the socket')
      socket.ws.send(JSON.stringify({ cid }))
      const chunks: Buffer[] = []
      let received = 0
      for (let i = 0; i < 100 && received < data.length; i++) {
        const frame = await socket.next()
        assert.ok(frame.binary, `expected a binary frame, got ${frame.data.toString()}`)
        chunks.push(frame.data)
        received += frame.data.byteLength
      }
      assert.ok(chunks.length > 1)
      assert.deepEqual(Buffer.concat(chunks), data)
      assert.equal((await withDeadline(socket.closed, 10_000, 'the close')).code, 1000)
    })

    it('takes binary frames up /ws/v0/stream/upload and answers with add\'s CID', async () => {
      const data = randomBytes(900_000)
      const expected = await addBytes(a, data)
      const socket = openSocket(wsUrl(a, '/ws/v0/stream/upload'))
      await withDeadline(socket.opened, 10_000, 'opening the socket')
      for (let offset = 0; offset < data.length; offset += 100_000) socket.ws.send(data.subarray(offset, offset + 100_000))
      socket.ws.send(JSON.stringify({ done: true }))
      const reply = await socket.next(30_000)
      assert.equal(reply.binary, false)
      const body = JSON.parse(reply.data.toString()) as { success: boolean, cid: string }
      assert.equal(body.success, true)
      assert.equal(body.cid, expected)
      assert.equal((await withDeadline(socket.closed, 10_000, 'the close')).code, 1000)
    })
  })

  describe('system', () => {
    it('answers /health with the fields of documents 000 and 002', async () => {
      const res = await get(a, '/health')
      assert.equal(res.status, 200)
      const health = await res.json() as Record<string, any>
      assert.equal(health.status, 'healthy')
      assert.equal(health.version, a.node.version().version)
      assert.equal(health.node_id, a.node.peerId)
      assert.ok(!Number.isNaN(Date.parse(health.timestamp)))
      assert.equal(typeof health.uptime_seconds, 'number')
      for (const key of ['p2p', 'consensus', 'consensus_leader', 'scheduler']) assert.equal(typeof health.services[key], 'boolean', key)
      for (const key of ['p2p_peers', 'available_nodes']) assert.equal(typeof health.services[key], 'number', key)
      assert.equal(health.services.p2p, true)
    })

    it('answers /api/version and /api/v1/version alike', async () => {
      const v = await (await get(a, '/api/version')).json() as Record<string, unknown>
      const v1 = await (await get(a, '/api/v1/version')).json() as Record<string, unknown>
      assert.deepEqual(v1, v)
      assert.equal(v.version, a.node.version().version)
      assert.equal(typeof v.build_date, 'string')
      assert.equal(typeof v.git_commit, 'string')
    })

    it('serves a valid OpenAPI document with the add path, and the docs page', async () => {
      const res = await get(a, '/api/v0/openapi.json')
      assert.equal(res.status, 200)
      const doc = await res.json() as { openapi: string, info: { title: string, version: string }, paths: Record<string, Record<string, { responses?: unknown, parameters?: Array<{ name: string, in: string }> }>> }
      assert.match(doc.openapi, /^3\.\d+\.\d+$/)
      assert.equal(typeof doc.info.title, 'string')
      assert.equal(doc.info.version, a.node.version().version)
      const add = doc.paths['/api/v0/add']?.post
      assert.ok(add != null)
      assert.ok(add.parameters?.some(p => p.name === 'cid-version' && p.in === 'query'))
      for (const [path, methods] of [['/api/v0/cat', ['get', 'post']], ['/api/v0/pin/ls', ['get', 'post']], ['/api/v0/stream/media', ['get']], ['/api/v0/stream/upload', ['post']], ['/health', ['get']]] as const) {
        for (const method of methods) assert.ok(doc.paths[path]?.[method] != null, `${method} ${path}`)
      }
      for (const [path, methods] of Object.entries(doc.paths)) {
        assert.match(path, /^\//)
        for (const [method, op] of Object.entries(methods)) {
          assert.ok(['get', 'post', 'put', 'delete', 'patch', 'head', 'options'].includes(method), `${method} ${path}`)
          assert.ok(op.responses != null, `${method} ${path} has responses`)
        }
      }

      const docs = await get(a, '/api/v0/docs')
      assert.equal(docs.status, 200)
      assert.match(docs.headers.get('content-type') ?? '', /^text\/html/)
      assert.match(await docs.text(), /swagger/i)
    })

    it('exports Prometheus metrics with HTTP and libp2p series', async () => {
      await get(a, '/api/v0/id')
      const res = await get(a, '/metrics')
      assert.equal(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/)
      const text = await res.text()
      assert.match(text, /^# TYPE node_daemon_http_requests_total counter$/m)
      assert.match(text, /^node_daemon_http_requests_total\{route="\/api\/v0\/id",method="GET",status="200"\} [1-9]\d*$/m)
      assert.match(text, /^# TYPE libp2p_\w+ \w+$/m)
      assert.match(text, /^libp2p_connection_manager_connections\{/m)
    })
  })
})
