import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { normalizeEndpoint, RemotePinning } from '../src/index.ts'
import type { PinStatus } from '../src/index.ts'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'

describe('normalizeEndpoint', () => {
  it('keeps endpoints as Kubo does, and refuses what Kubo refuses', () => {
    assert.equal(normalizeEndpoint('https://pins.example//api//v1/'), 'https://pins.example/api/v1')
    assert.equal(normalizeEndpoint('http://127.0.0.1:8000/api/pinning/v1/.'), 'http://127.0.0.1:8000/api/pinning/v1')
    assert.equal(normalizeEndpoint('https://pins.example'), 'https://pins.example')
    for (const [endpoint, message] of [['ftp://pins.example', /valid HTTP URL/], ['pins.example', /valid HTTP URL/], ['https://pins.example/api?x=1', /query parameters/], ['https://pins.example/pins/', /\/pins suffix/]] as const) {
      assert.throws(() => normalizeEndpoint(endpoint), { name: 'InvalidRemotePinningError', message })
    }
  })
})

describe('RemotePinning.ls', () => {
  /** 2,500 pinned requests, one a second, newest first, served in pages as the spec says. */
  const all: PinStatus[] = Array.from({ length: 2500 }, (_, i) => ({
    requestid: `r${i}`,
    status: 'pinned',
    created: new Date(Date.UTC(2026, 0, 1) - i * 1000).toISOString(),
    pin: { cid: `bafk${i}` },
    delegates: ['/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGC6TvWhfapngX6wvJHMYvKpDMXPb3ZnCZ6dMoaMtimQ5']
  }))
  let server: Server
  let endpoint: string
  const asked: string[] = []

  before(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x')
      asked.push(url.search)
      if (req.headers.authorization !== 'Bearer k') {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { reason: 'UNAUTHORIZED', details: 'no' } }))
        return
      }
      const before = url.searchParams.get('before')
      const matching = all.filter(s => before == null || s.created < before)
      const limit = Number(url.searchParams.get('limit') ?? 10)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: matching.length, results: matching.slice(0, limit) }))
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => { await new Promise(resolve => server.close(resolve)) })

  const remote = (): RemotePinning => new RemotePinning({
    services: { s: { endpoint, key: 'k' }, wrong: { endpoint, key: 'nope' } },
    save: async () => {},
    resolve: async (path) => path,
    has: async () => false,
    addrs: () => [],
    connect: async () => {},
    log: { info: () => {} }
  })

  it('walks every page, each older than the last', async () => {
    asked.length = 0
    const seen: string[] = []
    for await (const pin of remote().ls({ service: 's' })) seen.push(pin.Cid)
    assert.equal(seen.length, all.length)
    assert.equal(new Set(seen).size, all.length)
    assert.equal(asked.length, 3)
    assert.ok(asked.every(q => q.includes('status=pinned') && q.includes('limit=1000')))
  })

  it('tells what the service refused, and refuses a bulk rm without force', async () => {
    await assert.rejects(remote().ls({ service: 'wrong' }).next(), { name: 'RemotePinningRefusedError', message: /UNAUTHORIZED: no/ })
    await assert.rejects(remote().ls({ service: 'none' }).next(), { name: 'RemoteServiceNotFoundError' })
    await assert.rejects(remote().rm({ service: 's' }), { name: 'InvalidRemotePinningError', message: /--force/ })
  })
})
