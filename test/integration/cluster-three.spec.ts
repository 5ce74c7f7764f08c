/**
 * Three daemons, each its own process: joining by bootstrap, pins that
 * converge, writes through a follower, kill -9 of the leader, restart and
 * catch-up, and a late node that catches up from a snapshot.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { addBytes, agreedLeader, call, FAST, pinnedOn, ProcessCluster, waitFor } from '../helpers/cluster.ts'
import type { Member } from '../helpers/cluster.ts'

describe('a cluster of three daemons', () => {
  // Snapshots every 40 entries, so that a late node must start from one.
  const cluster = new ProcessCluster({ ...FAST, snapshot_every: 40 })
  let a: Member, b: Member, c: Member

  before(async () => {
    a = await cluster.add()
    b = await cluster.add()
    c = await cluster.add(b)
  })

  after(async () => { await cluster.stop() })

  it('joins by bootstrap under one leader, with three voters', async () => {
    const { leader, term } = await agreedLeader([a, b, c])
    assert.ok([a, b, c].some(m => m.peerId === leader))
    assert.ok(term >= 1)
    const status = await waitFor('three voters', async () => {
      const s = (await call(a, '/api/v1/consensus/status')).body
      return s.voters.length === 3 ? s : undefined
    })
    assert.deepEqual([...status.voters].sort(), [a, b, c].map(m => m.peerId).sort())
    const peers = await waitFor('every node in the state', async () => {
      const res = await call(c, '/api/v0/cluster/peers')
      return res.body.count === 3 ? res.body : undefined
    })
    assert.equal(peers.success, true)
  })

  it('converges pins with replication factors 2 and 3, and lists them in the local pin/ls', async () => {
    const two = await addBytes(a, randomBytes(300_000))
    const three = await addBytes(b, randomBytes(70_000))
    const addTwo = await call(c, '/api/v0/cluster/pin/add', { json: { cid: two, replication_factor: 2, name: 'two' } })
    assert.equal(addTwo.status, 200, JSON.stringify(addTwo.body))
    assert.equal(addTwo.body.peers.length, 2)
    const addThree = await call(a, '/api/v0/cluster/pin/add', { json: { cid: three, replication_factor: 3 } })
    assert.equal(addThree.status, 200)
    const holders = await pinnedOn(a, two, 2)
    assert.deepEqual([...holders].sort(), [...addTwo.body.peers].sort())
    await pinnedOn(b, three, 3)
    // the node left out holds the pin as remote
    const other = [a, b, c].find(m => !holders.includes(m.peerId)) as Member
    const status = (await call(other, `/api/v0/cluster/status?arg=${two}`)).body.status[two]
    assert.equal(status.peer_map[other.peerId].status, 'remote')
    for (const m of [a, b, c]) {
      const ls = await call(m, '/api/v0/pin/ls?type=recursive', { method: 'POST' })
      assert.equal(Object.hasOwn(ls.body.Keys, two), holders.includes(m.peerId), `pin/ls of ${m.peerId}`)
      assert.ok(Object.hasOwn(ls.body.Keys, three))
    }
    const pins = (await call(b, '/api/v0/cluster/pins')).body
    assert.ok(pins.pins.some((p: any) => p.cid === two && p.replication_factor_max === 2 && p.name === 'two'))
  })

  it('answers bad cluster requests with 4xx envelopes', async () => {
    const bad = await call(a, '/api/v0/cluster/pin/add', { json: { cid: 'not-a-cid' } })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.success, false)
    const tooMany = await call(a, '/api/v0/cluster/pin/add', { json: { cid: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', replication_factor: 5 } })
    assert.equal(tooMany.status, 409)
    assert.equal(tooMany.body.error_type, 'InsufficientPeersError')
  })

  it('elects a new leader after kill -9 of the leader, and goes on taking writes', async () => {
    const { leader, term } = await agreedLeader([a, b, c])
    const old = [a, b, c].find(m => m.peerId === leader) as Member
    const survivors = [a, b, c].filter(m => m !== old)
    await cluster.kill(old)
    const next = await agreedLeader(survivors, 40_000, leader)
    assert.ok(next.term > term)
    const cid = await addBytes(survivors[0], randomBytes(50_000))
    const res = await call(survivors[1], '/api/v0/cluster/pin/add', { json: { cid, replication_factor: 2 } })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    await pinnedOn(survivors[0], cid, 2)
    // the dead node is marked offline by the new leader
    await waitFor('the killed node offline', async () => {
      const nodes = (await call(survivors[0], '/api/v1/nodes')).body.nodes
      return nodes.find((n: any) => n.id === old.peerId)?.status === 'offline'
    })

    // Restarted, it catches up with what was decided while it was down.
    await cluster.restart(old)
    await agreedLeader([a, b, c], 30_000)
    const seen = await waitFor('the restarted node to see the new pin', async () => {
      const pins = (await call(old, '/api/v0/cluster/pins?local=true')).body.pins
      return pins.some((p: any) => p.cid === cid) ? pins : undefined
    })
    assert.ok(seen.length >= 3)
    const mine = await call(old, '/api/v1/consensus/status')
    const theirs = await call(survivors[0], '/api/v1/consensus/status')
    assert.ok(mine.body.applied_index >= theirs.body.commit_index - 5, `${mine.body.applied_index} vs ${theirs.body.commit_index}`)
  })

  it('brings a late node up to date from a snapshot plus the log tail', async () => {
    // enough decisions that the log was compacted past its beginning
    for (let i = 0; i < 50; i++) {
      const res = await call(a, '/api/v0/cluster/pin/add', { json: { cid: await addBytes(a, `note ${i}`), replication_factor: 1 } })
      assert.equal(res.status, 200)
    }
    const history = (await call(a, '/api/v1/consensus/history?limit=1000')).body
    assert.ok(history.count >= 50)
    const d = await cluster.add(c)
    const want = (await call(a, '/api/v0/cluster/pins')).body.count
    await waitFor('the late node to hold the whole pinset', async () => {
      const ready = await call(d, '/health/ready')
      const pins = await call(d, '/api/v0/cluster/pins?local=true')
      return ready.status === 200 && pins.body.count === want
    }, 60_000)
    const role = (await call(d, '/api/v1/consensus/status')).body
    assert.ok(role.learners.includes(d.peerId), 'a fourth node joins as a learner')
  })
})
