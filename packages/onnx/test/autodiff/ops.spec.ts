import { describe, it } from 'node:test'
import { attr } from '../../src/graph.ts'
import type { Attribute, Initializer, Model, Node, TensorValue } from '../../src/graph.ts'
import { gradCheck, init, int64s, opModel, randomFloats, rng } from './grad-check.ts'
import type { RandomOptions } from './grad-check.ts'

interface Case {
  /** Float inputs, all of them parameters. */
  params: Record<string, { dims: number[], range?: RandomOptions }>
  node: (params: string[]) => Node
  /** Constant inputs and the nodes that make them. */
  initializers?: Initializer[]
  nodes?: Node[]
  opset?: number
  /** A smaller finite-difference step, where nearby inputs would swap an extremum. */
  eps?: number
}

/** Checks one op's gradients at two random points. */
async function check (c: Case): Promise<void> {
  for (const seed of [1, 2]) {
    const rand = rng(seed)
    const feeds: Record<string, TensorValue> = {}
    for (const [name, { dims, range }] of Object.entries(c.params)) feeds[name] = randomFloats(rand, dims, range)
    const names = Object.keys(c.params)
    const model: Model = opModel(c.node(names), feeds, rand, { opset: c.opset, initializers: c.initializers, nodes: c.nodes })
    await gradCheck(model, { params: names, feeds, eps: c.eps })
  }
}

function op (name: string, attributes?: Record<string, Attribute>, extraInputs: string[] = [], outputs = ['y']): (params: string[]) => Node {
  return params => ({ op: name, inputs: [...params, ...extraInputs], outputs, ...(attributes === undefined ? {} : { attributes }) })
}

const ints = (name: string, values: number[]): Initializer => init(name, int64s([values.length], values))

describe('gradients of linear ops', () => {
  it('MatMul of matrices', async () => {
    await check({ params: { a: { dims: [3, 4] }, b: { dims: [4, 5] } }, node: op('MatMul') })
  })
  it('MatMul of a batch by a weight', async () => {
    await check({ params: { a: { dims: [2, 3, 4] }, b: { dims: [4, 5] } }, node: op('MatMul') })
  })
  it('MatMul with batch axes broadcast on both sides', async () => {
    await check({ params: { a: { dims: [2, 1, 3, 4] }, b: { dims: [3, 4, 2] } }, node: op('MatMul') })
  })
  it('MatMul of a vector by a matrix and a matrix by a vector', async () => {
    await check({ params: { a: { dims: [4] }, b: { dims: [4, 3] } }, node: op('MatMul') })
    await check({ params: { a: { dims: [2, 3, 4] }, b: { dims: [4] } }, node: op('MatMul') })
  })
  for (const [transA, transB] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
    it(`Gemm transA=${transA} transB=${transB} with alpha, beta and a broadcast C`, async () => {
      await check({
        params: { a: { dims: transA === 1 ? [4, 3] : [3, 4] }, b: { dims: transB === 1 ? [5, 4] : [4, 5] }, c: { dims: [5] } },
        node: op('Gemm', { transA: attr.int(transA), transB: attr.int(transB), alpha: attr.float(0.7), beta: attr.float(1.3) })
      })
    })
  }
  it('Gemm with a full C and none', async () => {
    await check({ params: { a: { dims: [3, 4] }, b: { dims: [4, 2] }, c: { dims: [3, 2] } }, node: op('Gemm') })
    await check({ params: { a: { dims: [3, 4] }, b: { dims: [4, 2] } }, node: op('Gemm') })
  })
})

describe('gradients of broadcasting arithmetic', () => {
  for (const name of ['Add', 'Sub', 'Mul']) {
    it(`${name} with broadcast on both sides`, async () => {
      await check({ params: { a: { dims: [2, 3, 4] }, b: { dims: [3, 1] } }, node: op(name) })
      await check({ params: { a: { dims: [1, 4] }, b: { dims: [3, 1] } }, node: op(name) })
    })
  }
  it('Div with broadcast', async () => {
    await check({ params: { a: { dims: [2, 3, 4] }, b: { dims: [4], range: { min: 0.5, max: 1.5 } } }, node: op('Div') })
  })
  it('Pow by a constant and by a tensor', async () => {
    await check({ params: { x: { dims: [3, 4] } }, node: op('Pow', undefined, ['three']), initializers: [init('three', { type: 'float32', dims: [], data: new Float32Array([3]) })] })
    await check({ params: { x: { dims: [3, 4], range: { min: 0.5, max: 2 } }, p: { dims: [4] } }, node: op('Pow') })
  })
  it('Sum and Mean of three', async () => {
    await check({ params: { a: { dims: [2, 3] }, b: { dims: [3] }, c: { dims: [2, 1] } }, node: op('Sum') })
    await check({ params: { a: { dims: [2, 3] }, b: { dims: [3] }, c: { dims: [2, 1] } }, node: op('Mean') })
  })
  it('the same input used several times: x·x + x', async () => {
    for (const seed of [3, 4]) {
      const rand = rng(seed)
      const x = randomFloats(rand, [3, 4])
      const model = opModel({ op: 'Add', inputs: ['xx', 'x'], outputs: ['y'] }, { x }, rand, { nodes: [{ op: 'Mul', inputs: ['x', 'x'], outputs: ['xx'] }] })
      await gradCheck(model, { params: ['x'], feeds: { x } })
    }
  })
  it('Where picks gradients by a constant mask', async () => {
    const mask = init('mask', { type: 'bool', dims: [3, 4], data: Uint8Array.from({ length: 12 }, (_, i) => i % 3 === 0 ? 1 : 0) })
    await check({
      params: { a: { dims: [3, 4] }, b: { dims: [4] } },
      node: ([a, b]) => ({ op: 'Where', inputs: ['mask', a, b], outputs: ['y'] }),
      initializers: [mask]
    })
  })
})

describe('gradients of activations', () => {
  const unary: Array<[string, RandomOptions?, Record<string, Attribute>?, number?]> = [
    ['Relu', { awayFromZero: 0.05 }],
    ['LeakyRelu', { awayFromZero: 0.05 }, { alpha: attr.float(0.2) }],
    ['Tanh'],
    ['Sigmoid'],
    ['Erf'],
    ['Exp'],
    ['Log', { min: 0.5, max: 2 }],
    ['Sqrt', { min: 0.5, max: 2 }],
    ['Neg'],
    ['Abs', { awayFromZero: 0.05 }],
    ['Reciprocal', { min: 0.5, max: 2 }],
    ['Identity'],
    ['Gelu', undefined, undefined, 20],
    ['Gelu', undefined, { approximate: attr.string('tanh') }, 20],
    ['Softmax', { min: -2, max: 2 }],
    ['Softmax', { min: -2, max: 2 }, { axis: attr.int(1) }],
    ['LogSoftmax', { min: -2, max: 2 }],
    ['LogSoftmax', { min: -2, max: 2 }, { axis: attr.int(0) }]
  ]
  for (const [name, range, attributes, opset] of unary) {
    it(`${name}${attributes === undefined ? '' : ` ${JSON.stringify(Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, v.value])))}`}`, async () => {
      await check({ params: { x: { dims: [2, 3, 4], range } }, node: op(name, attributes), opset })
    })
  }
  it('Cast float to float passes the gradient through', async () => {
    await check({ params: { x: { dims: [3, 4] } }, node: op('Cast', { to: attr.int(1) }) })
  })
  it('Clip between constant bounds', async () => {
    await check({
      params: { x: { dims: [4, 5], range: { min: -2, max: 2 } } },
      node: op('Clip', undefined, ['lo', 'hi']),
      initializers: [init('lo', { type: 'float32', dims: [], data: new Float32Array([-0.5]) }), init('hi', { type: 'float32', dims: [], data: new Float32Array([0.75]) })]
    })
  })
  it('Dropout in inference mode is the identity', async () => {
    await check({ params: { x: { dims: [3, 4] } }, node: op('Dropout') })
  })
})

describe('gradients of normalization', () => {
  it('LayerNormalization over the last axis with scale and bias', async () => {
    await check({ params: { x: { dims: [2, 3, 5] }, scale: { dims: [5] }, bias: { dims: [5] } }, node: op('LayerNormalization', { epsilon: attr.float(1e-5) }) })
  })
  it('LayerNormalization over the last two axes, without bias', async () => {
    await check({ params: { x: { dims: [2, 3, 4] }, scale: { dims: [3, 4] } }, node: op('LayerNormalization', { axis: attr.int(1) }) })
  })
})

describe('gradients of shape ops', () => {
  it('Reshape with 0 and -1', async () => {
    await check({ params: { x: { dims: [2, 3, 4] } }, node: op('Reshape', undefined, ['shape']), initializers: [ints('shape', [0, -1, 2])] })
  })
  it('Transpose with a permutation and by default', async () => {
    await check({ params: { x: { dims: [2, 3, 4] } }, node: op('Transpose', { perm: attr.ints([1, 2, 0]) }) })
    await check({ params: { x: { dims: [2, 3, 4] } }, node: op('Transpose') })
  })
  it('Flatten, Squeeze and Unsqueeze', async () => {
    await check({ params: { x: { dims: [2, 3, 4] } }, node: op('Flatten', { axis: attr.int(2) }) })
    await check({ params: { x: { dims: [2, 1, 4] } }, node: op('Squeeze', undefined, ['axes']), initializers: [ints('axes', [1])] })
    await check({ params: { x: { dims: [2, 4] } }, node: op('Unsqueeze', undefined, ['axes']), initializers: [ints('axes', [0, 2])] })
  })
  it('Expand', async () => {
    await check({ params: { x: { dims: [3, 1] } }, node: op('Expand', undefined, ['shape']), initializers: [ints('shape', [2, 3, 4])] })
  })
  it('Concat of parameters and a constant', async () => {
    await check({
      params: { a: { dims: [2, 3] }, b: { dims: [2, 1] } },
      node: ([a, b]) => ({ op: 'Concat', inputs: [a, 'k', b], outputs: ['y'], attributes: { axis: attr.int(1) } }),
      initializers: [init('k', randomFloats(rng(9), [2, 2]))]
    })
  })
  it('Split, with one part unused', async () => {
    await check({
      params: { x: { dims: [2, 6] } },
      node: op('Split', { axis: attr.int(1) }, ['sizes'], ['y', 'unused', 'z']),
      initializers: [ints('sizes', [1, 2, 3])]
    })
  })
  it('Slice with unit steps', async () => {
    await check({
      params: { x: { dims: [4, 5, 3] } },
      node: op('Slice', undefined, ['starts', 'ends', 'axes']),
      initializers: [ints('starts', [1, -4]), ints('ends', [3, 1000]), ints('axes', [0, 1])]
    })
  })
  it('Slice with a stride and a negative step', async () => {
    await check({
      params: { x: { dims: [5, 6] } },
      node: op('Slice', undefined, ['starts', 'ends', 'axes', 'steps']),
      initializers: [ints('starts', [0, -1]), ints('ends', [5, 0]), ints('axes', [0, 1]), ints('steps', [2, -2])]
    })
  })
})

describe('gradients of gathers and reductions', () => {
  it('Gather rows of an embedding, with repeated and negative indices', async () => {
    await check({ params: { table: { dims: [5, 3] } }, node: op('Gather', undefined, ['ids']), initializers: [init('ids', int64s([2, 3], [0, 4, 1, 4, -1, 0]))] })
  })
  it('Gather along axis 1 with 2-D indices and with a scalar index', async () => {
    await check({ params: { x: { dims: [2, 5, 3] } }, node: op('Gather', { axis: attr.int(1) }, ['ids']), initializers: [init('ids', int64s([2, 2], [1, 3, 3, 0]))] })
    await check({ params: { x: { dims: [2, 5, 3] } }, node: op('Gather', { axis: attr.int(2) }, ['ids']), initializers: [init('ids', int64s([], [1]))] })
  })
  it('GatherElements', async () => {
    await check({ params: { x: { dims: [3, 4] } }, node: op('GatherElements', { axis: attr.int(1) }, ['ids']), initializers: [init('ids', int64s([3, 2], [0, 3, 1, 1, 2, 0]))] })
  })
  it('ReduceSum with axes and keepdims 0, and over everything', async () => {
    await check({ params: { x: { dims: [2, 3, 4] } }, node: op('ReduceSum', { keepdims: attr.int(0) }, ['axes']), initializers: [ints('axes', [0, -1])] })
    await check({ params: { x: { dims: [2, 3, 4] } }, node: op('ReduceSum') })
  })
  it('ReduceMean with axes as an attribute (opset 17) and as an input (opset 18)', async () => {
    await check({ params: { x: { dims: [2, 3, 4] } }, node: op('ReduceMean', { axes: attr.ints([1]) }) })
    await check({ params: { x: { dims: [2, 3, 4] } }, node: op('ReduceMean', { keepdims: attr.int(0) }, ['axes']), initializers: [ints('axes', [2])], opset: 18 })
  })
  it('ReduceMax and ReduceMin, and a softmax stabilised by subtracting the max', async () => {
    await check({ params: { x: { dims: [3, 4, 2] } }, node: op('ReduceMax', { axes: attr.ints([1]) }), eps: 1e-3 })
    await check({ params: { x: { dims: [3, 4, 2] } }, node: op('ReduceMin', { keepdims: attr.int(0) }, ['axes']), initializers: [ints('axes', [0, 2])], opset: 18, eps: 1e-3 })
    await check({
      params: { x: { dims: [3, 5] } },
      nodes: [
        { op: 'ReduceMax', inputs: ['x'], outputs: ['max'], attributes: { axes: attr.ints([-1]) } },
        { op: 'Sub', inputs: ['x', 'max'], outputs: ['shifted'] },
        { op: 'Exp', inputs: ['shifted'], outputs: ['exp'] },
        { op: 'ReduceSum', inputs: ['exp', 'last'], outputs: ['total'] }
      ],
      node: () => ({ op: 'Div', inputs: ['exp', 'total'], outputs: ['y'] }),
      initializers: [ints('last', [-1])]
    })
  })
})

describe('gradients of cross-entropy', () => {
  const labels = init('labels', int64s([4], [2, 0, 4, 2]))
  for (const reduction of ['mean', 'sum', 'none']) {
    it(`SoftmaxCrossEntropyLoss with reduction ${reduction}`, async () => {
      await check({ params: { scores: { dims: [4, 5], range: { min: -2, max: 2 } } }, node: op('SoftmaxCrossEntropyLoss', { reduction: attr.string(reduction) }, ['labels']), initializers: [labels] })
    })
  }
  it('SoftmaxCrossEntropyLoss with ignore_index and class weights', async () => {
    const ignoring = init('labels', int64s([5], [2, -100, 4, 2, -100]))
    const weights = init('weights', { type: 'float32', dims: [5], data: new Float32Array([0.5, 1, 2, 1.5, 0.8]) })
    await check({ params: { scores: { dims: [5, 5] } }, node: op('SoftmaxCrossEntropyLoss', { ignore_index: attr.int(-100) }, ['ignoring']), initializers: [{ ...ignoring, name: 'ignoring' }] })
    await check({ params: { scores: { dims: [5, 5] } }, node: op('SoftmaxCrossEntropyLoss', { ignore_index: attr.int(-100) }, ['ignoring', 'weights']), initializers: [{ ...ignoring, name: 'ignoring' }, weights] })
  })
  it('SoftmaxCrossEntropyLoss over a sequence [N, C, T], through both outputs', async () => {
    await check({
      params: { scores: { dims: [2, 5, 3] } },
      node: op('SoftmaxCrossEntropyLoss', undefined, ['seq'], ['loss1', 'logp']),
      initializers: [init('seq', int64s([2, 3], [1, 4, 0, 3, 3, 2]))]
    })
    // Both outputs in the loss: log_prob weighed elementwise, the loss added to every term.
    for (const seed of [5, 6]) {
      const rand = rng(seed)
      const scores = randomFloats(rand, [2, 5, 3])
      const model = opModel({ op: 'Add', inputs: ['logp', 'loss1'], outputs: ['y'] }, { scores }, rand, {
        initializers: [init('seq', int64s([2, 3], [1, 4, 0, 3, 3, 2]))],
        nodes: [{ op: 'SoftmaxCrossEntropyLoss', inputs: ['scores', 'seq'], outputs: ['loss1', 'logp'] }]
      })
      await gradCheck(model, { params: ['scores'], feeds: { scores } })
    }
  })
  it('LogSoftmax then NegativeLogLikelihoodLoss', async () => {
    for (const seed of [7, 8]) {
      const rand = rng(seed)
      const scores = randomFloats(rand, [4, 5])
      const model = opModel({ op: 'NegativeLogLikelihoodLoss', inputs: ['logp', 'labels'], outputs: ['y'], attributes: { ignore_index: attr.int(0) } }, { scores }, rand, {
        initializers: [labels],
        nodes: [{ op: 'LogSoftmax', inputs: ['scores'], outputs: ['logp'] }]
      })
      await gradCheck(model, { params: ['scores'], feeds: { scores } })
    }
  })
  it('LogSoftmax then GatherElements of the labels, negated and averaged', async () => {
    for (const seed of [9, 10]) {
      const rand = rng(seed)
      const scores = randomFloats(rand, [4, 5])
      const model = opModel({ op: 'ReduceMean', inputs: ['picked'], outputs: ['y'], attributes: { keepdims: attr.int(0) } }, { scores }, rand, {
        initializers: [init('labels2', int64s([4, 1], [2, 0, 4, 2]))],
        nodes: [
          { op: 'LogSoftmax', inputs: ['scores'], outputs: ['logp'] },
          { op: 'GatherElements', inputs: ['logp', 'labels2'], outputs: ['g'], attributes: { axis: attr.int(1) } },
          { op: 'Neg', inputs: ['g'], outputs: ['picked'] }
        ]
      })
      await gradCheck(model, { params: ['scores'], feeds: { scores } })
    }
  })
})
