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

  it('builds GroupQueryAttention layers as onnxruntime-genai does, with the logits of the plain graph, whether the past and present share a buffer or not', async () => {
    // head_dim a multiple of 16, as onnxruntime's CPU kernel wants to rotate; Qwen3 for the per-head norms, llama3 RoPE scaling for the caches.
    for (const config of [{ ...base, headDim: 16, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } }, { ...base, headDim: 16, modelType: 'qwen3' }] as LlamaConfig[]) {
      const weights = initLlamaWeights(config, 3, 0.2)
      const plain = await InferenceSession.create(writeModel(buildLlamaDecoder(config, weights)).model)
      const gqaModel = buildLlamaDecoder({ ...config, gqa: true }, weights)
      assert.equal(gqaModel.graph.nodes.filter(n => n.op === 'GroupQueryAttention' && n.domain === 'com.microsoft').length, config.layers)
      const fused = await InferenceSession.create(writeModel(gqaModel).model)
      try {
        assert.equal(fused.inputNames.includes('position_ids'), false)
        const names = Array.from({ length: config.layers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat()
        const int64 = (values: number[]): Tensor => new Tensor('int64', BigInt64Array.from(values, BigInt), [1, values.length])
        const run = async (session: InferenceSession, ids: number[], past: number, kv: (name: string) => Tensor, fetches?: Record<string, Tensor | null>): Promise<InferenceSession.OnnxValueMapType> => {
          const feeds: Record<string, Tensor> = { input_ids: int64(ids), attention_mask: int64(Array(past + ids.length).fill(1)) }
          if (session.inputNames.includes('position_ids')) feeds.position_ids = int64(ids.map((_, i) => past + i))
          for (const name of names) feeds[name.replace('present', 'past_key_values')] = kv(name)
          return fetches == null ? await session.run(feeds) : await session.run(feeds, fetches)
        }
        const empty = (): Tensor => new Tensor('float32', new Float32Array(0), [1, config.kvHeads, 0, config.headDim])
        const prompt = [5, 9, 13, 17, 21]
        const [a, b] = await Promise.all([run(plain, prompt, 0, empty), run(fused, prompt, 0, empty)])
        const close = (x: Tensor, y: Tensor, what: string): void => {
          const d = (x.data as Float32Array).reduce((m, v, i) => Math.max(m, Math.abs(v - (y.data as Float32Array)[i])), 0)
          assert.ok(d < 1e-4, `${what}: ${d}`)
        }
        close(b.logits as Tensor, a.logits as Tensor, 'prompt')
        // A step on the presents, each of the exact length.
        const [c, d] = await Promise.all([run(plain, [25], 5, n => a[n] as Tensor), run(fused, [25], 5, n => b[n] as Tensor)])
        close(d.logits as Tensor, c.logits as Tensor, 'step')
        // The same step with past and present one buffer of max length, the step's keys and values written in place.
        const max = 16
        const shared = Object.fromEntries(names.map(n => {
          const t = b[n] as Tensor
          const data = new Float32Array(config.kvHeads * max * config.headDim)
          for (let h = 0; h < config.kvHeads; h++) data.set((t.data as Float32Array).subarray(h * 5 * config.headDim, (h + 1) * 5 * config.headDim), h * max * config.headDim)
          return [n, new Tensor('float32', data, [1, config.kvHeads, max, config.headDim])]
        }))
        const e = await run(fused, [25], 5, n => shared[n], { logits: null, ...shared })
        close(e.logits as Tensor, c.logits as Tensor, 'shared step')
        // Head 0's keys at position 5, written into the shared buffer, are the plain graph's.
        const written = (shared['present.0.key'].data as Float32Array).subarray(5 * config.headDim, 6 * config.headDim)
        const expected = ((c['present.0.key'] as Tensor).data as Float32Array).subarray(5 * config.headDim, 6 * config.headDim)
        assert.ok(written.every((v, i) => Math.abs(v - expected[i]) < 1e-5), 'the step\'s keys are written in place')
      } finally {
        await plain.release()
        await fused.release()
      }
    }
  })
})
