// The console's one way to the API: same origin, with the credential the user gave (if any) on every call.

const TOKEN_KEY = 'node-daemon.token'

/** The API key or JWT the user gave, kept for the browser session only. */
export function token (): string | null {
  return sessionStorage.getItem(TOKEN_KEY)
}

/** Listeners told when a call is refused for want of credentials: the app then asks for them. */
const onUnauthorized = new Set<() => void>()

export function whenUnauthorized (listener: () => void): () => void {
  onUnauthorized.add(listener)
  return () => { onUnauthorized.delete(listener) }
}

export function setToken (value: string | null): void {
  if (value == null || value === '') sessionStorage.removeItem(TOKEN_KEY)
  else sessionStorage.setItem(TOKEN_KEY, value)
}

/** An API error, with the message of the error envelope (`error`, Ollama's `error`, OpenAI's `error.message` or Kubo's `Message`). */
export class ApiError extends Error {
  status: number
  constructor (status: number, message: string) {
    super(message)
    this.status = status
  }
}

export function authHeaders (): Record<string, string> {
  const t = token()
  return t == null ? {} : { authorization: `Bearer ${t}` }
}

async function failure (res: Response): Promise<ApiError> {
  if (res.status === 401) for (const listener of onUnauthorized) listener()
  const text = await res.text()
  try {
    const body = JSON.parse(text)
    const message = typeof body.error === 'string' ? body.error : body.error?.message ?? body.Message ?? text
    return new ApiError(res.status, message)
  } catch {
    return new ApiError(res.status, text === '' ? res.statusText : text)
  }
}

/** Calls the API; `json` is sent as a JSON body (POST unless `method` says otherwise). Throws ApiError on a non-2xx answer. */
export async function call (path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const { json, headers, ...rest } = init
  const res = await fetch(path, {
    ...(json === undefined ? {} : { method: 'POST', body: JSON.stringify(json) }),
    ...rest,
    headers: { ...authHeaders(), ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...headers as Record<string, string> | undefined }
  })
  if (!res.ok) throw await failure(res)
  return res
}

/** Calls the API and parses its JSON answer. */
export async function get<T = any> (path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const res = await call(path, init)
  const text = await res.text()
  return (text === '' ? undefined : JSON.parse(text)) as T
}

/** Kubo's RPC: POST /api/v0/<path> with query arguments. */
export async function rpc<T = any> (path: string, params: Record<string, string | number | boolean> = {}): Promise<T> {
  const query = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]))
  return get<T>(`/api/v0/${path}?${query}`, { method: 'POST' })
}

/** Reads an NDJSON answer line by line as it streams in. */
export async function * lines<T = any> (res: Response): AsyncGenerator<T> {
  if (res.body == null) return
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += value
    let newline: number
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).trim()
      buffer = buffer.slice(newline + 1)
      if (line !== '') yield JSON.parse(line) as T
    }
  }
  if (buffer.trim() !== '') yield JSON.parse(buffer) as T
}

/**
 * A WebSocket to the API. Browsers cannot set headers on one, so the
 * credential goes as the `api_key` query parameter.
 */
export function socket (path: string): WebSocket {
  const url = new URL(path, location.href)
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
  const t = token()
  if (t != null) url.searchParams.set('api_key', t)
  return new WebSocket(url)
}

/**
 * Uploads a multipart body with XMLHttpRequest, the one browser API that
 * reports upload progress; resolves with the answer's text.
 */
export async function upload (path: string, form: FormData, onProgress: (fraction: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', path)
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value)
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total) }
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.responseText)
      else void failure(new Response(xhr.responseText, { status: xhr.status })).then(reject)
    }
    xhr.onerror = () => { reject(new ApiError(0, 'the upload failed: the connection was lost')) }
    xhr.send(form)
  })
}

/** Fetches a file with the credential and hands it to the browser as a download. */
export async function download (path: string, filename: string): Promise<void> {
  const blob = await (await call(path)).blob()
  const a = document.createElement('a')
  a.href = URL.createObjectURL(blob)
  a.download = filename
  a.click()
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
}

export const short = (id: string | null | undefined, n = 8): string => id == null ? '' : id.length > 2 * n ? `${id.slice(0, n)}…${id.slice(-n)}` : id

export function bytes (n: number | null | undefined): string {
  if (n == null) return '–'
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++ }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

export const percent = (x: number | null | undefined): string => x == null ? '–' : `${Math.round(x * 100)}%`
