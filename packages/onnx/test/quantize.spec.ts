import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InferenceSession, Tensor } from 'onnxruntime-node'
import { buildLlamaDecoder, initLlamaWeights } from '../src/models/llama.ts'
import type { LlamaConfig } from '../src/models/llama.ts'
import { dequantize8, dequantizeBlocks4, dequantizeRowBlocks8, quantize8, quantizeBlocks4, quantizeRowBlocks8, withFloat16Weights, withGatherBlockQuantized, withMatMulInteger, withMatMulNBits } from '../src/quantize.ts'
import { seededRandom } from '../src/random.ts'
import { writeModel } from '../src/writer.ts'
import type { Model } from '../src/graph.ts'

// Untied, so that the head is quantized too; hidden 48 is no whole number of 32-blocks.
const config: LlamaConfig = { modelType: 'llama', vocabSize: 96, hiddenSize: 48, intermediateSize: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 12, maxPositions: 64, rmsNormEps: 1e-6, ropeTheta: 10_000, tieEmbeddings: false }
const weights = initLlamaWeights(config, 5, 0.1)
const IDS = [3, 17, 42, 8, 91, 23, 5, 60, 77, 12]

/** Logits [sequence, vocab] of IDS run whole. */
async function logits (model: Model): Promise<Float32Array> {
  const session = await InferenceSession.create(writeModel(model).model)
  const n = IDS.length
  const feeds: Record<string, Tensor> = {
    input_ids: new Tensor('int64', BigInt64Array.from(IDS, BigInt), [1, n]),
    attention_mask: new Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    position_ids: new Tensor('int64', BigInt64Array.from(IDS, (_, i) => BigInt(i)), [1, n])
  }
  for (let l = 0; l < config.layers; l++) for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new Tensor('float32', new Float32Array(0), [1, config.kvHeads, 0, config.headDim])
  const out = await session.run(feeds)
  await session.release()
  return out.logits.data as Float32Array
}

const maxDifference = (a: Float32Array, b: Float32Array): number => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0)
const rms = (a: Float32Array): number => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length)
const cosine = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * b[i], 0) / (rms(a) * rms(b) * a.length)
const argmaxRows = (a: Float32Array): number[] => Array.from({ length: a.length / config.vocabSize }, (_, r) => {
  const row = a.subarray(r * config.vocabSize, (r + 1) * config.vocabSize)
  return row.indexOf(Math.max(...row))
})

describe('weight quantization', () => {
  it('quantizes blocks to 4 bits within half a step of each weight, zero included in every range', () => {
    const random = seededRandom(1)
    const [k, n] = [80, 6]
    const w = Float32Array.from({ length: k * n }, () => random() * 2 - 0.5)
    for (const blockSize of [32, 128]) {
      const q = quantizeBlocks4(w, k, n, blockSize)
      assert.equal(q.blocks, Math.ceil(k / blockSize))
      const back = dequantizeBlocks4(q, k, n, blockSize)
      for (let i = 0; i < w.length; i++) {
        const scale = q.scales[(i % n) * q.blocks + Math.floor(Math.floor(i / n) / blockSize)]
        assert.ok(Math.abs(back[i] - w[i]) <= scale / 2 + 1e-6, `weight ${i}`)
      }
      assert.equal(dequantizeBlocks4(quantizeBlocks4(new Float32Array(k * n), k, n, blockSize), k, n, blockSize).every(x => x === 0), true)
    }
  })

  for (const blockSize of [32, 128] as const) {
    it(`runs MatMulNBits (block ${blockSize}) as the float32 model of its dequantized weights, and near its float32 source`, async () => {
      const source = buildLlamaDecoder(config, weights)
      const quantized = withMatMulNBits(source, blockSize)
      assert.equal(quantized.graph.nodes.filter(n => n.op === 'MatMulNBits').length, config.layers * 7 + 1, 'every projection and the head')
      const dequantized = Object.fromEntries(Object.entries(weights).map(([name, w]) => {
        const shape = source.graph.initializers.find(i => i.name === name)?.dims ?? []
        return [name, shape.length === 2 && name !== 'model.embed_tokens.weight' ? dequantizeBlocks4(quantizeBlocks4(w, shape[0], shape[1], blockSize), shape[0], shape[1], blockSize) : w]
      }))
      const [q4, reference, fp32] = await Promise.all([logits(quantized), logits(buildLlamaDecoder(config, dequantized)), logits(source)])
      assert.ok(maxDifference(q4, reference) < 1e-4, `MatMulNBits computes with the dequantized weights: ${maxDifference(q4, reference)}`)
      // The stated tolerance of 4-bit weights (random ones, whose logits lie closer than trained ones'): an error under
      // 35% of the logits' RMS overall, and each position's logits pointing the same way (cosine ≥ 0.9).
      const error = rms(q4.map((x, i) => x - fp32[i]))
      assert.ok(error < 0.35 * rms(fp32), `an error of RMS ${error} against logits of RMS ${rms(fp32)}`)
      for (let row = 0; row < IDS.length; row++) {
        const at = (a: Float32Array): Float32Array => a.subarray(row * config.vocabSize, (row + 1) * config.vocabSize)
        assert.ok(cosine(at(q4), at(fp32)) >= 0.9, `position ${row}: cosine ${cosine(at(q4), at(fp32))}`)
      }
    })
  }

  it('quantizes weights to 8 bits within half a step, int8 symmetric and uint8 over a range that holds 0', () => {
    const random = seededRandom(2)
    const w = Float32Array.from({ length: 500 }, () => random() * 2 - 0.7)
    for (const type of ['int8', 'uint8'] as const) {
      const q = quantize8(w, type)
      if (type === 'int8') assert.equal(q.zeroPoint, 0)
      const back = dequantize8(q)
      for (let i = 0; i < w.length; i++) assert.ok(Math.abs(back[i] - w[i]) <= q.scale / 2 + 1e-6, `${type} weight ${i}`)
      assert.ok(dequantize8(quantize8(new Float32Array(4), type)).every(x => x === 0))
    }
    const [rows, columns, blockSize] = [5, 48, 32]
    const table = Float32Array.from({ length: rows * columns }, () => random() - 0.3)
    const q = quantizeRowBlocks8(table, rows, columns, blockSize)
    const back = dequantizeRowBlocks8(q, rows, columns, blockSize)
    for (let i = 0; i < table.length; i++) {
      const scale = q.scales[Math.floor(i / columns) * 2 + Math.floor((i % columns) / blockSize)]
      assert.ok(Math.abs(back[i] - table[i]) <= scale / 2 + 1e-6, `embedding ${i}`)
    }
  })

  for (const type of ['int8', 'uint8'] as const) {
    it(`runs ${type} weights as quantize_dynamic writes them (DynamicQuantizeLinear, MatMulInteger), near the float32 source`, async () => {
      const source = buildLlamaDecoder(config, weights)
      const quantized = withMatMulInteger(source, type)
      const ops = (op: string): number => quantized.graph.nodes.filter(n => n.op === op).length
      assert.equal(ops('MatMulInteger'), config.layers * 7 + 1, 'every projection and the head')
      // q, k and v read one normed input, gate and up another: one DynamicQuantizeLinear each.
      assert.equal(ops('DynamicQuantizeLinear'), config.layers * 4 + 1)
      assert.equal(ops('MatMul') - source.graph.nodes.filter(n => n.op === 'MatMul').length, -(config.layers * 7 + 1))
      assert.ok(writeModel(quantized).model.byteLength < 0.4 * writeModel(source).model.byteLength)
      const [int8, fp32] = await Promise.all([logits(quantized), logits(source)])
      // The stated tolerance of 8-bit weights and activations, per tensor: an error under 5% of the logits' RMS,
      // and each position's logits pointing the same way (cosine ≥ 0.99).
      const error = rms(int8.map((x, i) => x - fp32[i]))
      assert.ok(error < 0.05 * rms(fp32), `an error of RMS ${error} against logits of RMS ${rms(fp32)}`)
      for (let row = 0; row < IDS.length; row++) {
        const at = (a: Float32Array): Float32Array => a.subarray(row * config.vocabSize, (row + 1) * config.vocabSize)
        assert.ok(cosine(at(int8), at(fp32)) >= 0.99, `position ${row}: cosine ${cosine(at(int8), at(fp32))}`)
      }
    })
  }

  it('gathers 8-bit embeddings with GatherBlockQuantized as the float32 model of its dequantized table, near its source', async () => {
    const source = buildLlamaDecoder(config, weights)
    const quantized = withGatherBlockQuantized(source, 32)
    assert.equal(quantized.graph.nodes.filter(n => n.op === 'GatherBlockQuantized').length, 1)
    assert.equal(quantized.graph.initializers.some(i => i.name === 'model.embed_tokens.weight'), false, 'an untied table is stored quantized only')
    const table = weights['model.embed_tokens.weight']
    const dequantized = { ...weights, 'model.embed_tokens.weight': dequantizeRowBlocks8(quantizeRowBlocks8(table, config.vocabSize, config.hiddenSize, 32), config.vocabSize, config.hiddenSize, 32) }
    const [q8, reference, fp32] = await Promise.all([logits(quantized), logits(buildLlamaDecoder(config, dequantized)), logits(source)])
    assert.ok(maxDifference(q8, reference) < 1e-4, `GatherBlockQuantized gathers the dequantized rows: ${maxDifference(q8, reference)}`)
    // The stated tolerance of 8-bit embeddings: an error under 2% of the logits' RMS, the same greedy tokens.
    assert.ok(rms(q8.map((x, i) => x - fp32[i])) < 0.02 * rms(fp32))
    assert.deepEqual(argmaxRows(q8), argmaxRows(fp32))
    // A tied table keeps its float32 copy for the head.
    const tied: LlamaConfig = { ...config, tieEmbeddings: true }
    const tiedModel = withGatherBlockQuantized(buildLlamaDecoder(tied, initLlamaWeights(tied, 5, 0.1)), 32)
    assert.ok(tiedModel.graph.initializers.some(i => i.name === 'model.embed_tokens.weight'))
  })

  it('stores float16 weights at half the bytes, within float16 rounding of the float32 logits', async () => {
    const source = buildLlamaDecoder(config, weights)
    const half = withFloat16Weights(source)
    assert.ok(writeModel(half).model.byteLength < 0.6 * writeModel(source).model.byteLength)
    const [fp16, fp32] = await Promise.all([logits(half), logits(source)])
    assert.ok(maxDifference(fp16, fp32) < 1e-2 * rms(fp32), `${maxDifference(fp16, fp32)} against an RMS of ${rms(fp32)}`)
    assert.deepEqual(argmaxRows(fp16), argmaxRows(fp32))
  })
})
