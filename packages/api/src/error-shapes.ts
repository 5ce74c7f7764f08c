import { classify, envelope, messageOf } from './errors.ts'
import type { FastifyError, FastifyRequest } from 'fastify'

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

/** Document 003's training and model routes: a model that cannot be read is its 1004 MODEL_CORRUPT. */
export const trainingShape: ErrorShape = (err, request) => {
  return envelopeShape(UNREADABLE_MODEL.has(err.name ?? '') ? { name: 'CheckpointError', message: err.message } : err, request)
}

/** Ollama, OpenAI and document 001 answer a request that breaks the schema with 400, not document 000's 422. */
function classifyFamily (err: Partial<FastifyError>): { status: number, type: string, message: string } {
  const { status, type } = classify(err)
  const first = err.validation?.[0]
  // Ajv's message does not say which property was unexpected.
  const message = first?.keyword === 'additionalProperties' ? `${messageOf(err, type)}: ${String(first.params.additionalProperty)}` : messageOf(err, type)
  return { status: status === 422 ? 400 : status, type, message }
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

export const ollamaShape: ErrorShape = (err, request) => {
  const { status, type } = classifyFamily(err)
  return { status, type, body: ollamaError(err, request) }
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

/** The request field an error is about: an unsupported one, or the first that broke the schema. */
function paramOf (err: Partial<FastifyError> & { param?: string }): string | null {
  if (err.param != null) return err.param
  const first = err.validation?.[0]
  if (first == null) return null
  const path = first.instancePath.split('/').filter(p => p !== '')
  if (typeof first.params.missingProperty === 'string') path.push(first.params.missingProperty)
  return path.length > 0 ? path.join('.') : null
}

/** OpenAI's `{"error": {message, type, param, code}}`, also the last event of a stream that failed. */
export function openaiError (err: Partial<FastifyError>, request: FastifyRequest): { error: object } {
  const { status, message } = classifyFamily(err)
  const name = err.name ?? ''
  return {
    error: {
      message: name === 'ModelNotFoundError' ? `The model \`${requestedModel(request)}\` does not exist or you do not have access to it.` : message,
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

type Coded = [code: string, message: string]

/** Document 001's numbered errors. */
const TASK_CODES: Record<string, Coded> = {
  DialError: ['E001', 'Bootstrap node unreachable'],
  JoinError: ['E001', 'Bootstrap node unreachable'],
  NoQuorumError: ['E001', 'Bootstrap node unreachable'],
  InsufficientPeersError: ['E002', 'Insufficient resources'],
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
