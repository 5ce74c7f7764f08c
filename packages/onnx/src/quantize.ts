/**
 * Weight quantizations that downloaded ONNX models come in, as graph
 * transforms of a float32 model: float16 weights (each cast to float32 where
 * used), and onnxruntime's MatMulNBits, whose 4-bit weights are quantized in
 * blocks along the input axis with a scale and zero point per block, as
 * onnxruntime's matmul_4bits_quantizer writes onnx-community's q4 models;
 * 8-bit weights as onnxruntime's quantize_dynamic writes the int8 and uint8
 * models of optimum and Transformers.js (DynamicQuantizeLinear of the
 * activations, MatMulInteger, rescaled); and embeddings as
 * com.microsoft's GatherBlockQuantized, as onnxruntime-genai's builder
 * stores them.
 */
import type { Initializer, Model, Node } from './graph.ts'

/** `to` of Cast: TensorProto's FLOAT. */
const FLOAT = 1

/** float32 values as float16 bits, rounded to nearest even. */
export function toFloat16Bits (values: Float32Array): Uint16Array {
  const halves = Float16Array.from(values)
  return new Uint16Array(halves.buffer, halves.byteOffset, halves.length)
}

/**
 * The model with every float32 initializer of at least `minElements`
 * values stored as float16 and cast back to float32 by a Cast node under its
 * old name: half the bytes, float32 arithmetic.
 */
export function withFloat16Weights (model: Model, minElements = 16): Model {
  const casts: Node[] = []
  const initializers = model.graph.initializers.map((init): Initializer => {
    if (init.type !== 'float32' || init.data.length < minElements) return init
    const stored = `${init.name}_fp16`
    casts.push({ op: 'Cast', inputs: [stored], outputs: [init.name], attributes: { to: { type: 'int', value: FLOAT } } })
    return { name: stored, type: 'float16', dims: init.dims, data: toFloat16Bits(init.data as Float32Array) }
  })
  return { ...model, graph: { ...model.graph, initializers, nodes: [...casts, ...model.graph.nodes] } }
}

export interface BlockQuantized {
  /** [N, blocks, blockSize / 2]: each column of the [K, N] weight, by blocks of K, two 4-bit values a byte, low nibble first. */
  packed: Uint8Array
  /** [N · blocks]. */
  scales: Float32Array
  /** [N, ⌈blocks / 2⌉]: two 4-bit zero points a byte, low nibble first. */
  zeroPoints: Uint8Array
  blocks: number
}

/**
 * Asymmetric 4-bit quantization of a [K, N] weight in blocks of `blockSize`
 * along K, each block's range widened to hold 0 as onnxruntime's quantizer
 * does: w ≈ (q − zero point) · scale. K is padded with zeros to whole blocks.
 */
export function quantizeBlocks4 (weight: Float32Array, k: number, n: number, blockSize: number): BlockQuantized {
  const blocks = Math.ceil(k / blockSize)
  const packed = new Uint8Array(n * blocks * blockSize / 2)
  const scales = new Float32Array(n * blocks)
  const zeroBytes = Math.ceil(blocks / 2)
  const zeroPoints = new Uint8Array(n * zeroBytes)
  for (let col = 0; col < n; col++) {
    for (let block = 0; block < blocks; block++) {
      const from = block * blockSize
      const to = Math.min(k, from + blockSize)
      let min = 0
      let max = 0
      for (let row = from; row < to; row++) {
        min = Math.min(min, weight[row * n + col])
        max = Math.max(max, weight[row * n + col])
      }
      const scale = max > min ? (max - min) / 15 : 1
      const zero = Math.min(15, Math.max(0, Math.round(-min / scale)))
      scales[col * blocks + block] = scale
      zeroPoints[col * zeroBytes + (block >> 1)] |= zero << ((block & 1) * 4)
      for (let i = 0; i < blockSize; i++) {
        const row = from + i
        const q = row < to ? Math.min(15, Math.max(0, Math.round(weight[row * n + col] / scale) + zero)) : zero
        packed[(col * blocks + block) * blockSize / 2 + (i >> 1)] |= q << ((i & 1) * 4)
      }
    }
  }
  return { packed, scales, zeroPoints, blocks }
}

/** What quantizeBlocks4 gives back, as the [K, N] float32 weight MatMulNBits computes with. */
export function dequantizeBlocks4 (q: BlockQuantized, k: number, n: number, blockSize: number): Float32Array {
  const out = new Float32Array(k * n)
  const zeroBytes = Math.ceil(q.blocks / 2)
  for (let col = 0; col < n; col++) {
    for (let row = 0; row < k; row++) {
      const block = Math.floor(row / blockSize)
      const i = row % blockSize
      const value = (q.packed[(col * q.blocks + block) * blockSize / 2 + (i >> 1)] >> ((i & 1) * 4)) & 15
      const zero = (q.zeroPoints[col * zeroBytes + (block >> 1)] >> ((block & 1) * 4)) & 15
      out[row * n + col] = (value - zero) * q.scales[col * q.blocks + block]
    }
  }
  return out
}

/**
 * The MatMuls by a float32 [K, N] initializer used nowhere else, with the
 * initializer: a tied head multiplies by a transposed embedding, which stays
 * float32.
 */
function weightMatMuls (model: Model): Map<Node, Initializer> {
  const weights = new Map(model.graph.initializers.map(init => [init.name, init]))
  const uses = new Map<string, number>()
  for (const node of model.graph.nodes) for (const name of node.inputs) uses.set(name, (uses.get(name) ?? 0) + 1)
  const found = new Map<Node, Initializer>()
  for (const node of model.graph.nodes) {
    const weight = node.op === 'MatMul' ? weights.get(node.inputs[1]) : undefined
    if (weight != null && weight.type === 'float32' && weight.dims.length === 2 && uses.get(weight.name) === 1) found.set(node, weight)
  }
  return found
}

/** The model with `nodes`, the weights of `matmuls` dropped and `added` stored. */
function replaceWeights (model: Model, nodes: Node[], matmuls: Map<Node, Initializer>, added: Initializer[]): Model {
  const replaced = new Set([...matmuls.values()].map(w => w.name))
  const initializers = [...model.graph.initializers.filter(init => !replaced.has(init.name)), ...added]
  return { ...model, graph: { ...model.graph, initializers, nodes } }
}

/**
 * The model with each MatMul by a float32 [K, N] initializer replaced by
 * com.microsoft's MatMulNBits over its 4-bit blocks.
 */
export function withMatMulNBits (model: Model, blockSize: 32 | 64 | 128 = 32): Model {
  const matmuls = weightMatMuls(model)
  const added: Initializer[] = []
  const nodes = model.graph.nodes.map((node): Node => {
    const weight = matmuls.get(node)
    if (weight == null) return node
    const [k, n] = weight.dims
    const q = quantizeBlocks4(weight.data as Float32Array, k, n, blockSize)
    const name = weight.name
    added.push(
      { name: `${name}_Q4`, type: 'uint8', dims: [n, q.blocks, blockSize / 2], data: q.packed },
      { name: `${name}_scales`, type: 'float32', dims: [n * q.blocks], data: q.scales },
      { name: `${name}_zp`, type: 'uint8', dims: [n * Math.ceil(q.blocks / 2)], data: q.zeroPoints }
    )
    return {
      op: 'MatMulNBits',
      domain: 'com.microsoft',
      inputs: [node.inputs[0], `${name}_Q4`, `${name}_scales`, `${name}_zp`],
      outputs: node.outputs,
      attributes: { K: { type: 'int', value: k }, N: { type: 'int', value: n }, bits: { type: 'int', value: 4 }, block_size: { type: 'int', value: blockSize } }
    }
  })
  return replaceWeights(model, nodes, matmuls, added)
}

/** 8-bit weights, w ≈ (q − zeroPoint) · scale, as quantize_dynamic stores a MatMul's. */
export interface Quantized8 {
  data: Int8Array | Uint8Array
  scale: number
  zeroPoint: number
}

/**
 * One scale for a whole weight, as quantize_dynamic's default per-tensor
 * mode: int8 symmetric (zero point 0, the range ±max|w|), or uint8
 * asymmetric over [min, max] widened to hold 0.
 */
export function quantize8 (weight: Float32Array, type: 'int8' | 'uint8'): Quantized8 {
  let min = 0
  let max = 0
  for (const w of weight) {
    min = Math.min(min, w)
    max = Math.max(max, w)
  }
  if (type === 'int8') {
    const scale = Math.max(max, -min) / 127 || 1
    return { data: Int8Array.from(weight, w => Math.round(w / scale)), scale, zeroPoint: 0 }
  }
  const scale = (max - min) / 255 || 1
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-min / scale)))
  return { data: Uint8Array.from(weight, w => Math.min(255, Math.max(0, Math.round(w / scale) + zeroPoint))), scale, zeroPoint }
}

export function dequantize8 (q: Quantized8): Float32Array {
  return Float32Array.from(q.data, v => (v - q.zeroPoint) * q.scale)
}

const scalar = (name: string, type: 'float32' | 'int8' | 'uint8', value: number): Initializer =>
  ({ name, type, dims: [], data: type === 'float32' ? Float32Array.of(value) : type === 'int8' ? Int8Array.of(value) : Uint8Array.of(value) })

/**
 * The model with each MatMul by a float32 [K, N] initializer computed in
 * 8-bit integers, as onnxruntime's quantize_dynamic writes it: the input
 * quantized at run time to uint8 by DynamicQuantizeLinear (once per tensor,
 * shared by the MatMuls that read it), MatMulInteger with the stored
 * weights, and the int32 result cast back and multiplied by both scales.
 * onnxruntime fuses the pattern into DynamicQuantizeMatMul when it loads.
 */
export function withMatMulInteger (model: Model, type: 'int8' | 'uint8' = 'int8'): Model {
  const matmuls = weightMatMuls(model)
  const added: Initializer[] = []
  const quantizedInputs = new Map<string, string[]>()
  const nodes = model.graph.nodes.flatMap((node): Node[] => {
    const weight = matmuls.get(node)
    if (weight == null) return [node]
    const name = weight.name
    const q = quantize8(weight.data as Float32Array, type)
    added.push(
      { name: `${name}_quantized`, type, dims: weight.dims, data: q.data },
      scalar(`${name}_scale`, 'float32', q.scale),
      scalar(`${name}_zero_point`, type, q.zeroPoint)
    )
    const x = node.inputs[0]
    const out = node.outputs[0]
    const before: Node[] = []
    let dynamic = quantizedInputs.get(x)
    if (dynamic == null) {
      dynamic = [`${x}_quantized`, `${x}_scale`, `${x}_zero_point`]
      quantizedInputs.set(x, dynamic)
      before.push({ op: 'DynamicQuantizeLinear', inputs: [x], outputs: dynamic })
    }
    const [xq, xScale, xZero] = dynamic
    return [
      ...before,
      { op: 'MatMulInteger', inputs: [xq, `${name}_quantized`, xZero, `${name}_zero_point`], outputs: [`${out}_output_quantized`] },
      { op: 'Cast', inputs: [`${out}_output_quantized`], outputs: [`${out}_output_quantized_cast_output`], attributes: { to: { type: 'int', value: FLOAT } } },
      { op: 'Mul', inputs: [xScale, `${name}_scale`], outputs: [`${out}_scales_mul`] },
      { op: 'Mul', inputs: [`${out}_output_quantized_cast_output`, `${out}_scales_mul`], outputs: node.outputs }
    ]
  })
  return replaceWeights(model, nodes, matmuls, added)
}

/** A [rows, columns] table quantized to uint8 in blocks along each row, with a scale and zero point per block. */
export interface RowBlocks8 {
  /** [rows, columns]. */
  data: Uint8Array
  /** [rows, ⌈columns / blockSize⌉]. */
  scales: Float32Array
  zeroPoints: Uint8Array
}

/** Asymmetric 8-bit blocks of each row, each block's range widened to hold 0. */
export function quantizeRowBlocks8 (table: Float32Array, rows: number, columns: number, blockSize: number): RowBlocks8 {
  const blocks = Math.ceil(columns / blockSize)
  const data = new Uint8Array(rows * columns)
  const scales = new Float32Array(rows * blocks)
  const zeroPoints = new Uint8Array(rows * blocks)
  for (let row = 0; row < rows; row++) {
    for (let block = 0; block < blocks; block++) {
      const from = row * columns + block * blockSize
      const to = Math.min((row + 1) * columns, from + blockSize)
      let min = 0
      let max = 0
      for (let i = from; i < to; i++) {
        min = Math.min(min, table[i])
        max = Math.max(max, table[i])
      }
      const scale = (max - min) / 255 || 1
      const zero = Math.min(255, Math.max(0, Math.round(-min / scale)))
      scales[row * blocks + block] = scale
      zeroPoints[row * blocks + block] = zero
      for (let i = from; i < to; i++) data[i] = Math.min(255, Math.max(0, Math.round(table[i] / scale) + zero))
    }
  }
  return { data, scales, zeroPoints }
}

export function dequantizeRowBlocks8 (q: RowBlocks8, rows: number, columns: number, blockSize: number): Float32Array {
  const blocks = Math.ceil(columns / blockSize)
  return Float32Array.from(q.data, (v, i) => {
    const at = Math.floor(i / columns) * blocks + Math.floor((i % columns) / blockSize)
    return (v - q.zeroPoints[at]) * q.scales[at]
  })
}

/**
 * The model with each Gather from a float32 [vocab, hidden] initializer
 * (an embedding) replaced by com.microsoft's GatherBlockQuantized over 8-bit
 * blocks of each row. A table also read elsewhere (a tied head) keeps its
 * float32 copy there.
 */
export function withGatherBlockQuantized (model: Model, blockSize: 16 | 32 | 64 | 128 = 32): Model {
  const weights = new Map(model.graph.initializers.map(init => [init.name, init]))
  const added = new Map<string, Initializer[]>()
  const nodes = model.graph.nodes.map((node): Node => {
    const table = node.op === 'Gather' && (node.attributes?.axis == null || node.attributes.axis.value === 0) ? weights.get(node.inputs[0]) : undefined
    if (table == null || table.type !== 'float32' || table.dims.length !== 2) return node
    const name = table.name
    const [rows, columns] = table.dims
    if (!added.has(name)) {
      const q = quantizeRowBlocks8(table.data as Float32Array, rows, columns, blockSize)
      const blocks = Math.ceil(columns / blockSize)
      added.set(name, [
        { name: `${name}_Q8`, type: 'uint8', dims: [rows, columns], data: q.data },
        { name: `${name}_scales`, type: 'float32', dims: [rows, blocks], data: q.scales },
        { name: `${name}_zp`, type: 'uint8', dims: [rows, blocks], data: q.zeroPoints }
      ])
    }
    return {
      op: 'GatherBlockQuantized',
      domain: 'com.microsoft',
      inputs: [`${name}_Q8`, node.inputs[1], `${name}_scales`, `${name}_zp`],
      outputs: node.outputs,
      attributes: { gather_axis: { type: 'int', value: 0 }, quantize_axis: { type: 'int', value: 1 }, block_size: { type: 'int', value: blockSize }, bits: { type: 'int', value: 8 } }
    }
  })
  const stillUsed = new Set(nodes.flatMap(n => n.inputs))
  const initializers = [...model.graph.initializers.filter(init => !added.has(init.name) || stillUsed.has(init.name)), ...[...added.values()].flat()]
  return { ...model, graph: { ...model.graph, initializers, nodes } }
}
