import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { attr } from '../../src/graph.ts'
import type { Graph, Initializer, Node, ValueInfo } from '../../src/graph.ts'
import { inferShapes } from '../../src/autodiff/shapes.ts'
import { init, int64s } from './grad-check.ts'

function graph (inputs: ValueInfo[], nodes: Node[], initializers: Initializer[] = []): Graph {
  return { name: 'g', inputs, outputs: [], initializers, nodes }
}

const float = (name: string, shape: ValueInfo['shape']): ValueInfo => ({ name, type: 'float32', shape })
const ints = (name: string, values: number[]): Initializer => init(name, int64s([values.length], values))

describe('shape inference', () => {
  it('broadcasts elementwise ops and MatMul batch axes, with 1-D MatMul operands', () => {
    const s = inferShapes(graph([float('a', [2, 1, 3, 4]), float('b', [5, 4, 6]), float('v', [4]), float('c', [3, 1])], [
      { op: 'MatMul', inputs: ['a', 'b'], outputs: ['ab'] },
      { op: 'MatMul', inputs: ['v', 'b'], outputs: ['vb'] },
      { op: 'MatMul', inputs: ['a', 'v'], outputs: ['av'] },
      { op: 'Add', inputs: ['av', 'c'], outputs: ['sum'] }
    ]))
    assert.deepEqual(s.shape('ab'), [2, 5, 3, 6])
    assert.deepEqual(s.shape('vb'), [5, 6])
    assert.deepEqual(s.shape('av'), [2, 1, 3])
    assert.deepEqual(s.shape('sum'), [2, 3, 3])
  })

  it('sizes symbolic dimensions from dims', () => {
    const s = inferShapes(graph([float('x', ['batch', 'sequence', 8])], [{ op: 'Relu', inputs: ['x'], outputs: ['y'] }]), { batch: 2, sequence: 5 })
    assert.deepEqual(s.shape('y'), [2, 5, 8])
  })

  it('resolves Reshape (0 and -1), Slice (negative, clamped, strided), Gather, Split and LayerNormalization statistics', () => {
    const s = inferShapes(graph([float('x', [4, 6, 8])], [
      { op: 'Reshape', inputs: ['x', 'target'], outputs: ['r'] },
      { op: 'Slice', inputs: ['x', 'starts', 'ends', 'axes', 'steps'], outputs: ['sl'] },
      { op: 'Gather', inputs: ['x', 'idx'], outputs: ['ga'], attributes: { axis: attr.int(1) } },
      { op: 'Split', inputs: ['x'], outputs: ['s0', 's1'], attributes: { axis: attr.int(-1) } },
      { op: 'LayerNormalization', inputs: ['x', 'scale'], outputs: ['ln', 'mean', 'inv'], attributes: { axis: attr.int(1) } }
    ], [
      ints('target', [0, -1, 2]), ints('starts', [-3, 1]), ints('ends', [1000, 8]), ints('axes', [0, 2]), ints('steps', [1, 3]),
      init('idx', int64s([2, 3], [0, 1, 2, 3, 4, 5])), init('scale', { type: 'float32', dims: [6, 8], data: new Float32Array(48) })
    ]))
    assert.deepEqual(s.shape('r'), [4, 24, 2])
    assert.deepEqual(s.shape('sl'), [3, 6, 3])
    assert.deepEqual(s.shape('ga'), [4, 2, 3, 8])
    assert.deepEqual(s.shape('s1'), [4, 6, 4])
    assert.deepEqual(s.shape('mean'), [4, 1, 1])
  })

  it('folds shape arithmetic into constants', () => {
    const s = inferShapes(graph([float('x', [3, 10])], [
      { op: 'Shape', inputs: ['x'], outputs: ['shape'] },
      { op: 'Gather', inputs: ['shape', 'one'], outputs: ['width'] },
      { op: 'Div', inputs: ['width', 'two'], outputs: ['half'] },
      { op: 'Unsqueeze', inputs: ['half', 'zero'], outputs: ['half1'] },
      { op: 'Concat', inputs: ['minus1', 'half1'], outputs: ['target'], attributes: { axis: attr.int(0) } },
      { op: 'Reshape', inputs: ['x', 'target'], outputs: ['y'] },
      { op: 'Constant', inputs: [], outputs: ['c'], attributes: { value_ints: attr.ints([7, 8]) } }
    ], [init('one', int64s([], [1])), init('two', int64s([], [2])), ints('zero', [0]), ints('minus1', [-1])]))
    assert.deepEqual(Array.from(s.numbers('target')), [-1, 5])
    assert.deepEqual(s.shape('y'), [6, 5])
    assert.equal(s.type('shape'), 'int64')
    assert.deepEqual(s.numbers('c'), [7, 8])
  })

  it('keeps INT64_MAX slice ends through folding', () => {
    const big = init('big', { type: 'int64', dims: [1], data: new BigInt64Array([2n ** 63n - 1n]) })
    const s = inferShapes(graph([float('x', [5])], [
      { op: 'Identity', inputs: ['big'], outputs: ['end'] },
      { op: 'Slice', inputs: ['x', 'start', 'end'], outputs: ['y'] }
    ], [big, ints('start', [2])]))
    assert.equal(s.value('end')?.data[0], 2n ** 63n - 1n)
    assert.deepEqual(s.shape('y'), [3])
  })

  it('fails only downstream of a node it cannot infer, naming that node', () => {
    const s = inferShapes(graph([float('x', [2, 3])], [
      { op: 'Mystery', inputs: ['x'], outputs: ['m'], name: 'the_mystery' },
      { op: 'Relu', inputs: ['m'], outputs: ['r'] },
      { op: 'Relu', inputs: ['x'], outputs: ['fine'] }
    ]))
    assert.deepEqual(s.shape('fine'), [2, 3])
    assert.throws(() => s.shape('r'), (err: Error) => err.name === 'ShapeInferenceError' && /Mystery the_mystery/.test(err.message))
    assert.equal(s.type('r'), 'float32')
  })
})
