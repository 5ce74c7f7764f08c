import type { GcResult } from './gc.ts'
import type { AbortOptions } from '@libp2p/interface'

export interface AutoGcComponents {
  /** Bytes the blocks take now. */
  usage: () => Promise<number>
  gc: (options: AbortOptions) => AsyncIterable<GcResult>
  log: {
    info: (fields: object, message: string) => void
    warn: (fields: object, message: string) => void
  }
}

export interface AutoGcInit {
  /** Kubo's Datastore.StorageMax, in bytes. */
  storageMax: number
  /** Kubo's Datastore.StorageGCWatermark: the percentage of storageMax past which a GC runs. */
  watermark: number
  /** Kubo's Datastore.GCPeriod: how often usage is looked at. */
  periodMs: number
}

/**
 * Kubo's periodic GC (`ipfs daemon --enable-gc`): every period, when the
 * blocks take more than the watermark of the storage maximum, a GC runs.
 */
export class AutoGc {
  readonly #c: AutoGcComponents
  readonly #init: AutoGcInit
  #timer?: ReturnType<typeof setTimeout>
  #controller = new AbortController()
  #running?: Promise<void>

  constructor (components: AutoGcComponents, init: AutoGcInit) {
    this.#c = components
    this.#init = init
  }

  get threshold (): number {
    return Math.floor(this.#init.storageMax * this.#init.watermark / 100)
  }

  start (): void {
    if (this.#timer != null) return
    this.#controller = new AbortController()
    this.#schedule()
  }

  async stop (): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#controller.abort(new Error('the node is stopping'))
    await this.#running
  }

  #schedule (): void {
    this.#timer = setTimeout(() => {
      this.#running = this.#check().catch((err) => {
        if (!this.#controller.signal.aborted) this.#c.log.warn({ err }, 'automatic GC failed')
      }).finally(() => {
        this.#running = undefined
        if (!this.#controller.signal.aborted) this.#schedule()
      })
    }, this.#init.periodMs)
  }

  /** Runs a GC if the blocks are past the watermark. */
  async #check (): Promise<void> {
    const before = await this.#c.usage()
    if (before <= this.threshold) return
    let removed = 0
    for await (const result of this.#c.gc({ signal: this.#controller.signal })) if ('cid' in result) removed++
    const after = await this.#c.usage()
    this.#c.log.info({ removed, before, after, threshold: this.threshold }, 'automatic GC ran: the blocks were past the watermark')
    if (after > this.threshold) {
      this.#c.log.warn({ usage: after, threshold: this.threshold }, 'the blocks are still past the GC watermark: what is pinned takes that much; raise content.storage_max')
    }
  }
}
