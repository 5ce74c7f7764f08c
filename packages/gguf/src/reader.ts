/**
 * Reads a GGUF file's header: its metadata and the infos of its tensors,
 * without their data, which may be gigabytes. The file is read in chunks as
 * the header needs them: a tokenizer's vocabulary alone can take megabytes.
 */
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { DEFAULT_ALIGNMENT, GGUF_MAGIC, POOLING_TYPES, TENSOR_TYPES, fileTypeName } from './format.ts'
import type { PoolingType } from './format.ts'
import { GgufFormatError } from './errors.ts'

export type GgufValue = number | bigint | boolean | string | GgufValue[]

export interface GgufTensorInfo {
  name: string
  /** ggml's order: the first dimension is the one whose elements are contiguous. */
  dims: number[]
  /** ggml tensor type, e.g. 0 for F32, 12 for Q4_K. */
  type: number
  /** From the start of the tensor data. */
  offset: number
}

export interface GgufFile {
  version: number
  metadata: Record<string, GgufValue>
  tensors: GgufTensorInfo[]
  /** Where the tensor data begins in the file. */
  dataOffset: number
}

/** Past this, a string or an array length is taken as a corrupt header rather than allocated. */
const MAX_STRING = 64 * 1_048_576
const MAX_ARRAY = 64 * 1_048_576
const CHUNK = 1_048_576

class Cursor {
  readonly #file: FileHandle
  #buf = Buffer.alloc(0)
  /** Position of #buf[0] in the file. */
  #base = 0
  #at = 0
  #end = false

  constructor (file: FileHandle) {
    this.#file = file
  }

  get position (): number {
    return this.#base + this.#at
  }

  async #need (n: number): Promise<void> {
    if (this.#at + n <= this.#buf.length) return
    if (this.#end) throw new GgufFormatError('the GGUF header is truncated')
    const rest = this.#buf.subarray(this.#at)
    const next = Buffer.alloc(Math.max(n, CHUNK))
    rest.copy(next)
    const { bytesRead } = await this.#file.read(next, rest.length, next.length - rest.length, this.position + rest.length)
    this.#base += this.#at
    this.#at = 0
    this.#buf = next.subarray(0, rest.length + bytesRead)
    if (rest.length + bytesRead < next.length) this.#end = true
    if (this.#buf.length < n) throw new GgufFormatError('the GGUF header is truncated')
  }

  async u32 (): Promise<number> {
    await this.#need(4)
    const v = this.#buf.readUInt32LE(this.#at)
    this.#at += 4
    return v
  }

  async u64 (): Promise<number> {
    await this.#need(8)
    const v = this.#buf.readBigUInt64LE(this.#at)
    this.#at += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufFormatError(`a size of ${v} in the GGUF header is past any real file`)
    return Number(v)
  }

  async string (): Promise<string> {
    const length = await this.u64()
    if (length > MAX_STRING) throw new GgufFormatError(`a string of ${length} bytes in the GGUF header`)
    await this.#need(length)
    const v = this.#buf.toString('utf8', this.#at, this.#at + length)
    this.#at += length
    return v
  }

  async value (type: number): Promise<GgufValue> {
    if (type === 8) return this.string()
    if (type === 9) {
      const itemType = await this.u32()
      const length = await this.u64()
      if (length > MAX_ARRAY) throw new GgufFormatError(`an array of ${length} items in the GGUF header`)
      const items: GgufValue[] = new Array(length)
      for (let i = 0; i < length; i++) items[i] = await this.value(itemType)
      return items
    }
    const size = SCALAR_BYTES[type]
    if (size == null) throw new GgufFormatError(`unknown GGUF value type ${type}`)
    await this.#need(size)
    const b = this.#buf
    const at = this.#at
    this.#at += size
    switch (type) {
      case 0: return b.readUInt8(at)
      case 1: return b.readInt8(at)
      case 2: return b.readUInt16LE(at)
      case 3: return b.readInt16LE(at)
      case 4: return b.readUInt32LE(at)
      case 5: return b.readInt32LE(at)
      case 6: return b.readFloatLE(at)
      case 7: return b.readUInt8(at) !== 0
      case 10: return safe(b.readBigUInt64LE(at))
      case 11: return safe(b.readBigInt64LE(at))
      default: return b.readDoubleLE(at)
    }
  }
}

const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }

/** 64-bit integers as numbers where they are exact, as nearly all are (counts, ids). */
const safe = (v: bigint): number | bigint => v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v

export async function readGguf (path: string): Promise<GgufFile> {
  const file = await open(path, 'r')
  try {
    const c = new Cursor(file)
    if (await c.u32() !== GGUF_MAGIC) throw new GgufFormatError('not a GGUF file')
    const version = await c.u32()
    // Version 1 counted with uint32s; every file written since 2023 is version 2 or 3.
    if (version < 2 || version > 3) throw new GgufFormatError(`GGUF version ${version} is not supported`)
    const tensorCount = await c.u64()
    const kvCount = await c.u64()
    const metadata: Record<string, GgufValue> = {}
    for (let i = 0; i < kvCount; i++) {
      const key = await c.string()
      metadata[key] = await c.value(await c.u32())
    }
    const tensors: GgufTensorInfo[] = []
    for (let i = 0; i < tensorCount; i++) {
      const name = await c.string()
      const rank = await c.u32()
      if (rank > 4) throw new GgufFormatError(`tensor ${name} has ${rank} dimensions`)
      const dims: number[] = []
      for (let d = 0; d < rank; d++) dims.push(await c.u64())
      tensors.push({ name, dims, type: await c.u32(), offset: await c.u64() })
    }
    const alignment = typeof metadata['general.alignment'] === 'number' ? metadata['general.alignment'] : DEFAULT_ALIGNMENT
    return { version, metadata, tensors, dataOffset: Math.ceil(c.position / alignment) * alignment }
  } finally {
    await file.close()
  }
}

export interface GgufSummary {
  /** general.architecture, e.g. llama, gpt2, bert. */
  architecture: string
  /** Elements of all tensors. */
  parameters: number
  /** general.file_type's name (Q4_K_M, Q8_0, F16), else the type most of the weights have. */
  quantization: string
  /** <architecture>.context_length, the most tokens the model was trained on. */
  contextLength?: number
  /** tokenizer.chat_template, when the file has one. */
  chatTemplate?: string
}

/** What the model library and `/api/show` tell of a GGUF model. */
export function summarize (gguf: GgufFile): GgufSummary {
  const architecture = String(gguf.metadata['general.architecture'] ?? 'unknown')
  const elements = (t: GgufTensorInfo): number => t.dims.reduce((n, d) => n * d, 1)
  const parameters = gguf.tensors.reduce((n, t) => n + elements(t), 0)
  const fileType = gguf.metadata['general.file_type']
  let quantization = typeof fileType === 'number' ? fileTypeName(fileType) : undefined
  if (quantization == null) {
    const byType = new Map<number, number>()
    for (const t of gguf.tensors) byType.set(t.type, (byType.get(t.type) ?? 0) + elements(t))
    const [top] = [...byType].sort((a, b) => b[1] - a[1])
    quantization = top == null ? 'unknown' : TENSOR_TYPES[top[0]]?.name ?? `type ${top[0]}`
  }
  const context = gguf.metadata[`${architecture}.context_length`]
  const template = gguf.metadata['tokenizer.chat_template']
  return {
    architecture,
    parameters,
    quantization,
    ...(typeof context === 'number' ? { contextLength: context } : {}),
    ...(typeof template === 'string' ? { chatTemplate: template } : {})
  }
}

/**
 * A GGUF file's metadata as a config.json would say it: the shape under
 * Hugging Face's names (what /api/show reads), and the scalar GGUF keys as
 * they are. The tokenizer's arrays are left out: they are megabytes.
 */
export function configOf (gguf: GgufFile): Record<string, unknown> {
  const m = gguf.metadata
  const architecture = String(m['general.architecture'] ?? 'unknown')
  const n = (key: string): number | undefined => {
    const v = m[`${architecture}.${key}`]
    return typeof v === 'number' ? v : undefined
  }
  const tokens = m['tokenizer.ggml.tokens']
  const config: Record<string, unknown> = Object.fromEntries(Object.entries(m).filter(([, v]) => !Array.isArray(v)).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : v]))
  const shape: Record<string, number | undefined> = {
    hidden_size: n('embedding_length'),
    num_hidden_layers: n('block_count'),
    num_attention_heads: n('attention.head_count'),
    num_key_value_heads: n('attention.head_count_kv'),
    intermediate_size: n('feed_forward_length'),
    max_position_embeddings: n('context_length'),
    vocab_size: Array.isArray(tokens) ? tokens.length : n('vocab_size')
  }
  for (const [k, v] of Object.entries(shape)) if (v != null) config[k] = v
  config.model_type = architecture
  return config
}

/**
 * How an embedding model's file pools its token states (<arch>.pooling_type);
 * undefined for a model that generates, whose file has no pooling or `none`.
 */
export function poolingOf (gguf: GgufFile): Exclude<PoolingType, 'none'> | undefined {
  const architecture = String(gguf.metadata['general.architecture'] ?? 'unknown')
  const type = gguf.metadata[`${architecture}.pooling_type`]
  const pooling = typeof type === 'number' ? POOLING_TYPES[type] : undefined
  return pooling === 'none' ? undefined : pooling
}
