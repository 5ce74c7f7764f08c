/**
 * The second engine: a GGUF model run by llama.cpp (node-llama-cpp's
 * prebuilt binaries), behind the same Decoder interface as an ONNX causal
 * LM. llama.cpp computes each step's logits for all the batch's sequences
 * in one decode (its sequences in one context); sampling, constraints, stop
 * strings and streaming stay the Batcher's, so that every option and the
 * structured-output guarantee are the same on both engines. The tokenizer
 * and chat template come from the file's metadata, through the same
 * TextCodec as an ONNX model's.
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { configOf, hfTokenizer, readGguf, summarize } from '@node-daemon/gguf'
import { InvalidModelError, UnsupportedModelError } from './errors.ts'
import { GGUF_FILE } from './files.ts'
import { SMALL_MODEL_BYTES } from './model.ts'
import { sharedLength } from './prefix-cache.ts'
import { TextCodec } from './text.ts'
import type { GgufFile, GgufSummary } from '@node-daemon/gguf'
import type { Decoder, DecoderCache } from './decoder.ts'
import type { LoadOptions, ModelInfo } from './model.ts'
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp'

/** A GGUF model's context per sequence when its trained one is longer: each of the context's sequences holds this many positions. */
const MAX_SEQUENCE_CONTEXT = 4096

let llama: Promise<Llama> | undefined

/**
 * llama.cpp, loaded once per process from the prebuilt binaries: never built,
 * never downloaded. node-llama-cpp (about 750 modules with its downloader) is
 * imported at the first GGUF model, so a node that runs none keeps it out of
 * its heap, where every full collection would mark it.
 */
export async function runtime (): Promise<Llama> {
  llama ??= import('node-llama-cpp').then(async ({ getLlama, LlamaLogLevel }) => getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error }))
  return llama
}

export async function isGgufModel (dir: string): Promise<boolean> {
  return stat(join(dir, GGUF_FILE)).then(s => s.isFile(), () => false)
}

/** The rows of a batch: one llama.cpp sequence each, holding that row's tokens. */
export interface GgufCache extends DecoderCache {
  rows: LlamaContextSequence[]
}

export interface GgufLoadOptions extends LoadOptions {
  /** Sequences decoding together, the Batcher's maxBatch. */
  sequences?: number
}

/**
 * The llama.cpp context a GGUF file of `size` bytes gets, whose trained
 * context is `trained` positions: what a bare llama.cpp loop must take to be
 * compared with the runtime's.
 */
export function ggufContextOptions (size: number, trained: number | undefined, options: { sequences?: number, threads?: number } = {}): { contextSize: number, sequences: number, threads: number, batching: { dispatchSchedule: (dispatch: () => void) => void } } {
  return {
    contextSize: Math.min(trained ?? MAX_SEQUENCE_CONTEXT, MAX_SEQUENCE_CONTEXT),
    sequences: options.sequences ?? 16,
    // A small model on several threads spin-waits for them on a busy machine: 300x slower on the default model.
    threads: options.threads ?? (size < SMALL_MODEL_BYTES ? 1 : 0),
    batching: { dispatchSchedule: dispatchAfterQueued }
  }
}

/**
 * node-llama-cpp gathers the evaluations queued before a batch goes out; by
 * default it sends the batch at the next turn of the event loop, behind
 * whatever the process does meanwhile (a stream's HTTP writes, in a daemon).
 * The rows of one step queue theirs in the same round of promise jobs, so
 * the batch goes out once that round has run.
 */
function dispatchAfterQueued (dispatch: () => void): void {
  queueMicrotask(dispatch)
}

/**
 * node-llama-cpp asks its native binding whether the model's architecture is
 * hybrid or recurrent after every decoded batch, to know whether to take a
 * checkpoint; on a small model those two lookups were a tenth of the event
 * loop's work per token. A loaded file's architecture never changes: the
 * answers are kept on the model's insights.
 */
function keepArchitectureKind (model: LlamaModel): void {
  const insights = model.fileInsights
  for (const key of ['isHybrid', 'isRecurrent'] as const) Object.defineProperty(insights, key, { value: insights[key] })
}

/** What a GGUF model's header tells, read before llama.cpp loads it: the metadata, and the tokenizer as the TextCodec takes it. */
export interface GgufHeader {
  path: string
  file: GgufFile
  summary: GgufSummary
  codec: TextCodec
  vocabSize: number
  /** Bytes of the file. */
  size: number
}

export async function readGgufHeader (dir: string): Promise<GgufHeader> {
  const path = join(dir, GGUF_FILE)
  const file = await readGguf(path).catch((err: Error) => {
    throw new InvalidModelError(`${GGUF_FILE}: ${err.name === 'GgufFormatError' ? err.message : 'cannot be read'}`)
  })
  let codec: TextCodec
  try {
    const tokenizer = hfTokenizer(file.metadata)
    codec = new TextCodec(tokenizer.tokenizerJson, tokenizer.tokenizerConfig, tokenizer.eosIds)
  } catch (err: any) {
    throw new UnsupportedModelError(`${GGUF_FILE}: ${err.message}`)
  }
  const tokens = file.metadata['tokenizer.ggml.tokens']
  const vocabSize = Array.isArray(tokens) ? tokens.length : codec.vocabSize
  return { path, file, summary: summarize(file), codec, vocabSize, size: (await stat(path)).size }
}

export async function loadGguf (dir: string, options: GgufLoadOptions = {}, header?: GgufHeader): Promise<GgufLM> {
  const { path, file, summary, codec, vocabSize, size } = header ?? await readGgufHeader(dir)
  options.signal?.throwIfAborted()
  const lib = await runtime()
  const model = await lib.loadModel({ modelPath: path, useMmap: true }) // the weights stay in the file, in the page cache, rather than in the heap
  keepArchitectureKind(model)
  const contextOptions = ggufContextOptions(size, summary.contextLength, options)
  const contextLength = contextOptions.contextSize
  let context: LlamaContext
  try {
    context = await model.createContext(contextOptions)
  } catch (err) {
    await model.dispose()
    throw err
  }
  const info: ModelInfo = {
    kind: 'causal-lm',
    family: summary.architecture,
    executionProvider: 'cpu',
    size,
    parameters: summary.parameters,
    quantization: summary.quantization,
    contextLength: Math.min(contextLength, context.contextSize),
    config: { ...configOf(file), vocab_size: vocabSize },
    generation: {}
  }
  return new GgufLM(model, context, codec, info, vocabSize)
}

/**
 * A greedy row's decoding as llama.cpp's own loop runs it: one sampler for
 * the row's life (node-llama-cpp's evaluate), where a controlled evaluation
 * would make and free one at each token.
 */
interface GreedyLoop {
  steps: AsyncGenerator<Token, void, void | Token | Token[]>
  /**
   * The evaluation of the token last returned, started as soon as it was
   * known, so that llama.cpp decodes while the batcher streams the token;
   * `known` is the sequence's length without it.
   */
  ahead?: { token: number, next: Promise<IteratorResult<Token, void>>, known: number }
}

/** A GGUF causal LM in a llama.cpp context whose sequences are the rows of the batch. */
export class GgufLM implements Decoder<GgufCache> {
  readonly kind = 'causal-lm'
  readonly codec: TextCodec
  readonly info: ModelInfo
  readonly #model: LlamaModel
  readonly #context: LlamaContext
  readonly #vocabSize: number
  /**
   * Sequences no batch holds, least recently used first, each still holding
   * its tokens' keys and values: a prompt that begins as one of them did is
   * evaluated only past the shared prefix, as llama.cpp's server reuses a
   * slot's cache.
   */
  #idle: LlamaContextSequence[] = []
  readonly #loops = new Map<LlamaContextSequence, GreedyLoop>()
  /** Loops being ended, which their sequence waits for before it serves another row. */
  readonly #ending = new Map<LlamaContextSequence, Promise<void>>()

  constructor (model: LlamaModel, context: LlamaContext, codec: TextCodec, info: ModelInfo, vocabSize: number) {
    this.#model = model
    this.#context = context
    this.codec = codec
    this.info = info
    this.#vocabSize = vocabSize
  }

  async forward (rows: number[][], cache?: GgufCache, signal?: AbortSignal): Promise<{ logits: Float32Array[], cache: GgufCache }> {
    const { next, cache: grown } = await this.#step(rows, rows.map(() => false), cache, signal)
    return { logits: next as Float32Array[], cache: grown }
  }

  /** A greedy row's token is llama.cpp's own pick: its logits never cross to JavaScript, where node-llama-cpp would hand them over as a Map sorted by logit. */
  async forwardGreedy (rows: number[][], greedy: boolean[], cache?: GgufCache, signal?: AbortSignal): Promise<{ next: Array<Float32Array | number>, cache: GgufCache }> {
    return this.#step(rows, greedy, cache, signal)
  }

  async #step (rows: number[][], greedy: boolean[], cache?: GgufCache, signal?: AbortSignal): Promise<{ next: Array<Float32Array | number>, cache: GgufCache }> {
    signal?.throwIfAborted()
    const taken: LlamaContextSequence[] = []
    try {
      const sequences = cache?.rows ?? await Promise.all(rows.map(async prompt => {
        const s = await this.#sequenceFor(prompt)
        taken.push(s.sequence)
        return s
      }))
      // Evaluated together: node-llama-cpp puts the evaluations of one tick into one llama.cpp batch.
      const next = await Promise.all(rows.map(async (row, i) => {
        const s = sequences[i]
        const [sequence, tokens] = 'sequence' in s ? [s.sequence, row.slice(s.reused)] : [s, row]
        return greedy[i] ? this.#greedy(sequence, tokens) : this.#evaluate(sequence, tokens)
      }))
      const kept = sequences.map(s => 'sequence' in s ? s.sequence : s)
      const grown = this.#cache(kept)
      // The greedy rows' next step starts now, together (one llama.cpp batch), so that it overlaps the batcher's work on this one's tokens.
      kept.forEach((sequence, i) => { if (greedy[i]) this.#lookAhead(sequence, next[i] as number) })
      return { next, cache: grown }
    } catch (err) {
      this.#retire(taken)
      throw err
    }
  }

  /** The row's next token, llama.cpp's argmax; from the step looked ahead when the batcher asks for the token that step evaluates, as it does. */
  async #greedy (sequence: LlamaContextSequence, tokens: number[]): Promise<number> {
    const loop = this.#loops.get(sequence)
    const ahead = loop?.ahead
    let step: IteratorResult<Token, void>
    if (loop != null && ahead != null && tokens.length === 1 && tokens[0] === ahead.token) {
      loop.ahead = undefined
      step = await ahead.next
    } else {
      await this.#endLoop(sequence)
      const steps = sequence.evaluate(tokens as Token[], { temperature: 0, yieldEogToken: true })
      this.#loops.set(sequence, { steps })
      step = await steps.next()
    }
    if (step.done === true) throw new Error('llama.cpp picked no token')
    return step.value
  }

  /** Starts evaluating `token` on the row's loop, unless it ends the row or the sequence is full (llama.cpp would shift its context). */
  #lookAhead (sequence: LlamaContextSequence, token: number): void {
    const loop = this.#loops.get(sequence)
    if (loop == null || this.codec.stopIds.has(token) || sequence.nextTokenIndex + 1 >= sequence.contextSize) return
    const next = loop.steps.next([token as Token])
    // A failed look-ahead fails the step that takes it; unasked for, it is only dropped.
    next.catch(() => {})
    loop.ahead = { token, next, known: sequence.nextTokenIndex }
  }

  /** Ends the row's greedy loop; a token looked ahead and never asked for leaves the sequence again. */
  async #endLoop (sequence: LlamaContextSequence): Promise<void> {
    await this.#ending.get(sequence)
    const loop = this.#loops.get(sequence)
    if (loop == null) return
    this.#loops.delete(sequence)
    const landed = loop.ahead == null ? false : await loop.ahead.next.then(step => step.done !== true, () => false)
    await loop.steps.return()
    if (landed && loop.ahead != null) await sequence.eraseContextTokenRanges([{ start: loop.ahead.known, end: sequence.nextTokenIndex }])
  }

  /** Sequences no batch holds any more become idle once their loops ended. */
  #retire (sequences: LlamaContextSequence[]): void {
    for (const sequence of sequences) {
      if (!this.#loops.has(sequence)) continue
      const ending = this.#endLoop(sequence).catch(() => {}).finally(() => { this.#ending.delete(sequence) })
      this.#ending.set(sequence, ending)
    }
    this.#idle.push(...sequences)
  }

  /** An idle sequence with the longest prefix of `prompt`, cut to it; else a new one, or the least recently used. */
  async #sequenceFor (prompt: number[]): Promise<{ sequence: LlamaContextSequence, reused: number }> {
    // Idle sequences hold their rows' tokens only once their loops ended.
    await Promise.all(this.#ending.values())
    let best = -1
    let shared = 0
    this.#idle.forEach((s, i) => {
      const n = sharedLength(s.contextTokens, prompt, prompt.length - 1)
      if (n > shared || best < 0) {
        best = i
        shared = n
      }
    })
    let sequence: LlamaContextSequence
    if (this.#context.sequencesLeft > 0 && shared === 0) {
      sequence = this.#context.getSequence()
    } else if (best >= 0) {
      sequence = this.#idle.splice(best, 1)[0]
    } else {
      throw new Error('no llama.cpp sequence is free: the batch is larger than the context has sequences')
    }
    if (sequence.nextTokenIndex > shared) await sequence.eraseContextTokenRanges([{ start: shared, end: sequence.nextTokenIndex }])
    return { sequence, reused: shared }
  }

  /** The row's logits. */
  async #evaluate (sequence: LlamaContextSequence, tokens: number[]): Promise<Float32Array> {
    await this.#endLoop(sequence)
    const last = tokens.length - 1
    const input = tokens.map((t, i) => i === last ? [t as Token, { generateNext: { logits: true } }] as const : t as Token)
    const out = await sequence.controlledEvaluate(input as Parameters<LlamaContextSequence['controlledEvaluate']>[0])
    const map = out[last]?.next?.logits
    if (map == null) throw new Error('llama.cpp returned no logits')
    const logits = new Float32Array(this.#vocabSize).fill(-Infinity)
    for (const [token, logit] of map) if (token < logits.length) logits[token] = logit
    return logits
  }

  /** The rows' lengths as the batcher knows them: without a token looked ahead. */
  #cache (rows: LlamaContextSequence[]): GgufCache {
    const lengths = rows.map(s => this.#loops.get(s)?.ahead?.known ?? s.nextTokenIndex)
    const length = Math.max(0, ...lengths)
    return { rows, length, pads: lengths.map(n => length - n) }
  }

  /** llama.cpp's sequences cannot be copied: the rows move, and those left out become idle. */
  regroup (parts: Array<{ cache: GgufCache, rows: number[] }>): GgufCache {
    const kept = parts.flatMap(({ cache, rows }) => rows.map(r => cache.rows[r]))
    for (const { cache } of parts) this.#retire(cache.rows.filter(s => !kept.includes(s)))
    return this.#cache(kept)
  }

  free (cache: GgufCache): void {
    this.#retire(cache.rows)
  }

  /** The batcher's prefix cache copies rows apart from their batch, which llama.cpp cannot: the idle sequences serve instead. */
  cacheBytes (): number {
    return Infinity
  }

  async release (): Promise<void> {
    await Promise.all([...this.#loops.keys()].map(async s => this.#endLoop(s).catch(() => {})))
    await this.#context.dispose()
    await this.#model.dispose()
  }
}
