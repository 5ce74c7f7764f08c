import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  addSquares, clipGradNorm, clipScale, constantSchedule, createAdamW, createSgd, globalNorm, NORM_BLOCK, normOfSquares, squaresLength, warmupCosineSchedule
} from '../src/optimizers.ts'

function close (actual: number, expected: number, message?: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected)), `${message ?? ''} ${actual} ≠ ${expected}`)
}

const f32 = (...values: number[]): Float32Array => new Float32Array(values)

describe('learning-rate schedules', () => {
  it('constant', () => {
    const s = constantSchedule(0.3)
    assert.deepEqual([0, 1, 1000].map(s), [0.3, 0.3, 0.3])
  })

  it('linear warmup, then cosine decay to the final rate', () => {
    const s = warmupCosineSchedule({ peak: 1, warmupSteps: 2, totalSteps: 6, final: 0.1 })
    close(s(0), 0.5)
    close(s(1), 1)
    close(s(2), 1)
    // Halfway through the decay (step 4 of 2..6): cos(π/2) = 0, so midway between peak and final.
    close(s(4), 0.55)
    // A quarter of the way: 0.1 + 0.9 · (1 + cos(π/4)) / 2.
    close(s(3), 0.1 + 0.9 * (1 + Math.SQRT1_2) / 2)
    close(s(6), 0.1)
    close(s(100), 0.1)
  })
})

describe('gradient clipping', () => {
  it('takes the norm over all tensors and scales them down together', () => {
    const grads = { a: f32(3), b: f32(0, 4) }
    assert.equal(globalNorm(grads), 5)
    assert.equal(clipGradNorm(grads, 1), 5)
    close(grads.a[0], 0.6)
    close(grads.b[1], 0.8)
    close(globalNorm(grads), 1)
  })

  it('leaves gradients under the limit alone', () => {
    const grads = { a: f32(0.3, 0.4) }
    assert.equal(clipGradNorm(grads, 1), globalNorm({ a: f32(0.3, 0.4) }))
    assert.deepEqual(grads.a, f32(0.3, 0.4))
  })

  it('sums squares by blocks of four lanes in a fixed order, whatever the tensors, so that threads taking whole blocks make the same bits', () => {
    let seed = 7
    const flat = Float32Array.from({ length: 2 * NORM_BLOCK + 7 }, () => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5)
    // The documented order, written out: lane k of a block sums its elements of index k modulo 4, in order.
    let expected = 0
    for (let start = 0; start < flat.length; start += NORM_BLOCK) {
      const lanes = [0, 0, 0, 0]
      for (let i = start; i < Math.min(flat.length, start + NORM_BLOCK); i++) lanes[i % 4] += flat[i] * flat[i]
      expected += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
    }
    expected = Math.sqrt(expected)
    // Tensors that end inside blocks and off the lanes.
    const cuts = [0, 3, 5, NORM_BLOCK - 2, NORM_BLOCK + 9, flat.length]
    const grads = Object.fromEntries(cuts.slice(1).map((end, k) => [`t${k}`, flat.subarray(cuts[k], end)]))
    assert.equal(globalNorm(grads), expected)
    assert.equal(globalNorm({ all: flat }), expected)
    // Two threads' shares, summed each into its own blocks of one array.
    const partials = new Float64Array(squaresLength(flat.length))
    addSquares(flat.subarray(NORM_BLOCK), NORM_BLOCK, partials)
    addSquares(flat.subarray(0, NORM_BLOCK), 0, partials)
    assert.equal(normOfSquares(partials), expected)
  })

  it('gives the factor that clipping would scale by, leaving the gradients alone', () => {
    const grads = { a: f32(3), b: f32(0, 4) }
    close(clipScale(grads, 1), 1 / (5 + 1e-6))
    assert.deepEqual(grads, { a: f32(3), b: f32(0, 4) })
    assert.equal(clipScale({ a: f32(0.3, 0.4) }, 1), 1)
  })
})

describe('SGD', () => {
  it('without momentum: p − lr·(g + wd·p)', () => {
    const p = { w: f32(1, -2) }
    createSgd({ lr: 0.1, weightDecay: 0.5 }).step(p, { w: f32(0.5, 1) })
    close(p.w[0], 1 - 0.1 * (0.5 + 0.5))
    close(p.w[1], -2 - 0.1 * (1 - 1))
  })

  it('with momentum: the first buffer is the gradient, then momentum·buf + g', () => {
    const p = { w: f32(1) }
    const sgd = createSgd({ lr: 0.1, momentum: 0.9 })
    sgd.step(p, { w: f32(0.5) })
    close(p.w[0], 0.95)
    sgd.step(p, { w: f32(0.5) })
    // buf = 0.9 · 0.5 + 0.5 = 0.95
    close(p.w[0], 0.95 - 0.095)
  })

  it('with Nesterov momentum: steps by g + momentum·buf', () => {
    const p = { w: f32(1) }
    createSgd({ lr: 0.1, momentum: 0.9, nesterov: true }).step(p, { w: f32(0.5) })
    close(p.w[0], 1 - 0.1 * (0.5 + 0.9 * 0.5))
  })

  it('follows a schedule and reports the rate it used', () => {
    const sgd = createSgd({ lr: step => [0.1, 0.2][step] })
    const p = { w: f32(0) }
    assert.equal(sgd.step(p, { w: f32(1) }), 0.1)
    assert.equal(sgd.step(p, { w: f32(1) }), 0.2)
    close(p.w[0], -0.3)
  })
})

describe('AdamW', () => {
  it('matches two steps worked by hand', () => {
    const p = { w: f32(1) }
    const adam = createAdamW({ lr: 0.1, weightDecay: 0.01 })
    adam.step(p, { w: f32(0.5) })
    // Decay: 1 · (1 − 0.1 · 0.01) = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25; update = 0.5 / (0.5 + 1e-8).
    const first = 0.999 - 0.1 * (0.5 / (0.5 + 1e-8))
    close(p.w[0], first)
    adam.step(p, { w: f32(-0.25) })
    // m = 0.9·0.05 − 0.1·0.25 = 0.02, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225
    // m̂ = 0.02 / 0.19 , v̂ = 0.00031225 / 0.001999
    const mHat = 0.02 / (1 - 0.81)
    const vHat = 0.00031225 / (1 - 0.999 * 0.999)
    close(p.w[0], first * 0.999 - 0.1 * mHat / (Math.sqrt(vHat) + 1e-8))
  })

  it('decays only the parameters chosen', () => {
    const p = { w: f32(2), bias: f32(2) }
    createAdamW({ lr: 0.1, weightDecay: 0.5, decays: name => name !== 'bias' }).step(p, { w: f32(0), bias: f32(0) })
    close(p.w[0], 2 * (1 - 0.05))
    assert.equal(p.bias[0], 2)
  })

  it('is deterministic and resumes from its state', () => {
    const grads = [f32(0.3, -1.2, 0.01), f32(-0.7, 0.4, 2), f32(0.05, 0.05, -0.5)]
    const options = { lr: warmupCosineSchedule({ peak: 0.01, warmupSteps: 1, totalSteps: 3 }), weightDecay: 0.1 }
    const a = { w: f32(0.1, 0.2, 0.3) }
    const b = { w: f32(0.1, 0.2, 0.3) }
    const whole = createAdamW(options)
    for (const g of grads) whole.step(a, { w: g })
    const first = createAdamW(options)
    first.step(b, { w: grads[0] })
    const resumed = createAdamW(options, first.state())
    resumed.step(b, { w: grads[1] })
    resumed.step(b, { w: grads[2] })
    assert.deepEqual(b.w, a.w)
    assert.equal(resumed.state().step, 3)
  })

  it('makes the same bits and state in a shared memory, by its SIMD kernel, as in arrays of its own, and resumes into that memory', () => {
    let seed = 11
    const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5
    // Odd lengths and offsets: the kernel takes pairs and leaves the last element to the loop.
    const lengths = { 'a.weight': 1001, b: 7, 'c.weight': 64 }
    const size = Object.values(lengths).reduce((n, l) => n + l, 0)
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true })
    const region = (k: number): Record<string, Float32Array> => {
      let at = k * size + 1
      return Object.fromEntries(Object.entries(lengths).map(([name, length]) => {
        const view = new Float32Array(memory.buffer, at * 4, length)
        at += length
        return [name, view]
      }))
    }
    const [params, grads, m, v] = [0, 1, 2, 3].map(region)
    const plain: Record<string, Float32Array> = {}
    for (const [name, p] of Object.entries(params)) {
      p.set(Array.from({ length: p.length }, random))
      plain[name] = Float32Array.from(p)
    }
    const options = { lr: 0.01, weightDecay: 0.1, decays: (name: string) => name.endsWith('.weight') }
    const here = createAdamW(options)
    const there = createAdamW({ ...options, moments: { m, v, memory } })
    for (let step = 0; step < 3; step++) {
      for (const g of Object.values(grads)) g.set(Array.from({ length: g.length }, () => random() * 2))
      here.step(plain, grads, { gradientScale: 0.7 })
      there.step(params, grads, { gradientScale: 0.7 })
      assert.deepEqual(params, plain, `step ${step}`)
    }
    assert.deepEqual(there.state(), here.state())
    // The moments are kept in the caller's arrays, not in copies.
    assert.deepEqual({ m, v }, here.state().slots)
    const resumed = createAdamW({ ...options, moments: { m: region(4), v: region(5), memory } }, here.state())
    resumed.step(params, grads)
    here.step(plain, grads)
    assert.deepEqual(params, plain)
  })

  it('steps with a scaled gradient as with the gradient scaled beforehand, for both optimizers', () => {
    for (const make of [() => createAdamW({ lr: 0.1 }), () => createSgd({ lr: 0.1, momentum: 0.9 })]) {
      const scaled = { w: f32(1, -2) }
      const plain = { w: f32(1, -2) }
      const [a, b] = [make(), make()]
      const gradient = f32(0.5, 4)
      for (let step = 0; step < 2; step++) {
        a.step(scaled, { w: gradient }, { gradientScale: 0.25 })
        b.step(plain, { w: gradient.map(g => g * 0.25) })
      }
      assert.deepEqual(gradient, f32(0.5, 4))
      close(scaled.w[0], plain.w[0])
      close(scaled.w[1], plain.w[1])
      assert.notEqual(scaled.w[0], 1)
    }
  })

  it('refuses a missing or mis-sized gradient', () => {
    assert.throws(() => createAdamW({ lr: 0.1 }).step({ w: f32(1) }, {}), RangeError)
    assert.throws(() => createSgd({ lr: 0.1 }).step({ w: f32(1) }, { w: f32(1, 2) }), RangeError)
  })
})
