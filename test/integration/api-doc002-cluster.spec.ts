/**
 * Document 002's model management across two nodes: a model downloaded to a
 * given node becomes its replica there, a deleted model is gone, and a
 * transfer in progress shows its bytes and stops when it is cancelled.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { after, before, describe, it } from 'node:test'
import { call, waitFor } from '../helpers/cluster.ts'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

/** The daemon's API answer, parsed. */
async function json (d: TestDaemon, path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number, body: any }> {
  return call({ api: d.url }, path, init)
}

describe('document 002 model management on two nodes', { timeout: 180_000 }, () => {
  const daemons: TestDaemon[] = []
  let cid: string
  const bytes = randomBytes(600_000)

  before(async () => {
    daemons.push(await startTestDaemon())
    daemons.push(await startTestDaemon({ swarm: { bootstrap: [daemons[0].swarmAddr] } }))
    await waitFor('two members', async () => (await daemons[0].node.cluster.nodes()).length === 2 && daemons[1].node.cluster.isReady(), 60_000)
    const added = await (await rpc(daemons[0], 'add', { pin: 'false' }, { body: formOf([{ path: 'weights.bin', content: bytes }]) })).json() as { Hash: string }
    cid = added.Hash
    await daemons[0].node.cluster.registerModel({ modelId: 'dl:latest', modelCID: cid, replicationFactor: 1 })
  })
  after(async () => { await Promise.allSettled(daemons.map(async d => d.cleanup())) })

  it('lists and shows a model by its bare name, with its size', async () => {
    const { body: list } = await json(daemons[1], '/api/v1/models')
    assert.equal(list.total, list.models.length)
    assert.ok(list.models.some((m: any) => m.name === 'dl:latest'), JSON.stringify(list))
    const { status, body } = await json(daemons[1], '/api/v1/models/dl')
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.name, 'dl:latest')
    assert.equal(body.cid, cid)
    assert.ok(body.size >= bytes.length, `size ${String(body.size)}`)
    assert.equal(body.replicas, 1)
    assert.equal(body.versions.length, 1)
  })

  it('downloads a model to the node it names, which then holds a replica', async () => {
    const { body: before } = await json(daemons[0], '/api/v1/models/dl')
    const target = daemons.find(d => !before.nodes.includes(d.node.peerId)) as TestDaemon
    const { status, body } = await json(daemons[0], '/api/v1/models/dl/download', { method: 'POST', json: { node_id: target.node.peerId } })
    assert.equal(status, 202, JSON.stringify(body))
    assert.ok(body.nodes.includes(target.node.peerId))
    await waitFor('the replica pinned on the target', async () => {
      const { body } = await json(daemons[0], '/api/v1/models/dl')
      return body.replica_status.find((r: any) => r.node === target.node.peerId)?.status === 'pinned'
    }, 60_000)
    const cat = await rpc(target, 'cat', { arg: cid, offline: 'true' })
    assert.equal(cat.status, 200)
    assert.deepEqual(Buffer.from(await cat.arrayBuffer()), bytes)
  })

  it('refuses a download to a node that is not a member', async () => {
    const { status, body } = await json(daemons[0], '/api/v1/models/dl/download', { method: 'POST', json: { node_id: '12D3KooWNotANode' } })
    assert.equal(status, 404, JSON.stringify(body))
  })

  it('deletes a model from the cluster', async () => {
    const { status, body } = await json(daemons[1], '/api/v1/models/dl', { method: 'DELETE' })
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.model_id, 'dl:latest')
    assert.equal((await json(daemons[0], '/api/v1/models/dl:latest')).status, 404)
    assert.equal((await json(daemons[0], '/api/v1/models/dl', { method: 'DELETE' })).status, 404)
  })

  it('shows a transfer in progress with its bytes, and stops it when cancelled', async () => {
    const [a, b] = daemons
    // A DAG that cannot arrive whole: A holds the root and one leaf, nobody the other leaf.
    const leaf = randomBytes(300_000)
    const present = await a.node.content.blockPut(leaf)
    const absent = CID.createV1(0x55, await sha256.digest(randomBytes(64)))
    const root = await a.node.content.blockPut(dagPb.encode({ Links: [{ Hash: present, Tsize: leaf.length }, { Hash: absent, Tsize: 300_000 }] }), { cidCodec: 'dag-pb' })
    await a.node.cluster.pinAdd(root.toString(), { replicationFactor: -1, name: 'stuck' })
    const seen = await waitFor("B's transfer with the bytes it took", async () => {
      const { body } = await json(a, '/api/v1/transfers')
      return body.transfers.find((t: any) => t.cid === root.toString() && t.node === b.node.peerId && t.status === 'pinning' && t.bytes_done >= leaf.length)
    }, 60_000)
    const id: string = seen.id
    assert.deepEqual((await json(b, `/api/v1/transfers/${id}`)).body.id, id)
    assert.equal(seen.node, b.node.peerId)
    assert.equal(seen.name, 'stuck')
    assert.ok(seen.bytes_total > seen.bytes_done, JSON.stringify(seen))
    assert.ok(seen.rate > 0 && seen.eta_seconds > 0, JSON.stringify(seen))
    const { body: list } = await json(b, '/api/v1/transfers')
    assert.ok(list.transfers.some((t: any) => t.id === id), JSON.stringify(list))
    const cancelled = await json(b, `/api/v1/transfers/${id}`, { method: 'DELETE' })
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body))
    assert.ok(!cancelled.body.nodes.includes(b.node.peerId))
    // B's fetch stops: its tracker drops the pin, and it is no transfer any more.
    await waitFor("B's fetch to stop", async () => b.node.cluster.localPins().every(p => p.pin.cid !== root.toString()), 30_000)
    assert.equal((await json(a, `/api/v1/transfers/${id}`)).status, 404)
    // The only replica left is not cancelled: the pin is unpinned instead.
    const { body: left } = await json(a, '/api/v1/transfers')
    const mine = left.transfers.find((t: any) => t.cid === root.toString() && t.node === a.node.peerId)
    const last = await json(a, `/api/v1/transfers/${String(mine.id)}`, { method: 'DELETE' })
    assert.equal(last.status, 400, JSON.stringify(last.body))
    assert.equal((await json(a, '/api/v1/transfers/nope')).status, 404)
  })
})
