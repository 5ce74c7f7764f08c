import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InferenceSession, Tensor } from 'onnxruntime-node'
import { appendedKeyValues } from '../../src/kv-outputs.ts'
import { buildLlamaDecoder, initLlamaWeights, ropeInverseFrequencies } from '../../src/models/llama.ts'
import type { LlamaConfig } from '../../src/models/llama.ts'
import { writeModel } from '../../src/writer.ts'

const base: LlamaConfig = { modelType: 'llama', vocabSize: 64, hiddenSize: 32, intermediateSize: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 8, maxPositions: 64, rmsNormEps: 1e-6, ropeTheta: 10_000, tieEmbeddings: true }

/** The last position's logits of one sequence run whole, with an empty past. */
async function lastLogits (config: LlamaConfig, ids: number[]): Promise<Float32Array> {
  const session = await InferenceSession.create(writeModel(buildLlamaDecoder(config, initLlamaWeights(config, 3, 0.2))).model)
  const n = ids.length
  const feeds: Record<string, Tensor> = {
    input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
    attention_mask: new Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    position_ids: new Tensor('int64', BigInt64Array.from(ids, (_, i) => BigInt(i)), [1, n])
  }
  for (let l = 0; l < config.layers; l++) for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new Tensor('float32', new Float32Array(0), [1, config.kvHeads, 0, config.headDim])
  const out = await session.run(feeds)
  await session.release()
  return (out.logits.data as Float32Array).slice((n - 1) * config.vocabSize)
}

describe('Llama-family decoder', () => {
  it('computes RoPE inverse frequencies as transformers does for the default, linear and llama3 types', () => {
    const plain = ropeInverseFrequencies(64, 500_000)
    assert.equal(plain[0], 1)
    assert.ok(Math.abs(plain[1] - 500_000 ** (-2 / 64)) < 1e-7, 'stored as float32')
    assert.deepEqual(ropeInverseFrequencies(64, 500_000, { rope_type: 'linear', factor: 4 }), plain.map(f => f / 4))
    const scaled = ropeInverseFrequencies(64, 500_000, { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 })
    // Wavelengths under 8192 / 4 are kept, over 8192 / 1 divided by the factor, and those between interpolated.
    const wavelength = (f: number): number => 2 * Math.PI / f
    const kept = plain.findIndex(f => wavelength(f) >= 2048)
    const divided = plain.findIndex(f => wavelength(f) > 8192)
    assert.ok(kept > 0 && divided > kept + 1)
    for (let i = 0; i < plain.length; i++) {
      if (i < kept) assert.equal(scaled[i], plain[i])
      else if (i >= divided) assert.ok(Math.abs(scaled[i] - plain[i] / 32) < 1e-12 * plain[i])
      else assert.ok(scaled[i] < plain[i] && scaled[i] > plain[i] / 32, `frequency ${i} lies between`)
    }
  })

  it('lets a sliding layer see only the last `sliding_window` positions, and a global one all', async () => {
    const ids = [5, 9, 13, 17, 21, 25, 29, 33, 37, 41]
    const changed = [6, 10, 14, ...ids.slice(3)]
    // Two layers of a window of 4 reach 6 positions back from the last: the first three are out of sight.
    const mistral: LlamaConfig = { ...base, modelType: 'mistral', slidingWindow: 4 }
    assert.deepEqual(await lastLogits(mistral, changed), await lastLogits(mistral, ids))
    assert.notDeepEqual(await lastLogits(base, changed), await lastLogits(base, ids))
    // Gemma 2's odd layers are global.
    const gemma: LlamaConfig = { ...base, modelType: 'gemma2', slidingWindow: 4, queryPreAttnScalar: 8, attnLogitSoftcapping: 50, finalLogitSoftcapping: 30 }
    assert.notDeepEqual(await lastLogits(gemma, changed), await lastLogits(gemma, ids))
  })

  it('is an export the in-place cache rewrite applies to, in every family', () => {
    for (const modelType of ['llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gemma2', 'gemma3_text'] as const) {
      const config: LlamaConfig = { ...base, modelType, slidingWindow: modelType.startsWith('gemma') ? 4 : undefined }
      const rewritten = appendedKeyValues(writeModel(buildLlamaDecoder(config, initLlamaWeights(config, 1))).model)
      assert.equal(Object.keys(rewritten?.outputs ?? {}).length, 2 * config.layers, modelType)
    }
  })
})
