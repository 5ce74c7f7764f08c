/**
 * Turns a row of logits into the next token, in llama.cpp's order as Ollama
 * applies it: repeat penalty over the recent tokens, then top-k, top-p and
 * temperature, then a draw from a seeded generator. A temperature of 0 is
 * greedy decoding.
 */
import { seededRandom } from '@node-daemon/onnx'
import { InvalidInferenceRequestError } from './errors.ts'

export interface SamplingOptions {
  /** 0 for greedy decoding. */
  temperature: number
  /** 0 for no limit. */
  topK: number
  /** 1 for no limit. */
  topP: number
  /** 1 for no penalty. */
  repeatPenalty: number
  /** How many recent tokens the penalty looks at; 0 for none, -1 for all. */
  repeatLastN: number
  /** Seeds the draws; without it each request draws differently. */
  seed?: number
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 0.8, topK: 40, topP: 0.9, repeatPenalty: 1.1, repeatLastN: 64 }

export type Sampler = (logits: Float32Array, history: readonly number[]) => number

export function validateSampling (o: SamplingOptions): void {
  const bad = (what: string): never => { throw new InvalidInferenceRequestError(`invalid ${what}`) }
  if (!Number.isFinite(o.temperature) || o.temperature < 0) bad('temperature: must be >= 0')
  if (!Number.isInteger(o.topK) || o.topK < 0) bad('top_k: must be a whole number >= 0')
  if (!Number.isFinite(o.topP) || o.topP <= 0 || o.topP > 1) bad('top_p: must be in (0, 1]')
  if (!Number.isFinite(o.repeatPenalty) || o.repeatPenalty <= 0) bad('repeat_penalty: must be > 0')
  if (!Number.isInteger(o.repeatLastN) || o.repeatLastN < -1) bad('repeat_last_n: must be a whole number >= -1')
  if (o.seed != null && !Number.isSafeInteger(o.seed)) bad('seed: must be an integer')
}

export function argmax (row: Float32Array): number {
  let best = 0
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i
  return best
}

export function createSampler (options: SamplingOptions): Sampler {
  validateSampling(options)
  const draw = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32))
  return (logits, history) => {
    const row = penalize(logits, history, options)
    if (options.temperature === 0) return argmax(row)
    return sample(row, options, draw())
  }
}

function penalize (logits: Float32Array, history: readonly number[], o: SamplingOptions): Float32Array {
  if (o.repeatPenalty === 1 || o.repeatLastN === 0 || history.length === 0) return logits
  const row = logits.slice()
  const recent = o.repeatLastN === -1 ? history : history.slice(-o.repeatLastN)
  for (const id of new Set(recent)) {
    // As llama.cpp: dividing a negative logit would raise it, so those are multiplied.
    row[id] = row[id] > 0 ? row[id] / o.repeatPenalty : row[id] * o.repeatPenalty
  }
  return row
}

function sample (row: Float32Array, o: SamplingOptions, u: number): number {
  const ids = candidates(row, o.topK)
  const max = row[ids[0]]
  // top-p looks at the untempered distribution, as llama.cpp's sampler chain does.
  let kept = ids.length
  if (o.topP < 1) {
    const p = ids.map(id => Math.exp(row[id] - max))
    const total = p.reduce((s, w) => s + w, 0)
    let mass = 0
    kept = 0
    while (kept < p.length && mass < o.topP * total) mass += p[kept++]
  }
  const weights = ids.slice(0, kept).map(id => Math.exp((row[id] - max) / o.temperature))
  const total = weights.reduce((s, w) => s + w, 0)
  let target = u * total
  for (let i = 0; i < weights.length; i++) {
    target -= weights[i]
    if (target <= 0) return ids[i]
  }
  return ids[kept - 1]
}

/** Token ids by falling logit, the top k only when k > 0: a bounded insertion keeps large vocabularies cheap. */
function candidates (row: Float32Array, k: number): number[] {
  if (k <= 0 || k >= row.length) return Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b)
  const top: number[] = []
  for (let id = 0; id < row.length; id++) {
    if (top.length === k && row[id] <= row[top[k - 1]]) continue
    let at = top.length === k ? k - 1 : top.length
    while (at > 0 && row[top[at - 1]] < row[id]) {
      top[at] = top[at - 1]
      at--
    }
    top[at] = id
  }
  return top
}
