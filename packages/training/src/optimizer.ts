/**
 * What a replica's optimizer is made of and what its thread is told and
 * answers, shared by that thread (optimizer-worker.ts) and the side that
 * starts it (optimizer-thread.ts). Only the optimizer's code: the thread
 * loads nothing it does not run.
 */
import { constantSchedule, createAdamW, createSgd, decaysMatrices, warmupCosineSchedule } from '@node-daemon/onnx'
import type { TrainingSpec } from './spec.ts'
import type { Optimizer, OptimizerState, ParameterShape, Schedule } from '@node-daemon/onnx'

/** What the thread is started with. */
export interface OptimizerSource {
  spec: TrainingSpec
  totalSteps: number
  parameters: ParameterShape[]
  /** The weights, all parameters concatenated in order. */
  weights: SharedArrayBuffer
  /** Where each step's mean gradient is put before the step is asked for, laid out as the weights. */
  gradient: SharedArrayBuffer
  resume?: OptimizerState
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

export function optimizerOf (source: Omit<OptimizerSource, 'weights' | 'gradient'>): Optimizer {
  const { spec, totalSteps, parameters, resume } = source
  const lr = scheduleOf(spec, totalSteps)
  if (spec.optimizer === 'sgd') return createSgd({ lr, momentum: spec.momentum, weightDecay: spec.weightDecay }, resume)
  return createAdamW({ lr, weightDecay: spec.weightDecay, decays: decaysMatrices(parameters) }, resume)
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
