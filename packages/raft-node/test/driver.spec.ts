import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, describe, it } from 'node:test'
import { TypedEventEmitter } from '@libp2p/interface'
import { until } from '../../../test/helpers/raft.ts'
import { decodeMessage, encodeMessage } from '../src/codec.ts'
import { createRaftNode } from '../src/driver.ts'
import { openRaftStorage } from '../src/storage.ts'
import type { RaftNode, RaftNodeInit, StateMachine } from '../src/driver.ts'
import type { RaftStorage } from '../src/storage.ts'
import type { RaftTransport, RaftTransportEvents } from '../src/transport.ts'
import type { ConfState, Message } from '@node-daemon/raft'

const text = new TextEncoder()
const untext = new TextDecoder()

/** Appends every command to a list; apply answers with the index it applied at. */
class ListMachine implements StateMachine {
  items: string[] = []
  apply (command: Uint8Array, index: number): unknown {
    const s = untext.decode(command)
    if (s === 'fail') throw new Error('refused by the state machine')
    this.items.push(s)
    return index
  }

  snapshot (): Uint8Array {
    return text.encode(JSON.stringify(this.items))
  }

  restore (data: Uint8Array): void {
    this.items = JSON.parse(untext.decode(data))
  }
}

/** Delivers messages between in-process nodes through the codec, with links that tests cut. */
class Hub {
  readonly transports = new Map<string, HubTransport>()
  /** "from>to" pairs whose messages are dropped. */
  readonly cut = new Set<string>()

  isolate (id: string, others: string[]): void {
    for (const o of others) {
      this.cut.add(`${id}>${o}`)
      this.cut.add(`${o}>${id}`)
    }
  }

  heal (): void {
    this.cut.clear()
  }

  /** As when `id`'s process dies: its links go, and every other member sees its connection close, after what it sent before (as over TCP). */
  disconnect (id: string, others: string[]): void {
    this.isolate(id, others)
    setImmediate(() => {
      for (const o of others) if (o !== id) this.transports.get(o)?.safeDispatchEvent('disconnect', { detail: id })
    })
  }
}

class HubTransport extends TypedEventEmitter<RaftTransportEvents> implements RaftTransport {
  private readonly hub: Hub
  constructor (hub: Hub, id: string) {
    super()
    this.hub = hub
    hub.transports.set(id, this)
  }

  send (messages: Message[]): void {
    for (const m of messages) {
      const to = this.hub.transports.get(m.to)
      if (to == null || this.hub.cut.has(`${m.from}>${m.to}`)) {
        this.safeDispatchEvent('unreachable', { detail: m.to })
        continue
      }
      const copy = decodeMessage(encodeMessage(m))
      setImmediate(() => { to.safeDispatchEvent('message', { detail: copy }) })
    }
  }

  setPeers (): void {}
}

interface Member {
  id: string
  dir: string
  storage: RaftStorage
  machine: ListMachine
  node: RaftNode
}

const FAST = { tickMs: 10, electionTick: 10, heartbeatTick: 1 }

/** Storage as a test wants it for member `id`. */
type Wrap = (storage: RaftStorage, id: string) => RaftStorage

/** What a test changes in a member's components: its storage, its randomness. */
interface Extra {
  wrap?: Wrap
  random?: () => number
}

/**
 * The storage, but saves of entries by `slow()`'s member finish only once
 * `released` settles, as on a disk whose fsync stalls; what they write is
 * readable at once, as with the real storage.
 */
function stallingWrites (slow: () => string, released: Promise<void>): Wrap {
  return (storage, id) => new Proxy(storage, {
    get (target, prop) {
      if (prop === 'save') {
        return async (ready: Parameters<RaftStorage['save']>[0], sync: boolean) => {
          const write = target.save(ready, sync)
          if (slow() === id && ready.entries.length > 0) await released
          await write
        }
      }
      const value = Reflect.get(target, prop)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

describe('raft driver', () => {
  const dirs: string[] = []
  let members: Member[] = []

  async function startMember (hub: Hub, id: string, confState: ConfState | undefined, init: Partial<RaftNodeInit> = {}, dir?: string, { wrap = s => s, random }: Extra = {}): Promise<Member> {
    if (dir == null) {
      dir = await mkdtemp(join(tmpdir(), 'raft-driver-'))
      dirs.push(dir)
    }
    const storage = wrap(await openRaftStorage(dir, { confState }), id)
    const machine = new ListMachine()
    const transport = hub.transports.get(id) ?? new HubTransport(hub, id)
    const node = createRaftNode({ transport, storage, random }, { id, stateMachine: machine, ...FAST, ...init })
    await node.start()
    const m = { id, dir, storage, machine, node }
    members.push(m)
    return m
  }

  async function stopMember (m: Member): Promise<void> {
    members = members.filter(x => x !== m)
    await m.node.stop()
    await m.storage.close()
  }

  async function cluster (ids: string[], init: Partial<RaftNodeInit> = {}, extra?: Extra): Promise<{ hub: Hub, nodes: Member[] }> {
    const hub = new Hub()
    const confState = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }
    const nodes = await Promise.all(ids.map(async id => startMember(hub, id, confState, init, undefined, extra)))
    return { hub, nodes }
  }

  async function leaderOf (nodes: Member[], timeoutMs = 5_000): Promise<Member> {
    let leader: Member | undefined
    await until('a leader that all know', () => {
      const ids = new Set(nodes.map(n => n.node.leaderId))
      const id = nodes[0].node.leaderId
      leader = ids.size === 1 && id !== '' ? nodes.find(n => n.id === id) : undefined
      return leader != null
    }, timeoutMs)
    return leader as Member
  }

  afterEach(async () => {
    await Promise.allSettled(members.map(async m => stopMember(m)))
    members = []
  })

  after(async () => {
    await Promise.all(dirs.map(async d => rm(d, { recursive: true, force: true })))
  })

  it('elects a single node and applies its proposals in order, answering with apply\'s result', async () => {
    const { nodes: [a] } = await cluster(['a'])
    await leaderOf([a])
    const results = await Promise.all(['x', 'y', 'z'].map(async s => a.node.propose(text.encode(s))))
    assert.deepEqual(a.machine.items, ['x', 'y', 'z'])
    // Index 1 is the leader's empty entry.
    assert.deepEqual(results, [2, 3, 4])
    await a.node.read()
  })

  it('replicates proposals made at the leader and at followers to every state machine', async () => {
    const { nodes } = await cluster(['a', 'b', 'c'])
    const leader = await leaderOf(nodes)
    const followers = nodes.filter(n => n !== leader)
    const proposals = [leader, ...followers, leader, ...followers].map(async (n, i) => n.node.propose(text.encode(`v${i}`)))
    const indexes = await Promise.all(proposals)
    assert.equal(new Set(indexes).size, 6)
    await until('all apply six', () => nodes.every(n => n.machine.items.length === 6))
    for (const n of nodes) assert.deepEqual(n.machine.items, leader.machine.items)
    assert.equal(leader.node.status().softState.raftState, 'leader')
  })

  it('tells followers of a commit with appends of their own only when no entry follows to carry it', async () => {
    /** Appends the leader sent only to tell a follower of a commit, while 20 entries were written, each as soon as the last committed. */
    const commitOnly = async (init: Partial<RaftNodeInit>): Promise<number> => {
      const { hub, nodes } = await cluster(['a', 'b', 'c'], init)
      const leader = await leaderOf(nodes)
      const transport = hub.transports.get(leader.id) as HubTransport
      const send = transport.send.bind(transport)
      // The highest commit index each follower was sent: an append without entries that raises it was sent for the commit alone.
      const told = new Map<string, number>()
      let count = 0
      transport.send = (messages) => {
        for (const m of messages) {
          if (m.type !== 'MsgApp') continue
          if (m.entries.length === 0 && m.commit > (told.get(m.to) ?? 0)) count++
          told.set(m.to, Math.max(told.get(m.to) ?? 0, m.commit))
        }
        send(messages)
      }
      for (let i = 0; i < 20; i++) await leader.node.propose(text.encode(`v${i}`))
      await until('the followers apply all 20', () => nodes.every(n => n.machine.items.length === 20))
      await Promise.all(nodes.map(async m => stopMember(m)))
      return count
    }
    // As etcd's raft does, and as this driver did: one to each follower for each commit.
    const atOnce = await commitOnly({ raft: { deferCommitBroadcast: false } })
    // The last commit, which no entry followed, and the few whose next entry a loaded machine delayed past the turn (2-4 here, 5 once in CI).
    const deferred = await commitOnly({})
    assert.ok(atOnce >= 30 && deferred <= atOnce / 4, `${deferred} appends for a commit alone, against ${atOnce} when each commit is broadcast at once`)
  })

  it('a leader whose own disk stalls commits what its followers wrote, and takes new proposals meanwhile', async () => {
    let slow = ''
    let release!: () => void
    const released = new Promise<void>(resolve => { release = resolve })
    const { nodes } = await cluster(['a', 'b', 'c'], {}, { wrap: stallingWrites(() => slow, released) })
    nodes[0].node.campaign()
    const leader = await leaderOf(nodes)
    await leader.node.propose(text.encode('before'))
    slow = leader.id
    try {
      const outcome = await Promise.race([
        (async () => {
          await leader.node.propose(text.encode('one'))
          await leader.node.propose(text.encode('two'))
          return 'committed'
        })(),
        new Promise(resolve => setTimeout(resolve, 3_000, 'stalled'))
      ])
      assert.equal(outcome, 'committed', 'a majority (the followers) wrote both entries')
      assert.deepEqual(leader.machine.items, ['before', 'one', 'two'])
    } finally {
      release()
    }
  })

  it('batches concurrent proposals into few Readies', async () => {
    const { nodes } = await cluster(['a', 'b', 'c'])
    const leader = await leaderOf(nodes)
    let saves = 0
    const save = leader.storage.save.bind(leader.storage)
    leader.storage.save = async (ready, sync) => { saves++; return save(ready, sync) }
    await Promise.all(Array.from({ length: 200 }, async (_, i) => leader.node.propose(text.encode(`p${i}`))))
    assert.equal(leader.machine.items.length, 200)
    assert.ok(saves < 50, `${saves} saves for 200 proposals`)
  })

  it('a follower\'s read barrier sees what the leader committed before it', async () => {
    const { nodes } = await cluster(['a', 'b', 'c'])
    const leader = await leaderOf(nodes)
    const follower = nodes.find(n => n !== leader) as Member
    await leader.node.propose(text.encode('w'))
    await follower.node.read()
    assert.deepEqual(follower.machine.items, ['w'])
  })

  it('rejects with NotLeaderError when there is no leader, and with the state machine\'s error when apply throws', async () => {
    const { nodes } = await cluster(['a', 'b', 'c'], { electionTick: 1000 })
    await assert.rejects(nodes[0].node.propose(text.encode('x')), { name: 'NotLeaderError', leader: '' })
    // The election timeout is far away: campaign by hand.
    nodes[0].node.campaign()
    const leader = await leaderOf(nodes)
    assert.equal(leader, nodes[0])
    await assert.rejects(leader.node.propose(text.encode('fail')), { message: 'refused by the state machine' })
    // The failed command still took index 2.
    assert.equal(await leader.node.propose(text.encode('ok')), 3)
  })

  it('rejects a proposal lost to a new leader with ProposalLostError, promptly', async () => {
    // The timeout is far off so that only the loss can settle the proposal,
    // however long a loaded machine takes to elect the new leader.
    const { hub, nodes } = await cluster(['a', 'b', 'c'], { proposalTimeoutMs: 30_000 })
    const old = await leaderOf(nodes)
    const rest = nodes.filter(n => n !== old)
    hub.isolate(old.id, rest.map(n => n.id))
    // Appended at the old leader only: it can never commit once the others move on.
    const lost = old.node.propose(text.encode('lost'))
    lost.catch(() => {})
    const fresh = await leaderOf(rest)
    await fresh.node.propose(text.encode('kept'))
    const t0 = Date.now()
    hub.heal()
    await assert.rejects(lost, { name: 'ProposalLostError' })
    assert.ok(Date.now() - t0 < 2_000)
    await until('the old leader catches up', () => old.machine.items.join() === 'kept')
  })

  it('rejects with ProposalTimeoutError when a forwarded proposal goes nowhere', async () => {
    const { hub, nodes } = await cluster(['a', 'b', 'c'], { proposalTimeoutMs: 300 })
    const leader = await leaderOf(nodes)
    const follower = nodes.find(n => n !== leader) as Member
    hub.cut.add(`${follower.id}>${leader.id}`)
    await assert.rejects(follower.node.propose(text.encode('x')), { name: 'ProposalTimeoutError' })
  })

  it('honours the caller\'s abort signal', async () => {
    const { hub, nodes } = await cluster(['a', 'b', 'c'])
    const leader = await leaderOf(nodes)
    hub.isolate(leader.id, nodes.filter(n => n !== leader).map(n => n.id))
    const controller = new AbortController()
    const p = leader.node.propose(text.encode('x'), { signal: controller.signal })
    controller.abort(new Error('caller gave up'))
    await assert.rejects(p, { message: 'caller gave up' })
    await assert.rejects(leader.node.read({ signal: AbortSignal.timeout(50) }), { name: 'TimeoutError' })
  })

  it('snapshots and compacts its log, restarts from storage, and catches up a lagging follower by snapshot', async () => {
    const { hub, nodes } = await cluster(['a', 'b', 'c'], { snapshotEvery: 20, snapshotKeepEntries: 5 })
    const leader = await leaderOf(nodes)
    const lagging = nodes.find(n => n !== leader) as Member
    hub.isolate(lagging.id, nodes.filter(n => n !== lagging).map(n => n.id))
    for (let i = 0; i < 60; i++) await leader.node.propose(text.encode(`e${i}`))
    assert.ok(leader.storage.firstIndex() > 20, `first index ${leader.storage.firstIndex()}`)
    hub.heal()
    await until('the lagging follower catches up', () => lagging.machine.items.length === 60, 10_000)
    assert.deepEqual(lagging.machine.items, leader.machine.items)

    // Restart the leader from its directory: snapshot plus replayed entries give the same state.
    const dir = leader.dir
    await stopMember(leader)
    const back = await startMember(hub, leader.id, undefined, { snapshotEvery: 20, snapshotKeepEntries: 5 }, dir)
    await until('the restarted node has its state back', () => back.machine.items.length === 60, 10_000)
    assert.deepEqual(back.machine.items, lagging.machine.items)
  })

  it('compacts its log only once the library knows the entries are applied, so a campaign meanwhile finds its log whole', async () => {
    const { nodes } = await cluster(['a', 'b'], { snapshotEvery: 5, snapshotKeepEntries: 0 })
    const leader = await leaderOf(nodes)
    const follower = nodes.find(n => n !== leader) as Member
    // hold the follower's first snapshot on its way to disk
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    let snapshotting!: () => void
    const started = new Promise<void>(resolve => { snapshotting = resolve })
    const createSnapshot = follower.storage.createSnapshot.bind(follower.storage)
    follower.storage.createSnapshot = async (...args) => {
      const written = createSnapshot(...args)
      snapshotting()
      await held
      return await written
    }
    for (let i = 0; i < 8; i++) void leader.node.propose(text.encode(`e${i}`)).catch(() => {})
    await started
    try {
      // an election timeout that expires now, as when the leader is lost, campaigns from here
      assert.doesNotThrow(() => { follower.node.campaign() })
    } finally {
      release()
    }
    await until('the follower applies all', () => follower.machine.items.length === 8)
  })

  it('catches up a member added after the last snapshot, from a snapshot of the state as it is now', async () => {
    const { hub, nodes } = await cluster(['a', 'b'], { snapshotEvery: 20, snapshotKeepEntries: 2 })
    const leader = await leaderOf(nodes)
    for (let i = 0; i < 30; i++) await leader.node.propose(text.encode(`e${i}`))
    assert.ok(leader.storage.firstIndex() > 1, 'the log no longer starts at the beginning')
    // c starts from the genesis membership; the stored snapshot's predates c, and c would refuse it.
    const c = await startMember(hub, 'c', { voters: ['a', 'b'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }, { snapshotEvery: 20, snapshotKeepEntries: 2 })
    await leader.node.proposeConfChange({ changes: [{ type: 'add-learner-node', nodeId: 'c' }] })
    await leader.node.propose(text.encode('after'))
    await until('c catches up', () => c.machine.items.length === 31, 10_000)
    assert.deepEqual(c.machine.items, leader.machine.items)
  })

  it('adds a member by conf change, and transfers leadership to it', async () => {
    const { hub, nodes } = await cluster(['a', 'b', 'c'])
    const leader = await leaderOf(nodes)
    await leader.node.propose(text.encode('before'))
    // The first membership is a bootstrap snapshot at index 0, outside the log: a node that joins must start from it too.
    const d = await startMember(hub, 'd', nodes[0].storage.snapshot().metadata.confState)
    const cs = await leader.node.proposeConfChange({ changes: [{ type: 'add-node', nodeId: 'd' }], context: Uint8Array.of(1) })
    assert.deepEqual([...cs.voters].sort(), ['a', 'b', 'c', 'd'])
    // d can take over only once it has applied its own addition.
    await until('d catches up', () => d.machine.items.join() === 'before' && d.node.status().config.voters.includes('d'))
    await leader.node.transferLeader('d')
    await until('everyone follows d', () => [...nodes, d].every(n => n.node.leaderId === 'd'))
    assert.equal(await d.node.propose(text.encode('after')) as number > 0, true)
  })

  it('takes a conf change proposed as soon as the previous one resolved', async () => {
    const { hub, nodes } = await cluster(['a', 'b', 'c'])
    const leader = await leaderOf(nodes)
    await startMember(hub, 'd', nodes[0].storage.snapshot().metadata.confState)
    // as the cluster joins a node: a learner first, promoted once it is in
    await leader.node.proposeConfChange({ changes: [{ type: 'add-learner-node', nodeId: 'd' }] })
    const cs = await leader.node.proposeConfChange({ changes: [{ type: 'add-node', nodeId: 'd' }] })
    assert.deepEqual([...cs.voters].sort(), ['a', 'b', 'c', 'd'])
  })

  it('enters a joint configuration by hand and leaves it by hand', async () => {
    const { hub, nodes } = await cluster(['a', 'b', 'c'])
    const leader = await leaderOf(nodes)
    const d = await startMember(hub, 'd', nodes[0].storage.snapshot().metadata.confState)
    const leaving = nodes.find(n => n !== leader) as Member
    const joint = await leader.node.proposeConfChange({ changes: [{ type: 'add-node', nodeId: 'd' }, { type: 'remove-node', nodeId: leaving.id }], transition: 'explicit' })
    assert.deepEqual([...joint.votersOutgoing].sort(), ['a', 'b', 'c'])
    // the driver wraps every context with its request id: the empty change must still read as leaving
    const left = await leader.node.proposeConfChange({ changes: [] })
    assert.deepEqual([...left.voters].sort(), ['a', 'b', 'c', 'd'].filter(id => id !== leaving.id))
    assert.deepEqual(left.votersOutgoing, [])
    await until('d applies the change', () => d.node.status().config.votersOutgoing.length === 0 && d.node.status().config.voters.includes('d'))
  })

  /** Three members at a 1 s election timeout (so that waiting it out and not waiting differ plainly) lose their leader's connection once it committed 'before'. */
  async function loseLeader (extra?: Extra): Promise<{ old: Member, rest: Member[], fresh: Member, took: number }> {
    const { hub, nodes } = await cluster(['a', 'b', 'c'], { tickMs: 20, electionTick: 50 }, extra)
    nodes[0].node.campaign()
    const old = await leaderOf(nodes)
    const rest = nodes.filter(n => n !== old)
    await rest[0].node.propose(text.encode('before'))
    const t0 = Date.now()
    hub.disconnect(old.id, nodes.map(n => n.id))
    const fresh = await leaderOf(rest)
    return { old, rest, fresh, took: Date.now() - t0 }
  }

  it('elects a new leader well within an election timeout when the leader\'s connection closes', async () => {
    const { old, fresh, took } = await loseLeader()
    assert.notEqual(fresh, old)
    assert.ok(took < 900, `re-elected in ${took} ms; an election timeout alone is at least 980 ms`)
    await fresh.node.propose(text.encode('after'))
    assert.deepEqual(fresh.machine.items, ['before', 'after'])
  })

  it('survivors of a lost leader take turns to campaign, so that two never split the vote, even drawing the same random numbers', async () => {
    const { rest, fresh, took } = await loseLeader({ random: () => 0.5 })
    assert.equal(fresh.id, rest.map(n => n.id).sort()[0], 'the first in turn')
    assert.ok(took < 900, `re-elected in ${took} ms; an election timeout alone is at least 980 ms`)
  })

  it('a survivor whose log is ahead does not stand down for a campaign it will refuse, and campaigns at once', async () => {
    const { hub, nodes } = await cluster(['a', 'b', 'c'], { tickMs: 20, electionTick: 50 })
    nodes[0].node.campaign()
    const old = await leaderOf(nodes)
    // the first in turn misses the last entry: only the other can win
    const [first, second] = nodes.filter(n => n !== old).sort((x, y) => x.id.localeCompare(y.id))
    hub.isolate(first.id, [old.id])
    await old.node.propose(text.encode('only on the second'))
    const t0 = Date.now()
    hub.heal()
    hub.disconnect(old.id, nodes.map(n => n.id))
    const fresh = await leaderOf([first, second])
    const took = Date.now() - t0
    assert.equal(fresh, second)
    assert.ok(took < 400, `re-elected in ${took} ms; the second's turn comes after 520 ms`)
    await until('the entry reaches the first', () => first.machine.items.includes('only on the second'))
  })

  it('a survivor that refused a campaign while it still had the leader campaigns early once it sees the leader go', async () => {
    const { hub, nodes } = await cluster(['a', 'b', 'c'], { tickMs: 20, electionTick: 50 })
    nodes[0].node.campaign()
    const old = await leaderOf(nodes)
    const [first, second] = nodes.filter(n => n !== old).sort((x, y) => x.id.localeCompare(y.id))
    hub.isolate(old.id, nodes.map(n => n.id))
    // the first sees the close at once and campaigns after a tick; the second, still holding the leader's lease, refuses it
    hub.transports.get(first.id)?.safeDispatchEvent('disconnect', { detail: old.id })
    await new Promise(resolve => setTimeout(resolve, 150))
    assert.equal(second.node.leaderId, old.id)
    const t0 = Date.now()
    hub.transports.get(second.id)?.safeDispatchEvent('disconnect', { detail: old.id })
    const fresh = await leaderOf([first, second])
    const took = Date.now() - t0
    assert.notEqual(fresh, old)
    assert.ok(took < 400, `re-elected in ${took} ms after the second saw the close; its turn comes after 520 ms`)
  })

  it('stop rejects what waits with RaftStoppedError', async () => {
    const { hub, nodes } = await cluster(['a', 'b', 'c'])
    const leader = await leaderOf(nodes)
    hub.isolate(leader.id, nodes.filter(n => n !== leader).map(n => n.id))
    const waiting = Promise.allSettled([leader.node.propose(text.encode('x')), leader.node.read()])
    await stopMember(leader)
    for (const outcome of await waiting) {
      assert.equal(outcome.status, 'rejected')
      assert.equal(outcome.reason.name, 'RaftStoppedError')
    }
    await assert.rejects(leader.node.propose(text.encode('y')), { name: 'RaftStoppedError' })
  })

  it('fails, rather than throwing out of its timer, when a tick throws', async () => {
    const { nodes } = await cluster(['a', 'b', 'c'])
    const [lone] = nodes
    // Its storage breaks: the next election it starts reads the log and throws.
    lone.storage.term = () => { throw new Error('disk gone') }
    lone.storage.lastIndex = () => { throw new Error('disk gone') }
    const failed = new Promise<Error>(resolve => { lone.node.addEventListener('error', (e) => { resolve((e as CustomEvent<Error>).detail) }, { once: true }) })
    for (const other of nodes.slice(1)) await stopMember(other)
    assert.match((await failed).message, /disk gone/)
    await assert.rejects(lone.node.propose(text.encode('x')), { name: 'RaftStoppedError' })
  })
})
