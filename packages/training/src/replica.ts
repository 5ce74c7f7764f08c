/**
 * One node's copy of a model in training: its weights, its optimizer and
 * the onnxruntime sessions of the training graph. Every replica of a job
 * applies the same averaged gradients with the same optimizer, whose steps
 * are computed in a fixed order in double precision, so replicas stay
 * bit-identical without ever sending weights.
 *
 * The sessions run in worker threads (the runtime's WorkerSession), since a
 * real model's step takes seconds that the node's HTTP, heartbeats and Raft
 * cannot wait. The weights lie in one SharedArrayBuffer that the threads
 * read and the optimizer, here, writes between steps; each step's gradient
 * array moves to the thread and back. The optimizer stays here: a step of
 * it is a pass over the parameters, milliseconds for millions of them.
 */
import * as ort from 'onnxruntime-node'
import { buildTrainingGraph, clipScale, constantSchedule, createAdamW, createSgd, decaysMatrices, gradientName, warmupCosineSchedule, writeModel } from '@node-daemon/onnx'
import { WorkerSession } from '@node-daemon/runtime'
import type { Architecture, Samples } from './architecture.ts'
import type { TrainingSpec } from './spec.ts'
import type { Optimizer, OptimizerState, Schedule } from '@node-daemon/onnx'

/** What a replica reports for a slice of a batch. */
export interface SliceResult {
  /** Mean over the samples of each sample's gradient, parameters concatenated in order. */
  gradient: Float32Array
  count: number
  lossSum: number
  correct: number
  labels: number
  computeMs: number
}

export interface ReplicaState {
  weights: Record<string, Float32Array>
  optimizer?: OptimizerState
}

/** The learning-rate schedule of a spec, over a run of `total` steps. */
export function scheduleOf (spec: TrainingSpec, total: number): Schedule {
  if (spec.schedule === 'constant') return constantSchedule(spec.learningRate)
  return warmupCosineSchedule({ peak: spec.learningRate, warmupSteps: spec.warmupSteps, totalSteps: total, final: spec.learningRate / 10 })
}

function optimizerOf (spec: TrainingSpec, schedule: Schedule, architecture: Architecture, resume?: OptimizerState): Optimizer {
  if (spec.optimizer === 'sgd') return createSgd({ lr: schedule, momentum: spec.momentum, weightDecay: spec.weightDecay }, resume)
  return createAdamW({ lr: schedule, weightDecay: spec.weightDecay, decays: decaysMatrices(architecture.parameters) }, resume)
}

/**
 * The mean gradient of a global batch from the mean gradients of its slices,
 * each weighted by its share of the samples. The first slice's array becomes
 * the result: one slice, the whole batch on one node, costs nothing.
 */
export function meanOfSlices (slices: Array<Pick<SliceResult, 'gradient' | 'count'>>): Float32Array {
  const [first, ...rest] = slices.filter(s => s.count > 0)
  if (first == null) throw new RangeError('no slice has samples')
  if (rest.length === 0) return first.gradient
  const total = rest.reduce((n, s) => n + s.count, first.count)
  const mean = first.gradient
  const w0 = first.count / total
  for (let i = 0; i < mean.length; i++) mean[i] *= w0
  for (const s of rest) {
    const w = s.count / total
    const g = s.gradient
    for (let i = 0; i < mean.length; i++) mean[i] += g[i] * w
  }
  return mean
}

export class Replica {
  readonly architecture: Architecture
  readonly spec: TrainingSpec
  readonly weights: Record<string, Float32Array>
  readonly #optimizer: Optimizer
  readonly #schedule: Schedule
  /** Sessions by batch size: slices differ in size when a batch does not divide evenly, and at an epoch's end. */
  readonly #sessions = new Map<number, Promise<WorkerSession>>()
  readonly #size: number
  #version: number

  /** `state`'s weights are copied into memory the session threads share. */
  constructor (architecture: Architecture, spec: TrainingSpec, totalSteps: number, state: ReplicaState) {
    this.architecture = architecture
    this.spec = spec
    this.#size = architecture.parameters.reduce((n, p) => n + p.dims.reduce((a, b) => a * b, 1), 0)
    this.weights = this.#parts(new Float32Array(new SharedArrayBuffer(this.#size * 4)))
    for (const p of architecture.parameters) this.weights[p.name].set(state.weights[p.name])
    this.#schedule = scheduleOf(spec, totalSteps)
    this.#optimizer = optimizerOf(spec, this.#schedule, architecture, state.optimizer)
    this.#version = state.optimizer?.step ?? 0
  }

  /** Optimizer steps applied so far: the version of the weights. */
  get version (): number {
    return this.#version
  }

  /** The learning rate of the next update. */
  get learningRate (): number {
    return this.#schedule(this.version)
  }

  /** Parameters in all: the length of a gradient. */
  get size (): number {
    return this.#size
  }

  /** The weights as they are (not copied) and a copy of the optimizer's state. */
  state (): ReplicaState {
    return { weights: this.weights, optimizer: this.#optimizer.state() }
  }

  async #session (batchSize: number): Promise<WorkerSession> {
    let session = this.#sessions.get(batchSize)
    if (session == null) {
      const graph = buildTrainingGraph(this.architecture.lossGraph(batchSize), { loss: 'loss', params: this.architecture.parameters.map(p => p.name), keep: ['correct'] })
      // Spinning threads would burn the cores the event loop needs between steps.
      const options = { graphOptimizationLevel: 'all' as const, extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }
      session = WorkerSession.open({ model: writeModel(graph).model, options })
      this.#sessions.set(batchSize, session)
      session.catch(() => this.#sessions.delete(batchSize))
    }
    return session
  }

  /** Each parameter's part of a flat array that holds them all in order: views, not copies. */
  #parts<T extends ArrayBufferLike> (flat: Float32Array<T>): Record<string, Float32Array<T>> {
    const parts: Record<string, Float32Array<T>> = {}
    let at = 0
    for (const p of this.architecture.parameters) {
      const length = p.dims.reduce((a, b) => a * b, 1)
      parts[p.name] = flat.subarray(at, at + length)
      at += length
    }
    return parts
  }

  /**
   * The loss sum and the mean gradient over `indices` of the samples, at the
   * current weights, which must not change until it returns. On `signal`, it
   * gives up the step, which its thread finishes unread.
   */
  async compute (samples: Samples, indices: ArrayLike<number>, signal?: AbortSignal): Promise<SliceResult> {
    const t0 = performance.now()
    if (indices.length === 0) return { gradient: new Float32Array(this.#size), count: 0, lossSum: 0, correct: 0, labels: 0, computeMs: 0 }
    const session = await this.#session(indices.length)
    const { feeds, labels } = this.architecture.feeds(samples, indices)
    // onnxruntime writes each parameter's gradient straight into its place in the one array that is sent.
    const fetches: Record<string, ort.Tensor | null> = { loss: null, correct: null }
    const parts = this.#parts(new Float32Array(this.#size))
    for (const p of this.architecture.parameters) {
      feeds[p.name] = new ort.Tensor('float32', this.weights[p.name], p.dims)
      fetches[gradientName(p.name)] = new ort.Tensor('float32', parts[p.name], p.dims)
    }
    const out = await session.run(feeds, { fetches, signal })
    // The gradients came back in the one buffer they went in, moved to the session's thread and back.
    const { buffer } = out[gradientName(this.architecture.parameters[0].name)].data as Float32Array
    const n = indices.length
    const lossSum = (out.loss.data as Float32Array)[0] * n
    const correct = Number((out.correct.data as Float32Array)[0])
    return { gradient: new Float32Array(buffer, 0, this.#size), count: n, lossSum, correct, labels, computeMs: performance.now() - t0 }
  }

  /** Applies the mean gradient of a step: clipping, then one optimizer step. Returns the learning rate used. `mean` is left as it is. */
  apply (mean: Float32Array): number {
    const grads = this.#parts(mean)
    // Clipping scales as the optimizer reads: the caller's copy may still be sent to other replicas.
    const gradientScale = this.spec.clipNorm > 0 ? clipScale(grads, this.spec.clipNorm) : 1
    const lr = this.#optimizer.step(this.weights, grads, { gradientScale })
    this.#version++
    return lr
  }

  async release (): Promise<void> {
    const sessions = [...this.#sessions.values()]
    this.#sessions.clear()
    await Promise.all(sessions.map(async s => (await s.catch(() => undefined))?.release()))
  }
}
