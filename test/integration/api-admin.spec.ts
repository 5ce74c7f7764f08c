/**
 * Document 002's admin API: the admin token is needed, mode and fallback are
 * this node's placement settings, rebalance re-runs allocation, and stats
 * say what the node knows. In local mode a node's jobs run on it alone.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const TOKEN = 'admin-token-for-tests'

describe('document 002 admin API', { timeout: 120_000 }, () => {
  let d: TestDaemon
  const call = async (path: string, body?: unknown, token: string | null = TOKEN): Promise<{ status: number, body: any }> => {
    const res = await fetch(`${d.url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { ...(token == null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000)
    })
    return { status: res.status, body: await res.json() }
  }

  before(async () => { d = await startTestDaemon({ api: { adminToken: TOKEN } }) })
  after(async () => { await d?.cleanup() })

  it('refuses callers without the admin token', async () => {
    assert.equal((await call('/admin/stats', undefined, null)).status, 401)
    assert.equal((await call('/admin/mode', { mode: 'local' }, 'wrong')).status, 401)
  })

  it("switches this node's mode and fallback, which the stats and the placement show", async () => {
    let { status, body } = await call('/admin/mode', { mode: 'local' })
    assert.equal(status, 200, JSON.stringify(body))
    assert.deepEqual(body, { success: true, mode: 'local', fallback: true })
    assert.deepEqual(d.node.inference.placement(), { mode: 'local', fallback: true })
    ;({ status, body } = await call('/admin/fallback', { enabled: false }))
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.fallback, false)
    const stats = await call('/admin/stats')
    assert.equal(stats.body.mode, 'local')
    assert.equal(stats.body.fallback, false)
    assert.equal(stats.body.node_id, d.node.peerId)
    assert.equal(stats.body.nodes.total, 1)
    assert.ok(stats.body.process.rss > 0)
    const bad = await call('/admin/mode', { mode: 'both' })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.code, 'INVALID_REQUEST')
    assert.equal(typeof bad.body.request_id, 'string')
    assert.equal((await call('/admin/mode', { mode: 'distributed' })).body.mode, 'distributed')
  })

  it("answers document 002's routes with its error form, and document 004's clients with that one's", async () => {
    const res = await fetch(`${d.url}/api/v1/nodes/12D3KooWNoSuchNode`, { headers: { authorization: `Bearer ${TOKEN}` } })
    const body = await res.json() as any
    assert.equal(res.status, 404)
    assert.equal(body.code, 'NODE_NOT_FOUND')
    assert.equal(body.Code, 1001)
    assert.equal(body.request_id, res.headers.get('x-request-id'))
    const client = await fetch(`${d.url}/api/clients/12D3KooWNoSuchNode`, { headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(client.status, 404)
    assert.deepEqual(await client.json(), { error: { code: 'NODE_NOT_FOUND', message: body.error, details: { type: 'NodeNotFoundError' } } })
  })

  it('re-runs pin allocation', async () => {
    const { status, body } = await call('/admin/rebalance', {})
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.success, true)
    assert.equal(body.moved, body.pins.length)
  })
})

describe('local mode on two nodes', { timeout: 180_000 }, () => {
  const daemons: TestDaemon[] = []
  const post = async (d: TestDaemon, path: string, body: unknown): Promise<{ status: number, body: any }> => {
    const res = await fetch(`${d.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
    return { status: res.status, body: await res.json() }
  }

  before(async () => {
    daemons.push(await startTestDaemon({ inference: { defaultModels: true } }))
    daemons.push(await startTestDaemon({ inference: { defaultModels: true }, swarm: { bootstrap: [daemons[0].swarmAddr] } }))
    await waitFor('two members', async () => (await daemons[0].node.cluster.nodes()).length === 2 && daemons[1].node.cluster.isReady(), 60_000)
    await waitFor('the default model', async () => (await daemons[0].node.cluster.getAllModels()).some(m => m.modelId === 'tiny-gpt:latest'), 120_000)
  })
  after(async () => { await Promise.allSettled(daemons.map(async d => d.cleanup())) })

  it("runs a drained node's jobs elsewhere in distributed mode, and nowhere in local mode", async () => {
    const [a, b] = daemons
    assert.equal((await post(a, `/api/v1/nodes/${a.node.peerId}/drain`, {})).status, 200)
    const request = { model: 'tiny-gpt', prompt: 'Emma', stream: false, options: { num_predict: 1 } }
    const distributed = await post(a, '/api/generate', request)
    assert.equal(distributed.status, 200, JSON.stringify(distributed.body))
    // The job completes in the cluster's state just after the answer.
    const [job] = await waitFor('the job to complete', async () => {
      const done = await a.node.cluster.jobs({ status: ['completed'], limit: 1 })
      return done.length > 0 ? done : undefined
    })
    assert.equal(job.worker, b.node.peerId)
    assert.equal((await post(a, '/admin/mode', { mode: 'local' })).status, 200)
    const local = await post(a, '/api/generate', request)
    assert.equal(local.status, 409, JSON.stringify(local.body))
    assert.match(local.body.error, /no node can run/)
  })
})
