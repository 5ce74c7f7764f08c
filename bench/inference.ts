/**
 * Inference benchmark: Ollama's `/api/generate` on a real daemon (its own
 * process on 127.0.0.1, temp repo, ephemeral ports), each figure as a ratio to
 * a bare onnxruntime greedy loop over the same model.onnx (part 8: a bare
 * llama.cpp loop), run in this process in the same run: the ceiling of any
 * generation loop on this machine.
 * Prints:
 *
 * 1. single-stream decode rate, greedy (temperature 0, repeat_penalty 1) for
 *    a fixed num_predict, from the daemon's eval_count/eval_duration and from
 *    the client's wall clock, against the bare loop's decode rate (the same
 *    count of tokens over the time from the first token to the last, as
 *    Ollama's eval_duration counts it);
 * 2. time to first token (request sent until the first non-empty NDJSON
 *    chunk), with the model loaded, against the bare loop's prefill forward
 *    pass and argmax, which yield the first token;
 * 3. aggregate tokens/s of 1, 4 and 16 concurrent streams (the runtime's
 *    continuous batching), each against one stream, beside the bare loop
 *    decoding as many sequences in one batch against its one sequence;
 * 4. the daemon's idle RSS with the model registered but not loaded, and its
 *    peak RSS (VmHWM) while it generates, against the model's bytes on disk;
 * 5. constrained decoding (a JSON Schema) against free decoding, one stream,
 *    and the schema's compile time;
 * 6. the time to first token of a chat's 10th turn with its earlier turns in
 *    the prefix cache, against the same turn with none of it cached;
 * 7. 16 streams of which 8 are constrained against 16 free ones;
 * 8. the same weights on both engines: the model as ONNX in the daemon, and
 *    converted to GGUF by packages/gguf and uploaded to the daemon, each
 *    against a bare llama.cpp loop over that file in this process
 *    (node-llama-cpp, one context with the options the runtime gives it,
 *    threads included; sequences stepped in lockstep), one stream and 16;
 *    and where llama.cpp's greedy tokens leave onnxruntime's, how far apart
 *    onnxruntime's logits put the two picks (a near-tie, or a fault). Skipped
 *    for a model the converter refuses (a quantized export, say);
 * 9. in the same runs, llama.cpp's own llama-server on that file (the peer a
 *    user would pick; bench/lib/llama-server.ts builds it once from the
 *    llama.cpp node-llama-cpp ships, when git, cmake and a compiler are
 *    there): one stream by each server's own decode time, 16 by aggregate,
 *    and how long after the last token each sends its end;
 * 10. in the same runs, llama.cpp's decode loop alone, llama-batched-bench
 *    (built likewise), the bare llama.cpp the issue's figures were taken
 *    with: one sequence and 16, random tokens, nothing sampled.
 *
 * The prompt is the first of a few candidates whose greedy continuation, run
 * in the bare loop, reaches num_predict without an end token, so that every
 * request generates the same tokens as the bare loop, and the bench checks
 * that the texts agree. Bare runs and single-stream requests alternate, and
 * every round of the concurrency runs each level, so that the shared
 * machine's changing load falls on both sides of every ratio.
 *
 * Env: BENCH_INFERENCE_MODEL_DIR (the embedded tiny-gpt) a model directory in
 * the Hugging Face ONNX layout, uploaded through /api/models/upload unless it
 * is the default, which the daemon registers itself;
 * BENCH_INFERENCE_SYNTHETIC=[<arch>:]<width>x<layers>[:<dtype>] instead
 * benchmarks an untrained decoder of that shape (64-wide heads) built for the
 * run: wide enough, reading its weights dominates a decoding step, which is
 * where batching pays. The arch is gpt2 (the default, with the default
 * model's tokenizer) or one of the runtime tests' families
 * (packages/runtime/test/helpers/family-models.ts, with its tokenizer and
 * template; `llama` is llama3); the dtype (fp32 by default) is an
 * onnx-community variant's: fp16 (float16 weights, cache and logits), q4
 * (MatMulNBits, blocks of 32), q4f16 (blocks of 128, float16 cache and
 * logits), int8 or uint8 (MatMulInteger). The bare loop feeds what the graph
 * takes: position_ids or not, the cache in its declared type;
 * BENCH_INFERENCE_TOKENS
 * (128) num_predict; BENCH_INFERENCE_RUNS (5) single-stream requests and bare
 * runs, of which the medians count; BENCH_INFERENCE_STREAMS (1,4,16) the
 * concurrency levels, 1 always among them as the ratios' base;
 * BENCH_INFERENCE_BATCH_RUNS (3) rounds per level;
 * BENCH_INFERENCE_THREADS onnxruntime's and llama.cpp's threads in the daemon
 * and the bare loops alike (unset: the runtime's defaults, as the daemon's
 * config);
 * BENCH_PROFILE_DIR=<dir> writes a --cpu-prof profile of the daemon there;
 * BENCH_DAEMON_NODE_OPTIONS adds Node flags to the daemon only.
 */
import { openAsBlob } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { DEFAULT_MODELS, assetDir } from '@node-daemon/models'
import { buildGptDecoder, gptHfConfig, initGptWeights, withFloat16Weights, withMatMulInteger, withMatMulNBits, writeModel } from '@node-daemon/onnx'
import type { Model } from '@node-daemon/onnx'
import { compileGrammar, vocabularyFromTokenizer } from '@node-daemon/grammar'
import { convertDecoder, readGguf, summarize } from '@node-daemon/gguf'
import { TextCodec, argmax, asFloat32, configCacheShape, engineOf, fed, ggufContextOptions, onnxSessionOptions } from '@node-daemon/runtime'
import { getLlama, LlamaLogLevel } from 'node-llama-cpp'
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp'
import * as ort from 'onnxruntime-node'
import { withCleanup } from './lib/cleanup.ts'
import { framesOf } from './lib/frames.ts'
import { batchedBench, llamaBuiltHere, llamaProgram, serverCompletion, startLlamaServer } from './lib/llama-server.ts'
import { numberFromEnv, profileDirFromEnv, say } from './lib/cli.ts'
import { memoryOf, postJson, resetPeakRss, sampleRssDuring, spawnDaemon, untilIdle, untilModelsListed } from './lib/daemon.ts'
import { MB } from './lib/files.ts'
import { createPhaseLog } from './lib/phases.ts'
import { percentile } from './lib/raft-load.ts'
import { FAMILIES, writeFamilyModel } from '../packages/runtime/test/helpers/family-models.ts'
import type { Family } from '../packages/runtime/test/helpers/family-models.ts'
import type { Cleanup } from './lib/cleanup.ts'
import type { ServerStream } from './lib/llama-server.ts'
import type { DaemonProcess } from './lib/daemon.ts'
import type { PhaseLog } from './lib/phases.ts'

const TARGET_DECODE = 0.9
const TARGET_BATCH = 4
/** The concurrency level the batching target is about. */
const TARGET_STREAMS = 16
/** Greedy and unpenalised, so that the daemon and the bare loop choose the same tokens; the seed only pins what greedy ignores. */
const GREEDY = { temperature: 0, repeat_penalty: 1, seed: 1 }
/**
 * Candidate prompts, in the register of the corpus the embedded models learn
 * from (Jane Austen), so that a trained model continues them rather than ending.
 */
const PROMPTS = [
  'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.',
  'Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to unite some of the best blessings of existence;',
  'The family of Dashwood had long been settled in Sussex. Their estate was large, and their residence was at Norland Park,',
  'Mr. Bennet was among the earliest of those who waited on Mr. Bingley. He had always intended to visit him,',
  'Elizabeth, as they drove along, watched for the first appearance of Pemberley Woods with some perturbation;',
  'She was a woman of mean understanding, little information, and uncertain temper.'
]
/** Keep the model loaded between requests for the whole run (Ollama's keep_alive: negative is forever). */
const KEEP_ALIVE = -1
const REQUEST_TIMEOUT_MS = 300_000
const REGISTER_TIMEOUT_MS = 120_000
const RSS_SAMPLE_MS = 50

/** The synthetic decoders' weights and inputs, by the names onnx-community gives its variants (model_<dtype>.onnx). */
const SYNTHETIC_DTYPES: Record<string, { ioType?: 'float16', transform?: (model: Model) => Model }> = {
  fp32: {},
  // An fp16 export: float16 weights, cache and logits.
  fp16: { ioType: 'float16', transform: model => withFloat16Weights(model) },
  q4: { transform: model => withMatMulNBits(model, 32) },
  q4f16: { ioType: 'float16', transform: model => withMatMulNBits(model, 128) },
  int8: { transform: model => withMatMulInteger(model, 'int8') },
  uint8: { transform: model => withMatMulInteger(model, 'uint8') }
}
/** The architectures a synthetic decoder takes: GPT-2 and the runtime tests' families that are not a dtype variant of another. */
const SYNTHETIC_ARCHS = ['gpt2', ...FAMILIES.filter(f => f.transform == null && f.config.ioType == null).map(f => f.name)]
/** Short names for the families whose test names carry a version. */
const ARCH_ALIASES: Record<string, string> = { llama: 'llama3', 'llama-gqa': 'llama3-gqa' }

interface Synthetic { arch: string, width: number, layers: number, dtype: string }

/** `[<arch>:]<width>x<layers>[:<dtype>]`, the bare shape meaning gpt2 in fp32. */
function parseSynthetic (spec: string): Synthetic {
  const m = /^(?:([a-z0-9-]+):)?(\d+)x(\d+)(?::([a-z0-9]+))?$/.exec(spec)
  const arch = ARCH_ALIASES[m?.[1] ?? ''] ?? m?.[1] ?? 'gpt2'
  const [width, layers, dtype] = [Number(m?.[2]), Number(m?.[3]), m?.[4] ?? 'fp32']
  if (m == null || !(width > 0 && width % 64 === 0 && width <= 4096 && layers > 0 && layers <= 64) || !SYNTHETIC_ARCHS.includes(arch) || !(dtype in SYNTHETIC_DTYPES) || (arch === 'gpt2' && SYNTHETIC_DTYPES[dtype].ioType != null)) {
    throw new Error(`BENCH_INFERENCE_SYNTHETIC=${spec}: expected [<arch>:]<width>x<layers>[:<dtype>], the width a multiple of 64 up to 4096, at most 64 layers, arch one of ${[...SYNTHETIC_ARCHS, ...Object.keys(ARCH_ALIASES)].join(', ')}, dtype one of ${Object.keys(SYNTHETIC_DTYPES).join(', ')} (gpt2: float32 inputs and outputs, so not fp16 or q4f16)`)
  }
  return { arch, width, layers, dtype }
}

interface Settings {
  modelDir: string
  synthetic?: Synthetic
  /** The embedded default, which the daemon registers itself. */
  isDefault: boolean
  tokens: number
  runs: number
  streams: number[]
  batchRuns: number
  /** onnxruntime's intra-op threads, in the daemon's config and the bare session alike; unset, the runtime's default for the model's size. */
  threads?: number
  profileDir?: string
  daemonNodeOptions?: string
}

function settingsFromEnv (): Settings {
  const fallback = assetDir(DEFAULT_MODELS.generate)
  const modelDir = resolve(process.env.BENCH_INFERENCE_MODEL_DIR || fallback)
  const streams = (process.env.BENCH_INFERENCE_STREAMS || '1,4,16').split(',').map(s => Number(s.trim()))
  if (streams.some(n => !Number.isInteger(n) || n <= 0 || n > 256)) throw new Error(`BENCH_INFERENCE_STREAMS=${process.env.BENCH_INFERENCE_STREAMS}: expected whole numbers, 0 < n <= 256, comma separated`)
  // Ratios are to one stream, so one stream is always measured first.
  const levels = [...new Set([1, ...streams])].sort((a, b) => a - b)
  const shape = process.env.BENCH_INFERENCE_SYNTHETIC
  return {
    modelDir,
    synthetic: shape != null && shape !== '' ? parseSynthetic(shape) : undefined,
    isDefault: modelDir === resolve(fallback),
    tokens: numberFromEnv('BENCH_INFERENCE_TOKENS', 128, 100_000, { whole: true }),
    runs: numberFromEnv('BENCH_INFERENCE_RUNS', 5, 1000, { whole: true }),
    streams: levels,
    batchRuns: numberFromEnv('BENCH_INFERENCE_BATCH_RUNS', 3, 1000, { whole: true }),
    // Unset: onnxruntime's default, as in the daemon's default config.
    threads: process.env.BENCH_INFERENCE_THREADS ? numberFromEnv('BENCH_INFERENCE_THREADS', 1, 256, { whole: true }) : undefined,
    profileDir: profileDirFromEnv(),
    daemonNodeOptions: process.env.BENCH_DAEMON_NODE_OPTIONS
  }
}

const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 0.5)
const fmt = (n: number, digits = 1): string => n.toFixed(digits)
const cores = (n: number): string => n.toFixed(2)

/** Aborted when the bench is interrupted, so that requests in flight end at once. */
let interrupted: AbortSignal = new AbortController().signal

// ---- the bare loop: onnxruntime-node alone, with the session options the runtime uses (CPU, all graph optimizations, the same threads)

interface Bare {
  session: ort.InferenceSession
  codec: TextCodec
  layers: number
  kvHeads: number
  headDim: number
  /** The cache's type as the graph declares it: fp16 exports keep it in float16. */
  cacheType: 'float32' | 'float16'
  positionIds: boolean
}

/** config.json and generation_config.json give end tokens as a number or a list. */
const idsOf = (value: unknown): number[] => typeof value === 'number' ? [value] : Array.isArray(value) ? value.filter((v): v is number => typeof v === 'number') : []

async function openBare (dir: string, threads?: number): Promise<Bare> {
  const json = async (name: string, required = true): Promise<Record<string, any>> =>
    readFile(join(dir, name), 'utf8').then(JSON.parse, (err) => { if (required) throw err; return {} })
  const [config, generation, tokenizer, tokenizerConfig] = await Promise.all([json('config.json'), json('generation_config.json', false), json('tokenizer.json'), json('tokenizer_config.json', false)])
  // The runtime's own tokenizer wrapper, so that both loops see the same token ids and the same end tokens; it is outside the timed loop.
  const codec = new TextCodec(tokenizer, tokenizerConfig, [...idsOf(generation.eos_token_id), ...idsOf(config.eos_token_id)])
  // The runtime's options for a file of this size: unset, its threads are the runtime's (one for a small model), not onnxruntime's default of every core.
  const file = join(dir, 'model.onnx')
  const session = await ort.InferenceSession.create(file, onnxSessionOptions((await stat(file)).size, { threads }))
  const layers = session.inputNames.filter(n => /^past_key_values\.\d+\.key$/.test(n)).length
  if (layers === 0) throw new Error(`${dir}/model.onnx has no past_key_values inputs: not a causal LM with a KV cache`)
  const meta = session.inputMetadata.find(m => m.name === 'past_key_values.0.key')
  const shape = meta?.isTensor === true ? meta.shape : []
  const stated = configCacheShape(config)
  const cacheType = meta?.isTensor === true ? meta.type : 'float32'
  if (cacheType !== 'float32' && cacheType !== 'float16') throw new Error(`${dir}/model.onnx keeps its cache in ${cacheType}`)
  return {
    session,
    codec,
    layers,
    kvHeads: typeof shape[1] === 'number' ? shape[1] : stated.kvHeads,
    headDim: typeof shape[3] === 'number' ? shape[3] : stated.headDim,
    cacheType,
    // GroupQueryAttention graphs and some exports count positions along the attention mask themselves.
    positionIds: session.inputNames.includes('position_ids')
  }
}

interface Greedy {
  tokens: number[]
  /** Prefill forward pass and argmax: until the first token is known. */
  firstMs: number
  /** From the first token to the last, as Ollama's eval_duration. */
  decodeMs: number
  /** Whether a token was an end token (the loop runs on regardless when `untilStop` is false). */
  ended: boolean
}

const int64 = (values: BigInt64Array, dims: number[]): ort.Tensor => new ort.Tensor('int64', values, dims)

/** `rows` copies of `values`, one after the other. */
function rowsOf (values: BigInt64Array, rows: number): BigInt64Array {
  const all = new BigInt64Array(values.length * rows)
  for (let r = 0; r < rows; r++) all.set(values, r * values.length)
  return all
}

/**
 * Greedy generation of `n` tokens with the KV cache: every present.* output
 * goes back in as past_key_values.* as it is, with no copy. With `rows` > 1
 * the same prompt decodes as that many sequences in one batch: batching's
 * gain for this model, with no scheduling around it.
 */
async function greedy (bare: Bare, prompt: number[], n: number, untilStop = false, rows = 1, observe?: (logits: Float32Array) => void): Promise<Greedy> {
  const empty = fed(new ort.Tensor(bare.cacheType, bare.cacheType === 'float16' ? new Uint16Array(0) : new Float32Array(0), [rows, bare.kvHeads, 0, bare.headDim]))
  const past: Record<string, ort.Tensor> = {}
  for (let l = 0; l < bare.layers; l++) {
    past[`past_key_values.${l}.key`] = empty
    past[`past_key_values.${l}.value`] = empty
  }
  const tokens: number[] = []
  let input = prompt
  let ended = false
  let firstMs = 0
  const t0 = performance.now()
  while (tokens.length < n) {
    // Tokens already in the cache: none before the prefill, then the prompt and all but the newest token.
    const cached = tokens.length === 0 ? 0 : prompt.length + tokens.length - 1
    const total = cached + input.length
    const feeds: Record<string, ort.Tensor> = {
      ...past,
      input_ids: int64(rowsOf(BigInt64Array.from(input, BigInt), rows), [rows, input.length]),
      attention_mask: int64(new BigInt64Array(rows * total).fill(1n), [rows, total])
    }
    if (bare.positionIds) feeds.position_ids = int64(rowsOf(BigInt64Array.from({ length: input.length }, (_, i) => BigInt(cached + i)), rows), [rows, input.length])
    const out = await bare.session.run(feeds)
    for (let l = 0; l < bare.layers; l++) {
      past[`past_key_values.${l}.key`] = fed(out[`present.${l}.key`])
      past[`past_key_values.${l}.value`] = fed(out[`present.${l}.value`])
    }
    const vocab = out.logits.dims[2]
    const last = asFloat32(out.logits).subarray((input.length - 1) * vocab, input.length * vocab)
    observe?.(last)
    const id = argmax(last)
    if (tokens.length === 0) firstMs = performance.now() - t0
    if (bare.codec.stopIds.has(id)) {
      ended = true
      if (untilStop) break
    }
    tokens.push(id)
    input = [id]
  }
  return { tokens, firstMs, decodeMs: performance.now() - t0 - firstMs, ended }
}

/** The text of greedy tokens up to the first end token, where the daemon stops. */
function textOf (bare: Bare, tokens: number[]): string {
  const end = tokens.findIndex(id => bare.codec.stopIds.has(id))
  return bare.codec.decode(end < 0 ? tokens : tokens.slice(0, end))
}

/** The first candidate prompt that greedy decoding carries to `n` tokens; else the one that goes furthest. */
async function pickPrompt (bare: Bare, n: number): Promise<{ prompt: string, ids: number[], reaches: number }> {
  let best = { prompt: '', ids: [] as number[], reaches: -1 }
  for (const prompt of PROMPTS) {
    // With the bos its tokenizer adds, as the runtime feeds a raw prompt (promptTokens).
    const text = bare.codec.encode(prompt)
    const ids = bare.codec.bos != null && text[0] !== bare.codec.bos ? [bare.codec.bos, ...text] : text
    const run = await greedy(bare, ids, n, true)
    if (run.tokens.length > best.reaches) best = { prompt, ids, reaches: run.tokens.length }
    if (!run.ended) break
  }
  return best
}

// ---- the daemon

interface Stream {
  /** ms from sending the request to the first non-empty chunk. */
  ttftMs: number
  /** ms from sending the request to the last text chunk, and to the final line. */
  lastChunkMs: number
  wallMs: number
  text: string
  evalCount: number
  evalNs: number
  promptEvalCount: number
  promptEvalNs: number
  loadNs: number
  doneReason: string
}

/** One streaming `/api/generate`, read line by line as a client would; `t0` is when it was sent. */
async function generate (d: DaemonProcess, model: string, prompt: string, tokens: number, format?: object): Promise<Stream> {
  return ollamaStream(d, '/api/generate', { model, prompt, raw: true, stream: true, keep_alive: KEEP_ALIVE, options: { ...GREEDY, num_predict: tokens }, ...(format != null ? { format } : {}) })
}

/** Times a streamed Ollama request, generate or chat, from the request sent to its done line. */
async function ollamaStream (d: DaemonProcess, path: string, body: object): Promise<Stream> {
  const t0 = performance.now()
  const res = await postJson(d, path, body, AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), interrupted]))
  if (!res.ok || res.body == null) throw new Error(`${d.label}: ${path} answered ${res.status}: ${await res.text().catch(() => '')}`)
  let ttftMs = -1
  let lastChunkMs = -1
  let text = ''
  // Ends with the done line, or when the request's timeout aborts the body.
  for await (const { frame, atMs } of framesOf(res.body, '\n', t0)) {
    const msg = JSON.parse(frame)
    if (msg.error != null) throw new Error(`${d.label}: ${path} failed mid-stream: ${msg.error}`)
    if (msg.done === true) {
      // A turn whose first token ends it (greedy after a prompt no cached prefix shares can be one) has its answer with the done line.
      return {
        ttftMs: ttftMs < 0 ? atMs : ttftMs,
        lastChunkMs: lastChunkMs < 0 ? atMs : lastChunkMs,
        wallMs: performance.now() - t0,
        text,
        evalCount: msg.eval_count,
        evalNs: msg.eval_duration,
        promptEvalCount: msg.prompt_eval_count,
        promptEvalNs: msg.prompt_eval_duration,
        loadNs: msg.load_duration,
        doneReason: msg.done_reason
      }
    }
    const part: string = msg.response ?? msg.message?.content ?? ''
    if (part === '') continue
    if (ttftMs < 0) ttftMs = atMs
    lastChunkMs = atMs
    text += part
  }
  throw new Error(`${d.label}: ${path} ended without a done line`)
}

/** ms of one GET /api/ps: the HTTP round trip of a request that does no work, the floor of any time to first token. */
async function roundTrip (d: DaemonProcess): Promise<number> {
  const t0 = performance.now()
  const res = await fetch(`${d.url}/api/ps`, { signal: AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), interrupted]) })
  await res.text()
  if (!res.ok) throw new Error(`${d.label}: /api/ps answered ${res.status}`)
  return performance.now() - t0
}

/** What runs a loaded model in the daemon, as its /api/distributed/status lists the models loaded. */
async function loadedEngine (d: DaemonProcess, model: string): Promise<string> {
  const res = await fetch(`${d.url}/api/distributed/status`, { signal: AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), interrupted]) })
  if (!res.ok) throw new Error(`${d.label}: /api/distributed/status answered ${res.status}`)
  const { runner_stats: stats } = await res.json() as { runner_stats: { models: Array<{ name: string, engine: string }> } }
  const loaded = stats.models.find(m => m.name === model || m.name === `${model}:latest`)
  if (loaded == null) throw new Error(`${d.label}: ${model} is not among the models loaded`)
  return loaded.engine
}

/** Every file of a model directory, by its path inside it. */
async function filesOf (dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    if (entry.isDirectory()) out.push(...await filesOf(dir, path))
    else if (entry.isFile()) out.push(path)
  }
  return out.sort()
}

/** Uploads a model directory as `name` through /api/models/upload, the form field first, each file named by its path. */
async function upload (d: DaemonProcess, dir: string, name: string): Promise<void> {
  const form = new FormData()
  form.append('modelId', name)
  form.append('description', 'uploaded by bench/inference.ts')
  for (const path of await filesOf(dir)) form.append('file', await openAsBlob(join(dir, path)), encodeURIComponent(path))
  const res = await fetch(`${d.url}/api/models/upload`, { method: 'POST', body: form, signal: AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), interrupted]) })
  if (res.status !== 201) throw new Error(`${d.label}: /api/models/upload answered ${res.status}: ${await res.text().catch(() => '')}`)
}

/**
 * An untrained decoder of the given shape, written to `dir`: a GPT with the
 * default model's tokenizer and token ids, or one of the runtime tests'
 * families (their builder, tokenizer and template) widened to 64-wide heads,
 * its key-value heads in the family's proportion and its MLP 8/3 of the
 * width (rounded up to 64), which weighs as a GPT's of the same shape.
 */
async function writeSynthetic (dir: string, { arch, width, layers, dtype }: Synthetic): Promise<void> {
  const { ioType, transform } = SYNTHETIC_DTYPES[dtype]
  if (arch === 'gpt2') {
    const base = assetDir(DEFAULT_MODELS.generate)
    await cp(base, dir, { recursive: true })
    const hf = JSON.parse(await readFile(join(base, 'config.json'), 'utf8'))
    const config = { vocabSize: hf.vocab_size, hiddenSize: width, layers, heads: width / 64, maxPositions: hf.n_positions, layerNormEps: hf.layer_norm_epsilon }
    const model = buildGptDecoder(config, initGptWeights(config, 1))
    await writeFile(join(dir, 'model.onnx'), writeModel(transform?.(model) ?? model).model)
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...gptHfConfig(config, { bosTokenId: hf.bos_token_id, eosTokenId: hf.eos_token_id[0] }), eos_token_id: hf.eos_token_id }, null, 2))
    return
  }
  const family = FAMILIES.find(f => f.name === arch) as Family
  const heads = width / 64
  const group = family.config.heads / family.config.kvHeads
  const config = {
    ...family.config,
    hiddenSize: width,
    layers,
    heads,
    kvHeads: heads % group === 0 ? heads / group : heads,
    headDim: 64,
    intermediateSize: Math.ceil(width * 8 / 3 / 64) * 64,
    ...(family.config.queryPreAttnScalar != null ? { queryPreAttnScalar: 64 } : {}),
    ...(ioType != null ? { ioType } : {})
  }
  await writeFamilyModel(dir, { ...family, config, transform }, 1)
}

/** Bytes of model.onnx and its external data, as the runtime counts a model's size. */
async function modelBytes (dir: string): Promise<number> {
  let size = 0
  for (const name of ['model.onnx', 'model.onnx_data', 'model.onnx.data']) size += await stat(join(dir, name)).then(s => s.size, () => 0)
  return size
}

async function startDaemon (cleanup: Cleanup, root: string, s: Settings): Promise<DaemonProcess> {
  const extra = [s.daemonNodeOptions ?? '']
  if (s.profileDir != null) extra.push('--cpu-prof', `--cpu-prof-dir=${s.profileDir}`, `--cpu-prof-name=inference-${process.pid}.cpuprofile`)
  const inference = [
    // Another model than the default: the default's registration (which loads it once) would only add noise.
    ...(s.isDefault ? [] : ['  default_models: false']),
    ...(s.threads == null ? [] : [`  threads: ${s.threads}`])
  ]
  const spawning = spawnDaemon({
    label: 'inference',
    repo: join(root, 'repo'),
    nodeOptions: extra.join(' ').trim(),
    config: inference.length === 0 ? undefined : `inference:\n${inference.join('\n')}\n`,
    signal: cleanup.signal
  })
  // Registered before the daemon is ready, so that an interrupt during its start still stops it.
  cleanup.defer(async () => { await (await spawning.catch(() => undefined))?.stop() })
  return spawning
}

interface Result { name: string, ok: boolean, figure: string }

const TARGET_CONSTRAINED = 0.9
const TARGET_PREFIX_TTFT = 0.3
/** A schema whose output is long, so that a constrained run decodes as many tokens as a free one. */
const WORDS = { type: 'object', properties: { words: { type: 'array', items: { type: 'string', maxLength: 10 }, minItems: 20, maxItems: 20 } }, required: ['words'], additionalProperties: false }
const rate = (r: Stream): number => r.evalCount / (r.evalNs / 1e9)

/**
 * 5 and 7: constrained decoding (a JSON Schema) against free decoding of the
 * same model and prompt, one stream at a time in alternation; the schema's
 * compile time here, and its first use in the daemon; then 16 streams of
 * which 8 are constrained against 16 free ones.
 */
async function constrained (d: DaemonProcess, name: string, prompt: string, s: Settings): Promise<Result[]> {
  const tokenizer = JSON.parse(await readFile(join(s.modelDir, 'tokenizer.json'), 'utf8'))
  const config = JSON.parse(await readFile(join(s.modelDir, 'config.json'), 'utf8'))
  const t0 = performance.now()
  const vocabulary = vocabularyFromTokenizer(tokenizer, idsOf(config.eos_token_id))
  const vocabMs = performance.now() - t0
  compileGrammar({ type: 'json-schema', schema: WORDS }, vocabulary)
  const compileMs = performance.now() - t0 - vocabMs
  const first = await generate(d, name, prompt, s.tokens, WORDS)
  const free: Stream[] = []
  const bound: Stream[] = []
  for (let i = 0; i < s.runs; i++) {
    interrupted.throwIfAborted()
    bound.push(await generate(d, name, prompt, s.tokens, WORDS))
    free.push(await generate(d, name, prompt, s.tokens))
  }
  for (const run of [first, ...bound]) {
    const words = JSON.parse(run.text).words
    if (!Array.isArray(words) || words.length !== 20) throw new Error(`a constrained output does not follow its schema: ${run.text}`)
  }
  const ratio = median(bound.map(rate)) / median(free.map(rate))
  say(`constrained decoding (a JSON Schema of 20 strings), 1 stream: ${fmt(median(bound.map(rate)))} tokens/s = ${ratio.toFixed(2)} x free decoding's ${fmt(median(free.map(rate)))} (target >= ${TARGET_CONSTRAINED})  [medians of ${s.runs} alternating runs; ${median(bound.map(r => r.evalCount))} tokens constrained, ${median(free.map(r => r.evalCount))} free; every output parsed and followed the schema; compile here ${fmt(compileMs, 1)} ms for ${vocabulary.tokens.length} tokens (+ ${fmt(vocabMs, 1)} ms to read the vocabulary's bytes); the daemon's first constrained request took ${fmt(first.wallMs - median(bound.map(r => r.wallMs)), 1)} ms more than later ones]`)
  const out: Result[] = [{ name: 'constrained', ok: ratio >= TARGET_CONSTRAINED, figure: `constrained ${ratio.toFixed(2)} x free (target >= ${TARGET_CONSTRAINED}), compile ${fmt(compileMs, 1)} ms` }]

  const mixed: number[] = []
  const all: number[] = []
  for (let r = 0; r < s.batchRuns; r++) {
    interrupted.throwIfAborted()
    for (const half of [false, true]) {
      const t = performance.now()
      const runs = await Promise.all(Array.from({ length: 16 }, async (_, i) => generate(d, name, prompt, s.tokens, half && i % 2 === 0 ? WORDS : undefined)))
      const tokensPerSecond = runs.reduce((n, x) => n + x.evalCount, 0) / ((performance.now() - t) / 1000)
      ;(half ? mixed : all).push(tokensPerSecond)
    }
  }
  const mixedRatio = median(mixed) / median(all)
  say(`16 streams of which 8 constrained: ${fmt(median(mixed))} tokens/s aggregate = ${mixedRatio.toFixed(2)} x 16 free streams' ${fmt(median(all))} (target >= ${TARGET_CONSTRAINED})  [medians of ${s.batchRuns} rounds, first send to last done line]`)
  out.push({ name: 'constrained-mixed', ok: mixedRatio >= TARGET_CONSTRAINED, figure: `8 of 16 constrained ${mixedRatio.toFixed(2)} x 16 free (target >= ${TARGET_CONSTRAINED})` })
  return out
}

/**
 * 6: time to first token of a chat's 10th turn with its earlier turns in
 * the prefix cache, against the same turn whose system prompt begins
 * differently, which no cached prefix shares.
 */
async function prefixCache (d: DaemonProcess, name: string, s: Settings): Promise<Result> {
  const turn = async (messages: Array<{ role: string, content: string }>): Promise<Stream> =>
    ollamaStream(d, '/api/chat', { model: name, messages, stream: true, keep_alive: KEEP_ALIVE, options: { ...GREEDY, num_predict: 8 } })
  const cached: Stream[] = []
  const uncached: Stream[] = []
  for (let run = 0; run < s.runs; run++) {
    interrupted.throwIfAborted()
    const messages = [{ role: 'system', content: `Conversation ${run}. You are Elizabeth Bennet, and you answer as she would, with wit.` }]
    let last: Stream | undefined
    for (let t = 1; t <= 10; t++) {
      messages.push({ role: 'user', content: `Pray, what do you think of Mr. Darcy now, on the ${t}th day at Netherfield?` })
      last = await turn(messages)
      if (t < 10) messages.push({ role: 'assistant', content: last.text })
    }
    cached.push(last as Stream)
    uncached.push(await turn([{ role: 'system', content: `${run} ${Math.random()}: ${messages[0].content}` }, ...messages.slice(1)]))
  }
  const ratio = median(cached.map(r => r.ttftMs)) / median(uncached.map(r => r.ttftMs))
  say(`prefix cache, 10th turn of a chat: time to first token ${fmt(median(cached.map(r => r.ttftMs)), 1)} ms = ${ratio.toFixed(2)} x ${fmt(median(uncached.map(r => r.ttftMs)), 1)} ms without a cached prefix (target <= ${TARGET_PREFIX_TTFT})  [medians of ${s.runs} chats; ${median(cached.map(r => r.promptEvalCount))} prompt tokens; prompt_eval ${fmt(median(cached.map(r => r.promptEvalNs)) / 1e6, 2)} ms against ${fmt(median(uncached.map(r => r.promptEvalNs)) / 1e6, 2)} ms]`)
  return { name: 'prefix-cache', ok: ratio <= TARGET_PREFIX_TTFT, figure: `10th-turn ttft ${ratio.toFixed(2)} x uncached (target <= ${TARGET_PREFIX_TTFT})` }
}

const TARGET_GGUF = 0.9
const TARGET_ONNX_VS_LLAMA = 0.8

// ---- the bare llama.cpp loop: node-llama-cpp alone, one context with the options the runtime gives the same file

interface BareLlama {
  model: LlamaModel
  context: LlamaContext
  sequences: LlamaContextSequence[]
  threads: number
  /** Positions each sequence holds. */
  contextSize: number
  /** Which llama.cpp binaries run, as the runtime names them. */
  engine: string
}

async function openBareLlama (file: string, threads?: number): Promise<BareLlama> {
  const { contextLength } = summarize(await readGguf(file))
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
  const options = ggufContextOptions((await stat(file)).size, contextLength, { sequences: TARGET_STREAMS, threads, mathCores: llama.cpuMathCores })
  const model = await llama.loadModel({ modelPath: file })
  // node-llama-cpp's public API at its fastest: a step's batch goes out once its rows have queued, not at the event loop's next turn.
  const context = await model.createContext({ ...options, batching: { dispatchSchedule: queueMicrotask } })
  return { model, context, sequences: Array.from({ length: options.sequences }, () => context.getSequence()), threads: context.currentThreads, contextSize: options.contextSize, engine: engineOf(llama) }
}

/**
 * Greedy generation of `n` tokens on `rows` sequences at once, each from an
 * empty cache: llama.cpp's own evaluate loop (one sampler per sequence,
 * temperature 0, no penalties, end tokens yielded like any), the sequences
 * stepped in lockstep so that node-llama-cpp decodes each step of all of
 * them in one batch.
 */
async function llamaGreedy (bare: BareLlama, prompt: number[], n: number, rows = 1): Promise<Greedy & { totalMs: number }> {
  const sequences = bare.sequences.slice(0, rows)
  await Promise.all(sequences.map(async seq => seq.clearHistory()))
  const t0 = performance.now()
  const loops = sequences.map(seq => seq.evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true }))
  const tokens: number[] = []
  let firstMs = 0
  try {
    while (tokens.length < n) {
      const steps = await Promise.all(loops.map(async loop => loop.next()))
      if (steps[0].done === true) throw new Error('llama.cpp picked no token')
      if (tokens.length === 0) firstMs = performance.now() - t0
      tokens.push(steps[0].value)
    }
  } finally {
    await Promise.all(loops.map(async loop => loop.return()))
  }
  const totalMs = performance.now() - t0
  return { tokens, firstMs, decodeMs: totalMs - firstMs, ended: false, totalMs }
}

const TARGET_VS_SERVER_ONE = 1.0
const TARGET_VS_SERVER_MANY = 2.0
const TARGET_DONE_LAG_MS = 0.5

/**
 * The daemon against llama-server on the same GGUF file, threads and
 * sequences: one stream by each server's own decode time (eval_duration,
 * timings.predicted_ms), many by the aggregate from the first send to the
 * last final event; and how long after its last token each sends its end.
 */
function vsLlamaServer (single: Array<{ onnx: Stream, gguf: Stream, server: ServerStream }>, many: Array<{ onnx: number, gguf: number, server: number }>, streams: number, threads: number): Result[] {
  const one = (r: { onnx: Stream, gguf: Stream, server: ServerStream }, key: 'onnx' | 'gguf'): number => rate(r[key]) / (r.server.evalCount / (r.server.evalMs / 1000))
  const best = (xs: Array<[string, number]>): [string, number] => xs.reduce((a, b) => (b[1] > a[1] ? b : a))
  const [oneEngine, oneRatio] = best([['ONNX', median(single.map(r => one(r, 'onnx')))], ['GGUF', median(single.map(r => one(r, 'gguf')))]])
  const [manyEngine, manyRatio] = best([['ONNX', median(many.map(r => r.onnx / r.server))], ['GGUF', median(many.map(r => r.gguf / r.server))]])
  const lag = (xs: Array<{ wallMs: number, lastChunkMs: number }>): number => median(xs.map(x => x.wallMs - x.lastChunkMs))
  const lags = { onnx: lag(single.map(r => r.onnx)), gguf: lag(single.map(r => r.gguf)), server: lag(single.map(r => r.server)) }
  const daemonLag = Math.max(lags.onnx, lags.gguf)
  say(`llama-server (node-llama-cpp's llama.cpp, the same file, ${threads} thread${threads === 1 ? '' : 's'}, ${streams} slots): 1 stream ${fmt(median(single.map(r => r.server.evalCount / (r.server.evalMs / 1000))))} tokens/s by its timings; daemon ONNX ${median(single.map(r => one(r, 'onnx'))).toFixed(2)} x, GGUF ${median(single.map(r => one(r, 'gguf'))).toFixed(2)} x (target >= ${TARGET_VS_SERVER_ONE}); ${streams} streams ${fmt(median(many.map(r => r.server)))} tokens/s aggregate, first send to last final event; daemon ONNX ${median(many.map(r => r.onnx / r.server)).toFixed(2)} x, GGUF ${median(many.map(r => r.gguf / r.server)).toFixed(2)} x (target >= ${TARGET_VS_SERVER_MANY}); the end after the last token: daemon ONNX ${fmt(lags.onnx, 2)} ms, GGUF ${fmt(lags.gguf, 2)} ms, llama-server ${fmt(lags.server, 2)} ms (target <= ${TARGET_DONE_LAG_MS} ms)  [medians of ${single.length} runs and ${many.length} rounds, each against the server's run beside it]`)
  return [
    { name: 'vs-llama-server-1', ok: oneRatio >= TARGET_VS_SERVER_ONE, figure: `1 stream ${oneRatio.toFixed(2)} x llama-server (${oneEngine}; target >= ${TARGET_VS_SERVER_ONE})` },
    { name: `vs-llama-server-${streams}`, ok: manyRatio >= TARGET_VS_SERVER_MANY, figure: `${streams} streams ${manyRatio.toFixed(2)} x llama-server (${manyEngine}; target >= ${TARGET_VS_SERVER_MANY})` },
    { name: 'done-line', ok: daemonLag <= TARGET_DONE_LAG_MS, figure: `done line ${fmt(daemonLag, 2)} ms after the last token (target <= ${TARGET_DONE_LAG_MS})` }
  ]
}

/** The lowest and highest of `xs`, as `min-max`. */
const range = (xs: number[], digits = 1): string => `${fmt(Math.min(...xs), digits)}-${fmt(Math.max(...xs), digits)}`

/** Where two token lists first differ, or -1. */
const divergence = (a: number[], b: number[]): number => {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i
  return -1
}

/**
 * The daemon against llama.cpp's own decode loop (llama-batched-bench) on the
 * same file and threads: one stream's eval rate against its one sequence's,
 * 16 streams' aggregate (first send to last done line) against its 16
 * sequences' steps. The loop samples nothing and has no server around it.
 */
function vsBatchedBench (single: Array<{ onnx: Stream, gguf: Stream, batched: number }>, many: Array<{ onnx: number, gguf: number, batched: number }>, streams: number, threads: number): Result[] {
  const one = (key: 'onnx' | 'gguf'): number => median(single.map(r => rate(r[key]) / r.batched))
  const all = (key: 'onnx' | 'gguf'): number => median(many.map(r => r[key] / r.batched))
  say(`llama-batched-bench (llama.cpp's decode loop alone: the same file, ${threads} thread${threads === 1 ? '' : 's'}, random tokens, no sampling): 1 sequence ${fmt(median(single.map(r => r.batched)))} tokens/s [${range(single.map(r => r.batched))}]; daemon GGUF ${one('gguf').toFixed(2)} x (target >= ${TARGET_GGUF}), ONNX ${one('onnx').toFixed(2)} x (target >= ${TARGET_ONNX_VS_LLAMA}); ${streams} sequences ${fmt(median(many.map(r => r.batched)))} tokens/s [${range(many.map(r => r.batched))}]; daemon GGUF ${all('gguf').toFixed(2)} x, ONNX ${all('onnx').toFixed(2)} x  [medians of ${single.length} runs and ${many.length} rounds, each against the loop's run beside it]`)
  return [
    { name: 'gguf-vs-llama-loop-1', ok: one('gguf') >= TARGET_GGUF, figure: `GGUF 1 stream ${one('gguf').toFixed(2)} x llama-batched-bench (target >= ${TARGET_GGUF})` },
    { name: `gguf-vs-llama-loop-${streams}`, ok: all('gguf') >= TARGET_GGUF, figure: `GGUF ${streams} streams ${all('gguf').toFixed(2)} x llama-batched-bench (target >= ${TARGET_GGUF})` },
    { name: 'onnx-vs-llama-loop-1', ok: one('onnx') >= TARGET_ONNX_VS_LLAMA, figure: `ONNX 1 stream ${one('onnx').toFixed(2)} x llama-batched-bench (target >= ${TARGET_ONNX_VS_LLAMA})` },
    { name: `onnx-vs-llama-loop-${streams}`, ok: all('onnx') >= TARGET_ONNX_VS_LLAMA, figure: `ONNX ${streams} streams ${all('onnx').toFixed(2)} x llama-batched-bench (target >= ${TARGET_ONNX_VS_LLAMA})` }
  ]
}

/**
 * 8: the same weights on both engines, in one run: the model as ONNX in the
 * daemon, converted to GGUF (packages/gguf) and uploaded to the daemon, and a
 * bare llama.cpp loop over that file here; one stream (eval_count /
 * eval_duration against the loop's first to last token) and 16 (aggregate,
 * first send to last done line, against the loop's 16 sequences from the
 * prompt to the last token). Each run takes all three in turn.
 */
async function sameWeights (d: DaemonProcess, cleanup: Cleanup, phases: PhaseLog, root: string, name: string, pick: { prompt: string, ids: number[] }, bare: Bare, s: Settings): Promise<Result[]> {
  const ggufName = `${name}-gguf`
  const dir = join(root, 'gguf')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `${ggufName}.F32.gguf`)
  try {
    await convertDecoder(s.modelDir, file, { name })
  } catch (err: any) {
    // What llama.cpp would compute otherwise (a quantized export, a sliding window it lacks) is refused by the converter.
    if (err.name !== 'GgufConversionError') throw err
    say(`same weights on llama.cpp: skipped, ${err.message as string}`)
    return []
  }
  // llama-server below is compiled for this CPU: so is the llama.cpp the daemon and the bare loop run, else the figures would compare compilers.
  await llamaBuiltHere(say, cleanup.signal)
  const bareLlama = await openBareLlama(file, s.threads)
  cleanup.defer(async () => { await bareLlama.context.dispose(); await bareLlama.model.dispose() })
  await upload(d, dir, ggufName)
  // The peer a user would pick instead: llama.cpp's own server on the same file, threads and sequences.
  const server = await llamaProgram('llama-server', say, cleanup.signal)
    .then(async bin => startLlamaServer(bin, file, { threads: bareLlama.threads, slots: TARGET_STREAMS, contextPerSlot: bareLlama.contextSize }))
    .catch((err: Error) => { say(`llama-server: not run, ${err.message}`); return undefined })
  if (server != null) cleanup.defer(server.stop)
  const serverSignal = (): AbortSignal => AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), interrupted])
  const peer = async (rows: number): Promise<ServerStream[] | undefined> => server == null ? undefined : Promise.all(Array.from({ length: rows }, async () => serverCompletion(server, pick.ids, s.tokens, serverSignal())))
  // And llama.cpp's decode loop with nothing around it, as the issue's figures for llama.cpp were taken.
  const batchedBin = await llamaProgram('llama-batched-bench', say, cleanup.signal)
    .catch((err: Error) => { say(`llama-batched-bench: not run, ${err.message}`); return undefined })
  const barest = async (rows: number): Promise<number | undefined> => batchedBin == null
    ? undefined
    : batchedBench(batchedBin, file, { threads: bareLlama.threads, contextPerSlot: bareLlama.contextSize, prompt: pick.ids.length, tokens: s.tokens, sequences: rows }, serverSignal())
  await peer(1)

  // Warm-up: the daemon loads the GGUF model, and both loops run once.
  const warm = await generate(d, ggufName, pick.prompt, s.tokens)
  await llamaGreedy(bareLlama, pick.ids, s.tokens)
  const daemonEngine = await loadedEngine(d, ggufName)
  // Each run takes all three in turn, and each daemon figure counts against the bare run beside it, so that the shared machine's load, which drifts from run to run, falls on both sides of a ratio.
  const single: Array<{ bare: number, onnx: Stream, gguf: Stream, server?: ServerStream, batched?: number, cpuUs: { bare: number, daemon: number, client: number } }> = []
  for (let i = 0; i < s.runs; i++) {
    interrupted.throwIfAborted()
    // Each measurement starts once the daemon finished what the last left in the background.
    await untilIdle(d.pid)
    const cpu0 = process.cpuUsage()
    const run = await llamaGreedy(bareLlama, pick.ids, s.tokens)
    const bareCpu = process.cpuUsage(cpu0)
    const onnx = (await phases.timed('onnx-single', [d], async () => generate(d, name, pick.prompt, s.tokens))).value
    await untilIdle(d.pid)
    const gguf = await phases.timed('gguf-single', [d], async () => generate(d, ggufName, pick.prompt, s.tokens))
    await untilIdle(d.pid)
    // CPU per token, prompt included on both sides: what the load of a shared machine changes least.
    const perToken = (cores: number): number => cores * gguf.seconds * 1e6 / gguf.value.evalCount
    const server = (await peer(1))?.[0]
    const batched = await barest(1)
    single.push({ bare: s.tokens / (run.decodeMs / 1000), onnx, gguf: gguf.value, server, batched, cpuUs: { bare: (bareCpu.user + bareCpu.system) / s.tokens, daemon: perToken(gguf.daemonCores[0]), client: perToken(gguf.benchCores) } })
  }
  const streams = TARGET_STREAMS
  const many: Array<{ bare: number, onnx: number, gguf: number, server?: number, batched?: number }> = []
  const manyTexts = { onnx: [] as string[], gguf: [] as string[] }
  for (let r = 0; r < s.batchRuns; r++) {
    interrupted.throwIfAborted()
    await untilIdle(d.pid)
    const b = await llamaGreedy(bareLlama, pick.ids, s.tokens, streams)
    const round: { bare: number, onnx: number, gguf: number, server?: number, batched?: number } = { bare: streams * s.tokens / (b.totalMs / 1000), onnx: 0, gguf: 0 }
    for (const [key, model] of [['onnx', name], ['gguf', ggufName]] as const) {
      await untilIdle(d.pid)
      const all = await phases.timed(`${key}-streams-${streams}`, [d], async () => Promise.all(Array.from({ length: streams }, async () => generate(d, model, pick.prompt, s.tokens))))
      round[key] = all.value.reduce((n, x) => n + x.evalCount, 0) / all.seconds
      manyTexts[key].push(...all.value.map(x => x.text))
    }
    await untilIdle(d.pid)
    const t0 = performance.now()
    const served = await peer(streams)
    if (served != null) round.server = served.reduce((n, x) => n + x.evalCount, 0) / ((performance.now() - t0) / 1000)
    round.batched = await barest(streams)
    many.push(round)
  }

  const ratios = <T extends { bare: number }>(runs: T[], of: (run: T) => number): { median: number, range: string } => {
    const xs = runs.map(run => of(run) / run.bare)
    return { median: median(xs), range: range(xs, 2) }
  }
  const figures = {
    ggufOne: ratios(single, r => rate(r.gguf)),
    onnxOne: ratios(single, r => rate(r.onnx)),
    ggufMany: ratios(many, r => r.gguf),
    onnxMany: ratios(many, r => r.onnx)
  }

  // The texts: llama.cpp's greedy tokens against onnxruntime's (the bare ONNX loop's), which agree where the maths do; a near-tie may tip either way.
  const llamaRun = await llamaGreedy(bareLlama, pick.ids, s.tokens)
  const onnxTokens = (await greedy(bare, pick.ids, s.tokens)).tokens
  const split = divergence(llamaRun.tokens, onnxTokens)
  let gap = 0
  if (split >= 0) await greedy(bare, [...pick.ids, ...onnxTokens.slice(0, split)], 1, false, 1, logits => { gap = logits[onnxTokens[split]] - logits[llamaRun.tokens[split]] })
  const [llamaText, onnxText] = [textOf(bare, llamaRun.tokens), textOf(bare, onnxTokens)]
  const agree = (texts: string[], to: string): string => `${texts.filter(t => t === to).length} of ${texts.length}`
  const bareOne = single.map(r => r.bare)
  say(`same weights, llama.cpp (${ggufName}, F32 GGUF converted by packages/gguf; node-llama-cpp ${bareLlama.threads} thread${bareLlama.threads === 1 ? '' : 's'}, as the daemon's context; engine: the bare loop's ${bareLlama.engine}, the daemon's ${daemonEngine}): bare llama.cpp loop (this process, one context, sequence.evaluate at temperature 0) decodes ${fmt(median(bareOne))} tokens/s for one sequence [${range(bareOne)}], ${fmt(median(many.map(r => r.bare)))} tokens/s aggregate for ${streams} sequences in one context [${range(many.map(r => r.bare))}, prompt to last token]`)
  say(`  1 stream: daemon GGUF ${fmt(median(single.map(r => rate(r.gguf))))} tokens/s = ${figures.ggufOne.median.toFixed(2)} x bare llama.cpp (target >= ${TARGET_GGUF}; ${figures.ggufOne.range}); daemon ONNX ${fmt(median(single.map(r => rate(r.onnx))))} tokens/s = ${figures.onnxOne.median.toFixed(2)} x (target >= ${TARGET_ONNX_VS_LLAMA}; ${figures.onnxOne.range})  [medians of ${s.runs} runs taking each in turn, each against its run's bare loop; eval_count/eval_duration against the loop's first to last token; cpu per token: bare loop ${fmt(median(single.map(r => r.cpuUs.bare)), 0)} us, daemon GGUF ${fmt(median(single.map(r => r.cpuUs.daemon)), 0)} us + its client ${fmt(median(single.map(r => r.cpuUs.client)), 0)} us]`)
  say(`  ${streams} streams: daemon GGUF ${fmt(median(many.map(r => r.gguf)))} tokens/s = ${figures.ggufMany.median.toFixed(2)} x bare llama.cpp's ${streams} sequences (target >= ${TARGET_GGUF}; ${figures.ggufMany.range}); daemon ONNX ${fmt(median(many.map(r => r.onnx)))} tokens/s = ${figures.onnxMany.median.toFixed(2)} x (target >= ${TARGET_ONNX_VS_LLAMA}; ${figures.onnxMany.range})  [medians of ${s.batchRuns} rounds, aggregate from the first send to the last done line]`)
  say(`  texts: llama.cpp's greedy tokens ${split < 0 ? 'are onnxruntime\'s' : `leave onnxruntime's at token ${split} of ${s.tokens}, where onnxruntime's logits put its pick ${gap.toExponential(1)} above llama.cpp's (${gap < 1e-3 ? 'a near-tie: F32 sums in another order' : 'MORE than a near-tie'})`}; the daemon's GGUF texts equal the bare llama.cpp loop's in ${agree([warm, ...single.map(r => r.gguf)].map(r => r.text), llamaText)} single requests and ${agree(manyTexts.gguf, llamaText)} concurrent ones; its ONNX texts equal the bare onnxruntime loop's in ${agree(single.map(r => r.onnx.text), onnxText)} and ${agree(manyTexts.onnx, onnxText)}`)
  const { ggufOne, onnxOne, ggufMany, onnxMany } = figures
  const barestOf = batchedBin == null ? [] : vsBatchedBench(single as Array<typeof single[number] & { batched: number }>, many as Array<typeof many[number] & { batched: number }>, streams, bareLlama.threads)
  const versus = server == null ? [] : vsLlamaServer(single as Array<typeof single[number] & { server: ServerStream }>, many as Array<typeof many[number] & { server: number }>, streams, bareLlama.threads)
  return [
    ...versus,
    ...barestOf,
    { name: 'gguf-1', ok: ggufOne.median >= TARGET_GGUF, figure: `GGUF 1 stream ${ggufOne.median.toFixed(2)} x bare llama.cpp (target >= ${TARGET_GGUF})` },
    { name: `gguf-${streams}`, ok: ggufMany.median >= TARGET_GGUF, figure: `GGUF ${streams} streams ${ggufMany.median.toFixed(2)} x bare llama.cpp (target >= ${TARGET_GGUF})` },
    { name: 'onnx-vs-llama-1', ok: onnxOne.median >= TARGET_ONNX_VS_LLAMA, figure: `ONNX 1 stream ${onnxOne.median.toFixed(2)} x bare llama.cpp (target >= ${TARGET_ONNX_VS_LLAMA})` },
    { name: `onnx-vs-llama-${streams}`, ok: onnxMany.median >= TARGET_ONNX_VS_LLAMA, figure: `ONNX ${streams} streams ${onnxMany.median.toFixed(2)} x bare llama.cpp (target >= ${TARGET_ONNX_VS_LLAMA})` }
  ]
}

export async function main (): Promise<number> {
  const s = settingsFromEnv()
  if (s.synthetic != null) {
    const { arch, width, layers, dtype } = s.synthetic
    const dir = join(await mkdtemp(join(tmpdir(), 'node-daemon-bench-synthetic-')), `synthetic-${arch}-${width}x${layers}-${dtype}`)
    await writeSynthetic(dir, s.synthetic)
    s.modelDir = dir
    s.isDefault = false
  }
  if (!(await stat(join(s.modelDir, 'model.onnx')).then(st => st.isFile(), () => false))) {
    throw new Error(`${s.modelDir}/model.onnx does not exist${s.isDefault ? ': the default model is not built yet; set BENCH_INFERENCE_MODEL_DIR to a model directory in the Hugging Face ONNX layout' : ''}`)
  }
  if (s.profileDir != null) await mkdir(s.profileDir, { recursive: true })
  const name = s.isDefault ? DEFAULT_MODELS.generate : `bench-${basename(s.modelDir).toLowerCase().replace(/[^a-z0-9._-]/g, '-')}`
  const size = await modelBytes(s.modelDir)
  say(`inference bench: model ${name} from ${s.modelDir} (${fmt(size / MB)} MB on disk), greedy num_predict ${s.tokens}, ${s.runs} runs, streams ${s.streams.join(',')} x ${s.batchRuns} rounds, onnxruntime threads ${s.threads ?? 'the runtime\'s default (one below 64 MB), in the daemon and the bare loop alike'}; node ${process.version}, ${cpus().length} cpus, load average ${loadavg().map(l => l.toFixed(2)).join(' ')}${s.profileDir != null ? `; cpu profile in ${s.profileDir}` : ''}`)
  const started = performance.now()
  return withCleanup(async (cleanup) => {
    interrupted = cleanup.signal
    if (s.synthetic != null) cleanup.defer(async () => rm(dirname(s.modelDir), { recursive: true, force: true }))
    const phases = createPhaseLog()
    const results: Result[] = []

    const bare = await openBare(s.modelDir, s.threads)
    cleanup.defer(async () => bare.session.release())
    const pick = await pickPrompt(bare, s.tokens)
    const runsToEnd = pick.reaches >= s.tokens
    say(`prompt: ${JSON.stringify(pick.prompt)} (${pick.ids.length} tokens); ${runsToEnd ? `its greedy continuation runs to ${s.tokens} tokens without an end token` : `every candidate ends early, this one after ${pick.reaches} tokens: the daemon's rates count its eval_count`}`)

    const root = await mkdtemp(join(tmpdir(), 'node-daemon-bench-inference-'))
    cleanup.defer(async () => rm(root, { recursive: true, force: true, maxRetries: 3 }))
    const d = await startDaemon(cleanup, root, s)
    if (s.isDefault) await untilModelsListed(d, [name], { timeoutMs: REGISTER_TIMEOUT_MS, signal: interrupted })
    else await upload(d, s.modelDir, name)
    const idle = await memoryOf(d.pid)
    const canReset = await resetPeakRss(d.pid)

    const { value: loaded, ...rss } = await sampleRssDuring(d.pid, async () => {
      // The first request loads the model; it and a bare run also warm up both loops' hot paths.
      const warm = await phases.timed('load', [d], async () => generate(d, name, pick.prompt, s.tokens))
      const afterLoad = await memoryOf(d.pid)
      say(`load: first request ${fmt(warm.seconds, 2)} s, of which load_duration ${fmt(warm.value.loadNs / 1e6, 0)} ms; rss after it ${fmt(afterLoad.rss / MB, 0)} MB`)
      await greedy(bare, pick.ids, s.tokens)

      // 1 and 2: one stream at a time, each request right after a bare run, so that both see the same load on the shared machine.
      const bareRuns: Greedy[] = []
      const runs: Array<Stream & { cores: number }> = []
      const trips: number[] = []
      for (let i = 0; i < s.runs; i++) {
        interrupted.throwIfAborted()
        await untilIdle(d.pid)
        bareRuns.push(await greedy(bare, pick.ids, s.tokens))
        trips.push(await roundTrip(d))
        const run = await phases.timed('single', [d], async () => generate(d, name, pick.prompt, s.tokens))
        runs.push({ ...run.value, cores: run.daemonCores[0] })
      }
      const bareRates = bareRuns.map(r => s.tokens / (r.decodeMs / 1000))
      const bareRate = median(bareRates)
      const bareFirst = median(bareRuns.map(r => r.firstMs))
      const bareText = textOf(bare, bareRuns[0].tokens)
      say(`bare onnxruntime loop (this process, InferenceSession on the same model.onnx, present.* fed back as past_key_values.*, argmax): decode ${fmt(bareRate)} tokens/s (${s.tokens} tokens over the time from the first token to the last), prefill + first token ${fmt(bareFirst, 2)} ms  [medians of ${s.runs} runs; decode min ${fmt(Math.min(...bareRates))} max ${fmt(Math.max(...bareRates))} tokens/s]`)

      const evalRate = median(runs.map(r => r.evalCount / (r.evalNs / 1e9)))
      const wallRate = median(runs.map(r => r.evalCount / (r.wallMs / 1000)))
      const streamRate = median(runs.map(r => (r.evalCount - 1) / ((r.lastChunkMs - r.ttftMs) / 1000)))
      const ttft = median(runs.map(r => r.ttftMs))
      const counts = [...new Set(runs.map(r => r.evalCount))].join(',')
      const same = runs.every(r => r.text === bareText)
      // Where a text first differs: late, it is a near-tie that another thread count's sums tip; early, a fault.
      const differs = Math.min(...runs.map(r => [...r.text, ''].findIndex((ch, i) => ch !== ([...bareText, ''][i] ?? ''))).filter(i => i >= 0))
      const decodeRatio = evalRate / bareRate
      say(`decode, 1 stream: ${fmt(evalRate)} tokens/s (eval_count/eval_duration) = ${decodeRatio.toFixed(2)} x the bare loop (target >= ${TARGET_DECODE}); client wall ${fmt(wallRate)} tokens/s = ${(wallRate / bareRate).toFixed(2)} x (eval_count over request sent to done line)  [medians of ${s.runs}; eval_count ${counts} of num_predict ${s.tokens}, done_reason ${runs[0].doneReason}; ${fmt(streamRate)} tokens/s between the first and last chunk; prompt_eval ${fmt(median(runs.map(r => r.promptEvalNs)) / 1e6, 2)} ms for ${runs[0].promptEvalCount} tokens; text ${same ? 'identical to the bare loop\'s' : `DIFFERENT from the bare loop's from character ${differs} of ${bareText.length}`}; daemon cpu ${cores(median(runs.map(r => r.cores)))} cores]`)
      results.push({ name: 'decode', ok: decodeRatio >= TARGET_DECODE, figure: `decode ${decodeRatio.toFixed(2)} x bare (target >= ${TARGET_DECODE})` })
      say(`time to first token: ${fmt(ttft, 1)} ms = ${(ttft / bareFirst).toFixed(1)} x the bare loop's prefill + first token (${fmt(bareFirst, 2)} ms)  [median of ${s.runs}, request sent to first non-empty NDJSON chunk, model loaded; min ${fmt(Math.min(...runs.map(r => r.ttftMs)), 1)} max ${fmt(Math.max(...runs.map(r => r.ttftMs)), 1)} ms; an HTTP round trip to /api/ps ${fmt(median(trips), 1)} ms; the done line came ${fmt(median(runs.map(r => r.wallMs - r.lastChunkMs)), 1)} ms after the last chunk]`)
      results.push({ name: 'ttft', ok: true, figure: `ttft ${fmt(ttft, 1)} ms (${(ttft / bareFirst).toFixed(1)} x bare)` })

      // 3: concurrent streams, all sent at once, the aggregate from the first send to the last done line; each round runs every level, so that load drift spreads over all.
      // Beside each level, the bare loop decodes as many sequences in one batch: what one batched forward pass gives a plain loop on this model and machine.
      const rounds = new Map<number, Array<{ rate: number, bare: number, ttft: number, cores: number, tokens: number }>>(s.streams.map(n => [n, []]))
      for (let r = 0; r < s.batchRuns; r++) {
        for (const streams of s.streams) {
          interrupted.throwIfAborted()
          await untilIdle(d.pid)
          const batched = await greedy(bare, pick.ids, s.tokens, false, streams)
          const round = await phases.timed(`streams-${streams}`, [d], async () => Promise.all(Array.from({ length: streams }, async () => generate(d, name, pick.prompt, s.tokens))))
          const tokens = round.value.reduce((n, x) => n + x.evalCount, 0)
          rounds.get(streams)?.push({ rate: tokens / round.seconds, bare: streams * s.tokens / (batched.decodeMs / 1000), ttft: median(round.value.map(x => x.ttftMs)), cores: round.daemonCores[0], tokens })
        }
      }
      const rateOf = (streams: number): number => median((rounds.get(streams) ?? []).map(r => r.rate))
      const bareOf = (streams: number): number => median((rounds.get(streams) ?? []).map(r => r.bare))
      const one = rateOf(1)
      for (const [streams, all] of rounds) {
        const rate = rateOf(streams)
        const ratio = rate / one
        const batchedBare = streams === 1 ? '' : `; the bare loop with ${streams} sequences in one batch: ${fmt(bareOf(streams))} tokens/s = ${(bareOf(streams) / bareOf(1)).toFixed(2)} x its one sequence`
        say(`${streams} concurrent stream${streams === 1 ? '' : 's'}: ${fmt(rate)} tokens/s aggregate = ${ratio.toFixed(2)} x one stream${streams === TARGET_STREAMS ? ` (target >= ${TARGET_BATCH})` : ''}  [median of ${all.length} rounds of ${all[0].tokens} tokens, first send to last done line; ${(rate / bareRate).toFixed(2)} x the bare loop's one-sequence decode${batchedBare}; median ttft ${fmt(median(all.map(r => r.ttft)), 0)} ms; daemon cpu ${cores(median(all.map(r => r.cores)))} cores]`)
        if (streams === TARGET_STREAMS) results.push({ name: 'batch', ok: ratio >= TARGET_BATCH, figure: `${streams} streams ${ratio.toFixed(2)} x one (target >= ${TARGET_BATCH})` })
      }

      results.push(...await constrained(d, name, pick.prompt, s))
      results.push(await prefixCache(d, name, s))
      return afterLoad
    }, RSS_SAMPLE_MS)

    // 4: VmHWM counts from the reset at idle, or from the start when resetting is refused, which bounds it either way.
    const peak = Math.max(rss.peak, rss.hwm)
    say(`rss: peak ${fmt(peak / MB, 0)} MB with the model loaded and generating = ${(peak / size).toFixed(1)} x the model's ${fmt(size / MB)} MB on disk; idle ${fmt(idle.rss / MB, 0)} MB before the model was loaded  [VmHWM ${canReset ? 'since idle' : 'since start (not resettable)'} and VmRSS sampled every ${RSS_SAMPLE_MS} ms; rss after the load ${fmt(loaded.rss / MB, 0)} MB; idle is after the model was ${s.isDefault ? 'registered by the daemon' : 'uploaded'}, a step that loads it once to check it: VmHWM then ${fmt(idle.hwm / MB, 0)} MB]`)
    results.push({ name: 'rss', ok: true, figure: `peak rss ${fmt(peak / MB, 0)} MB (${(peak / size).toFixed(1)} x model)` })

    results.push(...await sameWeights(d, cleanup, phases, root, name, pick, bare, s))

    if (s.profileDir != null) {
      const file = await phases.write(s.profileDir)
      say(`cpu profile (written as the daemon stops): ${s.profileDir}/inference-${process.pid}.cpuprofile; phases in ${file}; summarise with node bench/cpu-profile.ts <profile> [--phase single|streams-16]`)
    }
    const missed = results.filter(r => !r.ok)
    say(`summary: ${results.map(r => r.figure).join('; ')}${missed.length > 0 ? `; missed: ${missed.map(r => r.name).join(', ')}` : ''}; load average ${loadavg()[0].toFixed(2)} at the end; ${fmt((performance.now() - started) / 1000, 0)} s`)
    return 0
  })
}
