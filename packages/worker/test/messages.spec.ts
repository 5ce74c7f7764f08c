import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SPEC_DEFAULTS, trainingSpec } from '@node-daemon/training'
import { jobIdOfTask, taskIdOf } from '@node-daemon/cluster'
import { noticeMessage, parseClientMessage } from '../src/messages.ts'

describe('document 004 worker messages', () => {
  it('reads the four client messages and keeps only their fields', () => {
    assert.deepEqual(parseClientMessage('{"type":"task_request","client_id":"c","timestamp":"2024-11-04T12:00:00Z"}'), { type: 'task_request' })
    assert.deepEqual(parseClientMessage(JSON.stringify({ type: 'heartbeat', client_id: 'c', system_info: { cpu_usage: 45.2, ram_usage: 60.5 } })),
      { type: 'heartbeat', system_info: { cpu_usage: 45.2, ram_usage: 60.5 } })
    assert.deepEqual(parseClientMessage(JSON.stringify({ type: 'task_progress', task_id: 'task_3', progress: 45.5, metrics: { loss: 0.0023, accuracy: 0.982 } })),
      { type: 'task_progress', task_id: 'task_3', progress: 45.5, metrics: { loss: 0.0023, accuracy: 0.982 } })
    assert.deepEqual(parseClientMessage(JSON.stringify({ type: 'task_result', task_id: 'task_3', status: 'completed', checkpoint_path: '/ipfs/bafy' })),
      { type: 'task_result', task_id: 'task_3', status: 'completed', checkpoint_path: '/ipfs/bafy' })
  })

  it('names what is wrong with a bad message', () => {
    const bad: Array<[string, RegExp]> = [
      ['nope', /JSON object/],
      ['[1]', /JSON object/],
      ['{"type":"hello"}', /unknown message type "hello"/],
      ['{"type":"task_progress","task_id":"task_1","progress":101}', /progress/],
      ['{"type":"task_progress","progress":1}', /task_id/],
      ['{"type":"heartbeat","system_info":{"cpu_usage":"high"}}', /system_info/],
      ['{"type":"task_result","task_id":"task_1"}', /status/]
    ]
    for (const [text, message] of bad) assert.throws(() => parseClientMessage(text), { name: 'InvalidWorkerMessageError', message }, text)
  })

  it('words the node\'s notices as document 004 does', () => {
    const spec = trainingSpec({ batchSize: 16, epochs: 3, name: 'blobs' })
    const task = noticeMessage({ type: 'task', task: { jobId: 7, model: 'mlp', modelCID: 'bafymodel', datasetCID: 'bafydata', spec, rank: 2, worldSize: 3 } })
    assert.equal(task.type, 'task')
    assert.deepEqual(task.type === 'task' && task.data, {
      id: 'task_7',
      type: 'training',
      config: { name: 'blobs', batch_size: 16, learning_rate: SPEC_DEFAULTS.learningRate, epochs: 3, distributed: true, rank: 2, world_size: 3, optimizer: 'adamw', model_cid: 'bafymodel', dataset_cid: 'bafydata' },
      requirements: {}
    })
    const pause = noticeMessage({ type: 'control', jobId: 7, action: 'pause' })
    assert.deepEqual({ ...pause, timestamp: undefined }, { type: 'control', action: 'pause', task_id: 'task_7', timestamp: undefined })
    const end = noticeMessage({ type: 'end', jobId: 7, status: 'completed', checkpoint: 'bafyck', modelId: 'blobs' })
    assert.deepEqual({ ...end, timestamp: undefined }, { type: 'control', action: 'stop', task_id: 'task_7', status: 'completed', checkpoint_path: '/ipfs/bafyck', model_id: 'blobs', timestamp: undefined })
    assert.equal(jobIdOfTask(taskIdOf(12)), 12)
    assert.equal(jobIdOfTask('training_12'), undefined)
  })
})
