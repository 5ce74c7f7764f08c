import { Readable } from 'node:stream'
import { readApiAddress } from '@node-daemon/daemon'

/** Finds a running daemon: --api, else the address it wrote into the repo, else the default port. */
export async function apiUrl (explicit: string | undefined, repo: string): Promise<string> {
  return (explicit ?? await readApiAddress(repo) ?? 'http://127.0.0.1:8000').replace(/\/$/, '')
}

export class ApiError extends Error {
  static name = 'ApiError'
  name = 'ApiError'
}

/** POSTs to a Kubo-style route and fails with the envelope's message on an error status. */
export async function call (base: string, path: string, params: Record<string, string | string[]> = {}, init: RequestInit = {}): Promise<Response> {
  const url = new URL(`${base}/api/v0/${path}`)
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v)
  }
  return post(base, url, init)
}

/**
 * POSTs to any route of the daemon; an error status fails with the message
 * of whichever error shape its API family uses.
 */
export async function post (base: string, url: URL, init: RequestInit = {}): Promise<Response> {
  let res: Response
  try {
    res = await fetch(url, { method: 'POST', ...init })
  } catch (err: any) {
    throw new ApiError(`cannot reach the daemon at ${base} (${err.cause?.code ?? err.message}); is \`node-daemon start\` running?`)
  }
  if (!res.ok) {
    const body = await res.json().catch(() => ({})) as { error?: string | { message?: string }, Message?: string }
    const message = typeof body.error === 'object' ? body.error.message : body.error
    throw new ApiError(message ?? body.Message ?? `${res.status} ${res.statusText}`)
  }
  return res
}

/** Reads an NDJSON response line by line. */
export async function * ndjson<T> (res: Response): AsyncGenerator<T> {
  const decoder = new TextDecoder()
  let buffered = ''
  if (res.body == null) return
  for await (const chunk of Readable.fromWeb(res.body as any) as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true })
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) if (line.trim() !== '') yield JSON.parse(line) as T
  }
  if (buffered.trim() !== '') yield JSON.parse(buffered) as T
}
