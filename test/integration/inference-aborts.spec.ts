/**
 * Clients that go away leave no job behind. Generations of every family
 * (Ollama's generate and chat, OpenAI's chat completions), streamed and not,
 * are aborted at seeded random points: before the first token, during the
 * prefill, mid-stream. Five seconds later every job the cluster recorded is
 * completed, failed or cancelled. On one daemon the node runs the jobs
 * itself; in a cluster of three, the node the client talks to sends them to
 * the one that holds the model, and at last that node dies while clients
 * leave: the jobs fail over, and are cancelled all the same.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { FAST, ProcessCluster, agreedLeader, call, pinnedOn, waitFor } from '../helpers/cluster.ts'
import { abortPlans, assertNoneLeftBehind, defaultModelReady, inferenceTasks, runAborts } from '../helpers/aborts.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { Member } from '../helpers/cluster.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

describe('clients that go away, on one daemon', () => {
  let daemon: TestDaemon

  before(async () => {
    daemon = await startTestDaemon({ inference: { defaultModels: true } })
    await defaultModelReady(daemon.url)
  })
  after(async () => { await daemon?.cleanup() })

  it('leaves no job open after 100 aborts at random points of every family', async () => {
    await runAborts(daemon.url, abortPlans(16, 100, 60), 4)
    const tasks = await assertNoneLeftBehind(daemon.url)
    assert.ok(tasks.length >= 50, `only ${tasks.length} of 100 requests were recorded as jobs`)
    const cancelled = tasks.filter(t => t.status === 'cancelled').length
    assert.ok(cancelled >= 20, `only ${cancelled} jobs were cancelled: the aborts did not land mid-job`)
  })

  it("cancels the task of a submission whose timeout ran out (document 001's E004)", async () => {
    const known = new Set((await inferenceTasks(daemon.url)).map(t => t.id))
    let timedOut = 0
    // Deadlines around the time a job takes to be recorded, so that some run out after it was proposed.
    for (let ms = 1; ms <= 40; ms++) {
      const res = await fetch(`${daemon.url}/api/tasks/submit?timeout=${ms}ms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Once upon a time', maxTokens: 300 }) })
      const body = await res.json() as any
      if (res.status === 200) continue
      assert.deepEqual([res.status, body.error.code], [504, 'E004'], JSON.stringify(body))
      timedOut++
    }
    assert.ok(timedOut > 0, 'no submission ran out of time')
    const tasks = (await assertNoneLeftBehind(daemon.url)).filter(t => !known.has(t.id))
    const cancelled = tasks.filter(t => t.status === 'cancelled')
    assert.ok(cancelled.length > 0, `no job of the ${timedOut} submissions that timed out was recorded: ${JSON.stringify(tasks)}`)
    assert.ok(cancelled.every(t => /timeout/.test(t.error ?? '')), JSON.stringify(cancelled))
  })
})

describe('clients that go away, in a cluster', () => {
  const cluster = new ProcessCluster(FAST, { defaultModels: true })
  let caller: Member
  let worker: Member

  before(async () => {
    await cluster.add()
    await cluster.add()
    // A third voter keeps the quorum when the worker dies.
    await cluster.add()
    await agreedLeader(cluster.members)
    const [first] = cluster.members
    await defaultModelReady(first.api)
    const { body } = await call(first, '/api/tags')
    const cid = body.models.find((m: any) => m.name === `${DEFAULT_MODELS.generate}:latest`).digest
    // One replica, so that the other node sends its jobs to the holder.
    const pinned = await call(first, '/api/v0/cluster/pin/add', { json: { cid, replication_factor: 1 } })
    assert.equal(pinned.status, 200, JSON.stringify(pinned.body))
    const [holder] = await pinnedOn(first, cid, 1)
    worker = cluster.members.find(m => m.peerId === holder) as Member
    caller = cluster.members.find(m => m !== worker) as Member
  })
  after(async () => { await cluster.stop() })

  it('leaves no job open when clients of one node abort jobs that run on the other', async () => {
    await runAborts(caller.api, abortPlans(17, 40, 150), 2)
    const tasks = await assertNoneLeftBehind(caller.api)
    const workers = (await Promise.all(tasks.map(async t => (await call(caller, `/api/tasks/${t.id}`)).body.worker))).filter(w => w != null)
    assert.ok(workers.length > 0 && workers.every(w => w === worker.peerId), `the jobs ran on the node that holds the model, not on ${JSON.stringify(workers)}`)
    assert.deepEqual((await inferenceTasks(worker.api)).filter(t => !['completed', 'failed', 'cancelled'].includes(t.status)), [])
  })

  it('leaves no job open when the worker dies while its clients leave', async () => {
    // One long generation (407 tokens with this seed), four times.
    const body = JSON.stringify({ model: DEFAULT_MODELS.generate, prompt: 'Chapter 1.', stream: true, options: { num_predict: 2000, temperature: 0.9, seed: 2 } })
    // One after another, so that their job ids follow their order.
    const clients: Array<{ controller: AbortController, chunks: number, ended: boolean, read: Promise<void> }> = []
    for (let i = 0; i < 4; i++) {
      const controller = new AbortController()
      const res = await fetch(`${caller.api}/api/generate`, { method: 'POST', body, signal: AbortSignal.any([controller.signal, AbortSignal.timeout(60_000)]) })
      const reader = res.body?.getReader()
      await reader?.read()
      const client = { controller, chunks: 1, ended: false, read: Promise.resolve() }
      client.read = (async () => {
        while (reader != null && !(await reader.read().catch(() => ({ done: true }))).done) client.chunks++
        client.ended = true
      })()
      clients.push(client)
    }
    // The worker freezes mid-stream, then dies: its four jobs are open as their clients leave.
    worker.proc.child.kill('SIGSTOP')
    const open = (await inferenceTasks(caller.api)).filter(t => t.status === 'running' || t.status === 'pending').reverse()
    assert.equal(open.length, 4, JSON.stringify(open))
    clients[0].controller.abort()
    const streamed = clients[2].chunks
    await cluster.kill(worker)
    clients[1].controller.abort()
    // The third leaves once the replacement streams to it, the fourth reads to the end.
    await waitFor('the replacement to stream', async () => clients[2].chunks > streamed || clients[2].ended, 30_000)
    clients[2].controller.abort()
    await Promise.all(clients.map(async c => c.read))
    const tasks = await assertNoneLeftBehind(caller.api)
    const ended = open.map(o => tasks.find(t => t.id === o.id)?.status)
    assert.deepEqual(ended.slice(0, 2), ['cancelled', 'cancelled'])
    assert.equal(ended[3], 'completed', JSON.stringify(tasks))
  })
})
