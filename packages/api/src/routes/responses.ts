/**
 * OpenAI's Responses API over the node's generate: input items become a
 * conversation (with the stored one of `previous_response_id` before it),
 * the answer becomes output items, streamed as typed events, and a stored
 * response is content pinned in the cluster, readable and deletable from
 * any node.
 */
import { randomBytes } from 'node:crypto'
import { Type } from 'typebox'
import { openaiError } from '../error-shapes.ts'
import { BadRequestError, UnsupportedParameterError } from '../errors.ts'
import { argumentsObject, defined, finished, workSignal } from '../inference.ts'
import { peek, requestSignal, sendTypedSse } from '../stream.ts'
import type { ApiContext } from '../server.ts'
import type { ChatMessage, GenerateParams, GenerateStats, OutputFormat, ToolCall, ToolSpec } from '@node-daemon/inference'
import type { FastifyInstance } from 'fastify'
import type { Static } from 'typebox'

const tags = ['openai']

const Part = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) })

const InputItem = Type.Object({
  type: Type.Optional(Type.String({ description: 'message (the default), function_call or function_call_output' })),
  role: Type.Optional(Type.String()),
  content: Type.Optional(Type.Union([Type.Array(Part), Type.String()])),
  call_id: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  arguments: Type.Optional(Type.String()),
  output: Type.Optional(Type.Union([Type.String(), Type.Array(Part)])),
  id: Type.Optional(Type.String()),
  status: Type.Optional(Type.String())
})

const Format = Type.Union([
  Type.Object({ type: Type.Literal('text') }),
  Type.Object({ type: Type.Literal('json_object') }),
  Type.Object({
    type: Type.Literal('json_schema'),
    name: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    schema: Type.Record(Type.String(), Type.Unknown()),
    strict: Type.Optional(Type.Boolean())
  })
])

const Tool = Type.Object({
  type: Type.String(),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  description: Type.Optional(Type.String()),
  parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  strict: Type.Optional(Type.Boolean())
})

const Body = Type.Object({
  model: Type.String({ minLength: 1 }),
  input: Type.Union([Type.Array(InputItem, { minItems: 1 }), Type.String()]),
  instructions: Type.Optional(Type.String()),
  text: Type.Optional(Type.Object({ format: Type.Optional(Format), verbosity: Type.Optional(Type.String()) })),
  tools: Type.Optional(Type.Array(Tool, { maxItems: 128 })),
  tool_choice: Type.Optional(Type.Union([
    Type.Union([Type.Literal('none'), Type.Literal('auto'), Type.Literal('required')]),
    Type.Object({ type: Type.Literal('function'), name: Type.String() })
  ])),
  parallel_tool_calls: Type.Optional(Type.Boolean()),
  stream: Type.Optional(Type.Boolean()),
  previous_response_id: Type.Optional(Type.String()),
  store: Type.Optional(Type.Boolean()),
  max_output_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
  temperature: Type.Optional(Type.Number()),
  top_p: Type.Optional(Type.Number()),
  metadata: Type.Optional(Type.Record(Type.String(), Type.String())),
  user: Type.Optional(Type.String()),
  // Accepted as clients send them; the node's models have no reasoning, and it keeps no service tiers.
  truncation: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('disabled')])),
  include: Type.Optional(Type.Array(Type.String())),
  service_tier: Type.Optional(Type.String()),
  reasoning: Type.Optional(Type.Unknown())
})

type ResponsesBody = Static<typeof Body>

const hex = (bytes: number): string => randomBytes(bytes).toString('hex')

const partsText = (content: string | Array<Static<typeof Part>> | undefined, at: string): string => {
  if (content == null || typeof content === 'string') return content ?? ''
  return content.map((part, i) => {
    if (!['input_text', 'output_text', 'text'].includes(part.type)) throw new UnsupportedParameterError(`${at}[${i}].type`, `content parts of type ${part.type} are not supported: the models read text only`)
    return part.text ?? ''
  }).join('')
}

/** Input items as chat messages: a call joins the assistant message before it, a call's output is a `tool` message. */
export function inputMessages (input: ResponsesBody['input']): ChatMessage[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }]
  const messages: ChatMessage[] = []
  input.forEach((item, i) => {
    const type = item.type ?? 'message'
    if (type === 'message') {
      if (item.role == null) throw new BadRequestError(`input[${i}].role is required`)
      messages.push({ role: item.role === 'developer' ? 'system' : item.role, content: partsText(item.content, `input[${i}].content`) })
    } else if (type === 'function_call') {
      if (item.call_id == null || item.name == null) throw new BadRequestError(`input[${i}]: a function_call needs call_id and name`)
      const call = { id: item.call_id, name: item.name, arguments: argumentsObject(item.arguments ?? '{}', `input[${i}].arguments`) }
      const last = messages.at(-1)
      if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call]
      else messages.push({ role: 'assistant', content: '', tool_calls: [call] })
    } else if (type === 'function_call_output') {
      if (item.call_id == null) throw new BadRequestError(`input[${i}]: a function_call_output needs call_id`)
      messages.push({ role: 'tool', content: typeof item.output === 'string' ? item.output : partsText(item.output, `input[${i}].output`), tool_call_id: item.call_id })
    } else if (type !== 'reasoning') {
      throw new UnsupportedParameterError(`input[${i}].type`, `input items of type ${type} are not supported`)
    }
  })
  return messages
}

function toolsOf (tools: ResponsesBody['tools']): ToolSpec[] | undefined {
  if (tools == null || tools.length === 0) return undefined
  return tools.map((t, i) => {
    if (t.type !== 'function') throw new UnsupportedParameterError(`tools[${i}].type`, `tools of type ${t.type} are not supported: only function tools`)
    if (t.name == null) throw new BadRequestError(`tools[${i}].name is required`)
    return { name: t.name, description: t.description, parameters: t.parameters ?? {} }
  })
}

function formatOf (format: Static<typeof Format> | undefined): OutputFormat | undefined {
  if (format == null || format.type === 'text') return undefined
  return format.type === 'json_object' ? { type: 'json-object' } : { type: 'json-schema', schema: format.schema }
}

interface Draft {
  id: string
  createdAt: number
  body: ResponsesBody
  messageId: string
}

/** The response object: in progress while streaming, then with its output and usage. */
function responseJson (draft: Draft, stats?: GenerateStats, calls: Array<{ id: string, call: ToolCall }> = []): Record<string, unknown> {
  const { body } = draft
  const incomplete = stats?.doneReason === 'length' && calls.length === 0
  return {
    id: draft.id,
    object: 'response',
    created_at: draft.createdAt,
    status: stats == null ? 'in_progress' : incomplete ? 'incomplete' : 'completed',
    error: null,
    incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: body.model,
    output: stats == null ? [] : outputItems(draft, stats, calls),
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    store: body.store !== false,
    temperature: body.temperature ?? null,
    text: { format: body.text?.format ?? { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? null,
    truncation: body.truncation ?? 'disabled',
    usage: stats == null
      ? null
      : {
          input_tokens: stats.promptTokens,
          input_tokens_details: { cached_tokens: stats.cachedTokens },
          output_tokens: stats.evalTokens,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: stats.promptTokens + stats.evalTokens
        },
    user: body.user ?? null,
    metadata: body.metadata ?? {}
  }
}

function messageItem (draft: Draft, text: string, status: string): object {
  return { type: 'message', id: draft.messageId, status, role: 'assistant', content: status === 'in_progress' ? [] : [textPart(text)] }
}

const textPart = (text: string): object => ({ type: 'output_text', text, annotations: [], logprobs: [] })

function callItem ({ id, call }: { id: string, call: ToolCall }, status = 'completed'): object {
  return { type: 'function_call', id, call_id: call.id, name: call.name, arguments: status === 'completed' ? JSON.stringify(call.arguments) : '', status }
}

function outputItems (draft: Draft, stats: GenerateStats, calls: Array<{ id: string, call: ToolCall }>): object[] {
  const items = calls.map(c => callItem(c))
  return stats.text !== '' || calls.length === 0 ? [messageItem(draft, stats.text, 'completed'), ...items] : items
}

/** The conversation through this response, for the next one's previous_response_id. */
function conversation (messages: ChatMessage[], stats: GenerateStats): ChatMessage[] {
  const calls = stats.toolCalls ?? []
  return [...messages, { role: 'assistant', content: stats.text, ...(calls.length > 0 ? { tool_calls: calls } : {}) }]
}

export function responsesRoutes (scope: FastifyInstance, { node, shutdown }: ApiContext): void {
  scope.post('/v1/responses', { permission: 'inference', schema: { body: Body, tags, summary: 'Create a response (OpenAI\'s Responses API); typed SSE events when stream is true' } }, async (request, reply) => {
    const body = request.body as ResponsesBody
    if (body.reasoning != null && JSON.stringify(body.reasoning) !== '{}') throw new UnsupportedParameterError('reasoning', 'reasoning is not supported by these models')
    const signal = workSignal(reply, shutdown)
    const earlier = body.previous_response_id == null ? [] : (await node.inference.response(body.previous_response_id, { signal })).messages
    // Instructions apply to this response alone, as OpenAI's do.
    const system: ChatMessage[] = body.instructions != null ? [{ role: 'system', content: body.instructions }] : []
    const messages = [...earlier, ...inputMessages(body.input)]
    const params: GenerateParams = defined({
      model: body.model,
      input: defined({ messages: [...system, ...messages], tools: toolsOf(body.tools) }),
      options: defined({ num_predict: body.max_output_tokens, temperature: body.temperature, top_p: body.top_p }),
      format: formatOf(body.text?.format),
      toolChoice: body.tool_choice == null ? undefined : typeof body.tool_choice === 'string' ? body.tool_choice : { name: body.tool_choice.name },
      parallelToolCalls: body.parallel_tool_calls
    })
    const draft: Draft = { id: `resp_${hex(24)}`, createdAt: Math.floor(Date.now() / 1000), body, messageId: `msg_${hex(24)}` }
    const complete = async (stats: GenerateStats): Promise<{ response: Record<string, unknown>, calls: Array<{ id: string, call: ToolCall }> }> => {
      const calls = (stats.toolCalls ?? []).map(call => ({ id: `fc_${hex(24)}`, call }))
      const response = responseJson(draft, stats, calls)
      if (body.store !== false) await node.inference.saveResponse(draft.id, { response, messages: conversation(messages, stats) }, { signal })
      return { response, calls }
    }
    if (body.stream !== true) return (await complete(await finished(node.inference.generate(params, { signal })))).response
    // The first event is awaited before the stream opens, so that a missing model is a 404.
    const { items } = await peek(node.inference.generate(params, { signal }))
    let sequence = 0
    const event = (type: string, fields: object): { type: string, sequence_number: number } => ({ type, sequence_number: sequence++, ...fields })
    const events = (async function * () {
      yield event('response.created', { response: responseJson(draft) })
      yield event('response.in_progress', { response: responseJson(draft) })
      let opened = false
      let text = ''
      const at = { item_id: draft.messageId, output_index: 0, content_index: 0 }
      for await (const evt of items) {
        if (evt.type === 'start') continue
        if (evt.type === 'chunk') {
          if (!opened) {
            opened = true
            yield event('response.output_item.added', { output_index: 0, item: messageItem(draft, '', 'in_progress') })
            yield event('response.content_part.added', { ...at, part: textPart('') })
          }
          text += evt.text
          yield event('response.output_text.delta', { ...at, delta: evt.text, logprobs: [] })
          continue
        }
        const { response, calls } = await complete(evt.stats)
        const hasMessage = opened || calls.length === 0
        if (hasMessage) {
          if (!opened) {
            yield event('response.output_item.added', { output_index: 0, item: messageItem(draft, '', 'in_progress') })
            yield event('response.content_part.added', { ...at, part: textPart('') })
          }
          yield event('response.output_text.done', { ...at, text, logprobs: [] })
          yield event('response.content_part.done', { ...at, part: textPart(text) })
          yield event('response.output_item.done', { output_index: 0, item: messageItem(draft, text, 'completed') })
        }
        for (const [i, call] of calls.entries()) {
          const index = i + (hasMessage ? 1 : 0)
          const args = JSON.stringify(call.call.arguments)
          yield event('response.output_item.added', { output_index: index, item: callItem(call, 'in_progress') })
          yield event('response.function_call_arguments.delta', { item_id: call.id, output_index: index, delta: args })
          yield event('response.function_call_arguments.done', { item_id: call.id, output_index: index, arguments: args })
          yield event('response.output_item.done', { output_index: index, item: callItem(call) })
        }
        yield event(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response })
      }
    })()
    return sendTypedSse(reply, events, err => event('error', openaiError(err, reply.request).error))
  })

  scope.get('/v1/responses/:id', { permission: 'inference', schema: { params: Type.Object({ id: Type.String() }), tags, summary: 'A stored response' } }, async (request, reply) => {
    return (await node.inference.response((request.params as { id: string }).id, { signal: requestSignal(reply) })).response
  })

  scope.delete('/v1/responses/:id', { permission: 'inference', schema: { params: Type.Object({ id: Type.String() }), tags, summary: 'Delete a stored response' } }, async (request, reply) => {
    const { id } = request.params as { id: string }
    await node.inference.deleteResponse(id, { signal: requestSignal(reply) })
    return { id, object: 'response', deleted: true }
  })
}
