import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RateLimiter } from '../src/limiter.ts'

const MINUTE = { requests: 3, periodMs: 60_000 }

describe('RateLimiter', () => {
  it('allows a window\'s requests, refuses the next, and starts over when the window ends', () => {
    let now = 1_000_000
    const limiter = new RateLimiter({ now: () => now })
    const counts = [1, 2, 3, 4].map(() => limiter.take('a', MINUTE))
    assert.deepEqual(counts.map(c => c.allowed), [true, true, true, false])
    assert.deepEqual(counts.map(c => c.remaining), [2, 1, 0, 0])
    assert.ok(counts.every(c => c.resetAt === 1_060_000 && c.limit === 3))
    assert.equal(limiter.take('b', MINUTE).allowed, true, 'another key has its own window')
    now += 60_000
    const next = limiter.take('a', MINUTE)
    assert.equal(next.allowed, true)
    assert.equal(next.resetAt, 1_120_000)
  })

  it('forgets ended windows, and past maxKeys the oldest one', () => {
    let now = 0
    const limiter = new RateLimiter({ now: () => now, maxKeys: 4 })
    for (let i = 0; i < 4; i++) limiter.take(`k${i}`, MINUTE)
    for (let i = 0; i < 3; i++) limiter.take('k0', MINUTE)
    assert.equal(limiter.take('k0', MINUTE).allowed, false)
    limiter.take('k4', MINUTE)
    assert.equal(limiter.size, 4)
    assert.equal(limiter.take('k0', MINUTE).allowed, true, 'the oldest window was forgotten for the new key')
    now += 61_000
    limiter.take('fresh', MINUTE)
    assert.equal(limiter.size, 1, 'the sweep dropped every ended window')
  })
})
