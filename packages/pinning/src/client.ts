/**
 * A client of the IPFS Pinning Service API, the calls Kubo's pin/remote
 * makes: POST/GET /pins and GET/DELETE /pins/{requestid} with a bearer token. Answers are checked
 * against the spec's shapes, so that a service that answers something else
 * fails here with a clear error instead of further on.
 */
import { posix } from 'node:path'
import { InvalidRemotePinningError, RemotePinningFailedError, RemotePinningRefusedError } from './errors.ts'

export const PIN_STATUSES = ['queued', 'pinning', 'pinned', 'failed'] as const
export type RemoteStatus = typeof PIN_STATUSES[number]

/** The spec's Pin object. */
export interface Pin {
  cid: string
  name?: string
  origins?: string[]
  meta?: Record<string, string>
}

/** The spec's PinStatus object. */
export interface PinStatus {
  requestid: string
  status: RemoteStatus
  created: string
  pin: Pin
  delegates: string[]
  info?: Record<string, string>
}

export interface PinResults {
  count: number
  results: PinStatus[]
}

/** GET /pins's filters, as the spec names them. */
export interface PinQuery {
  cid?: string[]
  name?: string
  match?: 'exact' | 'iexact' | 'partial' | 'ipartial'
  status?: RemoteStatus[]
  before?: string
  after?: string
  limit?: number
  meta?: Record<string, string>
}

/**
 * An endpoint as Kubo keeps it: an http(s) URL without a query, duplicate or
 * trailing slashes, nor the /pins that the client adds.
 */
export function normalizeEndpoint (endpoint: string): string {
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    throw new InvalidRemotePinningError('service endpoint must be a valid HTTP URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidRemotePinningError('service endpoint must be a valid HTTP URL')
  if (url.search !== '') throw new InvalidRemotePinningError('service endpoint should be provided without any query parameters')
  url.pathname = posix.normalize(url.pathname).replace(/\/\.?$/, '')
  if (url.pathname.endsWith('/pins')) throw new InvalidRemotePinningError('service endpoint should be provided without the /pins suffix')
  url.hash = ''
  return url.toString().replace(/\/$/, '')
}

/** An answer's body, or undefined when it is not JSON. */
async function jsonOf (res: Response): Promise<unknown> {
  const text = await res.text()
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const isStringMap = (value: unknown): value is Record<string, string> => isObject(value) && Object.values(value).every(v => typeof v === 'string')
const isStrings = (value: unknown): value is string[] => Array.isArray(value) && value.every(v => typeof v === 'string')

function checkStatus (value: unknown, endpoint: string): PinStatus {
  const v = value as Partial<PinStatus> | undefined
  const pin = v?.pin
  const ok = isObject(v) && typeof v.requestid === 'string' && (PIN_STATUSES as readonly unknown[]).includes(v.status) && typeof v.created === 'string' &&
    isObject(pin) && typeof pin.cid === 'string' && (pin.name == null || typeof pin.name === 'string') && (pin.origins == null || isStrings(pin.origins)) &&
    (pin.meta == null || isStringMap(pin.meta)) && isStrings(v.delegates) && (v.info == null || isStringMap(v.info))
  if (!ok) throw new RemotePinningFailedError(`${endpoint} answered with something that is not a PinStatus`)
  return v as PinStatus
}

export interface ClientInit {
  /** The endpoint, normalized (normalizeEndpoint). */
  endpoint: string
  key: string
}

export class PinningServiceClient {
  readonly #endpoint: string
  readonly #key: string

  constructor (init: ClientInit) {
    this.#endpoint = init.endpoint
    this.#key = init.key
  }

  async add (pin: Pin, options: { signal?: AbortSignal } = {}): Promise<PinStatus> {
    return checkStatus(await this.#request('POST', '/pins', pin, options.signal), this.#endpoint)
  }

  async get (requestid: string, options: { signal?: AbortSignal } = {}): Promise<PinStatus> {
    return checkStatus(await this.#request('GET', `/pins/${encodeURIComponent(requestid)}`, undefined, options.signal), this.#endpoint)
  }

  async remove (requestid: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.#request('DELETE', `/pins/${encodeURIComponent(requestid)}`, undefined, options.signal)
  }

  /** One page of GET /pins. */
  async list (query: PinQuery = {}, options: { signal?: AbortSignal } = {}): Promise<PinResults> {
    const params = new URLSearchParams()
    // The spec's arrays go comma-separated (style form, explode false).
    if (query.cid != null && query.cid.length > 0) params.set('cid', query.cid.join(','))
    if (query.name != null) params.set('name', query.name)
    if (query.match != null) params.set('match', query.match)
    if (query.status != null && query.status.length > 0) params.set('status', query.status.join(','))
    if (query.before != null) params.set('before', query.before)
    if (query.after != null) params.set('after', query.after)
    if (query.limit != null) params.set('limit', String(query.limit))
    if (query.meta != null) params.set('meta', JSON.stringify(query.meta))
    const search = params.size > 0 ? `?${params.toString()}` : ''
    const body = await this.#request('GET', `/pins${search}`, undefined, options.signal)
    if (!isObject(body) || !Number.isSafeInteger(body.count) || !Array.isArray(body.results)) {
      throw new RemotePinningFailedError(`${this.#endpoint} answered with something that is not a PinResults`)
    }
    return { count: body.count as number, results: body.results.map(r => checkStatus(r, this.#endpoint)) }
  }

  async #request (method: string, path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    let res: Response
    try {
      res = await fetch(`${this.#endpoint}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.#key}`, accept: 'application/json', ...(body == null ? {} : { 'content-type': 'application/json' }) },
        body: body == null ? undefined : JSON.stringify(body),
        signal
      })
    } catch (err: any) {
      if (signal?.aborted === true) throw signal.reason ?? err
      throw new RemotePinningFailedError(`${this.#endpoint} could not be reached: ${err.cause?.code ?? err.message}`)
    }
    const answer = await jsonOf(res)
    if (res.ok) return answer
    // The spec's Failure: {"error": {"reason", "details"}}.
    const error = isObject(answer) && isObject(answer.error) ? answer.error : {}
    const reason = typeof error.reason === 'string' ? error.reason : `HTTP ${res.status}`
    const details = typeof error.details === 'string' && error.details !== '' ? `: ${error.details}` : ''
    const message = `${method} ${this.#endpoint}${path.split('?')[0]}: ${reason}${details}`
    if (res.status >= 400 && res.status < 500) throw new RemotePinningRefusedError(message)
    throw new RemotePinningFailedError(message)
  }
}
