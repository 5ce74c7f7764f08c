/**
 * Feature tests of RawNode: each drives a few nodes on the synchronous
 * in-memory network of helpers/network.ts and checks one behaviour the
 * library promises (pre-vote, check-quorum, flow control, backtracking,
 * membership, snapshots, reads, leader transfer, proposal forwarding).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ProposalDroppedError, ConfChangeError } from '../src/index.ts'
import { Network, entries, msg, newNode } from './helpers/network.ts'
import type { Entry, Message, MessageType, NodeId, Ready } from '../src/index.ts'
import type { NodeOptions, TestNode } from './helpers/network.ts'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const dec = (b: Uint8Array): string => new TextDecoder().decode(b)

/** newNode() turns pre-vote and check-quorum off for the paper's tests; these test the library's defaults. */
const DEFAULTS: NodeOptions = { preVote: true, checkQuorum: true }

function cluster (voters: NodeId[], opts: NodeOptions = {}): Network {
  return new Network(voters.map(id => newNode(id, voters, { ...DEFAULTS, ...opts })))
}

/** A node that joins later: it starts from the cluster's genesis membership, in which it is not. */
function join (net: Network, id: NodeId, genesis: NodeId[]): TestNode {
  const n = newNode(id, genesis, DEFAULTS)
  net.nodes.set(id, n)
  return n
}

function ticks (net: Network, count: number, ids?: NodeId[]): void {
  for (let i = 0; i < count; i++) net.tick(ids)
}

const state = (net: Network, id: NodeId): string => net.node(id).raw.status().softState.raftState
const termOf = (net: Network, id: NodeId): number => net.node(id).raw.status().hardState.term

function elect (net: Network, id: NodeId): void {
  net.elect(id)
  assert.equal(state(net, id), 'leader')
}

/** The values a node applied, leaving out leaders' empty entries and conf changes. */
const valuesOf = (entries: Entry[]): string[] => entries.filter(e => e.type === 'normal' && e.data.byteLength > 0).map(e => dec(e.data))
const values = (n: TestNode): string[] => valuesOf(n.applied)

/** What a node's state machine holds: its snapshot's values, then those applied after it. */
function stateOf (n: TestNode): string[] {
  const snap = n.storage.snapshot()
  const base = snap.data.byteLength === 0 ? [] : dec(snap.data).split(',')
  return [...base, ...valuesOf(n.applied.filter(e => e.index > snap.metadata.index))]
}

describe('election', () => {
  it('elects a leader after the election timeout and replicates to all', () => {
    const net = cluster(['1', '2', '3'])
    ticks(net, 30)
    const leaders = [...net.nodes.keys()].filter(id => state(net, id) === 'leader')
    assert.equal(leaders.length, 1)
    net.node(leaders[0]).raw.propose(enc('x'))
    net.settle()
    for (const p of net.nodes.values()) assert.deepEqual(values(p), ['x'])
  })

  it('pre-vote: a node back from a partition does not raise the term or unseat the leader', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    const term = termOf(net, '1')
    net.isolate('3')
    // keep the others' lease fresh while 3 times out again and again
    ticks(net, 50)
    assert.equal(termOf(net, '3'), term, 'pre-vote rounds do not bump the term')
    assert.equal(state(net, '3'), 'pre-candidate')
    net.heal()
    ticks(net, 5)
    assert.equal(state(net, '1'), 'leader')
    assert.equal(termOf(net, '1'), term)
  })

  it('without pre-vote a rejoining node with a higher term forces a new election (the case pre-vote exists for)', () => {
    const net = cluster(['1', '2', '3'], { preVote: false, checkQuorum: false })
    elect(net, '1')
    const term = termOf(net, '1')
    net.isolate('3')
    ticks(net, 50, ['3'])
    assert.ok(termOf(net, '3') > term)
    net.heal()
    ticks(net, 30)
    assert.ok(termOf(net, '1') > term, 'the stable leader lost its term to the rejoining node')
  })

  it('forgetLeader: a follower gives up the leader\'s lease and grants a pre-vote at once', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.isolate('1')
    net.node('3').raw.campaign()
    net.settle()
    assert.equal(state(net, '3'), 'pre-candidate', '2 still holds 1\'s lease and ignores the pre-vote')
    net.node('2').raw.forgetLeader()
    net.node('3').raw.campaign()
    net.settle()
    assert.equal(state(net, '3'), 'leader')
  })

  it('check-quorum: a partitioned leader steps down within an election timeout', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.isolate('1')
    ticks(net, 25)
    assert.equal(state(net, '1'), 'follower')
    const newLeader = ['2', '3'].find(id => state(net, id) === 'leader')
    assert.ok(newLeader != null, 'the majority side elects a leader')
  })

  it('a node with a less up-to-date log does not get the votes', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.drop = m => m.to === '3'
    net.node('1').raw.propose(enc('a'))
    net.settle()
    net.heal()
    net.isolate('1')
    // 3 lacks entry 'a', which 2 has: 2 refuses its vote
    net.node('3').raw.campaign()
    net.settle()
    assert.notEqual(state(net, '3'), 'leader')
    net.node('2').raw.campaign()
    net.settle()
    assert.equal(state(net, '2'), 'leader')
  })
})

describe('replication', () => {
  it('pipelines MsgApp to a replicating follower, bounded by maxInflightMsgs', () => {
    const net = cluster(['1', '2', '3'], { maxInflightMsgs: 4 })
    elect(net, '1')
    // hold back acknowledgements so the window fills
    net.drop = m => m.type === 'MsgAppResp'
    net.sent.length = 0
    for (let i = 0; i < 10; i++) {
      net.node('1').raw.propose(enc(`e${i}`))
      net.settle()
    }
    const apps = net.sent.filter(m => m.type === 'MsgApp' && m.to === '2')
    assert.equal(apps.length, 4, 'no more than 4 MsgApp in flight')
    net.heal()
    ticks(net, 2)
    for (const p of net.nodes.values()) assert.equal(values(p).length, 10)
  })

  it('batches proposals made before a Ready into one MsgApp', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.sent.length = 0
    for (let i = 0; i < 20; i++) net.node('1').raw.propose(enc(`b${i}`))
    net.settle()
    const apps = net.sent.filter(m => m.type === 'MsgApp' && m.to === '2' && m.entries.length > 0)
    assert.equal(apps.length, 1, 'one MsgApp carries all 20')
    assert.equal(apps[0].entries.length, 20)
    assert.ok(values(net.node('2')).length === 20)
  })

  it('with deferCommitBroadcast, leaves a new commit index to the next appends, or to broadcastCommit when none comes', () => {
    const net = cluster(['1', '2', '3'], { deferCommitBroadcast: true })
    elect(net, '1')
    const leader = net.node('1').raw
    const emptyApps = (): Message[] => net.sent.filter(m => m.type === 'MsgApp' && m.entries.length === 0)
    net.sent.length = 0
    leader.propose(enc('a'))
    net.settle()
    // Committed at the leader; no append has told the followers yet.
    assert.equal(leader.commitUnsent, true)
    assert.deepEqual([emptyApps().length, values(net.node('2'))], [0, []])
    // The next entry's appends carry the commit index: no append of its own.
    leader.propose(enc('b'))
    leader.broadcastCommit()
    net.settle()
    assert.deepEqual([emptyApps().length, values(net.node('2')), values(net.node('3'))], [0, ['a'], ['a']])
    // Nothing follows b: broadcastCommit sends the appends, one per follower.
    leader.broadcastCommit()
    net.settle()
    assert.deepEqual([emptyApps().map(m => m.to).sort(), values(net.node('2')), values(net.node('3'))], [['2', '3'], ['a', 'b'], ['a', 'b']])
    assert.equal(leader.commitUnsent, false)
  })

  it('with deferCommitBroadcast, tells a member it removes of the commit at once, as no later append goes to it', () => {
    const net = cluster(['1', '2', '3'], { deferCommitBroadcast: true })
    elect(net, '1')
    net.node('1').raw.proposeConfChange({ changes: [{ type: 'remove-node', nodeId: '3' }] })
    net.settle()
    assert.deepEqual(net.node('1').conf?.voters, ['1', '2'])
    assert.deepEqual(net.node('3').conf?.voters, ['1', '2'], 'the removed member applied its removal')
  })

  it('backtracks a conflicting follower log a term at a time', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    // 1 writes 30 entries that only it gets, in its term
    net.drop = m => m.from === '1' && m.type === 'MsgApp'
    for (let i = 0; i < 30; i++) net.node('1').raw.propose(enc(`lost${i}`))
    net.settle()
    net.heal()
    net.isolate('1')
    ticks(net, 30, ['2', '3'])
    const leader = ['2', '3'].find(id => state(net, id) === 'leader')
    assert.ok(leader != null)
    net.node(leader).raw.propose(enc('kept'))
    net.settle()
    net.heal()
    net.sent.length = 0
    ticks(net, 3)
    const rejects = net.sent.filter(m => m.type === 'MsgAppResp' && m.from === '1' && m.reject)
    assert.ok(rejects.length <= 2, `30 conflicting entries resolved in ${rejects.length} rejections`)
    assert.deepEqual(values(net.node('1')), values(net.node(leader)))
    assert.ok(!values(net.node('1')).some(v => v.startsWith('lost')))
  })

  it('bounds uncommitted bytes at the leader', () => {
    const net = cluster(['1', '2', '3'], { maxUncommittedEntriesSize: 1000 })
    elect(net, '1')
    net.isolate('1')
    net.node('1').raw.propose(new Uint8Array(600))
    assert.throws(() => { net.node('1').raw.propose(new Uint8Array(600)) }, ProposalDroppedError)
  })
})

describe('proposals at a follower', () => {
  it('are forwarded to the leader', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.node('3').raw.propose(enc('via-3'))
    net.settle()
    assert.deepEqual(values(net.node('1')), ['via-3'])
  })

  it('are rejected with the leader id when forwarding is off', () => {
    const net = cluster(['1', '2', '3'], { disableProposalForwarding: true })
    elect(net, '1')
    assert.throws(() => { net.node('3').raw.propose(enc('x')) }, (err: any) => err.name === 'ProposalDroppedError' && err.leader === '1')
  })

  it('are rejected when there is no leader', () => {
    const net = cluster(['1', '2', '3'])
    assert.throws(() => { net.node('2').raw.propose(enc('x')) }, (err: any) => err.name === 'ProposalDroppedError' && err.leader === '')
  })
})

describe('membership', () => {
  it('adds a learner that replicates but does not vote, then promotes it', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.node('1').raw.propose(enc('before'))
    net.settle()
    join(net, '4', ['1', '2', '3'])
    net.node('1').raw.proposeConfChange({ changes: [{ type: 'add-learner-node', nodeId: '4' }] })
    net.settle()
    ticks(net, 2)
    assert.deepEqual(values(net.node('4')), ['before'])
    assert.deepEqual(net.node('1').conf?.learners, ['4'])
    // a learner never campaigns
    ticks(net, 40, ['4'])
    assert.equal(state(net, '4'), 'follower')
    net.node('1').raw.proposeConfChange({ changes: [{ type: 'add-node', nodeId: '4' }] })
    net.settle()
    assert.deepEqual(net.node('4').conf?.voters, ['1', '2', '3', '4'])
    net.node('1').raw.transferLeader('4')
    net.settle()
    assert.equal(state(net, '4'), 'leader')
  })

  it('replaces two voters at once through a joint configuration that is left automatically', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    join(net, '4', ['1', '2', '3'])
    join(net, '5', ['1', '2', '3'])
    net.node('1').raw.proposeConfChange({ changes: [{ type: 'add-node', nodeId: '4' }, { type: 'add-node', nodeId: '5' }, { type: 'remove-node', nodeId: '3' }] })
    net.settle()
    ticks(net, 2)
    const conf = net.node('1').conf
    assert.deepEqual(conf?.voters, ['1', '2', '4', '5'])
    assert.deepEqual(conf?.votersOutgoing, [], 'the joint config was left')
    net.node('1').raw.propose(enc('after'))
    net.settle()
    assert.deepEqual(values(net.node('5')), ['after'])
  })

  it('leaves an explicit joint configuration with an empty change, whatever its context, as etcd does', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    join(net, '4', ['1', '2', '3'])
    net.node('1').raw.proposeConfChange({ changes: [{ type: 'add-node', nodeId: '4' }, { type: 'remove-node', nodeId: '3' }], transition: 'explicit' })
    net.settle()
    ticks(net, 2)
    assert.deepEqual(net.node('1').conf?.votersOutgoing, ['1', '2', '3'], 'explicit: the joint config stays until left')
    // a driver carries its request id in the context
    net.node('1').raw.proposeConfChange({ changes: [], context: enc('request 7') })
    net.settle()
    assert.deepEqual(net.node('1').conf?.voters, ['1', '2', '4'])
    assert.deepEqual(net.node('4').conf?.votersOutgoing, [])
  })

  it('refuses a second change while one is pending, and changes that break the config', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.isolate('1')
    net.node('1').raw.proposeConfChange({ changes: [{ type: 'add-learner-node', nodeId: '4' }] })
    assert.throws(() => { net.node('1').raw.proposeConfChange({ changes: [{ type: 'add-learner-node', nodeId: '5' }] }) }, ConfChangeError)
    net.heal()
    net.settle()
    ticks(net, 2)
    assert.throws(() => {
      net.node('1').raw.proposeConfChange({ changes: [{ type: 'remove-node', nodeId: '1' }, { type: 'remove-node', nodeId: '2' }, { type: 'remove-node', nodeId: '3' }] })
    }, ConfChangeError)
  })

  it('a removed leader steps down', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.node('1').raw.proposeConfChange({ changes: [{ type: 'remove-node', nodeId: '1' }] })
    net.settle()
    assert.equal(state(net, '1'), 'follower')
    ticks(net, 30, ['2', '3'])
    assert.ok(['2', '3'].some(id => state(net, id) === 'leader'))
  })
})

describe('snapshots', () => {
  it('sends a snapshot to a follower whose entries were compacted away', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.isolate('3')
    for (let i = 0; i < 10; i++) net.node('1').raw.propose(enc(`s${i}`))
    net.settle()
    const leader = net.node('1')
    const applied = leader.raw.status().applied
    leader.storage.createSnapshot(applied, leader.conf, enc(values(leader).join(',')))
    leader.storage.compact(applied)
    net.heal()
    net.sent.length = 0
    ticks(net, 3)
    assert.ok(net.sent.some(m => m.type === 'MsgSnap' && m.to === '3'))
    leader.raw.reportSnapshot('3', false)
    net.node('1').raw.propose(enc('after'))
    net.settle()
    ticks(net, 2)
    assert.deepEqual(stateOf(net.node('3')), stateOf(leader))
    assert.equal(stateOf(net.node('3')).at(-1), 'after')
  })
})

describe('reads', () => {
  it('ReadIndex at the leader and at a follower return the commit index after a heartbeat round', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.node('1').raw.propose(enc('w'))
    net.settle()
    const committed = net.node('1').raw.status().hardState.commit
    const states: Array<{ id: NodeId, index: number, ctx: string }> = []
    const collect = (id: NodeId): void => {
      const p = net.node(id)
      if (!p.raw.hasReady()) return
      const rd = p.raw.ready()
      for (const rs of rd.readStates) states.push({ id, index: rs.index, ctx: dec(rs.requestCtx) })
      p.storage.append(rd.entries)
      if (rd.hardState != null) p.storage.setHardState(rd.hardState)
      for (const m of rd.messages) net.node(m.to).raw.step(m)
      p.raw.advance()
    }
    net.node('1').raw.readIndex(enc('r1'))
    net.node('3').raw.readIndex(enc('r3'))
    for (let i = 0; i < 20; i++) for (const id of ['1', '2', '3']) collect(id)
    assert.deepEqual(states.map(s => [s.id, s.ctx, s.index]).sort(), [['1', 'r1', committed], ['3', 'r3', committed]])
  })

  it('a leader cut off from the quorum does not answer ReadIndex', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.isolate('1')
    net.node('1').raw.readIndex(enc('stale?'))
    ticks(net, 3, ['1'])
    const rd = net.node('1').raw.hasReady() ? net.node('1').raw.ready() : undefined
    assert.equal(rd?.readStates.length ?? 0, 0)
  })
})

describe('leader transfer', () => {
  it('hands leadership to an up-to-date voter', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.node('1').raw.transferLeader('3')
    net.settle()
    assert.equal(state(net, '3'), 'leader')
    assert.equal(net.node('1').raw.status().softState.lead, '3')
  })

  it('catches the transferee up first, and drops proposals meanwhile', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    net.drop = m => m.to === '3'
    net.node('1').raw.propose(enc('x'))
    net.settle()
    net.node('1').raw.transferLeader('3')
    net.settle()
    assert.throws(() => { net.node('1').raw.propose(enc('y')) }, ProposalDroppedError)
    net.heal()
    ticks(net, 2)
    assert.equal(state(net, '3'), 'leader')
    assert.deepEqual(values(net.node('3')), ['x'])
  })
})

describe('RawNode contract', () => {
  it('persists entries and hard state in the same Ready as the messages that depend on them', () => {
    const net = cluster(['1', '2', '3'])
    const types = new Set<MessageType>()
    const n1 = net.node('1').raw
    n1.campaign()
    const rd = n1.ready()
    for (const m of rd.messages) types.add(m.type)
    assert.ok(types.has('MsgPreVote'))
    n1.advance()
    assert.throws(() => { n1.step({ ...rd.messages[0], type: 'MsgHup' }) }, { name: 'StepLocalMessageError' })
  })

  /** Three nodes led by 1, which has just taken the Ready of a proposal of 'x'. */
  function proposedAtLeader (): { net: Network, leader: TestNode, rd: Ready, commitOf: () => number, before: number } {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    const leader = net.node('1')
    const commitOf = (): number => leader.raw.status().hardState.commit
    const before = commitOf()
    leader.raw.propose(enc('x'))
    return { net, leader, rd: leader.raw.ready(), commitOf, before }
  }

  /** Follower 2 takes what the leader sent it, persists it and answers. */
  function ackBy2 (net: Network, sent: Message[]): void {
    const f2 = net.node('2')
    for (const m of sent.filter(m => m.to === '2')) f2.raw.step(m)
    const rd = f2.raw.ready()
    f2.storage.append(rd.entries)
    if (rd.hardState != null) f2.storage.setHardState(rd.hardState)
    f2.raw.advance()
    for (const m of rd.messages) net.node('1').raw.step(m)
  }

  it('a leader may send before it persists, and counts itself only after advance()', () => {
    const { net, leader, rd, commitOf, before } = proposedAtLeader()
    assert.equal(rd.sendBeforePersist, true)
    // only follower 2 gets and acknowledges the entry while the leader is still writing it
    ackBy2(net, rd.messages)
    assert.equal(commitOf(), before, 'one follower alone is no quorum')
    leader.storage.append(rd.entries)
    leader.raw.advance()
    assert.equal(commitOf(), before + 1, 'with the leader\'s own write, 2 of 3')
  })

  it('a leader advanced before its write takes the next Ready at once, without the entries being written, and counts itself only once they are persisted', () => {
    const { net, leader, rd, commitOf, before } = proposedAtLeader()
    const written = leader.raw.advanceBeforePersist()
    assert.deepEqual(written, { index: rd.entries[0].index, term: rd.entries[0].term })
    // the next proposal goes out while x is still being written, and x is not handed out again
    leader.raw.propose(enc('y'))
    assert.ok(leader.raw.hasReady())
    const rd2 = leader.raw.ready()
    assert.deepEqual(valuesOf(rd2.entries), ['y'])
    const y = leader.raw.advanceBeforePersist()
    // follower 2 acknowledges both: no quorum without the leader's own write
    ackBy2(net, [...rd.messages, ...rd2.messages])
    assert.equal(commitOf(), before, 'one follower alone is no quorum')
    leader.storage.append([...rd.entries, ...rd2.entries])
    leader.raw.persisted(written?.index ?? 0, written?.term ?? 0)
    assert.equal(commitOf(), before + 1, 'x is on 2 of 3 disks')
    leader.raw.persisted(y?.index ?? 0, y?.term ?? 0)
    assert.equal(commitOf(), before + 2, 'and so is y')
    assert.deepEqual(valuesOf(leader.raw.ready().committedEntries), ['x', 'y'])
  })

  it('refuses advanceBeforePersist() for a Ready that must be persisted before it is sent', () => {
    const net = cluster(['1', '2', '3'])
    const n = net.node('1').raw
    n.campaign()
    n.ready()
    assert.throws(() => n.advanceBeforePersist(), /must be persisted/)
  })

  it('hands out again what a leader of a later term wrote over entries still being written', () => {
    const net = cluster(['1', '2', '3'])
    elect(net, '1')
    const old = net.node('1')
    old.raw.propose(enc('lost'))
    const rd = old.raw.ready()
    const lost = old.raw.advanceBeforePersist()
    const index = rd.entries[0].index
    // a leader of a later term replaces the entry before the old leader's write finished
    old.raw.step(msg({ type: 'MsgApp', from: '2', to: '1', term: 5, index: index - 1, logTerm: rd.entries[0].term, entries: [{ term: 5, index, type: 'normal', data: enc('kept') }] }))
    const rd2 = old.raw.ready()
    assert.deepEqual(valuesOf(rd2.entries), ['kept'])
    old.raw.advance()
    // the old write finishing late acknowledges nothing
    old.raw.persisted(lost?.index ?? 0, lost?.term ?? 0)
    assert.equal(old.raw.hasReady(), false)
  })

  it('does not acknowledge entries that a leader of a later term replaced before they were persisted', () => {
    const n = newNode('1', ['1', '2', '3'], DEFAULTS)
    // the leader of term 2 appends 1 and 2; no Ready is taken in between, as when the node is busy writing
    n.raw.step(msg({ type: 'MsgApp', from: '2', to: '1', term: 2, entries: entries([2]) }))
    n.raw.step(msg({ type: 'MsgApp', from: '2', to: '1', term: 2, index: 1, logTerm: 2, entries: entries([2], 2) }))
    // the leader of term 3 replaces them
    n.raw.step(msg({ type: 'MsgApp', from: '3', to: '1', term: 3, entries: entries([3]) }))
    const rd = n.raw.ready()
    assert.deepEqual(rd.entries.map(e => `${e.index}@${e.term}`), ['1@3'])
    // what is sent after this Ready is persisted must hold of what it persisted: 2@2 and 1@2 were never written
    const acks = rd.messages.filter(m => m.type === 'MsgAppResp' && !m.reject).map(m => `${m.to}: ${m.index}@t${m.term}`)
    assert.deepEqual(acks, ['3: 1@t3'])
  })

  it('a candidate does not send before it persists its vote', () => {
    const net = cluster(['1', '2', '3'])
    const n = net.node('1').raw
    n.campaign()
    assert.equal(n.ready().sendBeforePersist, false)
    n.advance()
  })

  it('hasReady is false between ready() and advance()', () => {
    const net = cluster(['1'])
    const n = net.node('1').raw
    n.campaign()
    assert.ok(n.hasReady())
    n.ready()
    assert.equal(n.hasReady(), false)
    n.advance()
  })
})
