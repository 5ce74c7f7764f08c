/**
 * Which samples each step trains on. The global batches depend only on the
 * seed, the dataset's size and the batch size, never on how many workers
 * share them: that is what makes training on N nodes give the weights of
 * training on one with the same global batch.
 */
import { seededRandom } from '@node-daemon/onnx'
import type { TrainingSpec } from './spec.ts'

export interface BatchPlan {
  samples: number
  batchSize: number
  epochs: number
  seed: number
}

/** The plan of a job's spec over a dataset of `samples` samples. */
export function planOf (spec: Pick<TrainingSpec, 'batchSize' | 'epochs' | 'seed'>, samples: number): BatchPlan {
  return { samples, batchSize: spec.batchSize, epochs: spec.epochs, seed: spec.seed }
}

/** Steps of one epoch: every sample once, the last batch possibly smaller. */
export function stepsPerEpoch (plan: BatchPlan): number {
  return Math.ceil(plan.samples / plan.batchSize)
}

export function totalSteps (plan: BatchPlan): number {
  return stepsPerEpoch(plan) * plan.epochs
}

/** A Fisher-Yates shuffle of the samples, seeded by the seed and the epoch. */
function permutation (plan: BatchPlan, epoch: number): Uint32Array {
  const order = new Uint32Array(plan.samples)
  for (let i = 0; i < order.length; i++) order[i] = i
  const random = seededRandom(plan.seed * 1_000_003 + epoch)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = order[i]
    order[i] = order[j]
    order[j] = t
  }
  return order
}

/** The global batches of a plan, remembering the current epoch's order. */
export class Batches {
  readonly plan: BatchPlan
  #epoch = -1
  #order: Uint32Array = new Uint32Array(0)

  constructor (plan: BatchPlan) {
    this.plan = plan
  }

  /** The epoch (from 0) that step `step` (from 0) belongs to. */
  epochOf (step: number): number {
    return Math.floor(step / stepsPerEpoch(this.plan))
  }

  /** The sample indices of the step-th global batch, counted from 0. */
  batch (step: number): Uint32Array {
    const epoch = this.epochOf(step)
    if (epoch !== this.#epoch) {
      this.#order = permutation(this.plan, epoch)
      this.#epoch = epoch
    }
    const at = (step - epoch * stepsPerEpoch(this.plan)) * this.plan.batchSize
    return this.#order.subarray(at, Math.min(at + this.plan.batchSize, this.plan.samples))
  }
}

/** Contiguous slices of a batch for `parts` workers, the first ones one larger when it does not divide. */
export function split (batch: Uint32Array, parts: number): Uint32Array[] {
  const base = Math.floor(batch.length / parts)
  const extra = batch.length % parts
  const slices: Uint32Array[] = []
  let at = 0
  for (let r = 0; r < parts; r++) {
    const size = base + (r < extra ? 1 : 0)
    slices.push(batch.subarray(at, at + size))
    at += size
  }
  return slices
}
