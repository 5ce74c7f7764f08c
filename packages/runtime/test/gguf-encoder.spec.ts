import assert from 'node:assert/strict'
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { convertEncoder } from '@node-daemon/gguf'
import { assetDir } from '@node-daemon/models'
import { Runtime } from '../src/runtime.ts'
import { DEFAULT_SAMPLING } from '../src/sampling.ts'

/** The least cosine between llama.cpp's embedding and onnxruntime's of the same weights: llama.cpp's GELU is tanh's approximation of the graph's erf. */
const MIN_COSINE = 0.999
const TEXTS = ['The old man and the sea', 'It is a truth universally acknowledged, that a single man in possession of a good fortune', 'x']

function cosine (a: Float32Array, b: Float32Array): number {
  let dot = 0
  let na = 0
  let nb = 0
  a.forEach((x, i) => { dot += x * b[i]; na += x * x; nb += b[i] * b[i] })
  return dot / Math.sqrt(na * nb)
}

/** The default embedding model converted to GGUF, embedding in llama.cpp as onnxruntime embeds its ONNX form. */
describe('a GGUF embedding model in the runtime', () => {
  let dir: string
  let runtime: Runtime
  const ref = (name: string): { key: string, name: string, dir: string } => ({ key: name, name, dir: join(dir, name) })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'runtime-gguf-encoder-'))
    await mkdir(join(dir, 'mean'))
    await convertEncoder(assetDir('tiny-embed'), join(dir, 'mean', 'model.gguf'))
    await mkdir(join(dir, 'cls'))
    await convertEncoder(assetDir('tiny-embed'), join(dir, 'cls', 'model.gguf'), { pooling: 'cls' })
    // The ONNX model pooled by its first token, as a sentence-transformers directory says it.
    await cp(assetDir('tiny-embed'), join(dir, 'onnx-cls'), { recursive: true })
    await writeFile(join(dir, 'onnx-cls', 'modules.json'), JSON.stringify([{ idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' }, { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' }, { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' }]))
    await mkdir(join(dir, 'onnx-cls', '1_Pooling'))
    await writeFile(join(dir, 'onnx-cls', '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 128, pooling_mode_cls_token: true, pooling_mode_mean_tokens: false }))
    runtime = new Runtime()
    await runtime.start()
  })
  after(async () => {
    await runtime.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('embeds as the ONNX encoder does, pooled as the file says, normalized', async () => {
    const onnx = await runtime.embed({ key: 'onnx', name: 'tiny-embed', dir: assetDir('tiny-embed') }, TEXTS)
    const onnxCls = await runtime.embed(ref('onnx-cls'), TEXTS)
    const mean = await runtime.embed(ref('mean'), TEXTS)
    const cls = await runtime.embed(ref('cls'), TEXTS)
    assert.equal(mean.promptTokens, onnx.promptTokens)
    TEXTS.forEach((text, i) => {
      assert.ok(Math.abs(Math.hypot(...mean.embeddings[i]) - 1) < 1e-5)
      assert.ok(cosine(mean.embeddings[i], onnx.embeddings[i]) >= MIN_COSINE, `${text}: mean ${cosine(mean.embeddings[i], onnx.embeddings[i])}`)
      assert.ok(cosine(cls.embeddings[i], onnxCls.embeddings[i]) >= MIN_COSINE, `${text}: cls ${cosine(cls.embeddings[i], onnxCls.embeddings[i])}`)
    })
    // The two poolings differ where a text has more than one token: the file's pooling is the one applied.
    assert.ok(cosine(mean.embeddings[1], cls.embeddings[1]) < MIN_COSINE)
    const loaded = runtime.loaded().find(m => m.key === 'mean')
    assert.deepEqual(loaded && { kind: loaded.info.kind, family: loaded.info.family, contextLength: loaded.info.contextLength }, { kind: 'encoder', family: 'bert', contextLength: 511 })
  })

  it('takes token ids, truncates to the context or refuses, and refuses to generate', async () => {
    const lease = await runtime.acquire(ref('mean'))
    const tokens = lease.model.codec.encode(TEXTS[0])
    lease.release()
    const byText = await runtime.embed(ref('mean'), [TEXTS[0]])
    const byIds = await runtime.embed(ref('mean'), [tokens])
    assert.deepEqual(byIds.embeddings, byText.embeddings)
    const long = 'and so it went on '.repeat(200)
    const cut = await runtime.embed(ref('mean'), [long])
    assert.equal(cut.promptTokens, 511)
    await assert.rejects(runtime.embed(ref('mean'), [long], { truncate: false }), { name: 'ContextLengthError' })
    await assert.rejects(runtime.generate(ref('mean'), { prompt: 'hi', raw: true }, { sampling: DEFAULT_SAMPLING, maxTokens: 4, stop: [] }), { name: 'UnsupportedModelError' })
  })
})
