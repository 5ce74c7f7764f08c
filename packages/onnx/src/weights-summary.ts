/**
 * How many parameters an ONNX model's weights hold and in which type, read
 * from the model file field by field as externalDataLocations reads it: the
 * tensor bytes are skipped, so a model of gigabytes costs a walk of its
 * headers. Ollama's /api/show and /api/ps report both.
 */
import { open } from 'node:fs/promises'
import { fields, Reader } from './external-data.ts'

export interface WeightsSummary {
  /** Elements of the floating-point and quantized initializers. */
  parameters: number
  /** Ollama's name of the weights' type: F32, F16, BF16, Q8_0, Q4_0; empty when the model has no weights. */
  quantization: string
  /** The graph's op types, each once, for what a runtime must handle apart (GroupQueryAttention). */
  ops: string[]
}

/** onnx.proto's TensorProto.DataType codes of weights, by the name Ollama gives their type. */
const WEIGHT_TYPES: Record<number, string> = { 1: 'F32', 10: 'F16', 16: 'BF16', 11: 'F64', 2: 'Q8_0', 3: 'Q8_0', 17: 'F8', 18: 'F8', 19: 'F8', 20: 'F8', 21: 'Q4_0', 22: 'Q4_0' }
/** onnxruntime's 4-bit block-quantized MatMul, whose packed weights are stored as bytes. */
const FOUR_BIT_OPS = new Set(['MatMulNBits'])

export async function weightsSummary (path: string): Promise<WeightsSummary> {
  const handle = await open(path, 'r')
  try {
    const reader = new Reader(handle, (await handle.stat()).size)
    const elements = new Map<string, number>()
    const ops = new Set<string>()
    for await (const model of fields(reader, 0, reader.size)) {
      if (model.field !== 7 || model.wire !== 2) continue
      for await (const graph of fields(reader, model.start, model.end)) {
        if (graph.wire !== 2) continue
        if (graph.field === 1) {
          for await (const node of fields(reader, graph.start, graph.end)) {
            if (node.field === 4 && node.wire === 2) ops.add((await reader.bytes(node.start, node.value)).toString('utf8'))
          }
        } else if (graph.field === 5) {
          let count = 1
          let type = 0
          for await (const tensor of fields(reader, graph.start, graph.end)) {
            if (tensor.field === 2 && tensor.wire === 0) type = tensor.value
            else if (tensor.field === 1 && tensor.wire === 0) count *= tensor.value
            else if (tensor.field === 1 && tensor.wire === 2) {
              // Packed dims: varints one after another.
              for (let at = tensor.start; at < tensor.end;) {
                const [dim, length] = await reader.varint(at)
                count *= dim
                at += length
              }
            }
          }
          const name = WEIGHT_TYPES[type]
          if (name != null) elements.set(name, (elements.get(name) ?? 0) + count)
        }
      }
    }
    const dominant = [...elements].sort((a, b) => b[1] - a[1])[0]?.[0] ?? ''
    return {
      parameters: [...elements.values()].reduce((n, c) => n + c, 0),
      quantization: [...ops].some(op => FOUR_BIT_OPS.has(op)) ? 'Q4_0' : dominant,
      ops: [...ops].sort()
    }
  } finally {
    await handle.close()
  }
}
