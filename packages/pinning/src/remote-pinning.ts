/**
 * Kubo's `pin remote service add|ls|rm` and `pin remote add|ls|rm`: the
 * remote services live in the node's settings (saved by the daemon), and
 * each command is a few calls of the Pinning Service API, made as Kubo makes
 * them: `add` offers this node as an origin when it holds the content, dials
 * the delegates, and waits for `pinned` unless told to return at once.
 */
import { normalizeEndpoint, PIN_STATUSES, PinningServiceClient } from './client.ts'
import { InvalidRemotePinningError, RemotePinFailedError, RemoteServiceExistsError, RemoteServiceNotFoundError } from './errors.ts'
import type { PinQuery, PinStatus, RemoteStatus } from './client.ts'

export interface RemoteService {
  endpoint: string
  key: string
}

export interface RemotePinningComponents {
  /** The services in the settings when the node started. */
  services: Record<string, RemoteService>
  /** Writes the services to the settings, so that they outlive the daemon. */
  save: (services: Record<string, RemoteService>) => Promise<void>
  /** The CID a path names (an /ipfs/ or /ipns/ path, or a CID). */
  resolve: (path: string, options: { signal?: AbortSignal }) => Promise<string>
  /** Whether this node holds the root block, and so can be offered as an origin. */
  has: (cid: string, options: { signal?: AbortSignal }) => Promise<boolean>
  /** This node's swarm multiaddrs, each ending in /p2p/<its id>. */
  addrs: () => string[]
  connect: (addr: string, options: { signal?: AbortSignal }) => Promise<unknown>
  log: { info: (fields: object, message: string) => void }
}

export interface RemotePinningInit {
  /** How often `add` asks for the status while it waits for `pinned`; Kubo's 500 ms. */
  pollMs?: number
}

/** Kubo's ServiceDetails, without the key. */
export interface ServiceDetails {
  Service: string
  ApiEndpoint: string
  Stat?: { Status: 'valid' | 'invalid', PinCount?: { Queued: number, Pinning: number, Pinned: number, Failed: number } }
}

/** Kubo's RemotePinOutput. */
export interface RemotePin {
  Status: RemoteStatus
  Cid: string
  Name: string
}

export interface RemotePinAddOptions {
  service: string
  name?: string
  /** Return once the service has the request, without waiting for `pinned`. */
  background?: boolean
  /** Origins besides this node's own addresses (kubo-rpc-client sends them). */
  origins?: string[]
  signal?: AbortSignal
}

export interface RemotePinQuery {
  service: string
  name?: string
  cid?: string[]
  /** Default `pinned`, as Kubo's. */
  status?: RemoteStatus[]
  signal?: AbortSignal
}

/** Pins asked for in each page of a listing: the most the spec lets a service return. */
const PAGE = 1000
/** Kubo's bound on pin names. */
const MAX_NAME_BYTES = 255

const output = (status: PinStatus): RemotePin => ({ Status: status.status, Cid: status.pin.cid, Name: status.pin.name ?? '' })

function checkName (name: string | undefined): void {
  if (name != null && Buffer.byteLength(name) > MAX_NAME_BYTES) throw new InvalidRemotePinningError(`pin name is ${Buffer.byteLength(name)} bytes; at most ${MAX_NAME_BYTES} are allowed`)
}

function abortable (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason)
      return
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export class RemotePinning {
  readonly #c: RemotePinningComponents
  readonly #pollMs: number
  #services: Map<string, RemoteService>
  /** Changes of the services one after another, so that two adds cannot both save over each other. */
  #saving: Promise<unknown> = Promise.resolve()

  constructor (components: RemotePinningComponents, init: RemotePinningInit = {}) {
    this.#c = components
    this.#pollMs = init.pollMs ?? 500
    this.#services = new Map(Object.entries(components.services))
  }

  /** The services by name, with their pin counts when `stat` (an unreachable service is `invalid`, as Kubo says). */
  async services (options: { stat?: boolean, signal?: AbortSignal } = {}): Promise<ServiceDetails[]> {
    const names = [...this.#services.keys()].sort()
    return Promise.all(names.map(async (name) => {
      const service = this.#services.get(name) as RemoteService
      const details: ServiceDetails = { Service: name, ApiEndpoint: service.endpoint }
      if (options.stat !== true) return details
      try {
        const client = this.#client(name)
        const counts = await Promise.all(PIN_STATUSES.map(async status => (await client.list({ status: [status], limit: 1 }, options)).count))
        return { ...details, Stat: { Status: 'valid', PinCount: { Queued: counts[0], Pinning: counts[1], Pinned: counts[2], Failed: counts[3] } } }
      } catch (err: any) {
        if (options.signal?.aborted === true) throw err
        return { ...details, Stat: { Status: 'invalid' } }
      }
    }))
  }

  async addService (name: string, endpoint: string, key: string): Promise<void> {
    if (name.trim() === '' || /[\p{Cc}]/u.test(name)) throw new InvalidRemotePinningError('service name must be a non-empty name without control characters')
    if (key === '') throw new InvalidRemotePinningError('service key must not be empty')
    const service = { endpoint: normalizeEndpoint(endpoint), key }
    await this.#change(services => {
      if (services.has(name)) throw new RemoteServiceExistsError('service already present')
      services.set(name, service)
    })
  }

  /** Removes a service; one that is not there is no error, as in Kubo. */
  async removeService (name: string): Promise<void> {
    if (!this.#services.has(name)) return
    await this.#change(services => { services.delete(name) })
  }

  /** Pins `path` on the service; waits until it is pinned unless `background`. */
  async add (path: string, options: RemotePinAddOptions): Promise<RemotePin> {
    const client = this.#client(options.service)
    checkName(options.name)
    const { signal } = options
    const cid = await this.#c.resolve(path, { signal })
    // Kubo offers its own addresses when it holds the content, so that the service can fetch from it.
    const own = await this.#c.has(cid, { signal }) ? this.#c.addrs() : []
    const origins = [...new Set([...own, ...options.origins ?? []])]
    let status = await client.add({ cid, ...(options.name == null ? {} : { name: options.name }), ...(origins.length > 0 ? { origins } : {}) }, { signal })
    // Delegates are where the service fetches from: dialling them starts the transfer without waiting on routing.
    await Promise.all(status.delegates.map(async (addr) => {
      await this.#c.connect(addr, { signal }).catch((err: Error) => {
        this.#c.log.info({ delegate: addr, err: err.message }, 'connecting to a remote pin delegate failed')
      })
    }))
    const requestid = status.requestid
    while (options.background !== true && status.status !== 'pinned') {
      if (status.status === 'failed') throw new RemotePinFailedError(`remote service failed to pin requestid=${JSON.stringify(requestid)}${status.info?.status_details == null ? '' : `: ${status.info.status_details}`}`)
      await abortable(this.#pollMs, signal)
      status = await client.get(requestid, { signal })
      if (status.requestid !== requestid) throw new RemotePinFailedError(`failed to check pin status for requestid=${JSON.stringify(requestid)}, remote service sent unexpected requestid=${JSON.stringify(status.requestid)}`)
    }
    return output(status)
  }

  /** The service's pins that match, page after page. */
  async * ls (query: RemotePinQuery): AsyncGenerator<RemotePin> {
    for await (const status of this.#statuses(query)) yield output(status)
  }

  /** Removes the matching pins; more than one only with `force`, as Kubo. */
  async rm (query: RemotePinQuery & { force?: boolean }): Promise<void> {
    const client = this.#client(query.service)
    const ids: string[] = []
    for await (const status of this.#statuses(query)) ids.push(status.requestid)
    if (ids.length > 1 && query.force !== true) throw new InvalidRemotePinningError('multiple remote pins are matching this query, add --force to confirm the bulk removal')
    for (const id of ids) await client.remove(id, { signal: query.signal })
  }

  async * #statuses (query: RemotePinQuery): AsyncGenerator<PinStatus> {
    const client = this.#client(query.service)
    checkName(query.name)
    const filter: PinQuery = { name: query.name, cid: query.cid, status: query.status ?? ['pinned'], limit: PAGE }
    let before: string | undefined
    // Each page is older than the last one's oldest pin, so the walk ends even when the service keeps adding pins.
    for (;;) {
      const page = await client.list({ ...filter, before }, { signal: query.signal })
      for (const status of page.results) yield status
      const oldest = page.results.at(-1)?.created
      // A page that holds every pin left (whether the service counts before's or all) is the last.
      if (oldest == null || page.results.length >= page.count || oldest === before) return
      before = oldest
    }
  }

  #client (name: string): PinningServiceClient {
    if (name === '') throw new InvalidRemotePinningError('remote pinning service name not specified')
    const service = this.#services.get(name)
    if (service == null) throw new RemoteServiceNotFoundError('service not known')
    return new PinningServiceClient(service)
  }

  async #change (edit: (services: Map<string, RemoteService>) => void): Promise<void> {
    const run = this.#saving.then(async () => {
      const next = new Map(this.#services)
      edit(next)
      await this.#c.save(Object.fromEntries(next))
      this.#services = next
    })
    this.#saving = run.catch(() => {})
    await run
  }
}
