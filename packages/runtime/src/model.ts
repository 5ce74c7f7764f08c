/**
 * A model directory in the Hugging Face ONNX layout, loaded into an
 * onnxruntime session: a causal LM (logits and a KV cache, as optimum exports
 * GPT-2, Llama, Qwen and Phi) or an encoder (last_hidden_state, as BERT). Which
 * one is read from the graph's inputs and outputs, not from the config's
 * name, so that any export with those names runs.
 */
import { lstat, readFile, stat } from 'node:fs/promises'
import { isAbsolute, join, relative, resolve, sep } from 'node:path'
import { externalDataLocations, weightsSummary } from '@node-daemon/onnx'
import * as ort from 'onnxruntime-node'
import { ContextLengthError, InvalidInferenceRequestError, InvalidModelError, UnsupportedModelError } from './errors.ts'
import { bitsOf, fed } from './float16.ts'
import { TextCodec } from './text.ts'
import { WorkerSession } from './worker-session.ts'

export type ExecutionProvider = 'cpu' | 'cuda'

export interface LoadOptions {
  executionProvider?: ExecutionProvider
  /** onnxruntime's intra-op threads; unset, one for models under 64 MB and all cores for larger ones. */
  threads?: number
  signal?: AbortSignal
}

interface ModelFiles {
  config: Record<string, any>
  generation: Record<string, any>
  codec: TextCodec
  /** model.onnx and its external data, in bytes. */
  size: number
}

async function readJson (dir: string, name: string, required: boolean): Promise<Record<string, any>> {
  let text: string
  try {
    text = await readFile(join(dir, name), 'utf8')
  } catch (err: any) {
    if (!required && err.code === 'ENOENT') return {}
    throw new InvalidModelError(`${name}: ${err.code === 'ENOENT' ? 'missing from the model directory' : err.message}`)
  }
  try {
    return JSON.parse(text)
  } catch (err: any) {
    throw new InvalidModelError(`${name}: ${err.message}`)
  }
}

/** Ids in config.json / generation_config.json may be a number or a list. */
function ids (value: unknown): number[] {
  if (typeof value === 'number') return [value]
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number')
  return []
}

/** The files a model directory must have; the others (generation_config.json, tokenizer_config.json, external data) are optional. */
export const REQUIRED_MODEL_FILES = ['config.json', 'tokenizer.json', 'model.onnx']

async function readModelFiles (dir: string): Promise<ModelFiles> {
  const [config, generation, tokenizer, tokenizerConfig] = await Promise.all([
    readJson(dir, 'config.json', true),
    readJson(dir, 'generation_config.json', false),
    readJson(dir, 'tokenizer.json', true),
    readJson(dir, 'tokenizer_config.json', false)
  ])
  let codec: TextCodec
  try {
    codec = new TextCodec(tokenizer, tokenizerConfig, [...ids(generation.eos_token_id), ...ids(config.eos_token_id)])
  } catch (err: any) {
    throw new InvalidModelError(`tokenizer.json: ${err.message}`)
  }
  let size = 0
  for (const name of ['model.onnx', 'model.onnx_data', 'model.onnx.data']) {
    size += await stat(join(dir, name)).then(s => s.size, () => 0)
  }
  if (size === 0) throw new InvalidModelError('model.onnx: missing from the model directory')
  return { config, generation, codec, size }
}

/**
 * Below this size a model's ops are too small to split across threads: one
 * thread decodes as fast as several (measured on the default model, 9 MB)
 * and leaves the other cores to the event loop and other sessions.
 */
const SMALL_MODEL_BYTES = 64 * 1_048_576

/**
 * A model.onnx up to this size is rewritten to return only the keys and
 * values each step adds (appendedKeyValues). A larger one would be held in
 * memory twice more while it loads, so it runs as exported.
 */
const REWRITE_MAX_BYTES = 512 * 1_048_576

/**
 * Refuses a model whose external data lies outside its own directory or
 * behind a symbolic link: onnxruntime would read whatever file it names,
 * such as the node's identity key, into a tensor.
 */
async function checkExternalData (dir: string): Promise<void> {
  let locations: string[]
  try {
    locations = await externalDataLocations(join(dir, 'model.onnx'))
  } catch (err: any) {
    throw new InvalidModelError(`model.onnx: ${err.name === 'ModelFormatError' ? err.message : 'cannot be read'}`)
  }
  for (const location of locations) {
    const path = relative(dir, resolve(dir, location))
    if (isAbsolute(location) || path === '' || path.split(sep)[0] === '..') throw new InvalidModelError(`model.onnx names external data outside the model directory: ${JSON.stringify(location)}`)
    let at = dir
    for (const part of path.split(sep)) {
      at = join(at, part)
      const entry = await lstat(at).catch(() => undefined)
      if (entry == null) throw new InvalidModelError(`model.onnx names external data ${JSON.stringify(location)}, which the model directory lacks`)
      if (entry.isSymbolicLink()) throw new InvalidModelError(`model.onnx names external data ${JSON.stringify(location)} through a symbolic link`)
    }
  }
}

async function createSession (dir: string, size: number, options: LoadOptions): Promise<WorkerSession> {
  // Spinning threads burn the cores that other sessions and the event loop need between runs.
  const config: Record<string, unknown> = { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } }
  const session: ort.InferenceSession.SessionOptions = {
    executionProviders: options.executionProvider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: 'all',
    enableCpuMemArena: false,
    extra: { session: config }
  }
  const threads = options.threads ?? (size < SMALL_MODEL_BYTES ? 1 : undefined)
  if (threads != null) session.intraOpNumThreads = threads
  await checkExternalData(dir)
  try {
    return await WorkerSession.open({ dir, path: join(dir, 'model.onnx'), size, rewriteMaxBytes: REWRITE_MAX_BYTES, options: session })
  } catch (err: any) {
    if (err.name === 'ModelWorkerError') throw err
    // onnxruntime names the files it could not read by their full paths.
    throw new InvalidModelError(`model.onnx: ${String(err.message).replaceAll(dir + sep, '').replaceAll(dir, '.')}`)
  }
}

export interface ModelInfo {
  kind: 'causal-lm' | 'encoder'
  /** config.json's model_type, e.g. gpt2 or bert. */
  family: string
  executionProvider: ExecutionProvider
  /** Bytes of model.onnx and its external data. */
  size: number
  /** Elements of the weights. */
  parameters: number
  /** The weights' type as Ollama names it: F32, F16, Q8_0, Q4_0. */
  quantization: string
  /** The most tokens a sequence may hold. */
  contextLength: number
  config: Record<string, any>
  generation: Record<string, any>
}

export type LoadedModel = CausalLM | Encoder

export async function loadModel (dir: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const files = await readModelFiles(dir)
  options.signal?.throwIfAborted()
  const session = await createSession(dir, files.size, options)
  // createSession checked the file already: what onnxruntime loads, this reads.
  const weights = await weightsSummary(join(dir, 'model.onnx')).catch(() => ({ parameters: 0, quantization: '' }))
  if (options.signal?.aborted === true) {
    await session.release()
    options.signal.throwIfAborted()
  }
  const info = (kind: ModelInfo['kind']): ModelInfo => ({
    kind,
    family: String(files.config.model_type ?? 'unknown'),
    executionProvider: options.executionProvider ?? 'cpu',
    size: files.size,
    ...weights,
    contextLength: contextLength(files.config),
    config: files.config,
    generation: files.generation
  })
  if (session.outputNames.includes('logits')) return new CausalLM(session, files.codec, info('causal-lm'))
  if (session.outputNames.includes('last_hidden_state')) return new Encoder(session, files.codec, info('encoder'))
  await session.release()
  throw new UnsupportedModelError(`model.onnx has neither logits nor last_hidden_state among its outputs (${session.outputNames.join(', ')})`)
}

function contextLength (config: Record<string, any>): number {
  for (const key of ['max_position_embeddings', 'n_positions', 'n_ctx', 'max_sequence_length']) {
    if (typeof config[key] === 'number' && config[key] > 0) return config[key]
  }
  return 2048
}

/**
 * The keys and values of a batch of sequences: per layer, [rows, heads,
 * capacity, headDim], each row right-aligned to `length` behind `pads[row]`
 * masked positions. A rewritten decoder's cache has room past `length`,
 * masked out too, where each step's keys and values go in place.
 */
export interface BatchCache {
  length: number
  capacity: number
  pads: number[]
  /** key and value of layer 0, then of layer 1, and so on. */
  kv: ort.Tensor[]
}

/**
 * Positions a rewritten decoder's cache is given room for when it is full:
 * the cache is then copied once per this many tokens instead of at each.
 */
const CACHE_ROOM = 32

const int64 = (values: ArrayLike<number>, dims: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(Array.from(values, BigInt)), dims)

/**
 * Frees now the ArrayBuffers of onnxruntime outputs that are done with.
 * onnxruntime-node copies every output into an ArrayBuffer of its own, even
 * one it also wrote into a tensor the caller gave; left to V8, megabytes of
 * them per run bring on full collections by their external size alone.
 */
export function freeOutputs (tensors: Iterable<ort.Tensor>): void {
  for (const t of tensors) {
    const data = t.data as ArrayBufferView
    // Only a buffer the tensor has to itself, as onnxruntime-node makes them.
    if (data.buffer instanceof ArrayBuffer && !data.buffer.detached && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) data.buffer.transfer(0)
  }
}

/** The types a KV cache may be kept in, as the graph declares it. */
export type CacheType = 'float32' | 'float16'

/** A cache's data: float32 values, or float16 bits (keys and values are only ever copied). */
type CacheArray = Float32Array | Uint16Array
const CACHE_ARRAYS: Record<CacheType, new (length: number) => CacheArray> = { float32: Float32Array, float16: Uint16Array }
const CACHE_BYTES: Record<CacheType, number> = { float32: 4, float16: 2 }

/** The data of a cache tensor, float16 as its bits. */
function cacheData (t: ort.Tensor): CacheArray {
  return bitsOf(t) as CacheArray
}

function cacheTensor (type: CacheType, data: CacheArray, dims: number[]): ort.Tensor {
  return fed(new ort.Tensor(type, data, dims))
}

/** float16 logits, as fp16 exports return them, as the float32 that sampling reads. */
function float32 (t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array
  const data = t.data as ArrayLike<number> & ArrayBufferView
  return Float32Array.from(data instanceof Uint16Array ? new Float16Array(data.buffer, data.byteOffset, data.length) : data)
}

/** A new cache tensor of the same type as `like`, zeroed. */
function cacheLike (like: ort.Tensor, dims: number[]): ort.Tensor {
  const type = like.type as CacheType
  return cacheTensor(type, new CACHE_ARRAYS[type](dims.reduce((a, b) => a * b, 1)), dims)
}

/** Keys or values, [rows, heads, capacity, headDim], moved to a larger capacity; the first `length` positions are kept. */
function withCapacity (t: ort.Tensor, length: number, capacity: number): ort.Tensor {
  const [rows, heads, room, size] = t.dims
  const from = cacheData(t)
  const moved = cacheLike(t, [rows, heads, capacity, size])
  const data = cacheData(moved)
  for (let plane = 0; plane < rows * heads; plane++) data.set(from.subarray(plane * room * size, (plane * room + length) * size), plane * capacity * size)
  return moved
}

/** Writes one step's keys or values, [rows, heads, n, headDim], at positions `at`… of every row. */
function put (t: ort.Tensor, added: CacheArray, at: number, n: number): void {
  const [rows, heads, capacity, size] = t.dims
  const data = cacheData(t)
  for (let plane = 0; plane < rows * heads; plane++) data.set(added.subarray(plane * n * size, (plane + 1) * n * size), (plane * capacity + at) * size)
}

/** A decoder-only LM with a KV cache; `forward` runs one step for a batch of sequences. */
export class CausalLM {
  readonly kind = 'causal-lm'
  readonly session: WorkerSession
  readonly codec: TextCodec
  readonly info: ModelInfo
  readonly layers: number
  readonly kvHeads: number
  readonly headDim: number
  /** The type the graph declares its keys and values in. */
  readonly cacheType: CacheType
  readonly #positionIds: boolean
  /**
   * Whether a full cache may be given room past its length. The room sits
   * between the past and a step's tokens, so it needs positions given
   * apart from the mask (position_ids) and no sliding window, which graphs
   * measure in indices of the fed sequence, room included.
   */
  readonly #room: boolean
  /** present.0.key, present.0.value, present.1.key…: the order of a cache's `kv`. */
  readonly #presents: string[]
  /** past_key_values.0.key, past_key_values.0.value…: the inputs they are fed back as, in the same order. */
  readonly #pasts: string[]
  /**
   * For each `present.*` output, the output that holds only what a step adds
   * (appendedKeyValues), when the graph was rewritten so: the cache then
   * grows here, in place, instead of being allocated again by every step,
   * which in a daemon's large heap cost more in GC than the step itself.
   */
  readonly #appended?: Record<string, string>

  constructor (session: WorkerSession, codec: TextCodec, info: ModelInfo) {
    this.session = session
    this.codec = codec
    this.info = info
    this.#appended = session.appended
    const pasts = session.inputNames.filter(n => /^past_key_values\.\d+\.key$/.test(n))
    if (pasts.length === 0 || !session.inputNames.includes('input_ids')) {
      throw new UnsupportedModelError('a causal LM needs input_ids and past_key_values.N.key/value inputs (an export with a KV cache)')
    }
    this.layers = pasts.length
    this.#positionIds = session.inputNames.includes('position_ids')
    this.#presents = Array.from({ length: 2 * this.layers }, (_, i) => `present.${i >> 1}.${i % 2 === 0 ? 'key' : 'value'}`)
    this.#pasts = this.#presents.map(name => name.replace('present.', 'past_key_values.'))
    const meta = session.inputMetadata.find(m => m.name === 'past_key_values.0.key')
    const shape = meta?.isTensor === true ? meta.shape : []
    const type = meta?.isTensor === true ? meta.type : 'float32'
    if (type !== 'float32' && type !== 'float16') throw new UnsupportedModelError(`KV cache of type ${type}: only float32 and float16 caches are supported`)
    this.cacheType = type
    const c = info.config
    const window = c.use_sliding_window === false ? undefined : c.sliding_window
    this.#room = this.#positionIds && !(typeof window === 'number' && window < info.contextLength)
    const heads = c.num_key_value_heads ?? c.num_attention_heads ?? c.n_head
    const hidden = c.hidden_size ?? c.n_embd
    this.kvHeads = typeof shape[1] === 'number' ? shape[1] : heads
    this.headDim = typeof shape[3] === 'number' ? shape[3] : (c.head_dim ?? hidden / (c.num_attention_heads ?? c.n_head))
    if (!Number.isInteger(this.kvHeads) || !Number.isInteger(this.headDim)) throw new InvalidModelError('config.json: cannot tell the KV cache shape (num_attention_heads, hidden_size)')
  }

  /**
   * One forward pass. Without a cache, `rows` are prompts, left-padded to the
   * longest; with one, every row adds as many tokens to its sequence (one
   * when decoding; the rest of a prompt whose prefix was cached). Returns the
   * logits of each row's last token and the grown cache. A rewritten
   * decoder's cache grows in place: the cache given is not valid afterwards.
   */
  async forward (rows: number[][], cache?: BatchCache, signal?: AbortSignal): Promise<{ logits: Float32Array[], cache: BatchCache }> {
    const batch = rows.length
    const step = cache == null ? Math.max(...rows.map(r => r.length)) : rows[0].length
    const past = cache?.length ?? 0
    // Positions fed as the past: the cache's room included, masked out.
    const room = cache?.capacity ?? 0
    const total = room + step
    const pads = cache?.pads ?? rows.map(r => step - r.length)
    // Filled in place: a decoding step runs per token, and boxed BigInts per mask position were most of its garbage.
    const ids = new BigInt64Array(batch * step)
    const mask = new BigInt64Array(batch * total)
    const positions = new BigInt64Array(batch * step)
    rows.forEach((row, b) => {
      if (cache != null && row.length !== step) throw new RangeError('a step on a cache adds as many tokens to every row')
      const offset = step - row.length
      const before = cache == null ? 0 : past - pads[b]
      row.forEach((id, t) => {
        ids[b * step + offset + t] = BigInt(id)
        positions[b * step + offset + t] = BigInt(before + t)
      })
      mask.fill(1n, b * total + pads[b], b * total + past)
      mask.fill(1n, b * total + room + (cache == null ? pads[b] : 0), (b + 1) * total)
    })
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [batch, step]),
      attention_mask: new ort.Tensor('int64', mask, [batch, total])
    }
    if (this.#positionIds) feeds.position_ids = new ort.Tensor('int64', positions, [batch, step])
    const empty = new CACHE_ARRAYS[this.cacheType](0)
    for (let l = 0; l < this.layers; l++) {
      feeds[`past_key_values.${l}.key`] = cache != null ? fed(cache.kv[2 * l]) : cacheTensor(this.cacheType, empty, [batch, this.kvHeads, 0, this.headDim])
      feeds[`past_key_values.${l}.value`] = cache != null ? fed(cache.kv[2 * l + 1]) : cacheTensor(this.cacheType, empty, [batch, this.kvHeads, 0, this.headDim])
    }
    signal?.throwIfAborted()
    const appended = this.#appended
    // A rewritten decoder's cache moves to the session's worker and back, to grow here in place; any other feed is freed there.
    const grown = appended != null && cache != null
    const { outputs: out, kept } = await this.session.runKeeping(feeds, grown ? this.#pasts : [])
    const logits = float32(out.logits)
    const vocab = out.logits.dims[2]
    return {
      logits: rows.map((_, b) => logits.subarray((b * step + step - 1) * vocab, (b * step + step) * vocab)),
      // Without a cache, what a step adds is the whole present.
      cache: grown
        ? this.#append({ ...cache, kv: this.#pasts.map(name => kept[name]) }, this.#presents.map(name => out[appended[name]]))
        : { length: total, capacity: total, pads, kv: this.#presents.map(name => out[appended?.[name] ?? name]) }
    }
  }

  /**
   * The cache grown by one step's keys and values, written in place. When it
   * is full it moves to buffers with room for more, masked out until used,
   * where the graph allows it (#room).
   */
  #append (cache: BatchCache, added: ort.Tensor[]): BatchCache {
    const at = cache.length
    const n = added[0].dims[2]
    let { capacity, kv } = cache
    if (at + n > capacity) {
      capacity = this.#room ? Math.max(at + n, Math.min(at + n - 1 + CACHE_ROOM, this.info.contextLength - 1)) : at + n
      const full = kv
      kv = kv.map(t => withCapacity(t, at, capacity))
      freeOutputs(full)
    }
    kv.forEach((t, i) => { put(t, cacheData(added[i]), at, n) })
    freeOutputs(added)
    return { length: at + n, capacity, pads: cache.pads, kv }
  }

  /** Bytes of keys and values a cache of `rows` × `positions` holds. */
  cacheBytes (rows: number, positions: number): number {
    return 2 * this.layers * rows * this.kvHeads * positions * this.headDim * CACHE_BYTES[this.cacheType]
  }

  /**
   * One cache of the given rows of several caches, in order, right-aligned
   * to a common length without the padding they would all share. The only
   * time keys and values are copied: when the batch changes.
   */
  regroup (parts: Array<{ cache: BatchCache, rows: number[] }>): BatchCache {
    const kept = parts.flatMap(({ cache, rows }) => rows.map(row => ({ cache, row, size: cache.length - cache.pads[row] })))
    const length = Math.max(...kept.map(k => k.size))
    const d = this.headDim
    const plane = length * d
    const kv: ort.Tensor[] = []
    for (let i = 0; i < 2 * this.layers; i++) {
      const tensor = cacheLike(kept[0].cache.kv[i], [kept.length, this.kvHeads, length, d])
      const data = cacheData(tensor)
      kept.forEach(({ cache, row, size }, b) => {
        const src = cacheData(cache.kv[i])
        for (let h = 0; h < this.kvHeads; h++) {
          const from = ((row * this.kvHeads + h) * cache.capacity + cache.length - size) * d
          data.set(src.subarray(from, from + size * d), (b * this.kvHeads + h) * plane + (length - size) * d)
        }
      })
      kv.push(tensor)
    }
    return { length, capacity: length, pads: kept.map(k => length - k.size), kv }
  }

  async release (): Promise<void> {
    await this.session.release()
  }
}

/** Most texts in one encoder run. */
const EMBED_RUN_ROWS = 32
/** Most tokens, padding included, in one encoder run: 4 texts of 512 tokens. */
const EMBED_RUN_TOKENS = 2048

/** What an encoder embeds: a text, or the ids of its tokens as the client tokenized it. */
export type EmbedInput = string | number[]

/** A BERT-style encoder; embeddings are its last hidden states, mean-pooled over the real tokens and L2-normalized. */
export class Encoder {
  readonly kind = 'encoder'
  readonly session: WorkerSession
  readonly codec: TextCodec
  readonly info: ModelInfo
  /** Components of an embedding: the width of last_hidden_state. */
  readonly dimensions: number
  readonly #typeIds: boolean

  constructor (session: WorkerSession, codec: TextCodec, info: ModelInfo) {
    this.session = session
    this.codec = codec
    this.info = info
    this.#typeIds = session.inputNames.includes('token_type_ids')
    const meta = session.outputMetadata.find(m => m.name === 'last_hidden_state')
    const width = meta?.isTensor === true ? meta.shape[2] : undefined
    this.dimensions = typeof width === 'number' ? width : Number(info.config.hidden_size ?? info.config.n_embd)
    if (!Number.isInteger(this.dimensions) || this.dimensions < 1) throw new InvalidModelError('config.json: cannot tell the width of the hidden states (hidden_size)')
  }

  /**
   * The token ids of each input as the model takes them, cut to the context
   * when `truncate` allows. Given ids are taken as the exact tokens of the
   * text and get the special tokens the tokenizer would add around a text
   * (a BERT's [CLS] and [SEP]): the model was trained with them, and a
   * client that tokenized with tiktoken-like tools never adds them.
   * Truncation keeps the closing special tokens, as the tokenizer's own does.
   */
  tokenize (inputs: EmbedInput[], truncate: boolean): number[][] {
    const { prefix, suffix } = this.codec.wrapping
    const limit = this.info.contextLength
    return inputs.map(input => {
      const ids = typeof input === 'string' ? this.codec.encodeForModel(input) : [...prefix, ...this.#checked(input), ...suffix]
      if (ids.length <= limit) return ids
      if (!truncate) throw new ContextLengthError(`input exceeds maximum context length: ${ids.length} tokens, and the model takes ${limit}`)
      return [...ids.slice(0, limit - suffix.length), ...ids.slice(ids.length - suffix.length)]
    })
  }

  #checked (ids: number[]): number[] {
    const size = this.info.config.vocab_size
    for (const id of ids) {
      if (!this.codec.hasToken(id) || (typeof size === 'number' && id >= size)) throw new InvalidInferenceRequestError(`input: token ${id} is not in the model's vocabulary${typeof size === 'number' ? ` of ${size} tokens` : ''}`)
    }
    return ids
  }

  /**
   * Embeds texts in runs of similar length, each bounded in rows and padded
   * tokens: one run over every input would hold attention scores of
   * rows × heads × length² floats, gigabytes for a few hundred long inputs.
   */
  async embed (tokenized: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    const order = tokenized.map((_, i) => i).sort((a, b) => tokenized[a].length - tokenized[b].length)
    const out = new Array<Float32Array>(tokenized.length)
    for (let start = 0; start < order.length;) {
      // Sorted by length, so a run's last text is its longest.
      let end = start + 1
      while (end < order.length && end - start < EMBED_RUN_ROWS && (end - start + 1) * tokenized[order[end]].length <= EMBED_RUN_TOKENS) end++
      const run = order.slice(start, end)
      const vectors = await this.#embedRun(run.map(i => tokenized[i]), signal)
      run.forEach((i, k) => { out[i] = vectors[k] })
      start = end
    }
    return out
  }

  async #embedRun (tokenized: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    const batch = tokenized.length
    const length = Math.max(1, ...tokenized.map(t => t.length))
    const ids = new Array<number>(batch * length).fill(0)
    const mask = new Array<number>(batch * length).fill(0)
    tokenized.forEach((tokens, b) => tokens.forEach((id, t) => {
      ids[b * length + t] = id
      mask[b * length + t] = 1
    }))
    const feeds: Record<string, ort.Tensor> = { input_ids: int64(ids, [batch, length]), attention_mask: int64(mask, [batch, length]) }
    if (this.#typeIds) feeds.token_type_ids = int64(new Array(batch * length).fill(0), [batch, length])
    signal?.throwIfAborted()
    const out = await this.session.run(feeds)
    const hidden = out.last_hidden_state.data as Float32Array
    const width = out.last_hidden_state.dims[2]
    const vectors = tokenized.map((tokens, b) => {
      const v = new Float32Array(width)
      for (let t = 0; t < tokens.length; t++) {
        const at = (b * length + t) * width
        for (let i = 0; i < width; i++) v[i] += hidden[at + i]
      }
      let norm = 0
      for (let i = 0; i < width; i++) norm += v[i] * v[i]
      norm = Math.sqrt(norm) || 1
      for (let i = 0; i < width; i++) v[i] /= norm
      return v
    })
    freeOutputs(Object.values(out))
    return vectors
  }

  async release (): Promise<void> {
    await this.session.release()
  }
}
