/**
 * The rules of the Raft paper (§5), one or more tests each, after etcd's
 * raft_paper_test.go, driven through the RawNode API: messages are stepped
 * in by hand or delivered by a tiny synchronous network. Pre-vote and
 * check-quorum are off unless a test says otherwise, as in the paper.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ProposalDroppedError } from '../src/index.ts'
import type { Entry, Message, StateType } from '../src/index.ts'
import { Network, bytes, drain, entries, hardState, logOf, msg, newNode, storageWith } from './helpers/network.ts'
import type { TestNode } from './helpers/network.ts'
import { Rng } from './sim/rng.ts'

const ET = 10

function ids (n: number): string[] {
  return Array.from({ length: n }, (_, i) => String(i + 1))
}

function stateOf (n: TestNode): StateType {
  return n.raw.status().softState.raftState
}

/** A node of `voters` made leader by hand: it campaigns and the given peers grant their votes. */
function leaderByHand (id: string, voters: string[], grants: string[], opts: Parameters<typeof newNode>[2] = {}): TestNode {
  const n = newNode(id, voters, opts)
  n.raw.campaign()
  const term = hardState(n).term
  for (const from of grants) n.raw.step(msg({ type: 'MsgVoteResp', from, to: id, term }))
  drain(n)
  assert.equal(stateOf(n), 'leader')
  return n
}

function threeNodes (opts: Parameters<typeof newNode>[2] = {}): Network {
  return new Network(ids(3).map(id => newNode(id, ids(3), opts)))
}

function responseTo (out: Message[], type: Message['type'], to: string): Message {
  const m = out.find(m => m.type === type && m.to === to)
  assert.ok(m !== undefined, `no ${type} to ${to} in ${out.map(m => `${m.type}->${m.to}`).join(', ')}`)
  return m
}

describe('Raft paper §5.1: terms', () => {
  for (const state of ['follower', 'candidate', 'leader'] as const) {
    it(`a ${state} that sees a higher term takes it and becomes follower`, () => {
      const net = threeNodes()
      const n = net.node('1')
      if (state === 'candidate') n.raw.campaign()
      if (state === 'leader') net.elect('1')
      drain(n)
      assert.equal(stateOf(n), state)
      n.raw.step(msg({ type: 'MsgApp', from: '2', to: '1', term: 5 }))
      assert.equal(hardState(n).term, 5)
      assert.equal(stateOf(n), 'follower')
      assert.equal(n.raw.status().softState.lead, '2')
    })
  }

  it('a node ignores a message of a stale term', () => {
    const n = newNode('1', ids(3), { storage: storageWith(ids(3), [], { term: 2 }) })
    n.raw.step(msg({ type: 'MsgApp', from: '2', to: '1', term: 1, entries: entries([1]) }))
    drain(n)
    assert.deepEqual(logOf(n), [])
    assert.equal(hardState(n).term, 2)
  })

  it('a node starts as a follower, in the term on its disk', () => {
    const n = newNode('1', ids(3), { storage: storageWith(ids(3), [1, 2], { term: 3, vote: '2' }) })
    assert.equal(stateOf(n), 'follower')
    assert.deepEqual(hardState(n), { term: 3, vote: '2', commit: 0 })
  })
})

describe('Raft paper §5.2: leader election', () => {
  it('the leader sends heartbeats to every follower each heartbeat timeout', () => {
    const net = threeNodes()
    net.elect('1')
    const leader = net.node('1')
    leader.raw.tick()
    const beats = drain(leader).filter(m => m.type === 'MsgHeartbeat')
    assert.deepEqual(beats.map(m => m.to).sort(), ['2', '3'])
    for (const m of beats) assert.equal(m.term, 1)
  })

  for (const state of ['follower', 'candidate'] as const) {
    it(`a ${state} campaigns when its election timeout elapses: new term, vote for itself, MsgVote to all`, () => {
      const n = newNode('1', ids(3))
      if (state === 'candidate') n.raw.campaign()
      drain(n)
      const before = hardState(n).term
      let out: Message[] = []
      for (let i = 0; i < 2 * ET && hardState(n).term === before; i++) {
        n.raw.tick()
        out = drain(n)
      }
      assert.equal(hardState(n).term, before + 1)
      assert.equal(stateOf(n), 'candidate')
      assert.equal(hardState(n).vote, '1')
      // the vote is on disk before anyone is asked
      assert.equal(n.storage.initialState().hardState.vote, '1')
      const votes = out.filter(m => m.type === 'MsgVote')
      assert.deepEqual(votes.map(m => m.to).sort(), ['2', '3'])
      for (const m of votes) assert.equal(m.term, before + 1)
    })
  }

  const oneRound: Array<{ size: number, votes: Record<string, boolean>, want: StateType }> = [
    { size: 1, votes: {}, want: 'leader' },
    { size: 3, votes: { 2: true, 3: true }, want: 'leader' },
    { size: 3, votes: { 2: true }, want: 'leader' },
    { size: 5, votes: { 2: true, 3: true, 4: true, 5: true }, want: 'leader' },
    { size: 5, votes: { 2: true, 3: true, 4: true }, want: 'leader' },
    { size: 5, votes: { 2: true, 3: true }, want: 'leader' },
    // a majority of rejections sends the candidate back to follower
    { size: 3, votes: { 2: false, 3: false }, want: 'follower' },
    { size: 5, votes: { 2: false, 3: false, 4: false, 5: false }, want: 'follower' },
    { size: 5, votes: { 2: true, 3: false, 4: false, 5: false }, want: 'follower' },
    // without a majority either way it stays candidate
    { size: 3, votes: {}, want: 'candidate' },
    { size: 5, votes: { 2: true }, want: 'candidate' },
    { size: 5, votes: { 2: false, 3: false }, want: 'candidate' },
    { size: 5, votes: {}, want: 'candidate' }
  ]
  for (const { size, votes, want } of oneRound) {
    it(`a candidate of ${size} with votes ${JSON.stringify(votes)} becomes ${want}`, () => {
      const n = newNode('1', ids(size))
      n.raw.campaign()
      for (const [from, granted] of Object.entries(votes)) {
        n.raw.step(msg({ type: 'MsgVoteResp', from, to: '1', term: 1, reject: !granted }))
      }
      drain(n)
      assert.equal(stateOf(n), want)
      assert.equal(hardState(n).term, 1)
    })
  }

  const follower: Array<{ vote: string, candidate: string, reject: boolean }> = [
    { vote: '', candidate: '2', reject: false },
    { vote: '', candidate: '3', reject: false },
    { vote: '2', candidate: '2', reject: false },
    { vote: '3', candidate: '3', reject: false },
    { vote: '2', candidate: '3', reject: true },
    { vote: '3', candidate: '2', reject: true }
  ]
  for (const { vote, candidate, reject } of follower) {
    it(`a follower that voted for '${vote}' in this term ${reject ? 'rejects' : 'grants'} ${candidate}: one vote per term, first come first served`, () => {
      const n = newNode('1', ids(3), { storage: storageWith(ids(3), [], { term: 1, vote }) })
      n.raw.step(msg({ type: 'MsgVote', from: candidate, to: '1', term: 1 }))
      const resp = responseTo(drain(n), 'MsgVoteResp', candidate)
      assert.equal(resp.reject, reject)
      assert.equal(resp.term, 1)
    })
  }

  for (const term of [1, 2]) {
    it(`a candidate steps down on AppendEntries from a leader of term ${term} (its own or later)`, () => {
      const n = newNode('1', ids(3))
      n.raw.campaign()
      drain(n)
      n.raw.step(msg({ type: 'MsgApp', from: '2', to: '1', term }))
      drain(n)
      assert.equal(stateOf(n), 'follower')
      assert.equal(hardState(n).term, term)
      assert.equal(n.raw.status().softState.lead, '2')
    })
  }

  it('election timeouts are randomized in [electionTick, 2 * electionTick)', () => {
    const seen = new Set<number>()
    for (let seed = 1; seed <= 200; seed++) {
      const n = newNode('1', ids(3), { seed })
      let ticks = 0
      while (ticks < 2 * ET + 1 && stateOf(n) !== 'candidate') {
        n.raw.tick()
        ticks++
      }
      assert.ok(ticks >= ET && ticks < 2 * ET, `seed ${seed}: campaigned after ${ticks} ticks`)
      seen.add(ticks)
    }
    assert.ok(seen.size >= ET / 2, `timeouts spread over ${[...seen].sort((a, b) => a - b).join(',')}`)
  })

  it('election safety: at most one leader per term, even when candidates split the vote', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const net = new Network(ids(5).map(id => newNode(id, ids(5), { seed: seed * 10 + Number(id) })))
      const leaderOf = new Map<number, string>()
      net.observe = (n, rd) => {
        if (rd.softState?.raftState !== 'leader') return
        const term = rd.hardState?.term ?? hardState(n).term
        assert.equal(leaderOf.get(term) ?? n.id, n.id, `seed ${seed}: two leaders in term ${term}`)
        leaderOf.set(term, n.id)
      }
      // everyone campaigns at once, the votes then arrive in an order that depends on the seed
      const rng = new Rng(seed)
      const order = ids(5).sort(() => rng.next() - 0.5)
      for (const id of order) net.node(id).raw.campaign()
      net.settle()
      for (let i = 0; i < 40 * ET && net.leaders().length === 0; i++) net.tick()
      assert.equal(net.leaders().length, 1, `seed ${seed}`)
    }
  })
})

describe('Raft paper §5.3: log replication', () => {
  it('the leader appends a proposal to its log and sends it to every follower', () => {
    const net = threeNodes()
    net.elect('1')
    const leader = net.node('1')
    leader.raw.propose(bytes('some data'))
    const apps = drain(leader).filter(m => m.type === 'MsgApp')
    assert.deepEqual(apps.map(m => m.to).sort(), ['2', '3'])
    for (const m of apps) {
      assert.equal(m.index, 1)
      assert.equal(m.logTerm, 1)
      assert.deepEqual(m.entries.map(e => [e.index, e.term, new TextDecoder().decode(e.data)]), [[2, 1, 'some data']])
    }
    assert.deepEqual(logOf(leader), [[1, 1], [2, 1]])
  })

  it('the leader commits an entry once a majority stores it, and the followers learn it', () => {
    const net = threeNodes()
    net.elect('1')
    net.node('1').raw.propose(bytes('some data'))
    net.settle()
    for (const n of net.nodes.values()) {
      assert.equal(hardState(n).commit, 2, `node ${n.id}`)
      assert.deepEqual(n.applied.map(e => e.index), [1, 2])
    }
  })

  const acks: Array<{ size: number, acceptors: string[], commit: boolean }> = [
    { size: 1, acceptors: [], commit: true },
    { size: 3, acceptors: [], commit: false },
    { size: 3, acceptors: ['2'], commit: true },
    { size: 3, acceptors: ['2', '3'], commit: true },
    { size: 5, acceptors: [], commit: false },
    { size: 5, acceptors: ['2'], commit: false },
    { size: 5, acceptors: ['2', '3'], commit: true },
    { size: 5, acceptors: ['2', '3', '4'], commit: true },
    { size: 5, acceptors: ['2', '3', '4', '5'], commit: true }
  ]
  for (const { size, acceptors, commit } of acks) {
    it(`a leader of ${size} with acks from [${acceptors.join(',')}] ${commit ? 'commits' : 'does not commit'}`, () => {
      const leader = leaderByHand('1', ids(size), ids(size).slice(1, Math.floor(size / 2) + 1))
      leader.raw.propose(bytes('some data'))
      drain(leader)
      for (const from of acceptors) leader.raw.step(msg({ type: 'MsgAppResp', from, to: '1', term: 1, index: 2 }))
      drain(leader)
      assert.equal(hardState(leader).commit >= 2, commit)
    })
  }

  const preceding = [[], [2], [1, 2], [1]]
  for (const terms of preceding) {
    it(`committing its own entry commits the preceding ones too (log terms [${terms.join(',')}])`, () => {
      const storage = storageWith(ids(3), terms, { term: 2 })
      const leader = leaderByHand('1', ids(3), ['2'], { storage })
      leader.raw.propose(bytes('some data'))
      drain(leader)
      const last = leader.storage.lastIndex()
      leader.raw.step(msg({ type: 'MsgAppResp', from: '2', to: '1', term: 3, index: last }))
      drain(leader)
      const want = [...terms.map((t, i) => [i + 1, t]), [terms.length + 1, 3], [terms.length + 2, 3]]
      assert.deepEqual(leader.applied.map(e => [e.index, e.term]), want)
    })
  }

  const followerCommits: Array<{ ents: Entry[], commit: number }> = [
    { ents: entries([1]), commit: 1 },
    { ents: entries([1, 1]), commit: 2 },
    { ents: entries([1, 1]), commit: 1 }
  ]
  for (const { ents, commit } of followerCommits) {
    it(`a follower applies what the leader says is committed (${ents.length} entries, commit ${commit})`, () => {
      const n = newNode('1', ids(3))
      n.raw.step(msg({ type: 'MsgApp', from: '2', to: '1', term: 1, entries: ents, commit }))
      drain(n)
      assert.deepEqual(n.applied.map(e => e.index), ents.slice(0, commit).map(e => e.index))
    })
  }

  // the follower's log is [1@1, 2@2], its commit 1
  const consistency: Array<{ logTerm: number, index: number, reject: boolean, respIndex: number }> = [
    { logTerm: 0, index: 0, reject: false, respIndex: 1 },
    { logTerm: 1, index: 1, reject: false, respIndex: 1 },
    { logTerm: 2, index: 2, reject: false, respIndex: 2 },
    // the entry at index 2 has another term
    { logTerm: 1, index: 2, reject: true, respIndex: 2 },
    // there is no entry at index 3
    { logTerm: 3, index: 3, reject: true, respIndex: 3 }
  ]
  for (const { logTerm, index, reject, respIndex } of consistency) {
    it(`a follower ${reject ? 'rejects' : 'accepts'} an append after ${index}@${logTerm} (consistency check)`, () => {
      const n = newNode('1', ids(3), { storage: storageWith(ids(3), [1, 2], { term: 2, commit: 1 }) })
      n.raw.step(msg({ type: 'MsgApp', from: '2', to: '1', term: 2, logTerm, index, commit: 1 }))
      const resp = responseTo(drain(n), 'MsgAppResp', '2')
      assert.equal(resp.reject, reject)
      assert.equal(resp.index, respIndex)
      if (reject) assert.ok(resp.rejectHint <= 2, `hint ${resp.rejectHint} beyond the follower's log`)
    })
  }

  // the follower's log is [1@1, 2@2]
  const appends: Array<{ logTerm: number, index: number, ents: Entry[], want: Array<[number, number]> }> = [
    { logTerm: 2, index: 2, ents: entries([3], 3), want: [[1, 1], [2, 2], [3, 3]] },
    { logTerm: 1, index: 1, ents: entries([3, 4], 2), want: [[1, 1], [2, 3], [3, 4]] },
    { logTerm: 0, index: 0, ents: entries([1]), want: [[1, 1], [2, 2]] },
    { logTerm: 0, index: 0, ents: entries([3]), want: [[1, 3]] }
  ]
  for (const { logTerm, index, ents, want } of appends) {
    it(`a follower deletes conflicting entries and appends new ones (after ${index}@${logTerm}: ${JSON.stringify(want)})`, () => {
      const n = newNode('1', ids(3), { storage: storageWith(ids(3), [1, 2], { term: 2 }) })
      n.raw.step(msg({ type: 'MsgApp', from: '2', to: '1', term: 4, logTerm, index, entries: ents }))
      drain(n)
      assert.deepEqual(logOf(n), want)
    })
  }

  // Figure 7: the leader's log, and followers (a) to (f)
  const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
  const figure7: Record<string, number[]> = {
    a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
    b: [1, 1, 1, 4],
    c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    e: [1, 1, 1, 4, 4, 4, 4],
    f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]
  }
  for (const [name, followerLog] of Object.entries(figure7)) {
    it(`log matching: the leader of term 8 brings follower (${name}) of Figure 7 to its own log`, () => {
      const leader = newNode('1', ids(3), { storage: storageWith(ids(3), leaderLog, { term: 7 }) })
      const follower = newNode('2', ids(3), { storage: storageWith(ids(3), followerLog, { term: 7 }) })
      const net = new Network([leader, follower])
      leader.raw.campaign()
      // node 3 is not simulated: it grants its vote and stays silent after
      leader.raw.step(msg({ type: 'MsgVoteResp', from: '3', to: '1', term: 8 }))
      net.settle()
      assert.equal(stateOf(leader), 'leader')
      leader.raw.propose(bytes('after'))
      net.settle()
      assert.deepEqual(logOf(follower), logOf(leader))
      const data = (n: TestNode): string[] => n.storage.entries(1, n.storage.lastIndex() + 1).map(e => new TextDecoder().decode(e.data))
      assert.deepEqual(data(follower), data(leader))
      assert.equal(hardState(follower).commit, leader.storage.lastIndex())
    })
  }
})

describe('Raft paper §5.4: safety', () => {
  // the voter's log against the candidate's last entry (term, index)
  const voter: Array<{ log: number[], logTerm: number, index: number, reject: boolean }> = [
    { log: [1], logTerm: 1, index: 1, reject: false },
    { log: [1], logTerm: 1, index: 2, reject: false },
    { log: [1, 1], logTerm: 1, index: 1, reject: true },
    // the candidate's last term is higher
    { log: [1], logTerm: 2, index: 1, reject: false },
    { log: [1], logTerm: 2, index: 2, reject: false },
    { log: [1, 1], logTerm: 2, index: 1, reject: false },
    // the voter's last term is higher
    { log: [2], logTerm: 1, index: 1, reject: true },
    { log: [2], logTerm: 1, index: 2, reject: true },
    { log: [2, 1], logTerm: 1, index: 1, reject: true }
  ]
  for (const { log, logTerm, index, reject } of voter) {
    it(`a voter with log [${log.join(',')}] ${reject ? 'rejects' : 'grants'} a candidate whose log ends ${index}@${logTerm}`, () => {
      const n = newNode('1', ids(3), { storage: storageWith(ids(3), log, { term: 2 }) })
      n.raw.step(msg({ type: 'MsgVote', from: '2', to: '1', term: 3, logTerm, index }))
      const resp = responseTo(drain(n), 'MsgVoteResp', '2')
      assert.equal(resp.reject, reject)
    })
  }

  // Figure 8: a leader may not commit an entry of an earlier term by counting its replicas
  const figure8 = [{ acked: 1, commit: 0 }, { acked: 2, commit: 0 }, { acked: 3, commit: 3 }]
  for (const { acked, commit } of figure8) {
    it(`a leader of term 3 with log [1@1, 2@2] acked up to ${acked} by a majority commits ${commit} (Figure 8)`, () => {
      const storage = storageWith(ids(3), [1, 2], { term: 2 })
      const leader = leaderByHand('1', ids(3), ['2'], { storage })
      assert.deepEqual(logOf(leader), [[1, 1], [2, 2], [3, 3]])
      leader.raw.step(msg({ type: 'MsgAppResp', from: '2', to: '1', term: 3, index: acked }))
      drain(leader)
      assert.equal(hardState(leader).commit, commit)
    })
  }

  it('leader completeness: a candidate missing a committed entry cannot win, one holding it does', () => {
    const net = new Network(ids(5).map(id => newNode(id, ids(5))))
    net.elect('1')
    // 4 and 5 miss the entry, which 1, 2 and 3 commit
    net.cut.add('1>4').add('1>5')
    net.node('1').raw.propose(bytes('committed'))
    net.settle()
    assert.equal(hardState(net.node('1')).commit, 2)
    net.isolate('1')
    net.elect('4')
    assert.notEqual(stateOf(net.node('4')), 'leader')
    net.elect('2')
    assert.equal(stateOf(net.node('2')), 'leader')
    assert.deepEqual(logOf(net.node('2')).slice(0, 2), [[1, 1], [2, 1]])
  })

  it('leader append-only: a leader never overwrites its log; its uncommitted entries are replaced only after it steps down', () => {
    const net = threeNodes()
    net.elect('1')
    const old = net.node('1')
    net.isolate('1')
    old.raw.propose(bytes('lost'))
    drain(old)
    const before = logOf(old)
    for (let i = 0; i < 3; i++) {
      old.raw.propose(bytes(`lost ${i}`))
      drain(old)
      const now = logOf(old)
      assert.deepEqual(now.slice(0, before.length), before)
      assert.ok(now.length > before.length)
    }
    net.elect('2')
    net.node('2').raw.propose(bytes('kept'))
    net.settle()
    net.heal()
    net.tick(['2'])
    assert.equal(stateOf(old), 'follower')
    assert.deepEqual(logOf(old), logOf(net.node('2')))
    assert.deepEqual(old.applied.map(e => new TextDecoder().decode(e.data)), ['', '', 'kept'])
  })
})

/**
 * Random runs of a 5-node cluster with partitions, uneven ticks and
 * proposals, for the properties of Figure 3: `onReady` sees every Ready before
 * it is carried out, `afterRound` the cluster after each round.
 */
function churn (seed: number, onReady: (n: TestNode, rd: Parameters<NonNullable<Network['observe']>>[1]) => void, afterRound: (net: Network) => void): void {
  const rng = new Rng(seed)
  const net = new Network(ids(5).map(id => newNode(id, ids(5), { seed: seed * 10 + Number(id) })))
  net.observe = onReady
  for (let round = 0; round < 150; round++) {
    if (rng.chance(0.08)) {
      net.heal()
      if (rng.chance(0.7)) {
        // cutting off the leader forces elections; a random side makes minorities and majorities
        const side = rng.chance(0.5) ? net.leaders().map(n => n.id) : ids(5).filter(() => rng.chance(0.4))
        for (const a of side) for (const b of ids(5)) if (!side.includes(b)) net.cut.add(`${a}>${b}`).add(`${b}>${a}`)
      }
    }
    net.tick(ids(5).filter(() => rng.chance(0.8)))
    for (const n of net.leaders()) {
      try {
        n.raw.propose(bytes(`${seed}:${round}:${n.id}`))
      } catch (err) {
        if (!(err instanceof ProposalDroppedError)) throw err
      }
    }
    net.settle()
    afterRound(net)
  }
  net.heal()
  for (let i = 0; i < 20 * ET && net.leaders().length !== 1; i++) net.tick()
  net.settle()
  afterRound(net)
}

function entryKey (e: Entry): string {
  return `${e.index}@${e.term}:${new TextDecoder().decode(e.data)}`
}

function fullLog (n: TestNode): Entry[] {
  return n.storage.lastIndex() === 0 ? [] : n.storage.entries(1, n.storage.lastIndex() + 1)
}

describe('Raft paper Figure 3: the guarantees over random runs', () => {
  const seeds = Array.from({ length: 12 }, (_, i) => i + 1)

  it('election safety: at most one leader can be elected in a given term', () => {
    for (const seed of seeds) {
      const leaderOf = new Map<number, string>()
      churn(seed, (n, rd) => {
        if (rd.softState?.raftState !== 'leader') return
        const term = rd.hardState?.term ?? hardState(n).term
        assert.equal(leaderOf.get(term) ?? n.id, n.id, `seed ${seed}: two leaders in term ${term}`)
        leaderOf.set(term, n.id)
      }, () => {})
      assert.ok(leaderOf.size > 1, `seed ${seed}: only ${leaderOf.size} elections`)
    }
  })

  it('leader append-only: a leader never overwrites or deletes entries in its log', () => {
    for (const seed of seeds) {
      const held = new Map<string, { term: number, log: string[] }>()
      churn(seed, () => {}, net => {
        for (const n of net.nodes.values()) {
          const term = hardState(n).term
          const log = fullLog(n).map(entryKey)
          const was = held.get(n.id)
          if (stateOf(n) !== 'leader') {
            held.delete(n.id)
            continue
          }
          if (was !== undefined && was.term === term) assert.deepEqual(log.slice(0, was.log.length), was.log, `seed ${seed}: leader ${n.id} rewrote its log`)
          held.set(n.id, { term, log })
        }
      })
    }
  })

  it('log matching: logs with an entry of the same index and term are identical up to it', () => {
    for (const seed of seeds) {
      churn(seed, () => {}, net => {
        const logs = [...net.nodes.values()].map(fullLog)
        for (let a = 0; a < logs.length; a++) {
          for (let b = a + 1; b < logs.length; b++) {
            const n = Math.min(logs[a].length, logs[b].length)
            let last = -1
            for (let i = 0; i < n; i++) if (logs[a][i].term === logs[b][i].term) last = i
            assert.deepEqual(logs[a].slice(0, last + 1).map(entryKey), logs[b].slice(0, last + 1).map(entryKey), `seed ${seed}`)
          }
        }
      })
    }
  })

  it('leader completeness: a committed entry is in the log of every leader of a later term', () => {
    for (const seed of seeds) {
      // an entry first applied while the highest leader term seen was t is in the logs of leaders after t
      const committed = new Map<number, { key: string, bound: number }>()
      let maxLeaderTerm = 0
      churn(seed, (n, rd) => {
        for (const e of rd.committedEntries) if (!committed.has(e.index)) committed.set(e.index, { key: entryKey(e), bound: maxLeaderTerm })
        if (rd.softState?.raftState !== 'leader') return
        const term = rd.hardState?.term ?? hardState(n).term
        maxLeaderTerm = Math.max(maxLeaderTerm, term)
        const log = [...fullLog(n), ...rd.entries]
        for (const [index, c] of committed) {
          if (c.bound >= term) continue
          // the Ready's entries may replace a suffix of the disk's: the last one at an index counts
          const held = log.filter(e => e.index === index).at(-1)
          assert.equal(held === undefined ? undefined : entryKey(held), c.key, `seed ${seed}: leader ${n.id} of term ${term} lacks committed entry ${c.key}`)
        }
      }, () => {})
      assert.ok(committed.size > 5, `seed ${seed}: only ${committed.size} entries committed`)
    }
  })

  it('state machine safety: no two nodes apply different entries at the same index', () => {
    for (const seed of seeds) {
      churn(seed, () => {}, net => {
        const applied = [...net.nodes.values()].map(n => n.applied.map(entryKey))
        const longest = applied.reduce((a, b) => a.length >= b.length ? a : b)
        for (const seq of applied) assert.deepEqual(seq, longest.slice(0, seq.length), `seed ${seed}`)
      })
    }
  })
})
