/**
 * The two dataset formats the daemon trains on, stored as content in IPFS and
 * named by CID:
 * - `text`: UTF-8 JSONL, one object per line with a string `text` field, for
 *   language models;
 * - `tensors`: a safetensors file with `features` (F32 [N, F]) and `labels`
 *   (I64 or I32 [N], in [0, classes)), for classifiers.
 * The bytes say which format they are, so a CID is all a job needs.
 */
import { InvalidDatasetError, InvalidTensorFileError } from './errors.ts'
import { decodeSafetensors, encodeSafetensors } from './safetensors.ts'
import type { DecodedSafetensors } from './safetensors.ts'

export interface TextDataset {
  format: 'text'
  texts: string[]
}

export interface TensorDataset {
  format: 'tensors'
  /** Records, N. */
  count: number
  /** Features per record, F. */
  featureCount: number
  classes: number
  /** N × F values, row-major. */
  features: Float32Array
  /** N values in [0, classes). */
  labels: Int32Array
}

export type Dataset = TextDataset | TensorDataset

export interface DatasetInfo {
  format: Dataset['format']
  records: number
  /** Features per record, for `tensors`. */
  features?: number
  classes?: number
  /** Unicode code points over all texts, for `text`. */
  characters?: number
}

export interface ParseDatasetOptions {
  /** Reject larger inputs; default DEFAULT_MAX_DATASET_BYTES. */
  maxBytes?: number
}

export interface TensorDatasetInput {
  /** N × featureCount values, row-major. */
  features: Float32Array
  labels: Int32Array
  featureCount: number
  /** Default max(label) + 1. */
  classes?: number
}

export const DEFAULT_MAX_DATASET_BYTES = 2 ** 30

/** The `format` value in a tensor dataset's `__metadata__`. */
export const TENSOR_DATASET_FORMAT = 'node-daemon/tensors'

/** Labels must fit an Int32Array, and classes = max(label) + 1 must too. */
const MAX_CLASSES = 2 ** 31 - 1

/**
 * JSONL is decoded this many bytes at a time (cut at a newline): a 1 GiB
 * dataset decoded whole would pass V8's ~512 Mi-character string limit.
 */
const CHUNK_BYTES = 1 << 24
const CHUNK_CHARS = 1 << 24

const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Detects the format of `bytes` and parses and checks it. */
export function parseDataset (bytes: Uint8Array, options: ParseDatasetOptions = {}): Dataset {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_DATASET_BYTES
  if (bytes.byteLength > maxBytes) throw new InvalidDatasetError(`dataset is ${bytes.byteLength} bytes, over the ${maxBytes}-byte limit`)
  // Safetensors first: a header length whose low byte is 123 starts the file with "{", like JSONL.
  if (isSafetensors(bytes)) return parseTensorDataset(bytes)
  const first = skipWhitespace(bytes, bomLength(bytes))
  if (first === bytes.length) throw new InvalidDatasetError('dataset has no records')
  if (bytes[first] === 0x7b) return parseTextDataset(bytes)
  throw new InvalidDatasetError('not a dataset: expected JSONL text (lines of {"text": ...}) or a safetensors file with "features" and "labels"')
}

export function describeDataset (dataset: Dataset): DatasetInfo {
  if (dataset.format === 'text') {
    return { format: 'text', records: dataset.texts.length, characters: dataset.texts.reduce((sum, text) => sum + codePoints(text), 0) }
  }
  return { format: 'tensors', records: dataset.count, features: dataset.featureCount, classes: dataset.classes }
}

/** One `{"text": ...}` line per text, each ending in "\n". */
export function encodeTextDataset (texts: readonly string[]): Uint8Array<ArrayBuffer> {
  if (texts.length === 0) throw new InvalidDatasetError('dataset has no records')
  const parts: Array<Uint8Array<ArrayBuffer>> = []
  let pending: string[] = []
  let pendingChars = 0
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i]
    if (typeof text !== 'string') throw new InvalidDatasetError(`texts[${i}] is not a string`)
    // JSON.stringify escapes newlines and lone surrogates, so every text is one line and survives UTF-8.
    const line = `${JSON.stringify({ text })}\n`
    pending.push(line)
    pendingChars += line.length
    if (pendingChars >= CHUNK_CHARS) {
      parts.push(utf8.encode(pending.join('')))
      pending = []
      pendingChars = 0
    }
  }
  if (pending.length > 0) parts.push(utf8.encode(pending.join('')))
  return concat(parts)
}

/**
 * A safetensors file with `features` F32 [N, F], `labels` I64 [N] and
 * `__metadata__` {format, classes}. Labels go out as I64 because that is what
 * PyTorch's cross-entropy takes, so the file loads there as it is.
 */
export function encodeTensorDataset (input: TensorDatasetInput): Uint8Array<ArrayBuffer> {
  if (!(input.features instanceof Float32Array)) throw new InvalidDatasetError('"features" must be a Float32Array')
  if (!(input.labels instanceof Int32Array)) throw new InvalidDatasetError('"labels" must be an Int32Array')
  const dataset = checkTensorDataset(input.features, input.labels, input.featureCount, input.classes)
  const labels = new BigInt64Array(dataset.count)
  for (let i = 0; i < dataset.count; i++) labels[i] = BigInt(dataset.labels[i])
  return encodeSafetensors({
    features: { dtype: 'F32', shape: [dataset.count, dataset.featureCount], data: dataset.features },
    labels: { dtype: 'I64', shape: [dataset.count], data: labels }
  }, { format: TENSOR_DATASET_FORMAT, classes: String(dataset.classes) })
}

function parseTextDataset (bytes: Uint8Array): TextDataset {
  const texts: string[] = []
  let lineNumber = 0
  let start = bomLength(bytes)
  while (start < bytes.length) {
    const cut = start + CHUNK_BYTES >= bytes.length ? -1 : bytes.indexOf(0x0a, start + CHUNK_BYTES)
    const end = cut === -1 ? bytes.length : cut + 1
    const chunk = bytes.subarray(start, end)
    const lines = decodeChunk(chunk, lineNumber).split('\n')
    // A chunk that ends in "\n" splits into a last "" that is not a line.
    if (lines[lines.length - 1] === '') lines.pop()
    for (const raw of lines) {
      lineNumber++
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
      if (/^[ \t\r]*$/.test(line)) continue
      texts.push(parseLine(line, lineNumber))
    }
    start = end
  }
  if (texts.length === 0) throw new InvalidDatasetError('dataset has no records')
  return { format: 'text', texts }
}

function parseLine (line: string, lineNumber: number): string {
  let record: unknown
  try {
    record = JSON.parse(line)
  } catch (err) {
    throw new InvalidDatasetError(`not JSON: ${(err as Error).message}`, { line: lineNumber })
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    throw new InvalidDatasetError('not a JSON object', { line: lineNumber })
  }
  if (!Object.hasOwn(record, 'text')) throw new InvalidDatasetError('no "text" field', { line: lineNumber })
  const { text } = record as { text: unknown }
  if (typeof text !== 'string') throw new InvalidDatasetError(`"text" is ${text === null ? 'null' : typeof text}, not a string`, { line: lineNumber })
  return text
}

/** Decodes a chunk of whole lines, naming the line at fault when it cannot. */
function decodeChunk (chunk: Uint8Array, linesBefore: number): string {
  try {
    return strictUtf8.decode(chunk)
  } catch (err) {
    if (err instanceof TypeError) {
      // The error path only: find the line by decoding line by line.
      let start = 0
      for (let line = 1; ; line++) {
        const newline = chunk.indexOf(0x0a, start)
        const end = newline === -1 ? chunk.length : newline
        try {
          strictUtf8.decode(chunk.subarray(start, end))
        } catch {
          throw new InvalidDatasetError('not valid UTF-8', { line: linesBefore + line })
        }
        if (newline === -1) break
        start = newline + 1
      }
    }
    // Otherwise one line is longer than the longest string V8 can make.
    throw new InvalidDatasetError('line is too long', { line: linesBefore + 1 + countByte(chunk.subarray(0, CHUNK_BYTES), 0x0a) })
  }
}

function parseTensorDataset (bytes: Uint8Array): TensorDataset {
  let decoded: DecodedSafetensors
  try {
    decoded = decodeSafetensors(bytes)
  } catch (err) {
    if (err instanceof InvalidTensorFileError) throw new InvalidDatasetError(`not a valid safetensors file: ${err.message}`, { cause: err })
    throw err
  }
  const { tensors, metadata } = decoded
  if (Object.hasOwn(metadata, 'format') && metadata.format !== TENSOR_DATASET_FORMAT) {
    throw new InvalidDatasetError(`__metadata__ "format" is ${JSON.stringify(metadata.format)}, not ${JSON.stringify(TENSOR_DATASET_FORMAT)}`)
  }
  const features = Object.hasOwn(tensors, 'features') ? tensors.features : undefined
  if (features === undefined) throw new InvalidDatasetError('no "features" tensor')
  if (features.dtype !== 'F32') throw new InvalidDatasetError(`"features" is ${features.dtype}, not F32`)
  if (features.shape.length !== 2) throw new InvalidDatasetError(`"features" has shape [${features.shape.join(', ')}], not [N, F]`)
  const [count, featureCount] = features.shape as [number, number]
  const labels = Object.hasOwn(tensors, 'labels') ? tensors.labels : undefined
  if (labels === undefined) throw new InvalidDatasetError('no "labels" tensor')
  if (labels.dtype !== 'I64' && labels.dtype !== 'I32') throw new InvalidDatasetError(`"labels" is ${labels.dtype}, not I64 or I32`)
  if (labels.shape.length !== 1 || labels.shape[0] !== count) {
    throw new InvalidDatasetError(`"labels" has shape [${labels.shape.join(', ')}], not [${count}] as "features" has ${count} rows`)
  }
  let classes: number | undefined
  if (Object.hasOwn(metadata, 'classes')) {
    const text = metadata.classes
    classes = /^[1-9][0-9]*$/.test(text) ? Number(text) : NaN
    if (!(classes <= MAX_CLASSES)) throw new InvalidDatasetError(`__metadata__ "classes" is ${JSON.stringify(text)}, not an integer in [1, ${MAX_CLASSES}]`)
  }
  const labels32 = labels.dtype === 'I32' ? labels.data : narrowLabels(labels.data, classes)
  return checkTensorDataset(features.data, labels32, featureCount, classes)
}

/** I64 labels to Int32Array, rejecting the ones no Int32Array (or class count) can hold. */
function narrowLabels (labels: BigInt64Array, classes: number | undefined): Int32Array {
  const limit = BigInt(classes ?? MAX_CLASSES)
  const out = new Int32Array(labels.length)
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]
    if (label < 0n || label >= limit) throw new InvalidDatasetError(`labels[${i}] is ${label}, outside [0, ${limit})`)
    out[i] = Number(label)
  }
  return out
}

/** The checks shared by parsing and encoding, so that what encodes also parses. */
function checkTensorDataset (features: Float32Array, labels: Int32Array, featureCount: number, classes: number | undefined): TensorDataset {
  if (!Number.isSafeInteger(featureCount) || featureCount < 1) throw new InvalidDatasetError(`"features" has ${featureCount} columns, not at least 1`)
  if (features.length % featureCount !== 0) {
    throw new InvalidDatasetError(`"features" has ${features.length} values, not a multiple of ${featureCount} features`)
  }
  const count = features.length / featureCount
  if (count === 0) throw new InvalidDatasetError('dataset has no records')
  if (labels.length !== count) throw new InvalidDatasetError(`"labels" has ${labels.length} values, not ${count} as "features" has ${count} rows`)
  if (classes !== undefined && !(Number.isSafeInteger(classes) && classes >= 1 && classes <= MAX_CLASSES)) {
    throw new InvalidDatasetError(`classes is ${classes}, not an integer in [1, ${MAX_CLASSES}]`)
  }
  const limit = classes ?? MAX_CLASSES
  let max = 0
  for (let i = 0; i < count; i++) {
    const label = labels[i]
    if (label < 0 || label >= limit) throw new InvalidDatasetError(`labels[${i}] is ${label}, outside [0, ${limit})`)
    if (label > max) max = label
  }
  // A NaN or infinity would poison every gradient of the step that reads it.
  for (let i = 0; i < features.length; i++) {
    if (!Number.isFinite(features[i])) {
      throw new InvalidDatasetError(`features[${Math.floor(i / featureCount)}][${i % featureCount}] is ${features[i]}, not finite`)
    }
  }
  return { format: 'tensors', count, featureCount, classes: classes ?? max + 1, features, labels }
}

/** A safetensors file: 8 bytes of header length, a header that fits the file, and `{"` opening the header. */
function isSafetensors (bytes: Uint8Array): boolean {
  if (bytes.length < 10 || bytes[8] !== 0x7b || bytes[9] !== 0x22) return false
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true) <= BigInt(bytes.length - 8)
}

function bomLength (bytes: Uint8Array): number {
  return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0
}

function skipWhitespace (bytes: Uint8Array, start: number): number {
  let i = start
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d)) i++
  return i
}

function codePoints (text: string): number {
  return text.length - (text.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)?.length ?? 0)
}

function countByte (bytes: Uint8Array, byte: number): number {
  let count = 0
  for (let i = bytes.indexOf(byte); i !== -1; i = bytes.indexOf(byte, i + 1)) count++
  return count
}

function concat (parts: Array<Uint8Array<ArrayBuffer>>): Uint8Array<ArrayBuffer> {
  if (parts.length === 1) return parts[0]
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0))
  let position = 0
  for (const part of parts) {
    out.set(part, position)
    position += part.byteLength
  }
  return out
}
