import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import onnxProto from 'onnx-proto'
import { InferenceSession, Tensor } from 'onnxruntime-node'
import { GraphBuilder } from '../src/builder.ts'
import { attr } from '../src/graph.ts'
import type { Model } from '../src/graph.ts'
import { writeModel } from '../src/writer.ts'

/** y = Gelu(LeakyRelu(Transpose(x · W + b))) · 2 + [0.5, -0.5], with W large enough to go external and every attribute type. */
function model (): Model {
  const b = new GraphBuilder({ opset: 20 })
  const x = b.input('x', 'float32', ['batch', 64])
  const w = b.initializer('w', { type: 'float32', dims: [64, 2], data: Float32Array.from({ length: 128 }, (_, i) => Math.sin(i)) })
  const bias = b.initializer('b', { type: 'float32', dims: [2], data: Float32Array.of(0.25, -0.25) })
  const two = b.op('Constant', [], { value: attr.tensor({ type: 'float32', dims: [], data: Float32Array.of(2) }) })
  const shift = b.op('Constant', [], { value_floats: attr.floats([0.5, -0.5]) })
  const h = b.op('Transpose', [b.op('Add', [b.op('MatMul', [x, w]), bias])], { perm: attr.ints([0, 1]) })
  const g = b.op('Gelu', [b.op('LeakyRelu', [h], { alpha: attr.float(0.1) })], { approximate: attr.string('tanh') })
  b.output(b.op('Add', [b.op('Mul', [g, two]), shift]), 'y', 'float32', ['batch', 2])
  const amax = b.op('ArgMax', [g], { axis: attr.int(1), keepdims: attr.int(0) })
  b.output(amax, 'argmax', 'int64', ['batch'])
  return b.build({ purpose: 'test' })
}

const feeds = { x: new Tensor('float32', Float32Array.from({ length: 3 * 64 }, (_, i) => Math.cos(i)), [3, 64]) }

describe('writeModel', () => {
  it('encodes every attribute type and the metadata', () => {
    const decoded = onnxProto.onnx.ModelProto.decode(writeModel(model()).model)
    const T = onnxProto.onnx.AttributeProto.AttributeType
    const types = decoded.graph?.node?.flatMap(n => n.attribute?.map(a => a.type) ?? []) ?? []
    for (const type of [T.INT, T.INTS, T.FLOAT, T.FLOATS, T.STRING, T.TENSOR]) assert.ok(types.includes(type), `attribute type ${type}`)
    assert.deepEqual(decoded.metadataProps?.map(p => [p.key, p.value]), [['purpose', 'test']])
    assert.equal(Number(decoded.opsetImport?.[0].version), 20)
  })

  it('gives the same outputs with weights embedded and in an external data file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'onnx-writer-'))
    try {
      const embedded = writeModel(model())
      const external = writeModel(model(), { externalData: { location: 'model.onnx_data', threshold: 256 } })
      assert.ok(external.externalData != null && external.externalData.byteLength >= 128 * 4)
      const stored = onnxProto.onnx.ModelProto.decode(external.model).graph?.initializer ?? []
      const EXTERNAL = onnxProto.onnx.TensorProto.DataLocation.EXTERNAL
      assert.deepEqual(stored.map(t => [t.name, t.dataLocation === EXTERNAL, t.rawData?.byteLength ?? 0]), [['w', true, 0], ['b', false, 8]])
      await writeFile(join(dir, 'model.onnx'), external.model)
      await writeFile(join(dir, 'model.onnx_data'), external.externalData)
      const a = await (await InferenceSession.create(embedded.model)).run(feeds)
      const b = await (await InferenceSession.create(join(dir, 'model.onnx'))).run(feeds)
      assert.deepEqual(a.y.dims, [3, 2])
      assert.deepEqual(b.y.data, a.y.data)
      assert.deepEqual(b.argmax.data, a.argmax.data)
    } finally {
      await rm(dir, { recursive: true })
    }
  })
})
