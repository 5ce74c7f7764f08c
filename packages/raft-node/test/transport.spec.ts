import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as varint from 'uint8-varint'
import { introduce, startLibp2p, until } from '../../../test/helpers/raft.ts'
import { encodeConfChange } from '@node-daemon/raft'
import { encodeProposal } from '../src/codec.ts'
import { createRaftTransport, RAFT_PROTOCOL } from '../src/transport.ts'
import type { Libp2pRaftTransport, RaftTransportInit } from '../src/transport.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Message } from '@node-daemon/raft'

function message (from: string, to: string, over: Partial<Message> = {}): Message {
  return { type: 'MsgHeartbeat', to, from, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...over }
}

interface Member {
  libp2p: Libp2p
  id: string
  transport: Libp2pRaftTransport
  received: Message[]
  unreachable: string[]
  snapshots: Array<{ to: string, failure: boolean }>
}

async function member (libp2p: Libp2p, members: Set<string>, init: Partial<RaftTransportInit> = {}): Promise<Member> {
  const transport = createRaftTransport({ libp2p }, { isMember: id => members.has(id), ...init })
  const m: Member = { libp2p, id: libp2p.peerId.toString(), transport, received: [], unreachable: [], snapshots: [] }
  transport.addEventListener('message', evt => { m.received.push(evt.detail) })
  transport.addEventListener('unreachable', evt => { m.unreachable.push(evt.detail) })
  transport.addEventListener('snapshot-status', evt => { m.snapshots.push(evt.detail) })
  await transport.start()
  return m
}

function raftStreams (from: Libp2p, to: Libp2p, direction: 'inbound' | 'outbound'): number {
  return from.getConnections(to.peerId).flatMap(c => c.streams).filter(s => s.protocol === RAFT_PROTOCOL && s.direction === direction && s.status === 'open').length
}

describe('raft transport over libp2p', () => {
  const nodes: Libp2p[] = []
  const transports: Libp2pRaftTransport[] = []
  const members = new Set<string>()
  let a: Member
  let b: Member
  let c: Member

  before(async () => {
    for (let i = 0; i < 3; i++) nodes.push(await startLibp2p())
    await introduce(nodes)
    for (const n of nodes) members.add(n.peerId.toString())
    ;[a, b, c] = await Promise.all(nodes.map(async n => member(n, members)))
    transports.push(a.transport, b.transport, c.transport)
  })

  /** Two members of their own, apart from a, b and c, for a test that counts their streams from the start. */
  async function twoMembers (): Promise<[Member, Member]> {
    const pair = [await startLibp2p(), await startLibp2p()]
    nodes.push(...pair)
    await introduce(pair)
    const ids = new Set(pair.map(n => n.peerId.toString()))
    const [x, y] = await Promise.all(pair.map(async n => member(n, ids)))
    transports.push(x.transport, y.transport)
    return [x, y]
  }

  after(async () => {
    await Promise.allSettled(transports.map(async t => t.stop()))
    await Promise.allSettled(nodes.map(async n => n.stop()))
  })

  it('delivers messages in order over one outbound stream per peer', async () => {
    const sent = Array.from({ length: 200 }, (_, i) => message(a.id, b.id, { index: i, entries: [{ term: 1, index: i, type: 'normal', data: Uint8Array.of(i % 256) }] }))
    // Three calls, as three Readies would make them; the first opens the stream, the others queue behind it.
    a.transport.send(sent.slice(0, 1))
    a.transport.send(sent.slice(1, 100))
    a.transport.send(sent.slice(100))
    await until('B receives 200 messages', () => b.received.length >= 200)
    // Decoded bytes may be Buffers: compare contents.
    const plain = (ms: Message[]): unknown => ms.map(m => ({ ...m, entries: m.entries.map(e => ({ ...e, data: [...e.data] })) }))
    assert.deepEqual(plain(b.received), plain(sent))
    assert.equal(raftStreams(a.libp2p, b.libp2p, 'outbound'), 1)
    a.transport.send([message(a.id, b.id)])
    await until('B receives one more', () => b.received.length === 201)
    assert.equal(raftStreams(a.libp2p, b.libp2p, 'outbound'), 1)
    assert.equal(a.transport.stats.sent, 201)
  })

  it('answers travel on a stream of their own, and messages fan out to several peers', async () => {
    b.transport.send([message(b.id, a.id, { type: 'MsgHeartbeatResp' })])
    await until('A receives the answer', () => a.received.length === 1)
    assert.equal(a.received[0].type, 'MsgHeartbeatResp')
    c.received.length = 0
    b.received.length = 0
    a.transport.send([message(a.id, b.id, { type: 'MsgApp', commit: 3 }), message(a.id, c.id, { type: 'MsgApp', commit: 3 })])
    await until('B and C receive', () => b.received.length === 1 && c.received.length === 1)
    assert.equal(c.received[0].from, a.id)
  })

  it('closes streams from peers that are not members at once', async () => {
    const outsider = await startLibp2p()
    nodes.push(outsider)
    await introduce([outsider, a.libp2p])
    const o = await member(outsider, new Set([...members, outsider.peerId.toString()]))
    transports.push(o.transport)
    const refused = a.transport.stats.refused
    const before = a.received.length
    o.transport.send([message(o.id, a.id)])
    await until('A refuses the outsider', () => a.transport.stats.refused === refused + 1)
    await until('the outsider sees its stream end', () => o.unreachable.includes(a.id) || raftStreams(outsider, a.libp2p, 'outbound') === 0)
    assert.equal(a.received.length, before)
  })

  it('ends a stream whose message claims another sender', async () => {
    const refused = b.transport.stats.refused
    const before = b.received.length
    c.transport.send([message(a.id, b.id)])
    await until('B refuses the forged message', () => b.transport.stats.refused === refused + 1)
    assert.equal(b.received.length, before)
    // C's next message opens a new stream and goes through.
    await until('C notices', () => raftStreams(c.libp2p, b.libp2p, 'outbound') === 0)
    c.transport.send([message(c.id, b.id)])
    await until('B receives from C', () => b.received.length === before + 1)
  })

  it('ends a stream whose message exceeds the cap before reading it, and drops its own oversized messages', async () => {
    const small = await member(await startLibp2p(), members, { maxMessageBytes: 1024 })
    nodes.push(small.libp2p)
    transports.push(small.transport)
    members.add(small.id)
    await introduce([small.libp2p, a.libp2p])
    const refused = small.transport.stats.refused
    a.transport.send([message(a.id, small.id, { context: new Uint8Array(4096) })])
    await until('the small node refuses', () => small.transport.stats.refused === refused + 1)
    assert.equal(small.received.length, 0)

    const dropped = small.transport.stats.dropped
    small.transport.send([message(small.id, a.id, {
      type: 'MsgSnap',
      snapshot: { metadata: { index: 9, term: 1, confState: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(4096) }
    })])
    assert.equal(small.transport.stats.dropped, dropped + 1)
    assert.deepEqual(small.snapshots, [{ to: a.id, failure: true }])
  })

  it('reports a written snapshot as sent', async () => {
    a.snapshots.length = 0
    a.transport.send([message(a.id, b.id, {
      type: 'MsgSnap',
      snapshot: { metadata: { index: 9, term: 1, confState: { voters: [a.id, b.id], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(100_000).fill(7) }
    })])
    await until('A reports the snapshot sent', () => a.snapshots.length === 1)
    assert.deepEqual(a.snapshots, [{ to: b.id, failure: false }])
    await until('B receives it', () => b.received.at(-1)?.type === 'MsgSnap')
    assert.equal(b.received.at(-1)?.snapshot?.data.byteLength, 100_000)
  })

  it('drops messages rather than block when a queue is full', async () => {
    const tiny = await member(await startLibp2p(), members, { maxQueuedMessages: 10 })
    nodes.push(tiny.libp2p)
    transports.push(tiny.transport)
    members.add(tiny.id)
    await introduce([tiny.libp2p, c.libp2p])
    const before = c.received.length
    // All in one call: the stream is still opening, so the queue fills.
    tiny.transport.send(Array.from({ length: 50 }, (_, i) => message(tiny.id, c.id, { index: i })))
    assert.equal(tiny.transport.stats.dropped, 40)
    await until('C receives the ten queued', () => c.received.length === before + 10)
    assert.deepEqual(c.received.slice(before).map(m => m.index), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })

  it('reports a peer it cannot reach and drops what waits for it', async () => {
    const gone = await startLibp2p()
    const goneId = gone.peerId.toString()
    members.add(goneId)
    await introduce([gone, a.libp2p])
    await gone.stop()
    const dropped = a.transport.stats.dropped
    a.transport.send([message(a.id, goneId), message(a.id, goneId)])
    await until('A reports the peer unreachable', () => a.unreachable.includes(goneId))
    assert.equal(a.transport.stats.dropped, dropped + 2)
    // Within the redial delay, messages are dropped without another dial.
    a.transport.send([message(a.id, goneId)])
    assert.equal(a.transport.stats.dropped, dropped + 3)
  })

  it('closes idle inbound streams, and the sender opens a new one', async () => {
    const idle = await member(await startLibp2p(), members, { idleTimeoutMs: 200 })
    nodes.push(idle.libp2p)
    transports.push(idle.transport)
    members.add(idle.id)
    await introduce([idle.libp2p, b.libp2p])
    b.transport.send([message(b.id, idle.id)])
    await until('the idle node receives', () => idle.received.length === 1)
    await until('the idle node closes the stream', () => raftStreams(idle.libp2p, b.libp2p, 'inbound') === 0, 3_000)
    // Raft resends rather than relying on one message: one sent while the close is on its way may be lost.
    for (let i = 0; i < 20 && idle.received.length < 2; i++) {
      b.transport.send([message(b.id, idle.id, { index: 2 })])
      await until('the idle node receives again', () => idle.received.length >= 2, 500).catch(() => {})
    }
    assert.ok(idle.received.length >= 2, 'the sender never reached the idle node again')
  })

  it('reports the loss of a member\'s last connection, and of no one else\'s', async () => {
    const [d, e] = await Promise.all([startLibp2p(), startLibp2p()])
    members.add(d.peerId.toString())
    const lost: string[] = []
    const onLost = (evt: CustomEvent<string>): void => { lost.push(evt.detail) }
    a.transport.addEventListener('disconnect', onLost)
    try {
      await a.libp2p.dial(d.getMultiaddrs())
      await a.libp2p.dial(e.getMultiaddrs())
      await Promise.all([d.stop(), e.stop()])
      await until('a has no connection to d or e', () => a.libp2p.getConnections(d.peerId).length + a.libp2p.getConnections(e.peerId).length === 0)
      await until('a reported d', () => lost.length > 0)
      assert.deepEqual(lost, [d.peerId.toString()])
    } finally {
      a.transport.removeEventListener('disconnect', onLost)
      members.delete(d.peerId.toString())
      await Promise.allSettled([d.stop(), e.stop()])
    }
  })

  it('closes streams to peers that left the membership', async () => {
    a.transport.send([message(a.id, c.id)])
    await until('A has a stream to C', () => raftStreams(a.libp2p, c.libp2p, 'outbound') === 1)
    a.transport.setPeers([b.id])
    await until('the stream to C closes', () => raftStreams(a.libp2p, c.libp2p, 'outbound') === 0)
  })

  it('ends the stream of a peer that sends bytes that do not decode', async () => {
    const stream = await c.libp2p.dialProtocol(a.libp2p.peerId, RAFT_PROTOCOL)
    const refused = a.transport.stats.refused
    const junk = Uint8Array.of(0x08, 99)
    stream.send(varint.encode(junk.byteLength))
    stream.send(junk)
    await until('A refuses the garbage', () => a.transport.stats.refused === refused + 1)
    await until('the stream is reset', () => stream.status !== 'open')
  })

  it('opens its stream to each peer it is told of, before any message, so that a first vote does not wait for a dial', async () => {
    const [x, y] = await twoMembers()
    x.transport.setPeers([y.id])
    await until('x holds a raft stream to y', () => raftStreams(x.libp2p, y.libp2p, 'outbound') === 1)
    assert.equal(x.transport.stats.sent, 0)
    x.transport.send([message(x.id, y.id)])
    await until('y receives it', () => y.received.length === 1)
    assert.equal(raftStreams(x.libp2p, y.libp2p, 'outbound'), 1)
  })

  it('opens no stream ahead of a message to a member it is not told to open one to (a learner, which casts no vote)', async () => {
    const [x, y] = await twoMembers()
    x.transport.setPeers([y.id], [])
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.equal(raftStreams(x.libp2p, y.libp2p, 'outbound'), 0)
    x.transport.send([message(x.id, y.id)])
    await until('y receives it', () => y.received.length === 1)
  })

  it('drops what a member that may not lead sends as leader or candidate, and the proposals it may not make, on a stream it keeps', async () => {
    const [leaderNode, learnerNode] = [await startLibp2p(), await startLibp2p()]
    nodes.push(leaderNode, learnerNode)
    await introduce([leaderNode, learnerNode])
    const both = new Set([leaderNode.peerId.toString(), learnerNode.peerId.toString()])
    const learnerId = learnerNode.peerId.toString()
    const text = new TextDecoder()
    const proposals: string[] = []
    const leader = await member(leaderNode, both, {
      mayLead: id => id !== learnerId,
      mayPropose: (id, p) => {
        proposals.push(p.type === 'normal' ? text.decode(p.command) : 'conf-change')
        return p.type === 'normal' && text.decode(p.command) === `ok from ${id}`
      }
    })
    const learner = await member(learnerNode, both)
    transports.push(leader.transport, learner.transport)
    const entry = (command: string): Message['entries'][number] => ({ term: 0, index: 0, type: 'normal', data: encodeProposal({ id: Uint8Array.of(1), command: new TextEncoder().encode(command) }) })
    const to = (type: Message['type'], over: Partial<Message> = {}): Message => message(learner.id, leader.id, { type, ...over })
    const forbidden = [
      ...(['MsgApp', 'MsgHeartbeat', 'MsgSnap', 'MsgVote', 'MsgPreVote', 'MsgVoteResp', 'MsgPreVoteResp', 'MsgTimeoutNow', 'MsgTransferLeader', 'MsgReadIndexResp'] as const).map(type => to(type, { term: 99 })),
      to('MsgProp', { term: 0, entries: [entry(`ok from ${learner.id}`), entry('model.remove')] }),
      to('MsgProp', { term: 0, entries: [{ term: 0, index: 0, type: 'normal', data: Uint8Array.of(0xff, 0xff) }] }),
      to('MsgProp', { term: 0, entries: [{ term: 0, index: 0, type: 'conf-change', data: encodeConfChange({ changes: [{ type: 'remove-node', nodeId: leader.id }] }) }] })
    ]
    const allowed = [to('MsgAppResp'), to('MsgHeartbeatResp'), to('MsgReadIndex', { term: 0 }), to('MsgProp', { term: 0, entries: [entry(`ok from ${learner.id}`)] })]
    learner.transport.send([...forbidden, ...allowed])
    await until('the leader takes what a learner sends', () => leader.received.length === allowed.length)
    assert.deepEqual(leader.received.map(m => m.type), allowed.map(m => m.type))
    assert.equal(leader.transport.stats.forbidden, forbidden.length)
    assert.equal(leader.transport.stats.refused, 0, 'a forbidden message does not end the stream')
    assert.equal(raftStreams(learnerNode, leaderNode, 'outbound'), 1)
    assert.ok(proposals.includes('model.remove') && proposals.includes('conf-change'), 'each proposal was asked about')
    // the other way round, nothing is held back
    leader.transport.send([message(leader.id, learner.id, { type: 'MsgApp' }), message(leader.id, learner.id, { type: 'MsgVote' })])
    await until('the learner takes the leader\'s messages', () => learner.received.length === 2)
  })
})
