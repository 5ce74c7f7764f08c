/**
 * Document 000's /ws/v0/webrtc on an in-process daemon with several
 * WebSocket clients: ids and join/leave notices, offers, answers and
 * candidates to one client or to all, the room's bound, and bad messages.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startTestDaemon } from '../helpers/daemon.ts'
import { openSocket, wsUrl } from '../helpers/sockets.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { TestSocket } from '../helpers/sockets.ts'

/** A client that joined `room`, with its id and the peers it was told of. */
async function join (d: TestDaemon, room: string): Promise<TestSocket & { id: string, peers: string[] }> {
  const socket = openSocket(wsUrl(d, '/ws/v0/webrtc', { room }))
  await socket.opened
  const welcome = await socket.json()
  assert.equal(welcome.type, 'welcome')
  assert.equal(welcome.room, room)
  assert.match(welcome.id, /^[0-9a-f]{16}$/)
  return Object.assign(socket, { id: welcome.id as string, peers: welcome.peers as string[] })
}

/** Nothing arrives on the socket within `ms`. */
async function silent (socket: TestSocket, ms = 300): Promise<void> {
  await assert.rejects(socket.next(ms), /no message/)
}

describe('/ws/v0/webrtc', { timeout: 60_000 }, () => {
  let d: TestDaemon

  before(async () => { d = await startTestDaemon() })
  after(async () => { await d?.cleanup() })

  it('relays offers, answers and candidates between the clients of a room, to one or to all, with join and leave notices', async () => {
    const alice = await join(d, 'call-1')
    assert.deepEqual(alice.peers, [])
    const bob = await join(d, 'call-1')
    assert.deepEqual(bob.peers, [alice.id])
    assert.deepEqual(await alice.json(), { type: 'join', id: bob.id })
    const carol = await join(d, 'call-1')
    assert.deepEqual(new Set(carol.peers), new Set([alice.id, bob.id]))
    await alice.json()
    assert.deepEqual(await bob.json(), { type: 'join', id: carol.id })
    const other = await join(d, 'call-2')

    const offer = { type: 'offer', to: bob.id, sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' }
    alice.ws.send(JSON.stringify(offer))
    assert.deepEqual(await bob.json(), { ...offer, from: alice.id })
    bob.ws.send(JSON.stringify({ type: 'answer', to: alice.id, sdp: 'v=0', from: 'someone-else' }))
    assert.deepEqual(await alice.json(), { type: 'answer', to: alice.id, sdp: 'v=0', from: bob.id }, 'from is the sender\'s id, whatever it wrote')
    await silent(carol)

    const candidate = { type: 'candidate', candidate: { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 } }
    carol.ws.send(JSON.stringify(candidate))
    assert.deepEqual(await alice.json(), { ...candidate, from: carol.id })
    assert.deepEqual(await bob.json(), { ...candidate, from: carol.id })
    await silent(carol)
    await silent(other)

    bob.ws.close(1000)
    assert.deepEqual(await alice.json(), { type: 'leave', id: bob.id })
    assert.deepEqual(await carol.json(), { type: 'leave', id: bob.id })
    alice.ws.send(JSON.stringify({ type: 'offer', to: bob.id, sdp: 'v=0' }))
    const error = await alice.json()
    assert.equal(error.type, 'error')
    assert.equal(error.status_code, 404)
    alice.ws.send(JSON.stringify({ type: 'offer', to: carol.id, sdp: 'v=0' }))
    assert.equal((await carol.json()).from, alice.id, 'a message to a client that left leaves the socket open')
    for (const s of [alice, carol, other]) s.ws.close(1000)
    await Promise.all([alice.closed, carol.closed, other.closed])
  })

  it('closes with 4400 for a message that is not a signal and 4413 for one too large', async () => {
    const cases: Array<[string | Buffer, number]> = [
      ['not json', 4400],
      ['[1, 2]', 4400],
      [JSON.stringify({ type: 'hello' }), 4400],
      [JSON.stringify({ type: 'offer', to: 7 }), 4400],
      [Buffer.from([1, 2, 3]), 4400],
      [JSON.stringify({ type: 'offer', sdp: 'x'.repeat(70_000) }), 4413]
    ]
    for (const [message, code] of cases) {
      const s = await join(d, 'bad-messages')
      s.ws.send(message)
      const error = await s.json()
      assert.equal(error.type, 'error')
      assert.equal(error.status_code, code - 4000, `${String(message).slice(0, 40)}: ${JSON.stringify(error)}`)
      assert.equal((await s.closed).code, code)
    }
  })

  it('takes at most 16 clients in a room, closing the 17th with 4409, and frees the place when one leaves', async () => {
    const members = []
    for (let i = 0; i < 16; i++) members.push(await join(d, 'full'))
    const extra = openSocket(wsUrl(d, '/ws/v0/webrtc', { room: 'full' }))
    await extra.opened
    assert.equal((await extra.json()).status_code, 409)
    assert.equal((await extra.closed).code, 4409)
    members[0].ws.close(1000)
    await members[0].closed
    const late = await join(d, 'full')
    assert.equal(late.peers.length, 15)
    for (const s of [...members.slice(1), late]) s.ws.close(1000)
    await Promise.all(members.map(async s => s.closed))
  })

  it('refuses a room name it does not take before the upgrade', async () => {
    for (const room of ['', 'with space', 'x'.repeat(129)]) {
      await assert.rejects(openSocket(wsUrl(d, '/ws/v0/webrtc', { room })).opened, (err: any) => err.status >= 400 && err.status < 500)
    }
  })
})
