/**
 * Errors of inference across the cluster, with stable names the API maps.
 * Model lookups raise the cluster's ModelNotFoundError; bad parameters the
 * runtime's InvalidInferenceRequestError.
 */

/** A Modelfile or model name that cannot be parsed. */
export class InvalidModelfileError extends Error {
  static name = 'InvalidModelfileError'
  name = 'InvalidModelfileError'
}

/** A model registered by one user account is updated only by that account (or an admin). */
export class ModelOwnershipError extends Error {
  static name = 'ModelOwnershipError'
  name = 'ModelOwnershipError'
}

/** No node could run the job: every candidate failed or none is reachable. */
export class NoWorkerError extends Error {
  static name = 'NoWorkerError'
  name = 'NoWorkerError'
}

/** No stored response has that id, or it was deleted. */
export class ResponseNotFoundError extends Error {
  static name = 'ResponseNotFoundError'
  name = 'ResponseNotFoundError'
}

/** The inference protocol broke: a malformed message, or a stream that ended without a result. */
export class InferenceProtocolError extends Error {
  static name = 'InferenceProtocolError'
  name = 'InferenceProtocolError'
}
