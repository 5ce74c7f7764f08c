import { BadRequestError, MultipartError } from './errors.ts'
import { peek } from './stream.ts'
import { readTar } from './tar.ts'
import type { FastifyRequest } from 'fastify'
import type { Multipart } from '@fastify/multipart'
import type { ImportFile } from '@node-daemon/inference'

/** UnixFS metadata a part brings. */
interface PartMetadata { mode?: number, mtime?: { secs: bigint, nsecs?: number } }

/** A directory, or a file; a file sent without a name has no path, and Kubo names it by its CID. */
export type Candidate = PartMetadata & ({ path: string, content?: undefined } | { path?: string, content: AsyncIterable<Uint8Array> })

/** Kubo's mode: octal with a leading 0 (as kubo-rpc-client sends it), else decimal. */
export function parseMode (mode: string): number {
  return /^0o?[0-7]*$/.test(mode) ? Number.parseInt(mode.replace(/^0o?/, '') || '0', 8) : Number(mode)
}

/**
 * kubo-rpc-client sends a part's mode and mtime in its field name, as a query
 * string: `file-1?mode=0644&mtime=1700000000&mtime-nsecs=5`.
 */
function partMetadata (fieldname: string): PartMetadata {
  const query = fieldname.indexOf('?')
  if (query < 0) return {}
  const params = new URLSearchParams(fieldname.slice(query + 1))
  const out: PartMetadata = {}
  const mode = params.get('mode')
  if (mode != null) {
    if (!/^(0o?[0-7]*|[1-9][0-9]*)$/.test(mode) || parseMode(mode) > 0o7777) throw new MultipartError(`invalid mode ${JSON.stringify(mode)} in part ${JSON.stringify(fieldname)}`)
    out.mode = parseMode(mode)
  }
  const mtime = params.get('mtime')
  const nsecs = params.get('mtime-nsecs')
  if (mtime != null) {
    if (!/^-?\d{1,15}$/.test(mtime) || (nsecs != null && !/^\d{1,9}$/.test(nsecs))) throw new MultipartError(`invalid mtime in part ${JSON.stringify(fieldname)}`)
    out.mtime = { secs: BigInt(mtime), nsecs: nsecs == null ? undefined : Number(nsecs) }
  }
  return out
}

/**
 * Turns a multipart body into import candidates, one part at a time, as Kubo
 * reads `add`: a part with a filename is a file (`application/x-directory`
 * makes it a directory), its path URI-encoded in the filename (Kubo's own
 * client escapes it, others send the slashes as they are). Parts without a
 * filename are form fields, collected into `fields` for options such as `pin`.
 * Every part is consumed before the next is read, so nothing is buffered.
 */
export async function * candidates (request: FastifyRequest, fields: Record<string, string>, signal?: AbortSignal): AsyncGenerator<Candidate> {
  let parts: AsyncIterableIterator<Multipart>
  try {
    // Busboy keeps only the last segment of a filename unless told otherwise.
    parts = request.parts({ preservePath: true })
  } catch (err: any) {
    throw new MultipartError(`expected a multipart/form-data body: ${err.message}`)
  }
  let count = 0
  while (true) {
    let next: IteratorResult<Multipart>
    try {
      next = await (signal == null ? parts.next() : raceAbort(parts.next(), signal))
    } catch (err: any) {
      if (signal?.aborted === true || (typeof err.code === 'string' && err.code.startsWith('FST_'))) throw err
      throw new MultipartError(`malformed multipart body: ${err.message}`)
    }
    if (next.done === true) break
    const part = next.value
    if (part.type === 'field') {
      fields[part.fieldname] = String(part.value)
      continue
    }
    count++
    const path = decodePath(part.filename)
    const metadata = partMetadata(part.fieldname)
    if (part.mimetype === 'application/x-directory') {
      part.file.resume()
      if (path == null) throw new MultipartError('a directory part needs a name')
      yield { path, ...metadata }
      continue
    }
    yield { path, content: guard(part.file, signal), ...metadata }
  }
  if (count === 0) throw new MultipartError('the multipart body has no file part')
}

/** A part that is a whole model directory as a tar archive, as `ai/model/get` gives it: its entries are the files. */
const ARCHIVE = /\.(tar|tar\.gz|tgz)$/

/**
 * A model directory from a multipart body: the form fields sent before the
 * first file (which name and describe the model, so that the import can start
 * at once) and the files, streamed in order under their paths in the
 * directory; a part named as a tarball stands for the files it holds.
 * Fields sent after the files are not seen.
 */
export async function modelDirectory (request: FastifyRequest): Promise<{ fields: Record<string, string>, files: AsyncGenerator<ImportFile> }> {
  const fields: Record<string, string> = {}
  const { items } = await peek(candidates(request, fields))
  const files = (async function * () {
    for await (const candidate of items) {
      if (candidate.content == null) continue
      if (candidate.path == null) throw new MultipartError('every file of a model needs its path in the directory as its file name')
      if (ARCHIVE.test(candidate.path)) {
        for await (const entry of readTar(candidate.content)) if (entry.type === 'file') yield { path: entry.path, content: entry.content }
        continue
      }
      yield { path: candidate.path, content: candidate.content }
    }
  })()
  return { fields: { ...fields }, files }
}

/** Unescapes a filename as Go's url.QueryUnescape, which Kubo uses: its CLI escapes a space as `+`. */
function decodePath (filename: string | undefined): string | undefined {
  let path: string
  try {
    path = decodeURIComponent((filename ?? '').replaceAll('+', ' '))
  } catch {
    throw new MultipartError(`file name ${JSON.stringify(filename)} is not URI-encoded`)
  }
  path = path.replace(/^\/+/, '')
  if (path.split('/').some(segment => segment === '..')) throw new MultipartError(`file name ${JSON.stringify(path)} leaves its directory`)
  return path === '' ? undefined : path
}

/** Busboy reports a truncated body as a stream error; make it a typed one. The body stops being read once `signal` aborts. */
async function * guard (stream: AsyncIterable<Uint8Array>, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  try {
    yield * (signal == null ? stream : untilAborted(stream, signal))
  } catch (err: any) {
    if (signal?.aborted === true) throw err
    throw new MultipartError(`malformed multipart body: ${err.message}`)
  }
}

/** `promise`, or the signal's reason once it aborts. */
async function raceAbort<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted()
  let stop = (): void => {}
  const aborted = new Promise<never>((_resolve, reject) => {
    stop = () => { reject(signal.reason) }
    signal.addEventListener('abort', stop, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', stop)
  }
}

/**
 * Reads a request body until `signal` aborts: an upload that stalls ends
 * with the request's `timeout`, or when its client goes away.
 */
export async function * untilAborted<T> (source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]()
  while (true) {
    const next = await raceAbort(iterator.next(), signal)
    if (next.done === true) return
    yield next.value
  }
}

/**
 * The bytes of the first part, file or field, for routes that take one small
 * payload (block/put, dag/put, pubsub/pub); more than `max` bytes is refused.
 */
export async function firstPartBytes (request: FastifyRequest, max: number): Promise<Uint8Array> {
  let payload: Uint8Array | undefined
  await eachPart(request, async (part) => {
    if (payload != null) {
      // Later parts are ignored, but read, so that the connection is free for the next request.
      if (part.type === 'file') part.file.resume()
      return
    }
    payload = part.type === 'field' ? Buffer.from(String(part.value)) : await readCapped(part.file, max)
  })
  if (payload == null) throw new MultipartError('the multipart body has no part')
  return payload
}

/**
 * A file with its metadata from a multipart body, as a stream: the form
 * fields sent before the first file part, and that file's bytes, at most
 * `max` of them. Fields sent after the file are not seen.
 */
export async function fieldsAndFile (request: FastifyRequest, max: number): Promise<{ fields: Record<string, string>, file?: AsyncIterable<Uint8Array> }> {
  const fields: Record<string, string> = {}
  const parts = candidates(request, fields)
  const first = await parts.next()
  const content = first.done === true ? undefined : first.value.content
  if (content == null) return { fields }
  const file = (async function * () {
    yield * capped(content, max)
    // What follows the file is read and dropped, so that the connection is free for the next request.
    for await (const rest of parts) if (rest.content != null) for await (const _ of rest.content);
  })()
  return { fields: { ...fields }, file }
}

/** Calls `handle` on each part in order; a body that does not parse is a MultipartError, limits keep their own codes. */
async function eachPart (request: FastifyRequest, handle: (part: Multipart) => Promise<void>): Promise<void> {
  try {
    for await (const part of request.parts()) await handle(part)
  } catch (err: any) {
    if (err instanceof MultipartError || (typeof err.code === 'string' && err.code.startsWith('FST_'))) throw err
    throw new MultipartError(`malformed multipart body: ${err.message}`)
  }
}

async function readCapped (stream: AsyncIterable<Uint8Array>, max: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const chunk of capped(stream, max)) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** The stream's bytes, refused as too large past `max`. */
async function * capped (stream: AsyncIterable<Uint8Array>, max: number): AsyncGenerator<Uint8Array> {
  let size = 0
  for await (const chunk of stream) {
    size += chunk.byteLength
    if (size > max) throw Object.assign(new MultipartError(`the payload may hold at most ${max} bytes`), { code: 'FST_REQ_FILE_TOO_LARGE' })
    yield chunk
  }
}

/** The fields of a registration form that describe what it adds (document 000's `metadata`). */
const DESCRIBING_FIELDS = ['name', 'description', 'dtype', 'framework', 'license'] as const

/**
 * What a registration form (ai/model/add, ai/dataset/add) says of what it
 * adds: each of its describing fields as a form field, else from the
 * `metadata` field's JSON object; empty and non-string values are left out.
 */
export function formMetadata (fields: Record<string, string>): Partial<Record<typeof DESCRIBING_FIELDS[number], string>> {
  let metadata: unknown = {}
  if (fields.metadata != null) {
    try {
      metadata = JSON.parse(fields.metadata)
    } catch {
      metadata = undefined
    }
    if (metadata == null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new BadRequestError('the metadata field must be a JSON object')
  }
  const described: Partial<Record<typeof DESCRIBING_FIELDS[number], string>> = {}
  for (const key of DESCRIBING_FIELDS) {
    const value = fields[key] ?? (metadata as Record<string, unknown>)[key]
    if (typeof value === 'string' && value !== '') described[key] = value
  }
  return described
}
