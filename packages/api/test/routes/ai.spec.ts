import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_EMBED_MODEL } from '../../src/inference.ts'
import { startServer } from '../helpers/fake-inference.ts'
import type { TestServer } from '../helpers/fake-inference.ts'

const CONFIG = Buffer.from('{"model_type":"gpt2"}')
const WEIGHTS = new Uint8Array(700).map((_, i) => i % 251)

/** The entries of a ustar archive: path, type flag and bytes. */
function untar (archive: Uint8Array): Array<{ path: string, type: string, bytes: Uint8Array }> {
  const entries = []
  let offset = 0
  const field = (start: number, length: number): string => Buffer.from(archive.subarray(offset + start, offset + start + length)).toString().replace(/\0.*$/s, '')
  while (offset + 512 <= archive.length && archive[offset] !== 0) {
    const header = archive.subarray(offset, offset + 512)
    const sum = header.reduce((total, byte, i) => total + (i >= 148 && i < 156 ? 32 : byte), 0)
    assert.equal(parseInt(field(148, 8), 8), sum, 'checksum')
    assert.equal(field(257, 6), 'ustar')
    const prefix = field(345, 155)
    const path = (prefix === '' ? '' : `${prefix}/`) + field(0, 100)
    const size = parseInt(field(124, 12), 8)
    const type = field(156, 1)
    entries.push({ path, type, bytes: archive.subarray(offset + 512, offset + 512 + size) })
    offset += 512 + Math.ceil(size / 512) * 512
  }
  assert.ok(archive.subarray(offset).every(byte => byte === 0) && archive.length - offset === 1024, 'two empty blocks end the archive')
  return entries
}

describe('document 000: AI model registry and embeddings', () => {
  let server: TestServer

  before(async () => {
    server = await startServer({ bafytinygpt: { 'config.json': CONFIG, 'onnx/model.onnx': WEIGHTS } })
  })
  after(async () => { await server.app.close() })

  it('adds a model directory from a multipart body with its metadata', async () => {
    const form = new FormData()
    form.append('metadata', JSON.stringify({ name: 'my-model', description: 'from metadata', framework: 'onnx', dtype: 'q4' }))
    form.append('file', new Blob([CONFIG]), 'config.json')
    form.append('file', new Blob([WEIGHTS]), encodeURIComponent('onnx/model.onnx'))
    const res = await fetch(`${server.url}/api/v0/ai/model/add`, { method: 'POST', body: form })
    assert.equal(res.status, 200)
    const body = await res.json()
    assert.equal(body.success, true)
    assert.equal(body.cid, 'bafyimported2')
    assert.equal(body.metadata.name, 'my-model')
    assert.equal(body.metadata.description, 'from metadata')
    assert.equal(body.metadata.kind, 'causal-lm')
    assert.deepEqual(server.inference.imported, [{ path: 'config.json', size: CONFIG.length }, { path: 'onnx/model.onnx', size: 700 }])
    assert.deepEqual(server.inference.calls.findLast(c => c.method === 'import')?.args[0], { name: 'my-model', description: 'from metadata', dtype: 'q4' })

    const nameless = new FormData()
    nameless.append('file', new Blob([CONFIG]), 'config.json')
    const bad = await fetch(`${server.url}/api/v0/ai/model/add`, { method: 'POST', body: nameless })
    assert.equal(bad.status, 400)
    assert.equal((await bad.json()).error_type, 'IPFSValidationError')
  })

  it('lists models with their metadata', async () => {
    const body = await (await fetch(`${server.url}/api/v0/ai/model/list`)).json()
    assert.equal(body.success, true)
    assert.deepEqual(body.models[0], {
      name: 'tiny-gpt:latest',
      cid: 'bafytinygpt',
      kind: 'causal-lm',
      family: 'gpt2',
      description: 'fake causal-lm',
      size: 1234,
      parameters: 2_500_000,
      context_length: 128,
      active: true,
      version: 1,
      modified_at: '2025-01-01T00:00:00.000Z'
    })
  })

  it('gets one file of a model by path, or the whole directory as a tar archive', async () => {
    const config = await fetch(`${server.url}/api/v0/ai/model/get?cid=bafytinygpt&path=config.json`)
    assert.equal(config.headers.get('content-type'), 'application/json')
    assert.deepEqual(Buffer.from(await config.arrayBuffer()), CONFIG)

    const tar = await fetch(`${server.url}/api/v0/ai/model/get?cid=tiny-gpt`)
    assert.equal(tar.headers.get('content-type'), 'application/x-tar')
    assert.equal(tar.headers.get('content-disposition'), 'attachment; filename="bafytinygpt.tar"')
    const entries = untar(new Uint8Array(await tar.arrayBuffer()))
    assert.deepEqual(entries.map(e => [e.path, e.type]), [['config.json', '0'], ['onnx', '5'], ['onnx/model.onnx', '0']])
    assert.deepEqual(Buffer.from(entries[2].bytes), Buffer.from(WEIGHTS))

    const unknown = await fetch(`${server.url}/api/v0/ai/model/get?cid=bafynope`)
    assert.equal(unknown.status, 404)
    assert.equal((await unknown.json()).error_type, 'ModelNotFoundError')
    assert.equal((await fetch(`${server.url}/api/v0/ai/model/get`)).status, 400)
  })

  it(`generates embeddings, with ${DEFAULT_EMBED_MODEL} unless a model is named`, async () => {
    const post = async (body: unknown): Promise<Response> => await fetch(`${server.url}/api/v0/embeddings/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const body = await (await post({ texts: ['a b', 'c'] })).json()
    assert.deepEqual(body, { success: true, model: DEFAULT_EMBED_MODEL, embeddings: [[3, 2, 0.5, -0.25], [1, 1, 0.5, -0.25]], dimensions: 4 })
    const wrong = await post({ texts: ['a'], model: 'tiny-gpt' })
    assert.equal(wrong.status, 400)
    assert.equal((await wrong.json()).error_type, 'UnsupportedModelError')
    assert.equal((await post({ texts: [] })).status, 422)
  })
})
