import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { yamux } from '@chainsafe/libp2p-yamux'
import { memory } from '@libp2p/memory'
import { plaintext } from '@libp2p/plaintext'
import { multiaddr } from '@multiformats/multiaddr'
import { RAFT_PROTOCOL } from '@node-daemon/raft-node'
import { createLibp2p } from 'libp2p'
import { membership, startMemoryNode, waitFor } from './helpers/memory-cluster.ts'
import type { MemoryNode } from './helpers/memory-cluster.ts'
import type { Libp2p } from '@libp2p/interface'

const TIMINGS = { voters: 3, tickMs: 50, heartbeatMs: 60_000 }
/** The cluster's GOSSIP_NEIGHBOURS: connections past which discovered learners are not dialled. */
const NEIGHBOURS = 12
const PEERS = 24

describe('the join path', () => {
  let root: string
  const nodes: MemoryNode[] = []
  const bare: Libp2p[] = []

  before(async () => { root = await mkdtemp(join(tmpdir(), 'node-daemon-join-path-')) })
  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map(async n => n.stop()))
    await Promise.allSettled(bare.splice(0).map(async n => n.stop()))
  })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  /** A founder, the leader, and a second node it admitted, a follower. */
  async function twoNodes (): Promise<{ founder: MemoryNode, second: MemoryNode }> {
    const founder = await startMemoryNode(root, [], TIMINGS)
    nodes.push(founder)
    const second = await startMemoryNode(root, [founder.addr], TIMINGS)
    nodes.push(second)
    await waitFor('the second node', () => membership(nodes), { timeoutMs: 20_000 })
    return { founder, second }
  }

  /** Counts the membership changes `node` proposes from now on. */
  function countProposals (node: MemoryNode): { count: number } {
    const counter = { count: 0 }
    const raft = (node.cluster as any).raft
    const proposeConfChange = raft.proposeConfChange.bind(raft)
    raft.proposeConfChange = async (...args: unknown[]) => {
      counter.count++
      return proposeConfChange(...args)
    }
    return counter
  }

  it('serves Raft while still joining, so that the leader reaches a new learner the moment it is admitted', async () => {
    // No one listens there: the node keeps asking to join.
    const node = await startMemoryNode(root, [`/memory/${randomUUID()}/p2p/12D3KooWLXsMGqx1BZ9Az8X7ULyrvYfF8jfTcnvPGwnvnb2dHiUw`], TIMINGS)
    nodes.push(node)
    assert.equal(node.cluster.status().commitIndex, 0, 'not joined')
    assert.ok(node.content.swarm.getProtocols().includes(RAFT_PROTOCOL))
  })

  it(`dials at most ${NEIGHBOURS} connections' worth of the members it hears of at once`, async () => {
    const founder = await startMemoryNode(root, [], TIMINGS)
    nodes.push(founder)
    for (let i = 0; i < PEERS; i++) {
      bare.push(await createLibp2p({
        addresses: { listen: [`/memory/${randomUUID()}`] },
        transports: [memory()],
        connectionEncrypters: [plaintext()],
        streamMuxers: [yamux()]
      }))
    }
    // As a join answer does: members are named first, then their addresses all land in the peer store at once.
    const introduced: Set<string> = (founder.cluster as any).introduced
    for (const peer of bare) introduced.add(peer.peerId.toString())
    const swarm = founder.content.swarm
    await Promise.all(bare.map(async peer => swarm.peerStore.merge(peer.peerId, { multiaddrs: peer.getMultiaddrs().map(a => multiaddr(a.toString())) })))
    await waitFor('the first dials', () => ({ done: swarm.getConnections().length >= NEIGHBOURS, detail: `${swarm.getConnections().length} connections` }), { timeoutMs: 10_000 })
    // Long enough for every dial a burst set off to land.
    await new Promise(resolve => setTimeout(resolve, 500))
    assert.equal(swarm.getConnections().length, NEIGHBOURS)
  })

  it('tells every member the addresses of a new node as its admission applies, so that the leader dials it without a DHT lookup', async () => {
    const { founder, second } = await twoNodes()
    const lookups: string[] = []
    const dht = founder.content.swarm.services.dht
    const findPeer = dht.findPeer.bind(dht)
    dht.findPeer = (peer, options) => {
      lookups.push(peer.toString())
      return findPeer(peer, options)
    }
    // Admitted by the second node, which the founder, the leader, then replicates to.
    const third = await startMemoryNode(root, [second.addr], TIMINGS)
    nodes.push(third)
    await waitFor('the third node', () => membership(nodes), { timeoutMs: 20_000 })
    assert.deepEqual(lookups.filter(id => id === third.id), [])
  })

  it('refers nodes that join through a follower to the leader, which admits them together without waiting out a dropped proposal', async () => {
    const { second } = await twoNodes()
    // A follower's proposal of an admission is forwarded, and dropped by the leader while another admission is pending.
    const proposed = countProposals(second)
    const started = Date.now()
    nodes.push(...await Promise.all(Array.from({ length: 4 }, async () => startMemoryNode(root, [second.addr], TIMINGS))))
    await waitFor('four nodes joining at once', () => membership(nodes), { timeoutMs: 30_000 })
    assert.equal(proposed.count, 0, 'the follower proposed admissions itself')
    // Each admission the leader dropped used to cost its node the proposal timeout, 5 s at these timings.
    assert.ok(Date.now() - started < 5000, `joined in ${Date.now() - started} ms`)
  })

  it('is admitted by the follower after all when the leader it was referred to cannot be reached', async () => {
    const { founder, second } = await twoNodes()
    // The follower knows the leader by addresses that no one listens on from here, as a leader on another network would be.
    const record = (second.cluster as any).state.nodes.get(founder.id)
    record.addrs = [`/memory/${randomUUID()}`]
    const proposed = countProposals(second)
    nodes.push(await startMemoryNode(root, [second.addr], TIMINGS))
    await waitFor('the third node', () => membership(nodes), { timeoutMs: 30_000 })
    assert.equal(proposed.count, 1)
  })
})
