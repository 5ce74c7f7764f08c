import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createMemoryCluster, leaderOf, membership, waitFor } from './helpers/memory-cluster.ts'
import type { MemoryCluster, MemoryNode } from './helpers/memory-cluster.ts'

const TIMINGS = { voters: 3, tickMs: 50, heartbeatMs: 500, nodeTimeoutMs: 2_000 }
/** Generous: the whole suite shares two cores. */
const TIMEOUT_MS = 60_000
const PINS = 40

describe('group commit of the pin requests made on one node', () => {
  let cluster: MemoryCluster

  before(async () => {
    cluster = await createMemoryCluster(TIMINGS)
    await cluster.grow(3, { wave: 2, joinTimeoutMs: TIMEOUT_MS })
    await waitFor('3 voters', () => {
      const m = membership(cluster.nodes)
      return { ...m, done: m.done && m.voters === 3 }
    }, { timeoutMs: TIMEOUT_MS })
  })

  after(async () => {
    const stuck = await cluster?.stop(10_000)
    assert.deepEqual(stuck, [], 'every node stops in time')
  })

  const follower = (): MemoryNode => {
    const node = cluster.nodes.find(n => n.running && n.cluster.status().role === 'follower')
    assert.ok(node != null, 'a follower')
    return node
  }
  const blocks = async (node: MemoryNode, n: number): Promise<string[]> =>
    Promise.all(Array.from({ length: n }, async () => (await node.content.blockPut(randomBytes(256))).toString()))
  /** The index of the entry that carried each cid's committed pin.add, from the node's history. */
  const entryOf = (node: MemoryNode, since: number): Map<string, number> =>
    new Map(node.cluster.state.decisions(since, 10_000, 'pin.add').filter(d => d.outcome === 'committed').map(d => [d.summary.split(' ')[1], d.index]))

  it('commits concurrent requests in fewer entries than pins, each answered with its record once applied', async () => {
    const node = follower()
    const cids = await blocks(node, PINS)
    const since = node.cluster.state.appliedIndex + 1
    const records = await Promise.all(cids.map(async (cid) => {
      const record = await node.cluster.pinAdd(cid, { replicationFactor: 2 })
      // answered only once applied here
      assert.deepEqual(node.cluster.state.pins.get(cid)?.allocations, record.allocations)
      return record
    }))
    assert.deepEqual(records.map(r => r.cid), cids)
    for (const r of records) assert.equal(r.allocations.length, 2)
    const entries = new Set(entryOf(node, since).values())
    assert.ok(entries.size <= PINS / 4, `${PINS} pins in ${entries.size} entries`)
  })

  it('rejects only the request whose command fails; the others in its entry are pinned', async () => {
    const node = follower()
    const cids = await blocks(node, 10)
    const since = node.cluster.state.appliedIndex + 1
    const [bad, ...good] = await Promise.allSettled([
      node.cluster.pinAdd(cids[0], { replicationFactor: 5 }),
      ...cids.slice(1).map(async cid => node.cluster.pinAdd(cid, { replicationFactor: 1 }))
    ])
    assert.equal(bad.status, 'rejected')
    assert.equal(bad.reason.name, 'InsufficientPeersError')
    for (const g of good) assert.equal(g.status, 'fulfilled')
    assert.equal(node.cluster.state.pins.has(cids[0]), false)
    const rejected = node.cluster.state.decisions(since, 10_000, 'pin.add').filter(d => d.outcome === 'rejected')
    assert.equal(rejected.length, 1)
    const entries = entryOf(node, since)
    assert.ok(cids.slice(1).some(cid => entries.get(cid) === rejected[0].index), 'the failed request shared its entry')
  })

  it('loses no answered pin when the leader stops right after the answers', async () => {
    const node = follower()
    const cids = await blocks(node, PINS)
    await Promise.all(cids.map(async cid => node.cluster.pinAdd(cid, { replicationFactor: 1 })))
    const leader = leaderOf(cluster.nodes)
    assert.ok(leader != null)
    await leader.stop()
    await waitFor('a new leader', () => {
      const next = leaderOf(cluster.nodes)
      return { done: next != null, detail: next == null ? 'none' : next.id }
    }, { timeoutMs: TIMEOUT_MS })
    const next = leaderOf(cluster.nodes)
    assert.ok(next != null && next !== leader)
    const pinned = new Set((await next.cluster.pins()).map(p => p.cid))
    assert.deepEqual(cids.filter(cid => !pinned.has(cid)), [])
  })
})
