/**
 * The external data files an ONNX model names, read from the model file
 * without decoding it: a model of gigabytes is walked field by field and its
 * tensor bytes skipped, so a node can check where onnxruntime would read
 * before it opens the model.
 */
import { open } from 'node:fs/promises'
import { ModelFormatError } from './errors.ts'
import type { FileHandle } from 'node:fs/promises'

/** The messages that can hold a tensor, and the fields of each that lead to one (onnx.proto's numbers). */
type Message = 'model' | 'graph' | 'node' | 'attribute' | 'tensor' | 'sparse' | 'function' | 'training' | 'entry'

const FIELDS: Record<Message, Record<number, Message>> = {
  model: { 7: 'graph', 20: 'training', 25: 'function' },
  training: { 1: 'graph', 2: 'graph' },
  function: { 7: 'node' },
  graph: { 1: 'node', 5: 'tensor', 15: 'sparse' },
  node: { 5: 'attribute' },
  attribute: { 5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse', 23: 'sparse' },
  sparse: { 1: 'tensor', 2: 'tensor' },
  tensor: { 13: 'entry' },
  entry: {}
}

/** Deeper than any exporter nests subgraphs; a file that goes deeper is refused rather than walked. */
const MAX_DEPTH = 64
const WINDOW = 65_536

/** Reads a file through one window, so that walking many small fields costs few reads. */
export class Reader {
  readonly #handle: FileHandle
  readonly size: number
  #window = Buffer.alloc(0)
  #at = 0

  constructor (handle: FileHandle, size: number) {
    this.#handle = handle
    this.size = size
  }

  async bytes (position: number, length: number): Promise<Buffer> {
    if (position < this.#at || position + length > this.#at + this.#window.byteLength) {
      const buffer = Buffer.alloc(Math.min(Math.max(length, WINDOW), this.size - position))
      const { bytesRead } = await this.#handle.read(buffer, 0, buffer.byteLength, position)
      this.#window = buffer.subarray(0, bytesRead)
      this.#at = position
      if (bytesRead < length) throw new ModelFormatError('not an ONNX model: a field runs past the end of the file')
    }
    return this.#window.subarray(position - this.#at, position - this.#at + length)
  }

  /** A varint at `position`: its value and its length. */
  async varint (position: number): Promise<[number, number]> {
    const bytes = await this.bytes(position, Math.min(10, this.size - position))
    let value = 0
    for (let i = 0; i < bytes.byteLength; i++) {
      value += (bytes[i] & 0x7f) * 2 ** (7 * i)
      if ((bytes[i] & 0x80) === 0) return [value, i + 1]
    }
    throw new ModelFormatError('not an ONNX model: a varint does not end')
  }
}

/**
 * Every `location` of every tensor's external data in the ONNX model at
 * `path`: initializers, constants in attributes, sparse tensors, subgraphs,
 * functions and training graphs.
 */
export async function externalDataLocations (path: string): Promise<string[]> {
  const handle = await open(path, 'r')
  try {
    const reader = new Reader(handle, (await handle.stat()).size)
    const locations = new Set<string>()
    await walk(reader, 'model', 0, reader.size, 0, locations)
    return [...locations]
  } finally {
    await handle.close()
  }
}

export interface Field { field: number, wire: number, start: number, end: number, value: number }

/** The fields of the message in [start, end): varints by value, length-delimited ones by their span. */
export async function * fields (reader: Reader, start: number, end: number): AsyncGenerator<Field> {
  let at = start
  while (at < end) {
    const [tag, tagLength] = await reader.varint(at)
    at += tagLength
    const field = Math.floor(tag / 8)
    const wire = tag % 8
    if (wire === 0) {
      const [value, length] = await reader.varint(at)
      yield { field, wire, start: at, end: at + length, value }
      at += length
    } else if (wire === 1 || wire === 5) {
      at += wire === 1 ? 8 : 4
    } else if (wire === 2) {
      const [length, lengthLength] = await reader.varint(at)
      at += lengthLength
      if (at + length > end) throw new ModelFormatError('not an ONNX model: a field runs past its message')
      yield { field, wire, start: at, end: at + length, value: length }
      at += length
    } else {
      throw new ModelFormatError(`not an ONNX model: wire type ${wire}`)
    }
  }
  if (at !== end) throw new ModelFormatError('not an ONNX model: a field runs past its message')
}

async function walk (reader: Reader, message: Message, start: number, end: number, depth: number, locations: Set<string>): Promise<void> {
  if (depth > MAX_DEPTH) throw new ModelFormatError(`not an ONNX model: messages nest deeper than ${MAX_DEPTH}`)
  let key: string | undefined
  let value: string | undefined
  for await (const { field, wire, start: at, end: until } of fields(reader, start, end)) {
    if (wire !== 2) continue
    const inner = FIELDS[message][field]
    if (inner != null) await walk(reader, inner, at, until, depth + 1, locations)
    else if (message === 'entry' && (field === 1 || field === 2)) {
      const text = (await reader.bytes(at, until - at)).toString('utf8')
      if (field === 1) key = text
      else value = text
    }
  }
  if (message === 'entry' && key === 'location' && value != null) locations.add(value)
}
