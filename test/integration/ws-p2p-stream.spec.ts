/**
 * Document 000's /ws/v0/stream/bidirectional on two in-process daemons: a
 * WebSocket on one node joined to a libp2p stream of a test protocol served
 * by the other, both ways, with half-closes, large transfers through the
 * backpressure, refusals before the upgrade and errors after it.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { COOKIE_FILE } from '@node-daemon/access'
import { waitFor } from '../helpers/cluster.ts'
import { startPair } from '../helpers/daemon.ts'
import { openSocket, wsUrl } from '../helpers/sockets.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { TestSocket } from '../helpers/sockets.ts'
import type { Stream } from '@libp2p/interface'

const ECHO = '/test/echo/1.0.0'
const BYE = Buffer.from('bye')
/** A test protocol whose handler resets the stream at the first bytes it reads. */
const RESET = '/test/reset/1.0.0'

/**
 * The test protocol: a greeting naming the serving node, then every chunk
 * back as it came, then "bye" once the other side ended writing. Records
 * how each stream it served ended.
 */
async function serveEcho (d: TestDaemon, ended: string[]): Promise<void> {
  await d.node.swarm.handle(ECHO, (stream: Stream) => {
    void (async () => {
      stream.send(Buffer.from(`hello from ${d.node.peerId}`))
      try {
        for await (const chunk of stream) {
          if (!stream.send(chunk.subarray())) await stream.onDrain()
        }
        stream.send(BYE)
        await stream.close()
        ended.push('closed')
      } catch (err: any) {
        ended.push(err.name)
      }
    })()
  })
}

function stream (d: TestDaemon, peer: string, protocol = ECHO, headers: Record<string, string> = {}): TestSocket {
  return openSocket(wsUrl(d, '/ws/v0/stream/bidirectional', { peer, protocol }), headers)
}

/** Binary frames of a socket until `bytes` of them arrived. */
async function readBytes (socket: TestSocket, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let length = 0
  for (let i = 0; i < 100_000 && length < bytes; i++) {
    const frame = await socket.next()
    assert.ok(frame.binary, `a text frame in the data: ${frame.data.toString()}`)
    chunks.push(frame.data)
    length += frame.data.byteLength
  }
  return Buffer.concat(chunks)
}

describe('/ws/v0/stream/bidirectional', { timeout: 120_000 }, () => {
  let a: TestDaemon
  let b: TestDaemon
  /** A peer A knows only by an address where nothing listens. */
  let unreachable: string
  const endedOnA: string[] = []
  const endedOnB: string[] = []

  before(async () => {
    ;[a, b] = await startPair()
    await serveEcho(a, endedOnA)
    await serveEcho(b, endedOnB)
    await b.node.swarm.handle(RESET, (stream: Stream) => {
      stream.addEventListener('message', () => { stream.abort(new Error('the test resets the stream')) }, { once: true })
    })
    const key = await generateKeyPair('Ed25519')
    unreachable = peerIdFromPrivateKey(key).toString()
    await a.node.swarm.peerStore.merge(peerIdFromPrivateKey(key), { multiaddrs: [multiaddr('/ip4/127.0.0.1/tcp/1')] })
  })
  after(async () => { await Promise.allSettled([a?.cleanup(), b?.cleanup()]) })

  it('joins a client of A to B\'s protocol: binary both ways, half-closes as {"end": true}, then 1000', async () => {
    const s = stream(a, b.node.peerId)
    await s.opened
    assert.equal((await readBytes(s, 0 + `hello from ${b.node.peerId}`.length)).toString(), `hello from ${b.node.peerId}`)
    const sent = [randomBytes(10), randomBytes(1000), randomBytes(70_000)]
    for (const chunk of sent) s.ws.send(chunk)
    assert.deepEqual(await readBytes(s, 71_010), Buffer.concat(sent))
    s.ws.send(JSON.stringify({ end: true }))
    assert.deepEqual(await readBytes(s, BYE.byteLength), BYE)
    assert.deepEqual(await s.json(), { end: true })
    assert.equal((await s.closed).code, 1000)
    await waitFor('B\'s handler to see the stream end', async () => endedOnB.includes('closed'), 10_000)
  })

  it('carries 12 MiB from a client of B to A and back through the backpressure, intact', async () => {
    const s = stream(b, a.node.peerId)
    await s.opened
    await readBytes(s, `hello from ${a.node.peerId}`.length)
    const data = randomBytes(12 * 1_048_576)
    const reading = readBytes(s, data.byteLength)
    for (let at = 0; at < data.byteLength; at += 256 * 1024) s.ws.send(data.subarray(at, at + 256 * 1024))
    assert.ok((await reading).equals(data), 'the bytes came back as sent')
    s.ws.send(JSON.stringify({ end: true }))
    assert.deepEqual(await readBytes(s, BYE.byteLength), BYE)
    assert.equal((await s.closed).code, 1000)
  })

  it('ends the peer\'s stream when the client goes away mid-stream', async () => {
    const before = endedOnA.length
    const s = stream(b, a.node.peerId)
    await s.opened
    await readBytes(s, `hello from ${a.node.peerId}`.length)
    s.ws.send(randomBytes(100))
    await readBytes(s, 100)
    s.ws.terminate()
    await waitFor('A\'s handler to see the stream end', async () => endedOnA.length > before, 15_000)
  })

  it('closes with 4404 and an envelope for a protocol the peer does not speak', async () => {
    const s = stream(a, b.node.peerId, '/test/nobody-speaks-this/1.0.0')
    await s.opened
    const error = await s.json()
    assert.equal(error.success, false)
    assert.equal(error.status_code, 404)
    assert.equal((await s.closed).code, 4404)
  })

  it('closes with 4503 for a peer whose address refuses the connection', async () => {
    const s = stream(a, unreachable)
    await s.opened
    const error = await s.json()
    assert.equal(error.status_code, 503, JSON.stringify(error))
    assert.equal((await s.closed).code, 4503)
  })

  it('closes with 4502 and an envelope when the peer resets the stream', async () => {
    const s = stream(a, b.node.peerId, RESET)
    await s.opened
    s.ws.send(Buffer.from('anything'))
    const error = await s.json()
    assert.equal(error.status_code, 502, JSON.stringify(error))
    assert.equal((await s.closed).code, 4502)
  })

  it('refuses a text frame other than {"end": true} with 4400', async () => {
    const s = stream(a, b.node.peerId)
    await s.opened
    await readBytes(s, `hello from ${b.node.peerId}`.length)
    s.ws.send('hello')
    assert.equal((await s.json()).status_code, 400)
    assert.equal((await s.closed).code, 4400)
  })

  it('refuses a bad peer id or protocol, or the node itself, with an HTTP 4xx before the upgrade', async () => {
    for (const [peer, protocol] of [['not-a-peer', ECHO], [a.node.peerId, ECHO], [b.node.peerId, 'no-slash'], [b.node.peerId, '/with space']]) {
      const s = stream(a, peer, protocol)
      await assert.rejects(s.opened, (err: any) => err.status >= 400 && err.status < 500)
    }
  })

  it('needs cluster:admin, and every permission for the node\'s own protocols', async () => {
    const admin = { authorization: `Bearer ${(await readFile(join(a.repo, COOKIE_FILE), 'utf8')).trim()}` }
    const keyOf = async (permissions: string[]): Promise<string> => {
      const res = await fetch(`${a.url}/api/v1/auth/keys`, { method: 'POST', headers: { 'content-type': 'application/json', ...admin }, body: JSON.stringify({ name: `stream-${permissions.length}-${permissions[0].replace(':', '-')}`, permissions }) })
      assert.equal(res.status, 201)
      return ((await res.json()) as { key: string }).key
    }
    const swarmOnly = { 'x-api-key': await keyOf(['swarm']) }
    const clusterAdmin = { 'x-api-key': await keyOf(['cluster:admin']) }

    await assert.rejects(stream(a, b.node.peerId, ECHO, swarmOnly).opened, (err: any) => err.status === 403)
    const opened = stream(a, b.node.peerId, ECHO, clusterAdmin)
    await opened.opened
    opened.ws.close(1000)

    // libp2p's ping, which answers 32 bytes with the same 32 bytes.
    await assert.rejects(stream(a, b.node.peerId, '/ipfs/ping/1.0.0', clusterAdmin).opened, (err: any) => err.status === 403)
    await assert.rejects(stream(a, b.node.peerId, '/node-daemon/raft/1.0.0', clusterAdmin).opened, (err: any) => err.status === 403)
    const ping = stream(a, b.node.peerId, '/ipfs/ping/1.0.0', admin)
    await ping.opened
    const payload = randomBytes(32)
    ping.ws.send(payload)
    assert.deepEqual(await readBytes(ping, 32), payload)
    ping.ws.close(1000)
    await ping.closed
  })
})
