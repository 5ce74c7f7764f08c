import { once } from 'node:events'
import { Readable } from 'node:stream'
import { duration } from './args.ts'
import { DeadlineExceededError, envelope } from './errors.ts'
import type { FastifyReply, FastifyRequest } from 'fastify'

const deadlines = new WeakMap<FastifyRequest, AbortSignal | undefined>()
/** Timers take whole ms up to 2^31 - 1 and fire at once past it; a longer timeout is as good as none. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Kubo's global `timeout` option (a duration such as `30s`) as a signal that
 * fires when it runs out; undefined when the request sets none.
 */
export function requestDeadline (request: FastifyRequest): AbortSignal | undefined {
  if (deadlines.has(request)) return deadlines.get(request)
  const ms = duration((request.query as Record<string, unknown> | undefined)?.timeout, 'timeout')
  const signal = ms == null ? undefined : AbortSignal.timeout(Math.min(Math.ceil(ms), MAX_TIMER_MS))
  deadlines.set(request, signal)
  return signal
}

/** The error of a request whose `timeout` ran out, in Kubo's words, which its clients recognise. */
export function deadlineExceeded (request: FastifyRequest): DeadlineExceededError {
  return new DeadlineExceededError(`request timed out after ${String((request.query as { timeout?: unknown }).timeout)}: context deadline exceeded`)
}

/**
 * An AbortSignal that fires when the client goes away or the request's
 * `timeout` runs out, so that long work for a request (a cat, a pin, a
 * subscription) stops with it.
 */
export function requestSignal (reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  // A response closes before it finished only when the connection went away.
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) controller.abort(new Error('client disconnected')) })
  const deadline = requestDeadline(reply.request)
  return deadline == null ? controller.signal : AbortSignal.any([controller.signal, deadline])
}

/**
 * Pulls the first item before the status line goes out, so that an error the
 * work finds at once (a bad CID, a missing block) becomes a proper error
 * response instead of a broken stream.
 */
export async function peek<T> (source: AsyncIterable<T>): Promise<{ first?: T, items: AsyncGenerator<T> }> {
  const iterator = source[Symbol.asyncIterator]()
  const first = await iterator.next()
  const items = (async function * () {
    if (first.done === true) return
    yield first.value
    yield * { [Symbol.asyncIterator]: () => iterator }
  })()
  return { first: first.done === true ? undefined : first.value, items }
}

/** Frames that come within this many ms of the last write are written together. */
const COALESCE_MS = 4

/**
 * Framed text as a Readable that writes the frames coming within `windowMs`
 * of its last write together. A model's tokens, faster than that, then cost
 * the daemon and its client one write and one read per few tokens rather
 * than per token, the largest cost of a token on the event loop after the
 * model's own; and a client that reads slower than the model writes gets
 * what came meanwhile in one piece. A frame after a pause, the first
 * included, goes out at once, and the end flushes what is held, so that the
 * last frame and the end arrive together.
 */
export function coalesced (frames: AsyncIterable<string>, windowMs = COALESCE_MS): Readable {
  const iterator = frames[Symbol.asyncIterator]()
  let held = ''
  let lastPush = -Infinity
  let timer: NodeJS.Timeout | undefined
  let pulling = false
  let ended = false
  const flush = (): void => {
    clearTimeout(timer)
    timer = undefined
    if (held === '') return
    lastPush = performance.now()
    const text = held
    held = ''
    readable.push(text)
  }
  const pull = async (): Promise<void> => {
    pulling = true
    try {
      while (true) {
        const next = await iterator.next()
        if (next.done === true) {
          ended = true
          flush()
          readable.push(null)
          return
        }
        held += next.value
        const since = performance.now() - lastPush
        if (since >= windowMs) flush()
        else timer ??= setTimeout(flush, windowMs - since)
        // A full buffer: the client reads slower than frames come; the rest waits in the source until it reads.
        if (readable.readableLength >= readable.readableHighWaterMark) return
      }
    } catch (err: any) {
      readable.destroy(err)
    } finally {
      pulling = false
    }
  }
  const readable = new Readable({
    read () { if (!pulling && !ended) void pull() },
    destroy (err, callback) {
      clearTimeout(timer)
      void Promise.resolve(iterator.return?.()).then(() => { callback(err) }, () => { callback(err) })
    }
  })
  return readable
}

/** The line that ends a Kubo stream that failed: the message a client may see, with Kubo's fields. */
const kuboError = (err: Error): object => ({ Message: envelope(err).Message, Code: 0, Type: 'error' })

/**
 * Sends objects as framed text once the first is ready, so that an early
 * error gets its own status; a late one is framed as the stream's last value.
 */
async function sendFramed (reply: FastifyReply, source: AsyncIterable<object>, headers: Record<string, string>, frame: (value: object) => string, errorValue: (err: Error) => object, end = ''): Promise<FastifyReply> {
  const { items } = await peek(source)
  reply.headers(headers)
  const deadline = requestDeadline(reply.request)
  const text = (async function * () {
    try {
      for await (const item of items) yield frame(item)
    } catch (err: any) {
      yield frame(errorValue(deadline?.aborted === true ? deadlineExceeded(reply.request) : err))
      return
    }
    if (end !== '') yield end
  })()
  return reply.send(coalesced(text))
}

/**
 * Streaming JSON: one object per line. A late error ends the stream with an
 * error line: Kubo's, unless the API family has its own (Ollama's `{"error"}`).
 */
export async function sendNdjson (reply: FastifyReply, source: AsyncIterable<object>, errorLine: (err: Error) => object = kuboError): Promise<FastifyReply> {
  return sendFramed(reply, source, { 'content-type': 'application/x-ndjson', 'x-chunked-output': '1' }, value => `${JSON.stringify(value)}\n`, errorLine)
}

/** Server-sent events as OpenAI streams them: `data: {...}` events ending with `data: [DONE]`, or with the error event of a failure. */
export async function sendSse (reply: FastifyReply, source: AsyncIterable<object>, errorEvent: (err: Error) => object): Promise<FastifyReply> {
  return sendFramed(reply, source, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' }, value => `data: ${JSON.stringify(value)}\n\n`, errorEvent, 'data: [DONE]\n\n')
}

/** Server-sent events named by their `type`, as OpenAI's Responses API streams them: no [DONE] at the end. */
export async function sendTypedSse (reply: FastifyReply, source: AsyncIterable<{ type: string }>, errorEvent: (err: Error) => { type: string }): Promise<FastifyReply> {
  const frame = (value: object): string => `event: ${(value as { type: string }).type}\ndata: ${JSON.stringify(value)}\n\n`
  return sendFramed(reply, source, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' }, frame, errorEvent)
}

/** Raw bytes, streamed with backpressure; the Content-Type may depend on the first chunk. */
export async function sendBytes (reply: FastifyReply, source: AsyncIterable<Uint8Array>, contentType: (first?: Uint8Array) => string | Promise<string>): Promise<FastifyReply> {
  const { first, items } = await peek(source)
  reply.header('content-type', await contentType(first))
  return reply.send(Readable.from(items, { objectMode: false }))
}

/**
 * NDJSON for a stream with no natural end (a pubsub subscription): the headers
 * go out at once, because Kubo clients take them as the sign that the
 * subscription is live, and lines follow as they come until `signal` aborts.
 */
export async function streamLive (reply: FastifyReply, source: AsyncIterable<object>, signal: AbortSignal): Promise<void> {
  reply.hijack()
  const res = reply.raw
  // `connection: close` so that a stopping server need not wait out keep-alive on this socket.
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'x-chunked-output': '1', 'cache-control': 'no-cache', connection: 'close' })
  res.flushHeaders()
  try {
    for await (const item of source) {
      if (!res.write(`${JSON.stringify(item)}\n`)) await once(res, 'drain', { signal })
    }
  } catch (err: any) {
    if (!signal.aborted) res.write(`${JSON.stringify(kuboError(err))}\n`)
  } finally {
    res.end()
  }
}
