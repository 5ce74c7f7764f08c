/**
 * Data-parallel training across daemons, each its own process. On three: a
 * classifier and a small GPT trained on 2 and 3 nodes end with the weights
 * of training on one node with the same global batch and seed; the loss
 * falls; the trained model downloads as one ONNX file that onnxruntime runs,
 * and the language model is served by the inference API at once; a worker
 * killed mid-job is dropped while the job goes on to completion; and when
 * the coordinator is killed, a worker takes the job over from the last
 * checkpoint and completes it.
 *
 * On two, document 004's external workers: a worker in this process
 * connected to one node, and a `node-daemon worker` process connected to the
 * other, join a job the first node coordinates and compute their ranks'
 * slices; the weights equal a one-node run's. A worker that disconnects
 * mid-job is recorded as gone and the job goes on. Bad clients get the
 * documented close codes and error messages.
 *
 * One file, so that the two clusters train one after the other: side by side
 * on two shared cores, their rounds starve each other past the lag deadline.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import * as ort from 'onnxruntime-node'
import { encodeTextDataset } from '@node-daemon/training'
import { readCorpus } from '@node-daemon/models'
import { createWorker } from '@node-daemon/worker'
import { tinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import { FAST, ProcessCluster, agreedLeader, call, waitFor } from '../helpers/cluster.ts'
import { CLASSIFIER, FEATURES, addDataset, blobs, finished, maxDifference, train, weightsOf, workerSocket } from '../helpers/training.ts'
import type { TinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import type { Member } from '../helpers/cluster.ts'
import type { FarmWorker, TaskOutcome } from '@node-daemon/worker'
import type { ChildProcess } from 'node:child_process'

const ROOT = join(import.meta.dirname, '..', '..')

/** `node-daemon worker` as a user runs it; its stderr says what it did. */
function spawnWorker (api: string, id: string): { child: ChildProcess, output: () => string } {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'node-daemon.ts'), 'worker', '--api', api, '--id', id], { stdio: ['ignore', 'ignore', 'pipe'] })
  let output = ''
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  return { child, output: () => output }
}

describe('external training workers (document 004)', () => {
  const cluster = new ProcessCluster(FAST)
  let a: Member
  let b: Member
  let dataset: string
  const workers: FarmWorker[] = []
  const processes: ChildProcess[] = []

  before(async () => {
    a = await cluster.add()
    b = await cluster.add()
    await agreedLeader(cluster.members)
    dataset = await addDataset(a, 'blobs', blobs(240, 1))
  })

  after(async () => {
    await Promise.all(workers.map(async w => w.stop()))
    for (const p of processes) p.kill('SIGKILL')
    await cluster.stop()
  })

  it('takes workers in through either node, and they change nothing but the speed', async () => {
    // SGD, as in the cluster test: AdamW would turn float noise into whole steps.
    const base = { dataset, model: CLASSIFIER, optimizer: 'sgd', epochs: 10, batch_size: 30, learning_rate: 0.1, seed: 5, checkpoint_every: 4 }
    const alone = await finished(a, await train(a, { ...base, name: 'alone' }))
    assert.equal(alone.status, 'completed')

    const relayed = createWorker({ log: logger('node-daemon:test-worker') }, { api: b.api, clientId: 'relayed', heartbeatMs: 500, progressMs: 200 })
    workers.push(relayed)
    const results: TaskOutcome[] = []
    relayed.addEventListener('result', (e) => { results.push(e.detail) })
    await relayed.start()
    const cli = spawnWorker(a.api, 'cli-worker')
    processes.push(cli.child)
    await waitFor('the worker process to connect', async () => cli.output().includes('waiting for a task'), 60_000)

    const session = await train(a, { ...base, name: 'with-workers' })
    const done = await finished(a, session)
    assert.equal(done.status, 'completed')
    const external = done.nodes.filter((n: any) => n.external === true)
    assert.deepEqual(external.map((n: any) => [n.id, n.via]).sort(), [['cli-worker', a.peerId], ['relayed', b.peerId]])
    assert.deepEqual(external.map((n: any) => n.status), ['completed', 'completed'], JSON.stringify(done.nodes))
    assert.deepEqual(done.nodes.map((n: any) => n.rank), [0, 1, 2])

    // Each computed steps, and was told the job ended with its checkpoint.
    await waitFor('the relayed worker to report its result', async () => results.length > 0, 30_000)
    assert.equal(results[0].task, session.replace('training_', 'task_'))
    assert.equal(results[0].status, 'completed')
    assert.ok(results[0].steps > 10, `the relayed worker computed ${results[0].steps} steps`)
    assert.equal(results[0].checkpointPath, `/ipfs/${done.checkpoint_cid as string}`)
    await waitFor('the worker process to report its result', async () => /task task_\d+ completed after (\d+) steps/.exec(cli.output()), 30_000)
    const cliSteps = Number(/completed after (\d+) steps/.exec(cli.output())?.[1])
    assert.ok(cliSteps > 10, cli.output())

    const difference = maxDifference(await weightsOf(a, alone.checkpoint_cid), await weightsOf(a, done.checkpoint_cid))
    assert.ok(difference < 2e-3, `the weights differ by ${difference}`)

    // Document 004's clients: each node lists the workers connected to it, with the job they worked on.
    const clients = await call(b, '/api/clients')
    const listed = clients.body.clients.filter((c: any) => c.external === true)
    assert.deepEqual(listed.map((c: any) => [c.id, c.via]), [['relayed', b.peerId]])
    assert.equal(clients.body.total, 3)
    const client = await call(b, '/api/clients/relayed')
    assert.equal(client.status, 200, JSON.stringify(client.body))
    // Document 004's form names a job by its task id.
    assert.ok(client.body.tasks.some((t: any) => t.id === session.replace('training_', 'task_')), JSON.stringify(client.body.tasks))
    assert.equal((await call(a, '/api/clients/relayed')).status, 404)
  })

  it('goes on without a worker that disconnects, and records that it left', async () => {
    const session = await train(a, { dataset, model: CLASSIFIER, optimizer: 'sgd', epochs: 60, batch_size: 30, learning_rate: 0.05, seed: 6, checkpoint_every: 4 })
    const inside = await waitFor('the workers to be taken in', async () => {
      const { body } = await call(a, `/api/v1/training/status?session_id=${session}`)
      return body.nodes.filter((n: any) => n.external === true && n.status === 'training').length === 2 ? body : undefined
    }, 120_000)
    assert.ok(inside.progress.step < 480, 'the job is still running')
    await workers[0].stop()
    const left = await waitFor('the disconnected worker to be recorded', async () => {
      const { body } = await call(a, `/api/v1/training/status?session_id=${session}`)
      return body.nodes.find((n: any) => n.id === 'relayed')?.status === 'left' ? body : undefined
    }, 60_000)
    assert.equal(left.nodes.find((n: any) => n.id === 'cli-worker').status, 'training')
    const done = await finished(a, session)
    assert.equal(done.status, 'completed')
    assert.equal(done.progress.step, 480)
    assert.equal(done.nodes.find((n: any) => n.id === 'relayed').status, 'left')
    assert.ok(done.progress.accuracy > 0.9, `accuracy ${done.progress.accuracy}`)
  })

  it('refuses clients without an id or with one in use, and answers bad messages and reports of tasks it was not given with an error', async () => {
    const url = `${a.api.replace('http', 'ws')}/api/workers/ws`
    const anonymous = await workerSocket(url)
    assert.equal((await anonymous.closed)[0], 1008)

    const duplicate = await workerSocket(url, { 'Client-ID': 'cli-worker' })
    const [code, reason] = await duplicate.closed
    assert.equal(code, 1008)
    assert.match(reason, /already connected/)

    const client = await workerSocket(`${url}?client_id=raw`)
    client.ws.send('not json')
    client.ws.send(JSON.stringify({ type: 'task_progress', task_id: 'task_1', progress: 140 }))
    client.ws.send(JSON.stringify({ type: 'heartbeat', client_id: 'raw', system_info: { cpu_usage: 12.5 } }))
    client.ws.send(JSON.stringify({ type: 'task_result', task_id: 'task_1', status: 'completed', metrics: { final_loss: 0.1 } }))
    client.ws.send(JSON.stringify({ type: 'task_progress', task_id: 'task_1', progress: 40 }))
    await waitFor('five answers', async () => client.messages.length >= 5, 10_000)
    assert.deepEqual(client.messages.map(m => m.type), ['error', 'error', 'heartbeat_ack', 'error', 'error'])
    assert.equal(client.messages[0].error.code, 'INVALID_REQUEST')
    assert.match(client.messages[1].error.message, /progress/)
    // The task exists, but this worker never took part in it.
    assert.deepEqual(client.messages.slice(3).map(m => [m.error.code, m.error.message]), [
      ['NOT_FOUND', 'task task_1 was never given to worker raw'],
      ['NOT_FOUND', 'task task_1 was never given to worker raw']
    ])
    // A binary frame that answers no step is a protocol error.
    client.ws.send(new Uint8Array([1, 2, 3]))
    assert.equal((await client.closed)[0], 1003)
  })
})

describe('training across a three-node cluster', () => {
  const cluster = new ProcessCluster(FAST)
  let models: TinyModels
  let first: Member

  before(async () => {
    models = await tinyModels()
    first = await cluster.add()
    await cluster.add()
    await cluster.add()
    await agreedLeader(cluster.members)
  })

  after(async () => {
    await cluster.stop()
    await rm(models.root, { recursive: true, force: true })
  })

  it('trains a classifier on 1 and 3 nodes to the same weights, and the model runs anywhere', async () => {
    const dataset = await addDataset(first, 'blobs', blobs(240, 1))
    // SGD: AdamW divides by the gradient's running magnitude, so a weight whose gradient is float noise around 0 moves by a whole step either way.
    const base = { dataset, model: CLASSIFIER, optimizer: 'sgd', epochs: 4, batch_size: 30, learning_rate: 0.1, seed: 5, checkpoint_every: 10 }
    const one = await finished(first, await train(first, { ...base, nodes: 1, name: 'blobs-one' }))
    const three = await finished(first, await train(first, { ...base, nodes: 3, name: 'blobs-three' }))
    assert.equal(one.status, 'completed')
    assert.equal(three.status, 'completed')
    assert.equal(three.nodes.length, 3)
    // Checkpoints bring dropped workers back: none may have been dropped.
    assert.ok(three.nodes.every((n: any) => n.status !== 'dropped' && n.drops === 0), JSON.stringify(three.nodes))
    assert.equal(three.progress.step, 32)
    assert.ok(three.progress.loss < 0.5, `loss ${three.progress.loss}`)
    assert.ok(three.progress.accuracy > 0.9, `accuracy ${three.progress.accuracy}`)
    // Float tolerance: onnxruntime sums a batch of 30 in another order than three slices of 10, about 1e-7 a step, which 32 steps of momentum grow.
    const difference = maxDifference(await weightsOf(first, one.checkpoint_cid), await weightsOf(first, three.checkpoint_cid))
    assert.ok(difference < 2e-3, `the weights differ by ${difference}`)

    const download = await fetch(`${cluster.members[2].api}/api/v1/models/${three.model_id}/download`)
    assert.equal(download.status, 200)
    const session = await ort.InferenceSession.create(new Uint8Array(await download.arrayBuffer()))
    const row = new Float32Array([2, 0, 0, 2])
    const out = await session.run({ features: new ort.Tensor('float32', row, [1, FEATURES]) })
    const logits = out.logits.data as Float32Array
    assert.equal(logits.indexOf(Math.max(...logits)), 0)
    await session.release()
  })

  it('trains the small GPT on 2 nodes as on 1, and serves the result', async () => {
    const form = new FormData()
    form.append('modelId', 'tiny-train')
    for (const file of await readdir(models.decoder)) form.append('file', new Blob([await readFile(join(models.decoder, file))]), file)
    const upload = await call(first, '/api/models/upload', { method: 'POST', body: form })
    assert.equal(upload.status, 201, JSON.stringify(upload.body))
    const [book] = await readCorpus()
    const texts = book.slice(0, 20_000).split(/\n\s*\n/).filter(t => t.trim() !== '')
    const dataset = await addDataset(first, 'austen', encodeTextDataset(texts))
    const base = { dataset, model: 'tiny-train', optimizer: 'sgd', epochs: 1, batch_size: 8, sequence_length: 32, learning_rate: 0.1, seed: 2, checkpoint_every: 5 }
    const one = await finished(first, await train(first, { ...base, nodes: 1, name: 'tiny-one' }))
    const two = await finished(first, await train(first, { ...base, nodes: [first.peerId, cluster.members[1].peerId], name: 'tiny-two' }))
    assert.ok(two.nodes.every((n: any) => n.status !== 'dropped' && n.drops === 0), JSON.stringify(two.nodes))
    assert.ok(two.progress.loss < Math.log(384), `loss ${two.progress.loss} is not below a uniform guess's`)
    const difference = maxDifference(await weightsOf(first, one.checkpoint_cid), await weightsOf(first, two.checkpoint_cid))
    assert.ok(difference < 1e-4, `the weights differ by ${difference}`)
    const generated = await call(cluster.members[1], '/api/generate', { json: { model: two.model_id, prompt: 'Elizabeth', stream: false, options: { temperature: 0, num_predict: 8 } } })
    assert.equal(generated.status, 200, JSON.stringify(generated.body))
    assert.equal(generated.body.done, true)
  })

  it('drops a worker killed mid-job and completes with the others', async () => {
    const dataset = await addDataset(first, 'blobs-big', blobs(600, 2))
    const session = await train(first, { dataset, model: CLASSIFIER, epochs: 40, batch_size: 30, learning_rate: 0.02, seed: 3, checkpoint_every: 50, nodes: 3 })
    const victim = cluster.members[2]
    const running = await waitFor('a few steps', async () => {
      const { body } = await call(first, `/api/v1/training/status?session_id=${session}`)
      return body.progress.step >= 20 ? body : undefined
    }, 120_000)
    assert.notEqual(running.coordinator, victim.peerId)
    assert.deepEqual(running.nodes.map((n: any) => n.status), ['training', 'training', 'training'], JSON.stringify(running.nodes))
    await cluster.kill(victim)
    const done = await finished(first, session)
    assert.equal(done.status, 'completed')
    assert.equal(done.progress.step, 800)
    assert.equal(done.nodes.find((n: any) => n.id === victim.peerId).status, 'dropped')
    assert.ok(done.progress.accuracy > 0.9, `accuracy ${done.progress.accuracy}`)
  })

  it('refuses bad requests with the documented errors', async () => {
    const bad = await call(first, '/api/v1/training/start', { json: { dataset: 'not-a-cid', model: CLASSIFIER } })
    assert.equal(bad.status, 400, JSON.stringify(bad.body))
    const missing = await call(first, '/api/v1/training/status?session_id=training_9999')
    assert.equal(missing.status, 404)
  })

  it('hands a job whose coordinator died to a worker, which resumes from the last checkpoint and completes it', async () => {
    const [, second, third] = cluster.members
    if (!third.alive) await cluster.restart(third)
    await agreedLeader(cluster.live())
    const dataset = await addDataset(second, 'blobs-takeover', blobs(600, 4))
    const session = await train(second, { dataset, model: CLASSIFIER, epochs: 30, batch_size: 30, learning_rate: 0.02, seed: 3, checkpoint_every: 25, nodes: 3 })
    const running = await waitFor('a checkpoint after the first', async () => {
      const { body } = await call(second, `/api/v1/training/status?session_id=${session}`)
      return body.checkpoints.length >= 2 ? body : undefined
    }, 120_000)
    const old = cluster.members.find(m => m.peerId === running.coordinator)
    assert.ok(old != null, `the coordinator ${running.coordinator} is not a member`)
    await cluster.kill(old)
    const survivor = cluster.live()[0]
    const done = await finished(survivor, session)
    assert.equal(done.status, 'completed', JSON.stringify(done))
    assert.notEqual(done.coordinator, old.peerId)
    assert.equal(done.progress.step, 600)
    assert.ok(done.progress.accuracy > 0.9, `accuracy ${done.progress.accuracy}`)
    assert.equal(done.nodes.find((n: any) => n.id === old.peerId).status, 'dropped')
    const model = await fetch(`${survivor.api}/api/v1/models/${done.model_id}/download`)
    assert.equal(model.status, 200)
  })
})
