import assert from 'node:assert/strict'
import { cp, mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { attr, buildGptDecoder, initGptWeights, withFloat16Weights, withMatMulNBits, writeModel } from '@node-daemon/onnx'
import { chooseModelFile, loadModel } from '../src/model.ts'
import { memoryNeed } from '../src/memory.ts'
import { Runtime } from '../src/runtime.ts'
import { bareGreedy } from './helpers/bare-greedy.ts'
import { asGenaiBuild, GPT, withTinyRuntime } from './helpers/tiny-models.ts'
import type { GenerationStats } from '../src/batcher.ts'
import type { CausalLM } from '../src/model.ts'
import type { SamplingOptions } from '../src/sampling.ts'
import type { Model } from '@node-daemon/onnx'

const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }
const PROMPT = 'It is a truth universally acknowledged'

/**
 * The layouts exporters write, each holding the tiny decoder. The variants of
 * an onnx-community repository (model_fp16.onnx, model_q4.onnx…) are the same
 * fp32 graph saved under the variant's name: these tests are of which file is
 * found and loaded, not of quantized arithmetic; one test runs real fp16 and
 * q4 conversions (packages/onnx's withFloat16Weights, withMatMulNBits).
 */
describe('model layouts', { timeout: 180_000 }, () => {
  const tiny = withTinyRuntime()
  let reference: number[]

  before(async () => {
    const model = await loadModel(tiny.models.decoder)
    reference = await bareGreedy(tiny.models.decoder, model.codec.encode(PROMPT), 16)
    await model.release()
  })

  async function greedy (key: string, dir: string, dtype?: string): Promise<GenerationStats> {
    const { events } = await tiny.runtime.generate({ key, name: key, dir, dtype }, { prompt: PROMPT, raw: true }, { sampling: GREEDY, maxTokens: 16, stop: [] })
    for await (const event of events) if (event.type === 'done') return event.stats
    throw new Error('no done event')
  }

  /** The decoder's directory without model.onnx, with `graphs` written at the given paths (weights external, beside each). */
  async function layout (name: string, graphs: Record<string, Model>, data: (path: string) => string = path => `${path.split('/').pop() as string}_data`): Promise<string> {
    const dir = join(tiny.models.root, name)
    await cp(tiny.models.decoder, dir, { recursive: true })
    await rm(join(dir, 'model.onnx'))
    for (const [path, model] of Object.entries(graphs)) {
      const location = data(path)
      const written = writeModel(model, { externalData: { location, threshold: 1024 } })
      await mkdir(join(dir, path, '..'), { recursive: true })
      await writeFile(join(dir, path), written.model)
      await writeFile(join(dir, path, '..', location), written.externalData as Uint8Array)
    }
    return dir
  }

  /** The tiny decoder's graph, with the weights tinyModels gives it. */
  function decoder (): Model {
    const weights = initGptWeights(GPT, 7)
    for (const w of Object.values(weights)) for (let i = 0; i < w.length; i++) w[i] *= 4
    return buildGptDecoder(GPT, weights)
  }

  it('runs an optimum export with its weights in model.onnx_data', async () => {
    const stats = await greedy('optimum', tiny.models.external)
    assert.deepEqual(stats.tokens, reference)
  })

  it('picks an onnx-community variant by dtype, fp32 by default on CPU, and names the variants a repository has', async () => {
    const dir = await layout('community', { 'onnx/model.onnx': decoder(), 'onnx/model_q4.onnx': decoder(), 'onnx/model_int8.onnx': decoder() })
    const fp32 = await loadModel(dir)
    assert.equal(fp32.info.file, 'onnx/model.onnx')
    assert.equal(fp32.info.dtype, 'fp32')
    await fp32.release()
    const q4 = await loadModel(dir, { dtype: 'q4' })
    assert.equal(q4.info.file, 'onnx/model_q4.onnx')
    await q4.release()
    assert.deepEqual((await greedy('community-q4', dir, 'q4')).tokens, reference)
    await assert.rejects(loadModel(dir, { dtype: 'fp16' }), { name: 'InvalidModelError', message: /no such variant \(it has fp32, q4, int8\)/ })
    await assert.rejects(loadModel(dir, { dtype: 'fp8' }), { name: 'InvalidInferenceRequestError' })
    // The memory check weighs the graph loaded, under onnx/ too: room for the cache alone (2 layers × key and value × 4 heads × 8 × 4 bytes × 512 tokens) is not enough.
    const short = new Runtime({ availableMemory: () => 2 * 2 * 4 * 8 * 4 * 512 + 1024 })
    await short.start()
    try {
      await assert.rejects(short.acquire({ key: 'short', name: 'short', dir, dtype: 'q4' }), { name: 'InsufficientMemoryError' })
    } finally {
      await short.stop()
    }
    // Without fp32, the CPU takes the 8-bit variant before the 4-bit one.
    await rm(join(dir, 'onnx', 'model.onnx'))
    const int8 = await loadModel(dir)
    assert.equal(int8.info.dtype, 'int8')
    await int8.release()
  })

  it('runs real fp16 and q4 variants (float16 weights, MatMulNBits) of an onnx-community repository, each near its fp32 source', async () => {
    const dir = await layout('converted', { 'onnx/model.onnx': decoder(), 'onnx/model_fp16.onnx': withFloat16Weights(decoder()), 'onnx/model_q4.onnx': withMatMulNBits(decoder(), 32) })
    const logits: Record<string, Float32Array> = {}
    for (const dtype of ['fp32', 'fp16', 'q4']) {
      const model = await loadModel(dir, { dtype }) as CausalLM
      try {
        assert.equal(model.info.dtype, dtype)
        assert.equal(model.info.quantization, { fp32: 'F32', fp16: 'F16', q4: 'Q4_0' }[dtype])
        logits[dtype] = (await model.forward([model.codec.encode(PROMPT)])).logits[0].slice()
      } finally {
        await model.release()
      }
    }
    const worst = (dtype: string): number => logits.fp32.reduce((max, x, i) => Math.max(max, Math.abs(x - logits[dtype][i])), 0)
    const range = Math.max(...logits.fp32) - Math.min(...logits.fp32)
    // float16 weights round at 2^-11 relative; 4-bit blocks at a sixteenth of each block's range.
    assert.ok(worst('fp16') < 0.01 * range, `fp16: ${worst('fp16')} of a range of ${range}`)
    assert.ok(worst('q4') < 0.25 * range, `q4: ${worst('q4')} of a range of ${range}`)
    assert.ok(worst('q4') > 0, 'q4 is quantized')
  })

  it('prefers on CUDA fp16, and reads fp32 before quantized variants on CPU', () => {
    const paths = ['onnx/model.onnx', 'onnx/model_fp16.onnx', 'onnx/model_q4f16.onnx', 'onnx/model_quantized.onnx']
    assert.equal(chooseModelFile(paths).path, 'onnx/model.onnx')
    assert.equal(chooseModelFile(paths, { executionProvider: 'cuda' }).path, 'onnx/model_fp16.onnx')
    assert.equal(chooseModelFile(paths.slice(1)).path, 'onnx/model_quantized.onnx')
    assert.equal(chooseModelFile(['onnx/model_bnb4.onnx', 'onnx/model_uint8.onnx']).dtype, 'uint8')
    assert.throws(() => chooseModelFile(['tokenizer.json']), { name: 'InvalidModelError' })
  })

  it('runs an onnxruntime-genai build named by genai_config.json, without config.json', async () => {
    const dir = await layout('genai', { 'model.onnx': decoder() }, () => 'model.onnx.data')
    const config = await asGenaiBuild(dir)
    // The memory check counts the cache genai_config.json's shape needs: 2 layers × key and value × 4 heads × 8 × 4 bytes × 512 tokens.
    assert.equal((await memoryNeed(dir, 512)).cache, 2 * 2 * 4 * 8 * 4 * 512)
    const model = await loadModel(dir)
    assert.equal(model.info.contextLength, config.n_positions)
    assert.ok(model.info.size > 4 * GPT.vocabSize * GPT.hiddenSize, 'the size counts model.onnx.data')
    await model.release()
    assert.deepEqual((await greedy('genai', dir)).tokens, reference)
    await writeFile(join(dir, 'genai_config.json'), JSON.stringify({ model: { decoder: { filename: 'gone.onnx' } } }))
    await assert.rejects(loadModel(dir), { name: 'InvalidModelError', message: /names "gone.onnx"/ })
  })

  it('feeds a merged decoder use_cache_branch: false on the prompt, true once there is a past', async () => {
    // The decoder, with its logits pushed far off whenever the flag disagrees with the past's length: greedy tokens then match only if it is right at every step.
    const model = decoder()
    const g = model.graph
    const logits = g.outputs.find(o => o.name === 'logits')
    assert.ok(logits != null)
    g.nodes = g.nodes.map(n => ({ ...n, outputs: n.outputs.map(o => o === 'logits' ? 'logits.raw' : o) }))
    g.inputs.push({ name: 'use_cache_branch', type: 'bool', shape: [1] })
    g.initializers.push(
      { name: 'branch.axis', type: 'int64', dims: [], data: BigInt64Array.of(2n) },
      { name: 'branch.zero', type: 'int64', dims: [], data: BigInt64Array.of(0n) },
      { name: 'branch.penalty', type: 'float32', dims: [GPT.vocabSize], data: Float32Array.from({ length: GPT.vocabSize }, (_, i) => i === 0 ? 1e4 : 0) }
    )
    g.nodes.push(
      { op: 'Shape', inputs: ['past_key_values.0.key'], outputs: ['branch.shape'] },
      { op: 'Gather', inputs: ['branch.shape', 'branch.axis'], outputs: ['branch.past'], attributes: { axis: attr.int(0) } },
      { op: 'Greater', inputs: ['branch.past', 'branch.zero'], outputs: ['branch.has_past'] },
      { op: 'Reshape', inputs: ['branch.has_past', 'branch.one'], outputs: ['branch.has_past1'] },
      { op: 'Xor', inputs: ['use_cache_branch', 'branch.has_past1'], outputs: ['branch.wrong'] },
      { op: 'Cast', inputs: ['branch.wrong'], outputs: ['branch.wrongf'], attributes: { to: attr.int(1) } },
      { op: 'Mul', inputs: ['branch.wrongf', 'branch.penalty'], outputs: ['branch.shift'] },
      { op: 'Add', inputs: ['logits.raw', 'branch.shift'], outputs: ['logits'] }
    )
    g.initializers.push({ name: 'branch.one', type: 'int64', dims: [1], data: BigInt64Array.of(1n) })
    const dir = await layout('merged', { 'decoder_model_merged.onnx': model })
    const stats = await greedy('merged', dir)
    assert.deepEqual(stats.tokens, reference)
  })
})
