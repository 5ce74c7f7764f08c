/**
 * Document 004's external workers on two daemons: a worker in this process
 * connected to one node, and a `node-daemon worker` process connected to the
 * other, join a job the first node coordinates and compute their ranks'
 * slices; the weights equal a one-node run's. A worker that disconnects
 * mid-job is recorded as gone and the job goes on. Bad clients get the
 * documented close codes and error messages.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import WebSocket from 'ws'
import { createWorker } from '@node-daemon/worker'
import { FAST, ProcessCluster, agreedLeader, call, waitFor } from '../helpers/cluster.ts'
import { CLASSIFIER, addDataset, blobs, finished, maxDifference, train, weightsOf } from '../helpers/training.ts'
import type { FarmWorker, TaskOutcome } from '@node-daemon/worker'
import type { Member } from '../helpers/cluster.ts'
import type { ChildProcess } from 'node:child_process'

const ROOT = join(import.meta.dirname, '..', '..')

/** `node-daemon worker` as a user runs it; its stderr says what it did. */
function spawnWorker (api: string, id: string): { child: ChildProcess, output: () => string } {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'node-daemon.ts'), 'worker', '--api', api, '--id', id], { stdio: ['ignore', 'ignore', 'pipe'] })
  let output = ''
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  return { child, output: () => output }
}

/** Messages a raw client gets, and how its socket closed. */
async function rawClient (url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket, messages: any[], closed: Promise<[number, string]> }> {
  const ws = new WebSocket(url, { headers })
  const messages: any[] = []
  ws.on('message', (data: Buffer) => { messages.push(JSON.parse(data.toString())) })
  const closed = once(ws, 'close').then(([code, reason]) => [code as number, String(reason)] as [number, string])
  await Promise.race([once(ws, 'open'), closed])
  return { ws, messages, closed }
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

  it('refuses clients without an id or with one in use, and answers bad messages with an error', async () => {
    const url = `${a.api.replace('http', 'ws')}/api/workers/ws`
    const anonymous = await rawClient(url)
    assert.equal((await anonymous.closed)[0], 1008)

    const duplicate = await rawClient(url, { 'Client-ID': 'cli-worker' })
    const [code, reason] = await duplicate.closed
    assert.equal(code, 1008)
    assert.match(reason, /already connected/)

    const client = await rawClient(`${url}?client_id=raw`)
    client.ws.send('not json')
    client.ws.send(JSON.stringify({ type: 'task_progress', task_id: 'task_1', progress: 140 }))
    client.ws.send(JSON.stringify({ type: 'heartbeat', client_id: 'raw', system_info: { cpu_usage: 12.5 } }))
    client.ws.send(JSON.stringify({ type: 'task_result', task_id: 'task_1', status: 'completed', metrics: { final_loss: 0.1 } }))
    await waitFor('four answers', async () => client.messages.length >= 4, 10_000)
    assert.deepEqual(client.messages.map(m => m.type), ['error', 'error', 'heartbeat_ack', 'task_result_ack'])
    assert.equal(client.messages[0].error.code, 'INVALID_REQUEST')
    assert.match(client.messages[1].error.message, /progress/)
    assert.deepEqual([client.messages[3].task_id, client.messages[3].received], ['task_1', true])
    // A binary frame that answers no step is a protocol error.
    client.ws.send(new Uint8Array([1, 2, 3]))
    assert.equal((await client.closed)[0], 1003)
  })
})
