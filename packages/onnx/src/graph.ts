/**
 * The in-memory form of an ONNX graph that the builder makes, autodiff
 * transforms and the writer encodes. Plain data, so that a transform is a
 * function from graph to graph and a test can read any part of it.
 */

/** float16 data is held as its raw bits, in a Uint16Array; uint8 holds packed quantized weights. */
export type DataType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'int8' | 'bool'

/** A dimension: a size, or a symbolic name such as 'batch' or 'sequence'. */
export type Dim = number | string

export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array | Int8Array

export interface TensorValue {
  type: DataType
  dims: number[]
  data: TensorData
}

/** A graph input or output. */
export interface ValueInfo {
  name: string
  type: DataType
  shape: Dim[]
}

/** A weight or constant stored with the graph. */
export interface Initializer extends TensorValue {
  name: string
}

/** ONNX tells int from float attributes, so each value says which it is. */
export type Attribute =
  | { type: 'int', value: number }
  | { type: 'float', value: number }
  | { type: 'string', value: string }
  | { type: 'ints', value: number[] }
  | { type: 'floats', value: number[] }
  | { type: 'tensor', value: TensorValue }

export interface Node {
  op: string
  inputs: string[]
  outputs: string[]
  attributes?: Record<string, Attribute>
  name?: string
  /** '' (the default ONNX domain) unless set, e.g. 'com.microsoft'. */
  domain?: string
}

export interface Graph {
  name: string
  inputs: ValueInfo[]
  outputs: ValueInfo[]
  initializers: Initializer[]
  nodes: Node[]
}

export interface Model {
  graph: Graph
  /** The default domain's opset. */
  opset: number
  producer?: string
  /** Free-form metadata_props, e.g. the architecture's hyperparameters. */
  metadata?: Record<string, string>
}

export const attr = {
  int: (value: number): Attribute => ({ type: 'int', value }),
  float: (value: number): Attribute => ({ type: 'float', value }),
  string: (value: string): Attribute => ({ type: 'string', value }),
  ints: (value: number[]): Attribute => ({ type: 'ints', value }),
  floats: (value: number[]): Attribute => ({ type: 'floats', value }),
  tensor: (value: TensorValue): Attribute => ({ type: 'tensor', value })
}
