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
import { checkTiling, decodeSafetensors, encodeSafetensors, MAX_SAFETENSORS_HEADER_BYTES, readSafetensorsHeader, safetensorsHeaderLength } from './safetensors.ts'
import type { TensorDtype, TensorInfo } from './safetensors.ts'

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
  const texts: string[] = []
  const scanner = new DatasetScanner({ ...options, onText: text => { texts.push(text) } })
  scanner.write(bytes)
  const info = scanner.end()
  if (info.format === 'text') return { format: 'text', texts }
  // The scanner checked every header field and value; what is left is to copy them out.
  const { tensors } = decodeSafetensors(bytes)
  const features = tensors.features.data as Float32Array
  const labels = tensors.labels.dtype === 'I32' ? tensors.labels.data : Int32Array.from(tensors.labels.data as BigInt64Array, Number)
  return { format: 'tensors', count: info.records, featureCount: info.features as number, classes: info.classes as number, features, labels }
}

export interface ScanOptions extends ParseDatasetOptions {
  /** Called with each text of a JSONL dataset, in order. */
  onText?: (text: string) => void
}

/** The longest JSONL line a scanner holds: a text of 32 MiB is past any use in training, and a line is what the scanner keeps in memory. */
const MAX_LINE_BYTES = 1 << 25

/** A tensor whose values the scanner checks as they stream past. */
interface ValueRegion {
  name: 'features' | 'labels'
  begin: number
  end: number
  dtype: TensorDtype
  /** The next element's index. */
  index: number
}

/** What a safetensors header must say of a dataset's tensors. */
interface TensorLayout {
  count: number
  featureCount: number
  classes?: number
  regions: ValueRegion[]
  infos: TensorInfo[]
}

/** Bytes kept across writes, joined only when they are used, so that many small chunks are copied once. */
class Pending {
  #parts: Uint8Array[] = []
  byteLength = 0

  push (bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return
    this.#parts.push(bytes)
    this.byteLength += bytes.byteLength
  }

  /** Everything kept, as one array; the keeper is empty after. */
  take (): Uint8Array {
    const parts = this.#parts
    this.#parts = []
    this.byteLength = 0
    return concat(parts)
  }
}

/**
 * Reads a dataset as its bytes arrive and checks it as parseDataset does,
 * holding one JSONL line, or a safetensors header and one element, at a
 * time: an upload of a gigabyte costs the memory of its longest line.
 */
export class DatasetScanner {
  readonly #maxBytes: number
  readonly #onText?: (text: string) => void
  #bytes = 0
  #format?: Dataset['format']
  /** The first bytes, until they tell the format. */
  readonly #head = new Pending()
  /** JSONL: the line so far, and what the lines before held. */
  readonly #line = new Pending()
  #lineNumber = 0
  #records = 0
  #characters = 0
  /** safetensors: the header until it is whole, then the layout, the data bytes seen and the element cut by a chunk. */
  readonly #header = new Pending()
  #headerLength?: number
  #layout?: TensorLayout
  #data = 0
  readonly #element = new Uint8Array(8)
  #filled = 0
  #maxLabel = 0

  constructor (options: ScanOptions = {}) {
    this.#maxBytes = options.maxBytes ?? DEFAULT_MAX_DATASET_BYTES
    this.#onText = options.onText
  }

  write (chunk: Uint8Array): void {
    this.#bytes += chunk.byteLength
    if (this.#bytes > this.#maxBytes) throw new InvalidDatasetError(`dataset is ${this.#bytes} bytes, over the ${this.#maxBytes}-byte limit`)
    if (this.#format == null) {
      this.#head.push(chunk)
      // A safetensors file shows itself in its first 10 bytes.
      if (this.#head.byteLength < 10) return
      chunk = this.#decide()
    }
    for (let at = 0; at < chunk.byteLength; at += CHUNK_BYTES) {
      const piece = chunk.subarray(at, at + CHUNK_BYTES)
      if (this.#format === 'text') this.#text(piece)
      else this.#tensors(piece)
    }
  }

  /** What the dataset holds, once every byte was written; throws if it is no dataset. */
  end (): DatasetInfo {
    if (this.#format == null) this.#text(this.#decide())
    if (this.#format === 'text') {
      if (this.#line.byteLength > 0) this.#lines(this.#line.take(), true)
      if (this.#records === 0) throw new InvalidDatasetError('dataset has no records')
      return { format: 'text', records: this.#records, characters: this.#characters }
    }
    const layout = this.#layout ?? tensorFile(() => {
      safetensorsHeaderLength(this.#header.take(), this.#bytes)
      throw new InvalidTensorFileError('the header is cut short')
    })
    tensorFile(() => { checkTiling(layout.infos, this.#data) })
    return { format: 'tensors', records: layout.count, features: layout.featureCount, classes: layout.classes ?? this.#maxLabel + 1 }
  }

  /** Settles the format from the first bytes, and returns them for it to read. */
  #decide (): Uint8Array {
    const head = this.#head.take()
    if (opensSafetensors(head)) {
      this.#format = 'tensors'
      return head
    }
    this.#format = 'text'
    return head.subarray(bomLength(head))
  }

  #text (piece: Uint8Array): void {
    const last = piece.lastIndexOf(0x0a)
    if (last === -1) {
      this.#line.push(piece)
      if (this.#line.byteLength > MAX_LINE_BYTES) throw new InvalidDatasetError(`line is longer than ${MAX_LINE_BYTES} bytes`, { line: this.#lineNumber + 1 })
      return
    }
    this.#line.push(piece.subarray(0, last + 1))
    this.#lines(this.#line.take(), false)
    this.#line.push(piece.slice(last + 1))
  }

  /** Whole lines, each ending in "\n" but perhaps the last one of the file. */
  #lines (bytes: Uint8Array, final: boolean): void {
    const lines = decodeChunk(bytes, this.#lineNumber).split('\n')
    // Lines that end in "\n" split into a last "" that is not a line.
    if (!final) lines.pop()
    for (const raw of lines) {
      this.#lineNumber++
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
      if (/^[ \t\r]*$/.test(line)) continue
      if (this.#records === 0 && !/^[ \t\r]*\{/.test(line)) throw new InvalidDatasetError('not a dataset: expected JSONL text (lines of {"text": ...}) or a safetensors file with "features" and "labels"')
      const text = parseLine(line, this.#lineNumber)
      this.#records++
      this.#characters += codePoints(text)
      this.#onText?.(text)
    }
  }

  #tensors (piece: Uint8Array): void {
    if (this.#layout == null) {
      this.#header.push(piece)
      if (this.#header.byteLength < 8) return
      if (this.#headerLength == null) {
        const first = this.#header.take()
        this.#header.push(first)
        this.#headerLength = tensorFile(() => safetensorsHeaderLength(first, Infinity))
      }
      const length = this.#headerLength
      if (this.#header.byteLength < 8 + length) return
      const header = this.#header.take()
      const { infos, metadata } = tensorFile(() => readSafetensorsHeader(header.subarray(8, 8 + length)))
      this.#layout = datasetTensorLayout(infos, metadata)
      piece = header.subarray(8 + length)
    }
    const { regions } = this.#layout
    for (let at = 0; at < piece.byteLength;) {
      const region = regions.find(r => this.#data >= r.begin && this.#data < r.end)
      const until = region?.end ?? Math.min(...regions.map(r => r.begin).filter(begin => begin > this.#data))
      const take = Math.min(piece.byteLength - at, until - this.#data)
      if (region != null) this.#values(region, piece.subarray(at, at + take))
      at += take
      this.#data += take
    }
  }

  /** Checks the elements of `region` in `bytes`, carrying one that a chunk cut to the next. */
  #values (region: ValueRegion, bytes: Uint8Array): void {
    const size = DTYPE_BYTES[region.dtype]
    let at = 0
    if (this.#filled > 0) {
      while (this.#filled < size && at < bytes.byteLength) this.#element[this.#filled++] = bytes[at++]
      if (this.#filled < size) return
      this.#value(region, new DataView(this.#element.buffer), 0)
      this.#filled = 0
    }
    const whole = Math.floor((bytes.byteLength - at) / size) * size
    const view = new DataView(bytes.buffer, bytes.byteOffset + at, whole)
    for (let offset = 0; offset < whole; offset += size) this.#value(region, view, offset)
    for (at += whole; at < bytes.byteLength; at++) this.#element[this.#filled++] = bytes[at]
  }

  #value (region: ValueRegion, view: DataView, offset: number): void {
    const layout = this.#layout as TensorLayout
    const i = region.index++
    if (region.name === 'features') {
      checkFeature(i, view.getFloat32(offset, true), layout.featureCount)
      return
    }
    const label = region.dtype === 'I64' ? view.getBigInt64(offset, true) : view.getInt32(offset, true)
    this.#maxLabel = Math.max(this.#maxLabel, checkLabel(i, label, layout.classes ?? MAX_CLASSES))
  }
}

const DTYPE_BYTES: Record<TensorDtype, number> = { F32: 4, I64: 8, I32: 4, U8: 1 }

/** Runs a safetensors check, reporting its failure as the dataset's. */
function tensorFile<T> (check: () => T): T {
  try {
    return check()
  } catch (err) {
    if (err instanceof InvalidTensorFileError) throw new InvalidDatasetError(`not a valid safetensors file: ${err.message}`, { cause: err })
    throw err
  }
}

/** What a header must say for the file to be a tensor dataset. */
export function datasetTensorLayout (infos: TensorInfo[], metadata: Record<string, string>): TensorLayout {
  if (Object.hasOwn(metadata, 'format') && metadata.format !== TENSOR_DATASET_FORMAT) {
    throw new InvalidDatasetError(`__metadata__ "format" is ${JSON.stringify(metadata.format)}, not ${JSON.stringify(TENSOR_DATASET_FORMAT)}`)
  }
  const features = infos.find(info => info.name === 'features')
  if (features === undefined) throw new InvalidDatasetError('no "features" tensor')
  if (features.dtype !== 'F32') throw new InvalidDatasetError(`"features" is ${features.dtype}, not F32`)
  if (features.shape.length !== 2) throw new InvalidDatasetError(`"features" has shape [${features.shape.join(', ')}], not [N, F]`)
  const [count, featureCount] = features.shape as [number, number]
  const labels = infos.find(info => info.name === 'labels')
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
  if (featureCount < 1) throw new InvalidDatasetError(`"features" has ${featureCount} columns, not at least 1`)
  if (count === 0) throw new InvalidDatasetError('dataset has no records')
  const region = (info: TensorInfo): ValueRegion => ({ name: info.name as ValueRegion['name'], begin: info.begin, end: info.end, dtype: info.dtype, index: 0 })
  return { count, featureCount, classes, regions: [region(features), region(labels)], infos }
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
  for (let i = 0; i < count; i++) max = Math.max(max, checkLabel(i, labels[i], limit))
  for (let i = 0; i < features.length; i++) checkFeature(i, features[i], featureCount)
  return { format: 'tensors', count, featureCount, classes: classes ?? max + 1, features, labels }
}

/**
 * Whether the first 10 bytes open a safetensors file: a header length within
 * the reference's cap, then `{"`. JSONL never does: its first 8 bytes are
 * text, which read as a length is far over the cap.
 */
export function opensSafetensors (head: Uint8Array): boolean {
  if (head.length < 10 || head[8] !== 0x7b || head[9] !== 0x22) return false
  return new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true) <= BigInt(MAX_SAFETENSORS_HEADER_BYTES)
}

/** A label as a number, or an error naming it if it lies outside [0, limit). */
function checkLabel (i: number, label: number | bigint, limit: number): number {
  if (label < 0 || label >= limit) throw new InvalidDatasetError(`labels[${i}] is ${label}, outside [0, ${limit})`)
  return Number(label)
}

/** A NaN or infinity would poison every gradient of the step that reads it. */
function checkFeature (i: number, value: number, featureCount: number): void {
  if (!Number.isFinite(value)) throw new InvalidDatasetError(`features[${Math.floor(i / featureCount)}][${i % featureCount}] is ${value}, not finite`)
}

function bomLength (bytes: Uint8Array): number {
  return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0
}

function codePoints (text: string): number {
  return text.length - (text.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)?.length ?? 0)
}

function countByte (bytes: Uint8Array, byte: number): number {
  let count = 0
  for (let i = bytes.indexOf(byte); i !== -1; i = bytes.indexOf(byte, i + 1)) count++
  return count
}

/** One array of parts in order; the part itself when it is alone. */
export function concat<T extends ArrayBufferLike> (parts: Array<Uint8Array<T>>): Uint8Array<T | ArrayBuffer> {
  if (parts.length === 1) return parts[0]
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0))
  let position = 0
  for (const part of parts) {
    out.set(part, position)
    position += part.byteLength
  }
  return out
}
