import { DEFAULT_MODELS } from '@node-daemon/models'
import { Type } from 'typebox'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { duration } from './args.ts'
import { BadRequestError, UnsupportedParameterError } from './errors.ts'
import { compileOnFirstUse } from './lazy-validators.ts'
import { requestSignal } from './stream.ts'
import type { ErrorShape } from './error-shapes.ts'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { GenerateStats, InferenceEvent, TokenLogprobs, ToolSpec } from '@node-daemon/inference'

/** The most alternatives per token a request may ask for, as OpenAI's top_logprobs allows. */
export const MAX_TOP_LOGPROBS = 20

/** The model of routes where `model` is optional: document 001's tasks. */
export const DEFAULT_GENERATE_MODEL = DEFAULT_MODELS.generate
/** The model of routes where `model` is optional: document 000's embeddings. */
export const DEFAULT_EMBED_MODEL = DEFAULT_MODELS.embed

/**
 * `input_type` of an embeddings request, beside each family's own fields (as
 * vLLM and NVIDIA's OpenAI-compatible servers take it): the prefix a model's
 * sentence-transformers config gives queries or documents. Default document.
 */
export const InputTypeField = Type.Optional(Type.Union([Type.Literal('query'), Type.Literal('document')], {
  description: "query or document (the default): the prefix the model's config_sentence_transformers.json gives each, e.g. E5's \"query: \" and \"passage: \""
}))

/** Validates bodies as they are typed, without the server's coercion. */
const strictAjv = compileOnFirstUse(new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, strict: false }))
addFormats.default(strictAjv)

/**
 * Registers the routes of one API family in a scope of their own, where every
 * route shapes its errors the family's way (a route may name another shape).
 * `anyContentType` reads every body as JSON, whatever its Content-Type, as
 * Ollama does: its documented `curl -d` examples send form-urlencoded.
 * `strictTypes` turns off the coercion of types, for a family that refuses
 * a string where a number belongs (OpenAI's), and where coercion would take
 * token ids [1, 2] for the texts "1" and "2".
 */
export function familyRoutes (app: FastifyInstance, errorShape: ErrorShape, register: (scope: FastifyInstance) => void, init: { anyContentType?: boolean, strictTypes?: boolean } = {}): void {
  app.register(async (scope) => {
    if (init.strictTypes === true) scope.setValidatorCompiler(({ schema }) => strictAjv.compile(schema))
    if (init.anyContentType === true) {
      // fetch() sends a string body as text/plain, which fastify would otherwise hand over unparsed.
      scope.removeContentTypeParser('text/plain')
      scope.addContentTypeParser('*', { parseAs: 'string' }, scope.getDefaultJsonParser('error', 'ignore'))
    }
    scope.addHook('onRoute', (route) => { route.config = { errorShape, ...route.config } })
    register(scope)
  })
}

/** Ends long work (a generation, a pull) when the client goes away or the daemon stops. */
export function workSignal (reply: FastifyReply, shutdown: AbortSignal): AbortSignal {
  return AbortSignal.any([requestSignal(reply), shutdown])
}

/** The stats of a generation run to its end, for replies that are not streamed, with its tokens' log-probabilities when asked. */
export async function finished (events: AsyncIterable<InferenceEvent>): Promise<GenerateStats & { logprobs: TokenLogprobs[] }> {
  const logprobs: TokenLogprobs[] = []
  for await (const evt of events) {
    if (evt.type === 'chunk') logprobs.push(...evt.logprobs ?? [])
    if (evt.type === 'done') return { ...evt.stats, logprobs }
  }
  throw new Error('the generation ended without its stats')
}

/** Drops unset fields, so that they fall back to the model's defaults instead of overriding them with undefined. */
export function defined<T extends object> (value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T
}

/**
 * Fields the node does not implement are taken only at a value that leaves
 * the answer unchanged: unset, empty, or the `neutral` one. Any other value is
 * refused, with `reasons[field]` as the message when there is one.
 */
export function requireNeutral (fields: object | undefined, neutral: Record<string, unknown>, init: { reasons?: Record<string, string>, prefix?: string } = {}): void {
  const prefix = init.prefix ?? ''
  for (const [field, value] of Object.entries(neutral)) {
    const given = (fields as Record<string, unknown> | undefined)?.[field]
    const empty = given === '' || (typeof given === 'object' && given != null && Object.keys(given).length === 0)
    if (given == null || empty || JSON.stringify(given) === JSON.stringify(value)) continue
    throw new UnsupportedParameterError(`${prefix}${field}`, init.reasons?.[field] ?? `${prefix}${field} is not supported except as ${JSON.stringify(value)}`)
  }
}

/**
 * Ollama's keep_alive as ms: seconds as a number, or a Go duration string
 * ("5m", "1h30m", "0"); negative keeps the model loaded, which the runtime
 * takes as -1. Bare numbers in strings are seconds too, as OLLAMA_KEEP_ALIVE
 * reads them.
 */
export function keepAliveMs (value: number | string | undefined): number | undefined {
  if (value == null) return undefined
  if (typeof value === 'number') return value < 0 ? -1 : value * 1000
  const text = value.trim()
  const negative = text.startsWith('-')
  const magnitude = text.replace(/^[-+]/, '')
  const ms = /^\d+(\.\d+)?$/.test(magnitude) ? Number(magnitude) * 1000 : duration(magnitude, 'keep_alive')
  if (ms == null) throw new BadRequestError(`keep_alive: ${JSON.stringify(value)} is not a duration such as 5m or a number of seconds`)
  return negative && ms > 0 ? -1 : ms
}

/** Function tools as Ollama and OpenAI both send them; none when the list is empty. */
export function toolSpecs (tools: Array<{ function: { name: string, description?: string, parameters?: Record<string, unknown> } }> | undefined): ToolSpec[] | undefined {
  if (tools == null || tools.length === 0) return undefined
  return tools.map(t => ({ name: t.function.name, description: t.function.description, parameters: t.function.parameters ?? {} }))
}

/** A call's arguments, which OpenAI sends as a JSON string of an object. */
export function argumentsObject (text: string, param: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(text === '' ? '{}' : text)
  } catch {
    throw new BadRequestError(`${param}: not valid JSON`)
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value)) throw new BadRequestError(`${param}: not a JSON object`)
  return value as Record<string, unknown>
}
