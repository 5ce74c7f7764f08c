import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InferenceSession, Tensor } from 'onnxruntime-node'
import { buildTrainingGraph, gradientName } from '../../src/autodiff/training-graph.ts'
import { buildGptDecoder, buildGptLoss, gptHfConfig, gptParameterShapes, initGptWeights } from '../../src/models/gpt.ts'
import type { GptConfig } from '../../src/models/gpt.ts'
import { writeModel } from '../../src/writer.ts'

const config: GptConfig = { vocabSize: 64, hiddenSize: 32, layers: 2, heads: 4, maxPositions: 16, layerNormEps: 1e-5 }
const headDim = config.hiddenSize / config.heads
const weights = initGptWeights(config, 1)
const decoder = await InferenceSession.create(writeModel(buildGptDecoder(config, weights)).model)

const int64 = (rows: number[][]): Tensor => new Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length])

type Cache = Record<string, Tensor>

function emptyCache (batch: number): Cache {
  const cache: Cache = {}
  for (let i = 0; i < config.layers; i++) {
    for (const kind of ['key', 'value']) {
      cache[`past_key_values.${i}.${kind}`] = new Tensor('float32', new Float32Array(0), [batch, config.heads, 0, headDim])
    }
  }
  return cache
}

/** One decoder step: logits [batch][position][vocab] and the cache for the next step. */
async function step (ids: number[][], mask: number[][], positions: number[][], cache: Cache): Promise<{ logits: Float32Array[][], cache: Cache }> {
  const out = await decoder.run({ input_ids: int64(ids), attention_mask: int64(mask), position_ids: int64(positions), ...cache })
  const data = out.logits.data as Float32Array
  const v = config.vocabSize
  const logits = ids.map((row, b) => row.map((_, t) => data.subarray((b * row.length + t) * v, (b * row.length + t + 1) * v)))
  const next: Cache = {}
  for (const name of Object.keys(cache)) next[name] = out[name.replace('past_key_values', 'present')]
  return { logits, cache: next }
}

const range = (start: number, end: number): number[] => Array.from({ length: end - start }, (_, i) => start + i)

function assertClose (actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  assert.equal(actual.length, expected.length)
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `at ${i}: ${actual[i]} vs ${expected[i]}`)
  }
}

describe('gpt', () => {
  it('lists every weight with its shape, initialised deterministically', () => {
    const shapes = gptParameterShapes(config)
    assert.equal(shapes.length, 2 + 12 * config.layers + 2)
    assert.deepEqual(shapes[0], { name: 'transformer.wte.weight', dims: [64, 32] })
    assert.deepEqual(initGptWeights(config, 1)['transformer.h.1.attn.c_attn.weight'], weights['transformer.h.1.attn.c_attn.weight'])
    assert.notDeepEqual(initGptWeights(config, 2)['transformer.wte.weight'], weights['transformer.wte.weight'])
    assert.equal(gptHfConfig(config, { bosTokenId: 1, eosTokenId: 2 }).n_layer, 2)
  })

  it('gives the same logits decoding token by token with the KV cache as over the full sequence', async () => {
    const ids = [3, 17, 42, 8, 61, 0, 25]
    const full = await step([ids], [ids.map(() => 1)], [range(0, ids.length)], emptyCache(1))
    let cache = emptyCache(1)
    for (let t = 0; t < ids.length; t++) {
      const out = await step([[ids[t]]], [range(0, t + 1).map(() => 1)], [[t]], cache)
      assertClose(out.logits[0][0], full.logits[0][t], 1e-4)
      cache = out.cache
    }
    assert.deepEqual(cache['past_key_values.1.key'].dims, [1, config.heads, ids.length, headDim])
  })

  it('gives left-padded rows of a batch the logits they have alone, before and after a cached step', async () => {
    const prompts = [[5, 9, 13, 2, 7], [11, 3, 8]]
    const width = 5
    const pads = prompts.map(p => width - p.length)
    const ids = prompts.map((p, b) => [...Array(pads[b]).fill(0), ...p])
    const mask = pads.map(pad => range(0, width).map(i => i < pad ? 0 : 1))
    // As Hugging Face's generate: positions count real tokens, padding gets 1.
    const positions = pads.map(pad => range(0, width).map(i => i < pad ? 1 : i - pad))
    const batch = await step(ids, mask, positions, emptyCache(2))
    const next = [20, 21]
    const batchNext = await step(next.map(n => [n]), mask.map(m => [...m, 1]), prompts.map(p => [p.length]), batch.cache)
    for (const [b, prompt] of prompts.entries()) {
      const alone = await step([prompt], [prompt.map(() => 1)], [range(0, prompt.length)], emptyCache(1))
      assertClose(batch.logits[b][width - 1], alone.logits[0][prompt.length - 1], 1e-4)
      const aloneNext = await step([[next[b]]], [[...prompt.map(() => 1), 1]], [[prompt.length]], alone.cache)
      assertClose(batchNext.logits[b][0], aloneNext.logits[0][0], 1e-4)
    }
  })

  it('leaves the training graph as it was unless `correct` is kept, and then gives the loss and gradients as without', async () => {
    const shape = { batchSize: 1, sequenceLength: 6 }
    const names = gptParameterShapes(config).map(s => s.name)
    const lossGraph = buildGptLoss(config, shape)
    const plain = buildTrainingGraph(lossGraph, { loss: 'loss', params: names })
    assert.deepEqual(plain.graph.outputs.map(o => o.name), ['loss', ...names.map(gradientName)])
    assert.ok(!plain.graph.nodes.some(n => n.op === 'ArgMax'))
    const kept = buildTrainingGraph(lossGraph, { loss: 'loss', params: names, keep: ['correct'] })
    const feeds: Record<string, Tensor> = { input_ids: int64([[1, 2, 3, 4, 5, 6]]), labels: int64([[2, 3, 4, 5, 6, -100]]) }
    for (const { name, dims } of gptParameterShapes(config)) feeds[name] = new Tensor('float32', weights[name], dims)
    const a = await (await InferenceSession.create(writeModel(plain).model)).run(feeds)
    const b = await (await InferenceSession.create(writeModel(kept).model)).run(feeds)
    for (const name of plain.graph.outputs.map(o => o.name)) assert.deepEqual(b[name].data, a[name].data, name)
    assert.deepEqual(b.correct.dims, [])
  })

  it('computes in the loss graph the cross-entropy of the decoder\'s logits, about ln(vocab) at init, and how many it predicts', async () => {
    const shape = { batchSize: 2, sequenceLength: 8 }
    const ids = [range(0, 8).map(i => (i * 7 + 3) % 64), range(0, 8).map(i => (i * 13 + 5) % 64)]
    // Next-token labels, with the last position and one more ignored.
    const labels = ids.map(row => [...row.slice(1), -100])
    labels[1][2] = -100
    const { logits } = await step(ids, ids.map(row => row.map(() => 1)), ids.map(() => range(0, 8)), emptyCache(2))
    // Untrained, it predicts next to nothing: two labels it does predict, so that `correct` counts more than zeros.
    for (const [b, t] of [[0, 3], [1, 5]]) labels[b][t] = logits[b][t].indexOf(Math.max(...logits[b][t]))

    const loss = await InferenceSession.create(writeModel(buildGptLoss(config, shape)).model)
    const feeds: Record<string, Tensor> = { input_ids: int64(ids), labels: int64(labels) }
    for (const { name, dims } of gptParameterShapes(config)) feeds[name] = new Tensor('float32', weights[name], dims)
    const out = await loss.run(feeds)
    const actual = out.loss
    assert.deepEqual(actual.dims, [])

    let sum = 0
    let count = 0
    let correct = 0
    for (const [b, row] of labels.entries()) {
      for (const [t, label] of row.entries()) {
        if (label === -100) continue
        const l = logits[b][t]
        const max = Math.max(...l)
        sum += max + Math.log(l.reduce((s, x) => s + Math.exp(x - max), 0)) - l[label]
        count++
        if (l.indexOf(max) === label) correct++
      }
    }
    assert.ok(correct >= 2)
    assert.deepEqual(out.correct.dims, [])
    assert.equal((out.correct.data as Float32Array)[0], correct)
    const value = (actual.data as Float32Array)[0]
    assert.ok(Math.abs(value - sum / count) < 1e-4, `${value} vs ${sum / count}`)
    assert.ok(Math.abs(value - Math.log(config.vocabSize)) < 0.1, `${value} vs ln(64)`)
  })
})
