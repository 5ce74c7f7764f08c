/** The bytes are no ONNX model that graph.ts can hold, or the model lacks what was asked of it (a weight). */
export class ModelFormatError extends Error {
  static name = 'ModelFormatError'
  name = 'ModelFormatError'
}

/** A tensor lives in an external data file that was not provided, or the file is too short for it. */
export class ExternalDataError extends Error {
  static name = 'ExternalDataError'
  name = 'ExternalDataError'
  /** The file's location as the model names it, relative to the model file. */
  readonly location: string
  constructor (location: string, message: string) {
    super(message)
    this.location = location
  }
}

/** A model config (or a config.json) that does not describe a model that can be built. */
export class InvalidConfigError extends Error {
  static name = 'InvalidConfigError'
  name = 'InvalidConfigError'
}
