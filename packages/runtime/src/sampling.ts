/**
 * Turns a row of logits into the next token, in llama.cpp's sampler chain
 * order as Ollama applies it: logit bias, then the penalties (repeat,
 * frequency, presence) over the recent tokens, then top-k, tail-free,
 * typical, top-p and min-p truncation, temperature and a draw from a seeded
 * generator; or, with mirostat, temperature and mirostat's own truncation. A
 * temperature of 0 is greedy decoding. A sampler belongs to one sequence:
 * mirostat keeps state between its tokens.
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
  /** How many recent tokens the penalties look at; 0 for none, -1 for all. */
  repeatLastN: number
  /** Seeds the draws; without it each request draws differently. */
  seed?: number
  /** Subtracted once from the logit of every token in the penalty window (OpenAI's presence_penalty); 0 for none. */
  presencePenalty?: number
  /** Subtracted from a token's logit once per occurrence in the penalty window; 0 for none. */
  frequencyPenalty?: number
  /** Added to the logits of these token ids; -100 or less bans the token. */
  logitBias?: Record<number, number>
  /** Drops tokens less likely than min_p times the likeliest; 0 for none. */
  minP?: number
  /** Locally typical sampling; 1 for none. */
  typicalP?: number
  /** Tail-free sampling; 1 for none. */
  tfsZ?: number
  /** 0 off, 1 Mirostat, 2 Mirostat 2.0; replaces top-k/top-p/min-p/typical/tail-free truncation. */
  mirostat?: number
  /** The surprise mirostat aims at; default 5. */
  mirostatTau?: number
  /** How fast mirostat adjusts to the surprise it sees; default 0.1. */
  mirostatEta?: number
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 0.8, topK: 40, topP: 0.9, repeatPenalty: 1.1, repeatLastN: 64 }

/** A token and its log-probability. */
export interface TokenLogprob {
  token: number
  logprob: number
}

export interface Sampled {
  token: number
  /**
   * With `topLogprobs` asked: the token's log-probability in the row after
   * bias and penalties, before truncation and temperature (the log-softmax of
   * the whole row, as OpenAI and vLLM report it), and the `topLogprobs`
   * likeliest tokens of that row.
   */
  logprob?: number
  top?: TokenLogprob[]
}

export type Sampler = (logits: Float32Array, history: readonly number[], topLogprobs?: number) => Sampled

/** The most alternatives a caller may ask for per token, as OpenAI's top_logprobs allows. */
export const MAX_TOP_LOGPROBS = 20

export function validateSampling (o: SamplingOptions): void {
  const bad = (what: string): never => { throw new InvalidInferenceRequestError(`invalid ${what}`) }
  const finite = (v: number | undefined): boolean => v == null || Number.isFinite(v)
  if (!Number.isFinite(o.temperature) || o.temperature < 0) bad('temperature: must be >= 0')
  if (!Number.isInteger(o.topK) || o.topK < 0) bad('top_k: must be a whole number >= 0')
  if (!Number.isFinite(o.topP) || o.topP <= 0 || o.topP > 1) bad('top_p: must be in (0, 1]')
  if (!Number.isFinite(o.repeatPenalty) || o.repeatPenalty <= 0) bad('repeat_penalty: must be > 0')
  if (!Number.isInteger(o.repeatLastN) || o.repeatLastN < -1) bad('repeat_last_n: must be a whole number >= -1')
  if (o.seed != null && !Number.isSafeInteger(o.seed)) bad('seed: must be an integer')
  if (!finite(o.presencePenalty)) bad('presence_penalty: must be a number')
  if (!finite(o.frequencyPenalty)) bad('frequency_penalty: must be a number')
  for (const [id, bias] of Object.entries(o.logitBias ?? {})) {
    if (!/^\d+$/.test(id)) bad(`logit_bias: ${JSON.stringify(id)} is not a token id`)
    if (!Number.isFinite(bias) || bias < -100 || bias > 100) bad(`logit_bias: the bias of token ${id} must be in [-100, 100]`)
  }
  if (o.minP != null && (!Number.isFinite(o.minP) || o.minP < 0 || o.minP > 1)) bad('min_p: must be in [0, 1]')
  if (o.typicalP != null && (!Number.isFinite(o.typicalP) || o.typicalP <= 0 || o.typicalP > 1)) bad('typical_p: must be in (0, 1]')
  // Ollama's tfs_z of 1 or more means none.
  if (o.tfsZ != null && (!Number.isFinite(o.tfsZ) || o.tfsZ <= 0)) bad('tfs_z: must be > 0')
  if (o.mirostat != null && ![0, 1, 2].includes(o.mirostat)) bad('mirostat: must be 0, 1 or 2')
  if (o.mirostatTau != null && (!Number.isFinite(o.mirostatTau) || o.mirostatTau < 0)) bad('mirostat_tau: must be >= 0')
  if (o.mirostatEta != null && (!Number.isFinite(o.mirostatEta) || o.mirostatEta < 0)) bad('mirostat_eta: must be >= 0')
}

export function argmax (row: Float32Array): number {
  let best = 0
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i
  return best
}

export function createSampler (options: SamplingOptions): Sampler {
  validateSampling(options)
  const draw = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32))
  const tau = options.mirostatTau ?? 5
  // Mirostat's running estimate of the surprise to truncate at, which starts at twice its target.
  const state = { mu: 2 * tau }
  return (logits, history, topLogprobs) => {
    const row = penalize(logits, history, options)
    const token = options.temperature === 0
      ? argmax(row)
      : (options.mirostat ?? 0) > 0 ? mirostat(row, options, state, draw()) : sample(row, options, draw())
    return topLogprobs == null ? { token } : { token, ...logprobs(row, token, topLogprobs) }
  }
}

/** Whether a row's token is its plain argmax: greedy, without bias or penalties, so that an engine may pick it without handing its logits over. */
export function plainGreedy (o: SamplingOptions): boolean {
  return o.temperature === 0 && Object.keys(o.logitBias ?? {}).length === 0 && !penalizes(o)
}

function penalizes (o: SamplingOptions): boolean {
  return (o.repeatPenalty !== 1 || (o.presencePenalty ?? 0) !== 0 || (o.frequencyPenalty ?? 0) !== 0) && o.repeatLastN !== 0
}

/** Logit bias and llama.cpp's penalties: repeat scales a logit, frequency and presence subtract from it. */
function penalize (logits: Float32Array, history: readonly number[], o: SamplingOptions): Float32Array {
  const bias = Object.entries(o.logitBias ?? {})
  const presence = o.presencePenalty ?? 0
  const frequency = o.frequencyPenalty ?? 0
  const penalties = penalizes(o) && history.length > 0
  if (bias.length === 0 && !penalties) return logits
  const row = logits.slice()
  for (const [id, b] of bias) {
    // OpenAI: -100 "should result in a ban or exclusive selection of the relevant token".
    if (Number(id) < row.length) row[Number(id)] = b <= -100 ? -Infinity : row[Number(id)] + b
  }
  if (!penalties) return row
  const counts = new Map<number, number>()
  for (const id of o.repeatLastN === -1 ? history : history.slice(-o.repeatLastN)) counts.set(id, (counts.get(id) ?? 0) + 1)
  for (const [id, count] of counts) {
    // As llama.cpp: dividing a negative logit would raise it, so those are multiplied.
    row[id] = row[id] <= 0 ? row[id] * o.repeatPenalty : row[id] / o.repeatPenalty
    row[id] -= count * frequency + presence
  }
  return row
}

/** The chosen token's log-softmax over the whole row, and the `n` likeliest. */
function logprobs (row: Float32Array, token: number, n: number): { logprob: number, top: TokenLogprob[] } {
  const max = row[argmax(row)]
  let sum = 0
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max)
  const norm = max + Math.log(sum)
  const top = n > 0 ? candidates(row, Math.min(n, row.length)).map(id => ({ token: id, logprob: row[id] - norm })) : []
  return { logprob: row[token] - norm, top }
}

/** Probabilities of `ids` (sorted by falling logit) in proportion to exp(logit). */
function softmax (row: Float32Array, ids: number[]): number[] {
  const max = row[ids[0]]
  const p = ids.map(id => Math.exp(row[id] - max))
  const total = p.reduce((s, w) => s + w, 0)
  return p.map(w => w / total)
}

function sample (row: Float32Array, o: SamplingOptions, u: number): number {
  let ids = candidates(row, o.topK)
  if (o.tfsZ != null && o.tfsZ < 1) ids = tailFree(row, ids, o.tfsZ)
  if (o.typicalP != null && o.typicalP < 1) ids = typical(row, ids, o.typicalP)
  // top-p and min-p look at the untempered distribution, as llama.cpp's sampler chain does.
  if (o.topP < 1) {
    const p = softmax(row, ids)
    let mass = 0
    let kept = 0
    while (kept < p.length && mass < o.topP) mass += p[kept++]
    ids = ids.slice(0, Math.max(1, kept))
  }
  if (o.minP != null && o.minP > 0) {
    const floor = row[ids[0]] + Math.log(o.minP)
    ids = ids.filter((id, i) => i === 0 || row[id] >= floor)
  }
  return pick(ids, ids.map(id => Math.exp((row[id] - row[ids[0]]) / o.temperature)), u)
}

/** Draws one of `ids` in proportion to `weights`. */
function pick (ids: number[], weights: number[], u: number): number {
  const total = weights.reduce((s, w) => s + w, 0)
  let target = u * total
  for (let i = 0; i < weights.length; i++) {
    target -= weights[i]
    if (target <= 0) return ids[i]
  }
  return ids[ids.length - 1]
}

/**
 * Tail-free sampling (llama.cpp's): cuts where the curvature of the sorted
 * probabilities, normalized to sum to 1, has accumulated past z.
 */
function tailFree (row: Float32Array, ids: number[], z: number): number[] {
  if (ids.length <= 2) return ids
  const p = softmax(row, ids)
  const first = p.slice(0, -1).map((v, i) => v - p[i + 1])
  const second = first.slice(0, -1).map((v, i) => Math.abs(v - first[i + 1]))
  const total = second.reduce((s, v) => s + v, 0)
  const weights = total > 1e-6 ? second.map(v => v / total) : second.map(() => 1 / second.length)
  let mass = 0
  for (let i = 0; i < weights.length; i++) {
    mass += weights[i]
    if (mass > z && i >= 1) return ids.slice(0, i)
  }
  return ids
}

/**
 * Locally typical sampling (llama.cpp's): keeps the tokens whose surprise is
 * closest to the distribution's entropy until they hold `typicalP` of the mass.
 */
function typical (row: Float32Array, ids: number[], typicalP: number): number[] {
  const p = softmax(row, ids)
  const entropy = -p.reduce((s, v) => s + (v > 0 ? v * Math.log(v) : 0), 0)
  const shift = p.map(v => Math.abs(-Math.log(v) - entropy))
  // Banned tokens' shifts are infinite, which subtraction would turn into NaN.
  const order = p.map((_, i) => i).sort((a, b) => shift[a] === shift[b] ? a - b : shift[a] < shift[b] ? -1 : 1)
  const kept: number[] = []
  let mass = 0
  for (const i of order) {
    kept.push(i)
    mass += p[i]
    if (mass >= typicalP) break
  }
  // Back to falling logits, which the steps after expect.
  return kept.sort((a, b) => a - b).map(i => ids[i])
}

/**
 * Mirostat (Basu et al., 2021) as llama.cpp implements it: v1 estimates the
 * Zipf exponent from the 100 likeliest tokens and keeps a top-k that aims at
 * surprise mu; v2 keeps the tokens whose surprise is at most mu. Either way mu
 * then moves by eta times the gap between the surprise seen and tau.
 */
function mirostat (row: Float32Array, o: SamplingOptions, state: { mu: number }, u: number): number {
  const tau = o.mirostatTau ?? 5
  const eta = o.mirostatEta ?? 0.1
  const scaled = row.map(l => l / o.temperature)
  let ids = candidates(scaled, 0)
  let p = softmax(scaled, ids)
  if (o.mirostat === 1) {
    const m = Math.min(100, ids.length)
    let sumTiBi = 0
    let sumTiSq = 0
    for (let i = 0; i < m - 1; i++) {
      const t = Math.log((i + 2) / (i + 1))
      const b = Math.log(p[i] / p[i + 1])
      sumTiBi += t * b
      sumTiSq += t * t
    }
    const sHat = sumTiBi / sumTiSq
    const epsilon = sHat - 1
    const k = Math.pow((epsilon * Math.pow(2, state.mu)) / (1 - Math.pow(ids.length, -epsilon)), 1 / sHat)
    ids = ids.slice(0, Number.isFinite(k) ? Math.max(1, Math.floor(k)) : ids.length)
  } else {
    const kept = p.findIndex(v => -Math.log2(v) > state.mu)
    ids = ids.slice(0, Math.max(1, kept < 0 ? ids.length : kept))
  }
  p = softmax(scaled, ids)
  const token = pick(ids, p, u)
  const surprise = -Math.log2(p[ids.indexOf(token)])
  state.mu -= eta * (surprise - tau)
  return token
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
