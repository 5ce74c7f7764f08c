import assert from 'node:assert/strict'
import { cp, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { buildEncoder, initEncoderWeights, writeModel } from '@node-daemon/onnx'
import * as ort from 'onnxruntime-node'
import { loadModel } from '../src/model.ts'
import { ENCODER, withTinyRuntime, writeReranker } from './helpers/tiny-models.ts'
import type { EmbedInput, Encoder } from '../src/model.ts'
import type { Model } from '@node-daemon/onnx'

/** Texts of different lengths, so that a run pads all but the longest. */
const TEXTS = ['Emma', 'It is a truth universally acknowledged', 'She was the youngest of the two daughters of a most affectionate, indulgent father']

const int64 = (values: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [1, values.length])

/** last_hidden_state of one sequence, unpadded, straight from onnxruntime: [tokens][width]. */
async function states (dir: string, ids: number[]): Promise<number[][]> {
  const session = await ort.InferenceSession.create(join(dir, 'model.onnx'))
  try {
    const out = await session.run({ input_ids: int64(ids), attention_mask: int64(ids.map(() => 1)), token_type_ids: int64(ids.map(() => 0)) })
    const data = Array.from(out.last_hidden_state.data as Float32Array)
    const width = out.last_hidden_state.dims[2]
    return ids.map((_, t) => data.slice(t * width, (t + 1) * width))
  } finally {
    await session.release()
  }
}

/** sentence-transformers' pooling, written plainly from its definitions. */
function reference (mode: string, h: number[][]): number[] {
  const n = h.length
  const column = (i: number): number[] => h.map(row => row[i])
  return h[0].map((_, i) => {
    const c = column(i)
    switch (mode) {
      case 'cls': return c[0]
      case 'lasttoken': return c[n - 1]
      case 'max': return Math.max(...c)
      case 'mean': return c.reduce((a, b) => a + b, 0) / n
      case 'mean_sqrt_len': return c.reduce((a, b) => a + b, 0) / Math.sqrt(n)
      case 'weightedmean': return c.reduce((a, b, t) => a + b * (t + 1), 0) / (n * (n + 1) / 2)
      default: throw new Error(mode)
    }
  })
}

const unit = (v: number[]): number[] => {
  const norm = Math.sqrt(v.reduce((a, b) => a + b * b, 0))
  return v.map(x => x / norm)
}

function close (actual: ArrayLike<number>, expected: number[], what: string, tolerance = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: length`)
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) < tolerance, `${what}: component ${i} is ${actual[i]}, expected ${expected[i]}`)
}

describe('encoders', { timeout: 180_000 }, () => {
  const tiny = withTinyRuntime()
  let n = 0

  /** A copy of the tiny encoder with sentence-transformers' files. */
  async function variant (files: Record<string, unknown>, model?: Model): Promise<string> {
    const dir = join(tiny.models.root, `variant-${n++}`)
    await cp(tiny.models.encoder, dir, { recursive: true })
    for (const [path, value] of Object.entries(files)) {
      await mkdir(join(dir, path, '..'), { recursive: true })
      await writeFile(join(dir, path), JSON.stringify(value))
    }
    if (model != null) await writeFile(join(dir, 'model.onnx'), writeModel(model).model)
    return dir
  }

  async function embed (dir: string, inputs: EmbedInput[], inputType?: 'query' | 'document'): Promise<Float32Array[]> {
    return (await tiny.runtime.embed({ key: dir, name: 'tiny', dir }, inputs, { inputType })).embeddings
  }

  const modules = (normalize: boolean): unknown => [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ...(normalize ? [{ idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' }] : [])
  ]
  const pooling = (...modes: string[]): unknown => ({
    word_embedding_dimension: ENCODER.hiddenSize,
    pooling_mode_cls_token: modes.includes('cls'),
    pooling_mode_mean_tokens: modes.includes('mean'),
    pooling_mode_max_tokens: modes.includes('max'),
    pooling_mode_mean_sqrt_len_tokens: modes.includes('mean_sqrt_len'),
    pooling_mode_weightedmean_tokens: modes.includes('weightedmean'),
    pooling_mode_lasttoken: modes.includes('lasttoken')
  })

  /** Embeddings of TEXTS in one padded run against the reference over each text's own states. */
  async function check (dir: string, modes: string[], normalize: boolean): Promise<void> {
    const model = await loadModel(dir) as Encoder
    const ids = TEXTS.map(text => model.codec.encodeForModel(text))
    await model.release()
    const got = await embed(dir, TEXTS)
    for (const [k, text] of TEXTS.entries()) {
      const h = await states(dir, ids[k])
      const pooled = modes.flatMap(mode => reference(mode, h))
      close(got[k], normalize ? unit(pooled) : pooled, `${modes.join('+')} of ${JSON.stringify(text)}`)
    }
  }

  it('mean-pools and normalizes without a sentence-transformers config, as before', async () => {
    await check(tiny.models.encoder, ['mean'], true)
  })

  it('pools as 1_Pooling/config.json says, normalized only with a Normalize module', async () => {
    await check(await variant({ 'modules.json': modules(true), '1_Pooling/config.json': pooling('cls') }), ['cls'], true)
    await check(await variant({ 'modules.json': modules(false), '1_Pooling/config.json': pooling('lasttoken') }), ['lasttoken'], false)
    await check(await variant({ 'modules.json': modules(false), '1_Pooling/config.json': pooling('weightedmean') }), ['weightedmean'], false)
    await check(await variant({ 'modules.json': modules(true), '1_Pooling/config.json': pooling('mean_sqrt_len') }), ['mean_sqrt_len'], true)
  })

  it('concatenates several modes in sentence-transformers\' order, and says the width', async () => {
    const dir = await variant({ 'modules.json': modules(true), '1_Pooling/config.json': pooling('mean', 'cls', 'max') })
    await check(dir, ['cls', 'max', 'mean'], true)
    const model = await loadModel(dir) as Encoder
    assert.equal(model.dimensions, 3 * ENCODER.hiddenSize)
    await model.release()
  })

  it('puts the config\'s query or document prefix before a text, the document\'s by default', async () => {
    const dir = await variant({ 'config_sentence_transformers.json': { prompts: { query: 'query: ', passage: 'passage: ' }, default_prompt_name: null } })
    const [query, document] = [(await embed(dir, [TEXTS[1]], 'query'))[0], (await embed(dir, [TEXTS[1]]))[0]]
    const [prefixedQuery, prefixedDocument, bare] = await embed(tiny.models.encoder, ['query: ' + TEXTS[1], 'passage: ' + TEXTS[1], TEXTS[1]])
    close(query, Array.from(prefixedQuery), 'query')
    close(document, Array.from(prefixedDocument), 'document')
    assert.notDeepEqual(Array.from(document), Array.from(bare))
  })

  it('embeds a text given with its ids from those ids, and again from its text when its input type has a prefix', async () => {
    const model = await loadModel(tiny.models.encoder) as Encoder
    const ids = model.codec.encode(TEXTS[2])
    await model.release()
    // Ids the text does not spell: only taking them as given can make the embedding theirs.
    const others = [...ids].reverse()
    const [given, fromIds, fromText] = await embed(tiny.models.encoder, [{ text: TEXTS[2], ids: others }, others, TEXTS[2]])
    assert.deepEqual(Array.from(given), Array.from(fromIds))
    assert.notDeepEqual(Array.from(given), Array.from(fromText))
    const prefixed = await variant({ 'config_sentence_transformers.json': { prompts: { query: 'query: ', passage: 'passage: ' } } })
    const [tokenized, text] = await embed(prefixed, [{ text: TEXTS[2], ids: others }, TEXTS[2]])
    close(tokenized, Array.from(text), 'a prefixed text given with its ids')
  })

  it('reads an fp16 export\'s float16 states as float32', async () => {
    // The encoder with its output cast to float16, as an fp16 conversion without keep_io_types leaves it.
    const model = buildEncoder(ENCODER, initEncoderWeights(ENCODER, 7))
    model.graph.nodes = model.graph.nodes.map(node => ({ ...node, outputs: node.outputs.map(o => o === 'last_hidden_state' ? 'states32' : o) }))
    model.graph.nodes.push({ op: 'Cast', inputs: ['states32'], outputs: ['last_hidden_state'], attributes: { to: { type: 'int', value: 10 } } })
    model.graph.outputs = model.graph.outputs.map(o => o.name === 'last_hidden_state' ? { ...o, type: 'float16' } : o)
    const dir = await variant({}, model)
    const [half, full] = [await embed(dir, TEXTS), await embed(tiny.models.encoder, TEXTS)]
    // float16 keeps 11 bits: about 5e-4 of each state, less once pooled and normalized.
    for (const [k, v] of half.entries()) close(v, Array.from(full[k]), `float16 states of ${JSON.stringify(TEXTS[k])}`, 1e-3)
    assert.ok(half.some((v, k) => v.some((x, i) => x !== full[k][i])), 'the states were rounded to float16')
  })

  it('takes an export\'s sentence_embedding as it is, pooled already', async () => {
    // The encoder with its first token's state as sentence_embedding, as an export with the pooling inside gives it.
    const model = buildEncoder(ENCODER, initEncoderWeights(ENCODER, 7))
    model.graph.initializers.push({ name: 'first', type: 'int64', dims: [], data: BigInt64Array.of(0n) })
    model.graph.nodes.push({ op: 'Gather', inputs: ['last_hidden_state', 'first'], outputs: ['sentence_embedding'], attributes: { axis: { type: 'int', value: 1 } } })
    model.graph.outputs.push({ name: 'sentence_embedding', type: 'float32', shape: ['batch_size', ENCODER.hiddenSize] })
    const dir = await variant({ 'modules.json': modules(true), '1_Pooling/config.json': pooling('mean') }, model)
    const loaded = await loadModel(dir) as Encoder
    const ids = loaded.codec.encodeForModel(TEXTS[2])
    assert.equal(loaded.dimensions, ENCODER.hiddenSize)
    await loaded.release()
    const [got] = await embed(dir, [TEXTS[2]])
    close(got, unit((await states(dir, ids))[0]), 'sentence_embedding')
  })
})

describe('cross-encoder rerankers', { timeout: 180_000 }, () => {
  const tiny = withTinyRuntime()

  async function reranker (labels: number): Promise<{ dir: string, cls: number, sep: number }> {
    const dir = join(tiny.models.root, `reranker-${labels}`)
    return { dir, ...await writeReranker(tiny.models.encoder, dir, labels) }
  }

  const QUERY = 'Who is the youngest daughter?'
  const DOCUMENTS = TEXTS

  /** Each pair's score from its own unpadded run, the pair laid out by hand as BERT's template does. */
  async function expected (dir: string, cls: number, sep: number): Promise<number[]> {
    const model = await loadModel(dir)
    const encode = (text: string): number[] => model.codec.encode(text)
    await model.release()
    const session = await ort.InferenceSession.create(join(dir, 'model.onnx'))
    try {
      const scores: number[] = []
      for (const document of DOCUMENTS) {
        const q = [cls, ...encode(QUERY), sep]
        const d = [...encode(document), sep]
        const ids = [...q, ...d]
        const out = await session.run({ input_ids: int64(ids), attention_mask: int64(ids.map(() => 1)), token_type_ids: int64([...q.map(() => 0), ...d.map(() => 1)]) })
        const logits = Array.from(out.logits.data as Float32Array)
        scores.push(logits.length === 1 ? 1 / (1 + Math.exp(-logits[0])) : Math.exp(logits[1]) / (Math.exp(logits[0]) + Math.exp(logits[1])))
      }
      return scores
    } finally {
      await session.release()
    }
  }

  for (const labels of [1, 2]) {
    it(`scores (query, document) pairs from logits of ${labels} label${labels > 1 ? 's' : ''}, in one padded run as each alone`, async () => {
      const { dir, cls, sep } = await reranker(labels)
      const model = await loadModel(dir)
      assert.equal(model.kind, 'reranker')
      await model.release()
      const { scores, promptTokens } = await tiny.runtime.rerank({ key: dir, name: 'rr', dir }, QUERY, DOCUMENTS)
      const want = await expected(dir, cls, sep)
      close(scores, want, 'scores')
      assert.ok(Math.max(...want) - Math.min(...want) > 1e-3, `the scores differ between documents: ${want.join(', ')}`)
      assert.ok(promptTokens > DOCUMENTS.length * 3)
      await assert.rejects(tiny.runtime.embed({ key: dir, name: 'rr', dir }, ['x']), { name: 'UnsupportedModelError', message: /does not support embeddings/ })
    })
  }

  it('refuses to rerank with an embedding model', async () => {
    await assert.rejects(tiny.runtime.rerank({ key: 'enc', name: 'enc', dir: tiny.models.encoder }, 'q', ['d']), { name: 'UnsupportedModelError', message: /does not support reranking/ })
  })
})
