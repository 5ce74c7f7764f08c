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
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { configOf, hfTokenizer, readGguf, summarize } from '@node-daemon/gguf'
import { InvalidModelError, UnsupportedModelError } from './errors.ts'
import { GGUF_FILE } from './files.ts'
import { SMALL_MODEL_BYTES } from './model.ts'
import { sharedLength } from './prefix-cache.ts'
import { TextCodec } from './text.ts'
import type { GgufFile, GgufSummary } from '@node-daemon/gguf'
import type { Decoder, DecoderCache } from './decoder.ts'
import type { Engine, LoadOptions, ModelInfo } from './model.ts'
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp'

/** A GGUF model's context per sequence when its trained one is longer: each of the context's sequences holds this many positions. */
const MAX_SEQUENCE_CONTEXT = 4096

let llama: Promise<Llama> | undefined

/**
 * llama.cpp, loaded once per process, which the daemon never builds or downloads:
 * node-llama-cpp loads a build of its own for this machine when one was made
 * (see LlamaBuild), else its prebuilt binaries. node-llama-cpp (about 750
 * modules with its downloader) is imported at the first GGUF model, so a node
 * that runs none keeps it out of its heap, where every full collection would
 * mark it.
 */
export async function runtime (): Promise<Llama> {
  llama ??= import('node-llama-cpp').then(async ({ getLlama, LlamaLogLevel }) => getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error }))
  return llama
}

/**
 * Which llama.cpp binaries run GGUF models: node-llama-cpp's prebuilt ones,
 * made for any CPU of a family, or a build for this machine, which
 * `npx --no node-llama-cpp source download --gpu false` compiles offline from
 * the llama.cpp source node-llama-cpp ships (cmake and a C++ compiler, a few
 * minutes) and node-llama-cpp loads from then on. On this project's two-core
 * test machine (AMD EPYC, AVX-512) llama.cpp's decode call on the default
 * model took 1.5 to 2 times as long in the prebuilt binaries.
 */
export type LlamaBuild = 'built here' | 'prebuilt'

export function engineOf (lib: Llama): Engine {
  return `llama.cpp (${lib.buildType === 'localBuild' ? 'built here' : 'prebuilt'})`
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
 * context is `trained` positions, on a machine with `mathCores` cores that
 * are useful for math (node-llama-cpp's `cpuMathCores`): what a bare
 * llama.cpp loop must take to be compared with the runtime's.
 */
export function ggufContextOptions (size: number, trained: number | undefined, options: { sequences?: number, threads?: number, mathCores?: number } = {}): { contextSize: number, sequences: number, threads: number } {
  return {
    contextSize: Math.min(trained ?? MAX_SEQUENCE_CONTEXT, MAX_SEQUENCE_CONTEXT),
    sequences: options.sequences ?? 16,
    // A small model on several threads spin-waits for them on a busy machine: 300x slower on the default model.
    threads: options.threads ?? (size < SMALL_MODEL_BYTES ? 1 : largeModelThreads(options.mathCores ?? availableParallelism()))
  }
}

/**
 * llama.cpp's threads meet at a barrier after every operation of a step, and
 * wait there for any of them the event loop (HTTP, Raft) took the core of.
 * On two cores, a 356 MB model decoded 33 to 40 tokens/s on two threads,
 * with 38 to 43 ms of CPU a token, against 66 to 71 tokens/s and 14.5 ms on
 * one. So one core is left to the event loop.
 */
function largeModelThreads (mathCores: number): number {
  return Math.max(1, Math.min(mathCores, availableParallelism() - 1))
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
  const contextOptions = ggufContextOptions(size, summary.contextLength, { ...options, mathCores: lib.cpuMathCores })
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
    engine: engineOf(lib),
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
 * What a GgufLM drives of node-llama-cpp below its public API, whose
 * per-token path (a generator, locks, a sampler configured and a batch
 * queued at every token) cost the event loop ~200 µs a token, a fifth of a
 * small model's step: the model batches,
 * decodes and samples through the native context itself, and advances each
 * sequence's record of its tokens as node-llama-cpp's own decodes do, so that
 * its public calls (prefix reuse, erasing) stay right. package.json pins the
 * version these names come from, and loadGguf checks them.
 */
interface NativeContext {
  initBatch (size: number): void
  addToBatch (sequenceId: number, firstTokenSequenceIndex: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array
  decodeBatch (): Promise<void>
  sampleToken (batchLogitIndex: number, sampler: NativeSampler): Promise<number>
  /** With `logits`: the candidates' logits as token, logit pairs in one flat array. */
  sampleToken (batchLogitIndex: number, sampler: NativeSampler, probabilities: false, confidence: false, logits: true): Promise<[number, undefined, undefined, number[] | undefined]>
}
interface NativeSampler {
  applyConfig (config: Record<string, unknown>): void
  dispose (): void
}
type NativeSamplerClass = new (model: unknown) => NativeSampler
/** A sequence's record of what its cells hold, kept by node-llama-cpp. */
interface NativeSequence {
  _sequenceId: number
  _nextTokenIndex: number
  _contextTokens: Token[]
}

const NATIVE_CONTEXT = ['initBatch', 'addToBatch', 'decodeBatch', 'sampleToken'] as const

function nativeSampler (model: LlamaModel): () => NativeSampler {
  const m = model as unknown as { _llama?: { _bindings?: { AddonSampler?: NativeSamplerClass } }, _model?: unknown }
  const Sampler = m._llama?._bindings?.AddonSampler
  if (typeof Sampler !== 'function' || m._model == null) throw new UnsupportedModelError(`${GGUF_FILE}: the installed node-llama-cpp is not the version this runtime drives (no native sampler)`)
  return () => {
    const sampler = new Sampler(m._model)
    // Temperature 0 is llama.cpp's greedy sampler, which also hands over a row's logits unchanged.
    sampler.applyConfig({ temperature: 0 })
    return sampler
  }
}

function nativeContext (context: LlamaContext): NativeContext {
  const ctx = (context as unknown as { _ctx?: Partial<NativeContext> })._ctx
  if (ctx == null || NATIVE_CONTEXT.some(key => typeof ctx[key] !== 'function')) throw new UnsupportedModelError(`${GGUF_FILE}: the installed node-llama-cpp is not the version this runtime drives (no native context)`)
  return ctx as NativeContext
}

function nativeSequence (sequence: LlamaContextSequence): NativeSequence {
  const s = sequence as unknown as Partial<NativeSequence>
  if (typeof s._sequenceId !== 'number' || typeof s._nextTokenIndex !== 'number' || !Array.isArray(s._contextTokens)) throw new UnsupportedModelError(`${GGUF_FILE}: the installed node-llama-cpp is not the version this runtime drives (no sequence record)`)
  return s as NativeSequence
}

/** A row's tokens for one llama.cpp decode, and whether llama.cpp picks its next token (greedy) or hands over its logits. */
interface Evaluation {
  sequence: LlamaContextSequence
  tokens: number[]
  greedy: boolean
}

/**
 * A greedy row's next token, evaluated as soon as it was known so that
 * llama.cpp decodes while the batcher streams it; `known` is the sequence's
 * length without it.
 */
interface Ahead { token: number, next: Promise<number>, known: number }

/** A GGUF causal LM in a llama.cpp context whose sequences are the rows of the batch. */
export class GgufLM implements Decoder<GgufCache> {
  readonly kind = 'causal-lm'
  readonly codec: TextCodec
  readonly info: ModelInfo
  readonly #model: LlamaModel
  readonly #context: LlamaContext
  readonly #vocabSize: number
  readonly #newSampler: () => NativeSampler
  /** One sampler per sequence: llama.cpp's samplers keep scratch state, and a batch's rows sample at once. */
  readonly #samplers = new Map<LlamaContextSequence, NativeSampler>()
  /** A recurrent or hybrid model cannot take a token back but by evaluating its sequence again: it never looks ahead. */
  readonly #canTakeBack: boolean
  /**
   * Sequences no batch holds, least recently used first, each still holding
   * its tokens' keys and values: a prompt that begins as one of them did is
   * evaluated only past the shared prefix, as llama.cpp's server reuses a
   * slot's cache.
   */
  #idle: LlamaContextSequence[] = []
  readonly #aheads = new Map<LlamaContextSequence, Ahead>()
  /** Tokens looked ahead and never asked for, being taken back: their sequence waits for it before it serves another row. */
  readonly #dropping = new Map<LlamaContextSequence, Promise<void>>()
  /** The context's one batch: every use of it waits for the one before. */
  #turn: Promise<unknown> = Promise.resolve()

  constructor (model: LlamaModel, context: LlamaContext, codec: TextCodec, info: ModelInfo, vocabSize: number) {
    this.#model = model
    this.#context = context
    this.codec = codec
    this.info = info
    this.#vocabSize = vocabSize
    // The native names this model drives are checked at load, not at its first token.
    nativeContext(context)
    this.#newSampler = nativeSampler(model)
    this.#canTakeBack = model.fileInsights.isHybrid !== true && model.fileInsights.isRecurrent !== true
  }

  async forward (rows: number[][], cache?: GgufCache, signal?: AbortSignal): Promise<{ logits: Float32Array[], cache: GgufCache }> {
    const { next, cache: grown } = await this.#step(rows, rows.map(() => false), cache, signal)
    return { logits: next as Float32Array[], cache: grown }
  }

  /** A greedy row's token is llama.cpp's own pick: its logits never cross to JavaScript. */
  async forwardGreedy (rows: number[][], greedy: boolean[], cache?: GgufCache, signal?: AbortSignal, ending?: boolean[]): Promise<{ next: Array<Float32Array | number>, cache: GgufCache }> {
    return this.#step(rows, greedy, cache, signal, ending)
  }

  async #step (rows: number[][], greedy: boolean[], cache?: GgufCache, signal?: AbortSignal, ending?: boolean[]): Promise<{ next: Array<Float32Array | number>, cache: GgufCache }> {
    signal?.throwIfAborted()
    const taken: LlamaContextSequence[] = []
    try {
      const sequences = cache?.rows ?? await Promise.all(rows.map(async prompt => {
        const s = await this.#sequenceFor(prompt)
        taken.push(s.sequence)
        return s
      }))
      const kept = sequences.map(s => 'sequence' in s ? s.sequence : s)
      const next: Array<Promise<Float32Array | number>> = []
      const fresh: Array<Evaluation & { row: number }> = []
      await Promise.all(rows.map(async (row, i) => {
        const s = sequences[i]
        const tokens = 'sequence' in s ? row.slice(s.reused) : row
        const ahead = this.#aheads.get(kept[i])
        if (greedy[i] && ahead != null && tokens.length === 1 && tokens[0] === ahead.token) {
          this.#aheads.delete(kept[i])
          next[i] = ahead.next
          return
        }
        await this.#dropAhead(kept[i])
        fresh.push({ sequence: kept[i], tokens, greedy: greedy[i], row: i })
      }))
      // The rows not looked ahead, evaluated together: one llama.cpp batch.
      if (fresh.length > 0) {
        const evaluated = this.#decode(fresh)
        fresh.forEach((e, j) => { next[e.row] = evaluated.then(out => out[j]) })
      }
      const picked = await Promise.all(next)
      const grown = this.#cache(kept)
      // A row's last token is never evaluated: looked ahead, it would hold up the next request's prefill for a step.
      this.#lookAhead(kept.flatMap((sequence, i) => greedy[i] && ending?.[i] !== true ? [{ sequence, token: picked[i] as number }] : []))
      return { next: picked, cache: grown }
    } catch (err) {
      this.#retire(taken)
      throw err
    }
  }

  /**
   * Starts evaluating each greedy row's new token now, together (one
   * llama.cpp batch), so that it overlaps the batcher's work on this step's
   * tokens; not a token that ends its row, nor one that would fill the
   * sequence.
   */
  #lookAhead (rows: Array<{ sequence: LlamaContextSequence, token: number }>): void {
    if (!this.#canTakeBack) return
    const ahead = rows.filter(({ sequence, token }) => !this.codec.stopIds.has(token) && sequence.nextTokenIndex + 1 < sequence.contextSize)
    if (ahead.length === 0) return
    const known = ahead.map(({ sequence }) => sequence.nextTokenIndex)
    const evaluated = this.#decode(ahead.map(({ sequence, token }) => ({ sequence, tokens: [token], greedy: true })))
    ahead.forEach(({ sequence, token }, j) => {
      const next = evaluated.then(out => out[j] as number)
      // A failed look-ahead fails the step that takes it; unasked for, it is only dropped.
      next.catch(() => {})
      this.#aheads.set(sequence, { token, next, known: known[j] })
    })
  }

  /** Takes back the token the row looked ahead, if it has one. */
  async #dropAhead (sequence: LlamaContextSequence): Promise<void> {
    await this.#dropping.get(sequence)
    const ahead = this.#aheads.get(sequence)
    if (ahead == null) return
    this.#aheads.delete(sequence)
    // A failed decode cleared its sequences already.
    if (!await ahead.next.then(() => true, () => false)) return
    await this.#exclusive(async () => sequence.eraseContextTokenRanges([{ start: ahead.known, end: sequence.nextTokenIndex }]))
  }

  /**
   * Evaluates the rows' tokens in one llama.cpp batch (several, when they
   * are more than the context's batch size): a greedy row's next token as
   * llama.cpp's argmax picks it, another row's logits.
   */
  async #decode (rows: Evaluation[]): Promise<Array<number | Float32Array>> {
    return this.#exclusive(async () => {
      const native = nativeContext(this.#context)
      const states = rows.map(({ sequence, tokens }) => {
        const state = nativeSequence(sequence)
        // node-llama-cpp would shift the context to make room; the batcher never sends a row past its context length.
        if (state._nextTokenIndex + tokens.length >= sequence.contextSize) throw new Error(`a row of ${state._nextTokenIndex + tokens.length} tokens does not fit its llama.cpp sequence of ${sequence.contextSize}`)
        return state
      })
      const out: Array<number | Float32Array> = []
      const done = rows.map(() => 0)
      let row = 0
      try {
        while (row < rows.length) {
          let room = Math.min(this.#context.batchSize, rows.reduce((n, r, j) => n + r.tokens.length - done[j], 0))
          native.initBatch(room)
          // Rows whose last piece is in this batch, and where their logits are.
          const sampled: Array<{ row: number, index: number }> = []
          while (row < rows.length && room > 0) {
            const { tokens } = rows[row]
            const state = states[row]
            const n = Math.min(room, tokens.length - done[row])
            const piece = tokens.slice(done[row], done[row] + n)
            const last = done[row] + n === tokens.length
            const [index] = native.addToBatch(state._sequenceId, state._nextTokenIndex, Uint32Array.from(piece), last ? Uint32Array.of(n - 1) : new Uint32Array(0))
            state._nextTokenIndex += n
            for (const t of piece) state._contextTokens.push(t as Token)
            done[row] += n
            room -= n
            // Not the row's last piece: the batch is full.
            if (!last) break
            sampled.push({ row, index })
            row++
          }
          await native.decodeBatch()
          // A decode's logits last until the next one: its rows sample now.
          await Promise.all(sampled.map(async ({ row, index }) => { out[row] = await this.#sample(native, rows[row], index) }))
        }
      } catch (err) {
        // What the rows' cells hold is unknown: they are emptied, as a new sequence.
        await Promise.all(rows.map(async ({ sequence }) => sequence.clearHistory().catch(() => {})))
        throw err
      }
      return out
    })
  }

  async #sample (native: NativeContext, row: Evaluation, index: number): Promise<number | Float32Array> {
    let sampler = this.#samplers.get(row.sequence)
    if (sampler == null) {
      sampler = this.#newSampler()
      this.#samplers.set(row.sequence, sampler)
    }
    if (row.greedy) {
      const token = await native.sampleToken(index, sampler)
      if (token < 0) throw new Error('llama.cpp picked no token')
      return token
    }
    const pairs = (await native.sampleToken(index, sampler, false, false, true))[3]
    if (pairs == null) throw new Error('llama.cpp returned no logits')
    const logits = new Float32Array(this.#vocabSize).fill(-Infinity)
    for (let i = 1; i < pairs.length; i += 2) if (pairs[i - 1] < logits.length) logits[pairs[i - 1]] = pairs[i]
    return logits
  }

  /** Runs `work` once every earlier use of the context's batch is over. */
  async #exclusive<T> (work: () => Promise<T>): Promise<T> {
    const run = this.#turn.then(work)
    this.#turn = run.catch(() => {})
    return run
  }

  /** Sequences no batch holds any more become idle once their looked-ahead tokens are taken back. */
  #retire (sequences: LlamaContextSequence[]): void {
    for (const sequence of sequences) {
      if (!this.#aheads.has(sequence)) continue
      const dropping = this.#dropAhead(sequence).catch(() => {}).finally(() => { this.#dropping.delete(sequence) })
      this.#dropping.set(sequence, dropping)
    }
    this.#idle.push(...sequences)
  }

  /** An idle sequence with the longest prefix of `prompt`, cut to it; else a new one, or the least recently used. */
  async #sequenceFor (prompt: number[]): Promise<{ sequence: LlamaContextSequence, reused: number }> {
    // Idle sequences hold their rows' tokens only once their looked-ahead ones are taken back.
    await Promise.all(this.#dropping.values())
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
      nativeSequence(sequence)
    } else if (best >= 0) {
      sequence = this.#idle.splice(best, 1)[0]
    } else {
      throw new Error('no llama.cpp sequence is free: the batch is larger than the context has sequences')
    }
    if (sequence.nextTokenIndex > shared) await this.#exclusive(async () => sequence.eraseContextTokenRanges([{ start: shared, end: sequence.nextTokenIndex }]))
    return { sequence, reused: shared }
  }

  /** The rows' lengths as the batcher knows them: without a token looked ahead. */
  #cache (rows: LlamaContextSequence[]): GgufCache {
    const lengths = rows.map(s => this.#aheads.get(s)?.known ?? s.nextTokenIndex)
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
    await Promise.all([...this.#aheads.keys()].map(async s => this.#dropAhead(s).catch(() => {})))
    await this.#turn
    for (const sampler of this.#samplers.values()) sampler.dispose()
    this.#samplers.clear()
    await this.#context.dispose()
    await this.#model.dispose()
  }
}
