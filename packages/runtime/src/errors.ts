/**
 * Errors of the inference runtime, each with a stable `name` that the API
 * maps to a status code in each API family's error shape.
 */

/** A model directory lacks a file the Hugging Face ONNX layout needs, or holds one that cannot be read. */
export class InvalidModelError extends Error {
  static name = 'InvalidModelError'
  name = 'InvalidModelError'
}

/** The model exists but cannot do what was asked, e.g. embeddings from a decoder without hidden states. */
export class UnsupportedModelError extends Error {
  static name = 'UnsupportedModelError'
  name = 'UnsupportedModelError'
}

/** A generation or embedding parameter is out of range. */
export class InvalidInferenceRequestError extends Error {
  static name = 'InvalidInferenceRequestError'
  name = 'InvalidInferenceRequestError'
}

/** Loading the model would take more memory than the node has free. */
export class InsufficientMemoryError extends Error {
  static name = 'InsufficientMemoryError'
  name = 'InsufficientMemoryError'
}

/** The prompt does not fit the model's context. */
export class ContextLengthError extends Error {
  static name = 'ContextLengthError'
  name = 'ContextLengthError'
}

/** The worker thread running a model's session stopped: its runs in flight fail, and the model loads again on the next request. */
export class ModelWorkerError extends Error {
  static name = 'ModelWorkerError'
  name = 'ModelWorkerError'
}
