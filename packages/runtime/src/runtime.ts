/**
 * The models loaded on this node: one onnxruntime session per model, kept
 * while in use and for its keep-alive after, as Ollama keeps models; a
 * batcher per causal LM so that concurrent requests share forward passes.
 */
import { Batcher } from './batcher.ts'
import { ContextLengthError, InsufficientMemoryError, InvalidInferenceRequestError, UnsupportedModelError } from './errors.ts'
import { gib, memoryNeed } from './memory.ts'
import { compileGrammar } from '@node-daemon/grammar'
import { loadModel } from './model.ts'
import { isGgufModel, loadGguf, readGgufHeader } from './gguf.ts'
import { isGgufEncoder, loadGgufEncoder } from './gguf-encoder.ts'
import { callsGrammar, callTrigger, parseToolCalls, templateTakesTools, templateTools, toolSyntax, withTools } from './tools.ts'
import { MAX_TOP_LOGPROBS } from './sampling.ts'
import type { Constraint, GenerateRequest, GenerationEvent } from './batcher.ts'
import type { CrossEncoder, EmbedInput, Encoder, Engine, ExecutionProvider, InputType, LoadedModel, LoadOptions, ModelInfo } from './model.ts'
import type { Decoder } from './decoder.ts'
import type { GgufLM } from './gguf.ts'
import type { GgufEncoder } from './gguf-encoder.ts'
import type { ToolChoice, ToolSpec, ToolSyntax } from './tools.ts'
import type { GrammarSpec } from '@node-daemon/grammar'
import type { ChatMessage, TextCodec } from './text.ts'

export interface RuntimeComponents {
  /** Which execution provider this node uses, asked once at start; the CPU without it. */
  executionProvider?: () => Promise<ExecutionProvider>
  /** Bytes this process may still take (cgroup-aware); process.availableMemory() without it. */
  availableMemory?: () => number
  /** The operator's log, told once which llama.cpp binaries run GGUF models. */
  logger?: { info: (fields: Record<string, unknown>, message: string) => void }
}

/** What an operator whose GGUF models run on node-llama-cpp's prebuilt binaries can do about it (see LlamaBuild). */
const PREBUILT_LLAMA = 'GGUF models run on node-llama-cpp\'s prebuilt llama.cpp; `npx --no node-llama-cpp source download --gpu false` builds one for this CPU (offline; cmake and a C++ compiler), which decodes faster, and the daemon runs it after a restart'

export interface RuntimeInit {
  threads?: number
  /** How long an idle model stays loaded when a request does not say; Ollama's default is 5 minutes. */
  keepAliveMs?: number
  maxBatch?: number
  /** Bytes of keys and values each model keeps for prompts that begin as recent ones did. */
  prefixCacheBytes?: number
}

/**
 * The context of a request that does not set num_ctx, as Ollama's default:
 * a model's full context can need gigabytes of keys and values.
 */
export const DEFAULT_NUM_CTX = 4096
/** Ollama's default num_keep: the first tokens of a prompt cut to fit. */
const DEFAULT_NUM_KEEP = 4

/** What the output must be: any JSON value, a JSON object, or JSON valid against a schema. */
export type OutputFormat = { type: 'json' } | { type: 'json-object' } | { type: 'json-schema', schema: Record<string, unknown> }

/** How the output is constrained: a format, or the calls of tools. */
export interface OutputOptions {
  format?: OutputFormat
  /** 'auto' when tools are given and this is not. */
  toolChoice?: ToolChoice
  /** Whether a required call may be several; default true. */
  parallelToolCalls?: boolean
}

/** How the prompt of a generation is fitted to its context. */
export interface ContextOptions {
  /** The context to use, at most the model's; DEFAULT_NUM_CTX when unset. */
  numCtx?: number
  /** Tokens kept from the start of a single prompt that is cut to fit. */
  numKeep?: number
}

/** A model as the caller names it, and where its files are on disk. */
export interface ModelRef {
  /** Identifies the loaded session, e.g. the model's CID. */
  key: string
  name: string
  dir: string
  /** The variant to load of a repository with several (findModelFile); the key should tell variants apart. */
  dtype?: string
}

export interface UseOptions {
  /** ms; 0 unloads once idle, a negative value keeps the model loaded until told otherwise. */
  keepAliveMs?: number
  signal?: AbortSignal
}

export interface LoadedEntry {
  key: string
  name: string
  info: ModelInfo
  loadedAt: Date
  /** When the idle model will be unloaded; undefined while in use or kept forever. */
  expiresAt?: Date
  inUse: number
}

/** What the prompt of a generation is made of, before tokenization. */
export interface PromptInput {
  /** A conversation rendered with the chat template. */
  messages?: ChatMessage[]
  /** Tools the conversation may call, rendered as the template or the tools prompt has them. */
  tools?: ToolSpec[]
  /** A single prompt; with `system`, rendered as a two-message conversation unless `raw`. */
  prompt?: string
  system?: string
  /** Use `prompt` as it is, without the template. */
  raw?: boolean
  /** A jinja chat template that replaces the model's. */
  template?: string
  /** The prompt as token ids, used as they are: no template, no tokenizer. */
  tokens?: number[]
  /** Text after the gap that `prompt` comes before: the prompt becomes a fill-in-the-middle one, raw. */
  suffix?: string
  /** Token ids of an earlier exchange (Ollama's `context`), put before the prompt's. */
  context?: number[]
}

interface Slot {
  ref: ModelRef
  loading: Promise<Loaded>
  model?: Loaded
  batcher?: Batcher
  loadedAt: Date
  loadNs: number
  inUse: number
  keepAliveMs: number
  timer?: ReturnType<typeof setTimeout>
  expiresAt?: Date
}

export interface Lease {
  model: Loaded
  /** ns spent loading the model for this request; 0 when it was loaded already. */
  loadNs: number
  release: () => void
}

/** A model of either engine: onnxruntime's, or llama.cpp's for a GGUF file. */
export type Loaded = LoadedModel | GgufLM | GgufEncoder

/** The engine a model directory asks for: llama.cpp for a model.gguf (an embedding model's context, or a decoder's), onnxruntime for the rest. */
async function load (dir: string, options: LoadOptions & { sequences: number }): Promise<Loaded> {
  if (!await isGgufModel(dir)) return loadModel(dir, options)
  const header = await readGgufHeader(dir)
  return isGgufEncoder(header) ? loadGgufEncoder(header, options) : loadGguf(dir, options, header)
}

export class Runtime {
  readonly #components: RuntimeComponents
  readonly #init: Required<Omit<RuntimeInit, 'threads' | 'prefixCacheBytes'>> & { threads?: number, prefixCacheBytes?: number }
  readonly #slots = new Map<string, Slot>()
  #provider: ExecutionProvider = 'cpu'
  #started = false
  #llamaNoted = false

  constructor (components: RuntimeComponents = {}, init: RuntimeInit = {}) {
    this.#components = components
    this.#init = { keepAliveMs: init.keepAliveMs ?? 5 * 60_000, maxBatch: init.maxBatch ?? 16, threads: init.threads, prefixCacheBytes: init.prefixCacheBytes }
  }

  get executionProvider (): ExecutionProvider {
    return this.#provider
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#provider = await this.#components.executionProvider?.() ?? 'cpu'
    this.#started = true
  }

  async stop (): Promise<void> {
    this.#started = false
    await Promise.all([...this.#slots.keys()].map(async key => this.unload(key)))
  }

  #noteEngine (engine: Engine): void {
    if (engine === 'onnxruntime' || this.#llamaNoted) return
    this.#llamaNoted = true
    this.#components.logger?.info({ engine }, engine === 'llama.cpp (prebuilt)' ? PREBUILT_LLAMA : 'GGUF models run on llama.cpp built for this machine')
  }

  loaded (): LoadedEntry[] {
    return [...this.#slots.values()].filter(s => s.model != null).map(s => ({
      key: s.ref.key,
      name: s.ref.name,
      info: (s.model as Loaded).info,
      loadedAt: s.loadedAt,
      expiresAt: s.expiresAt,
      inUse: s.inUse
    }))
  }

  /** Loads the model if needed and holds it until `release()`. */
  async acquire (ref: ModelRef, options: UseOptions = {}): Promise<Lease> {
    if (!this.#started) throw new Error('runtime is not started')
    let slot = this.#slots.get(ref.key)
    let loadNs = 0
    if (slot == null) {
      const t0 = process.hrtime.bigint()
      const loading = this.#checkMemory(ref).then(async () => load(ref.dir, { executionProvider: this.#provider, threads: this.#init.threads, sequences: this.#init.maxBatch, dtype: ref.dtype }))
      slot = { ref, loading, loadedAt: new Date(), loadNs: 0, inUse: 0, keepAliveMs: this.#init.keepAliveMs }
      this.#slots.set(ref.key, slot)
      loading.then(model => {
        const s = this.#slots.get(ref.key)
        if (s == null) return
        s.model = model
        s.loadNs = Number(process.hrtime.bigint() - t0)
        this.#noteEngine(model.info.engine)
        // GroupQueryAttention reads each row's keys from its first position, where a batch's left-padded rows hold padding: such a graph decodes one sequence at a time.
        const maxBatch = model.info.ops?.includes('GroupQueryAttention') === true ? 1 : this.#init.maxBatch
        if (model.kind === 'causal-lm') s.batcher = new Batcher(model, { maxBatch, prefixCacheBytes: this.#init.prefixCacheBytes })
        // A worker that died took the session with it: the next request loads the model again. llama.cpp runs in this thread.
        if ('session' in model) {
          model.session.onExit(() => {
            if (this.#slots.get(ref.key) !== s) return
            clearTimeout(s.timer)
            this.#slots.delete(ref.key)
          })
        }
      }, () => this.#slots.delete(ref.key))
    }
    slot.inUse++
    clearTimeout(slot.timer)
    slot.expiresAt = undefined
    if (options.keepAliveMs != null) slot.keepAliveMs = options.keepAliveMs
    // Requests that waited for the load report its time, as Ollama's load_duration does.
    const waited = slot.model == null
    let model: Loaded
    try {
      model = await abortable(slot.loading, options.signal)
      if (waited) loadNs = slot.loadNs
    } catch (err) {
      this.#release(slot)
      throw err
    }
    let released = false
    return {
      model,
      loadNs,
      release: () => {
        if (released) return
        released = true
        this.#release(slot)
      }
    }
  }

  /** Refuses a model whose weights and one full context of keys and values do not fit the memory left. */
  async #checkMemory (ref: ModelRef): Promise<void> {
    const need = await memoryNeed(ref.dir, DEFAULT_NUM_CTX, { dtype: ref.dtype, executionProvider: this.#provider })
    const free = (this.#components.availableMemory ?? (() => process.availableMemory()))()
    if (need.weights + need.cache <= free) return
    throw new InsufficientMemoryError(`${ref.name} needs about ${gib(need.weights + need.cache)} (${gib(need.weights)} of weights and ${gib(need.cache)} of keys and values for ${need.tokens} tokens), and this node has ${gib(free)} free`)
  }

  #release (slot: Slot): void {
    slot.inUse--
    if (slot.inUse > 0 || this.#slots.get(slot.ref.key) !== slot) return
    if (slot.keepAliveMs === 0) {
      void this.unload(slot.ref.key)
    } else if (slot.keepAliveMs > 0) {
      slot.expiresAt = new Date(Date.now() + slot.keepAliveMs)
      slot.timer = setTimeout(() => { void this.unload(slot.ref.key) }, slot.keepAliveMs)
      slot.timer.unref()
    }
  }

  /** Unloads at once, or as soon as the requests using the model finish. */
  async unload (key: string): Promise<void> {
    const slot = this.#slots.get(key)
    if (slot == null) return
    clearTimeout(slot.timer)
    if (slot.inUse > 0) {
      slot.keepAliveMs = 0
      return
    }
    this.#slots.delete(key)
    const model = await slot.loading.catch(() => undefined)
    await model?.release()
  }

  /**
   * Generates from a causal LM: tokenizes the prompt, fitted to the context,
   * joins the model's batch and streams the events. The lease ends with the
   * stream. Also returns the prompt's ids and the model's codec, which tells
   * what tokens are.
   */
  async generate (ref: ModelRef, input: PromptInput, request: Omit<GenerateRequest, 'prompt' | 'contextLength' | 'constraint'> & ContextOptions & OutputOptions, options: UseOptions = {}): Promise<{ loadNs: number, events: AsyncIterable<GenerationEvent>, prompt: number[], codec: TextCodec }> {
    const lease = await this.acquire(ref, options)
    try {
      const model = expectKind(lease.model, 'causal-lm', ref.name)
      const { numCtx, numKeep, format, toolChoice, parallelToolCalls, ...rest } = request
      checkRequest(model, rest)
      const contextLength = Math.min(numCtx ?? DEFAULT_NUM_CTX, model.info.contextLength)
      const prompt = fitPrompt(model, input, { contextLength, maxTokens: request.maxTokens, numKeep })
      const output = outputOf(model, input, { format, toolChoice, parallelToolCalls })
      const budget = Math.min(contextLength - prompt.length, request.maxTokens >= 0 ? request.maxTokens : Infinity)
      if (output.minTokens > budget) throw new InvalidInferenceRequestError(`the output format needs at least ${output.minTokens} tokens, and this request leaves ${budget}`)
      const batcher = this.#slots.get(ref.key)?.batcher as Batcher
      const events = batcher.generate({ ...rest, prompt, contextLength, constraint: output.constraint, signal: options.signal })
      return { loadNs: lease.loadNs, events: released(withToolCalls(events, output), lease.release), prompt, codec: model.codec }
    } catch (err) {
      lease.release()
      throw err
    }
  }

  /**
   * Embeds texts or token ids. `dimensions` keeps the first components of
   * each embedding, normalized again: Matryoshka-trained models put the most
   * of their meaning there, as OpenAI's `dimensions` and Ollama's assume.
   */
  async embed (ref: ModelRef, inputs: EmbedInput[], options: UseOptions & { truncate?: boolean, dimensions?: number, inputType?: InputType } = {}): Promise<{ embeddings: Float32Array[], promptTokens: number, loadNs: number }> {
    const lease = await this.acquire(ref, options)
    try {
      const model = expectKind(lease.model, 'encoder', ref.name)
      const { dimensions } = options
      if (dimensions != null && (!Number.isInteger(dimensions) || dimensions < 1)) throw new InvalidInferenceRequestError(`dimensions: must be a whole number of at least 1, not ${dimensions}`)
      if (dimensions != null && dimensions > model.dimensions) throw new InvalidInferenceRequestError(`dimensions: ${ref.name} makes embeddings of ${model.dimensions} dimensions, fewer than the ${dimensions} asked for`)
      const tokenized = model.tokenize(inputs, options.truncate ?? true, options.inputType)
      const embeddings = inputs.length === 0 ? [] : await model.embed(tokenized, options.signal)
      return {
        embeddings: dimensions == null || dimensions === model.dimensions ? embeddings : embeddings.map(e => normalized(e.subarray(0, dimensions))),
        promptTokens: tokenized.reduce((n, t) => n + t.length, 0),
        loadNs: lease.loadNs
      }
    } finally {
      lease.release()
    }
  }

  /** Scores how well each document answers the query, in the documents' order, with a cross-encoder. */
  async rerank (ref: ModelRef, query: string, documents: string[], options: UseOptions & { truncate?: boolean } = {}): Promise<{ scores: number[], promptTokens: number, loadNs: number }> {
    const lease = await this.acquire(ref, options)
    try {
      const model = expectKind(lease.model, 'reranker', ref.name)
      const pairs = model.tokenize(query, documents, options.truncate ?? true)
      const scores = pairs.length === 0 ? [] : await model.score(pairs, options.signal)
      return { scores, promptTokens: pairs.reduce((n, p) => n + p.ids.length, 0), loadNs: lease.loadNs }
    } finally {
      lease.release()
    }
  }
}

/** A copy of `v` scaled to unit length. */
function normalized (v: Float32Array): Float32Array {
  let norm = 0
  for (const x of v) norm += x * x
  norm = Math.sqrt(norm) || 1
  return v.map(x => x / norm)
}

/** The prompt's token ids: given as they are, a fill-in-the-middle prompt, or the rendered text tokenized; after the context. */
export function promptTokens (model: Decoder, input: PromptInput): number[] {
  const vocab = vocabSize(model)
  const ids = input.tokens ?? (input.suffix != null && input.suffix !== '' ? fillInTheMiddle(model, input.prompt ?? '', input.suffix) : model.codec.encode(renderPrompt(model, input)))
  for (const [what, list] of [['prompt', input.tokens], ['context', input.context]] as const) {
    const bad = list?.find(id => !Number.isInteger(id) || id < 0 || id >= vocab)
    if (bad != null) throw new InvalidInferenceRequestError(`${what}: token id ${bad} is not in the vocabulary of ${vocab} tokens`)
  }
  if (input.context != null && input.context.length > 0) return [...input.context, ...ids]
  // Given ids are taken as they are; a text gets the bos its tokenizer would add, once (a template may have written it).
  const bos = input.tokens == null ? model.codec.bos : undefined
  return bos != null && ids[0] !== bos ? [bos, ...ids] : ids
}

/** The prefix-suffix-middle order that FIM-trained models (StarCoder, Qwen coder, CodeLlama) take. */
function fillInTheMiddle (model: Decoder, prefix: string, suffix: string): number[] {
  const fim = model.codec.fim
  if (fim == null) throw new InvalidInferenceRequestError('suffix: this model has no fill-in-the-middle tokens')
  return [fim.prefix, ...model.codec.encode(prefix), fim.suffix, ...model.codec.encode(suffix), fim.middle]
}

/** The logits' width: config.json's vocab_size, else the tokenizer's. */
function vocabSize (model: Decoder): number {
  const size = model.info.config.vocab_size
  return typeof size === 'number' && size > 0 ? size : model.codec.vocabSize
}

/** What only the model can check of a request: the token ids of its logit bias, and how many alternatives it asks for. */
function checkRequest (model: Decoder, request: Omit<GenerateRequest, 'prompt'>): void {
  const vocab = vocabSize(model)
  for (const id of Object.keys(request.sampling.logitBias ?? {})) {
    if (Number(id) >= vocab) throw new InvalidInferenceRequestError(`logit_bias: token id ${id} is not in the vocabulary of ${vocab} tokens`)
  }
  const n = request.logprobs
  if (n != null && (!Number.isInteger(n) || n < 0 || n > MAX_TOP_LOGPROBS)) throw new InvalidInferenceRequestError(`top_logprobs: must be a whole number from 0 to ${MAX_TOP_LOGPROBS}`)
}

export function renderPrompt (model: Decoder, input: PromptInput): string {
  if (input.messages != null) {
    const template = input.template ?? model.codec.templateSource
    const tools = input.tools ?? []
    const messages = tools.length > 0 || input.messages.some(m => m.role === 'tool' || m.tool_calls != null) ? withTools(input.messages, tools, template) : input.messages
    return model.codec.chat(messages, input.template, templateTakesTools(template) ? templateTools(tools) : undefined)
  }
  if (input.prompt == null) throw new InvalidInferenceRequestError('a prompt or messages are required')
  if (input.raw === true) return input.prompt
  const messages: ChatMessage[] = []
  if (input.system != null && input.system !== '') messages.push({ role: 'system', content: input.system })
  messages.push({ role: 'user', content: input.prompt })
  // Without a template of its own a model continues the prompt as written, which is what a base LM is for.
  if (!model.codec.hasChatTemplate && input.template == null) return (input.system != null && input.system !== '' ? `${input.system}\n\n` : '') + input.prompt
  return model.codec.chat(messages, input.template)
}

interface Output {
  constraint?: Constraint
  /** Tokens the shortest output takes. */
  minTokens: number
  /** Where the calls are read from the text, when tools may be called. */
  tools?: { syntax: ToolSyntax, specs: ToolSpec[] }
}

/**
 * The constraint of a request's output. A required or named tool call is
 * constrained from the first token; a format, from the first token too; with
 * tools the model may call, the text is free until it begins a call, which is
 * then constrained to the tools' schemas.
 */
function outputOf (model: Decoder, input: PromptInput, o: OutputOptions): Output {
  const specs = input.messages != null ? input.tools ?? [] : []
  const choice = specs.length === 0 ? 'none' : o.toolChoice ?? 'auto'
  const syntax = toolSyntax(input.template ?? model.codec.templateSource)
  const compiled = (spec: GrammarSpec): ReturnType<typeof compileGrammar> => {
    try {
      return compileGrammar(spec, model.codec.vocabulary)
    } catch (err: any) {
      // A schema that passed checkSchema can still have no output, or an automaton past any reasonable size: the request's fault either way.
      throw new InvalidInferenceRequestError(`the output format cannot be generated: ${err.message}`)
    }
  }
  if (choice !== 'none' && choice !== 'auto') {
    const chosen = typeof choice === 'object' ? specs.filter(t => t.name === choice.name) : specs
    if (chosen.length === 0) throw new InvalidInferenceRequestError(`tool_choice names the function ${JSON.stringify((choice as { name: string }).name)}, which is not among the tools`)
    const grammar = compiled(callsGrammar(chosen, syntax, { parallel: typeof choice !== 'object' && o.parallelToolCalls !== false, triggered: false }))
    return { constraint: { start: () => grammar.matcher(), hidden: true }, minTokens: grammar.minTokens, tools: { syntax, specs } }
  }
  if (o.format != null) {
    const grammar = compiled(o.format.type === 'json-schema' ? { type: 'json-schema', schema: o.format.schema } : o.format)
    return { constraint: { start: () => grammar.matcher() }, minTokens: grammar.minTokens }
  }
  if (choice === 'none') return { minTokens: 0 }
  const trigger = callTrigger(syntax)
  if (trigger == null) return { minTokens: 0, tools: { syntax, specs } }
  const grammar = compiled(callsGrammar(specs, syntax, { parallel: o.parallelToolCalls !== false, triggered: true }))
  return { constraint: { start: () => grammar.matcher(), trigger, hidden: true }, minTokens: 0, tools: { syntax, specs } }
}

/** The done event with the calls the text made, and the text without them. */
async function * withToolCalls (events: AsyncIterable<GenerationEvent>, output: Output): AsyncIterable<GenerationEvent> {
  for await (const event of events) {
    if (event.type !== 'done' || output.tools == null) {
      yield event
      continue
    }
    const { content, calls } = parseToolCalls(event.stats.text, output.tools.syntax, output.tools.specs)
    yield calls.length === 0 ? event : { type: 'done', stats: { ...event.stats, text: content, toolCalls: calls } }
  }
}

/** Room a prompt that must be cut leaves for the answer: what num_predict asks, at most half the context. */
function answerRoom (contextLength: number, maxTokens: number): number {
  return Math.min(maxTokens > 0 ? maxTokens : Math.ceil(contextLength / 4), Math.floor(contextLength / 2))
}

/**
 * The prompt's tokens, cut to fit the context as Ollama cuts them: a
 * conversation loses its oldest turns, keeping its system messages and
 * its newest message; a single prompt keeps its first `numKeep` tokens and
 * as many of its last as fit. A prompt is cut only when it does not fit
 * whole, and then leaves room for the answer. A conversation loses a whole
 * number of halves of that room, as llama.cpp's context shift discards half
 * the context: its next turns, each longer, lose the same first turns until
 * another half is due, so their prompts begin as this one does and the
 * prefix cache serves them, where cutting to the least that fits would cut
 * a little more each turn and miss it every time.
 */
export function fitPrompt (model: Decoder, input: PromptInput, fit: { contextLength: number, maxTokens: number, numKeep?: number }): number[] {
  const encode = (i: PromptInput): number[] => promptTokens(model, i)
  const whole = encode(input)
  if (whole.length < fit.contextLength) return whole
  const limit = fit.contextLength - answerRoom(fit.contextLength, fit.maxTokens)
  const messages = input.messages
  if (messages != null) {
    const half = Math.max(1, Math.floor(limit / 2))
    // The fewest tokens to drop, rounded up to whole halves; counted in the whole prompt, in which earlier turns keep their tokens as turns are added.
    const cut = Math.ceil((whole.length - limit) / half) * half
    const turns = messages.flatMap((m, i) => m.role === 'system' ? [] : [i])
    const rendered = new Map<number, number[]>()
    const keeping = (dropped: number): number[] => {
      let tokens = rendered.get(dropped)
      if (tokens == null) {
        tokens = encode({ ...input, messages: messages.filter((m, i) => m.role === 'system' || i >= turns[dropped]) })
        rendered.set(dropped, tokens)
      }
      return tokens
    }
    if (turns.length === 0 || keeping(turns.length - 1).length >= fit.contextLength) {
      throw new ContextLengthError(`the newest message and the system prompt take ${turns.length === 0 ? whole.length : keeping(turns.length - 1).length} tokens, more than the context of ${fit.contextLength}`)
    }
    // They fit, but leave the answer less room than it would like.
    if (keeping(turns.length - 1).length > limit) return keeping(turns.length - 1)
    // The fewest turns dropped that take `cut` tokens away; the length falls as more are dropped, so a binary search renders log(n) times.
    let low = 1
    let high = turns.length - 1
    while (low < high) {
      const middle = (low + high) >> 1
      if (keeping(middle).length <= whole.length - cut) high = middle
      else low = middle + 1
    }
    return keeping(low)
  }
  const keep = Math.min(fit.numKeep ?? DEFAULT_NUM_KEEP, limit - 1)
  return [...whole.slice(0, keep), ...whole.slice(whole.length - (limit - keep))]
}

function expectKind (model: Loaded, kind: 'causal-lm', name: string): Decoder
function expectKind (model: Loaded, kind: 'encoder', name: string): Encoder | GgufEncoder
function expectKind (model: Loaded, kind: 'reranker', name: string): CrossEncoder
function expectKind (model: Loaded, kind: Loaded['kind'], name: string): Loaded | Decoder {
  const does = { 'causal-lm': 'generate', encoder: 'embeddings', reranker: 'reranking' }
  if (model.kind !== kind) throw new UnsupportedModelError(`"${name}" does not support ${does[kind]}`)
  return model
}

async function abortable<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) return promise
  signal.throwIfAborted()
  return Promise.race([promise, new Promise<never>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))])
}

async function * released<T> (source: AsyncIterable<T>, release: () => void): AsyncIterable<T> {
  try {
    yield * source
  } finally {
    release()
  }
}
