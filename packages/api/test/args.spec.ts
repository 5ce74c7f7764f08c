import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { duration, flag } from '../src/args.ts'

describe('Kubo option parsing', () => {
  it('reads booleans as Kubo sends them', () => {
    assert.equal(flag(undefined, true), true)
    assert.equal(flag('', false), true)
    assert.equal(flag('false', true), false)
    assert.equal(flag('1', false), true)
    assert.throws(() => flag('maybe', true), { name: 'BadRequestError' })
  })

  it('reads Go durations in milliseconds', () => {
    assert.equal(duration('24h', 'lifetime'), 86_400_000)
    assert.equal(duration('1h30m', 'lifetime'), 5_400_000)
    assert.equal(duration('1.5s', 'ttl'), 1500)
    assert.equal(duration('250ms', 'timeout'), 250)
    assert.equal(duration(undefined, 'ttl'), undefined)
    assert.throws(() => duration('soon', 'timeout'), { name: 'BadRequestError', message: /timeout/ })
    assert.throws(() => duration('10', 'timeout'), { name: 'BadRequestError' })
  })
})
