import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createRaftNode, createRaftTransport, openRaftStorage } from '@node-daemon/raft-node'
import { introduce, startLibp2p, until } from '../helpers/raft.ts'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { ConfState } from '@node-daemon/raft'
import type { Libp2pRaftTransport, RaftNode, RaftStorage, StateMachine } from '@node-daemon/raft-node'

const text = new TextEncoder()
const untext = new TextDecoder()

/** A key-value map; `set k v` answers with the value it replaced. */
class KvMachine implements StateMachine {
  map = new Map<string, string>()
  apply (command: Uint8Array): unknown {
    const [op, k, v] = untext.decode(command).split(' ')
    if (op !== 'set') throw new Error(`unknown command ${op}`)
    const old = this.map.get(k)
    this.map.set(k, v)
    return old
  }

  snapshot (): Uint8Array {
    return text.encode(JSON.stringify([...this.map]))
  }

  restore (data: Uint8Array): void {
    this.map = new Map(JSON.parse(untext.decode(data)))
  }
}

interface Member {
  key: PrivateKey
  id: string
  dir: string
  libp2p?: Libp2p
  transport?: Libp2pRaftTransport
  storage?: RaftStorage
  node?: RaftNode
  machine: KvMachine
}

const TICK = { tickMs: 20, electionTick: 10, heartbeatTick: 1, snapshotEvery: 25, snapshotKeepEntries: 5 }

describe('a three-node Raft cluster over libp2p with durable logs', () => {
  const members: Member[] = []
  let ids: string[] = []
  let bootstrap: ConfState

  async function start (m: Member): Promise<void> {
    m.machine = new KvMachine()
    m.libp2p = await startLibp2p(m.key)
    m.transport = createRaftTransport({ libp2p: m.libp2p }, { isMember: id => ids.includes(id) })
    await m.transport.start()
    m.storage = await openRaftStorage(m.dir, { confState: bootstrap })
    m.node = createRaftNode({ transport: m.transport, storage: m.storage }, { id: m.id, stateMachine: m.machine, ...TICK })
    await m.node.start()
  }

  /** As a crash would: the network goes first, then the node, and nothing is handed over. */
  async function kill (m: Member): Promise<void> {
    await m.libp2p?.stop()
    await m.node?.stop()
    await m.transport?.stop()
    await m.storage?.close()
    m.libp2p = m.transport = m.storage = m.node = undefined
  }

  const running = (): Member[] => members.filter(m => m.node != null)
  const node = (m: Member): RaftNode => m.node as RaftNode

  async function leaderAmong (group: Member[], timeoutMs = 5_000): Promise<Member> {
    let leader: Member | undefined
    await until('one leader that the group agrees on', () => {
      const seen = new Set(group.map(m => node(m).leaderId))
      const [id] = seen
      leader = seen.size === 1 ? group.find(m => m.id === id) : undefined
      return leader != null
    }, timeoutMs)
    return leader as Member
  }

  const snapshotOf = (m: Member): string => JSON.stringify([...m.machine.map].sort())

  before(async () => {
    for (let i = 0; i < 3; i++) {
      const key = await generateKeyPair('Ed25519')
      members.push({ key, id: peerIdFromPrivateKey(key).toString(), dir: await mkdtemp(join(tmpdir(), 'raft-cluster-')), machine: new KvMachine() })
    }
    ids = members.map(m => m.id)
    bootstrap = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }
    await Promise.all(members.map(start))
    await introduce(members.map(m => m.libp2p as Libp2p))
  })

  after(async () => {
    await Promise.allSettled(members.map(kill))
    await Promise.all(members.map(async m => rm(m.dir, { recursive: true, force: true })))
  })

  it('elects a leader and replicates writes made at the leader and at a follower', async () => {
    const leader = await leaderAmong(members)
    const follower = members.find(m => m !== leader) as Member
    await Promise.all(Array.from({ length: 20 }, async (_, i) => Promise.all([
      node(leader).propose(text.encode(`set l${i} ${i}`)),
      node(follower).propose(text.encode(`set f${i} ${i}`))
    ])))
    assert.equal(await node(leader).propose(text.encode('set l0 again')), '0')
    // a read at the follower is linearizable: it sees the write the leader just acknowledged
    await node(follower).read()
    assert.equal(follower.machine.map.get('l0'), 'again')
    await until('every state machine matches the leader', () => members.every(m => snapshotOf(m) === snapshotOf(leader)))
  })

  it('re-elects among the two others when the leader dies, and keeps writing', async () => {
    const old = await leaderAmong(members)
    const t0 = Date.now()
    await kill(old)
    const rest = running()
    let fresh: Member | undefined
    await until('a new leader among the survivors', () => {
      fresh = rest.find(m => node(m).leaderId === m.id)
      return fresh != null && rest.every(m => node(m).leaderId === fresh?.id)
    })
    if (fresh == null) assert.fail('no new leader')
    const elected = Date.now() - t0
    for (let i = 0; i < 20; i++) await node(fresh).propose(text.encode(`set after${i} ${i}`))
    const follower = rest.find(m => m !== fresh) as Member
    await node(follower).propose(text.encode('set from-follower 1'))
    await until('both survivors hold 61 keys', () => rest.every(m => m.machine.map.size === 61))
    assert.equal(snapshotOf(rest[0]), snapshotOf(rest[1]))
    assert.ok(elected < 5_000, `re-election took ${elected} ms`)
  })

  it('brings the dead node back from its directory with the same peer id, and it catches up', async () => {
    const dead = members.find(m => m.node == null) as Member
    await start(dead)
    assert.equal(dead.libp2p?.peerId.toString(), dead.id)
    // Its new address (a fresh ephemeral port) goes to the peer stores of the others.
    await introduce(running().map(m => m.libp2p as Libp2p))
    const others = running().filter(m => m !== dead)
    await until('the restarted node catches up', () => snapshotOf(dead) === snapshotOf(others[0]), 10_000)
    // And it takes part: a write through it reaches everyone.
    await node(dead).propose(text.encode('set back 1'))
    await until('all hold the write made through the restarted node', () => members.every(m => m.machine.map.get('back') === '1'))
    await node(dead).read()
    assert.equal(snapshotOf(dead), snapshotOf(others[0]))
  })
})
