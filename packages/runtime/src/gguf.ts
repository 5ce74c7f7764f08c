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
import { getLlama, LlamaLogLevel } from 'node-llama-cpp'
import { InvalidModelError, UnsupportedModelError } from './errors.ts'
import { sharedLength } from './prefix-cache.ts'
import { TextCodec } from './text.ts'
import type { Decoder, DecoderCache } from './decoder.ts'
import type { LoadOptions, ModelInfo } from './model.ts'
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp'

/** The file a GGUF model directory holds its weights in. */
export const GGUF_FILE = 'model.gguf'

/** A GGUF model's context per sequence when its trained one is longer: each of the context's sequences holds this many positions. */
const MAX_SEQUENCE_CONTEXT = 4096

/** Below this size, one thread decodes fastest: several spin-wait for each other on a busy machine (300× slower on the default model). */
const SMALL_MODEL_BYTES = 64 * 1_048_576

let llama: Promise<Llama> | undefined

/** llama.cpp, loaded once per process from the prebuilt binaries: never built, never downloaded. */
async function runtime (): Promise<Llama> {
  llama ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
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

export async function loadGguf (dir: string, options: GgufLoadOptions = {}): Promise<GgufLM> {
  const path = join(dir, GGUF_FILE)
  const file = await readGguf(path).catch((err: Error) => {
    throw new InvalidModelError(`${GGUF_FILE}: ${err.name === 'GgufFormatError' ? err.message : 'cannot be read'}`)
  })
  const summary = summarize(file)
  let codec: TextCodec
  try {
    const tokenizer = hfTokenizer(file.metadata)
    codec = new TextCodec(tokenizer.tokenizerJson, tokenizer.tokenizerConfig, tokenizer.eosIds)
  } catch (err: any) {
    throw new UnsupportedModelError(`${GGUF_FILE}: ${err.message}`)
  }
  const tokens = file.metadata['tokenizer.ggml.tokens']
  const vocabSize = Array.isArray(tokens) ? tokens.length : codec.vocabSize
  const size = (await stat(path)).size
  options.signal?.throwIfAborted()
  const lib = await runtime()
  const model = await lib.loadModel({ modelPath: path, useMmap: true }) // the weights stay in the file, in the page cache, rather than in the heap
  const contextLength = Math.min(summary.contextLength ?? MAX_SEQUENCE_CONTEXT, MAX_SEQUENCE_CONTEXT)
  let context: LlamaContext
  try {
    context = await model.createContext({
      contextSize: contextLength,
      sequences: options.sequences ?? 16,
      threads: options.threads ?? (size < SMALL_MODEL_BYTES ? 1 : 0)
    })
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
        return this.#evaluate(sequence, tokens, greedy[i])
      }))
      const kept = sequences.map(s => 'sequence' in s ? s.sequence : s)
      return { next, cache: this.#cache(kept) }
    } catch (err) {
      this.#idle.push(...taken)
      throw err
    }
  }

  /** An idle sequence with the longest prefix of `prompt`, cut to it; else a new one, or the least recently used. */
  async #sequenceFor (prompt: number[]): Promise<{ sequence: LlamaContextSequence, reused: number }> {
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

  /** The row's logits; greedy, its argmax as llama.cpp's greedy sampler (no other in its chain: temperature 0, no penalties) picks it, the first of equals. */
  async #evaluate (sequence: LlamaContextSequence, tokens: number[], greedy: boolean): Promise<Float32Array | number> {
    const last = tokens.length - 1
    const generateNext = greedy ? { token: true, options: { temperature: 0 } } : { logits: true }
    const input = tokens.map((t, i) => i === last ? [t as Token, { generateNext }] as const : t as Token)
    const out = await sequence.controlledEvaluate(input as Parameters<LlamaContextSequence['controlledEvaluate']>[0])
    const next = out[last]?.next
    if (greedy) {
      if (next?.token == null) throw new Error('llama.cpp picked no token')
      return next.token
    }
    const map = next?.logits
    if (map == null) throw new Error('llama.cpp returned no logits')
    const logits = new Float32Array(this.#vocabSize).fill(-Infinity)
    for (const [token, logit] of map) if (token < logits.length) logits[token] = logit
    return logits
  }

  #cache (rows: LlamaContextSequence[]): GgufCache {
    const length = Math.max(0, ...rows.map(s => s.nextTokenIndex))
    return { rows, length, pads: rows.map(s => length - s.nextTokenIndex) }
  }

  /** llama.cpp's sequences cannot be copied: the rows move, and those left out become idle. */
  regroup (parts: Array<{ cache: GgufCache, rows: number[] }>): GgufCache {
    const kept = parts.flatMap(({ cache, rows }) => rows.map(r => cache.rows[r]))
    for (const { cache } of parts) this.#idle.push(...cache.rows.filter(s => !kept.includes(s)))
    return this.#cache(kept)
  }

  free (cache: GgufCache): void {
    this.#idle.push(...cache.rows)
  }

  /** The batcher's prefix cache copies rows apart from their batch, which llama.cpp cannot: the idle sequences serve instead. */
  cacheBytes (): number {
    return Infinity
  }

  async release (): Promise<void> {
    await this.#context.dispose()
    await this.#model.dispose()
  }
}
