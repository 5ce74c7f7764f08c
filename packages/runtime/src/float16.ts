/**
 * float16 tensors as onnxruntime-node can take them. Its binding reads a
 * Float16Array as no bytes (N-API has no float16 arrays), but
 * onnxruntime-common makes every float16 tensor's data a Float16Array where
 * the platform has one, outputs included; so float16 data travels and is fed
 * as its bits, a Uint16Array.
 */
import type * as ort from 'onnxruntime-node'

/** A tensor's data, float16 as its bits. */
export function bitsOf (t: ort.Tensor): Float32Array | Uint16Array | ort.Tensor['data'] {
  const data = t.data as ArrayBufferView & { length: number }
  return t.type === 'float16' && !(data instanceof Uint16Array) ? new Uint16Array(data.buffer, data.byteOffset, data.length) : t.data
}

/** The tensor with float16 data put back as its bits, for onnxruntime-node to read. */
export function fed (t: ort.Tensor): ort.Tensor {
  if (t.type === 'float16' && !(t.data instanceof Uint16Array)) (t as unknown as { cpuData: Uint16Array }).cpuData = bitsOf(t) as Uint16Array
  return t
}

/** float16 logits, as fp16 exports return them, as the float32 that sampling reads. */
export function asFloat32 (t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array
  const data = t.data as ArrayLike<number> & ArrayBufferView
  return Float32Array.from(data instanceof Uint16Array ? new Float16Array(data.buffer, data.byteOffset, data.length) : data)
}
