/**
 * The bad requests that once got a 500 (some naming the repo's path): each is
 * a 4xx in its family's shape now, no message names a file of the host, and
 * the daemon goes on serving.
 */
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { waitFor } from '../helpers/cluster.ts'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

/** An identity CID of no bytes: content every node has, and no model. */
const NOT_A_MODEL = 'bafkqaaa'

describe('bad input gets a 4xx that names no path', { timeout: 180_000 }, () => {
  let d: TestDaemon

  before(async () => {
    d = await startTestDaemon({ inference: { defaultModels: true } })
    await waitFor('the default models', async () => {
      const { models } = await (await fetch(`${d.url}/api/tags`)).json() as { models: Array<{ name: string }> }
      return models.some(m => m.name === `${DEFAULT_MODELS.generate}:latest`)
    }, 120_000)
  })
  after(async () => { await d?.cleanup() })

  /** The status and body of a request, checking that the body names nothing under the repo. */
  async function call (path: string, init: RequestInit = {}): Promise<{ status: number, body: any }> {
    const res = await fetch(`${d.url}${path}`, { method: 'POST', signal: AbortSignal.timeout(60_000), ...init })
    const text = await res.text()
    assert.ok(!text.includes(d.repo), `${path} answered with the repo's path: ${text}`)
    return { status: res.status, body: text.trim().split('\n').map(line => JSON.parse(line)).at(-1) }
  }

  const json = (body: unknown): RequestInit => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  it('refuses a Modelfile it cannot read with 400, and takes a stop that spans lines', async () => {
    const bad = await call('/api/create', json({ model: 'm1', modelfile: 'x' }))
    assert.equal(bad.status, 400)
    assert.match(bad.body.error, /X is not supported/)
    const created = await call('/api/create', json({ model: 'm2', from: DEFAULT_MODELS.generate, parameters: { stop: ['a\nb', 'c'] }, stream: false }))
    assert.equal(created.status, 200, JSON.stringify(created.body))
    const shown = await call('/api/show', json({ model: 'm2' }))
    assert.match(shown.body.modelfile, /PARAMETER stop """a\nb"""/)
    const triple = await call('/api/create', json({ model: 'm3', modelfile: `FROM ${DEFAULT_MODELS.generate}\nPARAMETER stop """x\ny"""`, stream: false }))
    assert.equal(triple.status, 200, JSON.stringify(triple.body))
  })

  it('answers a CID that is no model directory with 400 in every family, and refuses to pull it', async () => {
    for (const path of ['/api/show', '/api/generate', '/api/chat', '/api/pull']) {
      const { status, body } = await call(path, json({ model: NOT_A_MODEL, prompt: 'hi', messages: [{ role: 'user', content: 'hi' }], stream: false }))
      assert.equal(status, 400, `${path}: ${JSON.stringify(body)}`)
      assert.match(body.error, /not a model directory/)
    }
    const kubo = await call(`/api/v0/ai/model/get?cid=${NOT_A_MODEL}`)
    assert.equal(kubo.status, 400)
    assert.equal(kubo.body.error_type, 'IPFSValidationError')
    const openai = await call('/v1/chat/completions', json({ model: NOT_A_MODEL, messages: [{ role: 'user', content: 'hi' }] }))
    assert.equal(openai.status, 400)
    assert.equal(openai.body.error.type, 'invalid_request_error')
    assert.equal((await rpc(d, 'pin/ls', { arg: NOT_A_MODEL })).status, 400, 'the refused pull pinned nothing')
    const unpacked = await readdir(join(d.repo, 'models')).catch(() => [])
    assert.ok(!unpacked.some(name => name.startsWith(NOT_A_MODEL)), `left ${unpacked.join(', ')}`)
  })

  it("answers document 003's routes with 1004 MODEL_CORRUPT for such a model", async () => {
    const added = await (await rpc(d, 'ai/dataset/add', {}, { body: formOf([{ path: 'lines.jsonl', content: '{"text":"one"}\n{"text":"two"}\n' }]) })).json() as { cid: string }
    for (const [path, body] of [['/api/v1/training/start', { dataset: added.cid, model: NOT_A_MODEL }], ['/api/v1/models/load', { model_id: NOT_A_MODEL }]] as const) {
      const { status, body: error } = await call(path, json(body))
      assert.equal(status, 422, `${path}: ${JSON.stringify(error)}`)
      assert.equal(error.Code, 1004)
      assert.equal(error.error_type, 'CheckpointError')
    }
  })

  it('refuses a model directory whose entry names no file could have', async () => {
    const form = new FormData()
    form.append('modelId', 'nul-name')
    form.append('file', new Blob(['{}']), encodeURIComponent('a\u0000b/config.json'))
    const { status, body } = await call('/api/models/upload', { body: form })
    assert.equal(status, 400, JSON.stringify(body))
    assert.match(body.error.message, /unsafe path/)
  })

  it('refuses key names the keychain cannot store, with 400', async () => {
    for (const name of ['a\u0000b', 'k'.repeat(300), 'a/b', '..', '']) {
      const { status, body } = await call(`/api/v0/key/gen?arg=${encodeURIComponent(name)}`)
      assert.equal(status, 400, `${JSON.stringify(name)}: ${JSON.stringify(body)}`)
      assert.equal(body.error_type, 'IPFSValidationError')
    }
    assert.equal((await call('/api/v0/key/gen?arg=fine-name')).status, 200)
  })

  it('refuses a /p2p/ multiaddr whose peer id is no peer id, with 400', async () => {
    const { status, body } = await call('/api/v0/swarm/connect?arg=/p2p/notapeer')
    assert.equal(status, 400)
    assert.match(body.error, /not a peer id/)
  })

  it('answers a job that no node may run, every node being drained, with 409 rather than 503', async () => {
    const self = d.node.peerId
    // A drained node still serves a model it holds loaded: unloaded, it takes no new work.
    assert.equal((await call('/api/generate', json({ model: DEFAULT_MODELS.generate, keep_alive: 0 }))).status, 200)
    assert.equal((await call(`/api/v1/nodes/${self}/drain`)).status, 200)
    try {
      const { status, body } = await call('/api/generate', json({ model: DEFAULT_MODELS.generate, prompt: 'It is', stream: false }))
      assert.equal(status, 409, JSON.stringify(body))
      assert.match(body.error, /drained or offline/)
    } finally {
      assert.equal((await call(`/api/v1/nodes/${self}/undrain`)).status, 200)
    }
  })

  it('still serves after all of it', async () => {
    assert.equal((await fetch(`${d.url}/health`)).status, 200)
    const { status, body } = await call('/api/generate', json({ model: DEFAULT_MODELS.generate, prompt: 'It is', stream: false, options: { num_predict: 2 } }))
    assert.equal(status, 200, JSON.stringify(body))
  })
})
