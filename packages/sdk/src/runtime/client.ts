/**
 * A typed client over fetch for a node-daemon API, copied as it is into the
 * TypeScript SDK that `node-daemon sdk` generates: `Paths` is the `paths`
 * type openapi-typescript writes from the daemon's OpenAPI document, so a
 * call's path, query, path parameters and JSON body are checked against the
 * route's schemas, and a JSON answer the document describes is typed.
 */

export type HttpMethod = 'get' | 'post' | 'put' | 'delete' | 'patch'

/** The operation of `Paths[P]` for `M`, or never when the path has no such method. */
export type OperationOf<Paths, P extends keyof Paths, M extends HttpMethod> = Paths[P] extends { [K in M]: infer O } ? O : never

/** The paths that take `M`. */
export type PathsWith<Paths, M extends HttpMethod> = { [P in keyof Paths]: [OperationOf<Paths, P, M>] extends [never] ? never : P }[keyof Paths]

type ParametersOf<O> = O extends { parameters: infer P } ? P : never
type QueryOf<O> = ParametersOf<O> extends { query?: infer Q } ? Q : never
type PathParametersOf<O> = ParametersOf<O> extends { path?: infer Q } ? Q : never
type JsonBodyOf<O> = O extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never

/** The JSON a 200 of the operation gives, when the document describes it. */
export type AnswerOf<O> = O extends { responses: { 200: { content: { 'application/json': infer A } } } } ? A : unknown

type Present<T, F> = [T] extends [never] ? {} : [T] extends [undefined] ? {} : F

/** What a call of the operation `O` takes: only the fields the route has, with path parameters required. */
export type RequestOptions<O> = Present<QueryOf<O>, { query?: QueryOf<O> }> &
  Present<PathParametersOf<O>, { path: PathParametersOf<O> }> &
  Present<JsonBodyOf<O>, { body?: JsonBodyOf<O> }> & {
    /** A body the document does not describe as JSON: a multipart form (add, ai/model/add), bytes. */
    raw?: BodyInit
    headers?: Record<string, string>
    signal?: AbortSignal
  }

/** Optional when the operation needs nothing. */
type OptionsArg<O> = {} extends RequestOptions<O> ? [options?: RequestOptions<O>] : [options: RequestOptions<O>]

export interface ClientInit {
  /** The daemon's API, e.g. http://127.0.0.1:8000. */
  baseUrl: string
  /** An API key or a login token, sent as Authorization: Bearer. */
  token?: string
  /** The fetch to use; the global one by default. */
  fetch?: typeof fetch
}

/** An answer with a status other than 2xx: `body` is the API's error envelope (or its text). */
export class ApiError extends Error {
  static name = 'ApiError'
  name = 'ApiError'
  readonly status: number
  readonly body: unknown

  constructor (status: number, body: unknown) {
    const message = typeof body === 'object' && body != null ? (body as { error?: unknown, message?: unknown, Message?: unknown }) : {}
    super(String(message.error ?? message.Message ?? message.message ?? `HTTP ${status}`))
    this.status = status
    this.body = body
  }
}

export interface Client<Paths> {
  /** The raw response of a call, for the routes that stream (cat, get, pulls): a status other than 2xx throws ApiError. */
  fetch: <M extends HttpMethod, P extends PathsWith<Paths, M> & string>(method: M, path: P, ...options: OptionsArg<OperationOf<Paths, P, M>>) => Promise<Response>
  /** A call answered in JSON; an answer of several JSON lines (Kubo's add, pulls) is the array of them. */
  get: <P extends PathsWith<Paths, 'get'> & string>(path: P, ...options: OptionsArg<OperationOf<Paths, P, 'get'>>) => Promise<AnswerOf<OperationOf<Paths, P, 'get'>>>
  post: <P extends PathsWith<Paths, 'post'> & string>(path: P, ...options: OptionsArg<OperationOf<Paths, P, 'post'>>) => Promise<AnswerOf<OperationOf<Paths, P, 'post'>>>
  put: <P extends PathsWith<Paths, 'put'> & string>(path: P, ...options: OptionsArg<OperationOf<Paths, P, 'put'>>) => Promise<AnswerOf<OperationOf<Paths, P, 'put'>>>
  delete: <P extends PathsWith<Paths, 'delete'> & string>(path: P, ...options: OptionsArg<OperationOf<Paths, P, 'delete'>>) => Promise<AnswerOf<OperationOf<Paths, P, 'delete'>>>
}

interface LooseOptions {
  query?: Record<string, unknown>
  path?: Record<string, unknown>
  body?: unknown
  raw?: BodyInit
  headers?: Record<string, string>
  signal?: AbortSignal
}

/** `path` with its `{name}` parameters filled in; a `{*}` keeps its slashes. */
function fill (path: string, params: Record<string, unknown> = {}): string {
  return path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = params[name]
    if (value == null) throw new TypeError(`the path parameter ${name} of ${path} is missing`)
    return name === '*' ? encodeURI(String(value)) : encodeURIComponent(String(value))
  })
}

/** The body as JSON, or the array of its lines when it is several JSON values, one a line. */
function parse (text: string): unknown {
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text)
  } catch (err) {
    const lines = text.split('\n').filter(line => line.trim() !== '')
    if (lines.length < 2) throw err
    return lines.map(line => JSON.parse(line))
  }
}

export function createClient<Paths> (init: ClientInit): Client<Paths> {
  const base = init.baseUrl.replace(/\/+$/, '')
  const send = async (method: string, path: string, options: LooseOptions = {}): Promise<Response> => {
    const url = new URL(base + fill(path, options.path))
    for (const [name, value] of Object.entries(options.query ?? {})) {
      for (const item of Array.isArray(value) ? value : [value]) if (item != null) url.searchParams.append(name, String(item))
    }
    const headers: Record<string, string> = { ...options.headers }
    if (init.token != null) headers.authorization = `Bearer ${init.token}`
    let body = options.raw
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(options.body)
    }
    const response = await (init.fetch ?? fetch)(url, { method: method.toUpperCase(), headers, body, signal: options.signal })
    if (!response.ok) {
      const text = await response.text()
      let parsed: unknown = text
      try {
        parsed = JSON.parse(text)
      } catch {}
      throw new ApiError(response.status, parsed)
    }
    return response
  }
  const json = (method: HttpMethod) => async (path: string, options?: LooseOptions): Promise<any> => parse(await (await send(method, path, options)).text())
  return {
    fetch: async (method: string, path: string, options?: LooseOptions) => send(method, path, options),
    get: json('get'),
    post: json('post'),
    put: json('put'),
    delete: json('delete')
  } as unknown as Client<Paths>
}
