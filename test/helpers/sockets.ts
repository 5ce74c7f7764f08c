import { WebSocket } from 'ws'

export interface Frame {
  data: Buffer
  binary: boolean
}

export interface TestSocket {
  ws: WebSocket
  /** Resolves once the socket is open; rejects with the HTTP status of a refused upgrade. */
  opened: Promise<void>
  /** The next frame, waiting at most `ms`. */
  next: (ms?: number) => Promise<Frame>
  /** The next text frame, parsed; binary frames before it are an error. */
  json: (ms?: number) => Promise<any>
  closed: Promise<{ code: number, reason: string }>
}

/** A WebSocket of a test daemon's API and a queue of what it receives, each wait bounded. */
export function openSocket (url: string, headers: Record<string, string> = {}): TestSocket {
  const ws = new WebSocket(url, { headers })
  const queue: Frame[] = []
  const waiters: Array<(frame: Frame) => void> = []
  ws.on('message', (data, binary) => {
    const frame = { data: Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer), binary }
    const waiter = waiters.shift()
    if (waiter != null) waiter(frame)
    else queue.push(frame)
  })
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => { resolve() })
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      reject(Object.assign(new Error(`upgrade refused with ${res.statusCode ?? 0}`), { status: res.statusCode }))
    })
    ws.once('error', reject)
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    ws.once('close', (code, reason) => { resolve({ code, reason: reason.toString() }) })
  })
  const next = async (ms = 15_000): Promise<Frame> => {
    const queued = queue.shift()
    if (queued !== undefined) return queued
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1)
        reject(new Error(`no message on ${url} within ${ms} ms`))
      }, ms)
      const waiter = (frame: Frame): void => { clearTimeout(timer); resolve(frame) }
      waiters.push(waiter)
    })
  }
  const json = async (ms?: number): Promise<any> => {
    const frame = await next(ms)
    if (frame.binary) throw new Error(`a binary frame of ${frame.data.byteLength} bytes where a text one was expected`)
    return JSON.parse(frame.data.toString())
  }
  return { ws, opened, next, json, closed }
}

/** The ws:// URL of a daemon's API path. */
export function wsUrl (daemon: { url: string }, path: string, query: Record<string, string> = {}): string {
  const url = new URL(path, daemon.url.replace(/^http/, 'ws'))
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value)
  return url.toString()
}
