/**
 * Makes this node hold what the cluster state allocates to it: pins what is
 * allocated (fetching the blocks from the other nodes), unpins what is no
 * longer allocated, retries failures with backoff, and keeps each pin's
 * local status. Only pins the tracker made are ever removed: the user's own
 * `pin/add`s are left alone.
 */
import { Key } from 'interface-datastore'
import type { PeerPinStatus, PinStatus } from './interface.ts'
import type { PinRecord } from './types.ts'
import type { Logger } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'

export interface PinTrackerComponents {
  content: {
    /** `notes` go into `datastore` with the pin, in the batch that writes it (or on their own when it exists already). */
    pinAdd (path: string, recursive?: boolean, options?: { signal?: AbortSignal, onBlock?: (bytes: number) => void, notes?: Array<{ key: Key, value: Uint8Array }> }): Promise<unknown>
    pinRm (path: string, recursive?: boolean, options?: { signal?: AbortSignal }): Promise<unknown>
  }
  datastore: Pick<Datastore, 'delete' | 'query'>
  /** Connects to a pin's origin (a multiaddr with /p2p/), so that the fetch finds the blocks there. */
  dial: (addr: string, signal: AbortSignal) => Promise<unknown>
  log: Logger
}

export interface PinTrackerInit {
  /** The pins the state allocates to this node now. */
  allocated: () => Iterable<PinRecord>
  /** The pin, if the state allocates it to this node now. */
  allocation: (cid: string) => PinRecord | undefined
  /** Pins fetched at once. Default 8. */
  concurrency?: number
  /** First retry delay; doubles up to maxBackoffMs. Default 1 s. */
  backoffMs?: number
  maxBackoffMs?: number
  /** A pin not done in this long is aborted and retried (its fetched blocks stay). Default 5 min. */
  pinTimeoutMs?: number
}

interface Tracked {
  status: PinStatus
  attempts: number
  error?: string
  updatedAt: number
  retryAt: number
  abort?: AbortController
  /** Bytes of the DAG taken so far by the current attempt, and when it began: a transfer's progress and rate. */
  bytes: number
  startedAt?: number
  /** The pin's origins, dialled before each attempt. */
  origins: string[]
}

const OWNED = '/cluster/pinned'

export class PinTracker {
  private readonly components: PinTrackerComponents
  private readonly init: Required<PinTrackerInit>
  private readonly tracked = new Map<string, Tracked>()
  /** CIDs this node pinned for the cluster, as stored in the datastore. */
  private readonly owned = new Set<string>()
  private readonly unpinning = new Set<string>()
  /** Tracked pins waiting for an attempt: queued, or failed and waiting out their backoff. */
  private readonly waiting = new Set<string>()
  /** Pins whose allocations changed since the last pass; `all` when any may have. */
  private changes: Set<string> | 'all' = 'all'
  private running = false
  private timer?: ReturnType<typeof setTimeout>
  private syncing = false
  private again = false
  private active = 0

  constructor (components: PinTrackerComponents, init: PinTrackerInit) {
    this.components = components
    this.init = { concurrency: 8, backoffMs: 1000, maxBackoffMs: 60_000, pinTimeoutMs: 300_000, ...init }
  }

  async start (): Promise<void> {
    if (this.running) return
    for await (const key of this.components.datastore.query({ prefix: OWNED })) {
      this.owned.add(key.key.baseNamespace())
    }
    this.running = true
    this.changes = 'all'
    this.sync()
  }

  async stop (): Promise<void> {
    this.running = false
    clearTimeout(this.timer)
    for (const t of this.tracked.values()) t.abort?.abort(new Error('the pin tracker stopped'))
  }

  /**
   * Looks again at the allocations of `cid`, or of every pin; cheap to call
   * often (calls made before a pass coalesce into it). A pass looks only at
   * what changed, so that a pinset growing one pin at a time costs each
   * pin once, not once per pin after it.
   */
  changed (cid?: string): void {
    if (!this.running) return
    if (cid == null) this.changes = 'all'
    else if (this.changes !== 'all') this.changes.add(cid)
    this.sync()
  }

  /** Starts what waits, if it may start now. */
  private sync (): void {
    if (!this.running) return
    if (this.syncing) {
      this.again = true
      return
    }
    this.syncing = true
    queueMicrotask(() => {
      try {
        this.pass()
      } finally {
        this.syncing = false
        if (this.again) {
          this.again = false
          this.sync()
        }
      }
    })
  }

  /** This node's status of every allocated pin. */
  status (cid: string): PeerPinStatus | undefined {
    const t = this.tracked.get(cid)
    if (t == null) return undefined
    return { peer: '', status: t.status, error: t.error, attempts: t.attempts, updatedAt: new Date(t.updatedAt).toISOString(), bytes: t.bytes, ...(t.startedAt == null ? {} : { startedAt: new Date(t.startedAt).toISOString() }) }
  }

  /** Allocated pins not pinned yet: the node's pin queue. */
  queueLength (): number {
    let n = 0
    for (const t of this.tracked.values()) if (t.status !== 'pinned') n++
    return n
  }

  private pass (): void {
    const now = Date.now()
    const changes = this.changes
    this.changes = new Set()
    if (changes === 'all') this.resync(now)
    else for (const cid of changes) this.update(cid, this.init.allocation(cid), now)
    let next = Infinity
    for (const cid of this.waiting) {
      if (this.active >= this.init.concurrency) break
      const t = this.tracked.get(cid) as Tracked
      if (t.retryAt > now) {
        next = Math.min(next, t.retryAt)
        continue
      }
      this.waiting.delete(cid)
      void this.pin(cid, t)
    }
    clearTimeout(this.timer)
    if (next !== Infinity && this.running) this.timer = setTimeout(() => { this.sync() }, next - now)
  }

  /** Every allocation, after a start or a snapshot: tracks what is allocated, drops and unpins what is not. */
  private resync (now: number): void {
    const allocated = new Set<string>()
    for (const pin of this.init.allocated()) {
      allocated.add(pin.cid)
      this.update(pin.cid, pin, now)
    }
    for (const cid of [...this.tracked.keys(), ...this.owned]) {
      if (!allocated.has(cid)) this.update(cid, undefined, now)
    }
  }

  /** One pin's allocation here: `pin` when the state allocates it to this node. */
  private update (cid: string, pin: PinRecord | undefined, now: number): void {
    const t = this.tracked.get(cid)
    if (pin != null) {
      if (t != null) {
        t.origins = pin.origins ?? []
        return
      }
      this.tracked.set(cid, { status: 'queued', attempts: 0, updatedAt: now, retryAt: 0, bytes: 0, origins: pin.origins ?? [] })
      this.waiting.add(cid)
      return
    }
    if (t != null) {
      t.abort?.abort(new Error('no longer allocated'))
      this.tracked.delete(cid)
      this.waiting.delete(cid)
    }
    if (this.owned.has(cid) && !this.unpinning.has(cid)) void this.unpin(cid)
  }

  private async pin (cid: string, t: Tracked): Promise<void> {
    this.active++
    t.status = 'pinning'
    t.attempts++
    t.updatedAt = Date.now()
    t.startedAt = t.updatedAt
    t.bytes = 0
    const controller = new AbortController()
    t.abort = controller
    const { signal } = controller
    // A timer of its own: AbortSignal.timeout joined by AbortSignal.any cost a node 2-3% of its CPU at a thousand pins a second.
    const timer = setTimeout(() => { controller.abort(new DOMException(`pinning took longer than ${this.init.pinTimeoutMs} ms`, 'TimeoutError')) }, this.init.pinTimeoutMs).unref()
    try {
      await this.dialOrigins(cid, t.origins, signal)
      // The mark of a pin this node made rides in the pin's own batch: a put of its own cost a
      // follower as much LevelDB time as the pin's records.
      const notes = this.owned.has(cid) ? [] : [{ key: new Key(`${OWNED}/${cid}`), value: new Uint8Array(0) }]
      await this.components.content.pinAdd(cid, true, { signal, onBlock: bytes => { t.bytes += bytes }, notes })
      this.owned.add(cid)
      t.status = 'pinned'
      t.error = undefined
    } catch (err: any) {
      t.status = 'error'
      t.error = err.message ?? String(err)
      t.retryAt = Date.now() + Math.min(this.init.maxBackoffMs, this.init.backoffMs * 2 ** (t.attempts - 1))
      // unless it stopped being allocated meanwhile
      if (this.tracked.get(cid) === t) this.waiting.add(cid)
      this.components.log('pinning %s failed (attempt %d) - %e', cid, t.attempts, err)
    } finally {
      clearTimeout(timer)
      t.updatedAt = Date.now()
      t.abort = undefined
      this.active--
      this.sync()
    }
  }

  /**
   * Best effort, as the Pinning Service API asks: an origin that cannot be
   * dialled does not fail the pin, which other providers may still give.
   */
  private async dialOrigins (cid: string, origins: string[], signal: AbortSignal): Promise<void> {
    await Promise.all(origins.map(async (addr) => {
      await this.components.dial(addr, signal).catch((err: Error) => {
        this.components.log('dialling origin %s of %s failed - %e', addr, cid, err)
      })
    }))
  }

  private async unpin (cid: string): Promise<void> {
    this.unpinning.add(cid)
    try {
      await this.components.content.pinRm(cid, true).catch((err: any) => {
        // already gone is what we wanted
        if (err.name !== 'PinError' && err.name !== 'NotFoundError') throw err
      })
      await this.components.datastore.delete(new Key(`${OWNED}/${cid}`))
      this.owned.delete(cid)
    } catch (err: any) {
      this.components.log('unpinning %s failed - %e', cid, err)
      // tried again at the next pass, as every pin's allocation is looked at then
      this.changes = 'all'
    } finally {
      this.unpinning.delete(cid)
    }
  }
}
