import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createMemoryCluster, gossip, leaderOf, membership, pinning, waitFor } from './helpers/memory-cluster.ts'
import type { MemoryCluster } from './helpers/memory-cluster.ts'

const NODES = 12
const PINS = 20
const REPLICATION = 3
/** Fast timings, so that a learner is found offline within seconds. */
const TIMINGS = { voters: 3, tickMs: 50, heartbeatMs: 500, nodeTimeoutMs: 2_000 }
/** Generous: under the full suite on 2 cores, the join waves of twelve nodes share the CPU with five daemons. */
const TIMEOUT_MS = 90_000

describe('a cluster of 12 nodes on the in-memory transport', () => {
  let cluster: MemoryCluster
  const cids: string[] = []

  before(async () => {
    cluster = await createMemoryCluster(TIMINGS)
    await cluster.grow(NODES, { wave: 4, joinTimeoutMs: TIMEOUT_MS })
  })

  after(async () => {
    const stuck = await cluster?.stop(10_000)
    assert.deepEqual(stuck, [], 'every node stops in time')
  })

  it('takes every node in, with exactly 3 voters', async () => {
    // The leader promotes learners one heartbeat at a time.
    await waitFor('3 voters', () => {
      const m = membership(cluster.nodes)
      return { ...m, done: m.done && m.voters === 3 }
    }, { timeoutMs: TIMEOUT_MS })
    const m = membership(cluster.nodes)
    assert.equal(m.voters, 3)
    assert.equal(m.learners, NODES - 3)
    assert.equal(leaderOf(cluster.nodes)?.cluster.state.nodes.size, NODES)
  })

  it('has every node hear the heartbeats of every other', async () => {
    await waitFor('heartbeats', () => gossip(cluster.nodes), { timeoutMs: TIMEOUT_MS })
  })

  it(`pins ${PINS} blocks on ${REPLICATION} nodes each, spread over the cluster`, async () => {
    const [first] = cluster.nodes
    for (let i = 0; i < PINS; i++) cids.push((await first.content.blockPut(randomBytes(1024))).toString())
    await Promise.all(cids.map(async cid => first.cluster.pinAdd(cid, { replicationFactor: REPLICATION })))
    await waitFor('pins', () => pinning(cluster.nodes, cids), { timeoutMs: TIMEOUT_MS })
    const { max } = pinning(cluster.nodes, cids)
    assert.ok(max <= 2 * PINS * REPLICATION / NODES, `no node holds more than twice the average, the busiest holds ${max}`)
  })

  it('moves the pins of a stopped learner to the other nodes', async () => {
    const leader = leaderOf(cluster.nodes)
    assert.ok(leader != null)
    const learners = new Set(leader.cluster.status().learners)
    const victim = cluster.nodes.find(n => learners.has(n.id) && leader.cluster.state.pinsAllocatedTo(n.id).length > 0)
    assert.ok(victim != null, 'a learner holds pins')
    await victim.stop()
    await waitFor('pins after a learner stopped', () => pinning(cluster.nodes, cids), { timeoutMs: TIMEOUT_MS })
    assert.equal(leader.cluster.state.nodes.get(victim.id)?.online, false)
    assert.deepEqual(leader.cluster.state.pinsAllocatedTo(victim.id), [])
  })
})
