/**
 * The generation loop of one causal LM, with continuous batching: requests
 * join and leave between steps, and every step runs one forward pass for all
 * sequences that are decoding, each on its own KV cache. A new request's
 * prompt is prefilled alone, then its tokens come from the shared steps.
 */
import { pushable } from 'it-pushable'
import { ContextLengthError } from './errors.ts'
import { PrefixCache } from './prefix-cache.ts'
import { argmax, createSampler, plainGreedy } from './sampling.ts'
import { IncrementalDecoder } from './text.ts'
import type { Decoder, DecoderCache } from './decoder.ts'
import type { Sampled, Sampler, SamplingOptions, TokenLogprob } from './sampling.ts'
import type { ToolCall } from './tools.ts'
import type { Pushable } from 'it-pushable'

/** What constrained decoding needs of a grammar's matcher (packages/grammar). */
export interface TokenConstraint {
  /** Masks the tokens that cannot come next; with a budget, those that cannot finish in time. */
  mask: (logits: Float32Array, budget?: number) => void
  accept: (token: number) => void
  /** Nothing more may follow: the sequence ends here. */
  readonly finished: boolean
}

/**
 * Constrains a sequence's tokens (structured output, tool calls): from the
 * first one, or from where its text reaches `trigger`.
 */
export interface Constraint {
  start: () => TokenConstraint
  trigger?: string
  /** The constrained text is not content (a tool call): it is not streamed as chunks. */
  hidden?: boolean
}

export interface GenerateRequest {
  /** The prompt as token ids, chat template applied. */
  prompt: number[]
  sampling: SamplingOptions
  /** The most tokens to generate; -1 until the context is full. */
  maxTokens: number
  /** Generation ends before any of these strings, which are not returned. */
  stop: string[]
  /** The most tokens the sequence may hold, prompt included; the model's context when unset. */
  contextLength?: number
  constraint?: Constraint
  /** Report each token's log-probability and this many likeliest alternatives (0–20); unset for none. */
  logprobs?: number
  signal?: AbortSignal
}

export interface GenerationChunk {
  /** Text since the previous chunk; may be empty when a token is still part of a character or of a possible stop string. */
  text: string
  token: number
  /** With `logprobs` asked: the token's log-probability, and the likeliest tokens of the row it was drawn from. */
  logprob?: number
  top?: TokenLogprob[]
}

export interface GenerationStats {
  text: string
  tokens: number[]
  doneReason: 'stop' | 'length'
  /** Calls of tools the text made, read from it (the text then holds only the rest). */
  toolCalls?: ToolCall[]
  promptTokens: number
  /** Prompt tokens whose keys and values came from the prefix cache. */
  cachedTokens: number
  /** Nanoseconds, as Ollama reports them. */
  promptEvalNs: number
  evalNs: number
}

export type GenerationEvent = { type: 'chunk', chunk: GenerationChunk } | { type: 'done', stats: GenerationStats }

interface Sequence {
  request: GenerateRequest
  sampler: Sampler
  decoder: IncrementalDecoder
  tokens: number[]
  /** The prompt and the tokens so far, for the repeat penalty. */
  history: number[]
  /** Stops listening to the request's signal. */
  unlisten: () => void
  /** Text that may be the start of a stop string, held back until it is not. */
  held: string
  output: Pushable<GenerationEvent>
  promptEvalNs: number
  evalStart: number
  cachedTokens: number
  /** Set when the sequence ended by failing, so that its cache is not kept. */
  failed: boolean
  /** Active once the constraint applies; until then the text is free. */
  matcher?: TokenConstraint
  /** A token drawn and not yet taken: it is the row's input to the next step, and streamed while that step runs. */
  next?: Sampled
  done: boolean
}

/** The sequences decoding together, in the order of their rows in the cache. */
interface Batch {
  seqs: Sequence[]
  cache: DecoderCache
}

const now = (): number => Number(process.hrtime.bigint())

export interface BatcherInit {
  /** Most sequences in one decoding step. */
  maxBatch?: number
  /** Bytes of keys and values kept for prompts to come (PrefixCache); 0 keeps none. */
  prefixCacheBytes?: number
}

/** Enough for the recent turns of a few chats on a small model. */
const PREFIX_CACHE_BYTES = 256 * 1_048_576

export class Batcher {
  readonly #model: Decoder
  readonly #maxBatch: number
  readonly #waiting: Sequence[] = []
  readonly #prefixes: PrefixCache
  #batch?: Batch
  #running = false

  constructor (model: Decoder, init: BatcherInit = {}) {
    this.#model = model
    this.#maxBatch = init.maxBatch ?? 16
    this.#prefixes = new PrefixCache(model, init.prefixCacheBytes ?? PREFIX_CACHE_BYTES)
  }

  /** Sequences waiting or decoding. */
  get size (): number {
    return this.#waiting.length + (this.#batch?.seqs.length ?? 0)
  }

  /** Streams chunks, then one `done`; ending the iteration early or aborting the signal drops the sequence. */
  generate (request: GenerateRequest): AsyncIterable<GenerationEvent> {
    const context = Math.min(request.contextLength ?? Infinity, this.#model.info.contextLength)
    request = { ...request, contextLength: context }
    if (request.prompt.length === 0) request = { ...request, prompt: [this.#startToken()] }
    if (request.prompt.length >= context) throw new ContextLengthError(`the prompt of ${request.prompt.length} tokens does not fit the context of ${context}`)
    const sampler = createSampler(request.sampling)
    const onAbort = (): void => { this.#finish(seq, request.signal?.reason) }
    const seq: Sequence = {
      request,
      sampler,
      decoder: new IncrementalDecoder(this.#model.codec),
      tokens: [],
      history: [...request.prompt],
      unlisten: () => { request.signal?.removeEventListener('abort', onAbort) },
      held: '',
      output: pushable<GenerationEvent>({ objectMode: true, onEnd: () => { seq.done = true } }),
      promptEvalNs: 0,
      evalStart: 0,
      cachedTokens: 0,
      failed: false,
      matcher: request.constraint?.trigger == null ? request.constraint?.start() : undefined,
      done: false
    }
    request.signal?.addEventListener('abort', onAbort, { once: true })
    this.#waiting.push(seq)
    this.#kick()
    return seq.output
  }

  #startToken (): number {
    const [first] = this.#model.codec.stopIds
    return first ?? 0
  }

  #kick (): void {
    if (this.#running) return
    this.#running = true
    void this.#loop().finally(() => { this.#running = false })
  }

  /** Each turn: finished rows leave, prompts that wait are prefilled and join, and every row decodes one token. */
  async #loop (): Promise<void> {
    while (this.size > 0) {
      // Rows that finished since the last step leave first, so that their prefixes serve the prompts joining now.
      this.#prune()
      const room = this.#maxBatch - (this.#batch?.seqs.length ?? 0)
      const joining = this.#waiting.splice(0, Math.max(0, room)).filter(s => !s.done)
      if (joining.length > 0) {
        // A prefill's rows join the batch's: tokens drawn for the step it delays are streamed now.
        this.#batch?.seqs.forEach(s => { this.#takeNext(s) })
        await this.#guard(joining, async () => this.#prefill(joining))
      }
      this.#prune()
      const batch = this.#batch
      if (batch != null) await this.#guard(batch.seqs, async () => this.#decode(batch))
      // Lets HTTP writes and new requests in between steps.
      await new Promise(resolve => setImmediate(resolve))
    }
  }

  async #guard (seqs: Sequence[], work: () => Promise<void>): Promise<void> {
    try {
      await work()
    } catch (err: any) {
      for (const s of seqs) this.#finish(s, err)
    }
  }

  /**
   * Prompts with a cached prefix run alone from it; the others run together
   * from nothing. Then they all join the batch.
   */
  async #prefill (joining: Sequence[]): Promise<void> {
    const parts: Array<{ seqs: Sequence[], cache: DecoderCache, logits: Float32Array[] }> = []
    const fresh: Sequence[] = []
    for (const seq of joining) {
      const hit = this.#prefixes.take(seq.request.prompt)
      if (hit == null) {
        fresh.push(seq)
        continue
      }
      const t0 = now()
      const { logits, cache } = await this.#model.forward([seq.request.prompt.slice(hit.length)], hit.cache)
      seq.promptEvalNs = now() - t0
      seq.cachedTokens = hit.length
      parts.push({ seqs: [seq], cache, logits })
    }
    if (fresh.length > 0) {
      const t0 = now()
      const { logits, cache } = await this.#model.forward(fresh.map(s => s.request.prompt))
      const elapsed = now() - t0
      for (const seq of fresh) seq.promptEvalNs = elapsed
      parts.push({ seqs: fresh, cache, logits })
    }
    const batch = this.#batch
    if (batch != null) parts.unshift({ seqs: batch.seqs, cache: batch.cache, logits: [] })
    this.#batch = parts.length === 1
      ? { seqs: parts[0].seqs, cache: parts[0].cache }
      : { seqs: parts.flatMap(p => p.seqs), cache: this.#model.regroup(parts.map(p => ({ cache: p.cache, rows: p.seqs.map((_, i) => i) })), true) }
    for (const part of parts) {
      part.logits.forEach((row, i) => {
        const seq = part.seqs[i]
        seq.evalStart = now()
        this.#accept(seq, row)
      })
    }
  }

  /**
   * One step for every row, fed the tokens drawn at the step before. Those
   * tokens are streamed while the step runs in the model's worker thread
   * (any model but a small one, whose steps run on this thread): their text,
   * stop strings and HTTP writes overlap the model's work instead of
   * following it. A row that a stop string ends meanwhile has its step's
   * result dropped.
   */
  async #decode (batch: Batch): Promise<void> {
    const rows = batch.seqs.map(s => [s.next?.token ?? s.tokens[s.tokens.length - 1]])
    const greedy = batch.seqs.map(s => s.matcher == null && s.request.logprobs == null && plainGreedy(s.request.sampling))
    // The tokens a row may take after the one this step draws, by its length: counted before the one drawn at the step before is taken.
    const room = batch.seqs.map(s => this.#room(s, s.next == null ? 1 : 2))
    const running = this.#model.forwardGreedy != null && greedy.some(g => g)
      ? this.#model.forwardGreedy(rows, greedy, batch.cache, undefined, room)
      : this.#model.forward(rows, batch.cache).then(({ logits, cache }) => ({ next: logits, cache }))
    // Taken before the step is awaited, so that a failed step still streamed them.
    batch.seqs.forEach(s => { this.#takeNext(s) })
    const { next, cache } = await running
    batch.cache = cache
    batch.seqs.forEach((s, i) => {
      if (s.done) return
      const row = next[i]
      this.#drawn(s, typeof row === 'number' ? { token: row } : this.#sample(s, row))
    })
  }

  /** A token drawn: one that ends the row is taken at once (no step follows it), any other waits to feed the next step. */
  #drawn (seq: Sequence, sampled: Sampled): void {
    if (this.#model.codec.stopIds.has(sampled.token) || this.#full(seq, 1)) this.#take(seq, sampled)
    else seq.next = sampled
  }

  #takeNext (seq: Sequence): void {
    const next = seq.next
    seq.next = undefined
    if (next != null && !seq.done) this.#take(seq, next)
  }

  /** Drops finished rows from the batch, keeping their prefixes for prompts to come; the cache is copied only then. */
  #prune (): void {
    const batch = this.#batch
    if (batch == null || batch.seqs.every(s => !s.done)) return
    batch.seqs.forEach((s, i) => { if (s.done && !s.failed) this.#prefixes.store(s.history, batch.cache, i) })
    const rows = batch.seqs.flatMap((s, i) => s.done ? [] : [i])
    if (rows.length === 0) this.#model.free?.(batch.cache)
    this.#batch = rows.length === 0 ? undefined : { seqs: rows.map(i => batch.seqs[i]), cache: this.#model.regroup([{ cache: batch.cache, rows }], true) }
  }

  /** Samples and takes the next token of a sequence from its logits. */
  #accept (seq: Sequence, logits: Float32Array): void {
    this.#take(seq, this.#sample(seq, logits))
  }

  /** The next token of a sequence, drawn from its logits. */
  #sample (seq: Sequence, logits: Float32Array): Sampled {
    const { request } = seq
    const context = request.contextLength ?? this.#model.info.contextLength
    const matcher = seq.matcher
    if (matcher != null) {
      const left = context - request.prompt.length - seq.tokens.length
      matcher.mask(logits, request.maxTokens >= 0 ? Math.min(left, request.maxTokens - seq.tokens.length) : left)
    }
    let sampled = seq.sampler(logits, seq.history, request.logprobs)
    // A sampler's rounding may land on a masked token when nearly all are masked.
    if (matcher != null && logits[sampled.token] === -Infinity) sampled = { token: argmax(logits) }
    return sampled
  }

  /** Appends a sampled token to a sequence, streams its text and decides whether the sequence ends there. */
  #take (seq: Sequence, sampled: Sampled): void {
    const { request } = seq
    const matcher = seq.matcher
    const id = sampled.token
    if (this.#model.codec.stopIds.has(id)) {
      this.#complete(seq, 'stop')
      return
    }
    matcher?.accept(id)
    seq.tokens.push(id)
    seq.history.push(id)
    if (matcher != null) {
      this.#acceptConstrained(seq, sampled, matcher)
      return
    }
    const text = seq.held + seq.decoder.push(id)
    const trigger = request.constraint?.trigger
    const begins = trigger == null ? -1 : text.indexOf(trigger)
    // The text up to the trigger is content; from it on, the constraint holds.
    if (begins >= 0 && text.endsWith(trigger as string)) {
      seq.held = ''
      this.#emit(seq, text.slice(0, begins), sampled)
      seq.matcher = request.constraint?.start()
      if (this.#full(seq)) this.#complete(seq, 'length')
      return
    }
    const at = firstStop(text, request.stop)
    if (at >= 0) {
      seq.held = ''
      this.#emit(seq, text.slice(0, at), sampled)
      this.#complete(seq, 'stop', text.length - at)
      return
    }
    const keep = heldBack(text, trigger == null ? request.stop : [...request.stop, trigger])
    seq.held = text.slice(text.length - keep)
    this.#emit(seq, text.slice(0, text.length - keep), sampled)
    if (this.#full(seq)) this.#complete(seq, 'length')
  }

  /** Constrained text ends where its grammar does; stop strings do not cut it. */
  #acceptConstrained (seq: Sequence, sampled: Sampled, matcher: TokenConstraint): void {
    const text = seq.decoder.push(sampled.token)
    if (seq.request.constraint?.hidden !== true) this.#emit(seq, text, sampled)
    if (matcher.finished) this.#complete(seq, 'stop')
    else if (this.#full(seq)) this.#complete(seq, 'length')
  }

  /** Whether the sequence is full, or would be with `more` tokens taken. */
  #full (seq: Sequence, more = 0): boolean {
    return this.#room(seq, more) === 0
  }

  /** Tokens a sequence may still take once it has `more` more, by its context and its length. */
  #room (seq: Sequence, more: number): number {
    const { request } = seq
    const context = request.contextLength ?? this.#model.info.contextLength
    const tokens = seq.tokens.length + more
    return Math.max(0, Math.min(context - request.prompt.length - tokens, request.maxTokens >= 0 ? request.maxTokens - tokens : Infinity))
  }

  /** Held-back text is emitted again with its token, without `logprob`: the token was reported when it was drawn. */
  #emit (seq: Sequence, text: string, sampled: Sampled): void {
    seq.output.push({ type: 'chunk', chunk: { text, ...sampled } })
  }

  /** `cut` characters of a matched stop string are dropped from the returned text. */
  #complete (seq: Sequence, doneReason: 'stop' | 'length', cut = 0): void {
    if (seq.held !== '') this.#emit(seq, seq.held, { token: seq.tokens[seq.tokens.length - 1] })
    const text = seq.decoder.text
    seq.output.push({
      type: 'done',
      stats: {
        text: cut > 0 ? text.slice(0, stopIndex(text, seq.request.stop)) : text,
        tokens: seq.tokens,
        doneReason,
        promptTokens: seq.request.prompt.length,
        cachedTokens: seq.cachedTokens,
        promptEvalNs: seq.promptEvalNs,
        evalNs: now() - seq.evalStart
      }
    })
    this.#finish(seq)
  }

  #finish (seq: Sequence, err?: Error): void {
    if (seq.done) return
    seq.done = true
    seq.failed = err != null
    seq.unlisten()
    seq.output.end(err)
  }
}

/** Where the first stop string begins, or -1. */
function firstStop (text: string, stops: string[]): number {
  let first = -1
  for (const s of stops) {
    const at = s === '' ? -1 : text.indexOf(s)
    if (at >= 0 && (first < 0 || at < first)) first = at
  }
  return first
}

function stopIndex (text: string, stops: string[]): number {
  const at = firstStop(text, stops)
  return at < 0 ? text.length : at
}

/** Length of the longest end of `text` that begins some stop string. */
function heldBack (text: string, stops: string[]): number {
  let keep = 0
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > keep; n--) {
      if (text.endsWith(s.slice(0, n))) {
        keep = n
        break
      }
    }
  }
  return keep
}
