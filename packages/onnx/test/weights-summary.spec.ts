import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import onnxProto from 'onnx-proto'
import { buildGptDecoder, initGptWeights, weightsSummary, writeModel } from '../src/index.ts'
import type { GptConfig } from '../src/index.ts'

const CONFIG: GptConfig = { vocabSize: 64, hiddenSize: 16, layers: 1, heads: 2, maxPositions: 32, layerNormEps: 1e-5 }

/** A model of the given initializers ([dims, ONNX data type]) and node op types, written by onnx-proto itself. */
function handMade (initializers: Array<[number[], number]>, ops: string[]): Uint8Array {
  const { onnx } = onnxProto
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      initializer: initializers.map(([dims, dataType], i) => ({ name: `w${i}`, dims, dataType, rawData: new Uint8Array(4) })),
      node: ops.map((opType, i) => ({ opType, name: `n${i}`, input: [], output: [`o${i}`] }))
    }
  }).finish()
}

describe('weightsSummary', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'weights-summary-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('counts the float32 weights of a model, inline or as external data', async () => {
    const model = buildGptDecoder(CONFIG, initGptWeights(CONFIG, 1))
    const expected = model.graph.initializers.filter(t => t.type === 'float32').reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0)
    assert.ok(expected > 4_000, String(expected))
    await writeFile(join(dir, 'whole.onnx'), writeModel(model).model)
    const ops = [...new Set(model.graph.nodes.map(n => n.op))].sort()
    assert.deepEqual(await weightsSummary(join(dir, 'whole.onnx')), { parameters: expected, quantization: 'F32', ops })
    await writeFile(join(dir, 'split.onnx'), writeModel(model, { externalData: { location: 'model.onnx_data', threshold: 256 } }).model)
    assert.deepEqual(await weightsSummary(join(dir, 'split.onnx')), { parameters: expected, quantization: 'F32', ops })
  })

  it('names the type most weights have, and 4-bit MatMulNBits models Q4_0', async () => {
    await writeFile(join(dir, 'f16.onnx'), handMade([[[4, 8], 10], [[2], 1], [[3], 7]], ['MatMul']))
    assert.deepEqual(await weightsSummary(join(dir, 'f16.onnx')), { parameters: 34, quantization: 'F16', ops: ['MatMul'] })
    await writeFile(join(dir, 'q8.onnx'), handMade([[[16, 16], 3], [[16], 1]], ['MatMulInteger']))
    assert.deepEqual(await weightsSummary(join(dir, 'q8.onnx')), { parameters: 272, quantization: 'Q8_0', ops: ['MatMulInteger'] })
    await writeFile(join(dir, 'q4.onnx'), handMade([[[16, 2, 8], 2], [[16], 1]], ['MatMulNBits']))
    assert.equal((await weightsSummary(join(dir, 'q4.onnx'))).quantization, 'Q4_0')
    await writeFile(join(dir, 'text.onnx'), 'not a model at all, just some words\n')
    await assert.rejects(weightsSummary(join(dir, 'text.onnx')), { name: 'ModelFormatError' })
  })
})
