import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { defined, keepAliveMs, requireNeutral } from '../src/inference.ts'

describe('keep_alive', () => {
  it("takes Ollama's duration strings", () => {
    assert.equal(keepAliveMs('5m'), 300_000)
    assert.equal(keepAliveMs('1h30m'), 5_400_000)
    assert.equal(keepAliveMs('1.5h'), 5_400_000)
    assert.equal(keepAliveMs('300ms'), 300)
    assert.equal(keepAliveMs('0'), 0)
    assert.equal(keepAliveMs('0s'), 0)
  })

  it('takes numbers, and bare numbers in strings, as seconds', () => {
    assert.equal(keepAliveMs(30), 30_000)
    assert.equal(keepAliveMs(0), 0)
    assert.equal(keepAliveMs(2.5), 2_500)
    assert.equal(keepAliveMs('120'), 120_000)
  })

  it('keeps the model loaded for any negative value', () => {
    assert.equal(keepAliveMs(-1), -1)
    assert.equal(keepAliveMs(-300), -1)
    assert.equal(keepAliveMs('-1m'), -1)
    assert.equal(keepAliveMs('-1'), -1)
  })

  it('leaves an unset keep_alive to the node', () => {
    assert.equal(keepAliveMs(undefined), undefined)
  })

  it('refuses what is not a duration', () => {
    for (const bad of ['soon', '5 minutes', '', '-', '1d']) {
      assert.throws(() => keepAliveMs(bad), { name: 'BadRequestError' }, bad)
    }
  })
})

describe('neutral fields', () => {
  it('takes unset, empty and neutral values, and refuses others naming the field', () => {
    requireNeutral({ n: 1, tools: [], logit_bias: {}, format: '', response_format: { type: 'text' } }, { n: 1, tools: [], logit_bias: {}, format: '', response_format: { type: 'text' }, seed: null })
    assert.throws(() => { requireNeutral({ n: 2 }, { n: 1 }) }, { name: 'UnsupportedParameterError', param: 'n', message: 'n is not supported except as 1' })
    assert.throws(() => { requireNeutral({ min_p: 0.1 }, { min_p: 0 }, { prefix: 'options.' }) }, { param: 'options.min_p' })
    assert.throws(() => { requireNeutral({ images: ['x'] }, { images: [] }, { reasons: { images: 'no images' } }) }, { message: 'no images' })
  })

  it('drops unset fields', () => {
    assert.deepEqual(defined({ a: 1, b: undefined, c: null }), { a: 1, c: null })
  })
})
