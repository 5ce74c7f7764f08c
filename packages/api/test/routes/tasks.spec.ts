import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { DEFAULT_GENERATE_MODEL } from '../../src/inference.ts'
import { startServer } from '../helpers/fake-inference.ts'
import type { TestServer } from '../helpers/fake-inference.ts'

describe('document 001: tasks, models and events', () => {
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
    assert.deepEqual(submitted, { taskId: 'task_1', jobId: submitted.jobId, status: 'submitted', estimatedTime: null, promptCID: 'bafyprompt1', model: 'tiny-gpt:latest' })
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

  it('lists tasks with limit (10 by default), status and since', async () => {
    const all = await (await fetch(`${server.url}/api/tasks`)).json()
    assert.ok(Array.isArray(all.tasks))
    assert.equal((server.inference.calls.at(-1)?.args[0] as { limit: number }).limit, 10)
    const one = await (await fetch(`${server.url}/api/tasks?limit=1&status=completed&since=2020-01-01T00:00:00Z`)).json()
    assert.equal(one.tasks.length, 1)
    assert.deepEqual(server.inference.calls.at(-1)?.args[0], { limit: 1, status: 'completed', since: new Date('2020-01-01T00:00:00Z') })
    assert.equal(await errorCode(await fetch(`${server.url}/api/tasks?status=lost`), 400), 'INVALID_REQUEST')
    assert.equal(await errorCode(await fetch(`${server.url}/api/tasks?since=yesterday`), 400), 'INVALID_REQUEST')
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

  it("lists models in document 001's shape", async () => {
    const { models } = await (await fetch(`${server.url}/api/models`)).json()
    assert.deepEqual(models[0], { id: 'tiny-gpt:latest', name: 'tiny-gpt:latest', description: 'fake causal-lm', cid: 'bafytinygpt', active: true, timestamp: '2025-01-01T00:00:00.000Z' })
  })

  it('uploads a model directory as multipart, files named by their paths', async () => {
    const form = new FormData()
    form.append('modelId', 'custom-model')
    form.append('name', 'My Custom Model')
    form.append('description', 'Fine-tuned')
    form.append('file', new Blob(['{"model_type":"gpt2"}']), 'config.json')
    form.append('file', new Blob([new Uint8Array(300)]), encodeURIComponent('onnx/model.onnx'))
    const res = await fetch(`${server.url}/api/models/upload`, { method: 'POST', body: form })
    assert.equal(res.status, 201)
    const body = await res.json()
    assert.equal(body.success, true)
    assert.equal(body.model.id, 'custom-model')
    assert.equal(body.model.description, 'Fine-tuned')
    assert.deepEqual(server.inference.imported, [{ path: 'config.json', size: 21 }, { path: 'onnx/model.onnx', size: 300 }])

    const late = new FormData()
    late.append('file', new Blob(['{}']), 'config.json')
    late.append('modelId', 'late')
    assert.equal(await errorCode(await fetch(`${server.url}/api/models/upload`, { method: 'POST', body: late }), 400), 'INVALID_REQUEST')
    const empty = new FormData()
    empty.append('modelId', 'empty')
    assert.equal(await errorCode(await fetch(`${server.url}/api/models/upload`, { method: 'POST', body: empty }), 400), 'INVALID_REQUEST')
  })
})
