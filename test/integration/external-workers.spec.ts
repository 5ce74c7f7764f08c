/**
 * External training workers (document 004's WebSocket) that stop answering,
 * on one daemon: a worker whose process hangs is let go within the node
 * timeout and the job trains on without it; pause and stop take effect
 * within a step while a worker holds the steps it was sent without ever
 * answering; and a worker's progress and results are taken for the tasks it
 * was given only.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import { CLASSIFIER, blobs, workerSocket } from '../helpers/training.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { WorkerSocket } from '../helpers/training.ts'

/** A few seconds to notice a worker gone, as a cluster notices a node. */
const TIMING = { heartbeatMs: 200, nodeTimeoutMs: 2000 }

describe('external workers that stop answering', () => {
  let daemon: TestDaemon
  let dataset: string
  const sockets: WorkerSocket[] = []
  /** The worker of the second test, which the third asks again. */
  let mute: WorkerSocket

  const call = async (method: string, path: string, body?: object): Promise<{ status: number, body: any }> => {
    const res = await fetch(`${daemon.url}${path}`, { method, signal: AbortSignal.timeout(30_000), ...(body == null ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) })
    return { status: res.status, body: await res.json() }
  }
  const task = async (id: string): Promise<any> => (await call('GET', `/api/tasks/${id}`)).body
  /** A worker that asked for work and was given the task and sent a step. */
  const working = async (id: string): Promise<WorkerSocket> => {
    const socket = await workerSocket(`${daemon.url.replace('http', 'ws')}/api/workers/ws`, { 'Client-ID': id })
    sockets.push(socket)
    socket.ws.send(JSON.stringify({ type: 'task_request' }))
    return socket
  }
  const submit = async (epochs: number): Promise<string> => {
    const created = await call('POST', '/api/tasks', { type: 'training', model: CLASSIFIER, dataset, batch_size: 30, learning_rate: 0.1, epochs, optimizer: 'sgd', distributed: false })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    return created.body.id
  }
  const ended = async (id: string, timeoutMs = 60_000): Promise<any> => waitFor(`${id} to end`, async () => {
    const t = await task(id)
    return ['completed', 'stopped', 'failed'].includes(t.status) ? t : undefined
  }, timeoutMs)

  before(async () => {
    daemon = await startTestDaemon({ cluster: TIMING })
    const form = new FormData()
    form.append('file', new Blob([blobs(240, 1) as Uint8Array<ArrayBuffer>]), 'blobs')
    const res = await fetch(`${daemon.url}/api/v0/ai/dataset/add`, { method: 'POST', body: form })
    dataset = (await res.json() as { cid: string }).cid
  })
  after(async () => {
    for (const s of sockets) s.ws.terminate()
    await daemon?.cleanup()
  })

  it('lets go of a worker that hangs, and the job trains on without it', async () => {
    const hung = await working('hung')
    const id = await submit(3)
    await waitFor('the worker to be sent a step', async () => hung.steps.length > 0, 60_000)
    // Its process stops: it reads nothing more, pings included, and its socket stays open.
    hung.ws.pause()
    const started = Date.now()
    const done = await ended(id)
    assert.equal(done.status, 'completed', done.error)
    assert.deepEqual(done.workers.find((w: any) => w.id === 'hung')?.status, 'left')
    assert.ok(Date.now() - started < 30_000, `the job waited ${Date.now() - started} ms for a worker that hung`)
  })

  it('pauses and stops within a step while a worker holds its steps unanswered', async () => {
    mute = await working('mute')
    const id = await submit(400)
    await waitFor('the worker to be sent a step', async () => mute.steps.length > 0, 60_000)
    // It answers pings, and never a step: the coordinator's round waits on it.
    const paused = await call('PUT', `/api/tasks/${id}/status`, { status: 'paused' })
    assert.equal(paused.status, 200, JSON.stringify(paused.body))
    await waitFor('the task to pause', async () => (await task(id)).status === 'paused', 10_000)
    assert.ok(mute.messages.some(m => m.type === 'control' && m.action === 'pause'))

    // Back from the pause's checkpoint, it holds the next round's step too.
    const sent = mute.steps.length
    assert.equal((await call('PUT', `/api/tasks/${id}/status`, { status: 'resumed' })).status, 200)
    await waitFor('the worker to be sent the step after the pause', async () => mute.steps.length > sent, 30_000)
    assert.equal((await call('PUT', `/api/tasks/${id}/status`, { status: 'stopped' })).status, 200)
    const stopped = await ended(id, 10_000)
    assert.equal(stopped.status, 'stopped')
    assert.ok(stopped.progress < 100)
  })

  it('takes progress and results of a task the worker was given, and of no other', async () => {
    const given = mute.messages.find(m => m.type === 'task').data.id
    const answers = mute.messages.length
    mute.ws.send(JSON.stringify({ type: 'task_progress', task_id: given, progress: 10, metrics: { loss: 1 } }))
    mute.ws.send(JSON.stringify({ type: 'task_result', task_id: given, status: 'stopped' }))
    mute.ws.send(JSON.stringify({ type: 'task_result', task_id: 'task_999', status: 'completed' }))
    mute.ws.send(JSON.stringify({ type: 'task_progress', task_id: 'not-a-task', progress: 10 }))
    await waitFor('four answers', async () => mute.messages.length >= answers + 4, 10_000)
    assert.deepEqual(mute.messages.slice(answers).map(m => [m.type, m.task_id ?? m.error.code]), [
      ['task_progress_ack', given],
      ['task_result_ack', given],
      ['error', 'NOT_FOUND'],
      ['error', 'NOT_FOUND']
    ])
    assert.equal(mute.messages.at(-1).error.message, 'task not-a-task was never given to worker mute')
  })
})
