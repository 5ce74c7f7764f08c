import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { attr } from '../../src/graph.ts'
import type { Model, Node } from '../../src/graph.ts'
import { InvalidGraphError, ShapeInferenceError, UnsupportedOpError } from '../../src/autodiff/errors.ts'
import { differentiableOps } from '../../src/autodiff/rules.ts'
import { buildTrainingGraph } from '../../src/autodiff/training-graph.ts'
import { createSession, gradCheck, init, int64s, randomFloats, rng, run, tensor } from './grad-check.ts'

/** loss = ReduceSum(Tanh(x·W + b)), W and b initializers, x an input. */
function smallModel (): Model {
  const rand = rng(11)
  return {
    opset: 17,
    graph: {
      name: 'small',
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 3] }],
      outputs: [{ name: 'loss', type: 'float32', shape: [] }, { name: 'h', type: 'float32', shape: ['batch', 2] }],
      initializers: [init('W', randomFloats(rand, [3, 2])), init('b', randomFloats(rand, [2])), init('unused', randomFloats(rand, [4]))],
      nodes: [
        { op: 'MatMul', inputs: ['x', 'W'], outputs: ['xw'] },
        { op: 'Add', inputs: ['xw', 'b'], outputs: ['z'] },
        { op: 'Tanh', inputs: ['z'], outputs: ['h'] },
        { op: 'ReduceSum', inputs: ['h'], outputs: ['loss'], attributes: { keepdims: attr.int(0) } }
      ]
    }
  }
}

describe('buildTrainingGraph', () => {
  it('outputs the loss, then grad.<param> of each parameter\'s shape; initializer parameters become inputs', () => {
    const model = smallModel()
    const training = buildTrainingGraph(model, { loss: 'loss', params: ['W', 'b'], dims: { batch: 4 } })
    assert.deepEqual(training.graph.outputs.map(o => [o.name, o.shape]), [['loss', []], ['grad.W', [3, 2]], ['grad.b', [2]]])
    assert.deepEqual(training.graph.inputs.map(i => i.name), ['x', 'W', 'b'])
    assert.equal(training.graph.initializers.some(i => i.name === 'W' || i.name === 'b' || i.name === 'unused'), false)
    assert.ok(training.graph.nodes.every(n => (n.domain ?? '') === ''))
    assert.equal(training.opset, 17)
  })

  it('leaves the forward model as it was', () => {
    const model = smallModel()
    const before = structuredClone(model)
    buildTrainingGraph(model, { loss: 'loss', params: ['W', 'b'], dims: { batch: 4 } })
    assert.deepEqual(model, before)
  })

  it('computes the loss and gradients in one run', async () => {
    const model = smallModel()
    const training = buildTrainingGraph(model, { loss: 'loss', params: ['W', 'b'], dims: { batch: 2 } })
    const session = await createSession(training)
    const x = { type: 'float32' as const, dims: [2, 3], data: new Float32Array([1, 0, 0, 0, 1, 0]) }
    const W = model.graph.initializers[0].data as Float32Array
    const b = model.graph.initializers[1].data as Float32Array
    const out = await run(session, { x, W: model.graph.initializers[0], b: model.graph.initializers[1] })
    // Row r of x picks row r of W: h = tanh(W[r] + b), dh/dz = 1 − h².
    const z = [W[0] + b[0], W[1] + b[1], W[2] + b[0], W[3] + b[1]]
    const d = z.map(v => 1 - Math.tanh(v) ** 2)
    assert.ok(Math.abs(out.loss[0] - z.reduce((s, v) => s + Math.tanh(v), 0)) < 1e-5)
    const expectW = [d[0], d[1], d[2], d[3], 0, 0]
    expectW.forEach((v, i) => assert.ok(Math.abs(out['grad.W'][i] - v) < 1e-5, `grad.W[${i}]`))
    assert.ok(Math.abs(out['grad.b'][0] - (d[0] + d[2])) < 1e-5)
    assert.ok(Math.abs(out['grad.b'][1] - (d[1] + d[3])) < 1e-5)
  })

  it('gives zeros for a parameter the loss does not depend on', async () => {
    const training = buildTrainingGraph(smallModel(), { loss: 'loss', params: ['unused', 'b'], dims: { batch: 2 } })
    const out = await run(await createSession(training), {
      x: randomFloats(rng(1), [2, 3]),
      unused: randomFloats(rng(2), [4]),
      b: randomFloats(rng(3), [2])
    })
    assert.deepEqual(Array.from(out['grad.unused']), [0, 0, 0, 0])
  })

  it('carries kept outputs through after the gradients, as the forward graph computes them, the gradients unchanged', async () => {
    const model = smallModel()
    const options = { loss: 'loss', params: ['W', 'b'], dims: { batch: 2 } }
    const training = buildTrainingGraph(model, { ...options, keep: ['h'] })
    assert.deepEqual(training.graph.outputs.map(o => o.name), ['loss', 'grad.W', 'grad.b', 'h'])
    const x = randomFloats(rng(8), [2, 3])
    const feeds = { x, W: model.graph.initializers[0], b: model.graph.initializers[1] }
    const kept = await run(await createSession(training), feeds)
    assert.deepEqual(kept.h, (await run(await createSession(model), { x })).h)
    const plain = await run(await createSession(buildTrainingGraph(model, options)), feeds)
    for (const name of ['loss', 'grad.W', 'grad.b']) assert.deepEqual(kept[name], plain[name], name)
  })

  it('rejects a kept name that is no output of the graph, the loss, or one kept twice', () => {
    for (const keep of [['xw'], ['loss'], ['h', 'h']]) {
      assert.throws(() => buildTrainingGraph(smallModel(), { loss: 'loss', params: ['W'], dims: { batch: 2 }, keep }), { name: InvalidGraphError.name }, keep.join())
    }
  })

  it('needs sizes for symbolic dimensions', () => {
    assert.throws(() => buildTrainingGraph(smallModel(), { loss: 'loss', params: ['W'] }), (err: Error) => {
      assert.equal(err.name, ShapeInferenceError.name)
      assert.match(err.message, /batch/)
      return true
    })
  })

  it('names an op without a gradient rule on the path with UnsupportedOpError', () => {
    const model = smallModel()
    model.graph.nodes[2] = { op: 'Sin', inputs: ['z'], outputs: ['h'], name: 'the_sine' }
    assert.throws(() => buildTrainingGraph(model, { loss: 'loss', params: ['W'], dims: { batch: 2 } }), (err: Error) => {
      assert.equal(err.name, 'UnsupportedOpError')
      assert.ok(err instanceof UnsupportedOpError)
      assert.equal(err.op, 'Sin')
      assert.match(err.message, /the_sine/)
      return true
    })
  })

  it('ignores ops without gradient rules off the path', async () => {
    const model = smallModel()
    // An unknown op in another domain, fed by a parameter but not feeding the loss.
    model.graph.nodes.push({ op: 'Custom', domain: 'com.example', inputs: ['W'], outputs: ['side'] })
    // An integer input that reaches the loss only through a Gather's indices.
    model.graph.inputs.push({ name: 'pick', type: 'int64', shape: [1] })
    model.graph.nodes.splice(3, 1,
      { op: 'Gather', inputs: ['h', 'pick'], outputs: ['row'] },
      { op: 'ReduceSum', inputs: ['row'], outputs: ['loss'], attributes: { keepdims: attr.int(0) } })
    const x = randomFloats(rng(4), [3, 3])
    await gradCheck(model, { params: ['W', 'b'], feeds: { x, pick: int64s([1], [2]) }, dims: { batch: 3 } })
  })

  it('rejects a missing loss, a missing or integer parameter and a loss of more than one element', () => {
    const model = smallModel()
    const cases: Array<[string, string[]]> = [['nope', ['W']], ['loss', ['nope']], ['loss', ['W', 'W']], ['h', ['W']]]
    for (const [loss, params] of cases) {
      assert.throws(() => buildTrainingGraph(model, { loss, params, dims: { batch: 2 } }), { name: InvalidGraphError.name }, `${loss} ${params.join(',')}`)
    }
    model.graph.initializers.push(init('k', int64s([1], [1])))
    assert.throws(() => buildTrainingGraph(model, { loss: 'loss', params: ['k'], dims: { batch: 2 } }), { name: 'InvalidGraphError' })
  })

  it('sorts nodes that are out of order', async () => {
    const model = smallModel()
    model.graph.nodes.reverse()
    await gradCheck(model, { params: ['W', 'b'], feeds: { x: randomFloats(rng(5), [2, 3]) }, dims: { batch: 2 } })
  })

  it('follows shapes computed inside the graph (Shape → Gather → Concat → Reshape)', async () => {
    const rand = rng(6)
    const shapeOps: Node[] = [
      { op: 'Shape', inputs: ['x'], outputs: ['xs'] },
      { op: 'Gather', inputs: ['xs', 'zero'], outputs: ['n'], attributes: { axis: attr.int(0) } },
      { op: 'Unsqueeze', inputs: ['n', 'axis0'], outputs: ['n1'] },
      { op: 'Constant', inputs: [], outputs: ['rest'], attributes: { value: attr.tensor(int64s([2], [2, -1])) } },
      { op: 'Concat', inputs: ['n1', 'rest'], outputs: ['target'], attributes: { axis: attr.int(0) } },
      { op: 'Reshape', inputs: ['x', 'target'], outputs: ['x3'] },
      { op: 'ReduceSum', inputs: ['x3', 'axis2'], outputs: ['s'], attributes: { keepdims: attr.int(0) } },
      { op: 'Mul', inputs: ['s', 's'], outputs: ['sq'] },
      { op: 'ReduceSum', inputs: ['sq'], outputs: ['loss'], attributes: { keepdims: attr.int(0) } }
    ]
    const model: Model = {
      opset: 17,
      graph: {
        name: 'dynamic',
        inputs: [{ name: 'x', type: 'float32', shape: [3, 4] }],
        outputs: [{ name: 'loss', type: 'float32', shape: [] }],
        initializers: [init('zero', int64s([], [0])), init('axis0', int64s([1], [0])), init('axis2', int64s([1], [2]))],
        nodes: shapeOps
      }
    }
    await gradCheck(model, { params: ['x'], feeds: { x: randomFloats(rand, [3, 4]) } })
  })

  it('passes gradients through Dropout in training mode by its mask', async () => {
    const model: Model = {
      opset: 17,
      graph: {
        name: 'dropout',
        inputs: [{ name: 'x', type: 'float32', shape: [64] }],
        outputs: [{ name: 'loss', type: 'float32', shape: [] }],
        initializers: [
          init('ratio', { type: 'float32', dims: [], data: new Float32Array([0.25]) }),
          init('training', { type: 'bool', dims: [], data: new Uint8Array([1]) }),
          init('w', randomFloats(rng(7), [64]))
        ],
        nodes: [
          { op: 'Dropout', inputs: ['x', 'ratio', 'training'], outputs: ['d'] },
          { op: 'Mul', inputs: ['d', 'w'], outputs: ['dw'] },
          { op: 'ReduceSum', inputs: ['dw'], outputs: ['loss'], attributes: { keepdims: attr.int(0) } }
        ]
      }
    }
    const training = buildTrainingGraph(model, { loss: 'loss', params: ['x'] })
    // The mask output that the rule added to the forward node, exposed to compare against.
    const maskName = training.graph.nodes.find(n => n.op === 'Dropout')?.outputs[1] ?? ''
    training.graph.outputs.push({ name: maskName, type: 'bool', shape: [64] })
    const session = await createSession(training)
    const result = await session.run({ x: tensor({ type: 'float32', dims: [64], data: new Float32Array(64).fill(1) }) })
    const mask = result[maskName].data as Uint8Array
    const grad = result['grad.x'].data as Float32Array
    const w = model.graph.initializers[2].data as Float32Array
    assert.ok(mask.some(m => m === 0) && mask.some(m => m === 1))
    grad.forEach((g, i) => assert.ok(Math.abs(g - (mask[i] === 1 ? w[i] / 0.75 : 0)) < 1e-5, `grad.x[${i}]`))
  })

  it('lists the ops it differentiates', () => {
    for (const op of ['MatMul', 'Gemm', 'LayerNormalization', 'SoftmaxCrossEntropyLoss', 'Gather', 'Gelu', 'Slice']) assert.ok(differentiableOps.includes(op), op)
  })
})
