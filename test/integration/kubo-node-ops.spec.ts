import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { create } from 'kubo-rpc-client'
import { rpc, startPair, startTestDaemon } from '../helpers/daemon.ts'
import { collect, ndjson } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

describe('repo, stats, swarm addresses and ping', { timeout: 120_000 }, () => {
  let a: TestDaemon
  let b: TestDaemon
  let client: KuboRPCClient

  before(async () => {
    ;[a, b] = await startPair()
    client = create({ url: `${a.url}/api/v0`, timeout: 30_000 })
  })

  after(async () => {
    await Promise.allSettled([a?.cleanup(), b?.cleanup()])
  })

  it('counts the repo\'s blocks and bytes with repo/stat and stats/repo', async () => {
    const before = await client.repo.stat()
    await client.add('a block of its own for repo/stat\n')
    const after = await client.repo.stat()
    assert.equal(after.numObjects, before.numObjects + 1n)
    assert.ok(after.repoSize > before.repoSize)
    assert.equal(after.storageMax, BigInt(a.node.config.content.storageMax))
    assert.match(after.version, /^fs-repo@/)
    const sizeOnly = await (await rpc(a, 'stats/repo', { 'size-only': 'true' })).json()
    assert.equal(sizeOnly.NumObjects, undefined)
    assert.equal(sizeOnly.RepoSize, Number(after.repoSize))
  })

  it('verifies every block with repo/verify', async () => {
    const lines = await ndjson(await rpc(a, 'repo/verify'))
    const blocks = Number((await client.repo.stat()).numObjects)
    assert.equal(lines.length, blocks + 1)
    assert.deepEqual(lines.at(-1), { Msg: 'verify complete, all blocks validated.', Progress: 0 })
  })

  it('counts the bytes moved with stats/bw', async () => {
    const added = await client.add('bytes that cross the swarm for stats/bw\n')
    const clientB = create({ url: `${b.url}/api/v0`, timeout: 30_000 })
    await collect(clientB.cat(added.cid))
    const [bw] = await collect(client.stats.bw())
    assert.ok(bw.totalIn > 0n && bw.totalOut > 0n, JSON.stringify({ in: String(bw.totalIn), out: String(bw.totalOut) }))
    assert.equal(typeof bw.rateIn, 'number')
    const polled = await collect(client.stats.bw({ poll: true, interval: '100ms' }), 2)
    assert.equal(polled.length, 2)
    assert.equal((await rpc(a, 'stats/bw', { peer: b.node.peerId })).status, 400)
    // Kubo's words for a duration it cannot parse (Go's time.ParseDuration), which its clients match.
    await assert.rejects(collect(client.stats.bw({ poll: true, interval: 'INVALID INTERVAL' })), /invalid duration "INVALID INTERVAL"/)
  })

  it('answers document 002\'s network_usage as the swarm\'s bytes per second since the previous reading', async () => {
    const usage = async (): Promise<number> => (await (await fetch(`${a.url}/api/distributed/metrics`)).json() as { network_usage: number }).network_usage
    const t0 = performance.now()
    await usage()
    const added = await client.add(new Uint8Array(300_000).fill(7))
    const clientB = create({ url: `${b.url}/api/v0`, timeout: 30_000 })
    await collect(clientB.cat(added.cid))
    const moving = await usage()
    const seconds = (performance.now() - t0) / 1000
    // At least the file's bytes crossed, within the time between the two readings.
    assert.ok(moving >= 300_000 / seconds, `${moving} bytes/s, ${300_000 / seconds} at least`)
    assert.ok(await usage() < moving, 'nothing moved since the previous reading')
  })

  it('lists known and local addresses', async () => {
    const known = await client.swarm.addrs()
    assert.ok(known.some(p => p.id.toString() === b.node.peerId), 'b is in the peer store')
    const local = await client.swarm.localAddrs()
    assert.ok(local.some(ma => a.swarmAddr.startsWith(ma.toString())))
    const withId = await (await rpc(a, 'swarm/addrs/local', { id: 'true' })).json()
    assert.ok(withId.Strings.includes(a.swarmAddr))
  })

  it('pings a peer in Kubo\'s lines, and refuses itself', async () => {
    const lines = await collect(client.ping(b.node.peerId as any, { count: 2 }))
    assert.equal(lines.length, 4)
    assert.equal(lines[0].text, `PING ${b.node.peerId}.`)
    assert.ok(lines[1].success && lines[1].time > 0)
    assert.match(lines[3].text, /^Average latency: [\d.]+ms$/)
    // Kubo's Time is a Go time.Duration: integer nanoseconds (a loopback round trip is well over a microsecond).
    const raw = (await (await rpc(a, 'ping', { arg: b.node.peerId, count: '1' })).text()).trim().split('\n').map(l => JSON.parse(l))
    assert.ok(Number.isInteger(raw[1].Time) && raw[1].Time > 1_000 && raw[1].Time < 10e9, String(raw[1].Time))
    assert.deepEqual(raw.map(l => Number.isInteger(l.Time)), [true, true, true])
    // A peer no one knows: the request fails before any line, as Kubo's lookup does, and the client rejects.
    const started = Date.now()
    await assert.rejects(collect(client.ping('QmUmaEnH1uMmvckMZbh3yShaasvELPW4ZLPWnB4entMTEn' as any, { count: 2 })))
    assert.ok(Date.now() - started < 30_000)
    const self = await rpc(a, 'ping', { arg: a.node.peerId })
    assert.equal(self.status, 400)
    assert.equal((await rpc(a, 'ping', { arg: b.node.peerId, count: '0' })).status, 400)
  })

  it('lists the bootstrap peers it started with, and refuses to change them at run time', async () => {
    assert.deepEqual(await client.bootstrap.list(), { Peers: [] })
    const c = await startTestDaemon({ swarm: { bootstrap: [a.swarmAddr] } })
    try {
      const listed = await create({ url: `${c.url}/api/v0`, timeout: 30_000 }).bootstrap.list()
      assert.deepEqual(listed.Peers.map(String), [a.swarmAddr])
    } finally {
      await c.cleanup()
    }
    const res = await rpc(a, 'bootstrap/add', { arg: b.swarmAddr })
    assert.equal(res.status, 400)
    assert.match((await res.json()).Message, /restart/)
  })

  it('disconnects a peer, and says so of one not connected', async () => {
    await client.swarm.disconnect(b.swarmAddr as any)
    assert.equal(a.node.swarm.getConnections().filter(c => c.remotePeer.toString() === b.node.peerId).length, 0)
    const again = await rpc(a, 'swarm/disconnect', { arg: b.swarmAddr })
    assert.equal(again.status, 404)
    assert.equal((await rpc(a, 'swarm/disconnect', { arg: '/not/an/addr' })).status, 400)
  })
})
