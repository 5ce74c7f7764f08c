/**
 * mulberry32: a tiny seeded PRNG. The simulator draws every choice from one
 * of these so that a seed replays the exact same run.
 */
export class Rng {
  private state: number

  constructor (seed: number) {
    this.state = seed >>> 0
  }

  /** A float in [0, 1). */
  next (): number {
    this.state = (this.state + 0x6D2B79F5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer in [lo, hi]. */
  int (lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }

  chance (p: number): boolean {
    return this.next() < p
  }

  pick<T> (xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list')
    return xs[Math.floor(this.next() * xs.length)]
  }

  /** An independent generator, so that adding draws in one part of the run does not shift another. */
  fork (salt: number): Rng {
    return new Rng((Math.imul(this.int(0, 0xFFFFFFFF), 0x9E3779B1) ^ salt) >>> 0)
  }
}
