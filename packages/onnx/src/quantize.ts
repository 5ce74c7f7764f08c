/**
 * Weight quantizations that downloaded ONNX models come in, as graph
 * transforms of a float32 model: float16 weights (each cast to float32 where
 * used), and onnxruntime's MatMulNBits, whose 4-bit weights are quantized in
 * blocks along the input axis with a scale and zero point per block, as
 * onnxruntime's matmul_4bits_quantizer writes onnx-community's q4 models.
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
 * The model with each MatMul by a float32 [K, N] initializer replaced by
 * com.microsoft's MatMulNBits over its 4-bit blocks. Other MatMuls (a tied
 * head multiplies by a transposed embedding) stay float32.
 */
export function withMatMulNBits (model: Model, blockSize: 32 | 64 | 128 = 32): Model {
  const weights = new Map(model.graph.initializers.map(init => [init.name, init]))
  const uses = new Map<string, number>()
  for (const node of model.graph.nodes) for (const input of node.inputs) uses.set(input, (uses.get(input) ?? 0) + 1)
  const added: Initializer[] = []
  const replaced = new Set<string>()
  const nodes = model.graph.nodes.map((node): Node => {
    const weight = node.op === 'MatMul' ? weights.get(node.inputs[1]) : undefined
    if (weight == null || weight.type !== 'float32' || weight.dims.length !== 2 || uses.get(weight.name) !== 1) return node
    const [k, n] = weight.dims
    const q = quantizeBlocks4(weight.data as Float32Array, k, n, blockSize)
    const name = weight.name
    replaced.add(name)
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
  const initializers = [...model.graph.initializers.filter(init => !replaced.has(init.name)), ...added]
  return { ...model, graph: { ...model.graph, initializers, nodes } }
}
