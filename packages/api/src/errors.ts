import { readdirSync } from 'node:fs'
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

/** A WebSocket route was asked for without an Upgrade. */
export class UpgradeRequiredError extends Error {
  static name = 'UpgradeRequiredError'
  name = 'UpgradeRequiredError'
}

/** The path exists but not with this HTTP method. */
export class MethodNotAllowedError extends Error {
  static name = 'MethodNotAllowedError'
  name = 'MethodNotAllowedError'
}

/** No node is fetching what a transfer id names: never allocated, pinned already, or cancelled. */
export class TransferNotFoundError extends Error {
  static name = 'TransferNotFoundError'
  name = 'TransferNotFoundError'
}

/** A Pinning Service API request id that names no pin of the cluster. */
export class PinRequestNotFoundError extends Error {
  static name = 'PinRequestNotFoundError'
  name = 'PinRequestNotFoundError'
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

/**
 * A documented request field the node does not implement, set to a value
 * that would change the answer: refused rather than ignored.
 */
export class UnsupportedParameterError extends Error {
  static name = 'UnsupportedParameterError'
  name = 'UnsupportedParameterError'
  /** The field, as OpenAI's error `param` names it. */
  param: string

  constructor (param: string, message: string) {
    super(message)
    this.param = param
  }
}

/** Error envelope of API document 000, with Kubo's Message/Code/Type beside it; `Code` is document 003's number, else 0. */
export interface ErrorEnvelope {
  success: false
  error: string
  error_type: string
  status_code: number
  Message: string
  Code: number
  Type: 'error'
}

type Mapping = [status: number, type: string, code?: number]

/**
 * The one table from typed error names to HTTP status, the error types of
 * document 000 and, where document 003 numbers the error, its code (the
 * envelope's `Code`). Errors not named here are 500 UnexpectedError.
 * Cluster errors keep their own name as the type, except bad input, which is
 * IPFSValidationError like all bad input.
 */
const BY_NAME: Record<string, Mapping> = {
  InvalidCIDError: [400, 'IPFSValidationError'],
  InvalidParameterError: [400, 'IPFSValidationError'],
  InvalidMultiaddrError: [400, 'IPFSValidationError'],
  InvalidPeerIdError: [400, 'IPFSValidationError'],
  InvalidRoutingRequestError: [400, 'IPFSValidationError'],
  InvalidLogLevelError: [400, 'IPFSValidationError'],
  UnknownSubsystemError: [400, 'IPFSValidationError'],
  BadRequestError: [400, 'IPFSValidationError'],
  MultipartError: [400, 'IPFSValidationError'],
  RangeNotSatisfiableError: [416, 'IPFSValidationError'],
  WrongContentTypeError: [400, 'IPFSError'],
  KeyExistsError: [409, 'IPFSError'],
  FileExistsError: [409, 'IPFSError'],
  ProfileBusyError: [409, 'IPFSError'],
  PinError: [400, 'IPFSPinningError'],
  AlreadyPinnedError: [400, 'IPFSPinningError'],
  NotFoundError: [404, 'IPFSContentNotFoundError'],
  PeerNotFoundError: [404, 'IPFSContentNotFoundError'],
  // Helia's: no blockstore or peer gave the block (a CID that no node holds).
  LoadBlockFailedError: [404, 'IPFSContentNotFoundError'],
  RouteNotFoundError: [404, 'RouteNotFoundError'],
  MethodNotAllowedError: [405, 'MethodNotAllowedError'],
  AuthenticationError: [401, 'AuthenticationError'],
  AuthorizationError: [403, 'AuthorizationError'],
  RateLimitError: [429, 'RateLimitError'],
  InvalidCredentialError: [400, 'IPFSValidationError'],
  CredentialNotFoundError: [404, 'CredentialNotFoundError'],
  UpgradeRequiredError: [426, 'UpgradeRequiredError'],
  TimeoutError: [504, 'IPFSTimeoutError'],
  DeadlineExceededError: [504, 'IPFSTimeoutError'],
  DialError: [503, 'IPFSConnectionError'],
  // libp2p's: the peer took the stream but speaks no such protocol; the peer reset a stream.
  UnsupportedProtocolError: [404, 'UnsupportedProtocolError'],
  StreamResetError: [502, 'IPFSConnectionError'],
  HandshakeFailedError: [503, 'IPFSConnectionError'],
  ConfigError: [500, 'IPFSConfigurationError'],
  RepoError: [500, 'IPFSConfigurationError'],
  InvalidClusterRequestError: [400, 'IPFSValidationError'],
  NodeNotFoundError: [404, 'NodeNotFoundError', 1001],
  PinNotFoundError: [404, 'PinNotFoundError'],
  TransferNotFoundError: [404, 'TransferNotFoundError'],
  PinRequestNotFoundError: [404, 'PinNotFoundError'],
  // Kubo's pin/remote: the node's remote pinning services, and what the remote one answered.
  RemoteServiceNotFoundError: [404, 'RemoteServiceNotFoundError'],
  RemoteServiceExistsError: [409, 'RemoteServiceExistsError'],
  InvalidRemotePinningError: [400, 'IPFSValidationError'],
  // The remote service refused the request as made (a wrong key, a pin it does not have): change the request or the service.
  RemotePinningRefusedError: [400, 'IPFSPinningError'],
  RemotePinningFailedError: [502, 'IPFSConnectionError'],
  RemotePinFailedError: [502, 'IPFSPinningError'],
  // The WebRTC signaling socket's (signaling.ts).
  RoomFullError: [409, 'RoomFullError'],
  SignalTooLargeError: [413, 'PayloadTooLargeError'],
  SignalPeerNotFoundError: [404, 'SignalPeerNotFoundError'],
  ModelNotFoundError: [404, 'ModelNotFoundError'],
  JobNotFoundError: [404, 'JobNotFoundError'],
  ResponseNotFoundError: [404, 'ResponseNotFoundError'],
  ModelExistsError: [409, 'ModelExistsError'],
  ModelOwnershipError: [403, 'ModelOwnershipError'],
  DocumentNotFoundError: [404, 'DocumentNotFoundError'],
  // A stored chain's or index's version names one CID for good: store a new version instead.
  DocumentVersionExistsError: [409, 'DocumentVersionExistsError'],
  CollectionNotFoundError: [404, 'CollectionNotFoundError'],
  CollectionExistsError: [409, 'CollectionExistsError'],
  InvalidSearchRequestError: [400, 'IPFSValidationError'],
  UnsupportedDocumentError: [400, 'IPFSValidationError'],
  IndexJobNotFoundError: [404, 'IndexJobNotFoundError'],
  JobStateError: [409, 'JobStateError'],
  // The cluster has too few eligible nodes for the request as made: retrying it unchanged will not help.
  InsufficientPeersError: [409, 'InsufficientPeersError'],
  // The DHT has nobody to ask: the request conflicts with the node as it is, until it connects to a peer.
  NoPeersError: [409, 'InsufficientPeersError'],
  ConsensusRejectedError: [409, 'ConsensusRejectedError', 1003],
  NoQuorumError: [503, 'NoQuorumError', 1005],
  JoinError: [503, 'JoinError'],
  // A member the cluster does not trust (cluster.trusted_peers) asked for what only trusted peers may do.
  NotTrustedError: [403, 'NotTrustedError'],
  ClusterProtocolError: [502, 'ClusterProtocolError'],
  UnsupportedParameterError: [400, 'IPFSValidationError'],
  // A method caller's args and kwargs that do not fit the operation, as a schema failure is.
  InvalidArgumentsError: [422, 'ValidationError'],
  InvalidModelfileError: [400, 'IPFSValidationError'],
  // A model whose files onnxruntime cannot read: the client named or sent a broken model.
  ExternalDataError: [400, 'IPFSValidationError'],
  InferenceProtocolError: [502, 'ClusterProtocolError'],
  NoWorkerError: [503, 'IPFSConnectionError'],
  // The model is fine; no node the job could go to has the memory for it now.
  InsufficientMemoryError: [503, 'InsufficientPeersError'],
  WorkerConflictError: [409, 'IPFSError'],
  InvalidInferenceRequestError: [400, 'IPFSValidationError'],
  ContextLengthError: [400, 'IPFSValidationError'],
  // A JSON Schema (format, response_format, a tool's parameters) that constrained decoding cannot compile.
  UnsupportedSchemaError: [400, 'IPFSValidationError'],
  // Mostly met on import, where the client sent the broken directory.
  InvalidModelError: [400, 'IPFSValidationError'],
  UnsupportedModelError: [400, 'UnsupportedModelError'],
  // The thread running the model's session went away; the next request loads the model again.
  ModelWorkerError: [503, 'IPFSConnectionError'],
  InvalidTrainingRequestError: [400, 'IPFSValidationError'],
  InvalidDatasetError: [400, 'IPFSValidationError'],
  InvalidTensorFileError: [400, 'IPFSValidationError'],
  UnsupportedTrainingModelError: [400, 'UnsupportedModelError'],
  ModelFormatError: [400, 'IPFSValidationError'],
  TrainingInProgressError: [409, 'TrainingInProgressError', 1002],
  TrainingNotFoundError: [404, 'TrainingNotFoundError'],
  LoaderNotFoundError: [404, 'LoaderNotFoundError'],
  // One pass of a data loader streams at a time: the client waits for it, or makes another loader.
  LoaderBusyError: [409, 'LoaderBusyError'],
  TooManyLoadersError: [429, 'RateLimitError'],
  CheckpointError: [422, 'CheckpointError', 1004],
  // The install skipped the console's build: the daemon works, its web console is not there.
  ConsoleNotBuiltError: [503, 'ConsoleNotBuiltError']
}

/** Fastify's and @fastify/multipart's own errors, by code. */
const BY_CODE: Record<string, Mapping> = {
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
  FST_REQ_FILE_TOO_LARGE: [413, 'PayloadTooLargeError'],
  FST_ERR_BAD_URL: [400, 'IPFSValidationError'],
  FST_ERR_MAX_PARAM_LENGTH: [414, 'IPFSValidationError'],
  // Node's HTTP parser, before any route: headers (the query string among them) over 16 KiB, or a request it cannot read.
  HPE_HEADER_OVERFLOW: [431, 'IPFSValidationError'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'IPFSTimeoutError']
}

export function classify (err: Partial<FastifyError>): { status: number, type: string, code: number } {
  const byCode = err.code != null ? BY_CODE[err.code] : undefined
  const byName = err.name != null ? BY_NAME[err.name] : undefined
  // JSON bodies that do not parse reach us as SyntaxErrors with a 400 status.
  const [status, type, code = 0] = byCode ?? byName ?? (err.name === 'SyntaxError' && err.statusCode === 400 ? [400, 'IPFSValidationError'] : [500, 'UnexpectedError'])
  return { status, type, code }
}

/**
 * The top-level directories of this machine's filesystem: a message's
 * absolute path that starts with one of them (a repo, a model file, a temp
 * dir) tells a caller how the host is laid out, and is cut out of messages.
 * /ipfs/, /p2p/ and multiaddrs do not start with one.
 */
const ROOTS = readdirSync('/').filter(name => /^[\w.-]+$/.test(name))
const FILESYSTEM_PATH = new RegExp(`(?<![\\w.:/-])(?:file://)?/(?:${ROOTS.map(r => r.replace(/\./g, '\\.')).join('|')})(?=/|\\b)[^\\s'"\`,;)]*`, 'g')

/** `message` with every filesystem path in it replaced by `<path>`. */
export function withoutPaths (message: string): string {
  return ROOTS.length === 0 ? message : message.replace(FILESYSTEM_PATH, '<path>')
}

/** The message a client sees: an unexpected error says so, the others say what went wrong; neither names a file of the host. */
export function messageOf (err: Partial<FastifyError>, type: string): string {
  if (type === 'UnexpectedError') return withoutPaths(`internal error: ${err.message ?? 'unknown'}`)
  const first = err.validation?.[0]
  // Ajv's message does not say which property was unexpected.
  const unexpected = first?.keyword === 'additionalProperties' ? `: ${String(first.params.additionalProperty)}` : ''
  return withoutPaths(`${err.message ?? type}${unexpected}`)
}

export function envelope (err: Partial<FastifyError>): ErrorEnvelope {
  const { status, type, code } = classify(err)
  const message = messageOf(err, type)
  return { success: false, error: message, error_type: type, status_code: status, Message: message, Code: code, Type: 'error' }
}

/**
 * The WebSocket close code of an error after the upgrade: 4000 plus its HTTP
 * status (4400, 4403, 4404, 4503…), in the range RFC 6455 leaves to
 * applications, so a browser, which sees no HTTP status, still tells them apart.
 */
export function closeCodeOf (err: Partial<FastifyError>): number {
  return 4000 + classify(err).status
}

/** A WebSocket close reason from a message: RFC 6455 allows 123 bytes, and ws throws past them. */
export function closeReason (message: string): string {
  let reason = message.slice(0, 123)
  while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, -1)
  return reason
}
