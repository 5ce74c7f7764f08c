import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { attr } from '../../src/graph.ts'
import type { Model, TensorValue } from '../../src/graph.ts'
import { buildTrainingGraph, gradientName } from '../../src/autodiff/training-graph.ts'
import { clipGradNorm, createAdamW, warmupCosineSchedule } from '../../src/optimizers.ts'
import { createSession, gradCheck, init, int64s, randomFloats, rng, run } from './grad-check.ts'

const PARAMS = ['W1', 'b1', 'W2', 'b2']

/** x [batch, 6] → MatMul + Add → activation → Gemm → SoftmaxCrossEntropyLoss against labels [batch] of 4 classes. */
function mlp (activation: 'Relu' | 'Gelu', seed: number): Model {
  const rand = rng(seed)
  return {
    opset: activation === 'Gelu' ? 20 : 17,
    graph: {
      name: 'mlp',
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 6] }, { name: 'labels', type: 'int64', shape: ['batch'] }],
      outputs: [{ name: 'loss', type: 'float32', shape: [] }],
      initializers: [
        init('W1', randomFloats(rand, [6, 16], { min: -0.6, max: 0.6 })),
        init('b1', randomFloats(rand, [16], { min: -0.1, max: 0.1 })),
        init('W2', randomFloats(rand, [16, 4], { min: -0.5, max: 0.5 })),
        init('b2', randomFloats(rand, [4], { min: -0.1, max: 0.1 }))
      ],
      nodes: [
        { op: 'MatMul', inputs: ['x', 'W1'], outputs: ['xw'] },
        { op: 'Add', inputs: ['xw', 'b1'], outputs: ['z'] },
        { op: activation, inputs: ['z'], outputs: ['h'] },
        { op: 'Gemm', inputs: ['h', 'W2', 'b2'], outputs: ['logits'] },
        { op: 'SoftmaxCrossEntropyLoss', inputs: ['logits', 'labels'], outputs: ['loss'], attributes: { reduction: attr.string('mean') } }
      ]
    }
  }
}

/** Points in 6-D labelled by the sign pattern of two fixed projections: learnable by a small MLP, not by a linear model alone. */
function dataset (n: number, seed: number): { x: TensorValue, labels: TensorValue } {
  const rand = rng(seed)
  const x = randomFloats(rand, [n, 6], { min: -2, max: 2 })
  const d = x.data as Float32Array
  const labels = Array.from({ length: n }, (_, i) => {
    const r = d.subarray(i * 6, i * 6 + 6)
    return (r[0] + r[1] - r[2] > 0 ? 1 : 0) + (r[3] * r[4] > 0 ? 2 : 0)
  })
  return { x, labels: int64s([n], labels) }
}

describe('a two-layer MLP with cross-entropy', () => {
  it('has the gradients of finite differences (Gelu, two points)', async () => {
    for (const seed of [1, 2]) {
      const { x, labels } = dataset(8, seed + 100)
      await gradCheck(mlp('Gelu', seed), { params: PARAMS, feeds: { x, labels }, dims: { batch: 8 } })
    }
  })

  it('learns a small dataset with AdamW, clipping and a warmup-cosine schedule', async () => {
    const model = mlp('Relu', 3)
    const { x, labels } = dataset(64, 4)
    const session = await createSession(buildTrainingGraph(model, { loss: 'loss', params: PARAMS, dims: { batch: 64 } }))
    const params = Object.fromEntries(model.graph.initializers.map(i => [i.name, Float32Array.from(i.data as Float32Array)]))
    const steps = 150
    const adam = createAdamW({ lr: warmupCosineSchedule({ peak: 0.05, warmupSteps: 10, totalSteps: steps, final: 0.005 }), weightDecay: 0.01 })
    const losses: number[] = []
    for (let step = 0; step < steps; step++) {
      const feeds: Record<string, TensorValue> = { x, labels }
      for (const [name, data] of Object.entries(params)) feeds[name] = { type: 'float32', dims: model.graph.initializers.find(i => i.name === name)?.dims ?? [], data }
      const out = await run(session, feeds)
      losses.push(out.loss[0])
      const grads = Object.fromEntries(PARAMS.map(p => [p, out[gradientName(p)]]))
      clipGradNorm(grads, 1)
      adam.step(params, grads)
    }
    assert.ok(losses[0] > 1.2, `starts near ln 4: ${losses[0]}`)
    assert.ok(losses[steps - 1] < 0.1, `ends at ${losses[steps - 1]} from ${losses[0]}`)
  })
})
