/**
 * A GGUF embedding model (BERT, nomic-bert, a decoder with last-token
 * pooling) in llama.cpp's embedding context, behind the same interface as an
 * ONNX Encoder: the Runtime's embed tokenizes with the file's tokenizer
 * through the TextCodec, llama.cpp pools the token states as the file's
 * `<arch>.pooling_type` says, and the embedding is L2-normalized, as the ONNX
 * path normalizes a bare export's.
 */
import { configOf, poolingOf } from '@node-daemon/gguf'
import { UnsupportedModelError } from './errors.ts'
import { GGUF_FILE } from './files.ts'
import { engineOf, runtime } from './gguf.ts'
import { SMALL_MODEL_BYTES } from './model.ts'
import { embeddingTokens, normalizeInPlace } from './model.ts'
import type { GgufHeader } from './gguf.ts'
import type { EmbedInput, InputType, LoadOptions, ModelInfo, SentenceConfig } from './model.ts'
import type { TextCodec } from './text.ts'
import type { LlamaEmbeddingContext, LlamaModel, Token } from 'node-llama-cpp'

/** An embedding model's context when its trained one is longer: inputs past it are cut or refused, as the ONNX path's past their positions. */
const MAX_EMBED_CONTEXT = 8192

/** Whether a GGUF file holds an embedding model rather than one that generates. */
export function isGgufEncoder (header: GgufHeader): boolean {
  return poolingOf(header.file) != null
}

export async function loadGgufEncoder (header: GgufHeader, options: LoadOptions = {}): Promise<GgufEncoder> {
  const { path, file, summary, codec, vocabSize, size } = header
  const pooling = poolingOf(file)
  if (pooling == null || pooling === 'rank') throw new UnsupportedModelError(`${GGUF_FILE}: ${pooling === 'rank' ? 'GGUF rerankers are not supported' : 'not an embedding model'}`)
  options.signal?.throwIfAborted()
  const lib = await runtime()
  const model = await lib.loadModel({ modelPath: path })
  // One ubatch holds a whole input: llama.cpp pools a non-causal model's states within one.
  const contextSize = Math.min(summary.contextLength ?? MAX_EMBED_CONTEXT, MAX_EMBED_CONTEXT)
  let context: LlamaEmbeddingContext
  try {
    context = await model.createEmbeddingContext({ contextSize, batchSize: contextSize, threads: options.threads ?? (size < SMALL_MODEL_BYTES ? 1 : 0) })
  } catch (err) {
    await model.dispose()
    throw err
  }
  const info: ModelInfo = {
    kind: 'encoder',
    family: summary.architecture,
    executionProvider: 'cpu',
    engine: engineOf(lib),
    size,
    parameters: summary.parameters,
    quantization: summary.quantization,
    // node-llama-cpp takes an input shorter than its context only.
    contextLength: contextSize - 1,
    config: { ...configOf(file), vocab_size: vocabSize },
    generation: {}
  }
  return new GgufEncoder(model, context, codec, info, { pooling: [pooling], normalize: true, prefixes: {} })
}

export class GgufEncoder {
  readonly kind = 'encoder'
  readonly codec: TextCodec
  readonly info: ModelInfo
  readonly sentence: SentenceConfig
  readonly dimensions: number
  readonly #model: LlamaModel
  readonly #context: LlamaEmbeddingContext

  constructor (model: LlamaModel, context: LlamaEmbeddingContext, codec: TextCodec, info: ModelInfo, sentence: SentenceConfig) {
    this.#model = model
    this.#context = context
    this.codec = codec
    this.info = info
    this.sentence = sentence
    this.dimensions = model.embeddingVectorSize
  }

  tokenize (inputs: EmbedInput[], truncate: boolean, inputType: InputType = 'document'): number[][] {
    return embeddingTokens(this, inputs, truncate, inputType)
  }

  /** One input at a time: the embedding context has one sequence. An input of no tokens has no states to pool, and embeds as zeros. */
  async embed (tokenized: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    const out: Float32Array[] = []
    for (const tokens of tokenized) {
      signal?.throwIfAborted()
      const v = tokens.length === 0 ? new Float32Array(this.dimensions) : Float32Array.from((await this.#context.getEmbeddingFor(tokens as Token[])).vector)
      normalizeInPlace(v)
      out.push(v)
    }
    return out
  }

  async release (): Promise<void> {
    await this.#context.dispose()
    await this.#model.dispose()
  }
}
