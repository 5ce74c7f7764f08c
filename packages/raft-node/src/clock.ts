/**
 * Time as the Raft driver sees it: the system's by default, a virtual one in
 * the simulation, which runs a cluster deterministically from a seed and
 * without real sleeps.
 */
export interface Clock {
  /** Milliseconds, as Date.now(). */
  now (): number
  setTimeout (callback: () => void, ms: number): unknown
  clearTimeout (timer: unknown): void
  /** Runs `callback` once the callbacks and promise continuations already due have run, as setImmediate does. */
  setImmediate (callback: () => void): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => { clearTimeout(timer as ReturnType<typeof setTimeout>) },
  setImmediate: (callback) => { setImmediate(callback) }
}
