/**
 * The records of a dataset in content, read as its blocks stream: JSONL (a
 * JSON value per line), CSV (an object per row, keyed by the header), text
 * (a string per line) and tensor datasets (a {features, label} per row of a
 * safetensors file). Memory holds one line, or one row of each tensor, at a
 * time, whatever the dataset's size.
 */
import { InvalidDatasetError } from './errors.ts'
import { datasetTensorLayout, opensSafetensors } from './dataset.ts'
import { readSafetensorsHeader, safetensorsHeaderLength } from './safetensors.ts'
import type { Content } from '@node-daemon/content'
import type { AbortOptions } from '@libp2p/interface'

export type RecordFormat = 'jsonl' | 'csv' | 'text' | 'tensors'
export const RECORD_FORMATS: readonly RecordFormat[] = ['jsonl', 'csv', 'text', 'tensors']

/** The longest line or CSV row a reader holds: records are samples, not documents. */
export const MAX_RECORD_CHARS = 8 * 1_048_576

type Reads = Pick<Content, 'cat'>

/**
 * The format of a dataset from its first bytes: a safetensors file, JSONL
 * when its first line opens an object, else text. CSV is asked for by name:
 * its first line reads as text as well.
 */
export async function detectFormat (content: Reads, cid: string, options: AbortOptions = {}): Promise<RecordFormat> {
  const chunks: Uint8Array[] = []
  for await (const chunk of content.cat(cid, { ...options, length: 4096 })) chunks.push(chunk)
  const head = Buffer.concat(chunks)
  if (opensSafetensors(head)) return 'tensors'
  return /^(\uFEFF)?[ \t\r\n]*\{/.test(head.toString('utf8')) ? 'jsonl' : 'text'
}

/** A record and about how much memory it takes: the characters (or bytes) it was read from. */
export interface LoadedRecord {
  value: unknown
  size: number
}

/** Every record of a dataset, in order. */
export function readRecords (content: Reads, path: string, format: RecordFormat, options: AbortOptions = {}): AsyncGenerator<LoadedRecord> {
  if (format === 'tensors') return tensorRows(content, path, options)
  const text = decoded(content.cat(path, options))
  if (format === 'csv') return csvRecords(text)
  return lineRecords(text, format)
}

/** UTF-8 text as it streams, a byte-order mark dropped; bytes that are not UTF-8 stop it. */
async function * decoded (source: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  try {
    for await (const chunk of source) yield decoder.decode(chunk, { stream: true })
    yield decoder.decode()
  } catch (err) {
    if (err instanceof TypeError) throw new InvalidDatasetError('the dataset is not valid UTF-8 text')
    throw err
  }
}

async function * lineRecords (text: AsyncIterable<string>, format: 'jsonl' | 'text'): AsyncGenerator<LoadedRecord> {
  let carry = ''
  let number = 0
  const record = (raw: string): LoadedRecord | undefined => {
    number++
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (/^[ \t]*$/.test(line)) return undefined
    if (format === 'text') return { value: line, size: line.length }
    try {
      return { value: JSON.parse(line), size: line.length }
    } catch (err) {
      throw new InvalidDatasetError(`not JSON: ${(err as Error).message}`, { line: number })
    }
  }
  for await (const piece of text) {
    const lines = (carry + piece).split('\n')
    carry = lines.pop() as string
    if (carry.length > MAX_RECORD_CHARS) throw new InvalidDatasetError(`line is longer than ${MAX_RECORD_CHARS} characters`, { line: number + 1 })
    for (const line of lines) {
      const value = record(line)
      if (value !== undefined) yield value
    }
  }
  const last = record(carry)
  if (last !== undefined) yield last
}

/** RFC 4180 rows: quoted fields may hold commas, doubled quotes and line breaks. */
async function * csvRows (text: AsyncIterable<string>): AsyncGenerator<{ row: string[], size: number }> {
  let row: string[] = []
  let field = ''
  let quoted = false
  /** Inside quotes, a quote may close them or be the first of a doubled one: the next character tells. */
  let quote = false
  let size = 0
  let any = false
  for await (const piece of text) {
    for (const c of piece) {
      any = true
      if (++size > MAX_RECORD_CHARS) throw new InvalidDatasetError(`a CSV row is longer than ${MAX_RECORD_CHARS} characters`)
      if (quote) {
        quote = false
        if (c === '"') {
          field += '"'
          continue
        }
        quoted = false
      } else if (quoted) {
        if (c === '"') quote = true
        else field += c
        continue
      }
      if (c === '"' && field === '') quoted = true
      else if (c === ',') {
        row.push(field)
        field = ''
      } else if (c === '\n') {
        row.push(field.endsWith('\r') ? field.slice(0, -1) : field)
        yield { row, size }
        row = []
        field = ''
        size = 0
      } else field += c
    }
  }
  if (quoted && !quote) throw new InvalidDatasetError('a CSV field opens a quote that never closes')
  if (any && (field !== '' || row.length > 0)) {
    row.push(field)
    yield { row, size }
  }
}

async function * csvRecords (text: AsyncIterable<string>): AsyncGenerator<LoadedRecord> {
  let header: string[] | undefined
  let number = 0
  for await (const { row, size } of csvRows(text)) {
    number++
    if (row.length === 1 && row[0] === '') continue
    if (header == null) {
      header = row
      continue
    }
    if (row.length !== header.length) throw new InvalidDatasetError(`CSV row ${number} has ${row.length} fields, the header ${header.length}`)
    const names = header
    yield { value: Object.fromEntries(row.map((value, i) => [names[i], value])), size }
  }
}

/** `size`-byte pieces of a byte stream. */
async function * fixed (source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let partial = new Uint8Array(size)
  let filled = 0
  for await (let chunk of source) {
    while (chunk.byteLength > 0) {
      const take = Math.min(size - filled, chunk.byteLength)
      partial.set(chunk.subarray(0, take), filled)
      filled += take
      chunk = chunk.subarray(take)
      if (filled === size) {
        yield partial
        partial = new Uint8Array(size)
        filled = 0
      }
    }
  }
}

/** A tensor dataset's rows, read from its features and its labels side by side. */
async function * tensorRows (content: Reads, path: string, options: AbortOptions): AsyncGenerator<LoadedRecord> {
  const read = async (offset: number, length: number): Promise<Uint8Array> => {
    const chunks: Uint8Array[] = []
    for await (const chunk of content.cat(path, { ...options, offset, length })) chunks.push(chunk)
    return Buffer.concat(chunks)
  }
  const headerLength = safetensorsHeaderLength(await read(0, 8), Infinity)
  const { infos, metadata } = readSafetensorsHeader(await read(8, headerLength))
  const layout = datasetTensorLayout(infos, metadata)
  const [features, labels] = layout.regions
  const data = 8 + headerLength
  const labelBytes = labels.dtype === 'I64' ? 8 : 4
  const rows = fixed(content.cat(path, { ...options, offset: data + features.begin, length: features.end - features.begin }), layout.featureCount * 4)
  const labelValues = fixed(content.cat(path, { ...options, offset: data + labels.begin, length: labels.end - labels.begin }), labelBytes)
  try {
    for (let i = 0; i < layout.count; i++) {
      const [row, label] = await Promise.all([rows.next(), labelValues.next()])
      if (row.done === true || label.done === true) throw new InvalidDatasetError(`the tensors end before row ${i}`)
      const r = new DataView(row.value.buffer)
      const l = new DataView(label.value.buffer)
      const features = Array.from({ length: layout.featureCount }, (_, j) => r.getFloat32(j * 4, true))
      yield { value: { features, label: labelBytes === 8 ? Number(l.getBigInt64(0, true)) : l.getInt32(0, true) }, size: row.value.byteLength * 4 }
    }
  } finally {
    await Promise.all([rows.return(undefined), labelValues.return(undefined)])
  }
}
