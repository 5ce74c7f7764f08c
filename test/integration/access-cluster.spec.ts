/**
 * Credentials are the cluster's: a key made on one node works on the others
 * within a second, a revocation on any node takes effect everywhere within a
 * second, and a JWT issued by one node is taken by another.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { COOKIE_FILE } from '@node-daemon/access'
import { waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const admin = async (d: TestDaemon): Promise<Record<string, string>> => ({ authorization: `Bearer ${(await readFile(join(d.repo, COOKIE_FILE), 'utf8')).trim()}` })
const json = { 'content-type': 'application/json' }

async function status (d: TestDaemon, path: string, headers: Record<string, string>): Promise<number> {
  return (await fetch(`${d.url}${path}`, { headers, signal: AbortSignal.timeout(10_000) })).status
}

/** How long until every node takes (or refuses) the key, read from each node's own credential store every 5 ms, for at most 5 s. */
async function takesEffect (nodes: TestDaemon[], key: string, valid: boolean): Promise<number> {
  const started = Date.now()
  await Promise.all(nodes.map(async d => {
    for (let i = 0; i < 1000 && (d.node.access.credentials.fromSecret(key) != null) !== valid; i++) await new Promise(resolve => setTimeout(resolve, 5))
  }))
  return Date.now() - started
}

describe('credentials across a three-node cluster', { timeout: 180_000 }, () => {
  const nodes: TestDaemon[] = []
  before(async () => {
    nodes.push(await startTestDaemon())
    for (let i = 0; i < 2; i++) nodes.push(await startTestDaemon({ swarm: { bootstrap: [nodes[0].swarmAddr] } }))
    await waitFor('three voters', async () => nodes[0].node.cluster.status().voters.length === 3, 60_000)
  })
  after(async () => { await Promise.all(nodes.map(async d => d.cleanup())) })

  it('takes a key made on one node on every node within a second, and a revocation on another everywhere', async () => {
    const [a, b, c] = nodes
    // Another key stays, so that requests still need one once this key is revoked.
    assert.equal((await fetch(`${a.url}/api/v1/auth/keys`, { method: 'POST', headers: { ...await admin(a), ...json }, body: JSON.stringify({ name: 'other', permissions: ['*'] }) })).status, 201)
    const res = await fetch(`${a.url}/api/v1/auth/keys`, { method: 'POST', headers: { ...await admin(a), ...json }, body: JSON.stringify({ name: 'shared', permissions: ['models:read'] }) })
    assert.equal(res.status, 201)
    const { key, id } = await res.json() as { key: string, id: string }
    const spread = await takesEffect([b, c], key, true)
    assert.ok(spread < 1000, `the key took ${spread} ms to work everywhere`)
    for (const d of [b, c]) assert.equal(await status(d, '/api/tags', { 'x-api-key': key }), 200)
    const revoke = await fetch(`${b.url}/api/v1/auth/keys/${id}`, { method: 'DELETE', headers: await admin(b) })
    assert.equal(revoke.status, 200)
    const revoked = await takesEffect([a, c], key, false)
    assert.ok(revoked < 1000, `the revocation took ${revoked} ms to hold everywhere`)
    for (const d of nodes) assert.equal(await status(d, '/api/tags', { 'x-api-key': key }), 401)
  })

  it("takes a JWT issued by another node, once that node's key is published", async () => {
    const [a, , c] = nodes
    const added = await fetch(`${a.url}/api/v1/auth/users`, { method: 'POST', headers: { ...await admin(a), ...json }, body: JSON.stringify({ username: 'grace', password: 'lovelace-engine', permissions: ['models:read'] }) })
    assert.equal(added.status, 201)
    const login = await fetch(`${c.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'grace', password: 'lovelace-engine' }) })
    assert.equal(login.status, 200)
    const { token } = await login.json() as { token: string }
    await waitFor("every node's key in the cluster", async () => a.node.cluster.credentials.signingKey(c.node.access.jwt.kid) != null, 10_000)
    assert.equal(await status(a, '/api/tags', { authorization: `Bearer ${token}` }), 200)
  })
})
