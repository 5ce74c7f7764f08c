/**
 * Document 000's GraphQL endpoint on a real in-process node: its two example
 * queries as written, a mutation read back, the access guard per field, and
 * bad queries answered in GraphQL's error shape.
 */
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { COOKIE_FILE } from '@node-daemon/access'
import { assetDir, DEFAULT_MODELS } from '@node-daemon/models'
import { WebSocket } from 'ws'
import { call } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import { blobs, CLASSES, CLASSIFIER, FEATURES, finished, train } from '../helpers/training.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

/** The node's own credential: once the permission test made a key, credentials are needed. */
let admin: Record<string, string> = {}

async function graphql (d: TestDaemon, query: string, headers: Record<string, string> = admin): Promise<{ status: number, body: any }> {
  const res = await fetch(`${d.url}/api/v0/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query }), signal: AbortSignal.timeout(60_000) })
  return { status: res.status, body: await res.json() }
}

/** A graphql-transport-ws connection, acknowledged, and the next message of a type (at most 50 read, within a bounded wait). */
async function subscriber (d: TestDaemon, headers: Record<string, string> = admin): Promise<{ ws: WebSocket, next: (type: string, timeoutMs?: number) => Promise<any> }> {
  const ws = new WebSocket(`${d.url.replace(/^http/, 'ws')}/api/v0/graphql`, 'graphql-transport-ws', { headers })
  const messages: any[] = []
  let arrived: (() => void) | undefined
  ws.on('message', (data) => { messages.push(JSON.parse(data.toString())); arrived?.() })
  const next = async (type: string, timeoutMs = 15_000): Promise<any> => {
    const deadline = Date.now() + timeoutMs
    for (let i = 0; i < 50; i++) {
      const index = messages.findIndex(m => m.type === type)
      if (index >= 0) return messages.splice(index, 1)[0]
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`no ${type} message in time: ${JSON.stringify(messages)}`)) }, Math.max(1, deadline - Date.now()))
        arrived = () => { clearTimeout(timer); resolve() }
      })
    }
    throw new Error(`no ${type} among 50 messages`)
  }
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send(JSON.stringify({ type: 'connection_init' }))
  await next('connection_ack')
  return { ws, next }
}

describe("document 000's GraphQL on a real node", { timeout: 180_000 }, () => {
  let a: TestDaemon

  before(async () => {
    a = await startTestDaemon()
    admin = { authorization: `Bearer ${(await readFile(join(a.repo, COOKIE_FILE), 'utf8')).trim()}` }
  })
  after(async () => { await a?.cleanup() })

  it("answers the document's first example query as written", async () => {
    const added = await graphql(a, 'mutation { add(content: "pinned before the query") { cid } }')
    const cid = added.body.data.add.cid as string
    const { status, body } = await graphql(a, `# Get node information and pins in one query
query {
  node {
    id
    version
    addresses
  }
  pins {
    cid
    type
    size
  }
}`)
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.errors, undefined, JSON.stringify(body.errors))
    assert.equal(body.data.node.id, a.node.peerId)
    assert.equal(body.data.node.version, a.node.version().version)
    assert.ok(body.data.node.addresses.length > 0)
    const ours = body.data.pins.find((p: { cid: string }) => p.cid === cid)
    assert.deepEqual(ours, { cid, type: 'recursive', size: Buffer.byteLength('pinned before the query') })
  })

  it("runs the document's mutation as written and reads its content back", async () => {
    const { status, body } = await graphql(a, `# Add content and pin it in one mutation
mutation {
  add(content: "Hello GraphQL") {
    cid
    size
    pin {
      success
    }
  }
}`)
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.errors, undefined, JSON.stringify(body.errors))
    const { cid, size, pin } = body.data.add
    // add's size is Kubo's, the DAG's; content's is the file's.
    assert.deepEqual(pin, { success: true })
    assert.ok(size >= Buffer.byteLength('Hello GraphQL'), String(size))

    const back = await graphql(a, `{ content(cid: "${cid}") { cid size data pin { success } } exists(cid: "${cid}") }`)
    assert.equal(back.body.errors, undefined, JSON.stringify(back.body.errors))
    assert.equal(Buffer.from(back.body.data.content.data, 'base64').toString(), 'Hello GraphQL')
    assert.deepEqual([back.body.data.content.size, back.body.data.content.pin.success, back.body.data.exists], [Buffer.byteLength('Hello GraphQL'), true, true])

    const key = await graphql(a, 'mutation { generateKey(name: "graphql-key") { name id } }')
    assert.equal(key.body.errors, undefined, JSON.stringify(key.body.errors))
    const published = await graphql(a, `mutation { publish(cid: "${cid}", key: "graphql-key") { name value } }`)
    assert.equal(published.body.errors, undefined, JSON.stringify(published.body.errors))
    assert.deepEqual(published.body.data.publish, { name: key.body.data.generateKey.id, value: `/ipfs/${cid}` })
  })

  it('gives a field the key lacks permission for as an error with its code, and the fields it may see', async () => {
    const made = await fetch(`${a.url}/api/v1/auth/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'reader', permissions: ['content:read'] }) })
    const key = (await made.json() as { key: string }).key
    const added = await graphql(a, 'mutation { add(content: "for the reader") { cid } }', admin)
    const cid = added.body.data.add.cid as string

    const { status, body } = await graphql(a, `{ exists(cid: "${cid}") node { id } }`, { 'x-api-key': key })
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.data, null, 'node is non-null, so its error nulls the answer')
    assert.deepEqual(body.errors.map((e: any) => [e.path, e.extensions.code, e.extensions.status]), [[['node'], 'AuthorizationError', 403]])
    const allowed = await graphql(a, `{ exists(cid: "${cid}") }`, { 'x-api-key': key })
    assert.deepEqual([allowed.status, allowed.body.data], [200, { exists: true }])
    const anonymous = await graphql(a, `{ exists(cid: "${cid}") }`, {})
    assert.equal(anonymous.body.errors[0].extensions.code, 'AuthenticationError')
    const mutation = await graphql(a, 'mutation { pin(cid: "bafkqaaa") { success } }', { 'x-api-key': key })
    assert.equal(mutation.body.errors[0].extensions.code, 'AuthorizationError')
  })

  it('answers bad queries with 400 in GraphQL\'s error shape and an operation\'s error with its name', async () => {
    for (const query of ['{ node { id ', '{ nosuchfield }', 'mutation { add { cid } }']) {
      const { status, body } = await graphql(a, query)
      assert.equal(status, 400, `${query}: ${JSON.stringify(body)}`)
      assert.ok(Array.isArray(body.errors) && body.errors.length > 0 && typeof body.errors[0].message === 'string', JSON.stringify(body))
    }
    const notJson = await fetch(`${a.url}/api/v0/graphql`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: '{', signal: AbortSignal.timeout(30_000) })
    assert.ok(notJson.status >= 400 && notJson.status < 500, String(notJson.status))
    const bad = await graphql(a, '{ content(cid: "not-a-cid") { data } }')
    assert.equal(bad.status, 200)
    assert.deepEqual([bad.body.errors[0].extensions.code, bad.body.errors[0].extensions.status], ['InvalidCIDError', 400], JSON.stringify(bad.body.errors))
    const subscription = await graphql(a, 'subscription { events(names: ["add"]) { event } }')
    assert.equal(subscription.status, 400, JSON.stringify(subscription.body))
    assert.match(subscription.body.errors[0].message, /WebSocket/)
  })

  it('sends the events a subscription names over a WebSocket, and refuses unknown ones', async () => {
    const { ws, next } = await subscriber(a)
    try {
      ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { events(names: ["add", "pin"]) { event data } }' } }))
      // The subscription is registered once its first message is handled; give it a bounded moment before adding.
      await new Promise(resolve => setTimeout(resolve, 200))
      const added = await graphql(a, 'mutation { add(content: "an event for the subscriber") { cid } }')
      assert.equal(added.body.errors, undefined, JSON.stringify(added.body))
      const cid = added.body.data.add.cid as string
      const event = await next('next')
      assert.equal(event.id, '1')
      assert.ok(['add', 'pin'].includes(event.payload.data.events.event), JSON.stringify(event))
      assert.ok(JSON.stringify(event.payload.data.events.data).includes(cid), JSON.stringify(event))

      ws.send(JSON.stringify({ id: '2', type: 'subscribe', payload: { query: 'subscription { events(names: ["nosuch"]) { event } }' } }))
      const refused = await next('error')
      assert.equal(refused.id, '2')
      assert.match(JSON.stringify(refused.payload), /unknown events nosuch/)
    } finally {
      ws.close()
    }

    const made = await fetch(`${a.url}/api/v1/auth/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'pinner', permissions: ['pins'] }) })
    const key = (await made.json() as { key: string }).key
    const { ws: pinner, next: answer } = await subscriber(a, { 'x-api-key': key })
    try {
      pinner.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { events(names: ["pin"]) { event } }' } }))
      assert.match(JSON.stringify((await answer('error')).payload), /pinner lacks the content:read permission/)
    } finally {
      pinner.close()
    }
  })

  it('gives datasets, training sessions and tasks through the operations of their REST routes, with subscriptions to their events', async () => {
    const bytes = blobs(60, 5)
    const added = await graphql(a, `mutation { addDataset(content: "${Buffer.from(bytes).toString('base64')}", encoding: "base64", name: "gql-blobs", description: "blobs", framework: "pytorch", license: "MIT") { cid name format records features classes description framework license } }`)
    assert.equal(added.body.errors, undefined, JSON.stringify(added.body.errors))
    const dataset = added.body.data.addDataset
    assert.deepEqual({ ...dataset, cid: undefined }, { cid: undefined, name: 'gql-blobs', format: 'tensors', records: 60, features: FEATURES, classes: CLASSES, description: 'blobs', framework: 'pytorch', license: 'MIT' })
    const rest = await fetch(`${a.url}/api/v0/ai/dataset/get?cid=gql-blobs`, { headers: admin, signal: AbortSignal.timeout(30_000) })
    assert.deepEqual(new Uint8Array(await rest.arrayBuffer()), bytes, 'the REST route gives the bytes GraphQL added')
    const read = await graphql(a, '{ datasets { name records } dataset(ref: "gql-blobs") { cid license } }')
    assert.equal(read.body.errors, undefined, JSON.stringify(read.body.errors))
    assert.deepEqual(read.body.data.dataset, { cid: dataset.cid, license: 'MIT' })
    assert.ok(read.body.data.datasets.some((d: { name: string, records: number }) => d.name === 'gql-blobs' && d.records === 60), JSON.stringify(read.body.data))

    const { ws, next } = await subscriber(a)
    try {
      ws.send(JSON.stringify({ id: 'steps', type: 'subscribe', payload: { query: 'subscription { trainingProgress { session_id step total_steps loss } }' } }))
      // The subscription is registered once its message is handled; give it a bounded moment before training starts.
      await new Promise(resolve => setTimeout(resolve, 200))
      const session = await train({ api: a.url, headers: admin }, { dataset: 'gql-blobs', model: CLASSIFIER, epochs: 1, batch_size: 20 })
      const step = await next('next', 60_000)
      assert.equal(step.id, 'steps')
      assert.equal(step.payload.data.trainingProgress.session_id, session, JSON.stringify(step))
      assert.ok(step.payload.data.trainingProgress.step >= 1 && Number.isFinite(step.payload.data.trainingProgress.loss), JSON.stringify(step))
      const done = await finished({ api: a.url, headers: admin }, session)

      const sessions = await graphql(a, `{ trainingSession(id: "${session}") { session_id status dataset progress { step total_steps loss } } trainingSessions { session_id } tasks(type: "training") { id type status details } }`)
      assert.equal(sessions.body.errors, undefined, JSON.stringify(sessions.body.errors))
      const { trainingSession, trainingSessions, tasks } = sessions.body.data
      assert.deepEqual([trainingSession.session_id, trainingSession.status, trainingSession.dataset], [session, done.status, dataset.cid])
      assert.deepEqual(trainingSession.progress, { step: done.progress.step, total_steps: done.progress.total_steps, loss: done.progress.loss }, 'the REST route and GraphQL agree')
      assert.ok(trainingSessions.some((t: { session_id: string }) => t.session_id === session))
      const task = tasks.find((t: { details: { jobId: number } }) => `training_${t.details.jobId}` === session)
      assert.ok(task != null, JSON.stringify(tasks))
      const one = await graphql(a, `{ task(id: "${task.id}") { id type status } }`)
      assert.deepEqual(one.body.data?.task, { id: task.id, type: 'training', status: task.status }, JSON.stringify(one.body))
      const missing = await graphql(a, '{ task(id: "task_999999") { id } }')
      assert.equal(missing.body.errors[0].extensions.status, 404, JSON.stringify(missing.body))
    } finally {
      ws.close()
    }
  })

  it('registers a model with its framework and license, and sends task events to a subscription', async () => {
    const form = new FormData()
    const dir = assetDir(DEFAULT_MODELS.generate)
    for (const file of await readdir(dir)) form.append('file', new Blob([await readFile(join(dir, file))]), file)
    const directory = await fetch(`${a.url}/api/v0/add?wrap-with-directory=true&quieter=true`, { method: 'POST', headers: admin, body: form, signal: AbortSignal.timeout(60_000) })
    const root = (await directory.text()).trim().split('\n').map(line => JSON.parse(line)).at(-1).Hash as string
    const model = await graphql(a, `mutation { addModel(model: "${root}", name: "gql-gpt", framework: "onnx", license: "Apache-2.0") { cid name framework license } }`)
    assert.equal(model.body.errors, undefined, JSON.stringify(model.body.errors))
    assert.deepEqual(model.body.data.addModel, { cid: root, name: 'gql-gpt:latest', framework: 'onnx', license: 'Apache-2.0' })
    const listed = await graphql(a, '{ model(ref: "gql-gpt") { framework license } }')
    assert.deepEqual(listed.body.data?.model, { framework: 'onnx', license: 'Apache-2.0' }, JSON.stringify(listed.body))

    const { ws, next } = await subscriber(a)
    try {
      ws.send(JSON.stringify({ id: 'tasks', type: 'subscribe', payload: { query: 'subscription { taskEvents { type data } }' } }))
      await new Promise(resolve => setTimeout(resolve, 200))
      const submitted = await call({ api: a.url, headers: admin }, '/api/tasks/submit', { json: { prompt: 'Once upon a time', modelId: 'gql-gpt', maxTokens: 3 } })
      assert.equal(submitted.status, 200, JSON.stringify(submitted.body))
      const types: string[] = []
      for (let i = 0; i < 5 && !types.includes('task_completed'); i++) {
        const event = await next('next', 60_000)
        assert.equal(event.payload.data.taskEvents.data.taskId, submitted.body.taskId, JSON.stringify(event))
        types.push(event.payload.data.taskEvents.type)
      }
      assert.deepEqual(types, ['task_submitted', 'task_completed'])
    } finally {
      ws.close()
    }
  })

  it('serves GraphiQL at /api/v0/graphql/playground with React and GraphiQL from the node, nothing from elsewhere', async () => {
    const get = async (path: string): Promise<Response> => fetch(`${a.url}${path}`, { signal: AbortSignal.timeout(30_000) })
    const res = await get('/api/v0/graphql/playground')
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/)
    const csp = res.headers.get('content-security-policy') ?? ''
    assert.match(csp, /default-src 'self'/)
    assert.match(csp, /frame-ancestors 'none'/)
    assert.doesNotMatch(csp, /unsafe-eval|script-src/, "scripts only from 'self', none evaluated")
    assert.equal(res.headers.get('x-frame-options'), 'DENY')
    const html = await res.text()
    assert.doesNotMatch(html, /https?:\/\/|unpkg/, 'nothing comes from another site')
    const files = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map(m => m[1])
    assert.equal(files.length, 5, html)
    // GraphiQL's own build, as the installed package has it, gzipped for a browser that takes it.
    const graphiql = files.find(f => /\/graphiql-\w+\.js$/.test(f))
    assert.ok(graphiql != null, html)
    const served = await get(graphiql)
    assert.equal(served.headers.get('content-encoding'), 'gzip')
    assert.equal(served.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    assert.ok(Buffer.from(await served.arrayBuffer()).equals(await readFile(join(dirname(createRequire(import.meta.url).resolve('graphiql/package.json')), 'graphiql.min.js'))))
    for (const file of files) {
      const asset = await fetch(`${a.url}${file}`, { headers: { 'accept-encoding': 'identity' }, signal: AbortSignal.timeout(30_000) })
      assert.equal(asset.status, 200, file)
      assert.equal(asset.headers.get('content-encoding'), null, file)
      assert.match(asset.headers.get('content-type') ?? '', file.endsWith('.css') ? /^text\/css/ : /^text\/javascript/)
      const text = await asset.text()
      if (/\/init-/.test(file)) assert.doesNotMatch(text, /https?:\/\//, "the page's own script names no other site")
    }
    assert.equal((await get('/api/v0/graphql/playground/graphiql-0000000000000000.js')).status, 404, 'only the files the page names')
    const outside = await get('/api/v0/graphql/playground/..%2f..%2fpackage.json')
    assert.ok(outside.status >= 400 && outside.status < 500, String(outside.status))
    assert.equal((await get('/api/v0/graphql/graphiql')).status, 404, "mercurius's GraphiQL, which loads unpkg.com, is off")
  })
})
