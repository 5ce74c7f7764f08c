import { classify, envelope, messageOf } from './errors.ts'
import type { FastifyError, FastifyRequest } from 'fastify'
import type { ErrorEnvelope } from './errors.ts'

/**
 * The error bodies of the API families. The status always comes from the one
 * table in errors.ts; a family only decides how the body looks. A route names
 * its family in its config; the server's one error handler applies it.
 */
export interface ShapedError {
  status: number
  /** Document 000's error type, which the error metric counts. */
  type: string
  body: object
}

export type ErrorShape = (err: Partial<FastifyError>, request: FastifyRequest) => ShapedError

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The error body of the route's API family; document 000's envelope when unset. */
    errorShape?: ErrorShape
  }
}

export const envelopeShape: ErrorShape = (err) => {
  const body = envelope(err)
  return { status: body.status_code, type: body.error_type, body }
}

/** Errors that say a model's files cannot be read. */
const UNREADABLE_MODEL = new Set(['InvalidModelError', 'ModelFormatError', 'ExternalDataError'])

/**
 * Document 003's training, model, consensus and network routes: a model that cannot be read is
 * its 1004 MODEL_CORRUPT, and an error it numbers carries its name as `code`
 * beside the number in `Code` (1001 NODE_NOT_FOUND for a node id no node has).
 */
export const trainingShape: ErrorShape = (err, request) => {
  const shaped = envelopeShape(UNREADABLE_MODEL.has(err.name ?? '') ? { name: 'CheckpointError', message: err.message } : err, request)
  const code = SWARM_CODES[(shaped.body as ErrorEnvelope).Code]
  return code == null ? shaped : { ...shaped, body: { ...shaped.body, code } }
}

/** Ollama, OpenAI and document 001 answer a request that breaks the schema with 400, not document 000's 422. */
function classifyFamily (err: Partial<FastifyError>): { status: number, type: string, message: string } {
  const { status, type } = classify(err)
  return { status: status === 422 ? 400 : status, type, message: messageOf(err, type) }
}

/** The model a request named, for the not-found messages that the clients of each family know. */
function requestedModel (request: FastifyRequest): string {
  const body = request.body as Record<string, unknown> | undefined
  const params = request.params as Record<string, unknown> | undefined
  for (const value of [body?.model, body?.name, body?.source, body?.modelId, params?.['*']]) {
    if (typeof value === 'string' && value !== '') return value
  }
  return ''
}

/** Ollama's `{"error": "..."}`, also the last line of a stream that failed. */
export function ollamaError (err: Partial<FastifyError>, request: FastifyRequest): { error: string } {
  if (err.name === 'ModelNotFoundError') return { error: `model "${requestedModel(request)}" not found, try pulling it first` }
  return { error: classifyFamily(err).message }
}

/** An Ollama route's error answer: Ollama's `error`, and beside it document 002's `code`, `timestamp` and `request_id`, which Ollama's clients pass over. */
export const ollamaShape: ErrorShape = (err, request) => {
  const { status, type } = classifyFamily(err)
  return { status, type, body: { ...ollamaError(err, request), code: codeWord(err, status), timestamp: new Date().toISOString(), request_id: request.id } }
}

const OPENAI_CODES: Record<string, string> = {
  AuthenticationError: 'invalid_api_key',
  AuthorizationError: 'insufficient_permissions',
  RateLimitError: 'rate_limit_exceeded',
  ModelNotFoundError: 'model_not_found',
  ContextLengthError: 'context_length_exceeded',
  UnsupportedParameterError: 'unsupported_parameter'
}

function openaiType (status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 429) return 'rate_limit_error'
  return status >= 500 ? 'server_error' : 'invalid_request_error'
}

/** The request field an error is about: an unsupported one, one an inference error names first ("dimensions: …"), or the first that broke the schema. */
function paramOf (err: Partial<FastifyError> & { param?: string }): string | null {
  if (err.param != null) return err.param
  // The runtime's messages lead with the field; the error's class is all that crosses the cluster with them.
  if (err.name === 'InvalidInferenceRequestError') return /^([a-z_]+(?:\.[a-z0-9_]+)*): /.exec(err.message ?? '')?.[1] ?? null
  const first = err.validation?.[0]
  if (first == null) return null
  return pathOf(first, typeof first.params.missingProperty === 'string' ? first.params.missingProperty : undefined)
}

type SchemaError = NonNullable<FastifyError['validation']>[number]

function pathOf (error: SchemaError, child?: string): string | null {
  const path = error.instancePath.split('/').filter(p => p !== '')
  if (child != null) path.push(child)
  return path.length > 0 ? path.join('.') : null
}

/** The value at a JSON pointer of the body, to say what a client sent. */
function valueAt (body: unknown, pointer: string): unknown {
  return pointer.split('/').slice(1).reduce<unknown>((at, key) => (at as Record<string, unknown> | undefined)?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], body)
}

const TYPE_WORDS: Record<string, string> = { integer: 'an integer', number: 'a decimal', string: 'a string', boolean: 'a boolean', array: 'an array', object: 'an object', null: 'null' }

function typeOf (value: unknown): string {
  if (Array.isArray(value)) return 'an array'
  if (value === null) return 'null'
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal'
  return TYPE_WORDS[typeof value] ?? typeof value
}

const listed = (items: string[], and = 'or'): string => items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} ${and} ${items.at(-1) as string}`

/**
 * OpenAI's words for a body that breaks the schema, its `param` and `code`,
 * instead of the validator's ("body/messages must have required property"),
 * which openai-node hands to the app as the error's message. Of a union's
 * failed branches, the one the value had the type of says what is wrong.
 */
function openaiSchemaError (errors: SchemaError[], body: unknown): { message: string, param: string | null, code: string | null } {
  const union = errors.find(e => e.keyword === 'anyOf' || e.keyword === 'oneOf')
  const branches = union == null ? errors : errors.filter(e => e !== union && e.instancePath.startsWith(union.instancePath))
  const typed = branches.filter(e => e.keyword !== 'type' && e.keyword !== 'const' && e.keyword !== 'enum')
  const error = typed[0] ?? branches[0] ?? errors[0]
  const param = pathOf(error)
  const value = valueAt(body, error.instancePath)
  const p = error.params as Record<string, any>
  switch (error.keyword) {
    case 'required':
      return { message: `Missing required parameter: '${pathOf(error, p.missingProperty) ?? ''}'.`, param: pathOf(error, p.missingProperty), code: 'missing_required_parameter' }
    case 'const':
    case 'enum': {
      const allowed = branches.filter(e => e.instancePath === error.instancePath).flatMap(e => e.keyword === 'const' ? [(e.params as any).allowedValue] : (e.params as any).allowedValues ?? [])
      const given = typeof value === 'string' ? `'${value}'` : JSON.stringify(value)
      return { message: `Invalid value: ${given}. Supported values are: ${listed(allowed.map(v => `'${String(v)}'`), 'and')}.`, param, code: 'invalid_value' }
    }
    case 'type': {
      // The deepest place a branch failed at is where the value went wrong.
      const depth = Math.max(...branches.map(e => e.instancePath.length))
      const at = branches.filter(e => e.keyword === 'type' && e.instancePath.length === depth)
      const expected = [...new Set((at.length > 0 ? at : [error]).flatMap(e => [(e.params as any).type].flat().map((t: string) => TYPE_WORDS[t] ?? t)))]
      const where = at[0] ?? error
      return { message: `Invalid type for '${pathOf(where) ?? 'body'}': expected ${expected.length > 1 ? 'one of ' : ''}${listed(expected)}, but got ${typeOf(valueAt(body, where.instancePath))} instead.`, param: pathOf(where), code: 'invalid_type' }
    }
    case 'minimum':
    case 'exclusiveMinimum':
    case 'maximum':
    case 'exclusiveMaximum': {
      const kind = Number.isInteger(value) ? 'integer' : 'decimal'
      const below = error.keyword.toLowerCase().includes('min')
      return { message: `Invalid '${param ?? 'body'}': ${kind} ${below ? 'below minimum' : 'above maximum'} value. Expected a value ${p.comparison} ${String(p.limit)}, but got ${String(value)} instead.`, param, code: `${kind}_${below ? 'below_min' : 'above_max'}_value` }
    }
    case 'minItems':
    case 'maxItems': {
      const length = Array.isArray(value) ? value.length : 0
      if (error.keyword === 'minItems' && length === 0) return { message: `Invalid '${param ?? 'body'}': empty array. Expected an array with minimum length ${String(p.limit)}, but got an empty array instead.`, param, code: 'empty_array' }
      const short = error.keyword === 'minItems'
      return { message: `Invalid '${param ?? 'body'}': array too ${short ? 'short' : 'long'}. Expected an array with ${short ? 'minimum' : 'maximum'} length ${String(p.limit)}, but got an array with length ${length} instead.`, param, code: `array_${short ? 'below_min' : 'above_max'}_length` }
    }
    case 'minLength':
    case 'maxLength': {
      const short = error.keyword === 'minLength'
      return { message: `Invalid '${param ?? 'body'}': string too ${short ? 'short' : 'long'}. Expected a string with ${short ? 'minimum' : 'maximum'} length ${String(p.limit)}, but got ${value === '' ? 'an empty string' : `a string with length ${String(value).length}`} instead.`, param, code: `string_${short ? 'below_min' : 'above_max'}_length` }
    }
    case 'additionalProperties':
      return { message: `Unrecognized request argument supplied: ${pathOf(error, p.additionalProperty) ?? ''}`, param: null, code: null }
    default:
      return { message: `Invalid '${param ?? 'body'}': ${error.message ?? 'not a value the parameter takes'}.`, param, code: null }
  }
}

/** OpenAI's `{"error": {message, type, param, code}}`, also the last event of a stream that failed. */
export function openaiError (err: Partial<FastifyError>, request: FastifyRequest): { error: object } {
  const { status, message } = classifyFamily(err)
  const name = err.name ?? ''
  if (err.validation != null && err.validation.length > 0 && err.validationContext === 'body') {
    const { message, param, code } = openaiSchemaError(err.validation, request.body)
    return { error: { message, type: openaiType(status), param, code } }
  }
  return {
    error: {
      message: name === 'ModelNotFoundError'
        ? `The model \`${requestedModel(request)}\` does not exist or you do not have access to it.`
        : name === 'RouteNotFoundError' ? `Invalid URL (${request.method} ${request.url.split('?')[0]})` : message,
      type: openaiType(status),
      param: paramOf(err),
      code: OPENAI_CODES[name] ?? null
    }
  }
}

export const openaiShape: ErrorShape = (err, request) => {
  const { status, type } = classifyFamily(err)
  return { status, type, body: openaiError(err, request) }
}

/** The Pinning Service API's `reason`, by status: the spec's examples where it has them. */
const PINNING_REASONS: Record<number, string> = { 400: 'BAD_REQUEST', 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 405: 'METHOD_NOT_ALLOWED', 409: 'CONFLICT', 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE', 429: 'RATE_LIMITED', 503: 'SERVICE_UNAVAILABLE', 504: 'TIMEOUT' }

/** The Pinning Service API's Failure: `{"error": {"reason", "details"}}`; bad input is a 400 there, not document 000's 422. */
export const pinningShape: ErrorShape = (err) => {
  const { status, type, message } = classifyFamily(err)
  const reason = PINNING_REASONS[status] ?? (status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'BAD_REQUEST')
  return { status, type, body: { error: { reason, details: message } } }
}

/** Where the Pinning Service API is mounted. */
export const PINNING_PREFIX = '/api/pinning/v1'

/**
 * The shape of errors no route answers (an unknown path, a wrong method, a
 * URL that does not decode), by the family whose paths they are under: an
 * OpenAI client reads `/v1/nope`'s 404 as it reads every other error.
 */
const PATH_SHAPES: Array<[prefix: string, shape: ErrorShape]> = [['/v1/', openaiShape], [`${PINNING_PREFIX}/`, pinningShape]]

export function shapeOfPath (url: string): ErrorShape {
  return PATH_SHAPES.find(([prefix]) => url.startsWith(prefix))?.[1] ?? envelopeShape
}

type Coded = [code: string, message: string]

/** Document 001's numbered errors. */
const TASK_CODES: Record<string, Coded> = {
  DialError: ['E001', 'Bootstrap node unreachable'],
  JoinError: ['E001', 'Bootstrap node unreachable'],
  NoQuorumError: ['E001', 'Bootstrap node unreachable'],
  InsufficientPeersError: ['E002', 'Insufficient resources'],
  InsufficientMemoryError: ['E002', 'Insufficient resources'],
  ModelNotFoundError: ['E003', 'Model not found'],
  TimeoutError: ['E004', 'Task timeout'],
  DeadlineExceededError: ['E004', 'Task timeout'],
  InvalidInferenceRequestError: ['E005', 'Invalid prompt'],
  ContextLengthError: ['E005', 'Invalid prompt']
}

export const INVALID_PROMPT: Coded = ['E005', 'Invalid prompt']

/** Document 004's codes, by status, for what document 001 does not number: the two share `{error: {code, message, details}}`. */
function genericCode (status: number): string {
  const codes: Record<number, string> = { 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT', 429: 'RATE_LIMITED', 503: 'SERVICE_UNAVAILABLE' }
  return codes[status] ?? (status >= 500 ? 'INTERNAL_ERROR' : 'INVALID_REQUEST')
}

/** Document 003's names of its numbered errors (errors.ts gives the numbers). */
const SWARM_CODES: Record<number, string> = { 1001: 'NODE_NOT_FOUND', 1002: 'TRAINING_IN_PROGRESS', 1003: 'CONSENSUS_FAILED', 1004: 'MODEL_CORRUPT', 1005: 'NETWORK_PARTITION' }

/** An error's code word: document 003's name where it numbers the error, else document 004's by status. */
function codeWord (err: Partial<FastifyError>, status: number): string {
  return SWARM_CODES[classify(err).code] ?? genericCode(status)
}

/**
 * Document 002's `{error, code, timestamp, request_id}`, added to document
 * 000's envelope, whose `error` is the same message and whose numeric `Code`
 * document 003 shares these routes with; `request_id` is the X-Request-Id.
 */
export const distributedShape: ErrorShape = (err, request) => {
  // Document 002 answers bad parameters with 400, not document 000's 422, and names a field it does not take.
  const { status, type, message } = classifyFamily(err)
  return { status, type, body: { ...envelope(err), error: message, Message: message, status_code: status, code: codeWord(err, status), timestamp: new Date().toISOString(), request_id: request.id } }
}

/**
 * Document 004's `{"error": {code, message, details}}`, `details` an object:
 * the error's type and, for a request that broke the schema, where.
 */
export const farmShape: ErrorShape = (err) => {
  const { status, type, message } = classifyFamily(err)
  const field = err.validation?.[0]
  const details = { type, ...(field == null ? {} : { field: pathOf(field, typeof field.params.missingProperty === 'string' ? field.params.missingProperty : undefined), reason: field.message ?? field.keyword }) }
  return { status, type, body: { error: { code: codeWord(err, status), message, details } } }
}

/**
 * Document 004's form on its task and metrics routes, with document 001's
 * `timestamp` (GET /api/tasks and /api/tasks/{id} are both documents') and
 * its E-codes where it numbers the error, since an inference task is
 * document 001's submission, else document 004's own codes by status:
 * `{"error": {code, message, details, timestamp}}` with `details` an object.
 */
export const farmTaskShape: ErrorShape = (err, request) => {
  const { status, type, body } = farmShape(err, request)
  const { error } = body as { error: object }
  return { status, type, body: { error: { ...error, code: TASK_CODES[err.name ?? '']?.[0] ?? genericCode(status), timestamp: new Date().toISOString() } } }
}

/**
 * Document 001's `{"error": {code, message, details, timestamp}}`. `badInput`
 * numbers the route's schema and argument errors, for a route whose only
 * input is a prompt (E005); elsewhere they are document 004's INVALID_REQUEST.
 */
export function taskShape (badInput?: Coded): ErrorShape {
  return (err) => {
    const { status, type, message } = classifyFamily(err)
    const coded = TASK_CODES[err.name ?? ''] ?? (status === 400 ? badInput : undefined)
    const error = coded == null
      ? { code: genericCode(status), message, details: type }
      : { code: coded[0], message: coded[1], details: message }
    return { status, type, body: { error: { ...error, timestamp: new Date().toISOString() } } }
  }
}
