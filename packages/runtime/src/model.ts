/**
 * A model directory in the Hugging Face ONNX layout, loaded into an
 * onnxruntime session: a causal LM (logits and a KV cache, as optimum exports
 * GPT-2, Llama, Qwen and Phi) or an encoder (last_hidden_state, as BERT). Which
 * one is read from the graph's inputs and outputs, not from the config's
 * name, so that any export with those names runs.
 */
import { lstat, readdir, readFile, stat } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { externalDataLocations, weightsSummary } from '@node-daemon/onnx'
import * as ort from 'onnxruntime-node'
import { DTYPES } from './files.ts'
import { ContextLengthError, InvalidInferenceRequestError, InvalidModelError, UnsupportedModelError } from './errors.ts'
import { asFloat32, bitsOf, fed } from './float16.ts'
import { TextCodec } from './text.ts'
import { freeOutputs, WorkerSession } from './worker-session.ts'
import type { Dtype } from './files.ts'
import type { LlamaBuild } from './gguf.ts'

export type ExecutionProvider = 'cpu' | 'cuda'

export interface LoadOptions {
  executionProvider?: ExecutionProvider
  /** onnxruntime's intra-op threads; unset, one for models under 64 MB and all cores for larger ones. */
  threads?: number
  /** The variant of a repository with several (findModelFile); unset, the best the execution provider runs. */
  dtype?: string
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

/**
 * What a model directory holding `paths` lacks to be one: tokenizer.json,
 * config.json (or an onnxruntime-genai build's genai_config.json) and a
 * graph findModelFile knows.
 */
export function missingModelFiles (paths: readonly string[]): string[] {
  const present = new Set(paths)
  const missing: string[] = []
  if (!present.has('config.json') && !present.has('genai_config.json')) missing.push('config.json')
  if (!present.has('tokenizer.json')) missing.push('tokenizer.json')
  // genai_config.json names its graph, which the load checks.
  if (!present.has('genai_config.json') && !GRAPH_DIRS.some(dir => GRAPH_NAMES.some(name => DTYPES.some(d => present.has(`${dir}${name}${SUFFIXES[d]}.onnx`))))) missing.push('model.onnx')
  return missing
}

const SUFFIXES: Record<Dtype, string> = { fp32: '', fp16: '_fp16', q4: '_q4', q4f16: '_q4f16', int8: '_int8', uint8: '_uint8', quantized: '_quantized', bnb4: '_bnb4' }

/**
 * The variant a node takes when none is asked for, best first. On CPU, fp32
 * is exact and its MatMuls have onnxruntime's fastest CPU kernels; then the
 * 8-bit exports (MatMulInteger, a quarter of the bytes), then the 4-bit ones
 * (MatMulNBits), and fp16 last: most CPU kernels lack fp16 and onnxruntime
 * casts around them. On CUDA, fp16 runs natively at half the bytes, then
 * fp32, then the 4-bit fp16 variant; 8-bit MatMulInteger has no CUDA kernel.
 */
const PREFERENCE: Record<ExecutionProvider, readonly Dtype[]> = {
  cpu: ['fp32', 'quantized', 'int8', 'uint8', 'q4', 'bnb4', 'fp16', 'q4f16'],
  cuda: ['fp16', 'fp32', 'q4f16', 'q4', 'bnb4', 'quantized', 'int8', 'uint8']
}

/**
 * Graph names, in the order they are taken: optimum's encoder or decoder,
 * its merged decoder, and its decoder with a past, which also takes a
 * prompt on an empty past (its decoder_model.onnx has no cache, so is not).
 */
const GRAPH_NAMES = ['model', 'decoder_model_merged', 'decoder_with_past_model']
/** Where exports put their graphs: optimum at the root, onnx-community and Transformers.js under onnx/. */
const GRAPH_DIRS = ['', 'onnx/']

export interface ModelFile {
  /** The graph's path inside the model directory, e.g. onnx/model_q4.onnx. */
  path: string
  dtype: Dtype
}

/**
 * The graph a model directory holding `paths` runs, of the variant `dtype`
 * or else of the first the execution provider prefers. An onnxruntime-genai
 * build names its graph in genai_config.json (model.decoder.filename). The
 * one place the choice is made: the library records what an import asked
 * for, and every node loads the graph this picks.
 */
export function chooseModelFile (paths: readonly string[], options: { dtype?: string, executionProvider?: ExecutionProvider, genai?: Record<string, any> } = {}): ModelFile {
  const { dtype } = options
  if (dtype != null && !(DTYPES as readonly string[]).includes(dtype)) throw new InvalidInferenceRequestError(`dtype: ${JSON.stringify(dtype)} is none of ${DTYPES.join(', ')}`)
  const present = new Set(paths)
  const named = options.genai?.model?.decoder?.filename
  if (typeof named === 'string') {
    if (!present.has(named)) throw new InvalidModelError(`genai_config.json names ${JSON.stringify(named)}, which the model directory lacks`)
    const genaiDtype: Dtype = /int4|q4/i.test(named) ? 'q4' : /fp16|f16/i.test(named) ? 'fp16' : 'fp32'
    if (dtype != null && dtype !== genaiDtype) throw new InvalidModelError(`dtype ${dtype}: this onnxruntime-genai build has only ${genaiDtype}`)
    return { path: named, dtype: genaiDtype }
  }
  const order = dtype != null ? [dtype as Dtype] : PREFERENCE[options.executionProvider ?? 'cpu']
  for (const variant of order) {
    for (const dir of GRAPH_DIRS) {
      for (const name of GRAPH_NAMES) {
        const path = `${dir}${name}${SUFFIXES[variant]}.onnx`
        if (present.has(path)) return { path, dtype: variant }
      }
    }
  }
  if (dtype != null) {
    const offered = DTYPES.filter(d => GRAPH_DIRS.some(dir => GRAPH_NAMES.some(name => present.has(`${dir}${name}${SUFFIXES[d]}.onnx`))))
    throw new InvalidModelError(`dtype ${dtype}: the model has no such variant${offered.length > 0 ? ` (it has ${offered.join(', ')})` : ''}`)
  }
  throw new InvalidModelError('no model graph: neither model.onnx, decoder_model_merged.onnx nor onnx/model*.onnx, and no genai_config.json naming one')
}

/** The files of a model directory that findModelFile looks at: its root and onnx/. */
async function graphCandidates (dir: string): Promise<string[]> {
  const lists = await Promise.all(GRAPH_DIRS.map(async sub => (await readdir(join(dir, sub)).catch(() => [])).map(name => sub + name)))
  return lists.flat().filter(path => path.endsWith('.onnx'))
}

/** The graph of the model directory `dir` (chooseModelFile over its files). */
export async function findModelFile (dir: string, options: { dtype?: string, executionProvider?: ExecutionProvider } = {}): Promise<ModelFile> {
  const genai = await readJson(dir, 'genai_config.json', false)
  return chooseModelFile(await graphCandidates(dir), { ...options, genai })
}

/**
 * config.json's fields from an onnxruntime-genai build's genai_config.json,
 * for builds that ship without config.json: the builder writes the shape of
 * the model there under its own names.
 */
export function configFromGenai (genai: Record<string, any>): Record<string, any> {
  const m = genai.model ?? {}
  const d = m.decoder ?? {}
  const config: Record<string, any> = {
    model_type: m.type,
    vocab_size: m.vocab_size,
    max_position_embeddings: m.context_length,
    bos_token_id: m.bos_token_id,
    eos_token_id: m.eos_token_id,
    pad_token_id: m.pad_token_id,
    hidden_size: d.hidden_size,
    num_attention_heads: d.num_attention_heads,
    num_key_value_heads: d.num_key_value_heads,
    num_hidden_layers: d.num_hidden_layers,
    head_dim: d.head_size
  }
  return Object.fromEntries(Object.entries(config).filter(([, v]) => v != null))
}

async function readModelFiles (dir: string, file: ModelFile): Promise<ModelFiles> {
  const [genai, generation, tokenizer, tokenizerConfig] = await Promise.all([
    readJson(dir, 'genai_config.json', false),
    readJson(dir, 'generation_config.json', false),
    readJson(dir, 'tokenizer.json', true),
    readJson(dir, 'tokenizer_config.json', false)
  ])
  const config = Object.keys(genai).length > 0 && !(await exists(join(dir, 'config.json'))) ? configFromGenai(genai) : await readJson(dir, 'config.json', true)
  let codec: TextCodec
  try {
    codec = new TextCodec(tokenizer, tokenizerConfig, [...ids(generation.eos_token_id), ...ids(config.eos_token_id)])
  } catch (err: any) {
    throw new InvalidModelError(`tokenizer.json: ${err.message}`)
  }
  return { config, generation, codec, size: await graphBytes(dir, file.path) }
}

/** Bytes of a graph and of the external data it names: what a session holds of a model. */
export async function graphBytes (dir: string, file: string): Promise<number> {
  const path = join(dir, file)
  const data = await externalDataLocations(path).catch(() => [])
  let size = 0
  for (const name of [path, ...new Set(data.map(location => resolve(dirname(path), location)))]) {
    size += await stat(name).then(s => s.size, () => 0)
  }
  return size
}

async function exists (path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false)
}

/**
 * Below this size a model's ops are too small to split across threads: one
 * thread decodes as fast as several (measured on the default model, 9 MB)
 * and leaves the other cores to the event loop and other sessions.
 */
export const SMALL_MODEL_BYTES = 64 * 1_048_576

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
async function checkExternalData (dir: string, file: string): Promise<void> {
  let locations: string[]
  try {
    locations = await externalDataLocations(join(dir, file))
  } catch (err: any) {
    throw new InvalidModelError(`${file}: ${err.name === 'ModelFormatError' ? err.message : 'cannot be read'}`)
  }
  // onnxruntime reads external data beside the graph, which may be in onnx/.
  const beside = dirname(join(dir, file))
  for (const location of locations) {
    const path = relative(dir, resolve(beside, location))
    if (isAbsolute(location) || path === '' || path.split(sep)[0] === '..') throw new InvalidModelError(`${file} names external data outside the model directory: ${JSON.stringify(location)}`)
    let at = dir
    for (const part of path.split(sep)) {
      at = join(at, part)
      const entry = await lstat(at).catch(() => undefined)
      if (entry == null) throw new InvalidModelError(`${file} names external data ${JSON.stringify(location)}, which the model directory lacks`)
      if (entry.isSymbolicLink()) throw new InvalidModelError(`${file} names external data ${JSON.stringify(location)} through a symbolic link`)
    }
  }
}

/**
 * Whether a decoder of `config` reads a sequence's length only through its
 * position_ids and mask: then the room fed past its cache's end can simply
 * be masked out. A sliding window counts in indices of the sequence, and
 * dynamic or long RoPE scaling may measure its length.
 */
function roomMaskable (config: Record<string, any>): boolean {
  const window = config.use_sliding_window === false ? undefined : config.sliding_window
  const rope = config.rope_scaling?.rope_type ?? config.rope_scaling?.type
  return !(typeof window === 'number' && window < contextLength(config)) && (rope == null || ['default', 'linear', 'llama3'].includes(rope))
}

/** The onnxruntime session options a model file of `size` bytes gets: what a bare onnxruntime loop must take to be compared with the runtime. */
export function onnxSessionOptions (size: number, options: Pick<LoadOptions, 'executionProvider' | 'threads'> = {}): ort.InferenceSession.SessionOptions {
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
  return session
}

async function createSession (dir: string, file: string, size: number, modelConfig: Record<string, any>, options: LoadOptions): Promise<WorkerSession> {
  const session = onnxSessionOptions(size, options)
  const path = join(dir, file)
  await checkExternalData(dir, file)
  try {
    // External data lies beside the graph, which may be in onnx/.
    return await WorkerSession.open({ dir: dirname(path), path, size, rewriteMaxBytes: REWRITE_MAX_BYTES, roomMasked: roomMaskable(modelConfig), options: session })
  } catch (err: any) {
    if (err.name === 'ModelWorkerError') throw err
    // onnxruntime names the files it could not read by their full paths.
    throw new InvalidModelError(`${file}: ${String(err.message).replaceAll(dir + sep, '').replaceAll(dir, '.')}`)
  }
}

export interface ModelInfo {
  kind: 'causal-lm' | 'encoder' | 'reranker'
  /** config.json's model_type, e.g. gpt2 or bert. */
  family: string
  executionProvider: ExecutionProvider
  engine: Engine
  /** The ONNX graph run, inside the model directory (findModelFile); unset for a GGUF model. */
  file?: string
  dtype?: Dtype
  /** Bytes of the graph and its external data. */
  size: number
  /** Elements of the weights. */
  parameters: number
  /** The weights' type as Ollama names it: F32, F16, Q8_0, Q4_0. */
  quantization: string
  /** The graph's op types, where known. */
  ops?: string[]
  /** The most tokens a sequence may hold. */
  contextLength: number
  config: Record<string, any>
  generation: Record<string, any>
}

/**
 * What runs a model: onnxruntime, or llama.cpp in binaries built on this
 * machine or node-llama-cpp's prebuilt ones (see LlamaBuild).
 */
export type Engine = 'onnxruntime' | `llama.cpp (${LlamaBuild})`

export type LoadedModel = CausalLM | Encoder | CrossEncoder

export async function loadModel (dir: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const file = await findModelFile(dir, options)
  const files = await readModelFiles(dir, file)
  options.signal?.throwIfAborted()
  const session = await createSession(dir, file.path, files.size, files.config, options)
  // createSession checked the file already: what onnxruntime loads, this reads.
  const weights = await weightsSummary(join(dir, file.path)).catch(() => ({ parameters: 0, quantization: '', ops: [] }))
  if (options.signal?.aborted === true) {
    await session.release()
    options.signal.throwIfAborted()
  }
  const info = (kind: ModelInfo['kind']): ModelInfo => ({
    kind,
    family: String(files.config.model_type ?? 'unknown'),
    executionProvider: options.executionProvider ?? 'cpu',
    engine: 'onnxruntime',
    file: file.path,
    dtype: file.dtype,
    size: files.size,
    ...weights,
    contextLength: contextLength(files.config),
    config: files.config,
    generation: files.generation
  })
  try {
    // A sequence classifier's logits are [batch, labels]; a causal LM's, [batch, sequence, vocabulary].
    const logits = session.outputMetadata.find(m => m.name === 'logits')
    if (logits?.isTensor === true && logits.shape.length === 2) return new CrossEncoder(session, files.codec, info('reranker'))
    if (logits != null) return new CausalLM(session, files.codec, info('causal-lm'))
    if (['sentence_embedding', 'last_hidden_state', 'token_embeddings'].some(name => session.outputNames.includes(name))) return new Encoder(session, files.codec, info('encoder'), await readSentenceConfig(dir))
  } catch (err) {
    await session.release()
    throw err
  }
  await session.release()
  throw new UnsupportedModelError(`${file.path} has neither logits, last_hidden_state nor sentence_embedding among its outputs (${session.outputNames.join(', ')})`)
}

/** The KV cache's shape as config.json states it, in Hugging Face's names or GPT-2's; NaN where it does not say. */
export function configCacheShape (c: Record<string, any>): { layers: number, kvHeads: number, headDim: number } {
  const heads = c.num_attention_heads ?? c.n_head
  return {
    layers: c.num_hidden_layers ?? c.n_layer ?? NaN,
    kvHeads: c.num_key_value_heads ?? heads ?? NaN,
    headDim: c.head_dim ?? (c.hidden_size ?? c.n_embd) / heads
  }
}

export function contextLength (config: Record<string, any>): number {
  for (const key of ['max_position_embeddings', 'n_positions', 'n_ctx', 'max_sequence_length']) {
    if (typeof config[key] === 'number' && config[key] > 0) return config[key]
  }
  return 2048
}

/**
 * The keys and values of a batch of sequences: per layer, [rows, heads,
 * capacity, headDim], each row right-aligned to `length` behind `pads[row]`
 * masked positions. A rewritten decoder's cache has room past `length`,
 * where each step's keys and values go in place; the graph slices it off.
 */
export interface BatchCache {
  length: number
  capacity: number
  pads: number[]
  /** key and value of layer 0, then of layer 1, and so on. */
  kv: ort.Tensor[]
}

/**
 * Positions a rewritten decoder's cache is given room for when it is full,
 * at least: the cache is then copied once per this many tokens instead of at
 * each, and as it grows, once per a quarter of its length (amortised).
 */
const CACHE_ROOM = 32

/**
 * An int64 tensor of ids, masks or positions, written as 32-bit halves (low
 * first: little-endian, as onnxruntime's hosts are): a BigInt per value was
 * 1% of an ingest's main thread and 20 million objects for its GC per 100,000
 * chunks. Values are within ±2^31.
 */
function int64 (values: ArrayLike<number>, dims: number[]): ort.Tensor {
  const data = new BigInt64Array(values.length)
  const halves = new Int32Array(data.buffer)
  for (let i = 0; i < values.length; i++) {
    halves[2 * i] = values[i]
    halves[2 * i + 1] = values[i] < 0 ? -1 : 0
  }
  return new ort.Tensor('int64', data, dims)
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
  /** A merged decoder's flag, true once there is a past: its If node picks the branch that reads it. */
  readonly #cacheBranch: boolean
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
  /** The rewritten graph takes the cache's room as it is (appendedKeyValues' roomMasked), for the mask to hide. */
  readonly #roomMasked: boolean

  constructor (session: WorkerSession, codec: TextCodec, info: ModelInfo) {
    this.session = session
    this.codec = codec
    this.info = info
    this.#appended = session.appended
    this.#roomMasked = session.appended != null && !session.sliced
    const pasts = session.inputNames.filter(n => /^past_key_values\.\d+\.key$/.test(n))
    if (pasts.length === 0 || !session.inputNames.includes('input_ids')) {
      throw new UnsupportedModelError('a causal LM needs input_ids and past_key_values.N.key/value inputs (an export with a KV cache)')
    }
    this.layers = pasts.length
    this.#positionIds = session.inputNames.includes('position_ids')
    this.#cacheBranch = session.inputNames.includes('use_cache_branch')
    this.#presents = Array.from({ length: 2 * this.layers }, (_, i) => `present.${i >> 1}.${i % 2 === 0 ? 'key' : 'value'}`)
    this.#pasts = this.#presents.map(name => name.replace('present.', 'past_key_values.'))
    const meta = session.inputMetadata.find(m => m.name === 'past_key_values.0.key')
    const shape = meta?.isTensor === true ? meta.shape : []
    const type = meta?.isTensor === true ? meta.type : 'float32'
    if (type !== 'float32' && type !== 'float16') throw new UnsupportedModelError(`KV cache of type ${type}: only float32 and float16 caches are supported`)
    this.cacheType = type
    const stated = configCacheShape(info.config)
    this.kvHeads = typeof shape[1] === 'number' ? shape[1] : stated.kvHeads
    this.headDim = typeof shape[3] === 'number' ? shape[3] : stated.headDim
    if (!Number.isInteger(this.kvHeads) || !Number.isInteger(this.headDim)) throw new InvalidModelError('config.json: cannot tell the KV cache shape (num_attention_heads, hidden_size)')
  }

  /**
   * One forward pass. Without a cache, `rows` are prompts, left-padded to the
   * longest; with one, every row adds as many tokens to its sequence (one
   * when decoding; the rest of a prompt whose prefix was cached). Returns the
   * logits of each row's last token and the grown cache. A rewritten
   * decoder's cache grows in place: the cache given is not valid afterwards.
   */
  async forward (rows: number[][], given?: BatchCache, signal?: AbortSignal): Promise<{ logits: Float32Array[], cache: BatchCache }> {
    const batch = rows.length
    const step = given == null ? Math.max(...rows.map(r => r.length)) : rows[0].length
    const cache = given == null ? undefined : this.#fitted(given, step)
    const past = cache?.length ?? 0
    // The mask covers what the graph is fed of the past: the cache's room too, masked out, unless the rewritten graph slices it off by the mask's length.
    const fedPast = cache != null && this.#roomMasked ? cache.capacity : past
    const total = fedPast + step
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
      mask.fill(1n, b * total + fedPast + (cache == null ? pads[b] : 0), (b + 1) * total)
    })
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [batch, step]),
      attention_mask: new ort.Tensor('int64', mask, [batch, total])
    }
    if (this.#positionIds) feeds.position_ids = new ort.Tensor('int64', positions, [batch, step])
    if (this.#cacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', [past > 0], [1])
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
    const logits = asFloat32(out.logits)
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
   * The cache, moved to buffers without room when, fed whole with its room
   * masked, it and a step of several tokens (a prompt's rest after a cached
   * prefix) would outrun the context, which some graphs' position tables
   * bound.
   */
  #fitted (cache: BatchCache, step: number): BatchCache {
    if (!this.#roomMasked || cache.capacity + step <= this.info.contextLength) return cache
    const full = cache.kv
    const kv = full.map(t => withCapacity(t, cache.length, cache.length))
    freeOutputs(full)
    return { ...cache, capacity: cache.length, kv }
  }

  /**
   * The cache grown by one step's keys and values, written in place. When it
   * is full it moves to buffers with room for more.
   */
  #append (cache: BatchCache, added: ort.Tensor[]): BatchCache {
    const at = cache.length
    const n = added[0].dims[2]
    let { capacity, kv } = cache
    if (at + n > capacity) {
      capacity = this.#capacityFor(at + n)
      const full = kv
      kv = kv.map(t => withCapacity(t, at, capacity))
      freeOutputs(full)
    }
    kv.forEach((t, i) => { put(t, cacheData(added[i]), at, n) })
    freeOutputs(added)
    return { length: at + n, capacity, pads: cache.pads, kv }
  }

  /** The positions a rewritten decoder's cache of `length` is given, with room to grow into. */
  #capacityFor (length: number): number {
    // Fed whole, the room and the next token must fit in the context, which some graphs' position tables bound.
    return Math.max(length, Math.min(length + Math.max(CACHE_ROOM, length >> 2), this.info.contextLength - (this.#roomMasked ? 1 : 0)))
  }

  /** Bytes of keys and values a cache of `rows` × `positions` holds. */
  cacheBytes (rows: number, positions: number): number {
    return 2 * this.layers * rows * this.kvHeads * positions * this.headDim * CACHE_BYTES[this.cacheType]
  }

  /**
   * One cache of the given rows of several caches, in order, right-aligned
   * to a common length without the padding they would all share. The only
   * time keys and values are copied: when the batch changes. A batch's cache
   * (`growing`) of a rewritten decoder gets its room now, or its next step
   * would copy it all again.
   */
  regroup (parts: Array<{ cache: BatchCache, rows: number[] }>, growing = false): BatchCache {
    const kept = parts.flatMap(({ cache, rows }) => rows.map(row => ({ cache, row, size: cache.length - cache.pads[row] })))
    const length = Math.max(...kept.map(k => k.size))
    const capacity = growing && this.#appended != null ? this.#capacityFor(length + 1) : length
    const d = this.headDim
    const plane = capacity * d
    const kv: ort.Tensor[] = []
    for (let i = 0; i < 2 * this.layers; i++) {
      const tensor = cacheLike(kept[0].cache.kv[i], [kept.length, this.kvHeads, capacity, d])
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
    return { length, capacity, pads: kept.map(k => length - k.size), kv }
  }

  async release (): Promise<void> {
    await this.session.release()
  }
}

/** Most texts in one encoder run. */
const EMBED_RUN_ROWS = 32
/** Most tokens, padding included, in one encoder run: 4 texts of 512 tokens. */
const EMBED_RUN_TOKENS = 2048

/**
 * What an encoder embeds: a text, the ids of its tokens as the client
 * tokenized it, or a text with the ids the model's own tokenizer gave it
 * (no special tokens), which a caller that tokenized it already (search's
 * chunking) passes so that it is not tokenized twice.
 */
export type EmbedInput = string | number[] | TokenizedText

export interface TokenizedText {
  text: string
  ids: number[]
}

/** Whether a text is a search query or a document searched, for models trained with a prefix for each (E5, BGE, nomic-embed). */
export type InputType = 'query' | 'document'

/** sentence-transformers' pooling modes, in the order it concatenates them when a config sets several. */
const POOLING_MODES = [
  ['cls', 'pooling_mode_cls_token'],
  ['max', 'pooling_mode_max_tokens'],
  ['mean', 'pooling_mode_mean_tokens'],
  ['mean_sqrt_len', 'pooling_mode_mean_sqrt_len_tokens'],
  ['weightedmean', 'pooling_mode_weightedmean_tokens'],
  ['lasttoken', 'pooling_mode_lasttoken']
] as const
export type PoolingMode = typeof POOLING_MODES[number][0]

/** Prompt names sentence-transformers configs give each input type: E5's, BGE's and nomic-embed's. */
const PROMPT_NAMES: Record<InputType, string[]> = {
  query: ['query', 'search_query'],
  document: ['document', 'passage', 'search_document', 'doc']
}

/** How token states become one embedding, and the prefix of each input type, as a sentence-transformers model directory says. */
export interface SentenceConfig {
  pooling: PoolingMode[]
  normalize: boolean
  prefixes: Partial<Record<InputType, string>>
}

/** A name of a module directory in modules.json: one path segment, as sentence-transformers writes them (1_Pooling). */
const MODULE_DIR = /^[\w-][\w.-]*$/

/**
 * Reads sentence-transformers' modules.json (its Pooling module's
 * config.json; a Normalize module), and config_sentence_transformers.json's
 * prompts. Without them: mean pooling, normalized, no prefixes.
 */
export async function readSentenceConfig (dir: string): Promise<SentenceConfig> {
  const [modules, st] = await Promise.all([readJson(dir, 'modules.json', false), readJson(dir, 'config_sentence_transformers.json', false)])
  const list: Array<Record<string, unknown>> | undefined = Array.isArray(modules) ? modules.filter(m => m != null && typeof m === 'object') : undefined
  const path = list?.find(m => String(m.type).endsWith('.Pooling'))?.path
  const poolingDir = typeof path === 'string' && MODULE_DIR.test(path) && path !== '..' ? path : '1_Pooling'
  const pooling = await readJson(dir, `${poolingDir}/config.json`, false)
  const modes = POOLING_MODES.filter(([, key]) => pooling[key] === true).map(([mode]) => mode)
  const prompts: Record<string, unknown> = st.prompts != null && typeof st.prompts === 'object' ? st.prompts : {}
  const prefix = (type: InputType): string | undefined => PROMPT_NAMES[type].map(name => prompts[name]).find((p): p is string => typeof p === 'string' && p !== '')
  const prefixes: SentenceConfig['prefixes'] = {}
  for (const type of ['query', 'document'] as const) {
    const found = prefix(type)
    if (found != null) prefixes[type] = found
  }
  return {
    pooling: modes.length > 0 ? modes : ['mean'],
    // A sentence-transformers model normalizes only through a Normalize module; a bare export is normalized, as before these configs were read.
    normalize: list == null || list.some(m => String(m.type).endsWith('.Normalize')),
    prefixes
  }
}

/** Token states of one sequence, [length, width] from `at` in `data`, pooled by `mode` over its `n` real tokens (right-padded). */
function pool (mode: PoolingMode, data: Float32Array, at: number, n: number, width: number, out: Float32Array, offset: number): void {
  const v = out.subarray(offset, offset + width)
  if (mode === 'cls' || mode === 'lasttoken') {
    v.set(data.subarray(at + (mode === 'cls' ? 0 : n - 1) * width, at + (mode === 'cls' ? 1 : n) * width))
    return
  }
  if (mode === 'max') v.fill(-Infinity)
  let weights = 0
  for (let t = 0; t < n; t++) {
    const row = at + t * width
    // weightedmean weighs position t by t + 1, as sentence-transformers does.
    const w = mode === 'weightedmean' ? t + 1 : 1
    weights += w
    if (mode === 'max') for (let i = 0; i < width; i++) v[i] = Math.max(v[i], data[row + i])
    else for (let i = 0; i < width; i++) v[i] += w * data[row + i]
  }
  if (mode === 'max') return
  const scale = mode === 'mean_sqrt_len' ? Math.sqrt(n) : weights
  for (let i = 0; i < width; i++) v[i] /= scale || 1
}

export function normalizeInPlace (v: Float32Array): void {
  let norm = 0
  for (let i = 0; i < v.length; i++) norm += v[i] * v[i]
  norm = Math.sqrt(norm) || 1
  for (let i = 0; i < v.length; i++) v[i] /= norm
}

/** The width of a graph output's last axis, when the graph says it. */
function outputWidth (session: Pick<WorkerSession, 'outputMetadata'>, name: string): number | undefined {
  const meta = session.outputMetadata.find(m => m.name === name)
  const width = meta?.isTensor === true ? meta.shape.at(-1) : undefined
  return typeof width === 'number' ? width : undefined
}

/** Input ids, attention mask and token types of right-padded rows, as BERT-style graphs take them. */
function encoderFeeds (tokenized: number[][], typeIds: number[][] | undefined, withTypes: boolean): Record<string, ort.Tensor> {
  const batch = tokenized.length
  const length = Math.max(1, ...tokenized.map(t => t.length))
  const ids = new Array<number>(batch * length).fill(0)
  const mask = new Array<number>(batch * length).fill(0)
  const types = new Array<number>(batch * length).fill(0)
  tokenized.forEach((tokens, b) => tokens.forEach((id, t) => {
    ids[b * length + t] = id
    mask[b * length + t] = 1
    types[b * length + t] = typeIds?.[b][t] ?? 0
  }))
  const feeds: Record<string, ort.Tensor> = { input_ids: int64(ids, [batch, length]), attention_mask: int64(mask, [batch, length]) }
  if (withTypes) feeds.token_type_ids = int64(types, [batch, length])
  return feeds
}

/** Runs of similar length, each bounded in rows and padded tokens: one run over every input would hold attention scores of rows × heads × length² floats. */
async function inRuns<T> (lengths: number[], run: (indices: number[]) => Promise<T[]>): Promise<T[]> {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b])
  const out = new Array<T>(lengths.length)
  for (let start = 0; start < order.length;) {
    // Sorted by length, so a run's last text is its longest.
    let end = start + 1
    while (end < order.length && end - start < EMBED_RUN_ROWS && (end - start + 1) * lengths[order[end]] <= EMBED_RUN_TOKENS) end++
    const indices = order.slice(start, end)
    const results = await run(indices)
    indices.forEach((i, k) => { out[i] = results[k] })
    start = end
  }
  return out
}

/**
 * A BERT-style encoder (BERT, MiniLM, BGE, E5, nomic-embed exports).
 * Embeddings are the graph's own `sentence_embedding` when an export has it
 * pooled already; else its `last_hidden_state` (or `token_embeddings`)
 * pooled as the model's sentence-transformers config says (mean by default),
 * and L2-normalized when it says so.
 */
export class Encoder {
  readonly kind = 'encoder'
  readonly session: WorkerSession
  readonly codec: TextCodec
  readonly info: ModelInfo
  readonly sentence: SentenceConfig
  /** Components of an embedding. */
  readonly dimensions: number
  readonly #typeIds: boolean
  /** The output read: pooled already, or token states to pool. */
  readonly #output: string
  readonly #pooled: boolean

  constructor (session: WorkerSession, codec: TextCodec, info: ModelInfo, sentence: SentenceConfig) {
    this.session = session
    this.codec = codec
    this.info = info
    this.sentence = sentence
    this.#typeIds = session.inputNames.includes('token_type_ids')
    this.#pooled = session.outputNames.includes('sentence_embedding')
    this.#output = this.#pooled ? 'sentence_embedding' : ['last_hidden_state', 'token_embeddings'].find(name => session.outputNames.includes(name)) as string
    const width = outputWidth(session, this.#output) ?? Number(info.config.hidden_size ?? info.config.n_embd)
    this.dimensions = this.#pooled ? width : width * sentence.pooling.length
    if (!Number.isInteger(this.dimensions) || this.dimensions < 1) throw new InvalidModelError('config.json: cannot tell the width of the hidden states (hidden_size)')
  }

  tokenize (inputs: EmbedInput[], truncate: boolean, inputType: InputType = 'document'): number[][] {
    return embeddingTokens(this, inputs, truncate, inputType)
  }

  /** Embeds texts in runs of similar length, each bounded in rows and padded tokens. */
  async embed (tokenized: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    return inRuns(tokenized.map(t => t.length), async run => this.#embedRun(run.map(i => tokenized[i]), signal))
  }

  async #embedRun (tokenized: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    const feeds = encoderFeeds(tokenized, undefined, this.#typeIds)
    signal?.throwIfAborted()
    const out = await this.session.run(feeds)
    const states = out[this.#output]
    // fp16 exports give their states in float16.
    const data = asFloat32(states)
    const width = states.dims.at(-1) as number
    const length = feeds.input_ids.dims[1]
    const vectors = tokenized.map((tokens, b) => {
      if (this.#pooled) return data.slice(b * width, (b + 1) * width)
      const v = new Float32Array(width * this.sentence.pooling.length)
      this.sentence.pooling.forEach((mode, k) => { pool(mode, data, b * length * width, Math.max(1, tokens.length), width, v, k * width) })
      return v
    })
    if (this.sentence.normalize) vectors.forEach(normalizeInPlace)
    freeOutputs(Object.values(out))
    return vectors
  }

  async release (): Promise<void> {
    await this.session.release()
  }
}

/** What an embedding model of either engine tokenizes its inputs with. */
type Embedder = Pick<Encoder, 'codec' | 'info' | 'sentence'>

/**
 * The token ids of each input as the model takes them, cut to the context
 * when `truncate` allows. A text gets the prefix of its input type (a
 * document's by default) when the model's config gives one. Given ids are
 * taken as the exact tokens of the text and get the special tokens the
 * tokenizer would add around a text (a BERT's [CLS] and [SEP]): the model
 * was trained with them, and a client that tokenized with tiktoken-like
 * tools never adds them. Truncation keeps the closing special tokens, as
 * the tokenizer's own does.
 */
export function embeddingTokens (model: Embedder, inputs: EmbedInput[], truncate: boolean, inputType: InputType = 'document'): number[][] {
  const { prefix, suffix } = model.codec.wrapping
  const limit = model.info.contextLength
  const textPrefix = model.sentence.prefixes[inputType] ?? ''
  const wrapped = (ids: number[]): number[] => [...prefix, ...checkedIds(model, ids), ...suffix]
  return inputs.map(input => {
    let ids: number[]
    if (typeof input === 'string') ids = model.codec.encodeForModel(textPrefix + input)
    else if (Array.isArray(input)) ids = wrapped(input)
    // A prefix changes how a text's start tokenizes, so a tokenized text with one is tokenized again.
    else ids = textPrefix === '' ? wrapped(input.ids) : model.codec.encodeForModel(textPrefix + input.text)
    return fitted(ids, limit, suffix.length, truncate)
  })
}

/** Ids a client gave, each a token of the model's vocabulary. */
function checkedIds (model: Embedder, ids: number[]): number[] {
  const size = model.info.config.vocab_size
  for (const id of ids) {
    if (!model.codec.hasToken(id) || (typeof size === 'number' && id >= size)) throw new InvalidInferenceRequestError(`input: token ${id} is not in the model's vocabulary${typeof size === 'number' ? ` of ${size} tokens` : ''}`)
  }
  return ids
}

/** `ids` within `limit` tokens, cut before its closing special tokens when `truncate` allows. */
function fitted (ids: number[], limit: number, closing: number, truncate: boolean): number[] {
  if (ids.length <= limit) return ids
  if (!truncate) throw new ContextLengthError(`input exceeds maximum context length: ${ids.length} tokens, and the model takes ${limit}`)
  return [...ids.slice(0, limit - closing), ...ids.slice(ids.length - closing)]
}

/**
 * A cross-encoder reranker: a BERT-style sequence classifier (`logits` of
 * [batch, 1] or [batch, 2]) over a query and a document tokenized together
 * with the tokenizer's pair template ([CLS] query [SEP] document [SEP]).
 * A score is the sigmoid of a single logit, as sentence-transformers'
 * CrossEncoder gives it, or the softmax probability of the second label.
 */
export class CrossEncoder {
  readonly kind = 'reranker'
  readonly session: WorkerSession
  readonly codec: TextCodec
  readonly info: ModelInfo
  readonly #typeIds: boolean

  constructor (session: WorkerSession, codec: TextCodec, info: ModelInfo) {
    this.session = session
    this.codec = codec
    this.info = info
    this.#typeIds = session.inputNames.includes('token_type_ids')
    const labels = outputWidth(session, 'logits')
    if (labels != null && labels !== 1 && labels !== 2) throw new UnsupportedModelError(`a reranker's logits score one or two labels, not ${labels}`)
  }

  /** Each document paired with the query, as ids and token types, the document cut to fit the context when `truncate` allows. */
  tokenize (query: string, documents: string[], truncate: boolean): Array<{ ids: number[], types: number[] }> {
    const limit = this.info.contextLength
    const closing = this.codec.wrapping.suffix.length
    return documents.map(document => {
      const pair = this.codec.encodePair(query, document)
      const ids = fitted(pair.ids, limit, closing, truncate)
      return { ids, types: ids === pair.ids ? pair.types : [...pair.types.slice(0, limit - closing), ...pair.types.slice(pair.types.length - closing)] }
    })
  }

  /** The score of each pair, in runs as the encoder embeds. */
  async score (pairs: Array<{ ids: number[], types: number[] }>, signal?: AbortSignal): Promise<number[]> {
    return inRuns(pairs.map(p => p.ids.length), async run => {
      const feeds = encoderFeeds(run.map(i => pairs[i].ids), run.map(i => pairs[i].types), this.#typeIds)
      signal?.throwIfAborted()
      const out = await this.session.run(feeds)
      const logits = asFloat32(out.logits)
      const labels = out.logits.dims.at(-1) as number
      const scores = run.map((_, b) => labels === 1 ? 1 / (1 + Math.exp(-logits[b])) : 1 / (1 + Math.exp(logits[2 * b] - logits[2 * b + 1])))
      freeOutputs(Object.values(out))
      return scores
    })
  }

  async release (): Promise<void> {
    await this.session.release()
  }
}
