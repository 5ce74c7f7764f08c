import { randomUUID } from 'node:crypto'
import { Type } from 'typebox'
import { openaiError, openaiShape } from '../error-shapes.ts'
import { BadRequestError, UnsupportedParameterError } from '../errors.ts'
import { defined, familyRoutes, finished, requireNeutral, workSignal } from '../inference.ts'
import { peek, requestSignal, sendSse } from '../stream.ts'
import { responsesRoutes } from './responses.ts'
import type { ApiContext, Routes } from '../server.ts'
import type { ChatMessage, EmbedInput, GenerateOptions, GenerateParams, GenerateStats, ModelSummary, OutputFormat, ToolCall, ToolSpec } from '@node-daemon/inference'
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
  // Refused unless they ask for what the node does anyway (NEUTRAL).
  n: Type.Optional(Type.Integer()),
  frequency_penalty: Type.Optional(Type.Number()),
  presence_penalty: Type.Optional(Type.Number()),
  logprobs: Type.Optional(Type.Unknown()),
  logit_bias: Type.Optional(Type.Record(Type.String(), Type.Number()))
}

/**
 * Fields the node does not implement, at the values that change nothing.
 * Penalties have no exact counterpart among Ollama's options (repeat_penalty
 * scales logits, OpenAI's subtract), so they are not mapped.
 */
const NEUTRAL = { n: 1, frequency_penalty: 0, presence_penalty: 0, logprobs: false, logit_bias: {} }
const NEUTRAL_CHAT = { ...NEUTRAL, top_logprobs: 0 }
const NEUTRAL_COMPLETION = { ...NEUTRAL, echo: false, best_of: 1, suffix: '' }

const ChatBody = Type.Object({
  ...Sampling,
  messages: Type.Array(Message, { minItems: 1 }),
  max_completion_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
  top_logprobs: Type.Optional(Type.Integer()),
  response_format: Type.Optional(ResponseFormat),
  tools: Type.Optional(Type.Array(Tool, { maxItems: 128 })),
  tool_choice: Type.Optional(ToolChoiceJson),
  parallel_tool_calls: Type.Optional(Type.Boolean())
})

const CompletionBody = Type.Object({
  ...Sampling,
  prompt: Type.Union([Type.Array(Type.String(), { minItems: 1, maxItems: 1 }), Type.String()], { description: 'One prompt; token arrays are not supported' }),
  echo: Type.Optional(Type.Boolean()),
  best_of: Type.Optional(Type.Integer()),
  suffix: Type.Optional(Type.String())
})

const TokenIds = Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 })

const EmbeddingsBody = Type.Object({
  model: Type.String({ minLength: 1 }),
  input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 }), TokenIds, Type.Array(TokenIds, { minItems: 1 })], {
    description: 'A text, texts, the token ids of one text, or of several; ids get the special tokens the model\'s tokenizer adds around a text (a BERT\'s [CLS] and [SEP])'
  }),
  encoding_format: Type.Optional(Type.Union([Type.Literal('float'), Type.Literal('base64')])),
  dimensions: Type.Optional(Type.Integer({ minimum: 1, description: 'Keep the first this many components, normalized again; at most the model\'s size' })),
  user: Type.Optional(Type.String())
})

/** One text or one list of token ids is one input; a list of either, several. */
function embedInputs (input: Static<typeof EmbeddingsBody>['input']): EmbedInput[] {
  if (typeof input === 'string' || typeof input[0] === 'number') return [input as EmbedInput]
  return input as EmbedInput[]
}

type SamplingBody = Static<typeof ChatBody> | Static<typeof CompletionBody>

/** max_tokens and max_completion_tokens are num_predict; stop may be one string. */
function generateOptions (body: SamplingBody & { max_completion_tokens?: number }, neutral: Record<string, unknown>): GenerateOptions {
  requireNeutral(body, neutral)
  return defined({
    num_predict: body.max_completion_tokens ?? body.max_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    seed: body.seed,
    stop: typeof body.stop === 'string' ? [body.stop] : body.stop
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

/** A call's arguments, which OpenAI sends as a JSON string of an object. */
function argumentsObject (text: string, param: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(text === '' ? '{}' : text)
  } catch {
    throw new BadRequestError(`${param}: not valid JSON`)
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value)) throw new BadRequestError(`${param}: not a JSON object`)
  return value as Record<string, unknown>
}

/** A chat body's tools, tool choice and response format, as the node's generate takes them. */
function chatOutput (body: Static<typeof ChatBody>): Pick<GenerateParams, 'format' | 'toolChoice' | 'parallelToolCalls'> & { tools?: ToolSpec[] } {
  const tools = body.tools?.map(t => ({ name: t.function.name, description: t.function.description, parameters: t.function.parameters ?? {} }))
  const choice = body.tool_choice
  return defined({
    tools: tools != null && tools.length > 0 ? tools : undefined,
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

function usage (stats: GenerateStats): object {
  return {
    prompt_tokens: stats.promptTokens,
    completion_tokens: stats.evalTokens,
    total_tokens: stats.promptTokens + stats.evalTokens,
    prompt_tokens_details: { cached_tokens: stats.cachedTokens }
  }
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
  /** The choice of a whole answer. */
  choice: (stats: GenerateStats) => object
  /** A streamed choice: some text, or at the end no text and the finish reason. */
  delta: (text: string | undefined, finishReason: string | null) => object
  /** The streamed choice that carries the calls the model made. */
  calls?: (calls: ToolCall[]) => object
  /** The choice of a chunk sent before any text. */
  opening?: object
}

const chatFraming = (): Framing => ({
  id: `chatcmpl-${randomUUID()}`,
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  choice: (stats) => {
    const calls = stats.toolCalls ?? []
    const message = calls.length === 0
      ? { role: 'assistant', content: stats.text, refusal: null }
      : { role: 'assistant', content: stats.text === '' ? null : stats.text, tool_calls: toolCallsJson(calls), refusal: null }
    return { index: 0, message, logprobs: null, finish_reason: finishReason(stats) }
  },
  delta: (text, finishReason) => ({ index: 0, delta: text == null ? {} : { content: text }, logprobs: null, finish_reason: finishReason }),
  calls: (calls) => ({ index: 0, delta: { tool_calls: toolCallsJson(calls).map((call, index) => ({ index, ...call })) }, logprobs: null, finish_reason: null }),
  opening: { index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }
})

const completionFraming = (): Framing => ({
  id: `cmpl-${randomUUID()}`,
  object: 'text_completion',
  chunkObject: 'text_completion',
  choice: (stats) => ({ index: 0, text: stats.text, logprobs: null, finish_reason: stats.doneReason }),
  delta: (text, finishReason) => ({ index: 0, text: text ?? '', logprobs: null, finish_reason: finishReason })
})

/**
 * Runs a completion and answers it as OpenAI does: one object, or SSE chunks
 * (a first one with the role, the deltas, a last one with the finish reason,
 * with include_usage one more with the usage) ending with `data: [DONE]`.
 */
async function complete ({ node, shutdown }: ApiContext, reply: FastifyReply, body: SamplingBody, params: GenerateParams, framing: Framing): Promise<object> {
  const signal = workSignal(reply, shutdown)
  const created = unixTime(new Date())
  const base = { id: framing.id, object: framing.object, created, model: body.model }
  if (body.stream !== true) {
    const stats = await finished(node.inference.generate(params, { signal }))
    return { ...base, choices: [framing.choice(stats)], usage: usage(stats) }
  }
  // The first event is awaited before the role chunk, so that a missing model is a 404, not a broken stream.
  const { items } = await peek(node.inference.generate(params, { signal }))
  const includeUsage = body.stream_options?.include_usage === true
  const chunk = (choices: object[], stats?: GenerateStats): object => ({
    ...base,
    object: framing.chunkObject,
    choices,
    ...(includeUsage ? { usage: stats == null ? null : usage(stats) } : {})
  })
  const chunks = (async function * () {
    if (framing.opening != null) yield chunk([framing.opening])
    for await (const evt of items) {
      if (evt.type === 'chunk') {
        yield chunk([framing.delta(evt.text, null)])
        continue
      }
      const calls = evt.stats.toolCalls ?? []
      if (calls.length > 0 && framing.calls != null) yield chunk([framing.calls(calls)])
      yield chunk([framing.delta(undefined, finishReason(evt.stats))])
      if (includeUsage) yield chunk([], evt.stats)
    }
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
      const { tools, ...output } = chatOutput(body)
      const params = { model: body.model, input: defined({ messages: chatMessages(body.messages), tools }), options: generateOptions(body, NEUTRAL_CHAT), ...output }
      return complete(ctx, reply, body, params, chatFraming())
    })

    // The legacy API continues text as it is written, without the chat template.
    scope.post('/v1/completions', { permission: 'inference', schema: { body: CompletionBody, tags, summary: 'Text completion; SSE chunks when stream is true' } }, async (request, reply) => {
      const body = request.body as Static<typeof CompletionBody>
      const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[0]
      const params = { model: body.model, input: { prompt, raw: true }, options: generateOptions(body, NEUTRAL_COMPLETION) }
      return complete(ctx, reply, body, params, completionFraming())
    })

    responsesRoutes(scope, ctx)

    scope.post('/v1/embeddings', { permission: 'inference', schema: { body: EmbeddingsBody, tags, summary: 'Embeddings of a text or texts, as floats or base64 little-endian float32' } }, async (request, reply) => {
      const body = request.body as Static<typeof EmbeddingsBody>
      // OpenAI refuses an input longer than the context rather than embedding part of it.
      const result = await node.inference.embed(defined({ model: body.model, input: embedInputs(body.input), truncate: false, dimensions: body.dimensions }), { signal: requestSignal(reply) })
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
