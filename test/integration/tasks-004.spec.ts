/**
 * Document 004's tasks and metrics on one daemon, as on a user's single
 * machine: a training task created
 * with POST /api/tasks is paused, refused removal while open, resumed and
 * run to completion; the list pages with X-Total-Count, X-Page-Count and
 * Link; the metrics routes count it; a finished task is removed; bad input
 * gets document 004's error shape.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { encodeTensorDataset } from '@node-daemon/training'
import { waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const FEATURES = 4
const CLASSES = 3
const CLASSIFIER = { model_type: 'mlp-classifier', inputs: FEATURES, hidden: [8], classes: CLASSES }

/** Rows whose class is the feature that stands out: a small MLP learns them. */
function separable (rows: number): Uint8Array {
  const features = new Float32Array(rows * FEATURES)
  const labels = new Int32Array(rows)
  for (let r = 0; r < rows; r++) {
    labels[r] = r % CLASSES
    for (let f = 0; f < FEATURES; f++) features[r * FEATURES + f] = (f === labels[r] ? 2 : 0) + ((r * 7 + f * 3) % 11) / 22
  }
  return encodeTensorDataset({ features, labels, featureCount: FEATURES })
}

describe("document 004's tasks and metrics, through one daemon", () => {
  let daemon: TestDaemon
  let dataset: string
  let trained: string

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number, headers: Headers, body: any }> => {
    const res = await fetch(`${daemon.url}${path}`, {
      method,
      signal: AbortSignal.timeout(60_000),
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    })
    const text = await res.text()
    return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) }
  }

  /** Asserts document 004's error shape and status, and returns the error. */
  const refused = async (method: string, path: string, body: unknown, status: number, code: string): Promise<{ message: string }> => {
    const res = await call(method, path, body)
    assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`)
    assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'details', 'message', 'timestamp'])
    assert.equal(res.body.error.code, code, JSON.stringify(res.body))
    return res.body.error
  }

  const task = async (id: string): Promise<any> => {
    const res = await call('GET', `/api/tasks/${id}`)
    assert.equal(res.status, 200, JSON.stringify(res.body))
    return res.body
  }

  /** The task once it is in one of `statuses`; a failed task ends the wait at once. */
  const inStatus = async (id: string, statuses: string[], timeoutMs = 180_000): Promise<any> => {
    const t = await waitFor(`${id} to be ${statuses.join(' or ')}`, async () => {
      const t = await task(id)
      return [...statuses, 'failed'].includes(t.status) ? t : undefined
    }, timeoutMs)
    assert.ok(statuses.includes(t.status), `${id} failed: ${t.error}`)
    return t
  }

  before(async () => {
    daemon = await startTestDaemon()
    await waitFor('the node to be ready', async () => (await fetch(`${daemon.url}/health/ready`)).status === 200, 60_000)
    const form = new FormData()
    form.append('name', 'separable')
    form.append('file', new Blob([separable(240) as Uint8Array<ArrayBuffer>]), 'separable')
    const added = await fetch(`${daemon.url}/api/v0/ai/dataset/add`, { method: 'POST', body: form })
    assert.equal(added.status, 200)
    dataset = (await added.json()).cid
  })

  after(async () => {
    await daemon?.cleanup()
  })

  it('creates a training task, pauses it, keeps it while open, resumes it and sees it complete', async () => {
    const created = await call('POST', '/api/tasks', {
      type: 'training',
      name: 'separable-004',
      model: CLASSIFIER,
      dataset,
      batch_size: 8,
      learning_rate: 0.1,
      epochs: 40,
      optimizer: 'sgd',
      distributed: false,
      requirements: { min_gpu_memory: 0, min_cpu_cores: 1, min_ram: 1 }
    })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    trained = created.body.id
    assert.match(trained, /^task_\d+$/)
    assert.deepEqual(created.body, { id: trained, taskId: trained, jobId: Number(trained.slice(5)), type: 'training', status: 'pending', created_at: created.body.created_at })

    // 1200 steps: the pause lands long before the end, most likely while the coordinator builds its first round.
    const paused = await call('PUT', `/api/tasks/${trained}/status`, { status: 'paused', reason: 'Resource constraints' })
    assert.equal(paused.status, 200, JSON.stringify(paused.body))
    assert.deepEqual(paused.body, { id: trained, status: 'paused', updated_at: paused.body.updated_at, reason: 'Resource constraints' })
    const held = await inStatus(trained, ['paused'])
    assert.ok(held.progress < 100, `progress ${held.progress}`)
    assert.deepEqual(held.config, { name: 'separable-004', model: held.config.model, dataset, batch_size: 8, learning_rate: 0.1, epochs: 40, optimizer: 'sgd', strategy: 'data_parallel', distributed: false, world_size: 1 })
    assert.match(held.config.model, /^(Qm|bafy)/)
    assert.deepEqual(held.workers, [{ id: daemon.node.peerId, rank: 0, status: 'training' }])
    assert.equal(held.coordinator, daemon.node.peerId)

    // An open task stays.
    assert.match((await refused('DELETE', `/api/tasks/${trained}`, undefined, 409, 'CONFLICT')).message, /paused/)

    const system = await call('GET', '/api/metrics')
    assert.equal(system.status, 200)
    assert.deepEqual(system.body.clients, { total: 1, active: 1 })
    assert.equal(system.body.tasks.total, 1)
    assert.equal(system.body.tasks.paused, 1)
    assert.equal(typeof system.body.resources.cpu_usage, 'number')
    assert.equal(typeof system.body.resources.ram_usage, 'number')
    assert.ok(!Number.isNaN(Date.parse(system.body.timestamp)))

    const resumed = await call('PUT', `/api/tasks/${trained}/status`, { status: 'resumed' })
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body))
    assert.equal(resumed.body.status, 'running')
    const done = await inStatus(trained, ['completed'])
    assert.equal(done.type, 'training')
    assert.equal(done.progress, 100)
    assert.equal(done.model_id, 'separable-004')
    assert.ok(done.metrics.loss < 0.5, `loss ${done.metrics.loss}`)
    assert.ok(done.metrics.accuracy > 0.9, `accuracy ${done.metrics.accuracy}`)
    assert.equal(done.metrics.learning_rate, 0.1)
    assert.ok(done.metrics.samples_per_second > 0)
    assert.ok(done.checkpoints.length > 0)
    assert.ok(Date.parse(done.updated_at) > Date.parse(done.created_at))

    const metrics = await call('GET', `/api/metrics/tasks/${trained}`)
    assert.equal(metrics.status, 200)
    assert.equal(metrics.body.progress, 100)
    assert.deepEqual(metrics.body.metrics, done.metrics)
    assert.equal(typeof metrics.body.resources.cpu_usage, 'number')

    // A finished task cannot be paused again.
    await refused('PUT', `/api/tasks/${trained}/status`, { status: 'paused' }, 409, 'CONFLICT')
  })

  it('lists tasks a page at a time, newest first, with the pagination headers', async () => {
    const created = await call('POST', '/api/tasks', { type: 'training', dataset: 'separable', model: CLASSIFIER, epochs: 50, batch_size: 8 })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    const second = created.body.id
    const stopped = await call('PUT', `/api/tasks/${second}/status`, { status: 'cancelled' })
    assert.deepEqual([stopped.status, stopped.body.status], [200, 'stopped'])
    await inStatus(second, ['stopped'])

    const first = await call('GET', '/api/tasks?limit=1&page=1&type=training')
    assert.equal(first.status, 200)
    assert.equal(first.body.total, 2)
    assert.equal(first.body.page, 1)
    assert.deepEqual(first.body.tasks.map((t: any) => [t.id, t.status]), [[second, 'stopped']])
    assert.equal(first.headers.get('x-total-count'), '2')
    assert.equal(first.headers.get('x-page-count'), '2')
    const at = (page: number): string => `${daemon.url}/api/tasks?limit=1&page=${page}&type=training`
    assert.equal(first.headers.get('link'), `<${at(2)}>; rel="next", <${at(1)}>; rel="first", <${at(2)}>; rel="last"`)

    const last = await call('GET', '/api/tasks?limit=1&page=2&type=training')
    assert.deepEqual(last.body.tasks.map((t: any) => t.id), [trained])
    assert.equal(last.headers.get('link'), `<${at(1)}>; rel="prev", <${at(1)}>; rel="first", <${at(2)}>; rel="last"`)

    assert.deepEqual((await call('GET', '/api/tasks?status=stopped')).body.tasks.map((t: any) => t.id), [second])
    assert.deepEqual((await call('GET', '/api/tasks?type=inference')).body, { tasks: [], total: 0, page: 1 })
    const byNumber = await call('GET', `/api/tasks/${second.slice(5)}`)
    assert.equal(byNumber.body.id, second)

    const metrics = await call('GET', '/api/metrics')
    assert.equal(metrics.body.tasks.total, 2)
    assert.equal(metrics.body.tasks.completed, 1)
    assert.equal(metrics.body.tasks.stopped, 1)
  })

  it('removes a finished task, which is then gone', async () => {
    const removed = await call('DELETE', `/api/tasks/${trained}`)
    assert.equal(removed.status, 204)
    await refused('GET', `/api/tasks/${trained}`, undefined, 404, 'NOT_FOUND')
    await refused('DELETE', `/api/tasks/${trained}`, undefined, 404, 'NOT_FOUND')
    await refused('GET', `/api/metrics/tasks/${trained}`, undefined, 404, 'NOT_FOUND')
    // The model it trained stays registered.
    const model = await fetch(`${daemon.url}/api/v1/models/separable-004/download`, { signal: AbortSignal.timeout(60_000) })
    assert.equal(model.status, 200)
    assert.ok((await model.arrayBuffer()).byteLength > 0)
  })

  it("registers the model a task trained as name:version, document 004's version being its tag", async () => {
    const created = await call('POST', '/api/tasks', { type: 'training', name: 'separable-004', version: '1.0', model: CLASSIFIER, dataset, batch_size: 8, epochs: 1, distributed: false })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    const done = await inStatus(created.body.id, ['completed'])
    assert.equal(done.model_id, 'separable-004:1.0')
    const model = await call('GET', '/api/v1/models/separable-004:1.0')
    assert.equal(model.status, 200, JSON.stringify(model.body))
    assert.match((await refused('POST', '/api/tasks', { type: 'training', version: '1.0', model: CLASSIFIER, dataset }, 400, 'INVALID_REQUEST')).message, /name/)
    assert.match((await refused('POST', '/api/tasks', { type: 'training', name: 'a:b', version: '1.0', model: CLASSIFIER, dataset }, 400, 'INVALID_REQUEST')).message, /tag/)
    await refused('POST', '/api/tasks', { type: 'inference', prompt: 'hi', version: '1.0' }, 400, 'INVALID_REQUEST')
  })

  it('answers a status change once the task is in that state, so that what it says holds at once', async () => {
    const created = await call('POST', '/api/tasks', { type: 'training', model: CLASSIFIER, dataset, batch_size: 8, epochs: 5000, distributed: false })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    const id = created.body.id
    await inStatus(id, ['running'])
    const paused = await call('PUT', `/api/tasks/${id}/status`, { status: 'paused' })
    assert.equal(paused.status, 200, JSON.stringify(paused.body))
    assert.equal(paused.body.status, 'paused')
    assert.equal((await task(id)).status, 'paused')
    const stopped = await call('PUT', `/api/tasks/${id}/status`, { status: 'stopped' })
    assert.equal(stopped.body.status, 'stopped', JSON.stringify(stopped.body))
    // Stopped, so removable at once.
    assert.equal((await call('DELETE', `/api/tasks/${id}`)).status, 204)
  })

  it("refuses bad input in document 004's shape", async () => {
    await refused('POST', '/api/tasks', { type: 'mining' }, 400, 'INVALID_REQUEST')
    assert.match((await refused('POST', '/api/tasks', { type: 'training', dataset, url: 'http://model-server/models/model/1.0' }, 400, 'INVALID_REQUEST')).message, /never downloads/)
    assert.match((await refused('POST', '/api/tasks', { type: 'training', model: CLASSIFIER }, 400, 'INVALID_REQUEST')).message, /dataset/)
    await refused('POST', '/api/tasks', { type: 'training', dataset: 'no-such-dataset', model: CLASSIFIER }, 400, 'INVALID_REQUEST')
    // Two nodes cannot be three, nor meet what no machine has: the cluster as it is cannot take the task.
    await refused('POST', '/api/tasks', { type: 'training', dataset, model: CLASSIFIER, n_clients: 2 }, 409, 'E002')
    await refused('POST', '/api/tasks', { type: 'training', dataset, model: CLASSIFIER, requirements: { min_ram: 1e12 } }, 409, 'E002')
    await refused('PUT', '/api/tasks/task_1/status', { status: 'finished' }, 400, 'INVALID_REQUEST')
    await refused('PUT', '/api/tasks/task_999/status', { status: 'paused' }, 404, 'NOT_FOUND')
    await refused('GET', '/api/tasks/task_999', undefined, 404, 'NOT_FOUND')
    await refused('GET', '/api/tasks/nonsense', undefined, 404, 'NOT_FOUND')
    await refused('DELETE', '/api/tasks/task_999', undefined, 404, 'NOT_FOUND')
    await refused('GET', '/api/tasks?limit=5000', undefined, 400, 'INVALID_REQUEST')
    // No generation model is registered on this node.
    await refused('POST', '/api/tasks', { type: 'inference', prompt: 'Hello' }, 404, 'E003')
    const health = await fetch(`${daemon.url}/health/live`)
    assert.equal(health.status, 200)
  })
})
