import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { argmax, createSampler } from '../src/sampling.ts'
import type { SamplingOptions } from '../src/sampling.ts'

// Softmax ≈ [0.063, 0.467, 0.423, 0.009, 0.038]: two close favourites and a tail.
const logits = Float32Array.from([1, 3, 2.9, -1, 0.5])
const base: SamplingOptions = { temperature: 1, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 64, seed: 1 }

function draws (o: SamplingOptions, n: number, history: number[] = []): number[] {
  const sample = createSampler(o)
  return Array.from({ length: n }, () => sample(logits, history).token)
}

function histogram (o: SamplingOptions, n = 2000, history: number[] = []): number[] {
  const counts = new Array<number>(logits.length).fill(0)
  for (const id of draws(o, n, history)) counts[id]++
  return counts
}

const softmax = (row: ArrayLike<number>): number[] => {
  const e = Array.from(row, l => Math.exp(l))
  const total = e.reduce((a, b) => a + b)
  return e.map(v => v / total)
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
    const p = softmax(logits)
    counts.forEach((c, i) => assert.ok(Math.abs(c / 2000 - p[i]) < 0.04, `token ${i}: ${c}`))
    const top2 = histogram({ ...base, topK: 2 })
    assert.equal(top2[0] + top2[3] + top2[4], 0)
    assert.ok(top2[1] > 0 && top2[2] > 0)
  })

  it('penalizes tokens seen lately, and repeats itself with a seed', () => {
    assert.deepEqual(histogram({ ...base, temperature: 0, repeatPenalty: 1.5 }, 10, [1]), [0, 0, 10, 0, 0])
    assert.deepEqual(histogram(base, 200), histogram(base, 200))
    assert.notDeepEqual(histogram(base, 200), histogram({ ...base, seed: 2 }, 200))
  })

  it('subtracts the presence penalty once and the frequency penalty per occurrence, within repeat_last_n', () => {
    const greedy = { ...base, temperature: 0 }
    // 3 - 0.2 falls below token 2's 2.9.
    assert.equal(draws({ ...greedy, presencePenalty: 0.2 }, 1, [1, 1, 1])[0], 2)
    assert.equal(draws({ ...greedy, presencePenalty: 0.05 }, 1, [1, 1, 1])[0], 1)
    // 0.06 per occurrence: once leaves 2.94, twice 2.88.
    assert.equal(draws({ ...greedy, frequencyPenalty: 0.06 }, 1, [1])[0], 1)
    assert.equal(draws({ ...greedy, frequencyPenalty: 0.06 }, 1, [1, 0, 1])[0], 2)
    // Outside the window the occurrences do not count.
    assert.equal(draws({ ...greedy, frequencyPenalty: 0.06, repeatLastN: 1 }, 1, [1, 0, 1])[0], 1)
    assert.equal(draws({ ...greedy, presencePenalty: 5, repeatLastN: 0 }, 1, [1])[0], 1)
    // A negative penalty favours what was said: token 3 rises from -1 to 4.
    assert.equal(draws({ ...greedy, presencePenalty: -5 }, 1, [3])[0], 3)
    // Sampled, the penalized token's share falls to its penalized softmax.
    const counts = histogram({ ...base, presencePenalty: 1 }, 4000, [1])
    const expected = softmax([1, 2, 2.9, -1, 0.5])
    counts.forEach((c, i) => assert.ok(Math.abs(c / 4000 - expected[i]) < 0.03, `token ${i}: ${c} vs ${expected[i]}`))
  })

  it('adds logit_bias, and bans a token at -100', () => {
    assert.equal(draws({ ...base, temperature: 0, logitBias: { 4: 10 } }, 1)[0], 4)
    const banned = histogram({ ...base, logitBias: { 1: -100 } }, 1000)
    assert.equal(banned[1], 0)
    assert.ok(banned[2] > 600, `${banned[2]}`)
    const all = histogram({ ...base, logitBias: { 1: -100, 2: -100, 0: -100, 4: -100 } }, 50)
    assert.deepEqual(all, [0, 0, 0, 50, 0])
  })

  it('drops tokens below min_p times the likeliest', () => {
    // Relative to token 1: token 2 ≈ 0.90, token 0 ≈ 0.14, token 4 ≈ 0.08.
    const counts = histogram({ ...base, minP: 0.5 }, 1000)
    assert.equal(counts[0] + counts[3] + counts[4], 0)
    assert.ok(counts[1] > 400 && counts[2] > 400, `${counts.join()}`)
    const wider = histogram({ ...base, minP: 0.1 }, 1000)
    assert.equal(wider[3] + wider[4], 0)
    assert.ok(wider[0] > 0)
  })

  it('keeps the locally typical tokens with typical_p', () => {
    // The entropy is ≈ 1.06 nats; token 2's surprise (0.86) is closest to it, then token 1's (0.76).
    assert.deepEqual(histogram({ ...base, typicalP: 0.3 }, 50), [0, 0, 50, 0, 0])
    const counts = histogram({ ...base, typicalP: 0.85 }, 1000)
    assert.equal(counts[0] + counts[3] + counts[4], 0)
    assert.ok(counts[1] > 0 && counts[2] > 0)
  })

  it('cuts the tail where the curvature accumulates past tfs_z', () => {
    // Normalized second derivatives of the sorted probabilities ≈ [0.481, 0.511, 0.007]: cumulated, 0.481, 0.993, 1.
    assert.deepEqual(histogram({ ...base, tfsZ: 0.95 }, 50), [0, 50, 0, 0, 0])
    const two = histogram({ ...base, tfsZ: 0.995 }, 1000)
    assert.equal(two[0] + two[3] + two[4], 0)
    assert.ok(two[1] > 0 && two[2] > 0)
    assert.deepEqual(histogram({ ...base, tfsZ: 1 }, 300), histogram(base, 300))
  })

  for (const version of [1, 2]) {
    it(`keeps mirostat ${version}'s surprise estimate per sampler`, () => {
      // A low target keeps only the likeliest token at first; mu then grows (nothing surprises) until token 2 gets in.
      const low = draws({ ...base, mirostat: version, mirostatTau: 0.1, mirostatEta: 0.1 }, 400)
      assert.ok(low.slice(0, 50).every(id => id === 1), low.slice(0, 50).join())
      assert.ok(low.includes(2), 'mu grew')
      assert.deepEqual(low, draws({ ...base, mirostat: version, mirostatTau: 0.1, mirostatEta: 0.1 }, 400), 'seeded')
      // A high target admits the whole distribution.
      const high = new Set(draws({ ...base, mirostat: version, mirostatTau: 10 }, 400))
      assert.ok(high.size >= 4, [...high].join())
      // The options the chain would otherwise apply do not matter to mirostat.
      assert.deepEqual(draws({ ...base, mirostat: version, topK: 1 }, 100), draws({ ...base, mirostat: version }, 100))
    })
  }

  it('reports log-probabilities of the biased, penalized row before truncation', () => {
    const p = softmax(logits)
    const plain = createSampler({ ...base, temperature: 0, topK: 1 })(logits, [], 2)
    assert.equal(plain.token, 1)
    assert.ok(Math.abs((plain.logprob as number) - Math.log(p[1])) < 1e-5)
    assert.deepEqual(plain.top?.map(t => t.token), [1, 2])
    assert.ok(Math.abs((plain.top as any)[1].logprob - Math.log(p[2])) < 1e-5)
    const biased = createSampler({ ...base, temperature: 0, logitBias: { 4: 3 } })(logits, [], 1)
    const q = softmax([1, 3, 2.9, -1, 3.5])
    assert.equal(biased.token, 4)
    assert.ok(Math.abs((biased.logprob as number) - Math.log(q[4])) < 1e-5)
    assert.deepEqual(createSampler(base)(logits, [], 0).top, [])
    assert.equal(createSampler(base)(logits, []).logprob, undefined)
  })

  it('refuses out-of-range options by name', () => {
    for (const bad of [
      { temperature: -1 }, { topK: 1.5 }, { topP: 0 }, { topP: 1.1 }, { repeatPenalty: 0 }, { repeatLastN: -2 }, { seed: 0.5 },
      { presencePenalty: Number.NaN }, { frequencyPenalty: Infinity }, { logitBias: { 1: 101 } }, { logitBias: { x: 1 } as any },
      { minP: 1.5 }, { typicalP: 0 }, { tfsZ: 0 }, { mirostat: 3 }, { mirostatTau: -1 }, { mirostatEta: -0.1 }
    ]) {
      assert.throws(() => createSampler({ ...base, ...bad }), { name: 'InvalidInferenceRequestError' }, JSON.stringify(bad))
    }
  })
})
