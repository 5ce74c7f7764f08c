/**
 * Tool calls in the syntaxes models are trained on: how the tools and past
 * calls are put in the prompt, the grammar a call must follow, and how calls
 * are read back from the text. A model's chat template names its syntax
 * (Hermes/Qwen `<tool_call>`, Mistral `[TOOL_CALLS]`, Llama 3.1's bare
 * JSON); a model without one is told of the tools in its system prompt and
 * answers in Hermes' form, which constrained decoding then guarantees.
 */
import { randomBytes } from 'node:crypto'
import type { ChatMessage } from './text.ts'
import type { GrammarSpec } from '@node-daemon/grammar'

export interface ToolSpec {
  name: string
  description?: string
  /** A JSON Schema of the arguments object. */
  parameters: Record<string, unknown>
}

/** OpenAI's tool_choice: no calls, the model's choice, at least one call, or a call of one named function. */
export type ToolChoice = 'none' | 'auto' | 'required' | { name: string }

export interface ToolCall {
  id: string
  name: string
  arguments: Record<string, unknown>
}

export type ToolSyntax = 'hermes' | 'mistral' | 'llama3'

export function toolSyntax (template?: string): ToolSyntax {
  if (template == null) return 'hermes'
  if (template.includes('[TOOL_CALLS]')) return 'mistral'
  if (template.includes('<|python_tag|>') || template.includes('ipython')) return 'llama3'
  return 'hermes'
}

/** Whether a chat template renders `tools` itself; otherwise the system prompt describes them. */
export function templateTakesTools (template?: string): boolean {
  return template != null && /\btools\b/.test(template)
}

export const newCallId = (): string => `call_${randomBytes(12).toString('hex')}`

/** The tool definitions in the form Hugging Face chat templates and OpenAI share. */
export function templateTools (tools: ToolSpec[]): object[] {
  return tools.map(t => ({ type: 'function', function: { name: t.name, description: t.description ?? '', parameters: t.parameters } }))
}

/**
 * Messages with tool calls as templates read them: a call's arguments as an
 * object under `function`. For a template that does not take tools, the
 * tools go into the system prompt and calls and results into the text, as
 * Qwen's template writes them.
 */
export function withTools (messages: ChatMessage[], tools: ToolSpec[], template?: string): ChatMessage[] {
  if (templateTakesTools(template)) {
    return messages.map(m => m.tool_calls == null ? m : { ...m, tool_calls: m.tool_calls.map(c => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })) as any })
  }
  const written = messages.map(m => {
    if (m.role === 'tool') return { role: 'user', content: `<tool_response>\n${m.content}\n</tool_response>` }
    if (m.tool_calls == null || m.tool_calls.length === 0) return m
    const calls = m.tool_calls.map(c => `<tool_call>\n${JSON.stringify({ name: c.name, arguments: c.arguments })}\n</tool_call>`)
    return { role: m.role, content: [m.content, ...calls].filter(t => t !== '').join('\n') }
  })
  if (tools.length === 0) return written
  const prompt = toolsPrompt(tools)
  const system = written.findIndex(m => m.role === 'system')
  if (system < 0) return [{ role: 'system', content: prompt }, ...written]
  return written.map((m, i) => i === system ? { ...m, content: `${m.content}\n\n${prompt}` } : m)
}

/** Hermes' tools prompt, cut to its substance: small models have little context to spare. */
function toolsPrompt (tools: ToolSpec[]): string {
  return [
    'You may call these functions:',
    '<tools>',
    ...tools.map(t => JSON.stringify({ name: t.name, description: t.description, parameters: t.parameters })),
    '</tools>',
    'To call one, write <tool_call>{"name": <function-name>, "arguments": <args-json-object>}</tool_call>'
  ].join('\n')
}

/** What begins a call when the model chooses to make one. */
export function callTrigger (syntax: ToolSyntax): string | undefined {
  if (syntax === 'hermes') return '<tool_call>'
  if (syntax === 'mistral') return '[TOOL_CALLS]'
  // Llama 3.1 writes a bare JSON object: nothing tells a call from text until it is whole.
  return undefined
}

/** The schema of one call: a tool's name and arguments that validate against its parameters. */
function callSchema (tools: ToolSpec[], syntax: ToolSyntax): object {
  const key = syntax === 'llama3' ? 'parameters' : 'arguments'
  const one = (t: ToolSpec): object => ({
    type: 'object',
    properties: { name: { const: t.name }, [key]: parametersSchema(t.parameters) },
    required: ['name', key],
    additionalProperties: false
  })
  return tools.length === 1 ? one(tools[0]) : { anyOf: tools.map(one) }
}

/** A function without parameters takes an empty object. */
function parametersSchema (parameters: Record<string, unknown> | undefined): object {
  if (parameters == null || Object.keys(parameters).length === 0) return { type: 'object', properties: {}, additionalProperties: false }
  return parameters
}

/**
 * The grammar of the calls: from the first token when a call is required,
 * or, with `triggered`, of what follows the trigger the model wrote.
 */
export function callsGrammar (tools: ToolSpec[], syntax: ToolSyntax, init: { parallel: boolean, triggered: boolean }): GrammarSpec {
  const call: GrammarSpec = { type: 'json-schema', schema: callSchema(tools, syntax) }
  if (syntax === 'mistral') {
    const array: GrammarSpec = { type: 'repeat', item: call, separator: ',', min: 1, max: init.parallel ? undefined : 1 }
    return { type: 'sequence', parts: [...(init.triggered ? [] : [{ type: 'literal', text: '[TOOL_CALLS]' } as const]), { type: 'literal', text: '[' }, array, { type: 'literal', text: ']' }] }
  }
  if (syntax === 'llama3') return init.parallel ? { type: 'repeat', item: call, separator: '\n', min: 1 } : call
  const tagged = (open: string): GrammarSpec => ({ type: 'sequence', parts: [{ type: 'literal', text: open }, call, { type: 'literal', text: '\n</tool_call>' }] })
  const first = tagged(init.triggered ? '\n' : '<tool_call>\n')
  if (!init.parallel) return first
  return { type: 'sequence', parts: [first, { type: 'repeat', item: tagged('\n<tool_call>\n'), min: 0 }] }
}

/** Splits a generated text into its content and the calls it makes, in the model's syntax. */
export function parseToolCalls (text: string, syntax: ToolSyntax, tools: ToolSpec[]): { content: string, calls: ToolCall[] } {
  const known = new Set(tools.map(t => t.name))
  const key = syntax === 'llama3' ? 'parameters' : 'arguments'
  const calls: ToolCall[] = []
  const take = (value: unknown): boolean => {
    if (value == null || typeof value !== 'object' || Array.isArray(value)) return false
    const { name, [key]: args } = value as Record<string, unknown>
    if (typeof name !== 'string' || !known.has(name)) return false
    calls.push({ id: newCallId(), name, arguments: args != null && typeof args === 'object' && !Array.isArray(args) ? args as Record<string, unknown> : {} })
    return true
  }
  const parse = (json: string): unknown => { try { return JSON.parse(json) } catch { return undefined } }
  if (syntax === 'hermes') {
    const open = text.indexOf('<tool_call>')
    if (open < 0) return { content: text, calls }
    for (const match of text.slice(open).matchAll(/<tool_call>\s*([\s\S]*?)\s*<\/tool_call>/g)) take(parse(match[1]))
    return calls.length === 0 ? { content: text, calls } : { content: text.slice(0, open).trim(), calls }
  }
  if (syntax === 'mistral') {
    const open = text.indexOf('[TOOL_CALLS]')
    const body = open >= 0 ? text.slice(open + '[TOOL_CALLS]'.length) : text.trimStart().startsWith('[{') ? text : undefined
    const parsed = body == null ? undefined : parse(body.trim())
    if (Array.isArray(parsed)) parsed.forEach(take)
    return calls.length === 0 ? { content: text, calls } : { content: open > 0 ? text.slice(0, open).trim() : '', calls }
  }
  const lines = text.trim().split('\n').filter(l => l.trim() !== '')
  if (lines.length > 0 && lines.every(line => take(parse(line.trim())))) return { content: '', calls }
  calls.length = 0
  return { content: text, calls }
}
