/**
 * Document 000's method caller and events socket on real in-process nodes:
 * each method by its args and its kwargs, the events a node's content and
 * cluster tell, and the access guard on both.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { COOKIE_FILE } from '@node-daemon/access'
import { WebSocket } from 'ws'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

async function call (d: TestDaemon, method: string, body: unknown = {}, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  const res = await fetch(`${d.url}/api/${method}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) })
  return { status: res.status, body: await res.json() }
}

/** A socket whose text messages are read one by one, each within a bounded wait. */
function eventSocket (url: string, headers: Record<string, string> = {}): { ws: WebSocket, opened: Promise<void>, next: (ms?: number) => Promise<any> } {
  const ws = new WebSocket(url, { headers })
  const queue: string[] = []
  const waiters: Array<(text: string) => void> = []
  ws.on('message', (data) => {
    const waiter = waiters.shift()
    if (waiter != null) waiter(data.toString())
    else queue.push(data.toString())
  })
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => { resolve() })
    ws.once('unexpected-response', (_req, res) => { reject(new Error(`refused with ${res.statusCode}`)) })
    ws.once('error', reject)
  })
  const next = async (ms = 15_000): Promise<any> => {
    const queued = queue.shift()
    if (queued !== undefined) return JSON.parse(queued)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no message within ${ms} ms`)) }, ms)
      waiters.push((text) => { clearTimeout(timer); resolve(JSON.parse(text)) })
    })
  }
  return { ws, opened, next }
}

/** The next message of the socket that is `event`, skipping others (a bounded number). */
async function nextEvent (socket: ReturnType<typeof eventSocket>, event: string): Promise<any> {
  for (let i = 0; i < 20; i++) {
    const message = await socket.next()
    if (message.event === event) return message
  }
  throw new Error(`no ${event} event among 20 messages`)
}

describe("document 000's method caller and events socket on real nodes", { timeout: 180_000 }, () => {
  let a: TestDaemon
  let b: TestDaemon
  const wsUrl = (d: TestDaemon, path: string): string => `${d.url.replace(/^http/, 'ws')}${path}`

  before(async () => {
    a = await startTestDaemon()
    b = await startTestDaemon()
  })
  after(async () => { await Promise.allSettled([a?.cleanup(), b?.cleanup()]) })

  it('adds, gets, lists, checks and pins content by args and by kwargs', async () => {
    const added = await call(a, 'add', { args: ['hello methods', false] })
    assert.equal(added.status, 200, JSON.stringify(added.body))
    assert.equal(added.body.success, true)
    const cid = added.body.cid as string
    const kubo = (await (await rpc(a, 'add', { pin: 'false' }, { body: formOf([{ path: 'x', content: 'hello methods' }]) })).json()) as { Hash: string, Size: string }
    assert.deepEqual([kubo.Hash, kubo.Size], [cid, String(added.body.size)], 'the CID and size Kubo add gives')

    const got = await call(a, 'get', { kwargs: { cid } })
    assert.deepEqual([got.status, Buffer.from(got.body.data, 'base64').toString(), got.body.encoding], [200, 'hello methods', 'base64'])
    assert.equal((await call(a, 'exists', { args: [cid] })).body.exists, true)
    const elsewhere = await call(b, 'exists', { args: [cid] })
    assert.deepEqual([elsewhere.status, elsewhere.body.exists], [200, false], 'exists fetches nothing')

    const wrapped = await call(a, 'add', { kwargs: { content: Buffer.from([0, 1, 2]).toString('base64'), encoding: 'base64', name: 'three.bin', wrap_with_directory: true } })
    assert.equal(wrapped.status, 200)
    const listing = await call(a, 'ls', { args: [wrapped.body.cid] })
    assert.deepEqual(listing.body.entries.map((e: { name: string, size: number }) => [e.name, e.size]), [['three.bin', 3]])
    assert.deepEqual((await call(a, 'ls', { args: [wrapped.body.cid, false] })).body.entries, ['three.bin'])

    assert.deepEqual((await call(a, 'pin', { args: [cid] })).body.pins, [cid])
    const direct = await call(a, 'list_pins', { kwargs: { type: 'recursive', quiet: true } })
    assert.ok(direct.body.pins.includes(cid))
    const typed = await call(a, 'list_pins', { args: ['recursive'] })
    assert.deepEqual(typed.body.pins[cid], { Type: 'recursive' })
    assert.deepEqual((await call(a, 'unpin', { kwargs: { cid } })).body.pins, [cid])
    assert.ok(!(await call(a, 'list_pins', { args: ['recursive', true] })).body.pins.includes(cid))
    // The REST route of the same operation answers alike.
    const rest = await (await rpc(a, 'pin/add', { arg: cid })).json() as { pins: string[], Pins: string[] }
    assert.deepEqual([rest.pins, rest.Pins], [[cid], [cid]])

    const missing = await call(a, 'get', { args: [] })
    assert.deepEqual([missing.status, missing.body.error_type], [422, 'ValidationError'])
    // An unknown keyword is refused by name, never ignored.
    const unknown = await call(a, 'add', { args: ['x'], kwargs: { bogus: 1 } })
    assert.deepEqual([unknown.status, unknown.body.error_type], [422, 'ValidationError'])
    assert.match(unknown.body.error, /bogus/)
  })

  it('publishes and resolves IPNS names, connects and lists peers', async () => {
    const { body: { cid } } = await call(a, 'add', { args: [`ipns ${Date.now()}`] })
    const published = await call(a, 'publish', { args: [`/ipfs/${cid}`] })
    assert.equal(published.status, 200, JSON.stringify(published.body))
    assert.match(published.body.ipns_name, /^k51/)
    const resolved = await call(a, 'resolve', { kwargs: { ipns_name: published.body.ipns_name } })
    assert.equal(resolved.status, 200)
    assert.equal(resolved.body.path, published.body.value.replace(cid, resolved.body.resolved_cid))

    const connected = await call(b, 'connect', { args: [a.swarmAddr] })
    assert.deepEqual([connected.status, connected.body.peers], [200, [a.node.peerId]])
    const verbose = await call(b, 'peers', { kwargs: { verbose: true } })
    const toA = verbose.body.peers.find((p: { peer: string }) => p.peer === a.node.peerId)
    assert.deepEqual(Object.keys(toA).sort(), ['addr', 'direction', 'latency_ms', 'muxer', 'peer', 'streams'])
    assert.equal(toA.direction, 'outbound')
    assert.equal(verbose.body.count, verbose.body.peers.length)
    const plain = await call(b, 'peers', { args: [false, false, true] })
    assert.deepEqual(Object.keys(plain.body.peers.find((p: { peer: string }) => p.peer === a.node.peerId)).sort(), ['addr', 'direction', 'peer'])
  })

  it('adds and pins in the cluster and tells its status and peers', async () => {
    const added = await call(a, 'cluster_add', { args: [`cluster ${Date.now()}`, 1], kwargs: { name: 'by-method' } })
    assert.equal(added.status, 200, JSON.stringify(added.body))
    assert.deepEqual(added.body.peers, [a.node.peerId])
    const pinned = await call(a, 'cluster_pin', { kwargs: { cid: added.body.cid, replication_factor: 1, name: 'again' } })
    assert.equal(pinned.status, 200)
    const status = await call(a, 'cluster_status', { args: [added.body.cid] })
    assert.ok(status.body.status[added.body.cid] != null)
    const members = await call(a, 'cluster_peers')
    assert.ok(members.body.peers.length >= 1)
    assert.equal(members.body.count, members.body.peers.length)
  })

  it('sends add, pin and unpin events to a socket that asked for them', async () => {
    const socket = eventSocket(wsUrl(a, '/ws/v0/events'))
    try {
      await socket.opened
      socket.ws.send(JSON.stringify({ events: ['nope'] }))
      const refused = await socket.next()
      assert.deepEqual([refused.success, refused.error_type], [false, 'IPFSValidationError'])
      socket.ws.send(JSON.stringify({ events: ['pin', 'unpin', 'add'] }))
      assert.deepEqual(await socket.next(), { event: 'subscribed', data: { events: ['pin', 'unpin', 'add'] } })

      const text = `event ${Date.now()}`
      const res = await rpc(a, 'add', { pin: 'false' }, { body: formOf([{ path: 'event.txt', content: text }]) })
      const { Hash: cid, Size: size } = await res.json() as { Hash: string, Size: string }
      assert.deepEqual(await nextEvent(socket, 'add'), { event: 'add', data: { cid, name: 'event.txt', size: Number(size) } })
      await call(a, 'pin', { args: [cid] })
      assert.deepEqual(await nextEvent(socket, 'pin'), { event: 'pin', data: { cid, recursive: true } })
      await rpc(a, 'pin/rm', { arg: cid })
      assert.deepEqual(await nextEvent(socket, 'unpin'), { event: 'unpin', data: { cid, recursive: true } })
    } finally {
      socket.ws.close()
    }
  })

  it('checks each method\'s permission, and the events socket\'s, through the access guard', async () => {
    const admin = { authorization: `Bearer ${(await readFile(join(a.repo, COOKIE_FILE), 'utf8')).trim()}` }
    const made = await fetch(`${a.url}/api/v1/auth/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'reader', permissions: ['content:read'] }) })
    const key = (await made.json() as { key: string }).key
    const { body: { cid } } = await call(a, 'add', { args: ['guarded'] }, admin)
    assert.equal((await call(a, 'get', { args: [cid] }, { 'x-api-key': key })).status, 200)
    const refused = await call(a, 'pin', { args: [cid] }, { 'x-api-key': key })
    assert.deepEqual([refused.status, refused.body.error_type], [403, 'AuthorizationError'])
    assert.equal((await call(a, 'pin', { args: [cid] })).status, 401, 'no credential at all')

    await assert.rejects(eventSocket(wsUrl(a, '/ws/v0/events')).opened, /refused with 401/)
    const keyed = eventSocket(wsUrl(a, `/ws/v0/events?api_key=${key}`))
    await keyed.opened
    keyed.ws.close()
  })
})
