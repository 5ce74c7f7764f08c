import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { METHODS } from '../../src/methods.ts'
import { startServer } from '../helpers/fake-inference.ts'
import type { TestServer } from '../helpers/fake-inference.ts'

const CONFIG = Buffer.from('{"model_type":"gpt2"}')
const WEIGHTS = new Uint8Array(300).map((_, i) => i % 251)

describe("document 000's method caller over the operation table", () => {
  let server: TestServer
  const call = async (name: string, body?: unknown): Promise<{ status: number, headers: Headers, body: any }> => {
    const res = await fetch(`${server.url}/api/${name}`, {
      method: 'POST',
      headers: body == null ? {} : { 'content-type': 'application/json' },
      body: body == null ? undefined : JSON.stringify(body)
    })
    return { status: res.status, headers: res.headers, body: await res.json() }
  }

  before(async () => {
    server = await startServer({ bafymodeldir: { 'config.json': CONFIG, 'onnx/model.onnx': WEIGHTS } })
  })
  after(async () => { await server.app.close() })

  it('takes args in the declared order and kwargs, and answers with success', async () => {
    const positional = await call('generate_embeddings', { args: [['one', 'two'], 'tiny-embed'] })
    assert.equal(positional.status, 200)
    assert.equal(positional.headers.get('x-api-version'), '1', 'once, by the access hook, as on every answer')
    assert.equal(positional.body.success, true)
    assert.equal(positional.body.model, 'tiny-embed')
    assert.equal(positional.body.embeddings.length, 2)
    assert.equal(positional.body.dimensions, positional.body.embeddings[0].length)
    const keywords = await call('generate_embeddings', { kwargs: { texts: ['three'], model: 'tiny-embed:latest' } })
    assert.equal(keywords.status, 200)
    assert.equal(keywords.body.model, 'tiny-embed:latest')
    assert.deepEqual(server.inference.calls.findLast(c => c.method === 'embed')?.args[0], { model: 'tiny-embed:latest', input: ['three'] })
  })

  it('registers, shows and lists models (ai_model_add, ai_model_get, ai_model_list)', async () => {
    const added = await call('ai_model_add', { args: ['bafymodeldir', { name: 'by-call:latest', description: 'from the caller', dtype: 'q4' }] })
    assert.equal(added.status, 200, JSON.stringify(added.body))
    assert.equal(added.body.metadata.name, 'by-call:latest')
    assert.deepEqual(server.inference.imported, [{ path: 'config.json', size: CONFIG.length }, { path: 'onnx/model.onnx', size: WEIGHTS.length }])
    const shown = await call('ai_model_get', { kwargs: { model_cid: 'by-call:latest' } })
    assert.deepEqual([shown.status, shown.body.cid, shown.body.metadata.description], [200, added.body.cid, 'from the caller'])
    const listed = await call('ai_model_list')
    assert.ok(listed.body.models.some((m: { name: string }) => m.name === 'by-call:latest'))
  })

  it('refuses arguments that do not fit, in the error envelope, as 422', async () => {
    for (const body of [
      { args: [['a'], 'model', 'extra'] },
      { kwargs: { texts: 'not a list' } },
      { kwargs: { texts: ['a'], unknown_option: true } },
      { args: [['a']], kwargs: { texts: ['b'] } },
      { args: 'not a list' },
      { args: [JSON.parse('['.repeat(3000) + ']'.repeat(3000))] },
      {}
    ]) {
      const { status, body: answer } = await call('generate_embeddings', body)
      assert.equal(status, 422, JSON.stringify(body))
      assert.equal(answer.success, false)
      assert.equal(answer.error_type, 'ValidationError')
    }
    const missing = await call('ai_model_get', { args: ['no-such-model'] })
    assert.deepEqual([missing.status, missing.body.error_type], [404, 'ModelNotFoundError'])
  })

  it('answers an unknown method with a 404 that lists the known ones', async () => {
    const { status, body } = await call('no_such_method', { args: [] })
    assert.equal(status, 404)
    assert.equal(body.success, false)
    assert.equal(body.error_type, 'RouteNotFoundError')
    assert.deepEqual(body.methods, [...METHODS.keys()].sort())
    for (const name of ['add', 'get', 'pin', 'unpin', 'list_pins', 'ls', 'exists', 'publish', 'resolve', 'connect', 'peers', 'cluster_add', 'cluster_pin', 'cluster_status', 'cluster_peers', 'ai_model_add', 'generate_embeddings']) {
      assert.ok(body.methods.includes(name), name)
    }
  })

  it("leaves the other documents' /api/ routes theirs: Ollama's POST routes win, GET-only paths stay 405", async () => {
    const generated = await fetch(`${server.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'tiny-gpt', prompt: 'hi', stream: false }) })
    assert.equal(generated.status, 200)
    assert.match((await generated.json()).response, /^Echo: hi/)
    const tags = await fetch(`${server.url}/api/tags`, { method: 'POST' })
    assert.equal(tags.status, 405)
    assert.equal(tags.headers.get('allow'), 'GET')
    const unknownGet = await fetch(`${server.url}/api/no_such_path`)
    assert.equal(unknownGet.status, 404, 'the catch-all POST makes no GET path a 405')
  })

  it('documents each method in the OpenAPI document with its permission', async () => {
    const doc = await (await fetch(`${server.url}/api/v0/openapi.json`)).json()
    const op = doc.paths['/api/cluster_status']?.post
    assert.ok(op != null, 'POST /api/cluster_status is documented')
    assert.deepEqual(op.security[0], { apiKey: ['cluster:read'] })
    assert.ok(op.requestBody.content['application/json'].schema.properties.kwargs.properties.cid != null)
  })
})
