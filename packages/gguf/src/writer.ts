/**
 * Writes a GGUF file (version 3): the header with typed metadata and tensor
 * infos, then each tensor's data on the file's alignment.
 */
import { open } from 'node:fs/promises'
import { DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, TENSOR_TYPES, VALUE_TYPES } from './format.ts'
import type { ScalarType } from './format.ts'

/** A metadata value with the GGUF type it is written as: a number alone does not say uint32 or float32. */
export type TypedValue =
  | { type: Exclude<ScalarType, 'string' | 'bool'>, value: number | bigint }
  | { type: 'string', value: string }
  | { type: 'bool', value: boolean }
  | { type: 'array', of: Exclude<ScalarType, 'string' | 'bool'>, value: Array<number | bigint> }
  | { type: 'array', of: 'string', value: string[] }

export interface TensorToWrite {
  name: string
  /** ggml's order: the contiguous dimension first. */
  dims: number[]
  type: number
  /** Exactly the tensor's bytes in that type. */
  data: Uint8Array
}

class Bytes {
  readonly parts: Buffer[] = []
  length = 0

  push (b: Buffer): void {
    this.parts.push(b)
    this.length += b.length
  }

  u32 (v: number): void {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(v)
    this.push(b)
  }

  u64 (v: number | bigint): void {
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(BigInt(v))
    this.push(b)
  }

  string (s: string): void {
    const b = Buffer.from(s, 'utf8')
    this.u64(b.length)
    this.push(b)
  }

  scalar (type: ScalarType, v: number | bigint | string | boolean): void {
    if (type === 'string') return this.string(v as string)
    const b = Buffer.alloc(SCALAR_BYTES[type])
    switch (type) {
      case 'uint8': b.writeUInt8(v as number); break
      case 'int8': b.writeInt8(v as number); break
      case 'uint16': b.writeUInt16LE(v as number); break
      case 'int16': b.writeInt16LE(v as number); break
      case 'uint32': b.writeUInt32LE(v as number); break
      case 'int32': b.writeInt32LE(v as number); break
      case 'float32': b.writeFloatLE(v as number); break
      case 'bool': b.writeUInt8(v === true ? 1 : 0); break
      case 'uint64': b.writeBigUInt64LE(BigInt(v as number)); break
      case 'int64': b.writeBigInt64LE(BigInt(v as number)); break
      case 'float64': b.writeDoubleLE(v as number); break
    }
    this.push(b)
  }
}

const SCALAR_BYTES: Record<Exclude<ScalarType, 'string'>, number> = { uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, bool: 1, uint64: 8, int64: 8, float64: 8 }

/** Bytes a tensor of `dims` takes in ggml type `type`. */
export function tensorBytes (dims: number[], type: number): number {
  const t = TENSOR_TYPES[type]
  if (t == null) throw new RangeError(`unknown ggml tensor type ${type}`)
  const elements = dims.reduce((n, d) => n * d, 1)
  if (dims[0] % t.block !== 0) throw new RangeError(`a ${t.name} tensor's first dimension must be a multiple of ${t.block}`)
  return elements / t.block * t.bytes
}

const aligned = (n: number, alignment: number): number => Math.ceil(n / alignment) * alignment

export async function writeGguf (path: string, metadata: Record<string, TypedValue>, tensors: TensorToWrite[]): Promise<void> {
  const alignValue = metadata['general.alignment']
  const alignment = alignValue?.type === 'uint32' ? Number(alignValue.value) : DEFAULT_ALIGNMENT
  const h = new Bytes()
  h.u32(GGUF_MAGIC)
  h.u32(GGUF_VERSION)
  h.u64(tensors.length)
  h.u64(Object.keys(metadata).length)
  for (const [key, v] of Object.entries(metadata)) {
    h.string(key)
    h.u32(VALUE_TYPES[v.type])
    if (v.type === 'array') {
      h.u32(VALUE_TYPES[v.of])
      h.u64(v.value.length)
      for (const item of v.value) h.scalar(v.of, item)
    } else {
      h.scalar(v.type, v.value)
    }
  }
  let offset = 0
  const offsets: number[] = []
  for (const t of tensors) {
    if (t.data.byteLength !== tensorBytes(t.dims, t.type)) throw new RangeError(`tensor ${t.name}: ${t.data.byteLength} bytes for dims ${t.dims.join('×')} of type ${TENSOR_TYPES[t.type].name}`)
    h.string(t.name)
    h.u32(t.dims.length)
    for (const d of t.dims) h.u64(d)
    h.u32(t.type)
    h.u64(offset)
    offsets.push(offset)
    offset = aligned(offset + t.data.byteLength, alignment)
  }
  const header = Buffer.concat(h.parts)
  const dataOffset = aligned(header.length, alignment)
  const file = await open(path, 'w')
  try {
    await file.write(header, 0, header.length, 0)
    for (const [i, t] of tensors.entries()) await file.write(t.data, 0, t.data.byteLength, dataOffset + offsets[i])
    // The last tensor's padding, so that the file's size is what its header promises.
    await file.truncate(dataOffset + offset)
  } finally {
    await file.close()
  }
}
