/**
 * Fixed-window request counters, one per bucket key. Counting is a Map
 * lookup and an increment, cheap enough for every request of a route that
 * itself costs microseconds; memory is bounded by sweeping ended windows and,
 * past `maxKeys` (many addresses at once), by forgetting the oldest window.
 */
import type { Limit } from './config.ts'

export interface Count {
  allowed: boolean
  limit: number
  remaining: number
  /** When the window ends, in ms since the epoch. */
  resetAt: number
}

export interface RateLimiterInit {
  /** 100 000 by default: a few MB of counters. */
  maxKeys?: number
  now?: () => number
}

const SWEEP_MS = 10_000

interface Window { count: number, resetAt: number }

export class RateLimiter {
  readonly #windows = new Map<string, Window>()
  readonly #maxKeys: number
  readonly #now: () => number
  #nextSweep = 0

  constructor (init: RateLimiterInit = {}) {
    this.#maxKeys = init.maxKeys ?? 100_000
    this.#now = init.now ?? Date.now
  }

  /** Counts one request against `key`; `allowed` is false once the window's limit is passed. */
  take (key: string, limit: Limit): Count {
    const now = this.#now()
    if (now >= this.#nextSweep) this.#sweep(now)
    let window = this.#windows.get(key)
    if (window == null || window.resetAt <= now) {
      // Re-inserted, so that the Map's order is the order windows began in and the first is the oldest.
      this.#windows.delete(key)
      if (this.#windows.size >= this.#maxKeys) this.#windows.delete(this.#windows.keys().next().value as string)
      window = { count: 0, resetAt: now + limit.periodMs }
      this.#windows.set(key, window)
    }
    window.count++
    return { allowed: window.count <= limit.requests, limit: limit.requests, remaining: Math.max(0, limit.requests - window.count), resetAt: window.resetAt }
  }

  /** How many keys have a window open: for tests and metrics. */
  get size (): number {
    return this.#windows.size
  }

  #sweep (now: number): void {
    for (const [key, window] of this.#windows) {
      if (window.resetAt <= now) this.#windows.delete(key)
    }
    this.#nextSweep = now + SWEEP_MS
  }
}
