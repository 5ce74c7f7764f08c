import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { AccessGuard, Credentials, defaultAccessConfig, hashPassword, hashSecret, JwtAuthority, mergeAccessConfig, parseAccessConfig, StaticDirectory } from '../src/index.ts'
import type { AccessConfig, RequestFacts, StoredCredential } from '../src/index.ts'

const facts = (over: Partial<RequestFacts> = {}): RequestFacts => ({ method: 'POST', route: '/api/v0/cat', headers: { host: '127.0.0.1:8000' }, query: {}, ip: '127.0.0.1', permission: 'content:read', ...over })
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

describe('the access guard', () => {
  let dir: string
  let jwt: JwtAuthority
  let users: StoredCredential[]

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'guard-'))
    jwt = await JwtAuthority.open({ keyFile: join(dir, 'jwt.key'), issuer: 'node-daemon', audience: 'node-daemon', expirySeconds: 600 })
    users = [{ id: 'u1', kind: 'user', name: 'ada', permissions: ['models:read', 'inference'], hash: await hashPassword('correct horse') }]
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  function guard (credentials: StoredCredential[], config: Partial<AccessConfig> = {}, loopback = true, adminToken?: string): AccessGuard {
    return new AccessGuard({
      credentials: new Credentials({ directories: [new StaticDirectory(credentials)], adminTokenHash: adminToken == null ? undefined : hashSecret(adminToken) }),
      jwt,
      clusterKey: () => undefined
    }, { config: mergeAccessConfig(defaultAccessConfig(), config), loopback })
  }

  it('serves local processes without credentials on a loopback node that has none, but not foreign Hosts or origins', async () => {
    const g = guard([])
    assert.equal(g.enabled(), false)
    assert.equal((await g.check(facts()))?.kind, 'local')
    assert.equal((await g.check(facts({ headers: { host: 'localhost:8000', authorization: 'Bearer whatever-openai-sends' } })))?.kind, 'local')
    await assert.rejects(g.check(facts({ headers: { host: 'evil.example:8000' } })), { name: 'AuthorizationError', message: /Host/ })
    await assert.rejects(g.check(facts({ headers: { host: '127.0.0.1:8000', origin: 'http://evil.example' } })), { name: 'AuthorizationError', message: /origin/ })
    await assert.rejects(g.check(facts({ headers: { host: '127.0.0.1:8000', origin: 'null' } })), { name: 'AuthorizationError' })
    await assert.rejects(g.check(facts({ headers: { host: '127.0.0.1:8000', 'sec-fetch-site': 'cross-site' } })), { name: 'AuthorizationError', message: /other sites/ })
    assert.equal((await g.check(facts({ headers: { host: '127.0.0.1:8000', origin: 'http://127.0.0.1:8000' } })))?.kind, 'local', 'its own pages')
    const cors = guard([], { cors: { origins: ['http://ui.example:3000'], methods: [], headers: [] } })
    assert.equal((await cors.check(facts({ headers: { host: '127.0.0.1:8000', origin: 'http://ui.example:3000' } })))?.kind, 'local')
  })

  it('needs credentials once any exist, or beyond loopback, and checks each scheme', async () => {
    const key = 'nd_key-one'
    const g = guard([{ id: 'k1', kind: 'api_key', name: 'reader', permissions: ['cat', 'ls'], hash: hashSecret(key) }, ...users], {}, true, 'admin-secret')
    assert.equal(g.enabled(), true)
    assert.equal(guard([], {}, false).enabled(), true, 'an open address needs credentials even with none configured')
    await assert.rejects(g.check(facts()), { name: 'AuthenticationError', message: /credentials are required/ })
    assert.equal((await g.check(facts({ headers: { 'x-api-key': key } })))?.name, 'reader')
    assert.equal((await g.check(facts({ query: { api_key: key } })))?.name, 'reader')
    assert.equal((await g.check(facts({ headers: { authorization: `Bearer ${key}` } })))?.name, 'reader')
    await assert.rejects(g.check(facts({ headers: { 'x-api-key': 'nd_wrong' } })), { name: 'AuthenticationError', message: /invalid API key/ })
    await assert.rejects(g.check(facts({ headers: { 'x-api-key': key }, permission: 'pins' })), { name: 'AuthorizationError', message: /lacks the pins permission/ })
    assert.equal((await g.check(facts({ headers: { authorization: basic('ada', 'correct horse') }, permission: 'inference' })))?.name, 'ada')
    await assert.rejects(g.check(facts({ headers: { authorization: basic('ada', 'wrong') } })), { name: 'AuthenticationError' })
    await assert.rejects(g.check(facts({ headers: { authorization: 'Digest x' } })), { name: 'AuthenticationError', message: /Bearer/ })
    assert.equal((await g.check(facts({ headers: { authorization: 'Bearer admin-secret' }, permission: 'auth:admin' })))?.kind, 'admin')
    assert.equal(await g.check(facts({ permission: 'public' })), undefined, 'public routes need nothing')
    await assert.rejects(g.check(facts({ permission: 'public', headers: { 'x-api-key': 'nd_wrong' } })), { name: 'AuthenticationError' }, 'but a wrong credential is still wrong')
  })

  it('refuses expired keys, and takes a JWT for its user as the user is now', async () => {
    const g = guard([{ id: 'old', kind: 'api_key', name: 'old', permissions: ['*'], hash: hashSecret('nd_old'), expiresAt: '2020-01-01T00:00:00Z' }, ...users])
    await assert.rejects(g.check(facts({ headers: { 'x-api-key': 'nd_old' } })), { name: 'AuthenticationError' })
    const { token } = await jwt.issue('ada', ['*'])
    const principal = await g.check(facts({ headers: { authorization: `Bearer ${token}` }, permission: 'inference' }))
    assert.equal(principal?.kind, 'jwt')
    // A browser's WebSocket (the web console's) can send no header: its JWT comes as api_key.
    assert.equal((await g.check(facts({ query: { api_key: token }, permission: 'inference' })))?.kind, 'jwt')
    await assert.rejects(g.check(facts({ headers: { authorization: `Bearer ${token}` }, permission: 'pins' })), { name: 'AuthorizationError' }, "the user's permissions, not the claim's")
    const withoutAda = guard([{ id: 'k', kind: 'api_key', name: 'k', permissions: ['*'], hash: hashSecret('nd_k') }])
    await assert.rejects(withoutAda.check(facts({ headers: { authorization: `Bearer ${token}` } })), { name: 'AuthenticationError', message: /no longer exists/ })
  })

  it('counts requests per credential or address, in the class of the route', async () => {
    const g = guard([{ id: 'k1', kind: 'api_key', name: 'k', permissions: ['*'], hash: hashSecret('nd_k') }], parseAccessConfig({ rate_limits: { endpoints: { '/api/v0/add': { requests: 20, period: '1m' } } } }, 'test'))
    const principal = await g.check(facts({ headers: { 'x-api-key': 'nd_k' } }))
    assert.deepEqual(g.bucket(facts(), principal, undefined), { key: 'authenticated|api_key:k1', limit: { requests: 1000, periodMs: 60_000 } })
    assert.deepEqual(g.bucket(facts(), undefined, undefined)?.key, 'anonymous|ip:127.0.0.1')
    assert.equal(g.bucket(facts(), principal, 'training-start')?.limit.requests, 10)
    assert.deepEqual(g.bucket(facts({ route: '/api/v0/add' }), principal, undefined)?.limit, { requests: 20, periodMs: 60_000 })
    assert.equal(guard([]).bucket(facts(), undefined, undefined), undefined, 'no limits where no credentials are needed')
  })
})

describe('access config', () => {
  it("reads document 000's auth methods, hashing plain keys, and refuses what it cannot use", async () => {
    const config = parseAccessConfig({
      auth: {
        methods: [
          { type: 'api_key', keys: [{ key: 'your-api-key-here', name: 'admin', permissions: ['*'] }, { key_hash: hashSecret('x'), name: 'reader', permissions: ['cat', 'ls', 'get'] }] },
          { type: 'bearer_token', tokens: [{ token: 'your-token-here', name: 'service-account', permissions: ['*'] }] },
          { type: 'basic_auth', users: [{ username: 'admin', password_hash: await hashPassword('pw'), permissions: ['*'] }] }
        ],
        jwt: { token_expiry: '12h' }
      },
      cors: { origins: ['https://dashboard.example'], methods: ['get', 'post'] },
      cors_origins: ['http://localhost:3000']
    }, 'config.yaml')
    assert.deepEqual(config.credentials?.map(c => [c.kind, c.name]), [['api_key', 'admin'], ['api_key', 'reader'], ['bearer_token', 'service-account'], ['user', 'admin']])
    assert.equal(config.credentials?.[0].hash, hashSecret('your-api-key-here'))
    assert.ok(!JSON.stringify(config).includes('your-api-key-here'), 'no secret is kept')
    assert.equal(config.jwt?.expiryMs, 12 * 3600_000)
    assert.deepEqual(config.cors?.origins, ['https://dashboard.example', 'http://localhost:3000'])
    for (const [doc, message] of [
      [{ auth: { methods: [{ type: 'api_key', keys: [{ key: 'k', permissions: ['fly'] }] }] } }, /"fly" is not a permission/],
      [{ auth: { methods: [{ type: 'basic_auth', users: [{ username: 'a', password_hash: 'plain' }] }] } }, /bcrypt/],
      [{ auth: { methods: [{ type: 'oauth' }] } }, /api_key, bearer_token or basic_auth/],
      [{ auth: { jwt: { token_expiry: 'forever' } } }, /duration/],
      [{ rate_limits: { default: { requests: -1 } } }, /positive/],
      [{ auth: { enabld: true } }, /unknown setting "auth.enabld"/]
    ] as const) {
      assert.throws(() => parseAccessConfig(doc, 'config.yaml'), { name: 'AccessConfigError', message: message as RegExp })
    }
  })
})
