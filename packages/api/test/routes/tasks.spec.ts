import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { DEFAULT_GENERATE_MODEL } from '../../src/inference.ts'
import { startServer } from '../helpers/fake-inference.ts'
import type { TestServer } from '../helpers/fake-inference.ts'

describe('documents 001 and 004: tasks, models, events and metrics', () => {
  let server: TestServer

  const submit = async (body: unknown): Promise<Response> =>
    await fetch(`${server.url}/api/tasks/submit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  /** Asserts document 001's error shape and returns its code. */
  const errorCode = async (res: Response, status: number): Promise<string> => {
    assert.equal(res.status, status)
    const { error } = await res.json()
    assert.deepEqual(Object.keys(error).sort(), ['code', 'details', 'message', 'timestamp'])
    assert.ok(!Number.isNaN(Date.parse(error.timestamp)))
    return error.code
  }

  before(async () => { server = await startServer() })
  after(async () => { await server.app.close() })

  it('submits a task, sends its events on /api/ws, and shows it completed', async () => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/api/ws`)
    await once(ws, 'open')
    const messages: any[] = []
    const twoEvents = new Promise<void>(resolve => {
      ws.on('message', (data) => {
        messages.push(JSON.parse(data.toString()))
        if (messages.length === 2) resolve()
      })
    })

    const res = await submit({ prompt: 'What is AI?', modelId: 'tiny-gpt', maxTokens: 100, temperature: 0.7 })
    assert.equal(res.status, 200)
    const submitted = await res.json()
    // Nothing measured yet: no figure, and the answer says so.
    assert.deepEqual(submitted, { taskId: 'task_1', jobId: submitted.jobId, status: 'submitted', estimatedTime: null, estimate: { worker: 'peer-fake', basis: 'no task of this model has completed on this worker yet', tasks: 0 }, promptCID: 'bafyprompt1', model: 'tiny-gpt:latest' })
    assert.deepEqual(server.inference.calls.at(-1)?.args[0], { prompt: 'What is AI?', model: 'tiny-gpt', maxTokens: 100, temperature: 0.7 })

    await twoEvents
    ws.close()
    assert.deepEqual(messages.map(m => m.type), ['task_submitted', 'task_completed'])
    assert.deepEqual(messages[0].data, { taskId: 'task_1', jobId: submitted.jobId, prompt: 'What is AI?', modelId: 'tiny-gpt:latest' })
    assert.equal(messages[1].data.response, 'Echo: What is AI?')
    assert.equal(messages[1].data.worker, 'peer-fake')
    assert.ok(messages.every(m => !Number.isNaN(Date.parse(m.timestamp))))

    const task = await (await fetch(`${server.url}/api/tasks/task_1`)).json()
    assert.equal(task.status, 'completed')
    assert.equal(task.response, 'Echo: What is AI?')
    assert.equal(task.responseCID, 'bafyresponse')
    assert.equal(task.promptCID, 'bafyprompt1')
    assert.equal(task.worker, 'peer-fake')
    assert.deepEqual(Object.keys(task.timing), ['submitted', 'started', 'completed', 'totalTime'])
  })

  it(`submits with ${DEFAULT_GENERATE_MODEL} when no model is named`, async () => {
    assert.equal((await submit({ prompt: 'hello' })).status, 200)
    assert.equal((server.inference.calls.at(-1)?.args[0] as { model: string }).model, DEFAULT_GENERATE_MODEL)
  })

  it("lists tasks a page at a time with document 001's and 004's fields, and the pagination headers", async () => {
    for (let i = 0; i < 10; i++) assert.equal((await submit({ prompt: `question ${i}` })).status, 200)
    await new Promise(resolve => setImmediate(resolve))
    const first = await fetch(`${server.url}/api/tasks?status=completed`)
    assert.equal(first.status, 200)
    const body = await first.json()
    assert.equal(body.total, 12)
    assert.equal(body.page, 1)
    assert.equal(body.tasks.length, 10)
    assert.deepEqual(body.tasks.map((t: any) => t.jobId), [12, 11, 10, 9, 8, 7, 6, 5, 4, 3])
    assert.equal(first.headers.get('x-total-count'), '12')
    assert.equal(first.headers.get('x-page-count'), '2')
    const base = `${server.url}/api/tasks?status=completed`
    assert.equal(first.headers.get('link'), `<${base}&page=2>; rel="next", <${base}&page=1>; rel="first", <${base}&page=2>; rel="last"`)

    const task = body.tasks[0]
    assert.equal(task.id, 'task_12')
    assert.equal(task.taskId, 'task_12')
    assert.equal(task.type, 'inference')
    assert.equal(task.status, 'completed')
    assert.equal(task.progress, 100)
    assert.equal(task.prompt, 'question 9')
    assert.equal(task.response, 'Echo: question 9')
    assert.equal(task.responseCID, 'bafyresponse')
    assert.equal(task.created_at, task.timing.submitted)
    assert.equal(task.updated_at, task.timing.completed)

    const second = await fetch(`${server.url}/api/tasks?limit=10&page=2&since=2020-01-01T00:00:00Z`)
    const page2 = await second.json()
    assert.deepEqual(page2.tasks.map((t: any) => t.id), ['task_2', 'task_1'])
    assert.equal(page2.page, 2)
    // The other parameters stay as they were, page in its place.
    const at = (n: number): string => `${server.url}/api/tasks?limit=10&page=${n}&since=2020-01-01T00%3A00%3A00Z`
    assert.equal(second.headers.get('link'), `<${at(1)}>; rel="prev", <${at(1)}>; rel="first", <${at(2)}>; rel="last"`)

    const none = async (query: string): Promise<void> => {
      const res = await fetch(`${server.url}/api/tasks?${query}`)
      assert.deepEqual(await res.json(), { tasks: [], total: 0, page: 1 })
      assert.equal(res.headers.get('x-page-count'), '1')
    }
    await none('type=training')
    await none('status=paused')
    await none(`since=${new Date(Date.now() + 60_000).toISOString()}`)
    const late = await (await fetch(`${server.url}/api/tasks?page=9`)).json()
    assert.deepEqual([late.tasks.length, late.total, late.page], [0, 12, 9])

    for (const bad of ['status=lost', 'since=yesterday', 'page=0', 'limit=0', 'limit=1001', 'type=mining']) {
      assert.equal(await errorCode(await fetch(`${server.url}/api/tasks?${bad}`), 400), 'INVALID_REQUEST', bad)
    }
  })

  it('shows one task by task_<n> or its bare number', async () => {
    const byId = await (await fetch(`${server.url}/api/tasks/task_3`)).json()
    const byNumber = await (await fetch(`${server.url}/api/tasks/3`)).json()
    assert.deepEqual(byNumber, byId)
    assert.deepEqual([byId.id, byId.type, byId.status, byId.progress, byId.prompt], ['task_3', 'inference', 'completed', 100, 'question 0'])
    assert.equal(await errorCode(await fetch(`${server.url}/api/tasks/task_x`), 404), 'NOT_FOUND')
  })

  it("creates an inference task with document 004's POST /api/tasks, and refuses what does not fit", async () => {
    const create = async (body: unknown): Promise<Response> =>
      await fetch(`${server.url}/api/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const res = await create({ type: 'inference', prompt: 'Why?', model: 'tiny-gpt', maxTokens: 5 })
    assert.equal(res.status, 201)
    const created = await res.json()
    assert.deepEqual(created, { id: 'task_13', taskId: 'task_13', jobId: 13, type: 'inference', status: 'pending', created_at: created.created_at })
    assert.ok(!Number.isNaN(Date.parse(created.created_at)))
    assert.deepEqual(server.inference.calls.at(-1)?.args[0], { prompt: 'Why?', model: 'tiny-gpt', maxTokens: 5 })
    await new Promise(resolve => setImmediate(resolve))

    const refused = async (body: unknown, status: number, code: string, message?: RegExp): Promise<void> => {
      const res = await create(body)
      const text = await res.clone().text()
      assert.equal(await errorCode(res, status), code, text)
      if (message != null) assert.match(JSON.parse(text).error.message, message)
    }
    await refused({ type: 'mining' }, 400, 'INVALID_REQUEST')
    await refused({ prompt: 'no type' }, 400, 'INVALID_REQUEST')
    await refused({ type: 'inference' }, 400, 'INVALID_REQUEST', /needs a prompt/)
    await refused({ type: 'inference', prompt: 'x', epochs: 3 }, 400, 'INVALID_REQUEST', /epochs is not a field of inference tasks/)
    await refused({ type: 'inference', prompt: 'x', model: { model_type: 'gpt2' } }, 400, 'INVALID_REQUEST')
    await refused({ type: 'inference', prompt: 'x', model: 'nope' }, 404, 'E003')
    await refused({ type: 'training', prompt: 'x', dataset: 'd' }, 400, 'INVALID_REQUEST', /prompt is not a field of training tasks/)
    await refused({ type: 'training' }, 400, 'INVALID_REQUEST', /needs a dataset/)
    await refused({ type: 'training', dataset: 'd', url: 'http://model-server/models/model/1.0' }, 400, 'INVALID_REQUEST', /never downloads/)
    await refused({ type: 'training', dataset: 'd', url: 'ipfs://bafy', model: 'tiny-gpt' }, 400, 'INVALID_REQUEST', /not both/)
    await refused({ type: 'training', dataset: 'd', distributed: false, n_clients: 3 }, 400, 'INVALID_REQUEST', /one node/)
    await refused({ type: 'training', dataset: 'd', version: '1.0' }, 400, 'INVALID_REQUEST', /version is the tag of the trained model's name: give name too/)
    await refused({ type: 'training', dataset: 'd', requirements: { min_ram: -1 } }, 400, 'INVALID_REQUEST')
  })

  it('refuses to pause or stop an inference task, and removes a finished one', async () => {
    const put = async (taskId: string, body: unknown): Promise<Response> =>
      await fetch(`${server.url}/api/tasks/${taskId}/status`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const conflict = await put('task_13', { status: 'paused', reason: 'Resource constraints' })
    const text = await conflict.clone().text()
    assert.equal(await errorCode(conflict, 409), 'CONFLICT')
    assert.match(JSON.parse(text).error.message, /inference task, which cannot be paused/)
    assert.equal(await errorCode(await put('task_13', { status: 'finished' }), 400), 'INVALID_REQUEST')
    assert.equal(await errorCode(await put('task_99', { status: 'stopped' }), 404), 'NOT_FOUND')

    const removed = await fetch(`${server.url}/api/tasks/task_13`, { method: 'DELETE' })
    assert.equal(removed.status, 204)
    assert.equal(await errorCode(await fetch(`${server.url}/api/tasks/task_13`), 404), 'NOT_FOUND')
    assert.equal(await errorCode(await fetch(`${server.url}/api/tasks/task_13`, { method: 'DELETE' }), 404), 'NOT_FOUND')
  })

  it("answers document 004's system and task metrics", async () => {
    const system = await (await fetch(`${server.url}/api/metrics`)).json()
    assert.deepEqual(system.clients, { total: 1, active: 1 })
    assert.deepEqual(system.tasks, { total: 12, pending: 0, running: 0, paused: 0, completed: 12, failed: 0, stopped: 0, cancelled: 0 })
    assert.deepEqual(system.resources, { cpu_usage: 25, ram_usage: 75, gpu_usage: null })
    assert.ok(!Number.isNaN(Date.parse(system.timestamp)))

    const task = await (await fetch(`${server.url}/api/metrics/tasks/task_1`)).json()
    assert.equal(task.progress, 100)
    assert.deepEqual(task.metrics, { promptTokens: 3, evalTokens: 4 })
    assert.deepEqual(task.resources, { cpu_usage: 25, ram_usage: 75, gpu_usage: null })
    assert.ok(!Number.isNaN(Date.parse(task.timestamp)))
    assert.equal(await errorCode(await fetch(`${server.url}/api/metrics/tasks/task_99`), 404), 'NOT_FOUND')
  })

  it("answers errors in document 001's shape with its codes", async () => {
    assert.equal(await errorCode(await submit({ prompt: 'hi', modelId: 'nope' }), 404), 'E003')
    assert.equal(await errorCode(await submit({ prompt: '' }), 400), 'E005')
    assert.equal(await errorCode(await submit({ prompt: '   ' }), 400), 'E005')
    assert.equal(await errorCode(await submit({ modelId: 'tiny-gpt' }), 400), 'E005')
    const malformed = await fetch(`${server.url}/api/tasks/submit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })
    assert.equal(await errorCode(malformed, 400), 'E005')
    const missing = await fetch(`${server.url}/api/tasks/task_999`)
    assert.equal(await errorCode(missing, 404), 'NOT_FOUND')
  })

  it("answers document 004's routes with its form, details an object, and document 001's submission with a message in details", async () => {
    const detailsOf = async (res: Response): Promise<unknown> => ((await res.json()) as { error: { details: unknown } }).error.details
    const json = { method: 'POST', headers: { 'content-type': 'application/json' } }
    assert.deepEqual(await detailsOf(await fetch(`${server.url}/api/tasks/task_999`)), { type: 'JobNotFoundError' })
    assert.deepEqual(await detailsOf(await fetch(`${server.url}/api/metrics/tasks/task_999`)), { type: 'JobNotFoundError' })
    assert.deepEqual(await detailsOf(await fetch(`${server.url}/api/tasks?limit=5000`)), { type: 'ValidationError', field: 'limit', reason: 'must be <= 1000' })
    const created = await fetch(`${server.url}/api/tasks`, { ...json, body: JSON.stringify({ type: 'inference', prompt: 'x', model: 'nope' }) })
    assert.equal(created.status, 404)
    const { error } = await created.json()
    assert.equal(error.code, 'E003', 'document 001 numbers a missing model')
    assert.deepEqual(error.details, { type: 'ModelNotFoundError' })
    assert.equal(typeof await detailsOf(await submit({ prompt: 'hi', modelId: 'nope' })), 'string')
  })

  it("lists models in document 001's shape", async () => {
    const { models } = await (await fetch(`${server.url}/api/models`)).json()
    assert.deepEqual(models[0], { id: 'tiny-gpt:latest', name: 'tiny-gpt:latest', description: 'fake causal-lm', cid: 'bafytinygpt', active: true, timestamp: '2025-01-01T00:00:00.000Z' })
  })

  it('uploads a model directory as multipart, files named by their paths', async () => {
    const form = new FormData()
    form.append('modelId', 'custom-model')
    form.append('name', 'My Custom Model')
    form.append('description', 'Fine-tuned')
    form.append('dtype', 'fp16')
    form.append('file', new Blob(['{"model_type":"gpt2"}']), 'config.json')
    form.append('file', new Blob([new Uint8Array(300)]), encodeURIComponent('onnx/model.onnx'))
    const res = await fetch(`${server.url}/api/models/upload`, { method: 'POST', body: form })
    assert.equal(res.status, 201)
    const body = await res.json()
    assert.equal(body.success, true)
    assert.equal(body.model.id, 'custom-model')
    assert.equal(body.model.description, 'Fine-tuned')
    assert.deepEqual(server.inference.imported, [{ path: 'config.json', size: 21 }, { path: 'onnx/model.onnx', size: 300 }])
    assert.equal((server.inference.calls.findLast(c => c.method === 'import')?.args[0] as { dtype?: string }).dtype, 'fp16')

    const late = new FormData()
    late.append('file', new Blob(['{}']), 'config.json')
    late.append('modelId', 'late')
    assert.equal(await errorCode(await fetch(`${server.url}/api/models/upload`, { method: 'POST', body: late }), 400), 'INVALID_REQUEST')
    const empty = new FormData()
    empty.append('modelId', 'empty')
    assert.equal(await errorCode(await fetch(`${server.url}/api/models/upload`, { method: 'POST', body: empty }), 400), 'INVALID_REQUEST')
  })
})
