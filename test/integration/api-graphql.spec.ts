/**
 * Document 000's GraphQL endpoint on a real in-process node: its two example
 * queries as written, a mutation read back, the access guard per field, and
 * bad queries answered in GraphQL's error shape.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { COOKIE_FILE } from '@node-daemon/access'
import { WebSocket } from 'ws'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

/** The node's own credential: once the permission test made a key, credentials are needed. */
let admin: Record<string, string> = {}

async function graphql (d: TestDaemon, query: string, headers: Record<string, string> = admin): Promise<{ status: number, body: any }> {
  const res = await fetch(`${d.url}/api/v0/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query }), signal: AbortSignal.timeout(60_000) })
  return { status: res.status, body: await res.json() }
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
  })

  it('sends the events a subscription names over a WebSocket, and refuses unknown ones', async () => {
    const ws = new WebSocket(`${a.url.replace(/^http/, 'ws')}/api/v0/graphql`, 'graphql-transport-ws', { headers: admin })
    const messages: any[] = []
    let arrived: (() => void) | undefined
    ws.on('message', (data) => { messages.push(JSON.parse(data.toString())); arrived?.() })
    /** The next message of `type` (at most 20 read), within a bounded wait. */
    const next = async (type: string): Promise<any> => {
      const deadline = Date.now() + 15_000
      for (let i = 0; i < 20; i++) {
        const index = messages.findIndex(m => m.type === type)
        if (index >= 0) return messages.splice(index, 1)[0]
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => { reject(new Error(`no ${type} message in time`)) }, Math.max(1, deadline - Date.now()))
          arrived = () => { clearTimeout(timer); resolve() }
        })
      }
      throw new Error(`no ${type} among 20 messages`)
    }
    try {
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
      ws.send(JSON.stringify({ type: 'connection_init' }))
      await next('connection_ack')
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
    const pinner = new WebSocket(`${a.url.replace(/^http/, 'ws')}/api/v0/graphql`, 'graphql-transport-ws', { headers: { 'x-api-key': key } })
    const answers: any[] = []
    try {
      const refused = new Promise<any>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`no error within 15 s: ${JSON.stringify(answers)}`)) }, 15_000)
        pinner.on('message', (data) => {
          const message = JSON.parse(data.toString())
          answers.push(message)
          if (message.type === 'connection_ack') pinner.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { events(names: ["pin"]) { event } }' } }))
          if (message.type === 'error') { clearTimeout(timer); resolve(message) }
        })
      })
      await new Promise((resolve, reject) => { pinner.once('open', resolve); pinner.once('error', reject) })
      pinner.send(JSON.stringify({ type: 'connection_init' }))
      assert.match(JSON.stringify((await refused).payload), /pinner lacks the content:read permission/)
    } finally {
      pinner.close()
    }
  })

  it('serves GraphiQL at /api/v0/graphql/playground', async () => {
    const res = await fetch(`${a.url}/api/v0/graphql/playground`, { signal: AbortSignal.timeout(30_000) })
    assert.equal(res.status, 200)
    assert.match(await res.text(), /GraphiQL/)
    const config = await (await fetch(`${a.url}/api/v0/graphql/graphiql/config.js`, { signal: AbortSignal.timeout(30_000) })).text()
    assert.match(config, /GRAPHQL_ENDPOINT = '\/api\/v0\/graphql\/?'/)
  })
})
