/**
 * Access control over HTTP: a node that serves local processes without
 * credentials keeps browsers and foreign Hosts out; once a credential
 * exists, every route needs one with the route's permission (checked for
 * every route of the OpenAPI document, so a route added later is covered),
 * refusals come in each family's shape, rate limits count per credential,
 * and the real clients work with credentials.
 */
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { COOKIE_FILE, PERMISSIONS } from '@node-daemon/access'
import { assetDir } from '@node-daemon/models'
import { create } from 'kubo-rpc-client'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { WebSocket } from 'ws'
import { errorShapeOf } from '../fuzz/fuzz.ts'
import { fetchOperations } from '../fuzz/openapi.ts'
import { call, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

/** Failed authentications an address may make here: more than the tests before the last one make. */
const FAILED_AUTH = 500

describe('access control on one node', { timeout: 240_000 }, () => {
  let d: TestDaemon
  let admin: Record<string, string>

  before(async () => {
    d = await startTestDaemon({ access: { rateLimits: { enabled: 'auto', endpoints: { '/api/v0/version': { requests: 5, periodMs: 60_000 } }, failedAuth: { requests: FAILED_AUTH, periodMs: 60_000 }, websocketsPerIp: 10 } } })
    admin = { authorization: `Bearer ${(await readFile(join(d.repo, COOKIE_FILE), 'utf8')).trim()}` }
  })
  after(async () => { await d?.cleanup() })

  it('serves local processes without credentials, but refuses foreign origins, Hosts and cross-site requests', async () => {
    assert.equal((await call(d, 'POST', '/api/v0/id')).status, 200)
    for (const headers of [{ origin: 'http://evil.example' }, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }] as Array<Record<string, string>>) {
      const { status, body } = await call(d, 'POST', '/api/v0/key/gen?arg=evil', headers)
      assert.equal(status, 403, JSON.stringify(headers))
      assert.equal(body.error_type, 'AuthorizationError')
    }
    // DNS rebinding: the browser sends the attacker's name as the Host (which fetch will not set).
    const url = new URL(d.url)
    const rebound = await new Promise<number>((resolve, reject) => {
      request({ host: url.hostname, port: url.port, method: 'POST', path: '/api/v0/key/list', headers: { host: 'attacker.example' } }, res => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject).end()
    })
    assert.equal(rebound, 403)
    assert.equal((await call(d, 'POST', '/api/v0/key/list', { origin: d.url })).status, 200, 'its own origin, as the web console is')
    // A page of another origin opening a WebSocket: refused before the upgrade.
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${d.url.replace('http', 'ws')}/ws/v0/stream/media`, { origin: 'http://evil.example' })
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0) })
      ws.on('open', () => { ws.close(); resolve(101) })
      ws.on('error', () => {})
    })
    assert.equal(refused, 403)
  })

  it('answers preflights for configured origins only, with CORS headers', async () => {
    const preflight = await fetch(`${d.url}/api/v0/cat`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } })
    assert.equal(preflight.headers.get('access-control-allow-origin'), null)
  })

  it('needs a credential with the permission of each route once one exists, for every route of the OpenAPI document', async () => {
    const made = await call(d, 'POST', '/api/v1/auth/keys', admin, { name: 'reader', permissions: ['cat', 'ls'] })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    const reader = { 'x-api-key': made.body.key as string }
    assert.match(made.body.key, /^nd_/)
    assert.ok(!JSON.stringify((await call(d, 'GET', '/api/v1/auth/keys', admin)).body).includes(made.body.key), 'listed without its secret')

    const operations = await fetchOperations(d.url)
    const document = await (await fetch(`${d.url}/api/v0/openapi.json`)).json() as any
    // For each permission, a key with every other one.
    const lacking = new Map<string, string>()
    for (const permission of PERMISSIONS) {
      const key = await call(d, 'POST', '/api/v1/auth/keys', admin, { name: `without-${permission.replace(':', '-')}`, permissions: PERMISSIONS.filter(p => p !== permission) })
      assert.equal(key.status, 201, JSON.stringify(key.body))
      lacking.set(permission, key.body.key)
    }
    let checked = 0
    for (const op of operations) {
      const security = document.paths[op.path][op.method.toLowerCase()].security as Array<Record<string, string[]>>
      const permission = security[0]?.apiKey?.[0]
      const path = op.path.replace(/\{[^}]+\}/g, 'x')
      if (permission == null) {
        assert.deepEqual(security, [], `${op.method} ${op.path} is public`)
        continue
      }
      assert.ok((PERMISSIONS as readonly string[]).includes(permission), `${op.method} ${op.path} needs ${permission}`)
      const anonymous = await call(d, op.method, path)
      assert.equal(anonymous.status, 401, `${op.method} ${op.path} without credentials: ${JSON.stringify(anonymous.body)}`)
      assert.ok(errorShapeOf(anonymous.body, 401) != null, `${op.method} ${op.path}: ${JSON.stringify(anonymous.body)}`)
      const refused = await call(d, op.method, path, { 'x-api-key': lacking.get(permission) as string })
      assert.equal(refused.status, 403, `${op.method} ${op.path} without ${permission}: ${JSON.stringify(refused.body)}`)
      assert.ok(errorShapeOf(refused.body, 403) != null, `${op.method} ${op.path}: ${JSON.stringify(refused.body)}`)
      checked++
    }
    assert.ok(checked > 100, `${checked} routes checked`)
    assert.equal((await call(d, 'POST', '/api/v0/cat?arg=bafkqaaa', reader)).status, 200)
  })

  it("refuses in each family's shape", async () => {
    const ollama = await call(d, 'POST', '/api/generate', {}, { model: 'x' })
    assert.deepEqual([ollama.status, Object.keys(ollama.body), ollama.body.code], [401, ['error', 'code', 'timestamp', 'request_id'], 'UNAUTHORIZED'])
    const openai = await call(d, 'POST', '/v1/chat/completions', { authorization: 'Bearer nd_wrong' }, { model: 'x', messages: [] })
    assert.deepEqual([openai.status, openai.body.error.type, openai.body.error.code], [401, 'authentication_error', 'invalid_api_key'])
    const task = await call(d, 'GET', '/api/tasks')
    assert.deepEqual([task.status, task.body.error.code], [401, 'UNAUTHORIZED'])
    const kubo = await call(d, 'POST', '/api/v0/pin/ls')
    assert.deepEqual([kubo.status, kubo.body.Type, kubo.body.error_type], [401, 'error', 'AuthenticationError'])
  })

  it('logs users in for JWTs that stop working when the user goes, and takes basic auth', async () => {
    assert.equal((await call(d, 'POST', '/api/v1/auth/users', admin, { username: 'ada', password: 'correct horse', permissions: ['models:read'] })).status, 201)
    const login = await call(d, 'POST', '/api/v1/auth/login', {}, { username: 'ada', password: 'correct horse' })
    assert.equal(login.status, 200)
    assert.equal(login.body.token_type, 'Bearer')
    const bearer = { authorization: `Bearer ${login.body.access_token as string}` }
    assert.equal((await call(d, 'GET', '/api/tags', bearer)).status, 200)
    assert.equal((await call(d, 'GET', '/api/tags', { authorization: `Basic ${Buffer.from('ada:correct horse').toString('base64')}` })).status, 200)
    assert.equal((await call(d, 'POST', '/api/v1/auth/login', {}, { username: 'ada', password: 'wrong' })).status, 401)
    assert.equal((await call(d, 'DELETE', '/api/v1/auth/users/ada', admin)).status, 200)
    assert.equal((await call(d, 'GET', '/api/tags', bearer)).status, 401, 'the token of a removed user')
  })

  it('counts requests per credential, with the documents\' headers, and answers 429 with Retry-After', async () => {
    const keys = await Promise.all(['one', 'two'].map(async name => (await call(d, 'POST', '/api/v1/auth/keys', admin, { name, permissions: ['*'] })).body.key as string))
    const first = await call(d, 'GET', '/api/tags', { 'x-api-key': keys[0] })
    assert.equal(first.headers.get('x-ratelimit-limit'), '1000')
    assert.ok(Number(first.headers.get('x-ratelimit-reset')) > Date.now() / 1000, 'the end of the window, in seconds since the epoch')
    const statuses: number[] = []
    for (let i = 0; i < 6; i++) statuses.push((await call(d, 'POST', '/api/v0/version', { 'x-api-key': keys[0] })).status)
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429])
    const limited = await call(d, 'POST', '/api/v0/version', { 'x-api-key': keys[0] })
    assert.equal(limited.body.error_type, 'RateLimitError')
    assert.ok(Number(limited.headers.get('retry-after')) > 0)
    assert.equal((await call(d, 'POST', '/api/v0/version', { 'x-api-key': keys[1] })).status, 200, 'the other key has its own count')
  })

  it("checks document 004's bearer token on the worker WebSocket", async () => {
    const key = (await call(d, 'POST', '/api/v1/auth/keys', admin, { name: 'farm-worker', permissions: ['training'] })).body.key as string
    const connect = async (headers: Record<string, string>): Promise<number> => new Promise((resolve) => {
      const ws = new WebSocket(`${d.url.replace('http', 'ws')}/api/workers/ws`, { headers: { 'client-id': 'worker-1', ...headers } })
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0) })
      ws.on('open', () => { ws.close(); resolve(101) })
      ws.on('error', () => {})
    })
    assert.equal(await connect({}), 401)
    assert.equal(await connect({ authorization: 'Bearer nd_wrong' }), 401)
    assert.equal(await connect({ authorization: `Bearer ${key}` }), 101)
  })

  it('works with the real clients given credentials', async () => {
    const key = (await call(d, 'POST', '/api/v1/auth/keys', admin, { name: 'clients', permissions: ['*'] })).body.key as string
    const kubo = create({ url: `${d.url}/api/v0`, headers: { 'x-api-key': key } })
    assert.equal((await kubo.id()).id.toString(), d.node.peerId)
    await assert.rejects(create({ url: `${d.url}/api/v0` }).id())
    const ollama = new Ollama({ host: d.url, headers: { authorization: `Bearer ${key}` } })
    assert.deepEqual((await ollama.list()).models, [])
    await assert.rejects(new Ollama({ host: d.url }).list(), (err: any) => err.status_code === 401)
    const openai = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: key, maxRetries: 0 })
    assert.deepEqual((await openai.models.list()).data, [])
    await assert.rejects(new OpenAI({ baseURL: `${d.url}/v1`, apiKey: 'nd_wrong', maxRetries: 0 }).models.list(), (err: any) => err.status === 401)
  })

  it("keeps a model to the account that uploaded it: another account's upload of it is refused, an admin's is not", async () => {
    for (const username of ['owner', 'other']) assert.equal((await call(d, 'POST', '/api/v1/auth/users', admin, { username, password: `${username} secret`, permissions: ['models:write'] })).status, 201)
    const uploadAs = async (headers: Record<string, string>): Promise<{ status: number, body: any }> => {
      const form = new FormData()
      form.append('modelId', 'owned-model')
      const dir = assetDir('tiny-gpt')
      for (const file of await readdir(dir)) form.append('file', new Blob([await readFile(join(dir, file))]), file)
      const res = await fetch(`${d.url}/api/models/upload`, { method: 'POST', headers, body: form, signal: AbortSignal.timeout(120_000) })
      return { status: res.status, body: await res.json() }
    }
    const basic = (username: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${username}:${username} secret`).toString('base64')}` })
    assert.equal((await uploadAs(basic('owner'))).status, 201)
    const refused = await uploadAs(basic('other'))
    assert.deepEqual([refused.status, refused.body.error?.code], [403, 'FORBIDDEN'], JSON.stringify(refused.body))
    assert.equal((await uploadAs(basic('owner'))).status, 201, 'the owner uploads a new version')
    assert.equal((await uploadAs(admin)).status, 201, 'so does an admin')
    const model = await d.node.cluster.getModel('owned-model:latest')
    assert.deepEqual([model.account, model.version], ['owner', 3])
  })

  it('answers 429 to an address that keeps failing to authenticate, and still takes a good key from it', async () => {
    let refused: Awaited<ReturnType<typeof call>> | undefined
    for (let i = 0; i <= FAILED_AUTH && refused == null; i++) {
      const res = await call(d, 'GET', '/api/tags', { 'x-api-key': `nd_guess-${i}` })
      if (res.status === 429) refused = res
      else assert.equal(res.status, 401)
    }
    assert.ok(refused != null, `no 429 within ${FAILED_AUTH + 1} failed attempts`)
    assert.equal(refused.body.error, 'too many failed attempts from this address')
    assert.ok(Number(refused.headers.get('retry-after')) > 0)
    const key = (await call(d, 'POST', '/api/v1/auth/keys', admin, { name: 'after-guesses', permissions: ['models:read'] })).body.key as string
    assert.equal((await call(d, 'GET', '/api/tags', { 'x-api-key': key })).status, 200)
  })
})
