/**
 * The models loaded on this node: one onnxruntime session per model, kept
 * while in use and for its keep-alive after, as Ollama keeps models; a
 * batcher per causal LM so that concurrent requests share forward passes.
 */
import { Batcher } from './batcher.ts'
import { InvalidInferenceRequestError, UnsupportedModelError } from './errors.ts'
import { loadModel } from './model.ts'
import type { GenerateRequest, GenerationEvent } from './batcher.ts'
import { MAX_TOP_LOGPROBS } from './sampling.ts'
import type { CausalLM, Encoder, ExecutionProvider, LoadedModel, ModelInfo } from './model.ts'
import type { ChatMessage, TextCodec } from './text.ts'

export interface RuntimeComponents {
  /** Which execution provider this node uses, asked once at start; the CPU without it. */
  executionProvider?: () => Promise<ExecutionProvider>
}

export interface RuntimeInit {
  threads?: number
  /** How long an idle model stays loaded when a request does not say; Ollama's default is 5 minutes. */
  keepAliveMs?: number
  maxBatch?: number
}

/** A model as the caller names it, and where its files are on disk. */
export interface ModelRef {
  /** Identifies the loaded session, e.g. the model's CID. */
  key: string
  name: string
  dir: string
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
  loading: Promise<LoadedModel>
  model?: LoadedModel
  batcher?: Batcher
  loadedAt: Date
  loadNs: number
  inUse: number
  keepAliveMs: number
  timer?: ReturnType<typeof setTimeout>
  expiresAt?: Date
}

export interface Lease {
  model: LoadedModel
  /** ns spent loading the model for this request; 0 when it was loaded already. */
  loadNs: number
  release: () => void
}

export class Runtime {
  readonly #components: RuntimeComponents
  readonly #init: Required<Omit<RuntimeInit, 'threads'>> & { threads?: number }
  readonly #slots = new Map<string, Slot>()
  #provider: ExecutionProvider = 'cpu'
  #started = false

  constructor (components: RuntimeComponents = {}, init: RuntimeInit = {}) {
    this.#components = components
    this.#init = { keepAliveMs: init.keepAliveMs ?? 5 * 60_000, maxBatch: init.maxBatch ?? 16, threads: init.threads }
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

  loaded (): LoadedEntry[] {
    return [...this.#slots.values()].filter(s => s.model != null).map(s => ({
      key: s.ref.key,
      name: s.ref.name,
      info: (s.model as LoadedModel).info,
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
      const loading = loadModel(ref.dir, { executionProvider: this.#provider, threads: this.#init.threads })
      slot = { ref, loading, loadedAt: new Date(), loadNs: 0, inUse: 0, keepAliveMs: this.#init.keepAliveMs }
      this.#slots.set(ref.key, slot)
      loading.then(model => {
        const s = this.#slots.get(ref.key)
        if (s == null) return
        s.model = model
        s.loadNs = Number(process.hrtime.bigint() - t0)
        if (model.kind === 'causal-lm') s.batcher = new Batcher(model, { maxBatch: this.#init.maxBatch })
      }, () => this.#slots.delete(ref.key))
    }
    slot.inUse++
    clearTimeout(slot.timer)
    slot.expiresAt = undefined
    if (options.keepAliveMs != null) slot.keepAliveMs = options.keepAliveMs
    // Requests that waited for the load report its time, as Ollama's load_duration does.
    const waited = slot.model == null
    let model: LoadedModel
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
   * Generates from a causal LM: tokenizes the prompt, joins the model's batch
   * and streams the events. The lease ends with the stream. Also returns the
   * prompt's ids and the model's codec, which tells what tokens are.
   */
  async generate (ref: ModelRef, input: PromptInput, request: Omit<GenerateRequest, 'prompt'>, options: UseOptions = {}): Promise<{ loadNs: number, events: AsyncIterable<GenerationEvent>, prompt: number[], codec: TextCodec }> {
    const lease = await this.acquire(ref, options)
    try {
      const model = expectKind(lease.model, 'causal-lm', ref.name)
      const prompt = promptTokens(model, input)
      checkRequest(model, request)
      const batcher = this.#slots.get(ref.key)?.batcher as Batcher
      const events = batcher.generate({ ...request, prompt, signal: options.signal })
      return { loadNs: lease.loadNs, events: released(events, lease.release), prompt, codec: model.codec }
    } catch (err) {
      lease.release()
      throw err
    }
  }

  async embed (ref: ModelRef, texts: string[], options: UseOptions & { truncate?: boolean } = {}): Promise<{ embeddings: Float32Array[], promptTokens: number, loadNs: number }> {
    const lease = await this.acquire(ref, options)
    try {
      const model = expectKind(lease.model, 'encoder', ref.name)
      const tokenized = model.tokenize(texts, options.truncate ?? true)
      const embeddings = texts.length === 0 ? [] : await model.embed(tokenized, options.signal)
      return { embeddings, promptTokens: tokenized.reduce((n, t) => n + t.length, 0), loadNs: lease.loadNs }
    } finally {
      lease.release()
    }
  }
}

/** The prompt's token ids: given as they are, a fill-in-the-middle prompt, or the rendered text tokenized; after the context. */
export function promptTokens (model: CausalLM, input: PromptInput): number[] {
  const vocab = vocabSize(model)
  const ids = input.tokens ?? (input.suffix != null && input.suffix !== '' ? fillInTheMiddle(model, input.prompt ?? '', input.suffix) : model.codec.encode(renderPrompt(model, input)))
  for (const [what, list] of [['prompt', input.tokens], ['context', input.context]] as const) {
    const bad = list?.find(id => !Number.isInteger(id) || id < 0 || id >= vocab)
    if (bad != null) throw new InvalidInferenceRequestError(`${what}: token id ${bad} is not in the vocabulary of ${vocab} tokens`)
  }
  return [...(input.context ?? []), ...ids]
}

/** The prefix-suffix-middle order that FIM-trained models (StarCoder, Qwen coder, CodeLlama) take. */
function fillInTheMiddle (model: CausalLM, prefix: string, suffix: string): number[] {
  const fim = model.codec.fim
  if (fim == null) throw new InvalidInferenceRequestError('suffix: this model has no fill-in-the-middle tokens')
  return [fim.prefix, ...model.codec.encode(prefix), fim.suffix, ...model.codec.encode(suffix), fim.middle]
}

/** The logits' width: config.json's vocab_size, else the tokenizer's. */
function vocabSize (model: CausalLM): number {
  const size = model.info.config.vocab_size
  return typeof size === 'number' && size > 0 ? size : model.codec.vocabSize
}

/** What only the model can check of a request: the token ids of its logit bias, and how many alternatives it asks for. */
function checkRequest (model: CausalLM, request: Omit<GenerateRequest, 'prompt'>): void {
  const vocab = vocabSize(model)
  for (const id of Object.keys(request.sampling.logitBias ?? {})) {
    if (Number(id) >= vocab) throw new InvalidInferenceRequestError(`logit_bias: token id ${id} is not in the vocabulary of ${vocab} tokens`)
  }
  const n = request.logprobs
  if (n != null && (!Number.isInteger(n) || n < 0 || n > MAX_TOP_LOGPROBS)) throw new InvalidInferenceRequestError(`top_logprobs: must be a whole number from 0 to ${MAX_TOP_LOGPROBS}`)
}

export function renderPrompt (model: CausalLM, input: PromptInput): string {
  if (input.messages != null) return model.codec.chat(input.messages, input.template)
  if (input.prompt == null) throw new InvalidInferenceRequestError('a prompt or messages are required')
  if (input.raw === true) return input.prompt
  const messages: ChatMessage[] = []
  if (input.system != null && input.system !== '') messages.push({ role: 'system', content: input.system })
  messages.push({ role: 'user', content: input.prompt })
  // Without a template of its own a model continues the prompt as written, which is what a base LM is for.
  if (!model.codec.hasChatTemplate && input.template == null) return (input.system != null && input.system !== '' ? `${input.system}\n\n` : '') + input.prompt
  return model.codec.chat(messages, input.template)
}

function expectKind (model: LoadedModel, kind: 'causal-lm', name: string): CausalLM
function expectKind (model: LoadedModel, kind: 'encoder', name: string): Encoder
function expectKind (model: LoadedModel, kind: LoadedModel['kind'], name: string): LoadedModel {
  if (model.kind !== kind) throw new UnsupportedModelError(kind === 'encoder' ? `"${name}" does not support embeddings` : `"${name}" does not support generate`)
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
