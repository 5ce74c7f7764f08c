import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { convertDecoder, readGguf } from '@node-daemon/gguf'
import { Runtime } from '../src/runtime.ts'
import { collect } from './helpers/collect.ts'
import { FAMILIES, writeFamilyModel } from './helpers/family-models.ts'
import type { Decoder } from '../src/decoder.ts'
import type { Family } from './helpers/family-models.ts'
import type { SamplingOptions } from '../src/sampling.ts'

const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }
const PROMPTS = ['It is a truth universally acknowledged', 'The old man and the sea']
const TOKENS = 20
/** How far apart two logits may be for llama.cpp's float16 cache to pick either, and how far llama.cpp's logits may be from the ONNX model's. */
const NEAR_TIE = 0.01
const LOGITS = 0.05

const maxDifference = (a: Float32Array, b: Float32Array): number => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0)

/**
 * What converting each test family must give: llama.cpp's architecture, or
 * the refusal and why, where llama.cpp's graph cannot compute what the ONNX
 * model does. llama2 runs in gguf-sentencepiece.spec.ts.
 */
const EXPECTED: Record<string, { architecture: string } | { refused: RegExp, why: string }> = {
  llama3: { architecture: 'llama' },
  'llama3-gqa': { architecture: 'llama' },
  mistral: { refused: /sliding window of 12 positions/, why: 'llama.cpp writes Mistral as llama, which has no sliding window' },
  qwen2: { architecture: 'qwen2' },
  qwen3: { architecture: 'qwen3' },
  phi3: { architecture: 'phi3' },
  gemma2: { architecture: 'gemma2' },
  gemma3: { architecture: 'gemma3' },
  smollm: { architecture: 'llama' },
  'no-position-ids': { architecture: 'llama' },
  'llama3-fp16-cache': { architecture: 'llama' },
  'llama3-fp16-cache-unrewritten': { architecture: 'llama' },
  'llama3-q4': { refused: /only float32 weights/, why: 'MatMulNBits weights: the converter writes float32 tensors from float32 initializers' },
  'qwen2-q4f16': { refused: /only float32 weights/, why: 'MatMulNBits weights' },
  'phi3-fp16-weights': { refused: /only float32 weights/, why: 'float16 initializers' }
}

const mistral = FAMILIES.find(f => f.name === 'mistral')
if (mistral == null) throw new Error('the mistral family is gone')
/** Mistral 7B v0.2 and later: no sliding window, so llama.cpp's llama computes it. */
const windowless: Family = { ...mistral, name: 'mistral-windowless', config: { ...mistral.config, slidingWindow: undefined } }
const CASES = [...FAMILIES.filter(f => f.name !== 'llama2'), windowless]
EXPECTED[windowless.name] = { architecture: 'llama' }

/** The runtime's test families converted to GGUF: llama.cpp decodes each greedily to the ONNX model's tokens, or the converter says why it cannot. */
describe('the test families as GGUF', () => {
  let dir: string
  let runtime: Runtime
  const ref = (name: string): { key: string, name: string, dir: string } => ({ key: name, name, dir: join(dir, name) })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'runtime-gguf-families-'))
    runtime = new Runtime()
    await runtime.start()
  })
  const lastLogits = async (model: { key: string, name: string, dir: string }, ids: number[]): Promise<Float32Array> => {
    const lease = await runtime.acquire(model)
    try {
      const { logits } = await (lease.model as Decoder).forward([ids])
      return logits[0]
    } finally {
      lease.release()
    }
  }
  after(async () => {
    await runtime?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('has an expectation for every family', () => {
    assert.deepEqual(CASES.map(f => f.name).sort(), Object.keys(EXPECTED).sort())
  })

  for (const family of CASES) {
    const expected = EXPECTED[family.name]
    const title = 'refused' in expected ? `${family.name}: refused (${expected.why})` : `${family.name}: as llama.cpp's ${expected.architecture}, decodes greedily to the ONNX model's tokens`
    it(title, async () => {
      await writeFamilyModel(join(dir, family.name), family)
      await mkdir(join(dir, `${family.name}-gguf`))
      const converting = convertDecoder(join(dir, family.name), join(dir, `${family.name}-gguf`, 'model.gguf'))
      if ('refused' in expected) {
        await assert.rejects(converting, { name: 'GgufConversionError', message: expected.refused })
        return
      }
      await converting
      const { metadata, tensors } = await readGguf(join(dir, `${family.name}-gguf`, 'model.gguf'))
      assert.equal(metadata['general.architecture'], expected.architecture)
      // Llama 3's scaling moves only frequencies too slow to show in a few dozen positions: the file must carry llama.cpp's factors of them.
      assert.equal(tensors.some(t => t.name === 'rope_freqs.weight' && t.dims[0] === family.config.headDim / 2), family.config.ropeScaling?.rope_type === 'llama3')
      for (const prompt of PROMPTS) {
        const [onnx, gguf] = await Promise.all([family.name, `${family.name}-gguf`].map(async name => {
          const { events, prompt: ids } = await runtime.generate(ref(name), { prompt, raw: true }, { sampling: GREEDY, maxTokens: TOKENS, stop: [] })
          return { ids, ...(await collect(events)).stats }
        }))
        assert.ok(onnx.tokens.length > 0)
        assert.deepEqual(gguf.ids, onnx.ids, 'llama.cpp\'s prompt')
        const k = onnx.tokens.findIndex((t, i) => gguf.tokens[i] !== t)
        if (k < 0 && gguf.tokens.length === onnx.tokens.length) continue
        // Where they part, the ONNX model's pick and llama.cpp's must be a near-tie: llama.cpp keeps keys and values in float16.
        const [a, b] = await Promise.all([family.name, `${family.name}-gguf`].map(async name => lastLogits(ref(name), [...onnx.ids, ...onnx.tokens.slice(0, k)])))
        const gap = Math.abs(a[onnx.tokens[k]] - a[gguf.tokens[k]])
        assert.ok(gap < NEAR_TIE, `${prompt}: token ${k}, ${onnx.tokens[k]} in ONNX and ${gguf.tokens[k]} in llama.cpp, ${gap} apart`)
        assert.ok(maxDifference(a, b) < LOGITS, `${prompt}: the logits where they part`)
      }
    })
  }
})
