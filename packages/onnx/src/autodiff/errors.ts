/** A node on a path from a parameter to the loss has no gradient rule. */
export class UnsupportedOpError extends Error {
  static name = 'UnsupportedOpError'
  name = 'UnsupportedOpError'
  readonly op: string
  constructor (op: string, detail = '') {
    super(`no gradient for ${op}${detail === '' ? '' : `: ${detail}`}`)
    this.op = op
  }
}

/** A shape that a gradient needs could not be worked out statically. */
export class ShapeInferenceError extends Error {
  static name = 'ShapeInferenceError'
  name = 'ShapeInferenceError'
}

/** The graph or the options cannot make a training graph: no such loss or parameter, a cycle, a non-scalar loss. */
export class InvalidGraphError extends Error {
  static name = 'InvalidGraphError'
  name = 'InvalidGraphError'
}
