import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InferenceSession, Tensor } from 'onnxruntime-node'
import { GraphBuilder } from '../src/builder.ts'
import { attr } from '../src/graph.ts'
import { writeModel } from '../src/writer.ts'

describe('GraphBuilder', () => {
  it('names op outputs uniquely and renames the ones that become graph outputs', () => {
    const b = new GraphBuilder()
    const x = b.input('x', 'float32', [2])
    const r = b.op('Relu', [x])
    const s = b.op('Relu', [r])
    assert.notEqual(r, s)
    b.output(r, 'first', 'float32', [2])
    b.output(s, 'second', 'float32', [2])
    const { graph, opset } = b.build()
    assert.equal(opset, 17)
    assert.deepEqual(graph.nodes.map(n => [n.inputs, n.outputs]), [[['x'], ['first']], [['first'], ['second']]])
    assert.throws(() => b.output(x, 'y', 'float32', [2]), /not the output of a node/)
  })

  it('declares parameters as initializers with values and as inputs without', () => {
    const shapes = [{ name: 'w', dims: [2, 3] }, { name: 'b', dims: [3] }]
    const inference = new GraphBuilder()
    inference.parameters(shapes, { w: new Float32Array(6), b: new Float32Array(3) })
    const built = inference.build().graph
    assert.deepEqual(built.initializers.map(i => [i.name, i.dims]), [['w', [2, 3]], ['b', [3]]])
    assert.deepEqual(built.inputs, [])

    const training = new GraphBuilder()
    training.parameters(shapes)
    assert.deepEqual(training.build().graph.inputs, [{ name: 'w', type: 'float32', shape: [2, 3] }, { name: 'b', type: 'float32', shape: [3] }])
    assert.throws(() => new GraphBuilder().parameters(shapes, { w: new Float32Array(5), b: new Float32Array(3) }), /weight w/)
  })

  it('builds a graph onnxruntime runs, with constants and a multi-output op', async () => {
    const b = new GraphBuilder()
    const x = b.input('x', 'float32', [2, 3])
    const scaled = b.op('Mul', [b.op('Reshape', [x, b.ints([3, 2])]), b.scalar(10)])
    const [values, indices] = b.op('TopK', [scaled, b.ints([1])], { axis: attr.int(1) }, 2)
    b.output(values, 'values', 'float32', [3, 1])
    b.output(indices, 'indices', 'int64', [3, 1])
    const session = await InferenceSession.create(writeModel(b.build()).model)
    const out = await session.run({ x: new Tensor('float32', Float32Array.of(1, 5, 4, 2, 3, 6), [2, 3]) })
    assert.deepEqual([...out.values.data as Float32Array], [50, 40, 60])
    assert.deepEqual([...out.indices.data as BigInt64Array], [1n, 0n, 1n])
  })
})
