import { Readable } from 'node:stream'
import { constants as zlibConstants, createGzip } from 'node:zlib'
import { Type } from 'typebox'
import { args, firstArg, flag, option } from '../args.ts'
import { defined } from '../inference.ts'
import { ls } from '../methods.ts'
import { kuboOperation } from '../operations.ts'
import { pushable } from 'it-pushable'
import { BadRequestError, envelope, RangeNotSatisfiableError } from '../errors.ts'
import { candidates, parseMode, untilAborted } from '../multipart.ts'
import { sniffContentType, SNIFF_BYTES } from '../sniff.ts'
import { archiveOf } from '../tar.ts'
import { requestDeadline, requestSignal, sendBytes, sendNdjson } from '../stream.ts'
import { kuboRoute, readOptions, ReadQuery, withDeadline } from './route.ts'
import type { Routes } from '../server.ts'
import type { AddEvent, AddOptions, Content, ReadOptions } from '@node-daemon/content'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Static } from 'typebox'
import type { WebSocket } from 'ws'

const AddQuery = Type.Object({
  pin: Type.Optional(Type.Boolean({ default: true })),
  'cid-version': Type.Optional(Type.Integer({ minimum: 0, maximum: 1 })),
  'raw-leaves': Type.Optional(Type.Boolean()),
  chunker: Type.Optional(Type.String({ description: 'size-N, as in Kubo' })),
  'only-hash': Type.Optional(Type.Boolean()),
  'wrap-with-directory': Type.Optional(Type.Boolean()),
  progress: Type.Optional(Type.Boolean()),
  quieter: Type.Optional(Type.Boolean({ description: 'Only the root entry' })),
  hash: Type.Optional(Type.String({ default: 'sha2-256', description: 'Multihash of every block; another than sha2-256 means CIDv1' })),
  trickle: Type.Optional(Type.Boolean({ default: false, description: 'Trickle DAG layout instead of the balanced one' })),
  inline: Type.Optional(Type.Boolean({ default: false, description: 'Identity CIDs for blocks of at most inline-limit bytes' })),
  'inline-limit': Type.Optional(Type.Integer({ minimum: 0, maximum: 128, default: 32 })),
  mode: Type.Optional(Type.String({ pattern: '^(0o?[0-7]*|[1-9][0-9]*)$', description: 'POSIX mode for every entry, octal with a leading 0 (0644) or decimal' })),
  mtime: Type.Optional(Type.Integer({ description: 'Modification time for every entry, seconds since the epoch' })),
  'mtime-nsecs': Type.Optional(Type.Integer({ minimum: 0, maximum: 999_999_999 })),
  'pin-name': Type.Optional(Type.String({ maxLength: 255, description: 'Name of the pins of the roots' })),
  'to-files': Type.Optional(Type.String({ description: 'Refused: needs MFS (files/*)' })),
  nocopy: Type.Optional(Type.Boolean({ description: 'Refused: no filestore' })),
  fscache: Type.Optional(Type.Boolean({ description: 'Refused: no filestore' })),
  timeout: ReadQuery.timeout
})

const CatQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'CID or /ipfs/ path' })),
  offset: Type.Optional(Type.Integer({ minimum: 0 })),
  length: Type.Optional(Type.Integer({ minimum: 0 })),
  ...ReadQuery
})

const PathQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'CID or /ipfs/ path' })),
  ...ReadQuery
})

const GetQuery = Type.Object({
  ...PathQuery.properties,
  archive: Type.Optional(Type.Boolean({ description: 'With compress: gzip the tar rather than a file alone' })),
  compress: Type.Optional(Type.Boolean({ description: 'Gzip the output' })),
  'compression-level': Type.Optional(Type.Integer({ description: '1 to 9, with compress' }))
})

/** Kubo's gzip level for get: none without compress, zlib's default without a level, else 1 to 9. */
function gzipLevel (q: Static<typeof GetQuery>): number | undefined {
  if (q.compress !== true) return undefined
  const level = q['compression-level']
  if (level == null) return zlibConstants.Z_DEFAULT_COMPRESSION
  if (level < 1 || level > 9) throw new BadRequestError('compression level must be between 1 and 9')
  return level
}

const UploadQuery = Type.Object({
  pin: Type.Optional(Type.Boolean({ default: true })),
  'cid-version': Type.Optional(Type.Integer({ minimum: 0, maximum: 1 })),
  'raw-leaves': Type.Optional(Type.Boolean()),
  chunker: Type.Optional(Type.String()),
  timeout: ReadQuery.timeout
})

interface AddQueryType {
  pin?: boolean
  'cid-version'?: 0 | 1
  'raw-leaves'?: boolean
  chunker?: string
  'only-hash'?: boolean
  'wrap-with-directory'?: boolean
  progress?: boolean
  quieter?: boolean
  hash?: string
  trickle?: boolean
  inline?: boolean
  'inline-limit'?: number
  mode?: string
  mtime?: number
  'mtime-nsecs'?: number
  'pin-name'?: string
  'to-files'?: string
  nocopy?: boolean
  fscache?: boolean
}

function importOptions (q: AddQueryType): AddOptions {
  return { cidVersion: q['cid-version'], rawLeaves: q['raw-leaves'], chunker: q.chunker, onlyHash: q['only-hash'], wrapWithDirectory: q['wrap-with-directory'] }
}

/** Kubo's add options beyond the importer's basics; those the daemon cannot honour are refused, never ignored. */
function kuboAddOptions (q: AddQueryType): AddOptions {
  if (q['to-files'] != null) throw new BadRequestError('to-files needs MFS (files/*), which this daemon does not serve yet')
  if (q.nocopy === true || q.fscache === true) throw new BadRequestError('nocopy and fscache need a filestore, which this daemon does not have')
  const mtime = q.mtime == null ? undefined : { secs: BigInt(q.mtime), nsecs: q['mtime-nsecs'] }
  if (mtime == null && q['mtime-nsecs'] != null) throw new BadRequestError('mtime-nsecs needs mtime')
  const metadata = q.mode != null || mtime != null
  return {
    hash: q.hash,
    trickle: q.trickle,
    inline: q.inline,
    inlineLimit: q['inline-limit'],
    mode: q.mode == null ? undefined : parseMode(q.mode),
    mtime,
    pinName: q['pin-name'],
    // As Kubo: metadata needs a UnixFS node, so leaves are dag-pb unless raw-leaves says otherwise.
    rawLeaves: q['raw-leaves'] ?? (metadata ? false : undefined)
  }
}

/** One add result line, with Kubo's fields and document 000's together. */
function addLine (evt: AddEvent): object {
  if (evt.type === 'progress') return { Name: evt.name, Bytes: evt.bytes }
  const cid = evt.cid.toString()
  const metadata = {
    ...(evt.mode == null ? {} : { Mode: evt.mode.toString(8).padStart(4, '0') }),
    ...(evt.mtime == null ? {} : { Mtime: Number(evt.mtime.secs), ...(evt.mtime.nsecs == null || evt.mtime.nsecs === 0 ? {} : { MtimeNsecs: evt.mtime.nsecs }) })
  }
  return { Name: evt.name, Hash: cid, Size: String(evt.size), ...metadata, success: true, cid, name: evt.name, size: evt.size }
}

async function * onlyLast (events: AsyncIterable<AddEvent>): AsyncGenerator<AddEvent> {
  let last: AddEvent | undefined
  for await (const evt of events) if (evt.type === 'entry') last = evt
  if (last != null) yield last
}

async function lastEntry (events: AsyncIterable<AddEvent>): Promise<Extract<AddEvent, { type: 'entry' }>> {
  for await (const evt of onlyLast(events)) if (evt.type === 'entry') return evt
  throw new BadRequestError('nothing was uploaded')
}

/** Parses a single `bytes=` range against a size; multi-ranges are served as their first. */
function parseRange (header: string | undefined, size: number): { start: number, end: number } | 'unsatisfiable' | undefined {
  if (header == null) return undefined
  const match = /^bytes=(\d*)-(\d*)/.exec(header.trim())
  if (match == null || (match[1] === '' && match[2] === '')) return undefined
  let start: number
  let end: number
  if (match[1] === '') {
    start = Math.max(0, size - Number(match[2]))
    end = size - 1
  } else {
    start = Number(match[1])
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)
  }
  if (start >= size || start > end) return 'unsatisfiable'
  return { start, end }
}

async function contentTypeOf (content: Content, path: string, name: string, options: ReadOptions): Promise<string> {
  const head: Uint8Array[] = []
  for await (const chunk of content.cat(path, { ...options, length: SNIFF_BYTES })) head.push(chunk)
  return sniffContentType(Buffer.concat(head), name)
}

async function streamMedia (content: Content, path: string, range: string | undefined, reply: FastifyReply, options: ReadOptions): Promise<FastifyReply> {
  const stat = await content.stat(path, options)
  reply.header('accept-ranges', 'bytes')
  const type = await contentTypeOf(content, path, stat.name, options)
  reply.header('etag', `"${stat.cid.toString()}"`)
  const wanted = parseRange(range, stat.size)
  if (wanted === 'unsatisfiable') {
    reply.header('content-range', `bytes */${stat.size}`)
    throw new RangeNotSatisfiableError(`range ${range ?? ''} is outside the ${stat.size} bytes of ${path}`)
  }
  if (wanted == null) {
    reply.header('content-length', stat.size)
    return sendBytes(reply, content.cat(path, options), () => type)
  }
  const length = wanted.end - wanted.start + 1
  reply.code(206)
  reply.header('content-range', `bytes ${wanted.start}-${wanted.end}/${stat.size}`)
  reply.header('content-length', length)
  return sendBytes(reply, content.cat(path, { ...options, offset: wanted.start, length }), () => type)
}

function sendJson (socket: WebSocket, value: object): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(value))
}

export const contentRoutes: Routes = (app, { node, shutdown }) => {
  const content = node.content

  kuboRoute(app, {
    path: 'add',
    permission: 'content:write',
    tags: ['content'],
    summary: 'Add files and directories from a multipart body; NDJSON lines, root last',
    schema: { querystring: AddQuery },
    handler: async (request, reply) => {
      const q = request.query as AddQueryType
      const fields: Record<string, string> = {}
      const signal = requestSignal(reply)
      const events = content.addAll(candidates(request, fields, signal), {
        ...importOptions(q),
        ...kuboAddOptions(q),
        progress: q.progress,
        // Read after the files, so that a `pin` form field sent after them still counts.
        pin: () => flag(fields.pin ?? q.pin, true),
        signal
      })
      const lines = q.quieter === true ? onlyLast(events) : events
      return sendNdjson(reply, (async function * () { for await (const evt of lines) yield addLine(evt) })())
    }
  })

  kuboRoute(app, {
    path: 'cat',
    permission: 'content:read',
    get: true,
    tags: ['content'],
    summary: 'Stream the bytes of a file',
    schema: { querystring: CatQuery },
    handler: async (request, reply) => {
      const path = firstArg(request, 'ipfs-path', 'cid')
      const { offset, length } = request.query as { offset?: number, length?: number }
      const read = readOptions(reply)
      return sendBytes(reply, content.cat(path, { ...read, offset, length, signal: AbortSignal.any([read.signal, shutdown]) }), async (first) =>
        first == null || (offset ?? 0) > 0 ? 'application/octet-stream' : sniffContentType(first.subarray(0, SNIFF_BYTES)))
    }
  })

  kuboOperation(app, node, ls, {
    path: 'ls',
    get: true,
    summary: 'List directory entries',
    schema: { querystring: PathQuery },
    input: (request) => {
      const paths = args(request, 'cid')
      if (paths.length === 0) throw new BadRequestError('argument "ipfs-path" is required')
      return defined({ cid: paths, offline: option(request, 'offline') })
    },
    answer: (output) => ({
      Objects: output.objects.map(o => ({ Hash: o.cid, Links: o.entries.map(e => ({ Name: e.name, Hash: e.cid, Size: e.size, Type: e.type === 'directory' ? 1 : 2, Target: '' })) }))
    })
  })

  kuboRoute(app, {
    path: 'get',
    permission: 'content:read',
    tags: ['content'],
    summary: 'A file or directory as a tar archive under its name, as Kubo; X-Content-Length is the bytes of its files. With compress, gzipped: the tar with archive, else a file\'s bytes alone',
    schema: { querystring: GetQuery },
    handler: async (request, reply) => {
      const q = request.query as Static<typeof GetQuery>
      const level = gzipLevel(q)
      const read = readOptions(reply)
      const path = firstArg(request, 'ipfs-path', 'cid')
      const { size, directory, tar } = await archiveOf(content, path, { ...read, signal: AbortSignal.any([read.signal, shutdown]) })
      reply.header('x-content-length', size)
      if (level == null) return sendBytes(reply, tar, () => 'application/x-tar')
      // As Kubo's: without archive, only a regular file is gzipped on its own.
      if (q.archive !== true && directory) throw new BadRequestError('file is not regular')
      const source = q.archive === true ? tar : content.cat(path, { ...read, signal: AbortSignal.any([read.signal, shutdown]) })
      return sendBytes(reply, Readable.from(source).pipe(createGzip({ level })), () => 'application/x-gzip')
    }
  })

  app.get('/api/v0/stream/media', {
    permission: 'content:read',
    schema: { querystring: PathQuery, tags: ['streaming'], summary: 'Stream a file with HTTP Range support and a sniffed Content-Type' }
  }, async (request, reply) => withDeadline(request, async () => {
    const path = firstArg(request, 'cid', 'cid')
    const read = readOptions(reply)
    return streamMedia(content, path, request.headers.range, reply, { ...read, signal: AbortSignal.any([read.signal, shutdown]) })
  }))

  // Raw uploads take any body as a byte stream, in a context without the usual body parsers.
  app.register(async (raw: FastifyInstance) => {
    raw.removeAllContentTypeParsers()
    raw.addContentTypeParser('*', (_request, _payload, done) => { done(null) })
    raw.post('/api/v0/stream/upload', {
      permission: 'content:write',
      schema: { querystring: UploadQuery, tags: ['streaming'], summary: 'Stream a raw request body into the blockstore; same CID as add' }
    }, async (request, reply) => withDeadline(request, async () => {
      const q = request.query as AddQueryType
      const signal = requestSignal(reply)
      const entry = await lastEntry(content.addAll([{ content: untilAborted(request.raw, signal) }], {
        ...importOptions(q),
        pin: q.pin ?? true,
        signal
      }))
      return addLine(entry)
    }))
  })

  app.get('/ws/v0/stream/media', {
    permission: 'content:read',
    websocket: true,
    schema: { querystring: Type.Object(ReadQuery), tags: ['streaming'], summary: 'WebSocket: send {"cid"}, receive the file as binary frames' }
  }, (socket, request) => {
    const controller = new AbortController()
    socket.once('close', () => { controller.abort() })
    socket.once('message', (data, isBinary) => {
      void (async () => {
        try {
          await withDeadline(request, async () => {
            if (isBinary) throw new BadRequestError('send a JSON text message {"cid": "..."} first')
            const msg = JSON.parse(data.toString()) as { cid?: unknown, offset?: unknown, length?: unknown }
            if (typeof msg.cid !== 'string') throw new BadRequestError('the message needs a "cid" string')
            const offset = typeof msg.offset === 'number' ? msg.offset : undefined
            const length = typeof msg.length === 'number' ? msg.length : undefined
            const deadline = requestDeadline(request)
            const signal = AbortSignal.any([controller.signal, shutdown, ...deadline == null ? [] : [deadline]])
            const offline = (request.query as { offline?: boolean }).offline === true
            for await (const chunk of content.cat(msg.cid, { offset, length, offline, signal })) {
              if (socket.readyState !== socket.OPEN) return
              socket.send(chunk, { binary: true })
            }
            socket.close(1000, 'done')
          })
        } catch (err: any) {
          sendJson(socket, envelope(err instanceof SyntaxError ? new BadRequestError(err.message) : err))
          socket.close(1008, 'error')
        }
      })()
    })
  })

  app.get('/ws/v0/stream/upload', { permission: 'content:write', websocket: true, schema: { tags: ['streaming'], summary: 'WebSocket: send binary frames, then {"done": true}; receive {"success", "cid"}' } }, (socket, request) => {
    void wsUpload(content, socket, request.query as Record<string, string | undefined>, shutdown)
  })
}

/** Bytes queued from a WebSocket before the socket is paused. */
const WS_HIGH_WATER = 8 * 1_048_576

async function wsUpload (content: Content, socket: WebSocket, q: Record<string, string | undefined>, shutdown: AbortSignal): Promise<void> {
  const queue = pushable()
  let done = false
  socket.on('message', (data, isBinary) => {
    if (isBinary) {
      queue.push(Array.isArray(data) ? Buffer.concat(data) : new Uint8Array(data as ArrayBuffer | Buffer))
      if (queue.readableLength > WS_HIGH_WATER) socket.pause()
      return
    }
    let msg: { done?: unknown } | undefined
    try {
      msg = JSON.parse(data.toString())
    } catch {}
    if (msg?.done === true) queue.end()
    else queue.end(new BadRequestError('text messages must be {"done": true}; send the data as binary frames'))
  })
  socket.once('close', () => { if (!done) queue.end(new BadRequestError('the socket closed before {"done": true}')) })
  const drained = (async function * () {
    for await (const chunk of queue) {
      if (socket.isPaused && queue.readableLength < WS_HIGH_WATER / 8) socket.resume()
      yield chunk
    }
  })()
  try {
    const entry = await lastEntry(content.addAll([{ content: drained }], {
      cidVersion: q['cid-version'] === '1' ? 1 : 0,
      pin: flag(q.pin, true),
      signal: shutdown
    }))
    done = true
    sendJson(socket, addLine(entry))
    socket.close(1000, 'done')
  } catch (err: any) {
    done = true
    sendJson(socket, envelope(err))
    socket.close(1008, 'error')
  }
}
