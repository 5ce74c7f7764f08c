/**
 * A training job's hyperparameters, as the job table stores them: checked
 * once, when the job is submitted, and given defaults, so that every node
 * reads the same job from the log.
 */
import { InvalidTrainingRequestError } from './errors.ts'

/** Synchronous data parallelism: one global batch per step, its gradient averaged over the workers. Document 003's name and ours. */
export const STRATEGIES = ['data_parallel', 'cooperative_sgd'] as const

export interface TrainingSpec {
  epochs: number
  batchSize: number
  learningRate: number
  optimizer: 'adamw' | 'sgd'
  /** SGD only. */
  momentum: number
  weightDecay: number
  /** Global gradient-norm clipping; 0 turns it off. */
  clipNorm: number
  /** `cosine`: linear warmup over `warmupSteps`, then a cosine down to a tenth. */
  schedule: 'constant' | 'cosine'
  warmupSteps: number
  seed: number
  /** Language models: tokens per sample. */
  sequenceLength?: number
  /** Steps between checkpoints. */
  checkpointEvery: number
  strategy: typeof STRATEGIES[number]
  /** The name the trained model is registered under when the job completes. */
  name?: string
}

export const SPEC_DEFAULTS = {
  epochs: 1,
  batchSize: 32,
  learningRate: 1e-3,
  optimizer: 'adamw',
  momentum: 0.9,
  clipNorm: 1,
  schedule: 'constant',
  warmupSteps: 0,
  seed: 0,
  checkpointEvery: 50,
  strategy: 'data_parallel'
} as const

type Input = Partial<Record<keyof TrainingSpec, unknown>>

function number (input: Input, key: keyof TrainingSpec, check: { min: number, max: number, whole?: boolean, exclusiveMin?: boolean }): number | undefined {
  const value = input[key]
  if (value == null) return undefined
  const ok = typeof value === 'number' && Number.isFinite(value) &&
    (check.exclusiveMin === true ? value > check.min : value >= check.min) && value <= check.max &&
    (check.whole !== true || Number.isInteger(value))
  if (!ok) throw new InvalidTrainingRequestError(`${key} must be ${check.whole === true ? 'a whole number' : 'a number'} ${check.exclusiveMin === true ? 'above' : 'from'} ${check.min} to ${check.max}`)
  return value as number
}

function choice<T extends string> (input: Input, key: keyof TrainingSpec, allowed: readonly T[]): T | undefined {
  const value = input[key]
  if (value == null) return undefined
  if (typeof value !== 'string' || !allowed.includes(value as T)) throw new InvalidTrainingRequestError(`${key} must be one of ${allowed.join(', ')}`)
  return value as T
}

/** The spec with its defaults; throws InvalidTrainingRequestError naming the first bad field. */
export function trainingSpec (input: Input): TrainingSpec {
  const optimizer = choice(input, 'optimizer', ['adamw', 'sgd']) ?? SPEC_DEFAULTS.optimizer
  const name = input.name
  if (name != null && (typeof name !== 'string' || name === '')) throw new InvalidTrainingRequestError('name must be a non-empty string')
  const spec: TrainingSpec = {
    epochs: number(input, 'epochs', { min: 1, max: 1_000_000, whole: true }) ?? SPEC_DEFAULTS.epochs,
    batchSize: number(input, 'batchSize', { min: 1, max: 65_536, whole: true }) ?? SPEC_DEFAULTS.batchSize,
    learningRate: number(input, 'learningRate', { min: 0, max: 10, exclusiveMin: true }) ?? SPEC_DEFAULTS.learningRate,
    optimizer,
    momentum: number(input, 'momentum', { min: 0, max: 1 }) ?? SPEC_DEFAULTS.momentum,
    weightDecay: number(input, 'weightDecay', { min: 0, max: 1 }) ?? (optimizer === 'adamw' ? 0.01 : 0),
    clipNorm: number(input, 'clipNorm', { min: 0, max: 1e6 }) ?? SPEC_DEFAULTS.clipNorm,
    schedule: choice(input, 'schedule', ['constant', 'cosine']) ?? SPEC_DEFAULTS.schedule,
    warmupSteps: number(input, 'warmupSteps', { min: 0, max: 1e9, whole: true }) ?? SPEC_DEFAULTS.warmupSteps,
    seed: number(input, 'seed', { min: 0, max: 2 ** 31 - 1, whole: true }) ?? SPEC_DEFAULTS.seed,
    checkpointEvery: number(input, 'checkpointEvery', { min: 1, max: 1e9, whole: true }) ?? SPEC_DEFAULTS.checkpointEvery,
    strategy: choice(input, 'strategy', STRATEGIES) ?? SPEC_DEFAULTS.strategy
  }
  const sequenceLength = number(input, 'sequenceLength', { min: 2, max: 1_000_000, whole: true })
  if (sequenceLength != null) spec.sequenceLength = sequenceLength
  if (typeof name === 'string') spec.name = name
  return spec
}
