import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import onnxProto from 'onnx-proto'
import { InferenceSession, Tensor } from 'onnxruntime-node'
import { GraphBuilder } from '../src/builder.ts'
import { ExternalDataError, ModelFormatError } from '../src/errors.ts'
import { attr } from '../src/graph.ts'
import type { Model } from '../src/graph.ts'
import { encoderParameterShapes } from '../src/models/encoder.ts'
import type { EncoderConfig } from '../src/models/encoder.ts'
import { gptParameterShapes } from '../src/models/gpt.ts'
import type { GptConfig } from '../src/models/gpt.ts'
import { readModel, readWeights } from '../src/reader.ts'
import { writeModel } from '../src/writer.ts'

const { onnx } = onnxProto
const assets = new URL('../../models/assets/', import.meta.url)
// tiny-gpt keeps its weights inside model.onnx: there is no external data file next to it.
const hf = JSON.parse(await readFile(new URL('tiny-gpt/config.json', assets), 'utf8'))
const gptConfig: GptConfig = { vocabSize: hf.vocab_size, hiddenSize: hf.n_embd, layers: hf.n_layer, heads: hf.n_head, maxPositions: hf.n_positions, layerNormEps: hf.layer_norm_epsilon }
const gptBytes = await readFile(new URL('tiny-gpt/model.onnx', assets))

/** Every type of initializer and attribute, symbolic and fixed dims, a scalar, metadata and a node of another domain. */
function model (): Model {
  const b = new GraphBuilder({ name: 'all-kinds', opset: 20 })
  const x = b.input('x', 'float32', ['batch', 32])
  const pick = b.input('pick', 'int64', [2])
  const w = b.initializer('w', { type: 'float32', dims: [32, 4], data: Float32Array.from({ length: 128 }, (_, i) => Math.sin(i)) })
  b.initializer('counts', { type: 'int32', dims: [3], data: Int32Array.of(-7, 0, 2 ** 30) })
  b.initializer('flags', { type: 'bool', dims: [2, 2], data: Uint8Array.of(1, 0, 0, 1) })
  b.initializer('big', { type: 'int64', dims: [2], data: BigInt64Array.of(-(2n ** 62n), 2n ** 40n + 1n) })
  const two = b.op('Constant', [], { value: attr.tensor({ type: 'float32', dims: [], data: Float32Array.of(2) }) })
  const y = b.op('Transpose', [b.op('MatMul', [x, w])], { perm: attr.ints([1, 0]) })
  const g = b.op('Gelu', [b.op('LeakyRelu', [y], { alpha: attr.float(0.125) })], { approximate: attr.string('tanh') })
  const scaled = b.op('Mul', [g, two])
  b.output(b.op('Gather', [scaled, pick], { axis: attr.int(0) }), 'rows', 'float32', [2, 'batch'])
  b.output(b.op('Constant', [], { value_floats: attr.floats([0.5, -0.25]) }), 'shift', 'float32', [2])
  const fused = b.op('FusedGemm', [x, w], { activation: attr.string('Relu') })
  b.output(fused, 'fused', 'float32', ['batch', 4])
  const m = b.build({ purpose: 'test', note: 'round trip' })
  m.graph.nodes[m.graph.nodes.length - 1].domain = 'com.microsoft'
  return m
}

/** Node names aside, which the writer makes up when there are none. */
function withoutNames (m: Model): Model {
  return { ...m, graph: { ...m.graph, nodes: m.graph.nodes.map(({ name, ...rest }) => rest) } }
}

describe('readModel', () => {
  it('reads back what writeModel wrote, and writing that again gives the same bytes', () => {
    const original = model()
    const written = writeModel(original)
    const read = readModel(written.model)
    assert.deepEqual(withoutNames(read), { ...original, producer: 'node-daemon' })
    assert.ok(read.graph.nodes.every(n => n.name !== undefined))
    assert.deepEqual(writeModel(read).model, written.model)
  })

  it('reads initializers from an external data file through the callback, once per file', () => {
    const options = { externalData: { location: 'model.onnx_data', threshold: 16 } }
    const written = writeModel(model(), options)
    assert.ok(written.externalData !== undefined)
    const asked: string[] = []
    const read = readModel(written.model, { externalData: location => { asked.push(location); return written.externalData ?? new Uint8Array(0) } })
    assert.deepEqual(asked, ['model.onnx_data'])
    assert.deepEqual(read.graph.initializers, model().graph.initializers)
    const again = writeModel(read, options)
    assert.deepEqual(again.model, written.model)
    assert.deepEqual(again.externalData, written.externalData)
  })

  it('throws ExternalDataError without the callback, and when the file is too short', () => {
    const written = writeModel(model(), { externalData: { location: 'weights.bin', threshold: 16 } })
    assert.throws(() => readModel(written.model), (err: Error) => {
      assert.equal(err.name, ExternalDataError.name)
      assert.equal((err as ExternalDataError).location, 'weights.bin')
      assert.match(err.message, /initializer w/)
      return true
    })
    assert.throws(() => readModel(written.model, { externalData: () => new Uint8Array(100) }), { name: 'ExternalDataError' })
  })

  it('reads tensors stored in the typed fields instead of raw_data', () => {
    const T = onnx.TensorProto.DataType
    const bytes = onnx.ModelProto.encode({
      irVersion: 7,
      opsetImport: [{ domain: 'ai.onnx', version: 13 }],
      graph: {
        name: 'typed',
        output: [{ name: 'y', type: { tensorType: { elemType: T.FLOAT, shape: { dim: [{ dimValue: 2 }, {}] } } } }],
        initializer: [
          { name: 'f', dims: [2, 1], dataType: T.FLOAT, floatData: [1.5, -2] },
          { name: 'l', dims: [3], dataType: T.INT64, int64Data: [-3, 2 ** 40, 0] },
          { name: 'i', dims: [2], dataType: T.INT32, int32Data: [7, -8] },
          { name: 'b', dims: [3], dataType: T.BOOL, int32Data: [1, 0, 1] }
        ],
        node: [{ opType: 'Constant', domain: 'ai.onnx', output: ['y'], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: { dims: [2], dataType: T.FLOAT, floatData: [3, 4] } }] }]
      }
    }).finish()
    const read = readModel(bytes)
    assert.equal(read.opset, 13)
    assert.deepEqual(read.graph.initializers, [
      { name: 'f', type: 'float32', dims: [2, 1], data: Float32Array.of(1.5, -2) },
      { name: 'l', type: 'int64', dims: [3], data: BigInt64Array.of(-3n, 2n ** 40n, 0n) },
      { name: 'i', type: 'int32', dims: [2], data: Int32Array.of(7, -8) },
      { name: 'b', type: 'bool', dims: [3], data: Uint8Array.of(1, 0, 1) }
    ])
    assert.deepEqual(read.graph.outputs, [{ name: 'y', type: 'float32', shape: [2, 'unk__0'] }])
    assert.deepEqual(read.graph.nodes[0], { op: 'Constant', inputs: [], outputs: ['y'], attributes: { value: attr.tensor({ type: 'float32', dims: [2], data: Float32Array.of(3, 4) }) } })
  })

  it('throws ModelFormatError on bytes that are no model, and on types graph.ts cannot hold', () => {
    assert.throws(() => readModel(Uint8Array.of(0xff, 0xff, 0xff, 0xff)), { name: ModelFormatError.name })
    const doubles = onnx.ModelProto.encode({
      opsetImport: [{ domain: '', version: 17 }],
      graph: { initializer: [{ name: 'd', dims: [1], dataType: onnx.TensorProto.DataType.DOUBLE, doubleData: [1] }] }
    }).finish()
    assert.throws(() => readModel(doubles), (err: Error) => err.name === 'ModelFormatError' && /DOUBLE/.test(err.message))
  })
})

describe('reading the committed default models', () => {
  it('gives tiny-gpt\'s weights under gptParameterShapes\' names and dims, and the rest as constants', () => {
    const read = readModel(gptBytes)
    const shapes = gptParameterShapes(gptConfig)
    const byName = new Map(read.graph.initializers.map(i => [i.name, i]))
    for (const { name, dims } of shapes) {
      assert.deepEqual(byName.get(name)?.dims, dims, name)
      assert.equal(byName.get(name)?.type, 'float32', name)
    }
    const others = read.graph.initializers.filter(i => !shapes.some(s => s.name === i.name))
    assert.ok(others.every(i => i.name.startsWith('const_')), others.map(i => i.name).join())
    const weights = readWeights(read, shapes.map(s => s.name))
    assert.equal(weights['transformer.wte.weight'].length, gptConfig.vocabSize * gptConfig.hiddenSize)
    assert.deepEqual(read.graph.inputs.slice(0, 3).map(i => i.name), ['input_ids', 'attention_mask', 'position_ids'])
    assert.deepEqual(read.graph.outputs[0], { name: 'logits', type: 'float32', shape: ['batch_size', 'sequence_length', gptConfig.vocabSize] })
  })

  it('gives the same logits from tiny-gpt as read and written again as from the committed file', async () => {
    const headDim = gptConfig.hiddenSize / gptConfig.heads
    const ids = [5, 17, 300]
    const int64 = (values: number[]): Tensor => new Tensor('int64', BigInt64Array.from(values, BigInt), [1, values.length])
    const feeds: Record<string, Tensor> = { input_ids: int64(ids), attention_mask: int64([1, 1, 1]), position_ids: int64([0, 1, 2]) }
    for (let i = 0; i < gptConfig.layers; i++) {
      for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = new Tensor('float32', new Float32Array(0), [1, gptConfig.heads, 0, headDim])
    }
    const options = { intraOpNumThreads: 1, interOpNumThreads: 1 }
    const committed = await (await InferenceSession.create(gptBytes, options)).run(feeds)
    const rewritten = await (await InferenceSession.create(writeModel(readModel(gptBytes)).model, options)).run(feeds)
    assert.deepEqual(rewritten.logits.data, committed.logits.data)
  })

  it('gives tiny-embed\'s encoder weights, all but the training-only head', async () => {
    const hfEmbed = JSON.parse(await readFile(new URL('tiny-embed/config.json', assets), 'utf8'))
    const config: EncoderConfig = {
      vocabSize: hfEmbed.vocab_size,
      hiddenSize: hfEmbed.hidden_size,
      layers: hfEmbed.num_hidden_layers,
      heads: hfEmbed.num_attention_heads,
      maxPositions: hfEmbed.max_position_embeddings,
      typeVocabSize: hfEmbed.type_vocab_size,
      layerNormEps: hfEmbed.layer_norm_eps
    }
    const read = readModel(await readFile(new URL('tiny-embed/model.onnx', assets)))
    const shapes = encoderParameterShapes(config).filter(s => !s.name.startsWith('cls.'))
    const weights = readWeights(read, shapes.map(s => s.name))
    for (const { name, dims } of shapes) assert.equal(weights[name].length, dims.reduce((a, b) => a * b, 1), name)
    assert.deepEqual(read.graph.outputs.map(o => o.name), ['last_hidden_state'])
    assert.throws(() => readWeights(read, ['cls.predictions.bias']), { name: ModelFormatError.name })
  })
})
