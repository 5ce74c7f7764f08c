/** Bytes that are not a valid safetensors file, or tensors that cannot be written as one. */
export class InvalidTensorFileError extends Error {
  static name = 'InvalidTensorFileError'
  name = 'InvalidTensorFileError'
}

/** Bytes that are not a dataset in one of the formats the daemon defines, or one over the size limit. */
export class InvalidDatasetError extends Error {
  static name = 'InvalidDatasetError'
  name = 'InvalidDatasetError'
  /** The 1-based JSONL line at fault, when there is one, so that an API can point at it. */
  readonly line?: number
  constructor (message: string, options: { line?: number, cause?: unknown } = {}) {
    super(options.line === undefined ? message : `line ${options.line}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause })
    if (options.line !== undefined) this.line = options.line
  }
}

/** A training request that cannot run as made: a bad hyperparameter, a dataset that does not suit the model, too few nodes. */
export class InvalidTrainingRequestError extends Error {
  static name = 'InvalidTrainingRequestError'
  name = 'InvalidTrainingRequestError'
}

/** A model whose architecture the project cannot build a training graph for. */
export class UnsupportedTrainingModelError extends Error {
  static name = 'UnsupportedTrainingModelError'
  name = 'UnsupportedTrainingModelError'
}

/** Document 003's TRAINING_IN_PROGRESS: a session is active, and one runs at a time. */
export class TrainingInProgressError extends Error {
  static name = 'TrainingInProgressError'
  name = 'TrainingInProgressError'
}

export class TrainingNotFoundError extends Error {
  static name = 'TrainingNotFoundError'
  name = 'TrainingNotFoundError'
}

/** Document 003's MODEL_CORRUPT: content that should be a checkpoint is not one. */
export class CheckpointError extends Error {
  static name = 'CheckpointError'
  name = 'CheckpointError'
}

/** An external worker whose client id is already connected to this node. */
export class WorkerConflictError extends Error {
  static name = 'WorkerConflictError'
  name = 'WorkerConflictError'
}

/** No data loader has this id on this node: it was never made here, was closed, or expired. */
export class LoaderNotFoundError extends Error {
  static name = 'LoaderNotFoundError'
  name = 'LoaderNotFoundError'
}

/** A data loader streams one pass at a time. */
export class LoaderBusyError extends Error {
  static name = 'LoaderBusyError'
  name = 'LoaderBusyError'
}

/** The node keeps so many data loaders open at most. */
export class TooManyLoadersError extends Error {
  static name = 'TooManyLoadersError'
  name = 'TooManyLoadersError'
}
