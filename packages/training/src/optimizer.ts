/**
 * What a replica's optimizer is made of and what its thread is told and
 * answers, shared by that thread (optimizer-worker.ts) and the side that
 * starts it (optimizer-thread.ts). Only the optimizer's code: the thread
 * loads nothing it does not run.
 */
import { constantSchedule, createAdamW, createSgd, decaysMatrices, warmupCosineSchedule } from '@node-daemon/onnx'
import type { TrainingSpec } from './spec.ts'
import type { AdamWOptions, Optimizer, OptimizerState, ParameterShape, Schedule } from '@node-daemon/onnx'

/** What the thread is started with. */
export interface OptimizerSource {
  spec: TrainingSpec
  totalSteps: number
  parameters: ParameterShape[]
  /**
   * The weights, then where each step's mean gradient is put before the
   * step is asked for, then AdamW's moments m and v: each all parameters
   * concatenated in order, one after another (`regionOf`).
   */
  arena: Arena
  resume?: OptimizerState
}

/**
 * A WebAssembly memory, in which AdamW's SIMD kernel updates the parameters
 * in place, three times as fast as JavaScript; shared memory beyond wasm32's
 * 4 GiB, for the JavaScript loop.
 */
export type Arena = WebAssembly.Memory | SharedArrayBuffer

const PAGE = 65536
const MAX_PAGES = 65536

/** An arena for `size` parameters and the spec's optimizer: four regions for AdamW, two for SGD (its momentum is its own). */
export function arenaOf (spec: TrainingSpec, size: number): Arena {
  const bytes = size * 4 * (spec.optimizer === 'adamw' ? 4 : 2)
  const pages = Math.max(1, Math.ceil(bytes / PAGE))
  return pages <= MAX_PAGES ? new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }) : new SharedArrayBuffer(bytes)
}

/** Region `k` of an arena of `size` parameters: 0 the weights, 1 the gradient, 2 and 3 AdamW's m and v. */
export function regionOf (arena: Arena, size: number, k: 0 | 1 | 2 | 3): Float32Array<SharedArrayBuffer> {
  const buffer = (arena instanceof SharedArrayBuffer ? arena : arena.buffer) as SharedArrayBuffer
  return new Float32Array(buffer, k * size * 4, size)
}

/**
 * One thread's share of a step: elements [from, to) of the weights, whole
 * blocks of the gradient's norm (NORM_BLOCK), and what the threads share to
 * sum that norm.
 */
export interface OptimizerShare {
  from: number
  to: number
  threads: number
  /** Float64 partial sums of squares (squaresLength), for two steps in turn. */
  partials: SharedArrayBuffer
  /** Int32: the threads' arrivals at the norm, counted over all steps. */
  arrivals: SharedArrayBuffer
}

export type OptimizerRequest =
  /** A step from the gradient in the shared buffer, which stays as it is until the answer. */
  | { type: 'step', id: number }
  | { type: 'state', id: number }
  /** Answered once the steps sent before are done. */
  | { type: 'settled', id: number }

export type OptimizerReply =
  | { type: 'step', id: number, learningRate: number }
  | { type: 'state', id: number, state: OptimizerState }
  | { type: 'settled', id: number }

/** The learning-rate schedule of a spec, over a run of `total` steps. */
export function scheduleOf (spec: TrainingSpec, total: number): Schedule {
  if (spec.schedule === 'constant') return constantSchedule(spec.learningRate)
  return warmupCosineSchedule({ peak: spec.learningRate, warmupSteps: spec.warmupSteps, totalSteps: total, final: spec.learningRate / 10 })
}

/** The optimizer of a spec; AdamW's moments in `moments` when given. */
export function optimizerOf (source: Omit<OptimizerSource, 'arena'>, moments?: AdamWOptions['moments']): Optimizer {
  const { spec, totalSteps, parameters, resume } = source
  const lr = scheduleOf(spec, totalSteps)
  if (spec.optimizer === 'sgd') return createSgd({ lr, momentum: spec.momentum, weightDecay: spec.weightDecay }, resume)
  return createAdamW({ lr, weightDecay: spec.weightDecay, decays: decaysMatrices(parameters), moments }, resume)
}

/**
 * The parts of the parameters that fall in elements [from, to) of a flat
 * array that holds them all in order, by name: views, not copies, with where
 * each starts in the flat array and in its parameter.
 */
export function piecesOf<T extends ArrayBufferLike> (parameters: ParameterShape[], flat: Float32Array<T>, from: number, to: number): Array<{ name: string, view: Float32Array<T>, at: number, within: number }> {
  const pieces: Array<{ name: string, view: Float32Array<T>, at: number, within: number }> = []
  let at = 0
  for (const p of parameters) {
    const end = at + p.dims.reduce((a, b) => a * b, 1)
    const lo = Math.max(at, from)
    const hi = Math.min(end, to)
    if (lo < hi) pieces.push({ name: p.name, view: flat.subarray(lo, hi), at: lo, within: lo - at })
    at = end
  }
  return pieces
}

/** Elements of all parameters together: the length of a flat array that holds them in order. */
export function sizeOf (parameters: ParameterShape[]): number {
  return parameters.reduce((n, p) => n + p.dims.reduce((a, b) => a * b, 1), 0)
}

/** Each parameter's part of a flat array that holds them all in order: views, not copies. */
export function partsOf<T extends ArrayBufferLike> (parameters: ParameterShape[], flat: Float32Array<T>): Record<string, Float32Array<T>> {
  const parts: Record<string, Float32Array<T>> = {}
  let at = 0
  for (const p of parameters) {
    const length = p.dims.reduce((a, b) => a * b, 1)
    parts[p.name] = flat.subarray(at, at + length)
    at += length
  }
  return parts
}
