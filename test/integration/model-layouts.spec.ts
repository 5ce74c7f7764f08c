/**
 * A repository with several ONNX variants (onnx-community's layout: onnx/model.onnx,
 * onnx/model_q4.onnx…) imported through /api/models/upload and /api/create:
 * the dtype an import or a Modelfile names is the graph every request runs.
 * The variants here are fp32 graphs of different weights under the variants'
 * names, so that which one answered shows in the greedy text.
 */
import assert from 'node:assert/strict'
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { buildGptDecoder, initGptWeights, writeModel } from '@node-daemon/onnx'
import { bareGreedy } from '../../packages/runtime/test/helpers/bare-greedy.ts'
import { asGenaiBuild, GPT, tinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import { loadModel } from '../../packages/runtime/src/model.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const PROMPT = 'It is a truth universally acknowledged'
const STEPS = 12

async function call (daemon: TestDaemon, path: string, body: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${daemon.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
  return { status: res.status, body: await res.json() }
}

describe('model layouts through the API', { timeout: 240_000 }, () => {
  let models: TinyModels
  let daemon: TestDaemon
  /** The repository, and one flat directory per variant's weights for the reference loop. */
  let repo: string
  const expected: Record<string, number[]> = {}

  before(async () => {
    models = await tinyModels()
    daemon = await startTestDaemon()
    repo = join(models.root, 'community')
    await cp(models.decoder, repo, { recursive: true })
    await rm(join(repo, 'model.onnx'))
    await mkdir(join(repo, 'onnx'))
    const model = await loadModel(models.decoder)
    const prompt = model.codec.encode(PROMPT)
    await model.release()
    for (const [dtype, seed] of [['', 7], ['_q4', 8], ['_int8', 9]] as const) {
      const weights = initGptWeights(GPT, seed)
      for (const w of Object.values(weights)) for (let i = 0; i < w.length; i++) w[i] *= 4
      const written = writeModel(buildGptDecoder(GPT, weights), { externalData: { location: `model${dtype}.onnx_data`, threshold: 1024 } })
      await writeFile(join(repo, 'onnx', `model${dtype}.onnx`), written.model)
      await writeFile(join(repo, 'onnx', `model${dtype}.onnx_data`), written.externalData as Uint8Array)
      const flat = join(models.root, `flat${dtype}`)
      await cp(models.decoder, flat, { recursive: true })
      await writeFile(join(flat, 'model.onnx'), writeModel(buildGptDecoder(GPT, weights)).model)
      expected[dtype === '' ? 'fp32' : dtype.slice(1)] = await bareGreedy(flat, prompt, STEPS)
    }
    assert.notDeepEqual(expected.q4, expected.fp32, 'the variants write different text')
  })
  after(async () => {
    await daemon?.cleanup()
    if (models != null) await rm(models.root, { recursive: true, force: true })
  })

  async function upload (name: string, dtype?: string): Promise<{ status: number, body: any }> {
    const form = new FormData()
    form.append('modelId', name)
    if (dtype != null) form.append('dtype', dtype)
    for (const path of [...await readdir(repo), ...(await readdir(join(repo, 'onnx'))).map(f => `onnx/${f}`)]) {
      if (path === 'onnx') continue
      form.append('file', new Blob([await readFile(join(repo, path))]), encodeURIComponent(path))
    }
    const res = await fetch(`${daemon.url}/api/models/upload`, { method: 'POST', body: form, signal: AbortSignal.timeout(60_000) })
    return { status: res.status, body: await res.json() }
  }

  async function greedy (model: string): Promise<number[]> {
    const { status, body } = await call(daemon, '/api/generate', { model, prompt: PROMPT, raw: true, stream: false, options: { temperature: 0, repeat_penalty: 1, num_predict: STEPS } })
    assert.equal(status, 200, JSON.stringify(body))
    return body.context.slice(-STEPS)
  }

  it('runs fp32 by default, and the variant an upload names', async () => {
    const plain = await upload('community')
    assert.equal(plain.status, 201, JSON.stringify(plain.body))
    assert.deepEqual(await greedy('community'), expected.fp32)
    const q4 = await upload('community-q4', 'q4')
    assert.equal(q4.status, 201, JSON.stringify(q4.body))
    assert.equal(q4.body.model.cid, plain.body.model.cid, 'one repository, one CID: the variant is the record\'s')
    assert.deepEqual(await greedy('community-q4'), expected.q4)
    const shown = await call(daemon, '/api/show', { model: 'community-q4' })
    assert.match(shown.body.modelfile, /^PARAMETER dtype q4$/m)
    const ps = await (await fetch(`${daemon.url}/api/ps`)).json()
    assert.ok(ps.models.every((m: { digest: string }) => m.digest === plain.body.model.cid), 'both variants are the same model to /api/ps')
  })

  it('imports an onnxruntime-genai build without config.json, and shows its shape from genai_config.json', async () => {
    const dir = join(models.root, 'genai')
    await cp(models.decoder, dir, { recursive: true })
    await asGenaiBuild(dir)
    const form = new FormData()
    form.append('modelId', 'genai')
    for (const file of await readdir(dir)) form.append('file', new Blob([await readFile(join(dir, file))]), file)
    const uploaded = await fetch(`${daemon.url}/api/models/upload`, { method: 'POST', body: form, signal: AbortSignal.timeout(60_000) })
    assert.equal(uploaded.status, 201, await uploaded.text())
    assert.deepEqual(await greedy('genai'), expected.fp32)
    const shown = await call(daemon, '/api/show', { model: 'genai' })
    assert.equal(shown.status, 200, JSON.stringify(shown.body))
    assert.equal(shown.body.model_info['gpt2.block_count'], GPT.layers)
  })

  it('creates a variant from a CID with PARAMETER dtype, and refuses one the repository lacks', async () => {
    const { cid } = (await upload('community')).body.model
    const created = await call(daemon, '/api/create', { model: 'community-int8', from: cid, parameters: { dtype: 'int8' }, stream: false })
    assert.equal(created.status, 200, JSON.stringify(created.body))
    assert.deepEqual(await greedy('community-int8'), expected.int8)
    const missing = await call(daemon, '/api/create', { model: 'community-fp16', from: cid, parameters: { dtype: 'fp16' }, stream: false })
    assert.equal(missing.status, 400)
    assert.match(missing.body.error, /no such variant \(it has fp32, q4, int8\)/)
    const unknown = await upload('community-fp8', 'fp8')
    assert.equal(unknown.status, 400, JSON.stringify(unknown.body))
  })
})
