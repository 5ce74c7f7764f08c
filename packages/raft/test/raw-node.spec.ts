/**
 * Feature tests of RawNode: each drives a few nodes on a synchronous in-memory
 * network and checks one behaviour the library promises (pre-vote,
 * check-quorum, flow control, backtracking, membership, snapshots, reads,
 * leader transfer, proposal forwarding).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MemoryStorage, ProposalDroppedError, RawNode, ConfChangeError, decodeConfChange } from '../src/index.ts'
import type { ConfState, Message, MessageType, NodeId, RaftConfig } from '../src/index.ts'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const dec = (b: Uint8Array): string => new TextDecoder().decode(b)
const genesis = (voters: NodeId[]): ConfState => ({ voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false })

interface Peer {
  node: RawNode
  storage: MemoryStorage
  applied: string[]
  conf?: ConfState
}

/**
 * Delivers every message at once unless a filter drops it; `settle()` runs
 * Ready cycles until nothing moves (bounded).
 */
class Net {
  peers = new Map<NodeId, Peer>()
  drop: (m: Message) => boolean = () => false
  sent: Message[] = []
  private seed = 1

  constructor (ids: NodeId[], extra: Partial<RaftConfig> = {}) {
    for (const id of ids) this.add(id, genesis(ids), extra)
  }

  add (id: NodeId, conf: ConfState, extra: Partial<RaftConfig> = {}): Peer {
    const storage = new MemoryStorage(conf)
    // deterministic timeouts: each node draws from its own sequence
    const random = (): number => { this.seed = (this.seed * 48271) % 2147483647; return this.seed / 2147483647 }
    const peer = { node: new RawNode({ id, storage, random, ...extra }), storage, applied: [] }
    this.peers.set(id, peer)
    return peer
  }

  get (id: NodeId): Peer {
    const p = this.peers.get(id)
    if (p == null) throw new Error(`no peer ${id}`)
    return p
  }

  settle (): void {
    for (let round = 0; round < 500; round++) {
      const queue: Message[] = []
      for (const p of this.peers.values()) {
        if (!p.node.hasReady()) continue
        const rd = p.node.ready()
        if (rd.snapshot != null) {
          p.storage.applySnapshot(rd.snapshot)
          p.applied = dec(rd.snapshot.data) === '' ? [] : dec(rd.snapshot.data).split(',')
        }
        p.storage.append(rd.entries)
        if (rd.hardState != null) p.storage.setHardState(rd.hardState)
        queue.push(...rd.messages)
        for (const e of rd.committedEntries) {
          if (e.type === 'conf-change') p.conf = p.node.applyConfChange(decodeConfChange(e.data))
          else if (e.data.byteLength > 0) p.applied.push(dec(e.data))
        }
        p.node.advance()
      }
      if (queue.length === 0) return
      for (const m of queue) {
        this.sent.push(m)
        if (!this.drop(m)) this.peers.get(m.to)?.node.step(m)
      }
    }
    throw new Error('network did not settle in 500 rounds')
  }

  tick (n: number, only?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const [id, p] of this.peers) if (only == null || only.includes(id)) p.node.tick()
      this.settle()
    }
  }

  elect (id: NodeId): void {
    this.get(id).node.campaign()
    this.settle()
    assert.equal(this.state(id), 'leader')
  }

  state (id: NodeId): string {
    return this.get(id).node.status().softState.raftState
  }

  term (id: NodeId): number {
    return this.get(id).node.status().hardState.term
  }

  isolate (id: NodeId): void {
    this.drop = m => m.to === id || m.from === id
  }

  heal (): void {
    this.drop = () => false
  }
}

describe('election', () => {
  it('elects a leader after the election timeout and replicates to all', () => {
    const net = new Net(['1', '2', '3'])
    net.tick(30)
    const leaders = [...net.peers.keys()].filter(id => net.state(id) === 'leader')
    assert.equal(leaders.length, 1)
    net.get(leaders[0]).node.propose(enc('x'))
    net.settle()
    for (const p of net.peers.values()) assert.deepEqual(p.applied, ['x'])
  })

  it('pre-vote: a node back from a partition does not raise the term or unseat the leader', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    const term = net.term('1')
    net.isolate('3')
    // keep the others' lease fresh while 3 times out again and again
    net.tick(50)
    assert.equal(net.term('3'), term, 'pre-vote rounds do not bump the term')
    assert.equal(net.state('3'), 'pre-candidate')
    net.heal()
    net.tick(5)
    assert.equal(net.state('1'), 'leader')
    assert.equal(net.term('1'), term)
  })

  it('without pre-vote a rejoining node with a higher term forces a new election (the case pre-vote exists for)', () => {
    const net = new Net(['1', '2', '3'], { preVote: false, checkQuorum: false })
    net.elect('1')
    const term = net.term('1')
    net.isolate('3')
    net.tick(50, ['3'])
    assert.ok(net.term('3') > term)
    net.heal()
    net.tick(30)
    assert.ok(net.term('1') > term, 'the stable leader lost its term to the rejoining node')
  })

  it('check-quorum: a partitioned leader steps down within an election timeout', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.isolate('1')
    net.tick(25)
    assert.equal(net.state('1'), 'follower')
    const newLeader = ['2', '3'].find(id => net.state(id) === 'leader')
    assert.ok(newLeader != null, 'the majority side elects a leader')
  })

  it('a node with a less up-to-date log does not get the votes', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.drop = m => m.to === '3'
    net.get('1').node.propose(enc('a'))
    net.settle()
    net.heal()
    net.isolate('1')
    // 3 lacks entry 'a', which 2 has: 2 refuses its vote
    net.get('3').node.campaign()
    net.settle()
    assert.notEqual(net.state('3'), 'leader')
    net.get('2').node.campaign()
    net.settle()
    assert.equal(net.state('2'), 'leader')
  })
})

describe('replication', () => {
  it('pipelines MsgApp to a replicating follower, bounded by maxInflightMsgs', () => {
    const net = new Net(['1', '2', '3'], { maxInflightMsgs: 4 })
    net.elect('1')
    // hold back acknowledgements so the window fills
    net.drop = m => m.type === 'MsgAppResp'
    net.sent = []
    for (let i = 0; i < 10; i++) {
      net.get('1').node.propose(enc(`e${i}`))
      net.settle()
    }
    const apps = net.sent.filter(m => m.type === 'MsgApp' && m.to === '2')
    assert.equal(apps.length, 4, 'no more than 4 MsgApp in flight')
    net.heal()
    net.tick(2)
    for (const p of net.peers.values()) assert.equal(p.applied.length, 10)
  })

  it('batches proposals made before a Ready into one MsgApp', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.sent = []
    for (let i = 0; i < 20; i++) net.get('1').node.propose(enc(`b${i}`))
    net.settle()
    const apps = net.sent.filter(m => m.type === 'MsgApp' && m.to === '2' && m.entries.length > 0)
    assert.equal(apps.length, 1, 'one MsgApp carries all 20')
    assert.equal(apps[0].entries.length, 20)
    assert.ok(net.get('2').applied.length === 20)
  })

  it('backtracks a conflicting follower log a term at a time', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    // 1 writes 30 entries that only it gets, in its term
    net.drop = m => m.from === '1' && m.type === 'MsgApp'
    for (let i = 0; i < 30; i++) net.get('1').node.propose(enc(`lost${i}`))
    net.settle()
    net.heal()
    net.isolate('1')
    net.tick(30, ['2', '3'])
    const leader = ['2', '3'].find(id => net.state(id) === 'leader')
    assert.ok(leader != null)
    net.get(leader).node.propose(enc('kept'))
    net.settle()
    net.heal()
    net.sent = []
    net.tick(3)
    const rejects = net.sent.filter(m => m.type === 'MsgAppResp' && m.from === '1' && m.reject)
    assert.ok(rejects.length <= 2, `30 conflicting entries resolved in ${rejects.length} rejections`)
    assert.deepEqual(net.get('1').applied, net.get(leader).applied)
    assert.ok(!net.get('1').applied.some(v => v.startsWith('lost')))
  })

  it('bounds uncommitted bytes at the leader', () => {
    const net = new Net(['1', '2', '3'], { maxUncommittedEntriesSize: 1000 })
    net.elect('1')
    net.isolate('1')
    net.get('1').node.propose(new Uint8Array(600))
    assert.throws(() => { net.get('1').node.propose(new Uint8Array(600)) }, ProposalDroppedError)
  })
})

describe('proposals at a follower', () => {
  it('are forwarded to the leader', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.get('3').node.propose(enc('via-3'))
    net.settle()
    assert.deepEqual(net.get('1').applied, ['via-3'])
  })

  it('are rejected with the leader id when forwarding is off', () => {
    const net = new Net(['1', '2', '3'], { disableProposalForwarding: true })
    net.elect('1')
    assert.throws(() => { net.get('3').node.propose(enc('x')) }, (err: any) => err.name === 'ProposalDroppedError' && err.leader === '1')
  })

  it('are rejected when there is no leader', () => {
    const net = new Net(['1', '2', '3'])
    assert.throws(() => { net.get('2').node.propose(enc('x')) }, (err: any) => err.name === 'ProposalDroppedError' && err.leader === '')
  })
})

describe('membership', () => {
  it('adds a learner that replicates but does not vote, then promotes it', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.get('1').node.propose(enc('before'))
    net.settle()
    net.add('4', genesis(['1', '2', '3']))
    net.get('1').node.proposeConfChange({ changes: [{ type: 'add-learner-node', nodeId: '4' }] })
    net.settle()
    net.tick(2)
    assert.deepEqual(net.get('4').applied, ['before'])
    assert.deepEqual(net.get('1').conf?.learners, ['4'])
    // a learner never campaigns
    net.tick(40, ['4'])
    assert.equal(net.state('4'), 'follower')
    net.get('1').node.proposeConfChange({ changes: [{ type: 'add-node', nodeId: '4' }] })
    net.settle()
    assert.deepEqual(net.get('4').conf?.voters, ['1', '2', '3', '4'])
    net.get('1').node.transferLeader('4')
    net.settle()
    assert.equal(net.state('4'), 'leader')
  })

  it('replaces two voters at once through a joint configuration that is left automatically', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.add('4', genesis(['1', '2', '3']))
    net.add('5', genesis(['1', '2', '3']))
    net.get('1').node.proposeConfChange({ changes: [{ type: 'add-node', nodeId: '4' }, { type: 'add-node', nodeId: '5' }, { type: 'remove-node', nodeId: '3' }] })
    net.settle()
    net.tick(2)
    const conf = net.get('1').conf
    assert.deepEqual(conf?.voters, ['1', '2', '4', '5'])
    assert.deepEqual(conf?.votersOutgoing, [], 'the joint config was left')
    net.get('1').node.propose(enc('after'))
    net.settle()
    assert.deepEqual(net.get('5').applied, ['after'])
  })

  it('refuses a second change while one is pending, and changes that break the config', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.isolate('1')
    net.get('1').node.proposeConfChange({ changes: [{ type: 'add-learner-node', nodeId: '4' }] })
    assert.throws(() => { net.get('1').node.proposeConfChange({ changes: [{ type: 'add-learner-node', nodeId: '5' }] }) }, ConfChangeError)
    net.heal()
    net.settle()
    net.tick(2)
    assert.throws(() => {
      net.get('1').node.proposeConfChange({ changes: [{ type: 'remove-node', nodeId: '1' }, { type: 'remove-node', nodeId: '2' }, { type: 'remove-node', nodeId: '3' }] })
    }, ConfChangeError)
  })

  it('a removed leader steps down', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.get('1').node.proposeConfChange({ changes: [{ type: 'remove-node', nodeId: '1' }] })
    net.settle()
    assert.equal(net.state('1'), 'follower')
    net.tick(30, ['2', '3'])
    assert.ok(['2', '3'].some(id => net.state(id) === 'leader'))
  })
})

describe('snapshots', () => {
  it('sends a snapshot to a follower whose entries were compacted away', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.isolate('3')
    for (let i = 0; i < 10; i++) net.get('1').node.propose(enc(`s${i}`))
    net.settle()
    const leader = net.get('1')
    const applied = leader.node.status().applied
    leader.storage.createSnapshot(applied, leader.conf, enc(leader.applied.join(',')))
    leader.storage.compact(applied)
    net.heal()
    net.sent = []
    net.tick(3)
    assert.ok(net.sent.some(m => m.type === 'MsgSnap' && m.to === '3'))
    leader.node.reportSnapshot('3', false)
    net.get('1').node.propose(enc('after'))
    net.settle()
    net.tick(2)
    assert.deepEqual(net.get('3').applied, [...leader.applied])
    assert.equal(net.get('3').applied.at(-1), 'after')
  })
})

describe('reads', () => {
  it('ReadIndex at the leader and at a follower return the commit index after a heartbeat round', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.get('1').node.propose(enc('w'))
    net.settle()
    const committed = net.get('1').node.status().hardState.commit
    const states: Array<{ id: NodeId, index: number, ctx: string }> = []
    const collect = (id: NodeId): void => {
      const p = net.get(id)
      if (!p.node.hasReady()) return
      const rd = p.node.ready()
      for (const rs of rd.readStates) states.push({ id, index: rs.index, ctx: dec(rs.requestCtx) })
      p.storage.append(rd.entries)
      if (rd.hardState != null) p.storage.setHardState(rd.hardState)
      for (const m of rd.messages) net.get(m.to).node.step(m)
      p.node.advance()
    }
    net.get('1').node.readIndex(enc('r1'))
    net.get('3').node.readIndex(enc('r3'))
    for (let i = 0; i < 20; i++) for (const id of ['1', '2', '3']) collect(id)
    assert.deepEqual(states.map(s => [s.id, s.ctx, s.index]).sort(), [['1', 'r1', committed], ['3', 'r3', committed]])
  })

  it('a leader cut off from the quorum does not answer ReadIndex', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.isolate('1')
    net.get('1').node.readIndex(enc('stale?'))
    net.tick(3, ['1'])
    const rd = net.get('1').node.hasReady() ? net.get('1').node.ready() : undefined
    assert.equal(rd?.readStates.length ?? 0, 0)
  })
})

describe('leader transfer', () => {
  it('hands leadership to an up-to-date voter', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.get('1').node.transferLeader('3')
    net.settle()
    assert.equal(net.state('3'), 'leader')
    assert.equal(net.get('1').node.status().softState.lead, '3')
  })

  it('catches the transferee up first, and drops proposals meanwhile', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    net.drop = m => m.to === '3'
    net.get('1').node.propose(enc('x'))
    net.settle()
    net.get('1').node.transferLeader('3')
    net.settle()
    assert.throws(() => { net.get('1').node.propose(enc('y')) }, ProposalDroppedError)
    net.heal()
    net.tick(2)
    assert.equal(net.state('3'), 'leader')
    assert.deepEqual(net.get('3').applied, ['x'])
  })
})

describe('RawNode contract', () => {
  it('persists entries and hard state in the same Ready as the messages that depend on them', () => {
    const net = new Net(['1', '2', '3'])
    const types = new Set<MessageType>()
    const n1 = net.get('1').node
    n1.campaign()
    const rd = n1.ready()
    for (const m of rd.messages) types.add(m.type)
    assert.ok(types.has('MsgPreVote'))
    n1.advance()
    assert.throws(() => { n1.step({ ...rd.messages[0], type: 'MsgHup' }) }, { name: 'StepLocalMessageError' })
  })

  it('a leader may send before it persists, and counts itself only after advance()', () => {
    const net = new Net(['1', '2', '3'])
    net.elect('1')
    const leader = net.get('1')
    const commitOf = (): number => leader.node.status().hardState.commit
    const before = commitOf()
    leader.node.propose(enc('x'))
    const rd = leader.node.ready()
    assert.equal(rd.sendBeforePersist, true)
    // only follower 2 gets and acknowledges the entry while the leader is still writing it
    const f2 = net.get('2')
    for (const m of rd.messages.filter(m => m.to === '2')) f2.node.step(m)
    const rd2 = f2.node.ready()
    f2.storage.append(rd2.entries)
    if (rd2.hardState != null) f2.storage.setHardState(rd2.hardState)
    f2.node.advance()
    for (const m of rd2.messages) leader.node.step(m)
    assert.equal(commitOf(), before, 'one follower alone is no quorum')
    leader.storage.append(rd.entries)
    leader.node.advance()
    assert.equal(commitOf(), before + 1, 'with the leader\'s own write, 2 of 3')
  })

  it('a candidate does not send before it persists its vote', () => {
    const net = new Net(['1', '2', '3'])
    const n = net.get('1').node
    n.campaign()
    assert.equal(n.ready().sendBeforePersist, false)
    n.advance()
  })

  it('hasReady is false between ready() and advance()', () => {
    const net = new Net(['1'])
    const n = net.get('1').node
    n.campaign()
    assert.ok(n.hasReady())
    n.ready()
    assert.equal(n.hasReady(), false)
    n.advance()
  })
})
