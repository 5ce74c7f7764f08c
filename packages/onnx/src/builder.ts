/**
 * Writes graphs concisely: each `op` call appends a node and returns fresh,
 * unique output names, so model code reads as a chain of expressions.
 */
import type { Attribute, DataType, Dim, Graph, Model, Node, TensorValue } from './graph.ts'

export interface GraphBuilderOptions {
  name?: string
  /** 17 by default: the first with LayerNormalization, the last where ReduceMean takes `axes` as an attribute. */
  opset?: number
}

export interface ParameterShape {
  name: string
  dims: number[]
}

export class GraphBuilder {
  readonly #graph: Graph
  readonly #opset: number
  #counter = 0

  constructor (options: GraphBuilderOptions = {}) {
    this.#graph = { name: options.name ?? 'main', inputs: [], outputs: [], initializers: [], nodes: [] }
    this.#opset = options.opset ?? 17
  }

  input (name: string, type: DataType, shape: Dim[]): string {
    this.#graph.inputs.push({ name, type, shape })
    return name
  }

  /**
   * Makes the node output `value` a graph output called `name`. The value is
   * renamed rather than copied through an Identity, so that every graph
   * output is the result of a real op (autodiff has one op fewer to know).
   */
  output (value: string, name: string, type: DataType, shape: Dim[]): void {
    const producer = this.#graph.nodes.find(n => n.outputs.includes(value))
    if (producer == null) throw new Error(`graph output ${name}: ${value} is not the output of a node`)
    for (const node of this.#graph.nodes) {
      node.inputs = node.inputs.map(i => i === value ? name : i)
      node.outputs = node.outputs.map(o => o === value ? name : o)
    }
    this.#graph.outputs.push({ name, type, shape })
  }

  initializer (name: string, value: TensorValue): string {
    this.#graph.initializers.push({ name, ...value })
    return name
  }

  /**
   * Declares float32 parameters in order: as initializers holding `values`
   * (an inference graph), or, without values, as graph inputs (a training
   * graph, whose gradients autodiff takes with respect to its inputs).
   */
  parameters (shapes: ParameterShape[], values?: Record<string, Float32Array>): void {
    for (const { name, dims } of shapes) {
      if (values == null) {
        this.input(name, 'float32', dims)
        continue
      }
      const data = values[name]
      const size = dims.reduce((a, b) => a * b, 1)
      if (data?.length !== size) throw new Error(`weight ${name}: expected ${size} values for [${dims.join(', ')}], got ${data?.length}`)
      this.initializer(name, { type: 'float32', dims, data })
    }
  }

  /** A constant tensor, stored as an initializer under a generated name. */
  constant (value: TensorValue): string {
    return this.initializer(this.#fresh('const'), value)
  }

  /** A 1-D int64 constant, for shapes, axes and indices. */
  ints (values: number[]): string {
    return this.constant({ type: 'int64', dims: [values.length], data: BigInt64Array.from(values, BigInt) })
  }

  /** A scalar constant, float32 unless asked otherwise; a float scalar broadcasts against anything. */
  scalar (value: number, type: 'float32' | 'int64' = 'float32'): string {
    const data = type === 'int64' ? BigInt64Array.of(BigInt(value)) : Float32Array.of(value)
    return this.constant({ type, dims: [], data })
  }

  op (type: string, inputs: string[], attributes?: Record<string, Attribute>): string
  op (type: string, inputs: string[], attributes: Record<string, Attribute> | undefined, outputCount: number): string[]
  op (type: string, inputs: string[], attributes?: Record<string, Attribute>, outputCount?: number): string | string[] {
    const outputs = Array.from({ length: outputCount ?? 1 }, () => this.#fresh(type))
    const node: Node = { op: type, inputs, outputs }
    if (attributes != null) node.attributes = attributes
    this.#graph.nodes.push(node)
    return outputCount == null ? outputs[0] : outputs
  }

  build (metadata?: Record<string, string>): Model {
    // Shallow: the weights are not copied, and the builder is done once built.
    const model: Model = { graph: { ...this.#graph }, opset: this.#opset }
    if (metadata != null) model.metadata = metadata
    return model
  }

  #fresh (prefix: string): string {
    return `${prefix}_${this.#counter++}`
  }
}
