/**
 * Static shape and type inference over a graph with concrete input sizes.
 * Gradient rules need shapes to undo broadcasting and to size their
 * zeros, and the training graph is built per batch shape, so every value
 * gets a concrete shape here. Shape arithmetic inside the graph (Shape →
 * Gather → Concat → Reshape, as exporters write it) is folded so that the
 * shapes after it are known too. A node that cannot be inferred poisons
 * only its outputs: the error surfaces if a gradient asks for them.
 */
import type { Attribute, DataType, Graph, Node, TensorValue } from '../graph.ts'
import { ShapeInferenceError } from './errors.ts'
import {
  broadcastShapes, intAttr, intsAttr, normalizeAxis, optionalInput, product, reduceAxes, sliceRanges, stringAttr
} from './op-params.ts'

export interface Shapes {
  /** The concrete shape; throws ShapeInferenceError when it could not be worked out. */
  shape (name: string): number[]
  /** The element type, or undefined when unknown (an op shape inference does not know). */
  type (name: string): DataType | undefined
  /** The value, when known while building: initializers, Constant nodes, and small tensors folded from them. */
  value (name: string): TensorValue | undefined
  /** The value as numbers (axes, slice bounds, exponents); throws ShapeInferenceError when it is not known statically. */
  numbers (name: string): number[]
}

interface Entry {
  type?: DataType
  shape?: number[]
  value?: TensorValue
  error?: string
}

/** Folding is for shape arithmetic: small tensors only. */
const FOLD_LIMIT = 4096

/** TensorProto.DataType codes that graph.ts can represent. */
const ONNX_TYPES: Record<number, DataType> = { 1: 'float32', 6: 'int32', 7: 'int64', 9: 'bool' }

export function inferShapes (graph: Graph, dims: Record<string, number> = {}): Shapes {
  const entries = new Map<string, Entry>()
  for (const input of graph.inputs) {
    const missing = input.shape.find(d => typeof d === 'string' && dims[d] === undefined)
    entries.set(input.name, missing === undefined
      ? { type: input.type, shape: input.shape.map(d => typeof d === 'number' ? d : dims[d]) }
      : { type: input.type, error: `dimension '${missing}' of input ${input.name} has no size (pass it in dims)` })
  }
  for (const init of graph.initializers) entries.set(init.name, { type: init.type, shape: init.dims, value: init })

  const entry = (name: string): Entry => {
    const e = entries.get(name)
    if (e === undefined) throw new ShapeInferenceError(`no value named ${name}`)
    return e
  }
  // Errors about an input's shape are passed on as they are, so that the message names the node where inference stopped.
  const inherited = new WeakSet<Error>()
  const shapes: Shapes = {
    shape (name) {
      const e = entry(name)
      if (e.shape !== undefined) return e.shape
      const err = new ShapeInferenceError(e.error ?? `shape of ${name} unknown`)
      inherited.add(err)
      throw err
    },
    type: name => entries.get(name)?.type,
    value: name => entries.get(name)?.value,
    numbers (name) {
      const v = entry(name).value
      if (v === undefined) throw new ShapeInferenceError(`${name} must be a constant`)
      return Array.from(v.data, Number)
    }
  }

  for (const node of graph.nodes) {
    const types = node.outputs.map((_, i) => outputType(node, i, shapes))
    try {
      const outShapes = inferNode(node, shapes)
      const folded = fold(node, shapes, outShapes[0], types[0])
      node.outputs.forEach((name, i) => {
        if (name === '') return
        const e: Entry = { type: types[i], shape: outShapes[i] }
        if (i === 0 && folded !== undefined) e.value = folded
        entries.set(name, e)
      })
    } catch (err) {
      if (!(err instanceof ShapeInferenceError)) throw err
      const error = inherited.has(err) ? err.message : `${node.op} ${node.name ?? node.outputs[0]}: ${err.message}`
      node.outputs.forEach((name, i) => { if (name !== '') entries.set(name, { type: types[i], error }) })
    }
  }
  return shapes
}

function outputType (node: Node, i: number, s: Shapes): DataType | undefined {
  const input = (k: number): DataType | undefined => {
    const name = optionalInput(node, k)
    return name === undefined ? undefined : s.type(name)
  }
  switch (node.op) {
    case 'Shape': case 'Size': case 'ArgMax': case 'ArgMin': case 'NonZero':
      return 'int64'
    case 'Equal': case 'Less': case 'Greater': case 'LessOrEqual': case 'GreaterOrEqual':
    case 'Not': case 'And': case 'Or': case 'Xor': case 'IsNaN': case 'IsInf':
      return 'bool'
    case 'Cast': return ONNX_TYPES[intAttr(node, 'to', 0)]
    case 'Constant': return constantValue(node)?.type
    case 'ConstantOfShape': {
      const a = node.attributes?.value
      return a?.type === 'tensor' ? a.value.type : 'float32'
    }
    case 'Where': return input(1)
    case 'OneHot': return input(2)
    case 'Dropout': return i === 1 ? 'bool' : input(0)
    default: return input(0)
  }
}

function constantValue (node: Node): TensorValue | undefined {
  const a: Record<string, Attribute> = node.attributes ?? {}
  if (a.value?.type === 'tensor') return a.value.value
  if (a.value_float?.type === 'float') return { type: 'float32', dims: [], data: new Float32Array([a.value_float.value]) }
  if (a.value_floats?.type === 'floats') return { type: 'float32', dims: [a.value_floats.value.length], data: new Float32Array(a.value_floats.value) }
  if (a.value_int?.type === 'int') return { type: 'int64', dims: [], data: new BigInt64Array([BigInt(a.value_int.value)]) }
  if (a.value_ints?.type === 'ints') return { type: 'int64', dims: [a.value_ints.value.length], data: BigInt64Array.from(a.value_ints.value, BigInt) }
  return undefined
}

/** Output shapes of one node, in output order. */
function inferNode (node: Node, s: Shapes): number[][] {
  const rule = INFER[node.op]
  if (rule === undefined || (node.domain ?? '') !== '') throw new ShapeInferenceError(`no shape inference for ${node.op}`)
  const shape = (i: number): number[] => {
    const name = optionalInput(node, i)
    if (name === undefined) throw new ShapeInferenceError(`input ${i} missing`)
    return s.shape(name)
  }
  const numbers = (i: number): number[] | undefined => {
    const name = optionalInput(node, i)
    return name === undefined ? undefined : s.numbers(name)
  }
  return rule({ node, shape, numbers })
}

interface InferContext {
  node: Node
  shape: (i: number) => number[]
  /** Input i's value as numbers, undefined when the input is absent, an error when it is not constant. */
  numbers: (i: number) => number[] | undefined
}

type InferRule = (c: InferContext) => number[][]

const same: InferRule = c => c.node.outputs.map(() => c.shape(0))
const broadcast: InferRule = c => [broadcastShapes(...c.node.inputs.map((_, i) => c.shape(i)))]

function reshape (input: number[], target: number[], allowZero: boolean): number[] {
  const out = target.map((d, i) => d === 0 && !allowZero ? input[i] : d)
  const unknown = out.indexOf(-1)
  if (unknown >= 0) {
    const known = product(out.filter((_, i) => i !== unknown))
    out[unknown] = known === 0 ? 0 : product(input) / known
  }
  if (product(out) !== product(input)) throw new ShapeInferenceError(`cannot reshape [${input.join(',')}] to [${target.join(',')}]`)
  return out
}

function matmulShape (a: number[], b: number[]): number[] {
  const a2 = a.length === 1 ? [1, a[0]] : a
  const b2 = b.length === 1 ? [b[0], 1] : b
  if (a2[a2.length - 1] !== b2[b2.length - 2]) throw new ShapeInferenceError(`MatMul [${a.join(',')}] by [${b.join(',')}]`)
  const out = [...broadcastShapes(a2.slice(0, -2), b2.slice(0, -2)), a2[a2.length - 2], b2[b2.length - 1]]
  if (b.length === 1) out.splice(out.length - 1, 1)
  if (a.length === 1) out.splice(out.length - (b.length === 1 ? 1 : 2), 1)
  return out
}

function reduceShape (c: InferContext, axesInput: number | undefined): number[] {
  const x = c.shape(0)
  const axes = reduceAxes(c.node, x.length, axesInput === undefined ? undefined : c.numbers(axesInput))
  if (axes === 'identity') return x
  const keep = intAttr(c.node, 'keepdims', 1) === 1
  return x.flatMap((d, i) => axes.includes(i) ? (keep ? [1] : []) : [d])
}

function lossShapes (c: InferContext): number[][] {
  const labels = c.shape(1)
  const loss = stringAttr(c.node, 'reduction', 'mean') === 'none' ? labels : []
  return c.node.outputs.map((_, i) => i === 0 ? loss : c.shape(0))
}

const UNARY = [
  'Identity', 'Cast', 'Relu', 'LeakyRelu', 'Gelu', 'Tanh', 'Sigmoid', 'Erf', 'Exp', 'Log', 'Sqrt', 'Neg', 'Abs',
  'Reciprocal', 'Floor', 'Ceil', 'Round', 'Sign', 'Not', 'Softmax', 'LogSoftmax', 'Clip', 'Trilu', 'CumSum',
  'IsNaN', 'IsInf', 'Dropout'
]
const BROADCAST = [
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor',
  'Where', 'Max', 'Min', 'Sum', 'Mean', 'Mod'
]

const INFER: Record<string, InferRule> = {
  ...Object.fromEntries(UNARY.map(op => [op, same])),
  ...Object.fromEntries(BROADCAST.map(op => [op, broadcast])),
  Constant: c => {
    const v = constantValue(c.node)
    if (v === undefined) throw new ShapeInferenceError('Constant without a value')
    return [v.dims]
  },
  ConstantOfShape: c => [c.numbers(0) ?? []],
  Shape: c => {
    const rank = c.shape(0).length
    const clamp = (a: number): number => Math.min(Math.max(a < 0 ? a + rank : a, 0), rank)
    return [[Math.max(0, clamp(intAttr(c.node, 'end', rank)) - clamp(intAttr(c.node, 'start', 0)))]]
  },
  Size: () => [[]],
  Range: c => {
    const [start, limit, delta] = [0, 1, 2].map(i => c.numbers(i)?.[0] ?? 0)
    return [[Math.max(0, Math.ceil((limit - start) / delta))]]
  },
  Expand: c => [broadcastShapes(c.shape(0), c.numbers(1) ?? [])],
  MatMul: c => [matmulShape(c.shape(0), c.shape(1))],
  Gemm: c => {
    const a = c.shape(0)
    const b = c.shape(1)
    return [[intAttr(c.node, 'transA', 0) === 1 ? a[1] : a[0], intAttr(c.node, 'transB', 0) === 1 ? b[0] : b[1]]]
  },
  LayerNormalization: c => {
    const x = c.shape(0)
    const axis = normalizeAxis(intAttr(c.node, 'axis', -1), x.length)
    const stat = x.map((d, i) => i < axis ? d : 1)
    return c.node.outputs.map((_, i) => i === 0 ? x : stat)
  },
  Reshape: c => [reshape(c.shape(0), c.numbers(1) ?? [], intAttr(c.node, 'allowzero', 0) === 1)],
  Flatten: c => {
    const x = c.shape(0)
    const axis = intAttr(c.node, 'axis', 1)
    const a = axis < 0 ? axis + x.length : axis
    return [[product(x.slice(0, a)), product(x.slice(a))]]
  },
  Squeeze: c => {
    const x = c.shape(0)
    const axes = (c.numbers(1) ?? intsAttr(c.node, 'axes'))?.map(a => normalizeAxis(a, x.length))
    return [x.filter((d, i) => axes === undefined ? d !== 1 : !axes.includes(i))]
  },
  Unsqueeze: c => {
    const x = c.shape(0)
    const given = c.numbers(1) ?? intsAttr(c.node, 'axes') ?? []
    const rank = x.length + given.length
    const axes = given.map(a => normalizeAxis(a, rank))
    const out: number[] = []
    let k = 0
    for (let i = 0; i < rank; i++) out.push(axes.includes(i) ? 1 : x[k++])
    return [out]
  },
  Transpose: c => {
    const x = c.shape(0)
    const perm = intsAttr(c.node, 'perm') ?? x.map((_, i) => x.length - 1 - i)
    return [perm.map(p => x[p])]
  },
  Gather: c => {
    const x = c.shape(0)
    const axis = normalizeAxis(intAttr(c.node, 'axis', 0), x.length)
    return [[...x.slice(0, axis), ...c.shape(1), ...x.slice(axis + 1)]]
  },
  GatherElements: c => [c.shape(1)],
  ScatterND: same,
  ScatterElements: same,
  Concat: c => {
    const shapes = c.node.inputs.map((_, i) => c.shape(i))
    const axis = normalizeAxis(intAttr(c.node, 'axis', 0), shapes[0].length)
    const out = [...shapes[0]]
    out[axis] = shapes.reduce((n, s) => n + s[axis], 0)
    return [out]
  },
  Split: c => {
    const x = c.shape(0)
    const axis = normalizeAxis(intAttr(c.node, 'axis', 0), x.length)
    const count = c.node.outputs.length
    const sizes = c.numbers(1) ?? intsAttr(c.node, 'split') ??
      Array.from({ length: count }, (_, i) => Math.min(Math.ceil(x[axis] / count), Math.max(0, x[axis] - i * Math.ceil(x[axis] / count))))
    return sizes.map(n => x.map((d, i) => i === axis ? n : d))
  },
  Slice: c => {
    const out = [...c.shape(0)]
    for (const r of sliceRanges(out, c.numbers(1) ?? [], c.numbers(2) ?? [], c.numbers(3), c.numbers(4))) out[r.axis] = r.length
    return [out]
  },
  Pad: c => {
    const x = c.shape(0)
    const pads = c.numbers(1) ?? []
    const axes = (c.numbers(3) ?? x.map((_, i) => i)).map(a => normalizeAxis(a, x.length))
    const out = [...x]
    axes.forEach((a, i) => { out[a] += pads[i] + pads[i + axes.length] })
    return [out]
  },
  Tile: c => {
    const repeats = c.numbers(1) ?? []
    return [c.shape(0).map((d, i) => d * repeats[i])]
  },
  OneHot: c => {
    const indices = c.shape(0)
    const depth = c.numbers(1)?.[0] ?? 0
    const out = [...indices]
    out.splice(normalizeAxis(intAttr(c.node, 'axis', -1), indices.length + 1), 0, depth)
    return [out]
  },
  ReduceSum: c => [reduceShape(c, 1)],
  ReduceMean: c => [reduceShape(c, 1)],
  ReduceMax: c => [reduceShape(c, 1)],
  ReduceMin: c => [reduceShape(c, 1)],
  ReduceProd: c => [reduceShape(c, 1)],
  ReduceSumSquare: c => [reduceShape(c, 1)],
  ArgMax: c => [argShape(c)],
  ArgMin: c => [argShape(c)],
  SoftmaxCrossEntropyLoss: lossShapes,
  NegativeLogLikelihoodLoss: lossShapes
}

function argShape (c: InferContext): number[] {
  const x = c.shape(0)
  const axis = normalizeAxis(intAttr(c.node, 'axis', 0), x.length)
  const keep = intAttr(c.node, 'keepdims', 1) === 1
  return x.flatMap((d, i) => i === axis ? (keep ? [1] : []) : [d])
}

// --- constant folding of small tensors ---

interface Num {
  type: DataType
  dims: number[]
  data: number[]
}

function toNum (t: TensorValue): Num {
  return { type: t.type, dims: t.dims, data: Array.from(t.data, Number) }
}

function fromNum (n: Num): TensorValue {
  switch (n.type) {
    case 'float32': return { type: n.type, dims: n.dims, data: Float32Array.from(n.data) }
    case 'float16': throw new Error('float16 values are not folded')
    case 'int64': return { type: n.type, dims: n.dims, data: BigInt64Array.from(n.data, toInt64) }
    case 'int32': return { type: n.type, dims: n.dims, data: Int32Array.from(n.data) }
    case 'uint8': return { type: n.type, dims: n.dims, data: Uint8Array.from(n.data) }
    case 'int8': return { type: n.type, dims: n.dims, data: Int8Array.from(n.data) }
    case 'bool': return { type: n.type, dims: n.dims, data: Uint8Array.from(n.data, v => v !== 0 ? 1 : 0) }
  }
}

const INT64_MAX = 2n ** 63n - 1n
const INT64_MIN = -(2n ** 63n)

/** Saturates, because INT64_MAX (Slice's "to the end") does not survive the round trip through a double. */
function toInt64 (v: number): bigint {
  const b = BigInt(Math.trunc(v))
  return b > INT64_MAX ? INT64_MAX : b < INT64_MIN ? INT64_MIN : b
}

/** Strides of `shape` read as if broadcast to `out` (0 along broadcast axes). */
function broadcastStrides (shape: number[], out: number[]): number[] {
  const strides = new Array<number>(out.length).fill(0)
  let stride = 1
  for (let i = shape.length - 1; i >= 0; i--) {
    const k = out.length - shape.length + i
    strides[k] = shape[i] === 1 ? 0 : stride
    stride *= shape[i]
  }
  return strides
}

/** For each flat index of `out`, the flat index into a tensor of shape `shape` broadcast to it. */
function broadcastIndices (shape: number[], out: number[]): number[] {
  const strides = broadcastStrides(shape, out)
  const size = product(out)
  const res = new Array<number>(size)
  for (let flat = 0; flat < size; flat++) {
    let rest = flat
    let at = 0
    for (let i = out.length - 1; i >= 0; i--) {
      at += (rest % out[i]) * strides[i]
      rest = Math.floor(rest / out[i])
    }
    res[flat] = at
  }
  return res
}

type Elementwise = (args: number[], type: DataType) => number

const ELEMENTWISE: Record<string, Elementwise> = {
  Add: ([a, b]) => a + b,
  Sub: ([a, b]) => a - b,
  Mul: ([a, b]) => a * b,
  Div: ([a, b], type) => type === 'float32' ? a / b : Math.trunc(a / b),
  Neg: ([a]) => -a,
  Equal: ([a, b]) => a === b ? 1 : 0,
  Less: ([a, b]) => a < b ? 1 : 0,
  Greater: ([a, b]) => a > b ? 1 : 0,
  Not: ([a]) => a === 0 ? 1 : 0,
  Max: args => Math.max(...args),
  Min: args => Math.min(...args),
  Where: ([c, a, b]) => c !== 0 ? a : b
}

/** Ops that keep the data and only relabel the dims. */
const RESHAPING = new Set(['Identity', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze'])

function fold (node: Node, s: Shapes, outShape: number[] | undefined, type: DataType | undefined): TensorValue | undefined {
  if (node.op === 'Constant') return constantValue(node)
  // float16 values are held as bits, which no arithmetic here reads right.
  if (outShape === undefined || type === undefined || type === 'float16' || product(outShape) > FOLD_LIMIT) return undefined
  if (node.op === 'Shape') {
    const x = s.shape(node.inputs[0])
    const start = intAttr(node, 'start', 0)
    const from = Math.min(Math.max(start < 0 ? start + x.length : start, 0), x.length)
    return fromNum({ type, dims: outShape, data: x.slice(from, from + outShape[0]) })
  }
  if (node.op === 'Size') return fromNum({ type, dims: [], data: [product(s.shape(node.inputs[0]))] })
  const inputs = node.inputs.map(name => name === '' ? undefined : s.value(name))
  if (inputs.some((v, i) => v === undefined && node.inputs[i] !== '')) return undefined
  // A small slice of a large weight is no shape arithmetic, and copying the weight into numbers would be slow.
  if (inputs.some(v => v !== undefined && (v.data.length > FOLD_LIMIT || v.type === 'float16'))) return undefined
  const args = inputs.map(v => v === undefined ? undefined : toNum(v))
  const x = args[0]
  const compute = (): Num | undefined => {
    if (x === undefined) return undefined
    const elementwise = ELEMENTWISE[node.op]
    if (elementwise !== undefined) {
      const present = args.filter(a => a !== undefined)
      const index = present.map(a => broadcastIndices(a.dims, outShape))
      const data = index[0].map((_, flat) => elementwise(present.map((a, k) => a.data[index[k][flat]]), x.type))
      return { type, dims: outShape, data }
    }
    if (RESHAPING.has(node.op)) return { type, dims: outShape, data: x.data }
    switch (node.op) {
      case 'Cast': return { type, dims: outShape, data: x.data.map(v => type === 'float32' ? Math.fround(v) : type === 'bool' ? (v !== 0 ? 1 : 0) : Math.trunc(v)) }
      case 'ConstantOfShape': {
        const a = node.attributes?.value
        const fill = a?.type === 'tensor' ? Number(a.value.data[0]) : 0
        return { type, dims: outShape, data: new Array<number>(product(outShape)).fill(fill) }
      }
      case 'Range': {
        const [start, , delta] = args.map(a => a?.data[0] ?? 0)
        return { type, dims: outShape, data: Array.from({ length: outShape[0] }, (_, i) => start + i * delta) }
      }
      case 'Gather': return foldGather(x, args[1], intAttr(node, 'axis', 0), outShape)
      case 'Concat': return foldConcat(args.filter(a => a !== undefined), intAttr(node, 'axis', 0), outShape)
      case 'Slice': {
        const ranges = sliceRanges(x.dims, args[1]?.data ?? [], args[2]?.data ?? [], args[3]?.data, args[4]?.data)
        return foldSlice(x, ranges, outShape)
      }
      default: return undefined
    }
  }
  const folded = compute()
  return folded === undefined ? undefined : fromNum(folded)
}

function foldGather (data: Num, indices: Num | undefined, axisAttr: number, outShape: number[]): Num | undefined {
  if (indices === undefined) return undefined
  const axis = normalizeAxis(axisAttr, data.dims.length)
  const dim = data.dims[axis]
  const inner = product(data.dims.slice(axis + 1))
  const outer = product(data.dims.slice(0, axis))
  const out: number[] = []
  for (let o = 0; o < outer; o++) {
    for (const raw of indices.data) {
      const j = raw < 0 ? raw + dim : raw
      const base = (o * dim + j) * inner
      for (let k = 0; k < inner; k++) out.push(data.data[base + k])
    }
  }
  return { type: data.type, dims: outShape, data: out }
}

function foldConcat (parts: Num[], axisAttr: number, outShape: number[]): Num {
  const axis = normalizeAxis(axisAttr, outShape.length)
  const outer = product(outShape.slice(0, axis))
  const out: number[] = []
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const block = product(p.dims.slice(axis))
      out.push(...p.data.slice(o * block, (o + 1) * block))
    }
  }
  return { type: parts[0].type, dims: outShape, data: out }
}

function foldSlice (x: Num, ranges: ReturnType<typeof sliceRanges>, outShape: number[]): Num {
  const strides = broadcastStrides(x.dims, x.dims)
  const size = product(outShape)
  const out = new Array<number>(size)
  for (let flat = 0; flat < size; flat++) {
    let rest = flat
    let at = 0
    for (let i = outShape.length - 1; i >= 0; i--) {
      const c = rest % outShape[i]
      rest = Math.floor(rest / outShape[i])
      const r = ranges.find(r => r.axis === i)
      at += (r === undefined ? c : r.start + c * r.step) * strides[i]
    }
    out[flat] = x.data[at]
  }
  return { type: x.type, dims: outShape, data: out }
}
