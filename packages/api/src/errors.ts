import type { FastifyError } from 'fastify'

/** A multipart body could not be parsed. */
export class MultipartError extends Error {
  static name = 'MultipartError'
  name = 'MultipartError'
}

/** No route has this path. */
export class RouteNotFoundError extends Error {
  static name = 'RouteNotFoundError'
  name = 'RouteNotFoundError'
}

/** The path exists but not with this HTTP method. */
export class MethodNotAllowedError extends Error {
  static name = 'MethodNotAllowedError'
  name = 'MethodNotAllowedError'
}

/** The request's Kubo `timeout` option ran out before the work finished. */
export class DeadlineExceededError extends Error {
  static name = 'DeadlineExceededError'
  name = 'DeadlineExceededError'
}

/** A Range header asks for bytes outside the file. */
export class RangeNotSatisfiableError extends Error {
  static name = 'RangeNotSatisfiableError'
  name = 'RangeNotSatisfiableError'
}

/** A required argument is missing or has the wrong form. */
export class BadRequestError extends Error {
  static name = 'BadRequestError'
  name = 'BadRequestError'
}

/** Error envelope of API document 000, with Kubo's Message/Code/Type beside it. */
export interface ErrorEnvelope {
  success: false
  error: string
  error_type: string
  status_code: number
  Message: string
  Code: number
  Type: 'error'
}

/**
 * The one table from typed error names to HTTP status and the error types of
 * document 000. Errors not named here are 500 UnexpectedError.
 */
const BY_NAME: Record<string, [number, string]> = {
  InvalidCIDError: [400, 'IPFSValidationError'],
  InvalidParameterError: [400, 'IPFSValidationError'],
  InvalidMultiaddrError: [400, 'IPFSValidationError'],
  InvalidPeerIdError: [400, 'IPFSValidationError'],
  BadRequestError: [400, 'IPFSValidationError'],
  MultipartError: [400, 'IPFSValidationError'],
  RangeNotSatisfiableError: [416, 'IPFSValidationError'],
  WrongContentTypeError: [400, 'IPFSError'],
  KeyExistsError: [409, 'IPFSError'],
  PinError: [400, 'IPFSPinningError'],
  NotFoundError: [404, 'IPFSContentNotFoundError'],
  PeerNotFoundError: [404, 'IPFSContentNotFoundError'],
  RouteNotFoundError: [404, 'RouteNotFoundError'],
  MethodNotAllowedError: [405, 'MethodNotAllowedError'],
  TimeoutError: [504, 'IPFSTimeoutError'],
  DeadlineExceededError: [504, 'IPFSTimeoutError'],
  DialError: [503, 'IPFSConnectionError'],
  ConfigError: [500, 'IPFSConfigurationError'],
  RepoError: [500, 'IPFSConfigurationError']
}

/** Fastify's and @fastify/multipart's own errors, by code. */
const BY_CODE: Record<string, [number, string]> = {
  FST_ERR_VALIDATION: [422, 'ValidationError'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'PayloadTooLargeError'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'UnsupportedMediaTypeError'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'IPFSValidationError'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'IPFSValidationError'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'IPFSValidationError'],
  FST_INVALID_MULTIPART_CONTENT_TYPE: [400, 'IPFSValidationError'],
  FST_PARTS_LIMIT: [413, 'PayloadTooLargeError'],
  FST_FILES_LIMIT: [413, 'PayloadTooLargeError'],
  FST_FIELDS_LIMIT: [413, 'PayloadTooLargeError'],
  FST_REQ_FILE_TOO_LARGE: [413, 'PayloadTooLargeError']
}

export function classify (err: Partial<FastifyError>): { status: number, type: string } {
  const byCode = err.code != null ? BY_CODE[err.code] : undefined
  const byName = err.name != null ? BY_NAME[err.name] : undefined
  // JSON bodies that do not parse reach us as SyntaxErrors with a 400 status.
  const [status, type] = byCode ?? byName ?? (err.name === 'SyntaxError' && err.statusCode === 400 ? [400, 'IPFSValidationError'] : [500, 'UnexpectedError'])
  return { status, type }
}

export function envelope (err: Partial<FastifyError>): ErrorEnvelope {
  const { status, type } = classify(err)
  const message = status === 500 && type === 'UnexpectedError' ? `internal error: ${err.message ?? 'unknown'}` : (err.message ?? type)
  return { success: false, error: message, error_type: type, status_code: status, Message: message, Code: 0, Type: 'error' }
}
