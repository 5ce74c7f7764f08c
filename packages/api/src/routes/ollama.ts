import { Type } from 'typebox'
import { quoteModelfileValue } from '@node-daemon/inference'
import { ollamaError, ollamaShape } from '../error-shapes.ts'
import { BadRequestError } from '../errors.ts'
import { defined, familyRoutes, finished, InputTypeField, keepAliveMs, MAX_TOP_LOGPROBS, requireNeutral, toolSpecs, workSignal } from '../inference.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import type { ApiContext, Routes } from '../server.ts'
import type { ChatMessage, GenerateOptions, GenerateStats, InferenceEvent, LoadedModelView, ModelDetails, ModelSummary, OutputFormat, ProgressEvent, TokenLogprobs, ToolCall } from '@node-daemon/inference'
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { Static } from 'typebox'

const tags = ['ollama']

const KeepAlive = Type.Union([Type.Number(), Type.String()], {
  description: 'How long the model stays loaded after the request: seconds, or a duration such as 5m or 1h30m; 0 unloads it, negative keeps it'
})

/** Ollama's sampling options, which the runtime implements; num_ctx and num_keep are passed on too. */
const SamplingOptions = {
  temperature: Type.Optional(Type.Number()),
  top_k: Type.Optional(Type.Integer()),
  top_p: Type.Optional(Type.Number()),
  min_p: Type.Optional(Type.Number()),
  typical_p: Type.Optional(Type.Number()),
  tfs_z: Type.Optional(Type.Number()),
  repeat_penalty: Type.Optional(Type.Number()),
  repeat_last_n: Type.Optional(Type.Integer()),
  presence_penalty: Type.Optional(Type.Number()),
  frequency_penalty: Type.Optional(Type.Number()),
  mirostat: Type.Optional(Type.Integer()),
  mirostat_tau: Type.Optional(Type.Number()),
  mirostat_eta: Type.Optional(Type.Number()),
  seed: Type.Optional(Type.Integer()),
  num_predict: Type.Optional(Type.Integer()),
  stop: Type.Optional(Type.Array(Type.String())),
  num_ctx: Type.Optional(Type.Integer()),
  num_keep: Type.Optional(Type.Integer())
}

// Other names, runner options (num_gpu, use_mmap, numa…) and unknown ones alike, are ignored with a warning, as Ollama ignores them.
const Options = Type.Object(SamplingOptions, { additionalProperties: true, description: "Ollama's model options; runner options and unknown ones are ignored" })

const Inference = {
  model: Type.String({ minLength: 1 }),
  stream: Type.Optional(Type.Boolean({ default: true })),
  options: Type.Optional(Options),
  keep_alive: Type.Optional(KeepAlive),
  format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal(''), Type.Record(Type.String(), Type.Unknown())], { description: '"json", or a JSON Schema the output is constrained to' })),
  think: Type.Optional(Type.Union([Type.Boolean(), Type.String()], { description: 'Not supported: refused unless false' })),
  logprobs: Type.Optional(Type.Boolean({ description: "Each token's log-probability, on each line" })),
  top_logprobs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TOP_LOGPROBS, description: 'With logprobs, this many likeliest alternatives per token' }))
}

const GenerateBody = Type.Object({
  ...Inference,
  prompt: Type.Optional(Type.String({ description: 'Empty: only check that the model exists, as a load request' })),
  system: Type.Optional(Type.String()),
  template: Type.Optional(Type.String({ description: 'A jinja chat template, the language of the models\' own' })),
  raw: Type.Optional(Type.Boolean()),
  suffix: Type.Optional(Type.String({ description: 'Fill in the middle, on models whose tokenizer has FIM tokens' })),
  images: Type.Optional(Type.Array(Type.String())),
  context: Type.Optional(Type.Array(Type.Integer(), { description: 'The context of an earlier answer, put before the prompt' }))
})

const ToolCallJson = Type.Object({
  function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.Record(Type.String(), Type.Unknown(), { default: {} }) })
})

const Message = Type.Object({
  role: Type.String(),
  content: Type.String({ default: '' }),
  images: Type.Optional(Type.Array(Type.String())),
  tool_calls: Type.Optional(Type.Array(ToolCallJson)),
  // Which tool answered, on a `tool` message.
  tool_name: Type.Optional(Type.String())
})

const Tool = Type.Object({
  type: Type.Optional(Type.Literal('function')),
  function: Type.Object({
    name: Type.String({ minLength: 1 }),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
  })
})

const ChatBody = Type.Object({
  ...Inference,
  messages: Type.Optional(Type.Array(Message)),
  tools: Type.Optional(Type.Array(Tool, { maxItems: 128 }))
})

const EmbedBody = Type.Object({
  model: Type.String({ minLength: 1 }),
  // The string first: coercion would make "" the list [""], one empty input.
  input: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: 'None, or empty: only load the model, as Ollama does' })),
  prompt: Type.Optional(Type.String({ description: 'Document 002\'s name for one input, taken when `input` is absent' })),
  truncate: Type.Optional(Type.Boolean({ description: 'false: an input longer than the context is refused instead of cut' })),
  dimensions: Type.Optional(Type.Integer({ description: 'Keep the first this many components, normalized again; at most the model\'s size' })),
  input_type: InputTypeField,
  // Sampling and runner options mean nothing to an embedding; Ollama takes and ignores them too.
  options: Type.Optional(Options),
  keep_alive: Type.Optional(KeepAlive)
})

const EmbeddingsBody = Type.Object({
  model: Type.String({ minLength: 1 }),
  prompt: Type.Optional(Type.String({ description: 'None, or empty: only load the model, as Ollama does' })),
  options: Type.Optional(Options),
  keep_alive: Type.Optional(KeepAlive)
})

/** Newer Ollama clients send `model`, older ones and document 002 `name`. */
const Named = {
  model: Type.Optional(Type.String()),
  name: Type.Optional(Type.String())
}

const NamedBody = Type.Object({ ...Named, verbose: Type.Optional(Type.Boolean()) })

const TransferBody = Type.Object({
  ...Named,
  // Transfers between nodes are always authenticated and encrypted, so there is nothing to relax.
  insecure: Type.Optional(Type.Boolean()),
  stream: Type.Optional(Type.Boolean({ default: true }))
})

const CreateBody = Type.Object({
  ...Named,
  modelfile: Type.Optional(Type.String()),
  from: Type.Optional(Type.String()),
  system: Type.Optional(Type.String()),
  template: Type.Optional(Type.String()),
  parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  stream: Type.Optional(Type.Boolean({ default: true })),
  files: Type.Optional(Type.Unknown()),
  adapters: Type.Optional(Type.Unknown()),
  quantize: Type.Optional(Type.String()),
  messages: Type.Optional(Type.Unknown()),
  license: Type.Optional(Type.Unknown())
})

const CopyBody = Type.Object({ source: Type.String({ minLength: 1 }), destination: Type.String({ minLength: 1 }) })

/** Why Ollama fields that the node cannot honour are refused, rather than answered differently. */
const REASONS: Record<string, string> = {
  think: 'thinking is not supported by these models',
  images: 'images are not supported: the models read text only',
  files: 'files are not supported: create FROM a model the cluster has, or upload a model directory to /api/models/upload',
  adapters: 'adapters are not supported',
  quantize: 'quantization is not supported',
  messages: 'messages are not supported in a created model',
  license: 'license is not supported'
}

function refuse (fields: object, neutral: Record<string, unknown>): void {
  requireNeutral(fields, neutral, { reasons: REASONS })
}

/** The sampling options; the others are named in one warning. */
function generateOptions (options: Static<typeof Options> | undefined, log: FastifyBaseLogger): GenerateOptions | undefined {
  if (options == null) return undefined
  const ignored = Object.keys(options).filter(name => !(name in SamplingOptions))
  if (ignored.length > 0) log.warn({ ignored }, `options ignored: ${ignored.join(', ')}`)
  const known = Object.keys(SamplingOptions) as Array<keyof typeof SamplingOptions>
  return defined(Object.fromEntries(known.map(name => [name, options[name]])) as GenerateOptions)
}

/** Ollama's `logprobs`: the number of alternatives per token when asked. */
function logprobsOf (body: { logprobs?: boolean, top_logprobs?: number }): number | undefined {
  return body.logprobs === true ? body.top_logprobs ?? 0 : undefined
}

function logprobsJson (logprobs: TokenLogprobs[]): object[] {
  return logprobs.map(l => ({ token: l.token, logprob: l.logprob, bytes: l.bytes, top_logprobs: l.top.map(t => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })) }))
}

function nameOf (body: { model?: string, name?: string }): string {
  const name = body.model ?? body.name
  if (name == null || name === '') throw new BadRequestError('model is required')
  return name
}

const now = (): string => new Date().toISOString()

function doneFields (stats: GenerateStats): object {
  return {
    done: true,
    done_reason: stats.doneReason,
    total_duration: stats.totalNs,
    load_duration: stats.loadNs,
    prompt_eval_count: stats.promptTokens,
    prompt_eval_duration: stats.promptEvalNs,
    eval_count: stats.evalTokens,
    eval_duration: stats.evalNs
  }
}

/** Ollama's "1.2B", "22.57M". */
function parameterSize (count: number): string {
  if (count >= 1e9) return `${(count / 1e9).toFixed(1)}B`
  if (count >= 1e6) return `${(count / 1e6).toFixed(2)}M`
  return `${(count / 1e3).toFixed(0)}K`
}

function details (model: { family: string, parameters: number, quantization: string, format?: string }): object {
  return {
    parent_model: '',
    format: model.format ?? 'onnx',
    family: model.family,
    families: [model.family],
    parameter_size: parameterSize(model.parameters),
    quantization_level: model.quantization
  }
}

/** Ollama's model_info: GGUF's keys, the shape ones under the architecture's name, for what config.json says. */
function modelInfo (model: ModelDetails): object {
  const arch = model.family
  const { embeddingLength, blockCount, headCount, headCountKv, vocabSize } = model.architecture
  return defined({
    'general.architecture': arch,
    'general.parameter_count': model.parameters,
    [`${arch}.context_length`]: model.contextLength,
    [`${arch}.embedding_length`]: embeddingLength,
    [`${arch}.block_count`]: blockCount,
    [`${arch}.attention.head_count`]: headCount,
    [`${arch}.attention.head_count_kv`]: headCountKv,
    [`${arch}.vocab_size`]: vocabSize
  })
}

/** One /api/tags entry: Ollama's fields, the CID as the digest, and document 002's status beside them. */
function tagJson (model: ModelSummary): object {
  return {
    name: model.name,
    model: model.name,
    modified_at: model.modifiedAt.toISOString(),
    size: model.size,
    digest: model.cid,
    details: details(model),
    status: model.active ? 'available' : 'inactive'
  }
}

function psJson (model: LoadedModelView): object {
  return defined({
    name: model.name,
    model: model.name,
    size: model.size,
    digest: model.cid,
    details: details(model),
    // Unset while the model is in use or kept loaded for good.
    expires_at: model.expiresAt?.toISOString(),
    size_vram: model.executionProvider === 'cpu' ? 0 : model.size,
    context_length: model.contextLength
  })
}

/** /api/show's `parameters`: one `name value` line per value, as Ollama prints them. */
function parametersText (options: GenerateOptions): string {
  return Object.entries(options)
    .flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map(v => `${key.padEnd(30)} ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`))
    .join('\n')
}

/** The Modelfile of a create request: its `modelfile`, then the newer fields as the instructions they stand for (later ones win). */
function modelfileOf (body: Static<typeof CreateBody>): string {
  refuse(body, { files: {}, adapters: {}, quantize: '', messages: [], license: '' })
  const lines: string[] = []
  if (body.modelfile != null && body.modelfile !== '') lines.push(body.modelfile)
  if (body.from != null && body.from !== '') lines.push(`FROM ${body.from}`)
  if (body.template != null) lines.push(`TEMPLATE ${quoteModelfileValue(body.template)}`)
  if (body.system != null) lines.push(`SYSTEM ${quoteModelfileValue(body.system)}`)
  for (const [key, value] of Object.entries(body.parameters ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      lines.push(`PARAMETER ${key} ${typeof v === 'string' ? quoteModelfileValue(v) : String(v)}`)
    }
  }
  if (lines.length === 0) throw new BadRequestError("neither 'from' nor 'modelfile' was specified")
  return lines.join('\n')
}

/** Ollama's clients wait for a last `success` line. */
async function * untilSuccess (events: AsyncIterable<ProgressEvent>): AsyncGenerator<ProgressEvent> {
  let last: ProgressEvent | undefined
  for await (const evt of events) {
    last = evt
    yield evt
  }
  if (last?.status !== 'success') yield { status: 'success' }
}

/** Pull, push and create: progress lines by default; with `stream: false`, `{status: 'success'}` once done. */
async function progress (reply: FastifyReply, events: AsyncIterable<ProgressEvent>, stream: boolean | undefined): Promise<object> {
  if (stream !== false) return sendNdjson(reply, untilSuccess(events), err => ollamaError(err, reply.request))
  for await (const _ of events);
  return { status: 'success' }
}

/**
 * A generation as Ollama answers it: NDJSON lines carrying `part(text)` (and
 * the tokens' logprobs when asked), the last with the stats and `final`'s
 * fields; with `stream: false`, one object with all the text.
 */
async function answer (reply: FastifyReply, model: string, stream: boolean | undefined, events: AsyncIterable<InferenceEvent>, part: (text: string, calls?: ToolCall[]) => object, final: (stats: GenerateStats) => object = () => ({})): Promise<object> {
  if (stream === false) {
    const { logprobs, ...stats } = await finished(events)
    return { model, created_at: now(), ...part(stats.text, stats.toolCalls), ...(logprobs.length > 0 ? { logprobs: logprobsJson(logprobs) } : {}), ...doneFields(stats), ...final(stats) }
  }
  const lines = (async function * () {
    for await (const evt of events) {
      if (evt.type === 'start') continue
      if (evt.type === 'chunk') {
        yield { model, created_at: now(), ...part(evt.text), ...(evt.logprobs != null ? { logprobs: logprobsJson(evt.logprobs) } : {}), done: false }
        continue
      }
      // Ollama streams the calls in a line of their own before the last.
      if (evt.stats.toolCalls != null && evt.stats.toolCalls.length > 0) yield { model, created_at: now(), ...part('', evt.stats.toolCalls), done: false }
      yield { model, created_at: now(), ...part(''), ...doneFields(evt.stats), ...final(evt.stats) }
    }
  })()
  return sendNdjson(reply, lines, err => ollamaError(err, reply.request))
}

/** Ollama's `format`: "json" (an object, as llama.cpp's JSON grammar has it) or a JSON Schema; an empty string is none. */
function formatOf (format: Static<typeof GenerateBody>['format']): OutputFormat | undefined {
  if (format == null || format === '') return undefined
  return format === 'json' ? { type: 'json-object' } : { type: 'json-schema', schema: format }
}

/** Ollama's messages as the template takes them: calls with their arguments, a tool's answer with its name. */
function chatMessages (messages: Static<typeof Message>[]): ChatMessage[] {
  return messages.map(m => {
    const message: ChatMessage = { role: m.role, content: m.content }
    if (m.tool_calls != null && m.tool_calls.length > 0) message.tool_calls = m.tool_calls.map(c => ({ name: c.function.name, arguments: c.function.arguments }))
    if (m.tool_name != null) message.name = m.tool_name
    return message
  })
}

/** The message of a chat's answer: the text, and the calls the model made. */
function assistantMessage (text: string, calls?: ToolCall[]): object {
  if (calls == null || calls.length === 0) return { message: { role: 'assistant', content: text } }
  return { message: { role: 'assistant', content: text, tool_calls: calls.map(c => ({ function: { name: c.name, arguments: c.arguments } })) } }
}

/** Ollama takes a request with no prompt (or no messages) as one to load the model, or with keep_alive 0 to unload it. */
async function loadOnly ({ node }: ApiContext, body: { model: string, keep_alive?: number | string }, part: object, signal: AbortSignal): Promise<object> {
  const keepAlive = keepAliveMs(body.keep_alive)
  await node.inference.load(body.model, { signal, keepAliveMs: keepAlive })
  return { model: body.model, created_at: now(), ...part, done: true, done_reason: keepAlive === 0 ? 'unload' : 'load' }
}

/** The Ollama API, over the node's inference: generation, embeddings and the model library. */
export const ollamaRoutes: Routes = (app, ctx) => {
  const { node, shutdown } = ctx
  familyRoutes(app, ollamaShape, (scope) => {
    scope.post('/api/generate', { permission: 'inference', schema: { body: GenerateBody, tags, summary: 'Generate a completion of a prompt; NDJSON unless stream is false' } }, async (request, reply) => {
      const body = request.body as Static<typeof GenerateBody>
      refuse(body, { think: false, images: [] })
      const signal = workSignal(reply, shutdown)
      if (body.prompt == null || body.prompt === '') return loadOnly(ctx, body, { response: '' }, signal)
      const suffix = body.suffix != null && body.suffix !== '' ? body.suffix : undefined
      const events = node.inference.generate(defined({
        model: body.model,
        input: defined({ prompt: body.prompt, system: body.system, template: body.template, raw: body.raw, suffix, context: body.context != null && body.context.length > 0 ? body.context : undefined }),
        options: generateOptions(body.options, request.log),
        keepAliveMs: keepAliveMs(body.keep_alive),
        logprobs: logprobsOf(body),
        format: formatOf(body.format)
      }), { signal })
      return answer(reply, body.model, body.stream, events, text => ({ response: text }), stats => ({ context: stats.context }))
    })

    scope.post('/api/chat', { permission: 'inference', schema: { body: ChatBody, tags, summary: 'Generate the next message of a conversation; NDJSON unless stream is false' } }, async (request, reply) => {
      const body = request.body as Static<typeof ChatBody>
      refuse(body, { think: false })
      for (const message of body.messages ?? []) refuse(message, { images: [] })
      const signal = workSignal(reply, shutdown)
      if (body.messages == null || body.messages.length === 0) return loadOnly(ctx, body, assistantMessage(''), signal)
      const events = node.inference.generate(defined({
        model: body.model,
        input: defined({ messages: chatMessages(body.messages), tools: toolSpecs(body.tools) }),
        options: generateOptions(body.options, request.log),
        keepAliveMs: keepAliveMs(body.keep_alive),
        logprobs: logprobsOf(body),
        format: formatOf(body.format)
      }), { signal })
      return answer(reply, body.model, body.stream, events, assistantMessage)
    })

    scope.post('/api/embed', { permission: 'inference', schema: { body: EmbedBody, tags, summary: 'Embeddings of one text or many' } }, async (request, reply) => {
      const body = request.body as Static<typeof EmbedBody>
      const input = body.input ?? body.prompt ?? []
      const result = await node.inference.embed(defined({
        model: body.model,
        // An empty string is no input, as Ollama reads it.
        input: typeof input === 'string' ? (input === '' ? [] : [input]) : input,
        truncate: body.truncate,
        dimensions: body.dimensions,
        inputType: body.input_type,
        keepAliveMs: keepAliveMs(body.keep_alive)
      }), { signal: requestSignal(reply) })
      return {
        model: body.model,
        embeddings: result.embeddings,
        total_duration: result.totalNs,
        load_duration: result.loadNs,
        prompt_eval_count: result.promptTokens
      }
    })

    // An empty prompt loads the model and answers an empty embedding, as Ollama does.
    scope.post('/api/embeddings', { permission: 'inference', schema: { body: EmbeddingsBody, tags, summary: 'The embedding of one prompt (the older form of /api/embed)' } }, async (request, reply) => {
      const body = request.body as Static<typeof EmbeddingsBody>
      const result = await node.inference.embed(defined({
        model: body.model,
        input: body.prompt == null || body.prompt === '' ? [] : [body.prompt],
        keepAliveMs: keepAliveMs(body.keep_alive)
      }), { signal: requestSignal(reply) })
      return { embedding: result.embeddings[0] ?? [] }
    })

    scope.get('/api/tags', { permission: 'models:read', schema: { tags, summary: 'Models of the cluster' } }, async (_request, reply) => {
      const models = await node.inference.models({ signal: requestSignal(reply) })
      return { models: models.map(tagJson) }
    })

    scope.post('/api/show', { permission: 'models:read', schema: { body: NamedBody, tags, summary: 'A model\'s Modelfile, parameters, template, details and capabilities' } }, async (request, reply) => {
      const model = await node.inference.show(nameOf(request.body as Static<typeof NamedBody>), { signal: requestSignal(reply) })
      return defined({
        modelfile: model.modelfile,
        parameters: parametersText(model.options),
        template: model.template,
        system: model.system === '' ? undefined : model.system,
        // Omitted when the model has none, as Ollama does.
        license: model.license === '' ? undefined : model.license,
        details: details(model),
        model_info: modelInfo(model),
        // Every decoder calls tools: constrained decoding holds a call to its schema.
        // A reranker has none of Ollama's capabilities: only the node's rerank operation runs it.
        capabilities: { 'causal-lm': ['completion', 'tools'], encoder: ['embedding'], reranker: [] }[model.kind],
        modified_at: model.modifiedAt.toISOString()
      })
    })

    scope.get('/api/ps', { permission: 'models:read', schema: { tags, summary: 'Models loaded on this node' } }, async () => {
      return { models: node.inference.loaded().map(psJson) }
    })

    scope.post('/api/pull', { permission: 'models:write', schema: { body: TransferBody, tags, summary: 'Fetch a model from the cluster to this node; progress lines unless stream is false' } }, async (request, reply) => {
      const body = request.body as Static<typeof TransferBody>
      return progress(reply, node.inference.pull(nameOf(body), { signal: workSignal(reply, shutdown) }), body.stream)
    })

    scope.post('/api/push', { permission: 'models:write', schema: { body: TransferBody, tags, summary: 'Replicate a model to other nodes of the cluster; progress lines unless stream is false' } }, async (request, reply) => {
      const body = request.body as Static<typeof TransferBody>
      return progress(reply, node.inference.push(nameOf(body), { signal: workSignal(reply, shutdown) }), body.stream)
    })

    scope.post('/api/create', { permission: 'models:write', schema: { body: CreateBody, tags, summary: 'Create a model from a Modelfile, or from `from`, `system`, `template` and `parameters`' } }, async (request, reply) => {
      const body = request.body as Static<typeof CreateBody>
      return progress(reply, node.inference.create(nameOf(body), modelfileOf(body), { signal: workSignal(reply, shutdown) }), body.stream)
    })

    scope.post('/api/copy', { permission: 'models:write', schema: { body: CopyBody, tags, summary: 'Register a model under another name' } }, async (request, reply) => {
      const body = request.body as Static<typeof CopyBody>
      await node.inference.copy(body.source, body.destination, { signal: requestSignal(reply) })
      return reply.send()
    })

    scope.delete('/api/delete', { permission: 'models:write', schema: { body: NamedBody, tags, summary: 'Remove a model from the registry' } }, async (request, reply) => {
      await node.inference.delete(nameOf(request.body as Static<typeof NamedBody>), { signal: requestSignal(reply) })
      return reply.send()
    })
  }, { anyContentType: true })
}
