/**
 * Document 002's views say what is there: a model's and a pin's size in
 * bytes, the models a node holds (the defaults included, deleted ones not),
 * and model names with Ollama's `:latest` when the tag is left out.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { defaultModelReady } from '../helpers/aborts.ts'
import { call, waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import { openSocket, wsUrl } from '../helpers/sockets.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const LATEST = `${DEFAULT_MODELS.generate}:latest`
const EMBED = `${DEFAULT_MODELS.embed}:latest`

/** The daemon's API answer, parsed. */
async function json (d: TestDaemon, path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number, body: any }> {
  return call({ api: d.url }, path, init)
}

describe('document 002 views', { timeout: 240_000 }, () => {
  let d: TestDaemon
  before(async () => {
    d = await startTestDaemon({ inference: { defaultModels: true } })
    await defaultModelReady(d.url)
    await waitFor('the default embedding model', async () => (await json(d, `/api/distributed/models/${EMBED}/replicas`)).status === 200, 120_000)
  })
  after(async () => { await d?.cleanup() })

  it('gives models and their pins their size in bytes', async () => {
    const { body } = await json(d, '/api/distributed/models')
    const model = body.models.find((m: any) => m.name === LATEST)
    assert.ok(model != null, JSON.stringify(body))
    assert.ok(model.size > 100_000, `size ${String(model.size)}`)
    assert.notEqual(model.total_size, '0B')
    const { body: status } = await json(d, '/api/distributed/replication/status')
    const pin = status.pins.find((p: any) => p.cid === model.cid)
    assert.equal(pin.size, model.size)
  })

  it("lists the default models among a node's models, and not a deleted one", async () => {
    const copied = await json(d, '/api/copy', { method: 'POST', json: { source: LATEST, destination: 'doomed:v1' } })
    assert.equal(copied.status, 200, JSON.stringify(copied.body))
    let { body: self } = await json(d, `/api/v1/nodes/${d.node.peerId}`)
    assert.ok(self.models.includes(LATEST), JSON.stringify(self.models))
    assert.ok(self.models.includes(EMBED), JSON.stringify(self.models))
    assert.ok(self.models.includes('doomed:v1'), JSON.stringify(self.models))
    const deleted = await json(d, '/api/delete', { method: 'DELETE', json: { model: 'doomed:v1' } })
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body))
    ;({ body: self } = await json(d, `/api/v1/nodes/${d.node.peerId}`))
    assert.ok(!self.models.includes('doomed:v1'), JSON.stringify(self.models))
    assert.ok(self.models.includes(LATEST), JSON.stringify(self.models))
  })

  it('takes a bare model name as :latest for replicas', async () => {
    const { status, body } = await json(d, `/api/distributed/models/${DEFAULT_MODELS.generate}/replicas`)
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.name, LATEST)
  })

  it('takes a bare model name as :latest in a vote', async () => {
    assert.equal((await json(d, '/api/copy', { method: 'POST', json: { source: LATEST, destination: 'voted' } })).status, 200)
    const { body: embed } = await json(d, `/api/distributed/models/${EMBED}/replicas`)
    const { status, body } = await json(d, '/api/v1/consensus/vote', { method: 'POST', json: { model_id: 'voted', model_cid: embed.cid } })
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.model_id, 'voted:latest')
    assert.equal(body.version, 2)
  })

  it('downloads a model to this node on a POST /api/v1/models/{name}/download without a body', async () => {
    const { status, body } = await json(d, `/api/v1/models/${LATEST}/download`, { method: 'POST' })
    assert.equal(status, 202, JSON.stringify(body))
    assert.equal(body.node_id, d.node.peerId)
    assert.ok(body.nodes.includes(d.node.peerId), JSON.stringify(body))
  })

  it('says in /api/distributed/status whether /admin/mode and /admin/fallback put this node in distributed and fallback mode', async () => {
    try {
      for (const [mode, enabled] of [['local', false], ['distributed', true]] as const) {
        assert.equal((await json(d, '/admin/mode', { method: 'POST', json: { mode } })).status, 200)
        assert.equal((await json(d, '/admin/fallback', { method: 'POST', json: { enabled } })).status, 200)
        const { status, body } = await json(d, '/api/distributed/status')
        assert.equal(status, 200, JSON.stringify(body))
        assert.equal(body.distributed_mode, mode === 'distributed', JSON.stringify(body))
        assert.equal(body.fallback_mode, enabled, JSON.stringify(body))
      }
    } finally {
      await json(d, '/admin/mode', { method: 'POST', json: { mode: 'distributed' } })
    }
  })

  it('counts in /api/distributed/metrics the requests this node ran, the models it loaded and the open WebSockets, and in /metrics the connections', async () => {
    const { body: before } = await json(d, '/api/distributed/metrics')
    const generated = await json(d, '/api/generate', { method: 'POST', json: { model: LATEST, prompt: 'It is', stream: false, options: { num_predict: 2 } } })
    assert.equal(generated.status, 200, JSON.stringify(generated.body))
    const socket = openSocket(wsUrl(d, '/ws/v0/events'))
    try {
      await socket.opened
      // The job completes in the cluster's state just after its answer.
      const { status, body } = await waitFor('the request to be counted', async () => {
        const metrics = await json(d, '/api/distributed/metrics')
        return metrics.status !== 200 || metrics.body.requests_processed > before.requests_processed ? metrics : undefined
      })
      assert.equal(status, 200, JSON.stringify(body))
      assert.equal(body.requests_processed, before.requests_processed + 1, JSON.stringify({ before, body }))
      assert.ok(body.models_loaded >= 1, JSON.stringify(body))
      assert.ok(body.websocket_connections >= 1, JSON.stringify(body))
      const { body: cluster } = await json(d, '/api/distributed/status')
      assert.equal(cluster.runner_stats.models_loaded, body.models_loaded, JSON.stringify(cluster.runner_stats))
      assert.ok(cluster.runner_stats.models.some((m: any) => m.name === LATEST && m.size > 0 && m.engine === 'onnxruntime'), JSON.stringify(cluster.runner_stats))
      const text = await (await fetch(`${d.url}/metrics`, { signal: AbortSignal.timeout(30_000) })).text()
      assert.ok(Number(/^node_daemon_websocket_connections (\d+)$/m.exec(text)?.[1]) >= 1, text.slice(0, 200))
      assert.ok(Number(/^node_daemon_http_connections (\d+)$/m.exec(text)?.[1]) >= 2, 'the socket and the scrape')
    } finally {
      socket.ws.close()
    }
  })

  it('refuses a download naming its node by a field it does not take, rather than downloading to this node', async () => {
    const { status, body } = await json(d, `/api/v1/models/${LATEST}/download`, { method: 'POST', json: { node: d.node.peerId } })
    assert.equal(status, 400, JSON.stringify(body))
    assert.equal(body.code, 'INVALID_REQUEST')
    assert.match(body.error, /node/)
  })
})
