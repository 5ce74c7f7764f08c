/**
 * The second engine: a GGUF model run by llama.cpp, behind the same Decoder
 * interface as an ONNX causal LM. llama.cpp computes each step's logits for
 * all the batch's sequences in one decode (its sequences in one context), in
 * a thread of its own per model (llama-thread.ts) that calls its C API;
 * node-llama-cpp finds and loads the library, its build for this machine or
 * its prebuilt binaries. Sampling, constraints, stop strings and streaming
 * stay the Batcher's, so that every option and the structured-output
 * guarantee are the same on both engines; only a greedy row's token is
 * llama.cpp's own pick. The tokenizer and chat template come from the file's
 * metadata, through the same TextCodec as an ONNX model's.
 */
import { readFile, stat } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { configOf, hfTokenizer, readGguf, summarize } from '@node-daemon/gguf'
import { InvalidModelError, UnsupportedModelError } from './errors.ts'
import { GGUF_FILE } from './files.ts'
import { LlamaThread } from './llama-thread.ts'
import { SMALL_MODEL_BYTES } from './model.ts'
import { sharedLength } from './prefix-cache.ts'
import { TextCodec } from './text.ts'
import type { GgufFile, GgufSummary } from '@node-daemon/gguf'
import type { Decoder, DecoderCache } from './decoder.ts'
import type { LlamaSequence } from './llama-thread.ts'
import type { Engine, LoadOptions, ModelInfo } from './model.ts'
import type { Llama } from 'node-llama-cpp'

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
  rows: LlamaSequence[]
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
  const { contextSize, sequences, threads } = ggufContextOptions(size, summary.contextLength, { ...options, mathCores: lib.cpuMathCores })
  // The weights stay in the file, mapped, in the page cache rather than in the heap: llama.cpp's default.
  const thread = await LlamaThread.start({ dir: await libraryDir(), path, contextSize, sequences, threads, stopIds: [...codec.stopIds] }, options.signal).catch((err: Error) => {
    throw err.name === 'LlamaThreadError' ? new UnsupportedModelError(`${GGUF_FILE}: ${err.message}`) : err
  })
  const info: ModelInfo = {
    kind: 'causal-lm',
    family: summary.architecture,
    executionProvider: 'cpu',
    engine: engineOf(lib),
    size,
    parameters: summary.parameters,
    quantization: summary.quantization,
    contextLength: Math.min(contextSize, thread.sequenceSize),
    config: { ...configOf(file), vocab_size: vocabSize },
    generation: {}
  }
  return new GgufLM(thread, codec, info, vocabSize)
}

let library: Promise<string> | undefined

/**
 * The directory of the llama.cpp node-llama-cpp loaded in this process (its
 * build for this machine, or its prebuilt binaries): a model's thread calls
 * the same libllama, whose backends node-llama-cpp has loaded.
 */
async function libraryDir (): Promise<string> {
  library ??= (async () => {
    await runtime()
    const maps = await readFile('/proc/self/maps', 'utf8').catch(() => '')
    const addon = maps.split('\n').find(line => line.endsWith('/llama-addon.node'))
    if (addon == null) throw new UnsupportedModelError(`${GGUF_FILE}: cannot find the llama.cpp node-llama-cpp loaded (Linux only)`)
    return dirname(addon.slice(addon.indexOf('/')))
  })()
  return library
}

/** A GGUF causal LM in a llama.cpp context, in a thread of its own, whose sequences are the rows of the batch. */
export class GgufLM implements Decoder<GgufCache> {
  readonly kind = 'causal-lm'
  readonly codec: TextCodec
  readonly info: ModelInfo
  readonly #thread: LlamaThread
  readonly #vocabSize: number
  /** Sequences never used, taken before any idle one is cut. */
  readonly #unused: LlamaSequence[]
  /**
   * Sequences no batch holds, least recently used first, each still holding
   * its tokens' keys and values: a prompt that begins as one of them did is
   * evaluated only past the shared prefix, as llama.cpp's server reuses a
   * slot's cache.
   */
  #idle: LlamaSequence[] = []

  constructor (thread: LlamaThread, codec: TextCodec, info: ModelInfo, vocabSize: number) {
    this.#thread = thread
    this.codec = codec
    this.info = info
    this.#vocabSize = vocabSize
    this.#unused = [...thread.sequences].reverse()
  }

  /** The llama.cpp context: its batch, its work so far, and how many positions a sequence's cells hold (tokens computed ahead included). */
  get context (): Pick<LlamaThread, 'batchSize' | 'vocabSize' | 'evaluated' | 'cells'> {
    return this.#thread
  }

  async forward (rows: number[][], cache?: GgufCache, signal?: AbortSignal): Promise<{ logits: Float32Array[], cache: GgufCache }> {
    const { next, cache: grown } = await this.#step(rows, rows.map(() => false), cache, signal)
    return { logits: next as Float32Array[], cache: grown }
  }

  /** A greedy row's token is llama.cpp's own pick, computed ahead of the step that asks for it: its logits never cross to JavaScript. */
  async forwardGreedy (rows: number[][], greedy: boolean[], cache?: GgufCache, signal?: AbortSignal, room?: number[]): Promise<{ next: Array<Float32Array | number>, cache: GgufCache }> {
    return this.#step(rows, greedy, cache, signal, room)
  }

  async #step (rows: number[][], greedy: boolean[], cache?: GgufCache, signal?: AbortSignal, room?: number[]): Promise<{ next: Array<Float32Array | number>, cache: GgufCache }> {
    signal?.throwIfAborted()
    const taken: LlamaSequence[] = []
    try {
      const sequences = cache?.rows ?? rows.map(prompt => {
        const s = this.#sequenceFor(prompt)
        taken.push(s.sequence)
        return s
      })
      const kept = sequences.map(s => 'sequence' in s ? s.sequence : s)
      const next: Array<Promise<Float32Array | number>> = []
      const fresh: Array<{ sequence: LlamaSequence, tokens: number[], greedy: boolean, room: number, row: number }> = []
      rows.forEach((row, i) => {
        const s = sequences[i]
        const tokens = 'sequence' in s ? row.slice(s.reused) : row
        const left = room?.[i] ?? Infinity
        const ahead = greedy[i] && tokens.length === 1 ? this.#thread.next(kept[i], tokens[0], left) : undefined
        if (ahead != null) {
          next[i] = ahead
          return
        }
        this.#thread.drop(kept[i])
        fresh.push({ sequence: kept[i], tokens, greedy: greedy[i], room: left, row: i })
      })
      // The rows not computed ahead, evaluated together: one llama.cpp batch.
      if (fresh.length > 0) {
        const evaluated = this.#thread.decode(fresh)
        fresh.forEach((e, j) => { next[e.row] = evaluated.then(out => typeof out[j] === 'number' ? out[j] : this.#logits(out[j])) })
      }
      return { next: await Promise.all(next), cache: this.#cache(kept) }
    } catch (err) {
      this.#retire(taken)
      throw err
    }
  }

  /** A row of llama.cpp's logits, as long as the file's vocabulary. */
  #logits (row: Float32Array): Float32Array {
    if (row.length === this.#vocabSize) return row
    const logits = new Float32Array(this.#vocabSize).fill(-Infinity)
    logits.set(row.subarray(0, this.#vocabSize))
    return logits
  }

  /** Sequences no batch holds any more stop running ahead and become idle. */
  #retire (sequences: LlamaSequence[]): void {
    for (const sequence of sequences) this.#thread.drop(sequence)
    this.#idle.push(...sequences)
  }

  /** An idle sequence with the longest prefix of `prompt`, cut to it; else an unused one, or the least recently used. */
  #sequenceFor (prompt: number[]): { sequence: LlamaSequence, reused: number } {
    let best = -1
    let shared = 0
    this.#idle.forEach((s, i) => {
      const n = s.failed != null ? 0 : sharedLength(s.tokens, prompt, prompt.length - 1)
      if (n > shared || best < 0) {
        best = i
        shared = n
      }
    })
    let sequence: LlamaSequence
    if (this.#unused.length > 0 && shared === 0) {
      sequence = this.#unused.pop() as LlamaSequence
    } else if (best >= 0) {
      sequence = this.#idle.splice(best, 1)[0]
    } else {
      throw new Error('no llama.cpp sequence is free: the batch is larger than the context has sequences')
    }
    this.#thread.cut(sequence, shared)
    return { sequence, reused: shared }
  }

  /** The rows' lengths as the batcher knows them: without the tokens computed ahead. */
  #cache (rows: LlamaSequence[]): GgufCache {
    const lengths = rows.map(s => s.tokens.length)
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
    await this.#thread.release()
  }
}
