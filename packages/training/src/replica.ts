/**
 * One node's copy of a model in training: its weights, its optimizer and
 * the onnxruntime sessions of the training graph. Every replica of a job
 * applies the same averaged gradients with the same optimizer, whose steps
 * are computed in a fixed order in double precision, so replicas stay
 * bit-identical without ever sending weights.
 *
 * The sessions run in worker threads (the runtime's WorkerSession), and so
 * does the optimizer (OptimizerThread), since a real model's step takes
 * seconds, and its optimizer's step hundreds of milliseconds, that the
 * node's HTTP, heartbeats and Raft cannot wait. The weights lie in one
 * SharedArrayBuffer that the session threads read and the optimizer's
 * thread writes between steps; each step's gradient array moves to the
 * session's thread and back, and the mean gradient is copied into a
 * SharedArrayBuffer the optimizer's thread reads, so that the caller keeps
 * it to send on while the step is made.
 */
import { availableParallelism } from 'node:os'
import * as ort from 'onnxruntime-node'
import { buildTrainingGraph, gradientName, writeModel } from '@node-daemon/onnx'
import { WorkerSession } from '@node-daemon/runtime'
import { arenaOf, partsOf, regionOf, scheduleOf, sizeOf } from './optimizer.ts'
import { OptimizerThread } from './optimizer-thread.ts'
import type { Architecture, Samples } from './architecture.ts'
import type { TrainingSpec } from './spec.ts'
import type { OptimizerState, Schedule } from '@node-daemon/onnx'

/** What a replica reports for a slice of a batch. */
export interface SliceResult {
  /** Mean over the samples of each sample's gradient, parameters concatenated in order. */
  gradient: Float32Array<ArrayBuffer>
  count: number
  lossSum: number
  correct: number
  labels: number
  computeMs: number
}

export interface ReplicaOptions {
  /** onnxruntime's intra-op threads for the training graph, and the optimizer's threads; unset, its default (all cores). */
  threads?: number
}

export interface ReplicaState {
  weights: Record<string, Float32Array>
  optimizer?: OptimizerState
}

/**
 * The mean gradient of a global batch from the mean gradients of its slices,
 * each weighted by its share of the samples, summed in the slices' order and
 * rounded to float32 after each product and sum, so that every node that
 * makes it gets the same bits. It is written into `into` (by default the
 * first slice's array, so that one slice, the whole batch on one node, costs
 * nothing), which may be any slice's array: each element is read from every
 * slice before it is written.
 */
export function meanOfSlices (slices: Array<Pick<SliceResult, 'gradient' | 'count'>>, into?: Float32Array<ArrayBuffer>): Float32Array<ArrayBuffer> {
  const counted = slices.filter(s => s.count > 0)
  const [first, second] = counted
  if (first == null) throw new RangeError('no slice has samples')
  const mean = into ?? first.gradient
  if (second == null) {
    if (mean !== first.gradient) mean.set(first.gradient)
    return mean
  }
  const total = counted.reduce((n, s) => n + s.count, 0)
  const a = first.gradient
  const w0 = first.count / total
  if (counted.length === 2) {
    // Two slices, the usual case, in one pass.
    const b = second.gradient
    const w1 = second.count / total
    for (let i = 0; i < mean.length; i++) mean[i] = Math.fround(a[i] * w0) + b[i] * w1
    return mean
  }
  const weights = counted.map(s => s.count / total)
  const arrays = counted.map(s => s.gradient)
  for (let i = 0; i < mean.length; i++) {
    let sum = Math.fround(a[i] * w0)
    for (let k = 1; k < arrays.length; k++) sum = Math.fround(sum + arrays[k][i] * weights[k])
    mean[i] = sum
  }
  return mean
}

export class Replica {
  readonly architecture: Architecture
  readonly spec: TrainingSpec
  readonly weights: Record<string, Float32Array>
  readonly #optimizer: OptimizerThread
  readonly #schedule: Schedule
  /** Sessions by batch size: slices differ in size when a batch does not divide evenly, and at an epoch's end. */
  readonly #sessions = new Map<number, Promise<WorkerSession>>()
  readonly #size: number
  /** The mean gradient of the step being made, which the optimizer's thread reads. */
  readonly #gradient: Float32Array<SharedArrayBuffer>
  readonly #threads?: number
  #version: number

  /** `state`'s weights are copied into memory the session threads share. */
  constructor (architecture: Architecture, spec: TrainingSpec, totalSteps: number, state: ReplicaState, options: ReplicaOptions = {}) {
    this.architecture = architecture
    this.spec = spec
    this.#size = sizeOf(architecture.parameters)
    const arena = arenaOf(spec, this.#size)
    this.weights = partsOf(architecture.parameters, regionOf(arena, this.#size, 0))
    for (const p of architecture.parameters) this.weights[p.name].set(state.weights[p.name])
    this.#schedule = scheduleOf(spec, totalSteps)
    this.#gradient = regionOf(arena, this.#size, 1)
    // As many optimizer threads as onnxruntime's: a step's cores are otherwise idle while the optimizer runs.
    this.#optimizer = new OptimizerThread({ spec, totalSteps, parameters: architecture.parameters, arena, resume: state.optimizer }, options.threads ?? availableParallelism())
    this.#version = state.optimizer?.step ?? 0
    this.#threads = options.threads
  }

  /** Optimizer steps applied so far, or sent to be: the version of the weights. */
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

  /** The weights as they are once the steps sent are done (not copied), and a copy of the optimizer's state. */
  async state (signal?: AbortSignal): Promise<ReplicaState> {
    // The thread answers after the steps sent before, and the weights are then theirs.
    const optimizer = await this.#optimizer.state(signal)
    return { weights: this.weights, optimizer }
  }

  async #session (batchSize: number): Promise<WorkerSession> {
    let session = this.#sessions.get(batchSize)
    if (session == null) {
      const graph = buildTrainingGraph(this.architecture.lossGraph(batchSize), { loss: 'loss', params: this.architecture.parameters.map(p => p.name), keep: ['correct'] })
      // Spinning threads would burn the cores the event loop needs between steps.
      const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }
      if (this.#threads != null) options.intraOpNumThreads = this.#threads
      session = WorkerSession.open({ model: writeModel(graph).model, options })
      this.#sessions.set(batchSize, session)
      session.catch(() => this.#sessions.delete(batchSize))
    }
    return session
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
    // A step given up on may still be writing the weights.
    await this.#optimizer.settled(signal)
    const { feeds, labels } = this.architecture.feeds(samples, indices)
    // onnxruntime writes each parameter's gradient straight into its place in the one array that is sent.
    const fetches: Record<string, ort.Tensor | null> = { loss: null, correct: null }
    const parts = partsOf(this.architecture.parameters, new Float32Array(this.#size))
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
    return { gradient: new Float32Array(buffer as ArrayBuffer, 0, this.#size), count: n, lossSum, correct, labels, computeMs: performance.now() - t0 }
  }

  /**
   * Applies the mean gradient of a step in the optimizer's thread: clipping,
   * then one optimizer step; answers the learning rate used. `mean` is
   * copied there, and stays the caller's, unchanged, to be sent to other
   * replicas while the step is made. On `signal` it stops waiting: once
   * asked for, the step is made all the same, and the next compute or state
   * waits for it.
   */
  async apply (mean: Float32Array, signal?: AbortSignal): Promise<{ learningRate: number }> {
    // Refused before it goes: a step that failed halfway would leave the replica neither at this version nor the last.
    if (mean.length !== this.#size) throw new RangeError(`a gradient of ${mean.length} values for ${this.#size} parameters`)
    // The thread may still read the last step's gradient, if its caller stopped waiting for it.
    await this.#optimizer.settled(signal)
    this.#gradient.set(mean)
    const step = this.#optimizer.step(signal)
    this.#version++
    return { learningRate: await step }
  }

  async release (): Promise<void> {
    const sessions = [...this.#sessions.values()]
    this.#sessions.clear()
    await Promise.all([this.#optimizer.release(), ...sessions.map(async s => (await s.catch(() => undefined))?.release())])
  }
}
