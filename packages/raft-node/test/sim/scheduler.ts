/**
 * Virtual time for the driver simulation. Timers are events in one queue, run
 * in time order; after each one the promise continuations it set off run to
 * the end (one real setImmediate), as they would before Node's next
 * callback. So a run is deterministic for its seed and never sleeps. Every
 * timer belongs to a simulated process: when the process is killed its timers
 * never fire, and whatever it awaited from them never settles, as with kill -9.
 */
import type { Clock } from '../../src/clock.ts'

export class Process {
  readonly name: string
  alive = true

  constructor (name: string) {
    this.name = name
  }
}

interface Timer {
  at: number
  seq: number
  fn: () => void
  owner: Process
  cancelled: boolean
}

/** Events at one virtual instant beyond which the run is taken to spin. */
const MAX_EVENTS_AT_ONE_TIME = 200_000

export class Scheduler {
  now = 0
  private seq = 0
  private readonly heap: Timer[] = []
  private sameTime = 0

  at (time: number, fn: () => void, owner: Process): Timer {
    const t: Timer = { at: Math.max(time, this.now), seq: this.seq++, fn, owner, cancelled: false }
    this.push(t)
    return t
  }

  after (ms: number, fn: () => void, owner: Process): Timer {
    return this.at(this.now + ms, fn, owner)
  }

  /** Resolves after `ms` of virtual time, or never if `owner` is killed first. */
  async sleep (ms: number, owner: Process): Promise<void> {
    await new Promise<void>(resolve => { this.after(ms, resolve, owner) })
  }

  /** The driver's clock component for a process. */
  clockFor (owner: Process): Clock {
    return {
      now: () => this.now,
      setTimeout: (callback, ms) => this.after(ms, callback, owner),
      clearTimeout: (timer) => { (timer as Timer).cancelled = true },
      setImmediate: (callback) => { this.at(this.now, callback, owner) }
    }
  }

  /** Runs events until `p` settles, for tests that drive one component in virtual time. */
  async settle<T> (p: Promise<T>): Promise<T> {
    let settled = false
    const done = p.finally(() => { settled = true })
    done.catch(() => {})
    await drain()
    await this.run(Infinity, () => settled)
    if (!settled) throw new Error('nothing left to run, and the promise is still pending')
    return await done
  }

  /** Runs events up to virtual time `until`, or until `stop` says so. */
  async run (until: number, stop: () => boolean): Promise<void> {
    while (this.heap.length > 0 && this.heap[0].at <= until && !stop()) {
      const t = this.pop()
      if (t.cancelled || !t.owner.alive) continue
      if (t.at === this.now) {
        if (++this.sameTime > MAX_EVENTS_AT_ONE_TIME) throw new Error(`more than ${MAX_EVENTS_AT_ONE_TIME} events at time ${this.now}: a loop that never yields`)
      } else {
        this.sameTime = 0
      }
      this.now = t.at
      t.fn()
      await drain()
    }
    if (!stop() && until !== Infinity) this.now = Math.max(this.now, until)
  }

  private push (t: Timer): void {
    const h = this.heap
    h.push(t)
    let i = h.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(h[i], h[parent])) break
      ;[h[i], h[parent]] = [h[parent], h[i]]
      i = parent
    }
  }

  private pop (): Timer {
    const h = this.heap
    const top = h[0]
    const last = h.pop() as Timer
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l], h[m])) m = l
        if (r < h.length && before(h[r], h[m])) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m], h[i]]
        i = m
      }
    }
    return top
  }
}

/** Lets every promise continuation already due run. */
async function drain (): Promise<void> {
  await new Promise(resolve => { setImmediate(resolve) })
}

function before (a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}
