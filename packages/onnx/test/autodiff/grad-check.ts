/**
 * Gradient checking for the autodiff tests: the training graph's gradients,
 * run in onnxruntime, against central finite differences of its loss.
 */
import assert from 'node:assert/strict'
import { InferenceSession, Tensor } from 'onnxruntime-node'
import type { Initializer, Model, Node, TensorValue, ValueInfo } from '../../src/graph.ts'
import { writeModel } from '../../src/writer.ts'
import { buildTrainingGraph, gradientName } from '../../src/autodiff/training-graph.ts'
import { inferShapes } from '../../src/autodiff/shapes.ts'

/** mulberry32: a seeded uniform generator in [0, 1), so that every run checks the same points. */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface RandomOptions {
  /** Values in [min, max) (default [-1, 1)). */
  min?: number
  max?: number
  /** Keeps |v| at least this far from 0, for kinks (Relu, Abs) and poles (Div, Reciprocal). */
  awayFromZero?: number
}

export function randomFloats (rand: () => number, dims: number[], options: RandomOptions = {}): TensorValue {
  const { min = -1, max = 1, awayFromZero = 0 } = options
  const n = dims.reduce((a, b) => a * b, 1)
  const data = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    let v = min + (max - min) * rand()
    if (Math.abs(v) < awayFromZero) v = v < 0 ? -awayFromZero : awayFromZero
    data[i] = v
  }
  return { type: 'float32', dims, data }
}

export function int64s (dims: number[], values: number[]): TensorValue {
  return { type: 'int64', dims, data: BigInt64Array.from(values, BigInt) }
}

export function init (name: string, value: TensorValue): Initializer {
  return { name, ...value }
}

export function input (name: string, value: TensorValue): ValueInfo {
  return { name, type: value.type, shape: value.dims }
}

/** Appends loss = ReduceSum(y ⊙ W) for a fixed random W, so that every element of y weighs differently in the loss. */
export function weightedSumLoss (model: Model, y: string, rand: () => number): Model {
  const shape = inferShapes(model.graph).shape(y)
  const w = init(`${y}.w`, randomFloats(rand, shape))
  return {
    ...model,
    graph: {
      ...model.graph,
      outputs: [{ name: 'loss', type: 'float32', shape: [] }],
      initializers: [...model.graph.initializers, w],
      nodes: [
        ...model.graph.nodes,
        { op: 'Mul', inputs: [y, w.name], outputs: ['loss.terms'] },
        { op: 'ReduceSum', inputs: ['loss.terms'], outputs: ['loss'], attributes: { keepdims: { type: 'int', value: 0 } } }
      ]
    }
  }
}

/** A single-node graph under weightedSumLoss: the inputs are fed, the node's first output is weighed. */
export function opModel (node: Node, inputs: Record<string, TensorValue>, rand: () => number, options: { opset?: number, initializers?: Initializer[], nodes?: Node[] } = {}): Model {
  const model: Model = {
    opset: options.opset ?? 17,
    graph: {
      name: node.op,
      inputs: Object.entries(inputs).map(([name, value]) => input(name, value)),
      outputs: [],
      initializers: options.initializers ?? [],
      nodes: [...(options.nodes ?? []), node]
    }
  }
  return weightedSumLoss(model, node.outputs[0], rand)
}

export async function createSession (model: Model): Promise<InferenceSession> {
  // One thread: the test machines are shared and these graphs are tiny.
  return await InferenceSession.create(writeModel(model).model, { intraOpNumThreads: 1, interOpNumThreads: 1 })
}

export function tensor (value: TensorValue): Tensor {
  return new Tensor(value.type, value.data, value.dims)
}

export async function run (session: InferenceSession, feeds: Record<string, TensorValue>): Promise<Record<string, Float32Array>> {
  const result = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, tensor(v)])))
  return Object.fromEntries(Object.entries(result).map(([k, v]) => [k, v.data as Float32Array]))
}

export interface GradCheckOptions {
  loss?: string
  params: string[]
  /** Values for the graph inputs; parameters that are initializers are fed their initial values. */
  feeds: Record<string, TensorValue>
  /** Sizes of symbolic dimensions, as for buildTrainingGraph. */
  dims?: Record<string, number>
  /** Step of the central difference (default 1e-2: float32 losses are noisy below that). */
  eps?: number
  rtol?: number
  atol?: number
}

/** Checks every element of every parameter's gradient; returns the gradients for further assertions. */
export async function gradCheck (model: Model, options: GradCheckOptions): Promise<Record<string, Float32Array>> {
  const { loss = 'loss', params, eps = 1e-2, rtol = 5e-3, atol = 5e-4 } = options
  const training = buildTrainingGraph(model, { loss, params, dims: options.dims })
  const session = await createSession(training)
  const feeds: Record<string, TensorValue> = { ...options.feeds }
  for (const i of model.graph.initializers) if (params.includes(i.name)) feeds[i.name] = { type: i.type, dims: i.dims, data: Float32Array.from(i.data as Float32Array) }
  const analytic = await run(session, feeds)
  const lossAt = async (): Promise<number> => (await run(session, feeds))[loss][0]
  const failures: string[] = []
  for (const p of params) {
    const values = feeds[p].data as Float32Array
    const grad = analytic[gradientName(p)]
    assert.equal(grad.length, values.length, `grad.${p} has ${grad.length} elements, ${p} has ${values.length}`)
    for (let j = 0; j < values.length; j++) {
      const saved = values[j]
      values[j] = saved + eps
      const plus = await lossAt()
      values[j] = saved - eps
      const minus = await lossAt()
      values[j] = saved
      const numeric = (plus - minus) / (2 * eps)
      if (!(Math.abs(grad[j] - numeric) <= atol + rtol * Math.abs(numeric))) failures.push(`${p}[${j}]: autodiff ${grad[j]}, finite difference ${numeric}`)
    }
  }
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} gradient elements differ`)
  return analytic
}
