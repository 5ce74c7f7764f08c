/**
 * Document 001 on an in-process daemon with a real model: estimatedTime from
 * the throughput measured on the chosen worker (and no figure before one),
 * E002 when no node can take a task, E005 for a prompt longer than the
 * model's context, the upload form's `name`, and resource_updated.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { assetDir } from '@node-daemon/models'
import { call, upload, waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import { openSocket, wsUrl } from '../helpers/sockets.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

describe('document 001: estimates, errors at submission, uploads and resource events', { timeout: 240_000 }, () => {
  let d: TestDaemon
  const api = (): { api: string } => ({ api: d.url })
  const submit = async (body: object): Promise<{ status: number, body: any }> => call(api(), '/api/tasks/submit', { method: 'POST', json: body })

  before(async () => {
    d = await startTestDaemon()
    await upload(api(), 'custom-model', assetDir('tiny-gpt'), { name: 'My Custom Model', description: 'Fine-tuned model for specific tasks' })
  })
  after(async () => { await d?.cleanup() })

  it('keeps the form\'s name as the model\'s display name, which a new version does not change', async () => {
    const { body } = await call(api(), '/api/models')
    const model = body.models.find((m: any) => m.id === 'custom-model:latest')
    assert.equal(model?.name, 'My Custom Model', JSON.stringify(body))
    assert.equal(model.description, 'Fine-tuned model for specific tasks')
    await upload(api(), 'custom-model', assetDir('tiny-gpt'), { name: 'My Custom Model' })
    await assert.rejects(upload(api(), 'custom-model', assetDir('tiny-gpt'), { name: 'Another Name' }), /409/)
  })

  it('gives no estimatedTime before a task of the model completed on its worker, then one from the measured rate', async () => {
    const first = await submit({ prompt: 'What is AI?', modelId: 'custom-model', maxTokens: 8 })
    assert.equal(first.status, 200, JSON.stringify(first.body))
    assert.equal(first.body.estimatedTime, null)
    assert.deepEqual(first.body.estimate, { worker: d.node.peerId, basis: 'no task of this model has completed on this worker yet', tasks: 0 })
    const done = await waitFor('the first task to complete', async () => {
      const { body } = await call(api(), `/api/tasks/${String(first.body.taskId)}`)
      return body.status === 'completed' ? body : undefined
    }, 120_000)
    assert.equal(done.worker, d.node.peerId)

    const { metrics } = await d.node.cluster.job(first.body.jobId)
    assert.ok(metrics != null && metrics.evalTokens > 0 && metrics.evalNs > 0, JSON.stringify(metrics))
    const rate = metrics.evalTokens / (metrics.evalNs / 1e9)
    const second = await submit({ prompt: 'What is AI?', modelId: 'custom-model', maxTokens: 100 })
    assert.equal(second.status, 200, JSON.stringify(second.body))
    const { estimate, estimatedTime } = second.body
    assert.equal(estimate.basis, 'measured')
    assert.equal(estimate.worker, d.node.peerId)
    assert.equal(estimate.tasks, 1)
    assert.ok(Math.abs(estimate.tokensPerSecond - rate) < 1e-6 * rate, `${String(estimate.tokensPerSecond)} against ${rate}`)
    assert.equal(estimate.tokens, metrics.evalTokens, 'the mean answer so far, under maxTokens')
    assert.equal(estimatedTime, Math.round(metrics.evalTokens / rate * 10) / 10)
  })

  it('answers E002 at submission when no node can take the task', async () => {
    const drained = await call(api(), `/api/v1/nodes/${d.node.peerId}/drain`, { method: 'POST' })
    assert.equal(drained.status, 200, JSON.stringify(drained.body))
    try {
      const { status, body } = await submit({ prompt: 'Hello', modelId: 'custom-model' })
      assert.equal(status, 409, JSON.stringify(body))
      assert.equal(body.error.code, 'E002')
      assert.equal(body.error.message, 'Insufficient resources')
    } finally {
      await call(api(), `/api/v1/nodes/${d.node.peerId}/undrain`, { method: 'POST' })
    }
  })

  it('answers E005 at submission for a prompt longer than the model\'s context, and records no task', async () => {
    const before = (await d.node.cluster.jobs({ limit: Infinity })).length
    const { status, body } = await submit({ prompt: 'the quick brown fox jumps over the lazy dog '.repeat(300), modelId: 'custom-model' })
    assert.equal(status, 400, JSON.stringify(body))
    assert.equal(body.error.code, 'E005')
    assert.equal(body.error.message, 'Invalid prompt')
    assert.match(body.error.details, /the prompt takes \d+ tokens, and custom-model:latest takes 512/)
    assert.equal((await d.node.cluster.jobs({ limit: Infinity })).length, before)
  })

  it('sends resource_updated on /api/ws when this node\'s allocation changes', async () => {
    const socket = openSocket(wsUrl(d, '/api/ws'))
    await socket.opened
    try {
      const allocation = { cpu: 15, memory: 20, gpu: 15, storage: 8 }
      const set = await call(api(), '/api/resources', { method: 'POST', json: allocation })
      assert.equal(set.status, 200, JSON.stringify(set.body))
      for (let i = 0; i < 20; i++) {
        const message = await socket.json()
        if (message.type !== 'resource_updated') continue
        assert.deepEqual(message.data, allocation)
        assert.ok(!Number.isNaN(Date.parse(message.timestamp)))
        return
      }
      assert.fail('no resource_updated among 20 messages')
    } finally {
      socket.ws.close()
    }
  })
})
