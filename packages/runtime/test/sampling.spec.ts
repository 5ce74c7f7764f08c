import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { argmax, createSampler } from '../src/sampling.ts'
import type { SamplingOptions } from '../src/sampling.ts'

const logits = Float32Array.from([1, 3, 2.9, -1, 0.5])
const base: SamplingOptions = { temperature: 1, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 64, seed: 1 }

function histogram (o: SamplingOptions, draws = 2000, history: number[] = []): number[] {
  const sample = createSampler(o)
  const counts = new Array<number>(logits.length).fill(0)
  for (let i = 0; i < draws; i++) counts[sample(logits, history)]++
  return counts
}

describe('sampling', () => {
  it('is greedy at temperature 0, and with top_k 1 or a tiny top_p', () => {
    assert.equal(argmax(logits), 1)
    assert.deepEqual(histogram({ ...base, temperature: 0 }, 50), [0, 50, 0, 0, 0])
    assert.deepEqual(histogram({ ...base, topK: 1 }, 50), [0, 50, 0, 0, 0])
    assert.deepEqual(histogram({ ...base, topP: 0.01 }, 50), [0, 50, 0, 0, 0])
  })

  it('draws in proportion to the softmax, only among the top k', () => {
    const counts = histogram(base)
    const p = Array.from(logits, l => Math.exp(l))
    const total = p.reduce((a, b) => a + b)
    counts.forEach((c, i) => assert.ok(Math.abs(c / 2000 - p[i] / total) < 0.04, `token ${i}: ${c}`))
    const top2 = histogram({ ...base, topK: 2 })
    assert.equal(top2[0] + top2[3] + top2[4], 0)
    assert.ok(top2[1] > 0 && top2[2] > 0)
  })

  it('penalizes tokens seen lately, and repeats itself with a seed', () => {
    assert.deepEqual(histogram({ ...base, temperature: 0, repeatPenalty: 1.5 }, 10, [1]), [0, 0, 10, 0, 0])
    assert.deepEqual(histogram(base, 200), histogram(base, 200))
    assert.notDeepEqual(histogram(base, 200), histogram({ ...base, seed: 2 }, 200))
  })

  it('refuses out-of-range options by name', () => {
    for (const bad of [{ temperature: -1 }, { topK: 1.5 }, { topP: 0 }, { topP: 1.1 }, { repeatPenalty: 0 }, { repeatLastN: -2 }, { seed: 0.5 }]) {
      assert.throws(() => createSampler({ ...base, ...bad }), { name: 'InvalidInferenceRequestError' })
    }
  })
})
