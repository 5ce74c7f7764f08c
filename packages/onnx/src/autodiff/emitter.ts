/**
 * Collects the nodes and constants of the backward pass under names that
 * clash with nothing in the forward graph, and the few tensor idioms that
 * most gradient rules share.
 */
import { attr } from '../graph.ts'
import type { Attribute, Initializer, Node, TensorValue } from '../graph.ts'
import { sameShape } from './op-params.ts'

export class Emitter {
  readonly nodes: Node[] = []
  readonly initializers: Initializer[] = []
  readonly #taken: Set<string>
  readonly #constants = new Map<string, string>()
  #count = 0

  constructor (taken: Iterable<string>) {
    this.#taken = new Set(taken)
  }

  /** A name that no value of the graph has yet, close to `hint`. */
  fresh (hint: string): string {
    let name = hint
    while (this.#taken.has(name)) name = `${hint}_${++this.#count}`
    this.#taken.add(name)
    return name
  }

  op (op: string, inputs: string[], attributes?: Record<string, Attribute>): string {
    return this.ops(op, inputs, 1, attributes)[0]
  }

  ops (op: string, inputs: string[], count: number, attributes?: Record<string, Attribute>): string[] {
    const outputs = Array.from({ length: count }, () => this.fresh(`grad/${op}`))
    this.emit(attributes === undefined ? { op, inputs, outputs } : { op, inputs, outputs, attributes })
    return outputs
  }

  emit (node: Node): void {
    this.nodes.push(node)
  }

  /** A constant initializer, shared between all rules that ask for the same small value. */
  constant (value: TensorValue): string {
    const key = value.data.length <= 64 ? `${value.type}[${value.dims.join(',')}]${Array.from(value.data, String).join(',')}` : undefined
    const known = key === undefined ? undefined : this.#constants.get(key)
    if (known !== undefined) return known
    const name = this.fresh('grad/const')
    this.initializers.push({ name, ...value })
    if (key !== undefined) this.#constants.set(key, name)
    return name
  }

  /** A 1-D int64 constant: axes, shapes, pads. */
  ints (values: number[]): string {
    return this.constant({ type: 'int64', dims: [values.length], data: BigInt64Array.from(values, BigInt) })
  }

  /** A float32 scalar, which broadcasts against anything. */
  scalar (value: number): string {
    return this.constant({ type: 'float32', dims: [], data: new Float32Array([value]) })
  }
}

/** Sums a gradient of shape `from` down to the shape `to` that was broadcast up to it. */
export function sumTo (e: Emitter, g: string, from: number[], to: number[]): string {
  if (sameShape(from, to)) return g
  const lead = from.length - to.length
  const axes = from.flatMap((d, i) => d !== 1 && (i < lead || to[i - lead] === 1) ? [i] : [])
  const summed = axes.length === 0 ? g : e.op('ReduceSum', [g, e.ints(axes)], { keepdims: attr.int(1) })
  return lead === 0 ? summed : reshape(e, summed, to)
}

export function reshape (e: Emitter, x: string, to: number[]): string {
  return e.op('Reshape', [x, e.ints(to)])
}

export function zeros (e: Emitter, shape: number[]): string {
  return e.op('ConstantOfShape', [e.ints(shape)], { value: attr.tensor({ type: 'float32', dims: [1], data: new Float32Array([0]) }) })
}

/** Swaps the last two axes of a tensor of rank `rank`. */
export function transposeLast2 (e: Emitter, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i)
  perm[rank - 2] = rank - 1
  perm[rank - 1] = rank - 2
  return e.op('Transpose', [x], { perm: attr.ints(perm) })
}
