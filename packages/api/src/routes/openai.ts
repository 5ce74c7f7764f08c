import { createHash, randomUUID } from 'node:crypto'
import { pushable } from 'it-pushable'
import { Type } from 'typebox'
import { openaiError, openaiShape } from '../error-shapes.ts'
import { BadRequestError, UnsupportedParameterError } from '../errors.ts'
import { argumentsObject, defined, familyRoutes, InputTypeField, MAX_TOP_LOGPROBS, toolSpecs, workSignal } from '../inference.ts'
import { peek, requestSignal, sendSse } from '../stream.ts'
import type { ApiContext, Routes } from '../server.ts'
import { responsesRoutes } from './responses.ts'
import type { ChatMessage, EmbedInput, GenerateOptions, GenerateParams, GenerateStats, InferenceEvent, ModelSummary, OutputFormat, PromptInput, TokenLogprobs, ToolCall, ToolSpec } from '@node-daemon/inference'
import type { FastifyReply } from 'fastify'
import type { Static } from 'typebox'

const tags = ['openai']

const ContentPart = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) })

const ToolCallJson = Type.Object({
  id: Type.Optional(Type.String()),
  type: Type.Optional(Type.Literal('function')),
  function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.String() })
})

const Message = Type.Object({
  role: Type.String(),
  // The array first: coercion would turn a one-part array into a string.
  // null on an assistant message that only called tools.
  content: Type.Union([Type.Array(ContentPart), Type.String(), Type.Null()], { default: '' }),
  tool_calls: Type.Optional(Type.Array(ToolCallJson)),
  tool_call_id: Type.Optional(Type.String()),
  name: Type.Optional(Type.String())
})

const Tool = Type.Object({
  type: Type.Literal('function'),
  function: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 64 }),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    strict: Type.Optional(Type.Boolean())
  })
})

const ToolChoiceJson = Type.Union([
  Type.Union([Type.Literal('none'), Type.Literal('auto'), Type.Literal('required')]),
  Type.Object({ type: Type.Literal('function'), function: Type.Object({ name: Type.String() }) })
])

const ResponseFormat = Type.Union([
  Type.Object({ type: Type.Literal('text') }),
  Type.Object({ type: Type.Literal('json_object') }),
  Type.Object({
    type: Type.Literal('json_schema'),
    json_schema: Type.Object({
      name: Type.String(),
      description: Type.Optional(Type.String()),
      schema: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
      strict: Type.Optional(Type.Boolean())
    })
  })
])

/** The most choices one request may ask for: n, times the prompts of a legacy completion. */
const MAX_CHOICES = 16

/** The fields both completion routes share, with OpenAI's names. */
const Sampling = {
  model: Type.String({ minLength: 1 }),
  stream: Type.Optional(Type.Boolean()),
  stream_options: Type.Optional(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
  temperature: Type.Optional(Type.Number()),
  top_p: Type.Optional(Type.Number()),
  seed: Type.Optional(Type.Integer()),
  stop: Type.Optional(Type.Union([Type.Array(Type.String(), { maxItems: 4 }), Type.String()])),
  n: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_CHOICES })),
  frequency_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  presence_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  logit_bias: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: -100, maximum: 100 }), { description: 'Token id to a bias added to its logit; -100 bans the token' }))
}

const ChatBody = Type.Object({
  ...Sampling,
  messages: Type.Array(Message, { minItems: 1 }),
  max_completion_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
  logprobs: Type.Optional(Type.Boolean()),
  top_logprobs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TOP_LOGPROBS })),
  response_format: Type.Optional(ResponseFormat),
  tools: Type.Optional(Type.Array(Tool, { maxItems: 128 })),
  tool_choice: Type.Optional(ToolChoiceJson),
  parallel_tool_calls: Type.Optional(Type.Boolean())
})

const CompletionBody = Type.Object({
  ...Sampling,
  // Checked by hand: the schema's type coercion would read [10] as the text "10".
  prompt: Type.Unknown({ description: 'A string, an array of strings (a choice each), an array of token ids, or an array of token id arrays' }),
  logprobs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TOP_LOGPROBS })),
  echo: Type.Optional(Type.Boolean()),
  best_of: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_CHOICES, description: 'Only equal to n' })),
  suffix: Type.Optional(Type.String({ description: 'Fill in the middle, on models whose tokenizer has FIM tokens' }))
})

const TokenIds = Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 })

const EmbeddingsBody = Type.Object({
  model: Type.String({ minLength: 1 }),
  input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 }), TokenIds, Type.Array(TokenIds, { minItems: 1 })], {
    description: 'A text, texts, the token ids of one text, or of several; ids get the special tokens the model\'s tokenizer adds around a text (a BERT\'s [CLS] and [SEP])'
  }),
  encoding_format: Type.Optional(Type.Union([Type.Literal('float'), Type.Literal('base64')])),
  dimensions: Type.Optional(Type.Integer({ minimum: 1, description: 'Keep the first this many components, normalized again; at most the model\'s size' })),
  input_type: InputTypeField,
  user: Type.Optional(Type.String())
})

/** One text or one list of token ids is one input; a list of either, several. */
function embedInputs (input: Static<typeof EmbeddingsBody>['input']): EmbedInput[] {
  if (typeof input === 'string' || typeof input[0] === 'number') return [input as EmbedInput]
  return input as EmbedInput[]
}

type SamplingBody = Static<typeof ChatBody> | Static<typeof CompletionBody>

/** max_tokens and max_completion_tokens are num_predict; stop may be one string. */
function generateOptions (body: SamplingBody & { max_completion_tokens?: number }): GenerateOptions {
  return defined({
    num_predict: body.max_completion_tokens ?? body.max_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    seed: body.seed,
    stop: typeof body.stop === 'string' ? [body.stop] : body.stop,
    presence_penalty: body.presence_penalty,
    frequency_penalty: body.frequency_penalty,
    logit_bias: body.logit_bias
  })
}

/** Chat messages as the template takes them: text parts joined, `developer` as the `system` it replaced, calls with their arguments parsed. */
export function chatMessages (messages: Static<typeof ChatBody>['messages']): ChatMessage[] {
  return messages.map((m, i) => {
    const content = m.content == null || typeof m.content === 'string'
      ? m.content ?? ''
      : m.content.map((part, j) => {
        if (part.type !== 'text') throw new UnsupportedParameterError(`messages.${i}.content.${j}`, `content parts of type ${part.type} are not supported: the models read text only`)
        return part.text ?? ''
      }).join('')
    const message: ChatMessage = { role: m.role === 'developer' ? 'system' : m.role, content }
    if (m.tool_calls != null && m.tool_calls.length > 0) {
      message.tool_calls = m.tool_calls.map((call, j) => ({ id: call.id, name: call.function.name, arguments: argumentsObject(call.function.arguments, `messages[${i}].tool_calls[${j}].function.arguments`) }))
    }
    if (m.tool_call_id != null) message.tool_call_id = m.tool_call_id
    if (m.name != null) message.name = m.name
    return message
  })
}

/** A chat body's tools, tool choice and response format, as the node's generate takes them. */
function chatOutput (body: Static<typeof ChatBody>): Pick<GenerateParams, 'format' | 'toolChoice' | 'parallelToolCalls'> & { tools?: ToolSpec[] } {
  const choice = body.tool_choice
  return defined({
    tools: toolSpecs(body.tools),
    toolChoice: choice == null ? undefined : typeof choice === 'string' ? choice : { name: choice.function.name },
    parallelToolCalls: body.parallel_tool_calls,
    format: responseFormat(body.response_format)
  })
}

function responseFormat (format: Static<typeof ResponseFormat> | undefined): OutputFormat | undefined {
  if (format == null || format.type === 'text') return undefined
  if (format.type === 'json_object') return { type: 'json-object' }
  return format.json_schema.schema == null ? { type: 'json' } : { type: 'json-schema', schema: format.json_schema.schema }
}

/** OpenAI's form of the calls a model made: arguments as a JSON string. */
function toolCallsJson (calls: ToolCall[]): object[] {
  return calls.map(c => ({ id: c.id, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.arguments) } }))
}

function finishReason (stats: GenerateStats): string {
  return stats.toolCalls != null && stats.toolCalls.length > 0 ? 'tool_calls' : stats.doneReason
}

const isTokenId = (value: unknown): value is number => Number.isInteger(value)

/** The legacy API's prompts, raw: its four forms, one prompt (a choice) each. */
function completionPrompts (prompt: unknown): PromptInput[] {
  if (typeof prompt === 'string') return [{ prompt, raw: true }]
  if (Array.isArray(prompt) && prompt.length > 0) {
    if (prompt.every(p => typeof p === 'string')) return prompt.map(p => ({ prompt: p, raw: true }))
    if (prompt.every(isTokenId)) return [{ tokens: prompt }]
    if (prompt.every(p => Array.isArray(p) && p.length > 0 && p.every(isTokenId))) return prompt.map(tokens => ({ tokens }))
  }
  throw new BadRequestError('prompt: must be a string, an array of strings, an array of token ids or an array of arrays of token ids')
}

/** The runs of one request: each prompt `n` times, the choice index prompt × n + i, each run with its own seed. */
function runsOf (base: Omit<GenerateParams, 'input'>, inputs: PromptInput[], n: number): GenerateParams[] {
  if (inputs.length * n > MAX_CHOICES) throw new UnsupportedParameterError('n', `at most ${MAX_CHOICES} choices per request: ${inputs.length} prompts × n = ${n} is more`)
  const seed = base.options?.seed
  return inputs.flatMap(input => Array.from({ length: n }, (_, i) => ({
    ...base,
    input,
    // Unseeded runs each get a random seed; seeded ones differ from each other yet repeat.
    options: seed == null || n === 1 ? base.options : { ...base.options, seed: seed + i }
  })))
}

/** What one choice came to. */
interface Outcome {
  text: string
  logprobs: TokenLogprobs[]
  stats: GenerateStats
  promptText?: string
}

/** Usage summed over the choices; a prompt's tokens count once however many choices it has. */
function usage (outcomes: Array<Pick<Outcome, 'stats'>>, n: number): object {
  const prompt = outcomes.reduce((sum, o, i) => i % n === 0 ? sum + o.stats.promptTokens : sum, 0)
  const completion = outcomes.reduce((sum, o) => sum + o.stats.evalTokens, 0)
  const cached = outcomes.reduce((sum, o, i) => i % n === 0 ? sum + o.stats.cachedTokens : sum, 0)
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached },
    completion_tokens_details: { reasoning_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 }
  }
}

/** OpenAI's system_fingerprint: what decides the answers besides the request, the node's version and the model's weights. */
function fingerprint (version: string, modelCID: string): string {
  return `fp_${createHash('sha256').update(`${version}\n${modelCID}`).digest('hex').slice(0, 10)}`
}

const unixTime = (date: Date): number => Math.floor(date.getTime() / 1000)

function modelJson (model: Pick<ModelSummary, 'name' | 'modifiedAt'>): object {
  return { id: model.name, object: 'model', created: unixTime(model.modifiedAt), owned_by: 'library' }
}

/** How a completion route frames its text: chat's message and deltas, or the legacy API's text. */
interface Framing {
  id: string
  object: string
  chunkObject: string
  /** The choice of a whole answer; `logprobs` when they were asked for. */
  choice: (index: number, outcome: Outcome, logprobs?: TokenLogprobs[]) => object
  /** A streamed choice: some text, or at the end no text and the finish reason. */
  delta: (index: number, text: string | undefined, finishReason: string | null, logprobs?: TokenLogprobs[]) => object
  /** The choice of a chunk sent before any text. */
  opening?: (index: number) => object
  /** Text that comes before a choice's answer: the echoed prompt. */
  prefix?: (index: number, promptText: string) => string
  /** The streamed choice that carries the calls the model made. */
  calls?: (index: number, calls: ToolCall[]) => object
}

const chatLogprobs = (logprobs?: TokenLogprobs[]): object | null => logprobs == null
  ? null
  : {
      content: logprobs.map(l => ({ token: l.token, logprob: l.logprob, bytes: l.bytes, top_logprobs: l.top.map(t => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })) })),
      refusal: null
    }

const chatFraming = (): Framing => ({
  id: `chatcmpl-${randomUUID()}`,
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  choice: (index, outcome, logprobs) => {
    const calls = outcome.stats.toolCalls ?? []
    const message = calls.length === 0
      ? { role: 'assistant', content: outcome.text, refusal: null }
      : { role: 'assistant', content: outcome.text === '' ? null : outcome.text, tool_calls: toolCallsJson(calls), refusal: null }
    return { index, message, logprobs: chatLogprobs(logprobs), finish_reason: finishReason(outcome.stats) }
  },
  delta: (index, text, finishReason, logprobs) => ({ index, delta: text == null ? {} : { content: text }, logprobs: chatLogprobs(logprobs), finish_reason: finishReason }),
  calls: (index, calls) => ({ index, delta: { tool_calls: toolCallsJson(calls).map((call, i) => ({ index: i, ...call })) }, logprobs: null, finish_reason: null }),
  opening: index => ({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null })
})

/**
 * The legacy API's text, after the echoed prompt when asked; its logprobs
 * are parallel lists, with each token's offset in the choice's text.
 */
const completionFraming = (inputs: PromptInput[], n: number, echo: boolean): Framing => {
  const offsets = new Map<number, number>()
  const logprobsAt = (index: number, logprobs?: TokenLogprobs[]): object | null => {
    if (logprobs == null) return null
    let offset = offsets.get(index) ?? 0
    const textOffset = logprobs.map(l => { const at = offset; offset += l.token.length; return at })
    offsets.set(index, offset)
    return {
      tokens: logprobs.map(l => l.token),
      token_logprobs: logprobs.map(l => l.logprob),
      top_logprobs: logprobs.map(l => Object.fromEntries(l.top.map(t => [t.token, t.logprob]))),
      text_offset: textOffset
    }
  }
  const echoed = (index: number, promptText = ''): string => echo ? inputs[Math.floor(index / n)].prompt ?? promptText : ''
  return {
    id: `cmpl-${randomUUID()}`,
    object: 'text_completion',
    chunkObject: 'text_completion',
    choice: (index, outcome, logprobs) => {
      const prefix = echoed(index, outcome.promptText)
      offsets.set(index, prefix.length)
      return { index, text: prefix + outcome.text, logprobs: logprobsAt(index, logprobs), finish_reason: outcome.stats.doneReason }
    },
    delta: (index, text, finishReason, logprobs) => ({ index, text: text ?? '', logprobs: logprobsAt(index, logprobs), finish_reason: finishReason }),
    prefix: (index, promptText) => {
      const prefix = echoed(index, promptText)
      offsets.set(index, prefix.length)
      return prefix
    }
  }
}

/**
 * Interleaves the choices' events as they come, each with its index. An
 * error in one ends all; `stop` is called when the merged stream ends, to
 * end the generations still running.
 */
function merged (runs: Array<AsyncIterable<InferenceEvent>>, stop: () => void): AsyncIterable<{ index: number, evt: InferenceEvent }> {
  const out = pushable<{ index: number, evt: InferenceEvent }>({ objectMode: true, onEnd: stop })
  let open = runs.length
  runs.forEach((run, index) => {
    void (async () => {
      for await (const evt of run) out.push({ index, evt })
      if (--open === 0) out.end()
    })().catch((err: Error) => { out.end(err) })
  })
  return out
}

/**
 * Runs a completion's choices together (so that they share the model's
 * batches) and answers as OpenAI does: one object, or SSE chunks (per
 * choice a first one with the role, the deltas, a last one with the finish
 * reason; with include_usage one more with the usage) ending with
 * `data: [DONE]`. `logprobs`: whether they were asked for.
 */
async function complete ({ node, shutdown }: ApiContext, reply: FastifyReply, body: SamplingBody, runs: GenerateParams[], n: number, framing: Framing, logprobs: boolean): Promise<object> {
  const stopAll = new AbortController()
  const signal = AbortSignal.any([workSignal(reply, shutdown), stopAll.signal])
  const events = merged(runs.map(params => node.inference.generate(params, { signal })), () => { stopAll.abort(new Error('the request ended')) })
  const created = unixTime(new Date())
  const base = { id: framing.id, object: framing.object, created, model: body.model }
  const version = node.version().version
  // The first event is awaited before anything is sent, so that a missing model or a bad prompt is a 4xx, not a broken stream.
  const { first, items } = await peek(events)
  const systemFingerprint = first?.evt.type === 'start' ? fingerprint(version, first.evt.modelCID) : null
  if (body.stream !== true) {
    const outcomes = runs.map((): Partial<Outcome> & { text: string, logprobs: TokenLogprobs[] } => ({ text: '', logprobs: [] }))
    for await (const { index, evt } of items) {
      const outcome = outcomes[index]
      if (evt.type === 'start') outcome.promptText = evt.promptText
      else if (evt.type === 'chunk') outcome.logprobs.push(...evt.logprobs ?? [])
      else outcome.stats = evt.stats
    }
    const done = outcomes.map(o => ({ ...o, text: o.stats?.text ?? '' }) as Outcome)
    return {
      ...base,
      system_fingerprint: systemFingerprint,
      choices: done.map((o, index) => framing.choice(index, o, logprobs ? o.logprobs : undefined)),
      usage: usage(done, n)
    }
  }
  const includeUsage = body.stream_options?.include_usage === true
  const chunk = (choices: object[], stats?: Array<Pick<Outcome, 'stats'>>): object => ({
    ...base,
    object: framing.chunkObject,
    system_fingerprint: systemFingerprint,
    choices,
    ...(includeUsage ? { usage: stats == null ? null : usage(stats, n) } : {})
  })
  const chunks = (async function * () {
    const finished: Array<Pick<Outcome, 'stats'>> = []
    for await (const { index, evt } of items) {
      if (evt.type === 'start') {
        if (framing.opening != null) yield chunk([framing.opening(index)])
        const prefix = framing.prefix?.(index, evt.promptText ?? '') ?? ''
        if (prefix !== '') yield chunk([framing.delta(index, prefix, null)])
      } else if (evt.type === 'chunk') {
        yield chunk([framing.delta(index, evt.text, null, logprobs ? evt.logprobs ?? [] : undefined)])
      } else {
        finished[index] = { stats: evt.stats }
        const calls = evt.stats.toolCalls ?? []
        if (calls.length > 0 && framing.calls != null) yield chunk([framing.calls(index, calls)])
        yield chunk([framing.delta(index, undefined, finishReason(evt.stats))])
      }
    }
    if (includeUsage) yield chunk([], finished)
  })()
  return sendSse(reply, chunks, err => openaiError(err, reply.request))
}

/** The OpenAI API, over the node's inference: chat and text completions, embeddings and the model list. */
export const openaiRoutes: Routes = (app, ctx) => {
  const { node } = ctx
  familyRoutes(app, openaiShape, (scope) => {
    // OpenAI's SDKs send null for fields left unset; unset is what they mean.
    scope.addHook('preValidation', async (request) => {
      const body = request.body as Record<string, unknown> | undefined
      if (body == null || typeof body !== 'object') return
      for (const [key, value] of Object.entries(body)) if (value === null) delete body[key]
    })

    scope.get('/v1/models', { permission: 'models:read', schema: { tags, summary: 'Models of the cluster' } }, async (_request, reply) => {
      const models = await node.inference.models({ signal: requestSignal(reply) })
      return { object: 'list', data: models.map(modelJson) }
    })

    // A wildcard, because model names may hold slashes.
    scope.get('/v1/models/*', { permission: 'models:read', schema: { tags, summary: 'One model' } }, async (request, reply) => {
      return modelJson(await node.inference.show((request.params as { '*': string })['*'], { signal: requestSignal(reply) }))
    })

    scope.post('/v1/chat/completions', { permission: 'inference', schema: { body: ChatBody, tags, summary: 'Chat completion; SSE chunks when stream is true' } }, async (request, reply) => {
      const body = request.body as Static<typeof ChatBody>
      const logprobs = body.logprobs === true ? body.top_logprobs ?? 0 : undefined
      const n = body.n ?? 1
      const { tools, ...output } = chatOutput(body)
      const runs = runsOf(defined({ model: body.model, options: generateOptions(body), logprobs, ...output }), [defined({ messages: chatMessages(body.messages), tools })], n)
      return complete(ctx, reply, body, runs, n, chatFraming(), logprobs != null)
    })

    // The legacy API continues text as it is written, without the chat template.
    scope.post('/v1/completions', { permission: 'inference', schema: { body: CompletionBody, tags, summary: 'Text completion; SSE chunks when stream is true' } }, async (request, reply) => {
      const body = request.body as Static<typeof CompletionBody>
      const n = body.n ?? 1
      if (body.best_of != null && body.best_of !== n) throw new UnsupportedParameterError('best_of', 'best_of is supported only equal to n: every choice generated is returned')
      const suffix = body.suffix != null && body.suffix !== '' ? body.suffix : undefined
      const inputs = completionPrompts(body.prompt).map(input => {
        if (suffix == null) return input
        if (input.prompt == null) throw new UnsupportedParameterError('suffix', 'suffix needs a text prompt')
        return { prompt: input.prompt, suffix }
      })
      const echo = body.echo === true
      const runs = runsOf(defined({ model: body.model, options: generateOptions(body), logprobs: body.logprobs, echo: echo || undefined }), inputs, n)
      return complete(ctx, reply, body, runs, n, completionFraming(inputs, n, echo), body.logprobs != null)
    })

    responsesRoutes(scope, ctx)

    scope.post('/v1/embeddings', { permission: 'inference', schema: { body: EmbeddingsBody, tags, summary: 'Embeddings of a text or texts, as floats or base64 little-endian float32' } }, async (request, reply) => {
      const body = request.body as Static<typeof EmbeddingsBody>
      // OpenAI refuses an input longer than the context rather than embedding part of it.
      const result = await node.inference.embed(defined({ model: body.model, input: embedInputs(body.input), truncate: false, dimensions: body.dimensions, inputType: body.input_type }), { signal: requestSignal(reply) })
      const encode = (embedding: number[]): number[] | string => body.encoding_format === 'base64' ? Buffer.from(new Float32Array(embedding).buffer).toString('base64') : embedding
      return {
        object: 'list',
        data: result.embeddings.map((embedding, index) => ({ object: 'embedding', embedding: encode(embedding), index })),
        model: body.model,
        usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens }
      }
    })
  }, { anyContentType: true, strictTypes: true })
}
