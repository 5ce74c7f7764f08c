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
