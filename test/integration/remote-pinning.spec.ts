/**
 * Remote pinning between a two-node cluster A and a node B that is not
 * connected to it: A serves the Pinning Service API over its pinset, with
 * credentials; B keeps A as a remote service (Kubo's pin/remote/service) and
 * pins what it holds there (pin/remote add, through kubo-rpc-client). A's
 * nodes dial B through the origins and fetch the blocks from it, and a pin
 * is `pinned` once both hold it. Bad tokens and bad input get the spec's
 * Failure shape with a 4xx.
 */
import assert from 'node:assert/strict'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { COOKIE_FILE } from '@node-daemon/access'
import { CONFIG_FILE } from '@node-daemon/daemon'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { waitFor } from '../helpers/cluster.ts'
import { call, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

const API = '/api/pinning/v1'

/** A raw-leaf identity CID: pinned at once, since its block is inside it. */
const inline = (text: string): string => CID.createV1(0x55, identity.digest(new TextEncoder().encode(text))).toString()

/** The spec's Failure, with the reason expected. */
function assertFailure (answer: { status: number, body: any }, status: number, reason: string): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body))
  assert.deepEqual(Object.keys(answer.body), ['error'])
  assert.equal(answer.body.error.reason, reason)
  assert.equal(typeof answer.body.error.details, 'string')
}

describe('remote pinning: a two-node cluster is a node\'s pinning service', { timeout: 240_000 }, () => {
  let a: TestDaemon
  let a2: TestDaemon
  let b: TestDaemon
  let clientB: KuboRPCClient
  let bearer: Record<string, string>
  let admin: Record<string, string>
  let token: string

  before(async () => {
    a = await startTestDaemon()
    a2 = await startTestDaemon({ swarm: { bootstrap: [a.swarmAddr] } }).catch(async (err) => { await a.cleanup(); throw err })
    b = await startTestDaemon().catch(async (err) => { await Promise.all([a.cleanup(), a2.cleanup()]); throw err })
    await waitFor('A\'s two nodes as voters', async () => a.node.cluster.status().voters.length === 2, 60_000)
    admin = { authorization: `Bearer ${(await readFile(join(a.repo, COOKIE_FILE), 'utf8')).trim()}` }
    // Once A has a credential, every request to it needs one.
    const made = await call(a, 'POST', '/api/v1/auth/keys', admin, { name: 'remote-pinner', permissions: ['pins'] })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    token = made.body.key
    bearer = { authorization: `Bearer ${token}` }
    await waitFor('the key on A\'s second node', async () => a2.node.access.credentials.fromSecret(token) != null, 30_000)
    clientB = create({ url: `${b.url}/api/v0`, timeout: 60_000 })
  })
  after(async () => {
    await b?.cleanup()
    await a2?.cleanup()
    await a?.cleanup()
  })

  it('keeps remote services in the settings, never showing their keys', async () => {
    await clientB.pin.remote.service.add('a', { endpoint: new URL(`${a.url}${API}/`), key: token })
    await assert.rejects(clientB.pin.remote.service.add('a', { endpoint: new URL(`${a.url}${API}`), key: token }), /service already present/)
    const bad = await rpc(b, 'pin/remote/service/add', { arg: ['x', 'ftp://example.com', 'k'] })
    assert.equal(bad.status, 400)
    assert.match((await bad.json()).Message, /valid HTTP URL/)
    const pins = await rpc(b, 'pin/remote/service/add', { arg: ['x', `${a.url}${API}/pins`, 'k'] })
    assert.equal(pins.status, 400)

    assert.deepEqual(await clientB.pin.remote.service.ls(), [{ service: 'a', endpoint: new URL(`${a.url}${API}`) }])
    const [withStat] = await clientB.pin.remote.service.ls({ stat: true })
    assert.deepEqual(withStat.stat, { status: 'valid', pinCount: { queued: 0, pinning: 0, pinned: 0, failed: 0 } })
    for (const path of ['pin/remote/service/ls', 'config/show']) {
      const text = await (await rpc(b, path, { stat: 'true' })).text()
      assert.ok(!text.includes(token), `${path} shows no key`)
    }
    const config = await (await rpc(b, 'config/show')).json()
    assert.deepEqual(config.pinning.remoteServices, { a: { endpoint: `${a.url}${API}` } })
    // Saved where the daemon reads its settings, readable by its owner only.
    const file = join(b.repo, CONFIG_FILE)
    const escaped = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
    assert.match(await readFile(file, 'utf8'), new RegExp(`remote_services:\\s+a:\\s+endpoint: ${escaped(`${a.url}${API}`)}\\s+key: ${escaped(token)}`))
    assert.equal((await stat(file)).mode & 0o777, 0o600)
  })

  it('dials the origins of a pin request, and fetches the content from them', async () => {
    for (const d of [a, a2]) assert.ok(!d.node.peers().some(p => p.peer === b.node.peerId), 'A and B are not connected yet')
    const { cid } = await clientB.add(`from the origins ${Date.now()} ${Math.random()}`)
    const added = await call(a, 'POST', `${API}/pins`, bearer, { cid: cid.toString(), origins: [b.swarmAddr] })
    assert.equal(added.status, 202, JSON.stringify(added.body))
    let status = added.body.status
    for (let i = 0; i < 150 && status !== 'pinned'; i++) {
      await new Promise(resolve => setTimeout(resolve, 200))
      status = (await call(a, 'GET', `${API}/pins/${cid.toString()}`, bearer)).body.status
    }
    assert.equal(status, 'pinned')
    for (const d of [a, a2]) assert.ok(d.node.peers().some(p => p.peer === b.node.peerId), 'each of A\'s nodes dialled B')
    const [report] = await a.node.cluster.pinStatus(cid.toString())
    assert.deepEqual(report.peers.map(p => p.status), ['pinned', 'pinned'])
    assert.equal((await call(a, 'GET', `${API}/pins/${cid.toString()}`, bearer)).body.pin.origins[0], b.swarmAddr)
    assert.equal((await fetch(`${a.url}${API}/pins/${cid.toString()}`, { method: 'DELETE', headers: bearer })).status, 202)
  })

  it('pins what B holds on A with pin/remote add, B offering itself as an origin', async () => {
    const { cid } = await clientB.add(`remote pinning ${Date.now()} ${Math.random()}`)
    const pinned = await clientB.pin.remote.add(cid, { service: 'a', name: 'from-b' })
    assert.deepEqual([pinned.cid.toString(), pinned.name, pinned.status], [cid.toString(), 'from-b', 'pinned'])

    // A's cluster holds it: its record, its own pin and the blocks.
    const [report] = await a.node.cluster.pinStatus(cid.toString())
    assert.deepEqual(report.peers.map(p => p.status), ['pinned', 'pinned'])
    const local = await rpc(a, 'pin/ls', { arg: cid.toString(), offline: 'true' }, { headers: admin })
    assert.equal((await local.json()).Keys[cid.toString()].Type, 'recursive')

    // Any node of the cluster answers for its pinset.
    const status = await call(a2, 'GET', `${API}/pins/${cid.toString()}`, bearer)
    assert.equal(status.status, 200)
    assert.equal(status.body.requestid, cid.toString())
    assert.equal(status.body.status, 'pinned')
    assert.deepEqual(status.body.pin.name, 'from-b')
    assert.ok(status.body.pin.origins.some((o: string) => o.endsWith(`/p2p/${b.node.peerId}`)), 'B offered itself as an origin')
    assert.ok(status.body.delegates.length > 0 && status.body.delegates.every((d: string) => d.endsWith(`/p2p/${a2.node.peerId}`)))
    assert.ok(!Number.isNaN(Date.parse(status.body.created)))

    const listed = []
    for await (const pin of clientB.pin.remote.ls({ service: 'a' })) listed.push(pin)
    assert.deepEqual(listed.map(p => [p.cid.toString(), p.name, p.status]), [[cid.toString(), 'from-b', 'pinned']])
    const queued = []
    for await (const pin of clientB.pin.remote.ls({ service: 'a', status: ['queued', 'pinning', 'failed'] })) queued.push(pin)
    assert.deepEqual(queued, [])
    const byName = []
    for await (const pin of clientB.pin.remote.ls({ service: 'a', name: 'from-b', cid: [cid] })) byName.push(pin)
    assert.equal(byName.length, 1)

    await clientB.pin.remote.rm({ service: 'a', cid: [cid] })
    await assert.rejects(a.node.cluster.pin(cid.toString()), (err: Error) => err.name === 'PinNotFoundError')
    const after = []
    for await (const pin of clientB.pin.remote.ls({ service: 'a' })) after.push(pin)
    assert.deepEqual(after, [])
  })

  it('serves the spec: name, meta, filters, replace and delete', async () => {
    const one = inline('one')
    const two = inline('two')
    const added = await call(a, 'POST', `${API}/pins`, bearer, { cid: one, name: 'Report.PDF', meta: { app_id: 'x1' } })
    assert.equal(added.status, 202, JSON.stringify(added.body))
    assert.deepEqual(added.body.pin, { cid: one, name: 'Report.PDF', meta: { app_id: 'x1' } })
    assert.ok(['queued', 'pinning', 'pinned'].includes(added.body.status))
    const second = await call(a, 'POST', `${API}/pins`, bearer, { cid: two, name: 'other', meta: { app_id: 'x2' } })
    assert.equal(second.status, 202)

    const all = '&status=queued,pinning,pinned,failed'
    const list = async (query: string): Promise<string[]> => {
      const res = await call(a, 'GET', `${API}/pins?${query}${all}`, bearer)
      assert.equal(res.status, 200, JSON.stringify(res.body))
      assert.equal(res.body.count >= res.body.results.length, true)
      return res.body.results.map((r: any) => r.requestid)
    }
    assert.deepEqual(await list('name=report.pdf'), [])
    assert.deepEqual(await list('name=report.pdf&match=iexact'), [one])
    assert.deepEqual(await list('name=port&match=ipartial'), [one])
    assert.deepEqual(await list(`meta=${encodeURIComponent(JSON.stringify({ app_id: 'x2' }))}`), [two])
    assert.deepEqual(await list(`cid=${one},${two}`), [two, one], 'newest first')
    assert.deepEqual(await list(`cid=${one},${two}&limit=1`), [two])
    assert.deepEqual(await list(`cid=${one},${two}&before=${encodeURIComponent(second.body.created)}`), [one])
    assert.deepEqual(await list(`cid=${one},${two}&after=${encodeURIComponent(added.body.created)}`), [two])
    const counted = await call(a, 'GET', `${API}/pins?cid=${one},${two}&limit=1${all}`, bearer)
    assert.equal(counted.body.count, 2)

    const three = inline('three')
    const replaced = await call(a, 'POST', `${API}/pins/${one}`, bearer, { cid: three, name: 'Report.PDF' })
    assert.equal(replaced.status, 202, JSON.stringify(replaced.body))
    assert.equal(replaced.body.requestid, three)
    assertFailure(await call(a, 'GET', `${API}/pins/${one}`, bearer), 404, 'NOT_FOUND')

    for (const id of [two, three]) {
      const removed = await fetch(`${a.url}${API}/pins/${id}`, { method: 'DELETE', headers: bearer })
      assert.equal(removed.status, 202)
      assertFailure(await call(a, 'GET', `${API}/pins/${id}`, bearer), 404, 'NOT_FOUND')
    }
    assertFailure(await call(a, 'DELETE', `${API}/pins/${two}`, bearer), 404, 'NOT_FOUND')

    // The served OpenAPI document names the mount and the routes.
    const document = await (await fetch(`${a.url}/api/v0/openapi.json`, { headers: admin })).json() as any
    assert.deepEqual(Object.keys(document.paths[`${API}/pins`]).sort(), ['get', 'post'])
    assert.deepEqual(Object.keys(document.paths[`${API}/pins/{requestid}`]).sort(), ['delete', 'get', 'post'])
    assert.match(document.tags.find((t: any) => t.name === 'pinning service').description, new RegExp(API))
  })

  it('refuses bad tokens and bad input in the spec\'s Failure shape', async () => {
    assertFailure(await call(a, 'GET', `${API}/pins`), 401, 'UNAUTHORIZED')
    assertFailure(await call(a, 'GET', `${API}/pins`, { authorization: 'Bearer nd_wrong' }), 401, 'UNAUTHORIZED')
    const reader = await call(a, 'POST', '/api/v1/auth/keys', admin, { name: 'reader', permissions: ['content:read'] })
    assertFailure(await call(a, 'POST', `${API}/pins`, { authorization: `Bearer ${reader.body.key as string}` }, { cid: inline('x') }), 403, 'FORBIDDEN')

    for (const body of [{}, { cid: 'not-a-cid' }, { cid: inline('x'), color: 'red' }, { cid: inline('x'), meta: { a: { b: 'c' } } }, { cid: inline('x'), origins: ['/ip4/1.2.3.4/tcp/1'] }, { cid: inline('x'), name: 'n'.repeat(256) }]) {
      assertFailure(await call(a, 'POST', `${API}/pins`, bearer, body), 400, 'BAD_REQUEST')
    }
    for (const query of ['status=done', 'limit=0', 'limit=1001', 'meta=nope', 'meta=%5B%5D', 'cid=nope', 'before=yesterday', `cid=${Array.from({ length: 11 }, (_, i) => inline(String(i))).join(',')}`]) {
      assertFailure(await call(a, 'GET', `${API}/pins?${query}`, bearer), 400, 'BAD_REQUEST')
    }
    assertFailure(await call(a, 'GET', `${API}/pins/nope`, bearer), 404, 'NOT_FOUND')
    assertFailure(await call(a, 'GET', `${API}/nothing-here`, bearer), 404, 'NOT_FOUND')
    assertFailure(await call(a, 'POST', `${API}/pins/nope`, bearer, { cid: inline('x') }), 404, 'NOT_FOUND')
  })

  it('tells what the remote service refused, and forgets a removed service', async () => {
    await clientB.pin.remote.service.add('wrong-key', { endpoint: new URL(`${a.url}${API}`), key: 'nd_wrong' })
    const [, wrong] = await clientB.pin.remote.service.ls({ stat: true })
    assert.deepEqual([wrong.service, wrong.stat?.status], ['wrong-key', 'invalid'])
    const refused = await rpc(b, 'pin/remote/add', { arg: inline('y'), service: 'wrong-key' })
    assert.equal(refused.status, 400)
    assert.match((await refused.json()).Message, /UNAUTHORIZED/)
    await assert.rejects(clientB.pin.remote.add(CID.parse(inline('y')), { service: 'nope' }), /service not known/)
    const noService = await rpc(b, 'pin/remote/ls')
    assert.equal(noService.status, 400)
    const badStatus = await rpc(b, 'pin/remote/ls', { service: 'a', status: 'done' })
    assert.equal(badStatus.status, 400)

    // Two pins match an unfiltered rm: Kubo wants --force for that.
    for (const text of ['p', 'q']) await clientB.pin.remote.add(CID.parse(inline(text)), { service: 'a' })
    const many = await rpc(b, 'pin/remote/rm', { service: 'a' })
    assert.equal(many.status, 400)
    assert.match((await many.json()).Message, /add --force/)
    await clientB.pin.remote.rmAll({ service: 'a' })
    assert.deepEqual(await a.node.cluster.pins(), [])

    await clientB.pin.remote.service.rm('wrong-key')
    await clientB.pin.remote.service.rm('a')
    await clientB.pin.remote.service.rm('a')
    assert.deepEqual(await clientB.pin.remote.service.ls(), [])
    assert.doesNotMatch(await readFile(join(b.repo, CONFIG_FILE), 'utf8'), /remote_services/)
  })
})
