import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  inferenceTaskJson, jobIdOf, matches, meanUsage, pageLinks, pageOf, progressOf, systemMetricsJson, taskFields,
  taskMetricsJson, trainingTaskJson, updatedAt, workerNodes
} from '../src/task-views.ts'
import { FAKE_NODE } from './helpers/fake-inference.ts'
import type { JobRecord, NodeView, Resources, TrainingRecord } from '@node-daemon/cluster'
import type { TaskView } from '@node-daemon/inference'

const GIB = 1024 ** 3
const CID = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const T0 = '2025-01-01T00:00:00.000Z'
const at = (seconds: number): string => new Date(Date.parse(T0) + seconds * 1000).toISOString()

function resources (cpu: number, memoryFree: number, gpus: Resources['gpus'] = []): Resources {
  return { cpu: { cores: 8, model: 'cpu', load1: 1, usage: cpu }, memory: { total: 16 * GIB, free: memoryFree * GIB }, gpus, disk: { total: 100, free: 50 }, executionProviders: ['cpu'] }
}

function node (id: string, over: Partial<NodeView> = {}): NodeView {
  return { ...FAKE_NODE, id, resources: resources(0.5, 8), ...over }
}

function inference (jobId: number, over: Partial<JobRecord> = {}): JobRecord {
  return { jobId, kind: 'inference', status: 'completed', controller: 'a', promptCID: CID, modelId: 'tiny-gpt', modelCID: CID, params: {}, worker: 'a', submittedAt: T0, startedAt: at(1), completedAt: at(3), ...over }
}

function training (jobId: number, over: Partial<JobRecord> = {}, record: Partial<TrainingRecord> = {}): JobRecord {
  return {
    jobId,
    kind: 'training',
    status: 'running',
    controller: 'a',
    promptCID: 'bafydataset',
    modelId: '',
    modelCID: 'bafymodel',
    params: { epochs: 2, batchSize: 30, learningRate: 0.1, optimizer: 'sgd', strategy: 'data_parallel', name: 'blobs' },
    submittedAt: T0,
    startedAt: at(2),
    training: {
      coordinator: 'a',
      workers: [{ id: 'a', rank: 0, status: 'training' }, { id: 'b', rank: 1, status: 'dropped', error: 'slow', drops: 1 }, { id: 'client-1', via: 'a', rank: 2, status: 'training' }],
      desired: 'run',
      progress: { step: 15, totalSteps: 40, epoch: 0, totalEpochs: 2, loss: 0.5, samplesPerSecond: 900, learningRate: 0.1 },
      checkpoints: [{ step: 10, cid: 'bafyck10', at: at(5) }],
      ...record
    },
    ...over
  }
}

describe('task views', () => {
  it('reads task ids as task_<n> or a bare number, and nothing else', () => {
    assert.equal(jobIdOf('task_12'), 12)
    assert.equal(jobIdOf('12'), 12)
    for (const bad of ['task_', 'task_1x', 'training_1', '-1', '99999999999999999999']) {
      assert.throws(() => jobIdOf(bad), { name: 'JobNotFoundError' }, bad)
    }
  })

  it('measures progress in percent with one decimal', () => {
    assert.equal(progressOf(inference(1)), 100)
    assert.equal(progressOf(inference(1, { status: 'running' })), 0)
    assert.equal(progressOf(training(2)), 37.5)
    assert.equal(progressOf(training(2, {}, { progress: { step: 1, totalSteps: 3, epoch: 0, totalEpochs: 1, loss: 1, samplesPerSecond: 1, learningRate: 1 } })), 33.3)
    assert.equal(progressOf(training(2, { status: 'requested' }, { progress: undefined })), 0)
  })

  it('dates a task by the latest time the job table recorded', () => {
    assert.equal(updatedAt(inference(1)), at(3))
    assert.equal(updatedAt(inference(1, { startedAt: undefined, completedAt: undefined })), T0)
    assert.equal(updatedAt(training(2)), at(5))
    assert.equal(updatedAt(training(2, { completedAt: at(9) })), at(9))
  })

  it("gives every task document 004's fields, and keeps document 001's view of an inference task", () => {
    assert.deepEqual(taskFields(training(2, { status: 'requested' })), { id: 'task_2', type: 'training', status: 'pending', progress: 37.5, created_at: T0, updated_at: at(5) })
    assert.equal(taskFields(training(2, { status: 'cancelled' })).status, 'cancelled')
    const view: TaskView = { taskId: 'task_1', jobId: 1, status: 'completed', model: 'tiny-gpt', prompt: 'Hi', response: 'Hello', promptCID: CID, responseCID: CID, worker: 'a', timing: { submitted: T0, started: at(1), completed: at(3), totalTime: 3 } }
    assert.deepEqual(inferenceTaskJson(inference(1), view), { ...view, id: 'task_1', type: 'inference', progress: 100, created_at: T0, updated_at: at(3) })
  })

  it('shows a training task with its metrics, config, workers and checkpoints', () => {
    const json = trainingTaskJson(training(2)) as Record<string, any>
    assert.deepEqual(Object.keys(json), ['id', 'type', 'status', 'progress', 'created_at', 'updated_at', 'taskId', 'jobId', 'metrics', 'config', 'workers', 'coordinator', 'checkpoints', 'model_id', 'error'])
    assert.deepEqual(json.metrics, { loss: 0.5, learning_rate: 0.1, samples_per_second: 900 })
    assert.deepEqual(json.config, { name: 'blobs', model: 'bafymodel', dataset: 'bafydataset', batch_size: 30, learning_rate: 0.1, epochs: 2, optimizer: 'sgd', strategy: 'data_parallel', distributed: true, world_size: 3 })
    assert.deepEqual(json.workers, [{ id: 'a', rank: 0, status: 'training' }, { id: 'b', rank: 1, status: 'dropped' }, { id: 'client-1', rank: 2, status: 'training', via: 'a' }])
    assert.equal(json.coordinator, 'a')
    assert.deepEqual(json.checkpoints, [{ step: 10, cid: 'bafyck10', at: at(5) }])
    assert.equal(json.model_id, null)
    assert.equal(json.error, null)

    const done = trainingTaskJson(training(3, { status: 'completed', modelId: 'base', completedAt: at(20) }, {
      workers: [{ id: 'a', rank: 0, status: 'training' }, { id: 'client-1', via: 'a', rank: 1, status: 'left' }],
      progress: { step: 40, totalSteps: 40, epoch: 1, totalEpochs: 2, loss: 0.1, accuracy: 0.95, samplesPerSecond: 800, learningRate: 0.05 },
      modelId: 'blobs'
    })) as Record<string, any>
    assert.equal(done.progress, 100)
    assert.equal(done.updated_at, at(20))
    assert.deepEqual(done.metrics, { loss: 0.1, accuracy: 0.95, learning_rate: 0.05, samples_per_second: 800 })
    assert.equal(done.config.model, 'base')
    // An external worker that left is no longer part of the world.
    assert.deepEqual([done.config.distributed, done.config.world_size], [false, 1])
    assert.equal(done.model_id, 'blobs')

    const fresh = trainingTaskJson(training(4, { status: 'requested', params: {} }, { progress: undefined, checkpoints: [] })) as Record<string, any>
    assert.deepEqual(fresh.metrics, { loss: null, learning_rate: null, samples_per_second: null })
    assert.deepEqual([fresh.config.name, fresh.config.batch_size, fresh.updated_at], [null, null, at(2)])
  })

  it('filters tasks by type, document 004 status and submission time', () => {
    const jobs = [inference(1), inference(2, { status: 'requested', submittedAt: at(10) }), training(3, { status: 'paused', submittedAt: at(20) })]
    const ids = (filter: Parameters<typeof matches>[1]): number[] => jobs.filter(j => matches(j, filter)).map(j => j.jobId)
    assert.deepEqual(ids({}), [1, 2, 3])
    assert.deepEqual(ids({ type: 'training' }), [3])
    assert.deepEqual(ids({ status: 'pending' }), [2])
    assert.deepEqual(ids({ status: 'paused' }), [3])
    assert.deepEqual(ids({ since: new Date(at(10)) }), [2, 3])
    assert.deepEqual(ids({ type: 'inference', since: new Date(at(10)) }), [2])
  })

  it('pages a list, with at least one page', () => {
    const items = Array.from({ length: 25 }, (_, i) => i)
    assert.deepEqual(pageOf(items, 1, 10), { items: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], total: 25, page: 1, pageCount: 3 })
    assert.deepEqual(pageOf(items, 3, 10).items, [20, 21, 22, 23, 24])
    assert.deepEqual(pageOf(items, 4, 10), { items: [], total: 25, page: 4, pageCount: 3 })
    assert.deepEqual(pageOf([], 1, 10), { items: [], total: 0, page: 1, pageCount: 1 })
  })

  it('links pages as RFC 8288 says, keeping the other parameters', () => {
    const url = new URL('http://127.0.0.1:8000/api/tasks?limit=10&page=2&status=running')
    const link = (page: number): string => `http://127.0.0.1:8000/api/tasks?limit=10&page=${page}&status=running`
    assert.equal(pageLinks(url, 2, 3), `<${link(3)}>; rel="next", <${link(1)}>; rel="prev", <${link(1)}>; rel="first", <${link(3)}>; rel="last"`)
    assert.equal(pageLinks(new URL('http://h/api/tasks'), 1, 1), '<http://h/api/tasks?page=1>; rel="first", <http://h/api/tasks?page=1>; rel="last"')
    // Past the last page, prev leads back to the last one.
    assert.equal(pageLinks(new URL('http://h/api/tasks?page=7'), 7, 2), '<http://h/api/tasks?page=2>; rel="prev", <http://h/api/tasks?page=1>; rel="first", <http://h/api/tasks?page=2>; rel="last"')
  })

  it('averages usage in percent over online nodes, GPUs over the nodes that have them', () => {
    const gpu = [{ id: 0, name: 'gpu', vram: { total: 10 * GIB, used: 4 * GIB } }]
    const nodes = [node('a'), node('b', { resources: resources(0.25, 4, gpu) }), node('c', { online: false, resources: resources(1, 0) }), node('d', { resources: undefined })]
    assert.deepEqual(meanUsage(nodes), { cpu_usage: 37.5, ram_usage: 62.5, gpu_usage: 40 })
    assert.deepEqual(meanUsage([node('a')]), { cpu_usage: 50, ram_usage: 50, gpu_usage: null })
    assert.deepEqual(meanUsage([]), { cpu_usage: null, ram_usage: null, gpu_usage: null })
  })

  it('counts clients and tasks for the system metrics', () => {
    const nodes = [node('a'), node('b', { drained: true }), node('c', { online: false })]
    const jobs = [inference(1), inference(2, { status: 'failed' }), training(3), training(4, { status: 'paused' }), training(5, { status: 'stopped' }), training(6, { status: 'requested' })]
    assert.deepEqual(systemMetricsJson(nodes, jobs), {
      clients: { total: 3, active: 1 },
      tasks: { total: 6, pending: 1, running: 1, paused: 1, completed: 1, failed: 1, stopped: 1, cancelled: 0 },
      resources: { cpu_usage: 50, ram_usage: 50, gpu_usage: null }
    })
  })

  it("gives a task's metrics with the usage of its worker nodes", () => {
    assert.deepEqual(workerNodes(training(2)), ['a', 'b'])
    assert.deepEqual(workerNodes(inference(1)), ['a'])
    assert.deepEqual(workerNodes(inference(1, { worker: undefined, status: 'requested' })), [])
    const nodes = [node('a', { resources: resources(0.2, 8) }), node('b', { resources: resources(0.4, 8) }), node('z', { resources: resources(1, 0) })]
    assert.deepEqual(taskMetricsJson(training(2), nodes), {
      progress: 37.5,
      metrics: { loss: 0.5, learning_rate: 0.1, samples_per_second: 900 },
      resources: { cpu_usage: 30, ram_usage: 50, gpu_usage: null }
    })
    assert.deepEqual(taskMetricsJson(inference(1, { metrics: { evalTokens: 8 } }), nodes), {
      progress: 100,
      metrics: { evalTokens: 8 },
      resources: { cpu_usage: 20, ram_usage: 50, gpu_usage: null }
    })
    assert.deepEqual((taskMetricsJson(inference(1, { worker: undefined }), nodes) as { resources: object }).resources, { cpu_usage: null, ram_usage: null, gpu_usage: null })
  })
})
