/**
 * Optimizer steps over the parameters that a training graph takes as
 * inputs, as tensor ops on Float32Arrays keyed by parameter name (the
 * names the graph's `grad.<param>` outputs carry). Each element is
 * computed in double precision and stored as float32, in a fixed order,
 * so that every node that applies the same step to the same values gets
 * the same bits: data-parallel replicas stay identical.
 */
import { ADAMW_CONSTANTS, adamwKernel } from './adamw-kernel.ts'

export type TensorMap = Record<string, Float32Array>

/** The learning rate of the step-th update, counted from 0. */
export type Schedule = (step: number) => number

export function constantSchedule (lr: number): Schedule {
  return () => lr
}

export interface WarmupCosineOptions {
  /** The learning rate at the end of warmup. */
  peak: number
  /** Steps of linear warmup from peak/warmupSteps up to peak. */
  warmupSteps: number
  /** The step at which the cosine decay reaches `final` and stays there. */
  totalSteps: number
  /** Default 0. */
  final?: number
}

/** Linear warmup, then a half cosine from the peak down to the final rate. */
export function warmupCosineSchedule (options: WarmupCosineOptions): Schedule {
  const { peak, warmupSteps, totalSteps, final = 0 } = options
  return step => {
    if (step < warmupSteps) return peak * (step + 1) / warmupSteps
    const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps))
    return final + (peak - final) * 0.5 * (1 + Math.cos(Math.PI * progress))
  }
}

/**
 * Elements a partial sum of squares covers, counted over all gradients
 * concatenated in order. The norm sums these partials in order; a block's
 * partial is the sum of four lanes, elements whose index is the same modulo
 * 4, each summed in order: independent sums that the core adds side by side,
 * four times as fast as one sum whose every addition waits for the last.
 * Threads that each take whole blocks make the same bits as one thread,
 * whatever their number.
 */
export const NORM_BLOCK = 16384

/** Room for the partial sums of `elements` elements: four lanes a block. */
export function squaresLength (elements: number): number {
  return Math.ceil(elements / NORM_BLOCK) * 4
}

/** Adds the squares of `g`, which starts at element `offset` of all gradients concatenated, into the lanes of its blocks. */
export function addSquares (g: Float32Array, offset: number, partials: Float64Array): void {
  let i = 0
  while (i < g.length) {
    const block = Math.floor((offset + i) / NORM_BLOCK)
    const end = Math.min(g.length, (block + 1) * NORM_BLOCK - offset)
    const lane = 4 * block
    // Lane k sums the elements whose index in all gradients is k modulo 4.
    let s0 = partials[lane]
    let s1 = partials[lane + 1]
    let s2 = partials[lane + 2]
    let s3 = partials[lane + 3]
    const shift = offset % 4
    for (; i < end && (shift + i) % 4 !== 0; i++) {
      const k = (shift + i) % 4
      if (k === 1) s1 += g[i] * g[i]
      else if (k === 2) s2 += g[i] * g[i]
      else s3 += g[i] * g[i]
    }
    // Indexed loops: a typed array's iterator is several times slower, on every step of every job.
    for (; i + 3 < end; i += 4) {
      s0 += g[i] * g[i]
      s1 += g[i + 1] * g[i + 1]
      s2 += g[i + 2] * g[i + 2]
      s3 += g[i + 3] * g[i + 3]
    }
    if (i < end) s0 += g[i] * g[i]
    if (i + 1 < end) s1 += g[i + 1] * g[i + 1]
    if (i + 2 < end) s2 += g[i + 2] * g[i + 2]
    i = end
    partials[lane] = s0
    partials[lane + 1] = s1
    partials[lane + 2] = s2
    partials[lane + 3] = s3
  }
}

/** The L2 norm of the partial sums made by `addSquares`. */
export function normOfSquares (partials: Float64Array): number {
  let sum = 0
  for (let b = 0; b < partials.length; b += 4) sum += (partials[b] + partials[b + 1]) + (partials[b + 2] + partials[b + 3])
  return Math.sqrt(sum)
}

/** The L2 norm of all gradients taken as one vector. */
export function globalNorm (grads: TensorMap): number {
  const all = Object.values(grads)
  const partials = new Float64Array(squaresLength(all.reduce((n, g) => n + g.length, 0)))
  let offset = 0
  for (const g of all) {
    addSquares(g, offset, partials)
    offset += g.length
  }
  return normOfSquares(partials)
}

/**
 * The factor that brings the global norm of the gradients down to at most
 * `maxNorm`, with PyTorch's 1e-6 guard; 1 when it is under already.
 */
export function clipScale (grads: TensorMap, maxNorm: number): number {
  return scaleForNorm(globalNorm(grads), maxNorm)
}

/** The factor of `clipScale` from the norm. */
export function scaleForNorm (norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6))
}

/** Scales all gradients in place so that their global norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradNorm (grads: TensorMap, maxNorm: number): number {
  const norm = globalNorm(grads)
  const scale = scaleForNorm(norm, maxNorm)
  if (scale < 1) for (const g of Object.values(grads)) for (let i = 0; i < g.length; i++) g[i] *= scale
  return norm
}

/**
 * Which parameters AdamW decays, as GPT-2 and BERT were trained: the
 * matrices; not biases, norms or embeddings.
 */
export function decaysMatrices (parameters: Array<{ name: string, dims: number[] }>): (name: string) => boolean {
  const ranks = new Map(parameters.map(p => [p.name, p.dims.length]))
  return name => name.endsWith('.weight') && ranks.get(name) === 2 && !/wte|wpe|embeddings|ln|LayerNorm/.test(name)
}

/** What an optimizer carries between steps; a checkpoint stores it next to the parameters. */
export interface OptimizerState {
  /** Updates applied so far. */
  step: number
  /** Per-parameter buffers by slot: 'momentum' for SGD, 'm' and 'v' for AdamW. */
  slots: Record<string, TensorMap>
}

export interface StepOptions {
  /**
   * Multiplies every gradient as it is read (default 1): clipping by
   * `clipScale` without writing to gradients the caller still needs.
   */
  gradientScale?: number
}

export interface Optimizer {
  /** Updates every parameter in place from its gradient; returns the learning rate used. */
  step: (params: TensorMap, grads: TensorMap, options?: StepOptions) => number
  /** A copy of the step count and buffers. */
  state: () => OptimizerState
}

export interface SgdOptions {
  lr: number | Schedule
  momentum?: number
  dampening?: number
  nesterov?: boolean
  /** L2 penalty added to the gradient (coupled, as in plain SGD). */
  weightDecay?: number
}

export interface AdamWOptions {
  lr: number | Schedule
  beta1?: number
  beta2?: number
  eps?: number
  /** Decoupled weight decay: parameters shrink by lr·weightDecay each step (default 0.01). */
  weightDecay?: number
  /** Which parameters decay (default all); GPT-style training leaves out biases and norms. */
  decays?: (name: string) => boolean
  /**
   * Where the moments live, by parameter: arrays the caller lays out, set
   * to the resumed state's or to zeros. With `memory`, the shared memory
   * they, the parameters and the gradients all sit in: a parameter whose
   * four arrays do is updated there by the SIMD kernel (adamw-kernel.ts).
   */
  moments?: { m: TensorMap, v: TensorMap, memory?: WebAssembly.Memory }
}

function scheduleOf (lr: number | Schedule): Schedule {
  return typeof lr === 'number' ? constantSchedule(lr) : lr
}

function copyState (state: OptimizerState): OptimizerState {
  const slots = Object.fromEntries(Object.entries(state.slots).map(([slot, map]) =>
    [slot, Object.fromEntries(Object.entries(map).map(([name, buf]) => [name, Float32Array.from(buf)]))]))
  return { step: state.step, slots }
}

function gradFor (grads: TensorMap, name: string, param: Float32Array): Float32Array {
  const g = grads[name]
  if (g === undefined || g.length !== param.length) throw new RangeError(`gradient of ${name}: ${g === undefined ? 'missing' : `${g.length} elements for ${param.length}`}`)
  return g
}

/** SGD with optional momentum and Nesterov momentum, with PyTorch's semantics (the first step's buffer is the gradient). */
export function createSgd (options: SgdOptions, resume?: OptimizerState): Optimizer {
  const { momentum = 0, dampening = 0, nesterov = false, weightDecay = 0 } = options
  const schedule = scheduleOf(options.lr)
  const current = copyState(resume ?? { step: 0, slots: { momentum: {} } })
  const buffers = current.slots.momentum
  return {
    step (params, grads, stepOptions = {}) {
      const lr = schedule(current.step)
      const scale = stepOptions.gradientScale ?? 1
      for (const [name, p] of Object.entries(params)) {
        const g = gradFor(grads, name, p)
        const fresh = buffers[name] === undefined
        const buf = buffers[name] ?? new Float32Array(p.length)
        buffers[name] = buf
        for (let i = 0; i < p.length; i++) {
          let d = g[i] * scale + weightDecay * p[i]
          if (momentum !== 0) {
            buf[i] = fresh ? d : momentum * buf[i] + (1 - dampening) * d
            d = nesterov ? d + momentum * buf[i] : buf[i]
          }
          p[i] = p[i] - lr * d
        }
      }
      current.step++
      return lr
    },
    state: () => copyState(current)
  }
}

type AdamWConstants = Record<typeof ADAMW_CONSTANTS[number], number>

/**
 * One tensor's AdamW update, from element `from` on. A function of its own:
 * written inline in the optimizer's step, the same loop ran 2.5 times slower
 * (132 ms against 52 for 10.5M parameters), at every step of every job.
 */
function adamwUpdate (p: Float32Array, g: Float32Array, mp: Float32Array, vp: Float32Array, c: AdamWConstants, from = 0): void {
  const { scale, shrink, stepSize, rootCorrection2, beta1, beta2, keep1, keep2, eps } = c
  for (let i = from; i < p.length; i++) {
    const gi = g[i] * scale
    const mi = beta1 * mp[i] + keep1 * gi
    const vi = beta2 * vp[i] + keep2 * gi * gi
    mp[i] = mi
    vp[i] = vi
    p[i] = p[i] * shrink - stepSize * mi / (Math.sqrt(vi) * rootCorrection2 + eps)
  }
}

/** A state whose moments are the caller's arrays, holding the resumed state's values or zeros. */
function momentsOf (moments: { m: TensorMap, v: TensorMap }, resume?: OptimizerState): OptimizerState {
  for (const slot of ['m', 'v'] as const) {
    for (const [name, array] of Object.entries(moments[slot])) {
      const from = resume?.slots[slot]?.[name]
      if (from == null) array.fill(0)
      else array.set(from)
    }
  }
  return { step: resume?.step ?? 0, slots: { m: moments.m, v: moments.v } }
}

/** Adam with decoupled weight decay and bias-corrected moments (Loshchilov and Hutter; PyTorch's AdamW). */
export function createAdamW (options: AdamWOptions, resume?: OptimizerState): Optimizer {
  const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01, decays = () => true, moments } = options
  const schedule = scheduleOf(options.lr)
  const current = moments == null ? copyState(resume ?? { step: 0, slots: { m: {}, v: {} } }) : momentsOf(moments, resume)
  const { m, v } = current.slots
  const memory = moments?.memory
  const kernel = memory == null ? undefined : adamwKernel(memory)
  const inMemory = (...arrays: Float32Array[]): boolean => arrays.every(a => a.buffer === memory?.buffer)
  return {
    step (params, grads, stepOptions = {}) {
      const lr = schedule(current.step)
      const scale = stepOptions.gradientScale ?? 1
      const t = current.step + 1
      // PyTorch's form: p -= (lr / c1) · m / (√v / √c2 + eps), with one division per element.
      const stepSize = lr / (1 - beta1 ** t)
      const rootCorrection2 = 1 / Math.sqrt(1 - beta2 ** t)
      const keep1 = 1 - beta1
      const keep2 = 1 - beta2
      for (const [name, p] of Object.entries(params)) {
        const g = gradFor(grads, name, p)
        const mp = m[name] ?? (m[name] = new Float32Array(p.length))
        const vp = v[name] ?? (v[name] = new Float32Array(p.length))
        const c = { scale, shrink: decays(name) ? 1 - lr * weightDecay : 1, stepSize, rootCorrection2, beta1, beta2, keep1, keep2, eps }
        // The kernel takes elements two at a time; an odd last one is left to the loop, which makes the same bits.
        const pairs = kernel != null && inMemory(p, g, mp, vp) ? p.length & ~1 : 0
        if (pairs > 0) kernel?.(pairs * 4, p.byteOffset, g.byteOffset, mp.byteOffset, vp.byteOffset, ...ADAMW_CONSTANTS.map(k => c[k]))
        adamwUpdate(p, g, mp, vp, c, pairs)
      }
      current.step++
      return lr
    },
    state: () => copyState(current)
  }
}
