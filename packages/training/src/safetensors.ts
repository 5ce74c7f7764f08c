/**
 * The Hugging Face safetensors format, used for tensor datasets and for
 * checkpoints. A file is an 8-byte little-endian u64 header length N, N bytes
 * of UTF-8 JSON (padded with spaces so the data starts 8-byte aligned), then
 * every tensor's little-endian bytes back to back.
 */
import { InvalidTensorFileError } from './errors.ts'

export type TensorDtype = 'F32' | 'I64' | 'I32' | 'U8'

/** A tensor in row-major order; the dtype says which typed array holds it. */
export type Tensor =
  | { dtype: 'F32', shape: number[], data: Float32Array }
  | { dtype: 'I64', shape: number[], data: BigInt64Array }
  | { dtype: 'I32', shape: number[], data: Int32Array }
  | { dtype: 'U8', shape: number[], data: Uint8Array }

export interface DecodedSafetensors {
  tensors: Record<string, Tensor>
  /** The `__metadata__` map, empty when the file has none. */
  metadata: Record<string, string>
}

/** The reference implementation's cap: a larger header is a broken or hostile file, not a model. */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000

const METADATA_KEY = '__metadata__'
const SUPPORTED = 'F32, I64, I32, U8'

/**
 * `rank` follows the order of the reference implementation's dtype enum, which
 * writes larger alignments first: sorting the same way makes our files match
 * Python's byte for byte (but for the order of metadata keys, which it leaves
 * to a hash map), and keeps every tensor aligned to its element size.
 */
const DTYPES: Record<TensorDtype, { size: number, rank: number }> = {
  I64: { size: 8, rank: 3 },
  F32: { size: 4, rank: 2 },
  I32: { size: 4, rank: 1 },
  U8: { size: 1, rank: 0 }
}

/** Typed arrays use the host's byte order and the format is little-endian; only big-endian hosts pay for a swap. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Writes tensors as one safetensors file. The output depends only on the
 * tensors and the metadata, not on the order of the keys in `tensors`.
 */
export function encodeSafetensors (tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  const entries = Object.entries(tensors).map(([name, tensor]) => {
    if (name === METADATA_KEY) throw new InvalidTensorFileError(`a tensor cannot be named ${METADATA_KEY}`)
    return { name, tensor, key: utf8.encode(name), bytes: tensorBytes(name, tensor) }
  })
  // The reference sorts names as UTF-8 bytes; comparing JS strings would order some non-BMP names differently.
  entries.sort((a, b) => DTYPES[b.tensor.dtype].rank - DTYPES[a.tensor.dtype].rank || compareBytes(a.key, b.key))

  const fields: string[] = []
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new InvalidTensorFileError(`metadata ${JSON.stringify(key)} is not a string`)
    }
    fields.push(`"${METADATA_KEY}":${JSON.stringify(metadata)}`)
  }
  let dataLength = 0
  for (const { name, tensor, bytes } of entries) {
    const info = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [dataLength, dataLength + bytes.byteLength] }
    fields.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`)
    dataLength += bytes.byteLength
  }
  const header = utf8.encode(`{${fields.join(',')}}`)
  const headerLength = Math.ceil(header.byteLength / 8) * 8

  const out = new Uint8Array(8 + headerLength + dataLength)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true)
  out.set(header, 8)
  out.fill(0x20, 8 + header.byteLength, 8 + headerLength)
  let position = 8 + headerLength
  for (const { tensor, bytes } of entries) {
    out.set(bytes, position)
    if (!LITTLE_ENDIAN) swapBytes(out.subarray(position, position + bytes.byteLength), DTYPES[tensor.dtype].size)
    position += bytes.byteLength
  }
  return out
}

/**
 * Reads a safetensors file, checking the header against the data, and copies
 * each tensor into its own buffer: the input may sit at any byte offset (a
 * block from IPFS, a slice of a larger file), where a Float32Array view could
 * not be made, and the result must not change if the input is reused.
 */
export function decodeSafetensors (bytes: Uint8Array): DecodedSafetensors {
  const headerLength = safetensorsHeaderLength(bytes, bytes.byteLength)
  const { infos, metadata } = readSafetensorsHeader(bytes.subarray(8, 8 + headerLength))
  const dataStart = 8 + headerLength
  checkTiling(infos, bytes.byteLength - dataStart)
  const tensors = infos.map(info => {
    // A fresh buffer per tensor: one memcpy, aligned at offset 0.
    const copy = new Uint8Array(info.end - info.begin)
    copy.set(bytes.subarray(dataStart + info.begin, dataStart + info.end))
    if (!LITTLE_ENDIAN) swapBytes(copy, DTYPES[info.dtype].size)
    return [info.name, makeTensor(info.dtype, info.shape, copy.buffer)] as const
  })
  // fromEntries defines own properties, so a tensor named "__proto__" stays a tensor.
  return { tensors: Object.fromEntries(tensors), metadata }
}

/**
 * The header length a file's first 8 bytes declare, checked against the
 * reference's cap and against `fileLength`, the bytes the file has (or may
 * have, for a file still arriving).
 */
export function safetensorsHeaderLength (first: Uint8Array, fileLength: number): number {
  if (first.byteLength < 8) throw new InvalidTensorFileError(`file is ${first.byteLength} bytes, shorter than the 8-byte header length`)
  const declared = new DataView(first.buffer, first.byteOffset, 8).getBigUint64(0, true)
  if (declared > BigInt(MAX_SAFETENSORS_HEADER_BYTES)) {
    throw new InvalidTensorFileError(`header length ${declared} is over the ${MAX_SAFETENSORS_HEADER_BYTES}-byte limit`)
  }
  const headerLength = Number(declared)
  if (8 + headerLength > fileLength) {
    throw new InvalidTensorFileError(`header length ${headerLength} runs past the end of the ${fileLength}-byte file`)
  }
  return headerLength
}

/** The tensors and metadata a header (the JSON after the 8-byte length) describes, each entry checked. */
export function readSafetensorsHeader (header: Uint8Array): { infos: TensorInfo[], metadata: Record<string, string> } {
  if (header.byteLength === 0 || header[0] !== 0x7b) throw new InvalidTensorFileError('header does not start with "{"')
  let text: string
  try {
    text = strictUtf8.decode(header)
  } catch {
    throw new InvalidTensorFileError('header is not valid UTF-8')
  }
  let parsed: Record<string, unknown>
  try {
    // A text that starts with "{" and parses is an object.
    parsed = JSON.parse(text)
  } catch (err) {
    throw new InvalidTensorFileError(`header is not JSON: ${(err as Error).message}`)
  }
  const metadata = readMetadata(parsed[METADATA_KEY])
  const infos: TensorInfo[] = []
  for (const [name, value] of Object.entries(parsed)) {
    if (name !== METADATA_KEY) infos.push(readInfo(name, value))
  }
  return { infos, metadata }
}

/** As in the reference: the tensors must tile the `dataLength` bytes after the header exactly, so no byte is unaccounted for. */
export function checkTiling (infos: readonly TensorInfo[], dataLength: number): void {
  const byOffset = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end)
  let position = 0
  for (const info of byOffset) {
    if (info.begin < position) throw new InvalidTensorFileError(`tensor ${JSON.stringify(info.name)} at bytes [${info.begin}, ${info.end}) overlaps the tensor before it`)
    if (info.begin > position) throw new InvalidTensorFileError(`data bytes [${position}, ${info.begin}) belong to no tensor`)
    if (info.end > dataLength) throw new InvalidTensorFileError(`tensor ${JSON.stringify(info.name)} ends at byte ${info.end}, past the end of the ${dataLength}-byte data`)
    position = info.end
  }
  if (position !== dataLength) throw new InvalidTensorFileError(`the last ${dataLength - position} bytes of the data belong to no tensor`)
}

/** A tensor as the header describes it: `begin` and `end` are byte offsets into the data after the header. */
export interface TensorInfo { name: string, dtype: TensorDtype, shape: number[], begin: number, end: number }

function readInfo (name: string, value: unknown): TensorInfo {
  const fail = (problem: string): InvalidTensorFileError => new InvalidTensorFileError(`tensor ${JSON.stringify(name)}: ${problem}`)
  if (!isRecord(value)) throw fail('entry is not an object')
  const { dtype, shape, data_offsets: offsets } = value
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPES, dtype)) {
    throw fail(`dtype ${JSON.stringify(dtype)} is not supported (${SUPPORTED})`)
  }
  if (!isShape(shape)) throw fail(`shape ${JSON.stringify(shape)} is not an array of non-negative integers`)
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw fail(`data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`)
  }
  const [begin, end] = offsets as [number, number]
  const { size } = DTYPES[dtype as TensorDtype]
  const needed = elementCount(shape) * size
  if (needed !== end - begin) throw fail(`shape [${shape.join(', ')}] of ${dtype} needs ${needed} bytes, data_offsets give ${end - begin}`)
  return { name, dtype: dtype as TensorDtype, shape: [...shape], begin, end }
}

function readMetadata (value: unknown): Record<string, string> {
  if (value === undefined) return {}
  if (!isRecord(value)) throw new InvalidTensorFileError(`${METADATA_KEY} is not an object`)
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') throw new InvalidTensorFileError(`${METADATA_KEY} ${JSON.stringify(key)} is not a string`)
  }
  return Object.fromEntries(Object.entries(value)) as Record<string, string>
}

/** Checks a tensor given to the encoder and returns its bytes as a view, without copying. */
function tensorBytes (name: string, tensor: Tensor): Uint8Array {
  const fail = (problem: string): InvalidTensorFileError => new InvalidTensorFileError(`tensor ${JSON.stringify(name)}: ${problem}`)
  const { dtype, shape, data } = tensor
  const expected = dtype === 'F32' ? Float32Array : dtype === 'I64' ? BigInt64Array : dtype === 'I32' ? Int32Array : dtype === 'U8' ? Uint8Array : undefined
  if (expected === undefined) throw fail(`dtype ${JSON.stringify(dtype)} is not supported (${SUPPORTED})`)
  if (!(data instanceof expected)) throw fail(`${dtype} data must be a ${expected.name}, not ${describeValue(data)}`)
  if (!isShape(shape)) throw fail(`shape ${JSON.stringify(shape)} is not an array of non-negative integers`)
  const count = elementCount(shape)
  if (data.length !== count) throw fail(`shape [${shape.join(', ')}] has ${count} elements, data has ${data.length}`)
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

function makeTensor (dtype: TensorDtype, shape: number[], buffer: ArrayBuffer): Tensor {
  switch (dtype) {
    case 'F32': return { dtype, shape, data: new Float32Array(buffer) }
    case 'I64': return { dtype, shape, data: new BigInt64Array(buffer) }
    case 'I32': return { dtype, shape, data: new Int32Array(buffer) }
    case 'U8': return { dtype, shape, data: new Uint8Array(buffer) }
  }
}

function elementCount (shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1)
}

function isShape (value: unknown): value is number[] {
  return Array.isArray(value) && value.every(isCount)
}

function isCount (value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function describeValue (value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value)
  return value.constructor?.name ?? 'an object'
}

function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    if (a[i] !== b[i]) return a[i] - b[i]
  }
  return a.length - b.length
}

function swapBytes (bytes: Uint8Array, size: number): void {
  if (size === 1) return
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse()
}
