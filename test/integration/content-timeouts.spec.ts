import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { request } from 'node:http'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { IncomingMessage } from 'node:http'

/** A CID of bytes nobody ever stored. */
async function nobodyHas (): Promise<string> {
  return CID.createV1(raw.code, await sha256.digest(randomBytes(32))).toString()
}

type Params = Record<string, string>

/** Every route that reads content, asked for `cid`. */
const ROUTES: Array<[string, (d: TestDaemon, cid: string, params: Params) => Promise<Response>]> = [
  ['cat', async (d, cid, params) => rpc(d, 'cat', { arg: cid, ...params })],
  ['ls', async (d, cid, params) => rpc(d, 'ls', { arg: cid, ...params })],
  ['pin/add', async (d, cid, params) => rpc(d, 'pin/add', { arg: cid, ...params })],
  ['block/get', async (d, cid, params) => rpc(d, 'block/get', { arg: cid, ...params })],
  ['block/stat', async (d, cid, params) => rpc(d, 'block/stat', { arg: cid, ...params })],
  ['dag/get', async (d, cid, params) => rpc(d, 'dag/get', { arg: cid, ...params })],
  ['stream/media', async (d, cid, params) => fetch(`${d.url}/api/v0/stream/media?${new URLSearchParams({ arg: cid, ...params })}`, { signal: AbortSignal.timeout(60_000) })]
]

/** Asks every content route for `cid` and checks each answers `status` and `type` within `withinMs`. */
async function expectEvery (d: TestDaemon, cid: string, params: Params, status: number, type: string, withinMs: number, message?: RegExp): Promise<void> {
  await Promise.all(ROUTES.map(async ([name, ask]) => {
    const started = performance.now()
    const res = await ask(d, cid, params)
    const elapsed = performance.now() - started
    const body = await res.json() as { error_type: string, status_code: number, Message: string }
    assert.equal(res.status, status, `${name}: ${JSON.stringify(body)}`)
    assert.equal(body.error_type, type, name)
    if (message != null) assert.match(body.Message, message, name)
    assert.ok(elapsed < withinMs, `${name} answered after ${Math.round(elapsed)} ms`)
  }))
}

/** The first text message of the media WebSocket for `cid`, and its close code. */
async function wsMedia (d: TestDaemon, cid: string, params: Params = {}): Promise<{ message: { error_type: string, status_code: number }, code: number }> {
  const ws = new WebSocket(`${d.url.replace('http', 'ws')}/ws/v0/stream/media?${new URLSearchParams(params)}`)
  const messages: string[] = []
  const code = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { ws.close(); reject(new Error('the socket did not close')) }, 30_000)
    ws.onmessage = (evt) => { if (typeof evt.data === 'string') messages.push(evt.data) }
    ws.onclose = (evt) => { clearTimeout(timer); resolve(evt.code) }
    ws.onopen = () => { ws.send(JSON.stringify({ cid })) }
  })
  return { message: JSON.parse(messages[0] ?? '{}'), code }
}

/** Reads a response's body to its end; rejects when the stream breaks off. */
async function drainBody (res: Response): Promise<number> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  let bytes = 0
  for (let chunk = await reader.read(); chunk.done !== true; chunk = await reader.read()) bytes += chunk.value.byteLength
  return bytes
}

/** POSTs the first bytes of a body that never ends, and reads the answer (bounded to 30 s). */
async function stalledUpload (url: string, headers: Record<string, string>, first: Uint8Array): Promise<{ status: number, body: string }> {
  const req = request(url, { method: 'POST', headers })
  req.on('error', () => {})
  const timer = setTimeout(() => { req.destroy(new Error('no answer within 30 s')) }, 30_000)
  try {
    req.write(first)
    const [res] = await once(req, 'response') as [IncomingMessage]
    let body = ''
    for await (const chunk of res) body += String(chunk)
    return { status: res.statusCode ?? 0, body }
  } finally {
    clearTimeout(timer)
    req.destroy()
  }
}

describe('content that no node has', { timeout: 180_000 }, () => {
  // A short deadline for tests; the default is 2 minutes.
  const DEADLINE = 1500
  let lone: TestDaemon
  let a: TestDaemon
  let b: TestDaemon

  before(async () => {
    ;[lone, a, b] = await Promise.all([0, 1, 2].map(async () => startTestDaemon({ content: { timeoutMs: DEADLINE } })))
    await b.node.connect(a.swarmAddr)
  })

  after(async () => {
    await Promise.allSettled([lone?.cleanup(), a?.cleanup(), b?.cleanup()])
  })

  it('ends every content route in a 504 IPFSTimeoutError at the default deadline, on a lone daemon', async () => {
    await expectEvery(lone, await nobodyHas(), {}, 504, 'IPFSTimeoutError', DEADLINE + 8000, /no node provided block/)
  })

  it('does so on a daemon with a peer that lacks the content too', async () => {
    assert.ok(b.node.peers().length > 0)
    await expectEvery(b, await nobodyHas(), {}, 504, 'IPFSTimeoutError', DEADLINE + 8000, /no node provided block/)
  })

  it('ends every content route at Kubo\'s timeout option, shorter than the deadline', async () => {
    await expectEvery(b, await nobodyHas(), { timeout: '300ms' }, 504, 'IPFSTimeoutError', 1200 + 5000, /request timed out after 300ms: context deadline exceeded/)
  })

  it('answers 404 at once with offline=true', async () => {
    await expectEvery(b, await nobodyHas(), { offline: 'true' }, 404, 'IPFSContentNotFoundError', 1000 + 3000, /not on this node/)
    // What is here is served offline all the same.
    const added = await (await rpc(b, 'add', {}, { body: formOf([{ path: 'here.txt', content: 'here' }]) })).json() as { Hash: string }
    const res = await rpc(b, 'cat', { arg: added.Hash, offline: 'true' })
    assert.equal(await res.text(), 'here')
  })

  it('ends the media WebSocket with the 504 envelope, and a 404 offline', async () => {
    const timedOut = await wsMedia(b, await nobodyHas())
    assert.deepEqual([timedOut.message.status_code, timedOut.message.error_type, timedOut.code], [504, 'IPFSTimeoutError', 1008])
    const kubo = await wsMedia(b, await nobodyHas(), { timeout: '300ms' })
    assert.deepEqual([kubo.message.status_code, kubo.message.error_type], [504, 'IPFSTimeoutError'])
    const offline = await wsMedia(b, await nobodyHas(), { offline: 'true' })
    assert.deepEqual([offline.message.status_code, offline.message.error_type], [404, 'IPFSContentNotFoundError'])
  })

  it('ends an add or a raw upload that stalls at Kubo\'s timeout', async () => {
    const multipart = { 'content-type': 'multipart/form-data; boundary=B' }
    const part = Buffer.concat([Buffer.from('--B\r\nContent-Disposition: form-data; name="file"; filename="stalled.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'), randomBytes(300_000)])
    const add = await stalledUpload(`${b.url}/api/v0/add?timeout=1s`, multipart, part)
    assert.equal(add.status, 504, add.body)
    assert.match(add.body, /request timed out after 1s: context deadline exceeded/)
    // With progress lines out already, the stream ends with Kubo's error line.
    const progress = await stalledUpload(`${b.url}/api/v0/add?timeout=1s&progress=true`, multipart, part)
    assert.equal(progress.status, 200)
    const last = JSON.parse(progress.body.trim().split('\n').at(-1) as string)
    assert.deepEqual(last, { Message: 'request timed out after 1s: context deadline exceeded', Code: 0, Type: 'error' })
    const raw = await stalledUpload(`${b.url}/api/v0/stream/upload?timeout=1s`, { 'content-type': 'application/octet-stream' }, randomBytes(300_000))
    assert.equal(raw.status, 504, raw.body)
    assert.equal((await rpc(b, 'version')).status, 200)
  })

  describe('a stream whose headers went out before a block went missing', () => {
    let root: string

    before(async () => {
      // 40 leaves of 1 KiB on A, one of them deleted: B finds the first ones and no one has the 30th.
      const added = await (await rpc(a, 'add', { chunker: 'size-1024', 'raw-leaves': 'true', pin: 'false' }, { body: formOf([{ path: 'holed.bin', content: randomBytes(40 * 1024) }]) })).json() as { Hash: string }
      root = added.Hash
      const node = dagPb.decode(new Uint8Array(await (await rpc(a, 'block/get', { arg: root })).arrayBuffer()))
      const gone = await (await rpc(a, 'block/rm', { arg: node.Links[30].Hash.toString() })).json() as { Error?: string }
      assert.equal(gone.Error, undefined)
    })

    for (const [name, params] of [['the default deadline', {}], ['Kubo\'s timeout', { timeout: '1s' }]] as const) {
      it(`breaks off cat and stream/media at ${name}`, async () => {
        for (const url of [`${b.url}/api/v0/cat?arg=${root}&${new URLSearchParams(params)}`, `${b.url}/api/v0/stream/media?arg=${root}&${new URLSearchParams(params)}`]) {
          const started = performance.now()
          const res = await fetch(url, { method: url.includes('/cat') ? 'POST' : 'GET', signal: AbortSignal.timeout(60_000) })
          assert.equal(res.status, 200)
          await assert.rejects(drainBody(res), `${url} ended as if whole`)
          assert.ok(performance.now() - started < DEADLINE + 8000, `${url} broke off after ${Math.round(performance.now() - started)} ms`)
        }
        // The node still answers.
        assert.equal((await rpc(b, 'version')).status, 200)
      })
    }
  })
})
