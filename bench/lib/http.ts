/**
 * The benches' HTTP client for what they measure: node:http, whose streams
 * cost the client less than fetch() does, on a machine whose two cores the
 * client shares with the daemons it measures. With fetch(), the pin ingestion's
 * clients took 0.4 cores for ~1,000 requests a second (0.23 with this), and a
 * 200 MB cat read 190-200 MB/s where this reads 250-285 at the same cores.
 */
import { request } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Agent, OutgoingHttpHeaders } from 'node:http'

export interface HttpOptions {
  method?: string
  headers?: OutgoingHttpHeaders
  /** Sent as it is read: a file streams without being held. */
  body?: string | Uint8Array | AsyncIterable<Uint8Array>
  /** Kept-alive connections for many requests. */
  agent?: Agent
  signal?: AbortSignal
  /** The whole exchange, from the request to the response's end. */
  timeoutMs?: number
  /** Takes the response's bytes as they come, which are then not kept. */
  onData?: (chunk: Buffer) => void
}

export interface HttpAnswer {
  status: number
  /** The response's body as text; empty when onData took it. */
  text: string
}

/** One request; resolves once the response ended, whatever its status. */
export async function http (url: string | URL, options: HttpOptions = {}): Promise<HttpAnswer> {
  const signals = [options.signal, options.timeoutMs == null ? undefined : AbortSignal.timeout(options.timeoutMs)].filter(s => s != null)
  const signal = signals.length === 0 ? undefined : AbortSignal.any(signals)
  const { body } = options
  const headers = { ...options.headers }
  if (typeof body === 'string' || body instanceof Uint8Array) headers['content-length'] = Buffer.byteLength(body)
  return new Promise<HttpAnswer>((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'POST', headers, agent: options.agent, signal }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (chunk: Buffer) => {
        if (options.onData != null) options.onData(chunk)
        else parts.push(chunk)
      })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body == null || typeof body === 'string' || body instanceof Uint8Array) req.end(body)
    else pipeline(Readable.from(body, { objectMode: false }), req).catch(reject)
  })
}
