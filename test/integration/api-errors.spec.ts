import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { ErrorEnvelope } from '@node-daemon/api'

const HELLO_CID = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
/** A well-formed CID of a block that no node has. */
const ABSENT_CID = 'bafkreiaxfp6b6ccq6nswecdfqwiecvwvjvgvvcqyjvpxcmbtu4ynnxfpga'

type Envelope = ErrorEnvelope

/**
 * Checks that a response is document 000's error envelope with Kubo's fields
 * beside it, and that it has the given status and error type.
 */
async function expectError (res: Response, status: number, errorType: string, message?: RegExp): Promise<Envelope> {
  const text = await res.text()
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${text}`)
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
  const body = JSON.parse(text) as Envelope
  assert.deepEqual(Object.keys(body).sort(), ['Code', 'Message', 'Type', 'error', 'error_type', 'status_code', 'success'])
  assert.equal(body.success, false)
  assert.equal(body.status_code, status)
  assert.equal(body.error_type, errorType)
  assert.equal(typeof body.error, 'string')
  assert.ok(body.error.length > 0)
  assert.equal(body.Message, body.error)
  assert.equal(typeof body.Code, 'number')
  assert.equal(body.Type, 'error')
  if (message != null) assert.match(body.error, message)
  return body
}

function json (body: unknown): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
}

describe('API errors', { timeout: 60_000 }, () => {
  let d: TestDaemon

  before(async () => {
    d = await startTestDaemon()
    const added = await (await rpc(d, 'add', {}, { body: formOf([{ path: 'hello.txt', content: 'hello world\n' }]) })).json() as { Hash: string }
    assert.equal(added.Hash, HELLO_CID)
  })

  after(async () => {
    await d?.cleanup()
  })

  /** After every bad request the daemon still answers a good one. */
  async function stillUp (): Promise<void> {
    const res = await rpc(d, 'cat', { arg: HELLO_CID })
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'hello world\n')
  }

  it('rejects a bad CID', async () => {
    await expectError(await rpc(d, 'cat', { arg: 'notacid' }), 400, 'IPFSValidationError', /invalid CID "notacid"/)
    await expectError(await rpc(d, 'block/get', { arg: 'Qm123' }), 400, 'IPFSValidationError', /invalid CID/)
    await expectError(await rpc(d, 'pin/add', {}, json({ cid: 'zzz' })), 400, 'IPFSValidationError', /invalid CID/)
    await expectError(await fetch(`${d.url}/api/v0/ls?arg=/ipns/not-a-path`), 400, 'IPFSValidationError', /only \/ipfs\/ paths/)
    await stillUp()
  })

  it('rejects a missing argument', async () => {
    await expectError(await rpc(d, 'cat'), 400, 'IPFSValidationError', /argument "ipfs-path" is required/)
    await expectError(await rpc(d, 'pin/add'), 400, 'IPFSValidationError', /argument "ipfs-path" is required/)
    await expectError(await rpc(d, 'swarm/connect'), 400, 'IPFSValidationError', /argument "address" is required/)
    await expectError(await rpc(d, 'name/publish'), 400, 'IPFSValidationError', /argument "ipfs-path" is required/)
    await expectError(await rpc(d, 'key/gen'), 400, 'IPFSValidationError', /argument "name" is required/)
    await stillUp()
  })

  it('rejects a truncated multipart body', async () => {
    const boundary = 'test-boundary-1234'
    const body = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: application/octet-stream\r\n\r\nhello wor`
    const res = await rpc(d, 'add', {}, { headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body })
    await expectError(res, 400, 'IPFSValidationError', /malformed multipart body/)
    // Truncated before the first part's headers end.
    const early = await rpc(d, 'add', {}, { headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body: `--${boundary}\r\nContent-Disposition: form-da` })
    assert.equal(early.status, 400)
    await expectError(early, 400, 'IPFSValidationError')
    await stillUp()
  })

  it('rejects a multipart body without a file part, and a body that is not multipart', async () => {
    const form = new FormData()
    form.append('pin', 'true')
    await expectError(await rpc(d, 'add', {}, { body: form }), 400, 'IPFSValidationError', /no file part/)
    await expectError(await rpc(d, 'add', {}, { headers: { 'content-type': 'text/plain' }, body: 'hello' }), 400, 'IPFSValidationError', /not multipart/)
    await expectError(await rpc(d, 'add'), 400, 'IPFSValidationError', /not multipart/)
    await expectError(await rpc(d, 'block/put', {}, { body: new FormData() }), 400, 'IPFSValidationError')
    await stillUp()
  })

  it('rejects JSON that does not parse', async () => {
    const res = await rpc(d, 'pin/add', {}, { headers: { 'content-type': 'application/json' }, body: '{"cid": ' })
    await expectError(res, 400, 'IPFSValidationError', /not valid JSON/)
    await expectError(await rpc(d, 'swarm/connect', {}, { headers: { 'content-type': 'application/json' }, body: '[1,' }), 400, 'IPFSValidationError')
    await stillUp()
  })

  it('rejects a JSON body over 1 MiB with 413', async () => {
    const res = await rpc(d, 'pin/add', {}, json({ cid: 'x'.repeat(1_100_000) }))
    await expectError(res, 413, 'PayloadTooLargeError', /too large/)
    await stillUp()
  })

  it('answers an unknown route with 404', async () => {
    await expectError(await fetch(`${d.url}/api/v0/no/such/route`), 404, 'RouteNotFoundError', /no route GET \/api\/v0\/no\/such\/route/)
    await expectError(await fetch(`${d.url}/nothing-here`, { method: 'POST' }), 404, 'RouteNotFoundError')
    await stillUp()
  })

  it('answers a wrong method with 405 and Allow', async () => {
    const res = await fetch(`${d.url}/api/v0/add`)
    assert.equal(res.headers.get('allow'), 'POST')
    await expectError(res, 405, 'MethodNotAllowedError', /GET is not allowed on \/api\/v0\/add; use POST/)
    const del = await fetch(`${d.url}/api/v0/cat?arg=${HELLO_CID}`, { method: 'DELETE' })
    assert.equal(del.headers.get('allow'), 'GET, POST')
    await expectError(del, 405, 'MethodNotAllowedError')
    await stillUp()
  })

  it('rejects a bad chunker', async () => {
    for (const chunker of ['rabin-1-2-3', 'size-0', 'size-abc', `size-${2 * 1_048_576}`]) {
      await expectError(await rpc(d, 'add', { chunker }, { body: formOf([{ path: 'x', content: 'x' }]) }), 400, 'IPFSValidationError', /unsupported chunker/)
    }
    await expectError(await rpc(d, 'stream/upload', { chunker: 'buzhash' }, { body: 'x' }), 400, 'IPFSValidationError', /unsupported chunker/)
    await stillUp()
  })

  it('rejects a bad cid-version', async () => {
    for (const version of ['2', '-1', 'abc']) {
      await expectError(await rpc(d, 'add', { 'cid-version': version }, { body: formOf([{ path: 'x', content: 'x' }]) }), 422, 'ValidationError', /cid-version/)
    }
    await expectError(await rpc(d, 'stream/upload', { 'cid-version': '3' }, { body: 'x' }), 422, 'ValidationError', /cid-version/)
    await stillUp()
  })

  it('answers a Range outside the file with 416 and Content-Range', async () => {
    for (const range of ['bytes=100-200', 'bytes=12-']) {
      const res = await fetch(`${d.url}/api/v0/stream/media?arg=${HELLO_CID}`, { headers: { range } })
      assert.equal(res.headers.get('content-range'), 'bytes */12')
      await expectError(res, 416, 'IPFSValidationError', /outside the 12 bytes/)
    }
    await stillUp()
  })

  it('rejects an unknown pin type', async () => {
    await expectError(await fetch(`${d.url}/api/v0/pin/ls?type=weird`), 422, 'ValidationError', /type/)
    await expectError(await rpc(d, 'pin/add', { arg: HELLO_CID, recursive: 'maybe' }), 422, 'ValidationError', /recursive/)
    await stillUp()
  })

  it('refuses to unpin what is not pinned', async () => {
    await expectError(await rpc(d, 'pin/rm', { arg: ABSENT_CID }), 400, 'IPFSPinningError', /is not pinned/)
    await expectError(await rpc(d, 'pin/rm', {}, json({ cid: ABSENT_CID })), 400, 'IPFSPinningError', /is not pinned/)
    // Pinned recursively by add: a direct unpin is refused, the recursive one works once.
    await expectError(await rpc(d, 'pin/rm', { arg: HELLO_CID, recursive: 'false' }), 400, 'IPFSPinningError', /pinned recursively/)
    assert.equal((await rpc(d, 'pin/rm', { arg: HELLO_CID })).status, 200)
    await expectError(await rpc(d, 'pin/rm', { arg: HELLO_CID }), 400, 'IPFSPinningError', /is not pinned/)
    await expectError(await rpc(d, 'pin/ls', { arg: HELLO_CID }), 400, 'IPFSPinningError', /is not pinned/)
    assert.equal((await rpc(d, 'pin/add', { arg: HELLO_CID })).status, 200)
    await stillUp()
  })

  it('rejects a bad multiaddr in swarm/connect', async () => {
    await expectError(await rpc(d, 'swarm/connect', { arg: '/ip4/999.1.1.1/tcp/4001' }), 400, 'IPFSValidationError', /invalid multiaddr/)
    await expectError(await rpc(d, 'swarm/connect', {}, json({ addr: 'garbage' })), 400, 'IPFSValidationError', /invalid multiaddr "garbage"/)
    await expectError(await rpc(d, 'swarm/connect', { arg: '/ip4/127.0.0.1/tcp/1' }), 400, 'IPFSValidationError', /no \/p2p\/ peer id/)
    await stillUp()
  })

  it('rejects a topic that is not multibase base64url in pubsub', async () => {
    const form = new FormData()
    form.append('file', new Blob(['data']), 'data')
    await expectError(await rpc(d, 'pubsub/pub', { arg: 'not base64url!' }, { body: form }), 400, 'IPFSValidationError', /multibase base64url/)
    await expectError(await rpc(d, 'pubsub/sub', { arg: '!!' }), 400, 'IPFSValidationError', /multibase base64url/)
    await expectError(await rpc(d, 'pubsub/peers', { arg: '%%' }), 400, 'IPFSValidationError', /multibase base64url/)
    await expectError(await rpc(d, 'pubsub/pub', {}, json({ data: 'aGk=' })), 400, 'IPFSValidationError', /argument "topic" is required/)
    await stillUp()
  })

  it('maps missing content, a bad timeout and a spent timeout', async () => {
    await expectError(await rpc(d, 'cat', { arg: `${HELLO_CID}/nope` }), 404, 'IPFSContentNotFoundError', /no link named "nope"/)
    const dir = await (await rpc(d, 'add', { 'wrap-with-directory': 'true', quieter: 'true' }, { body: formOf([{ path: 'f', content: 'f' }]) })).json() as { Hash: string }
    await expectError(await rpc(d, 'cat', { arg: dir.Hash }), 400, 'IPFSError', /this dag node is a directory/)
    await expectError(await rpc(d, 'id', { timeout: 'soon' }), 400, 'IPFSValidationError', /invalid duration "soon"/)
    await expectError(await rpc(d, 'block/get', { arg: ABSENT_CID, timeout: '200ms' }), 504, 'IPFSTimeoutError', /request timed out after 200ms/)
    await expectError(await rpc(d, 'name/resolve', { arg: 'k51qzi5uqu5dgutdk6i1ynyzgkqngpha5xpgia3a5qqp4jsh0u4csozksxel3r' }), 404, 'IPFSContentNotFoundError')
    await expectError(await rpc(d, 'key/rm', { arg: 'no-such-key' }), 404, 'IPFSContentNotFoundError', /no key named/)
    await stillUp()
  })

  it('answers a bad WebSocket request with the envelope and a policy close', async () => {
    const ws = new WebSocket(`${d.url.replace('http', 'ws')}/ws/v0/stream/media`)
    const messages: string[] = []
    const closed = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('the socket did not close')) }, 10_000)
      ws.onmessage = (evt) => { messages.push(String(evt.data)) }
      ws.onclose = (evt) => { clearTimeout(timer); resolve(evt.code) }
    })
    ws.onopen = () => { ws.send('{"cid": "notacid"}') }
    assert.equal(await closed, 1008)
    assert.equal(messages.length, 1)
    const body = JSON.parse(messages[0]) as Envelope
    assert.deepEqual({ ...body, error: '', Message: '' }, { success: false, error: '', error_type: 'IPFSValidationError', status_code: 400, Message: '', Code: 0, Type: 'error' })
    assert.match(body.error, /invalid CID/)
    await stillUp()
  })

  it('counts the errors by type in /metrics', async () => {
    const text = await (await fetch(`${d.url}/metrics`)).text()
    assert.match(text, /node_daemon_http_errors_total\{error_type="IPFSValidationError"\} \d+/)
    assert.match(text, /node_daemon_http_errors_total\{error_type="RouteNotFoundError"\} \d+/)
    assert.match(text, /node_daemon_http_requests_total\{route="unmatched",method="GET",status="404"\} \d+/)
  })
})
