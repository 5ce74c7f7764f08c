/**
 * Clients that go away leave no job behind. Generations of every family
 * (Ollama's generate and chat, OpenAI's chat completions and responses,
 * constrained to a schema or to a tool call or free), streamed and not,
 * are aborted at seeded random points: before the first token, during the
 * prefill, mid-stream. Five seconds later every job the cluster recorded is
 * completed, failed or cancelled. On one daemon the node runs the jobs
 * itself; in a cluster, the node the client talks to sends them to the one
 * that holds the model. A node that dies with its clients has its jobs
 * cancelled by the cluster's leader, or by itself when it restarts; and when
 * the worker dies while clients leave, the jobs fail over and are cancelled
 * all the same.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { FAST, ProcessCluster, agreedLeader, call, pinnedOn, waitFor } from '../helpers/cluster.ts'
import { LONG_GENERATION, abortPlans, assertNoneLeftBehind, defaultModelReady, inferenceTasks, runAborts, streamingClient } from '../helpers/aborts.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { StreamingClient } from '../helpers/aborts.ts'
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
    // Up to 100 ms: on a busy machine a job takes tens of ms to be recorded, and with up to 60 ms only 47 of 100 were.
    await runAborts(daemon.url, abortPlans(16, 100, 100), 4)
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
  /** Where clients send requests. */
  let caller: Member
  /** The one node that holds the model, which runs the jobs. */
  let worker: Member
  /** A node that takes requests and dies; with the worker, no more than one voter, so that the quorum outlives both. */
  let doomed: Member

  before(async () => {
    // Three voters and a learner.
    for (let i = 0; i < 4; i++) await cluster.add()
    await agreedLeader(cluster.members)
    const [first] = cluster.members
    await defaultModelReady(first.api)
    const { body } = await call(first, '/api/tags')
    const cid = body.models.find((m: any) => m.name === `${DEFAULT_MODELS.generate}:latest`).digest
    // One replica, so that the other nodes send their jobs to the holder.
    const pinned = await call(first, '/api/v0/cluster/pin/add', { json: { cid, replication_factor: 1 } })
    assert.equal(pinned.status, 200, JSON.stringify(pinned.body))
    const [holder] = await pinnedOn(first, cid, 1)
    worker = cluster.members.find(m => m.peerId === holder) as Member
    const { voters } = (await call(first, '/api/v1/consensus/status')).body
    const others = cluster.members.filter(m => m !== worker)
    doomed = others.find(m => voters.includes(worker.peerId) !== voters.includes(m.peerId)) ?? others[0]
    caller = others.find(m => m !== doomed && voters.includes(m.peerId)) as Member
  })
  after(async () => { await cluster.stop() })

  it('leaves no job open when clients of one node abort jobs that run on another', async () => {
    await runAborts(caller.api, abortPlans(17, 40, 150), 2)
    const tasks = await assertNoneLeftBehind(caller.api)
    const workers = (await Promise.all(tasks.map(async t => (await call(caller, `/api/tasks/${t.id}`)).body.worker))).filter(w => w != null)
    assert.ok(workers.length > 0 && workers.every(w => w === worker.peerId), `the jobs ran on the node that holds the model, not on ${JSON.stringify(workers)}`)
    assert.deepEqual((await inferenceTasks(worker.api)).filter(t => !['completed', 'failed', 'cancelled'].includes(t.status)), [])
  })

  it('cancels the job of a node that died with its client, which another node ran', async () => {
    const client = await streamingClient(doomed.api, LONG_GENERATION)
    const [job] = await inferenceTasks(doomed.api)
    await cluster.kill(doomed)
    await client.read
    const open = await waitFor('the job to be known', async () => (await call(caller, `/api/tasks/${job.id}`)).body)
    assert.ok(['pending', 'running'].includes(open.status), `the job was ${String(open.status)} when its node died`)
    // Once the cluster marks the node offline, its leader cancels the job.
    const ended = await waitFor('the job to end', async () => {
      const { body } = await call(caller, `/api/tasks/${job.id}`)
      return body.status !== 'running' ? body : undefined
    }, FAST.node_timeout_ms + 15_000)
    assert.deepEqual([ended.status, ended.error], ['cancelled', 'its node went offline'])
  })

  it('leaves no job open when the worker dies while its clients leave', async () => {
    // One after another, so that their job ids follow their order.
    const clients: StreamingClient[] = []
    for (let i = 0; i < 4; i++) clients.push(await streamingClient(caller.api, LONG_GENERATION))
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

describe('a node that restarts', () => {
  const cluster = new ProcessCluster(FAST, { defaultModels: true })
  let node: Member

  before(async () => {
    node = await cluster.add()
    await agreedLeader(cluster.members)
    await defaultModelReady(node.api)
  })
  after(async () => { await cluster.stop() })

  it('cancels the jobs it took before it died, whose clients died with it', async () => {
    const client = await streamingClient(node.api, LONG_GENERATION)
    const [job] = await inferenceTasks(node.api)
    await cluster.kill(node)
    await client.read
    await cluster.restart(node)
    const ended = await waitFor('the job to end', async () => {
      const { body } = await call(node, `/api/tasks/${job.id}`)
      return body.status !== 'running' && body.status !== 'pending' ? body : undefined
    }, 30_000)
    assert.deepEqual([ended.status, ended.error], ['cancelled', 'its node restarted'])
  })
})
