import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { clipScale, seededRandom } from '@node-daemon/onnx'
import { OptimizerThread } from '../src/optimizer-thread.ts'
import { arenaOf, optimizerOf, partsOf, regionOf } from '../src/optimizer.ts'
import { trainingSpec } from '../src/spec.ts'

const parameters = [{ name: 'w', dims: [4, 2] }, { name: 'b', dims: [4] }]

/** Whether `promise` settles within a few microtask turns, that is without a message from another thread. */
async function settlesAtOnce (promise: Promise<unknown>): Promise<boolean> {
  let done = false
  void promise.then(() => { done = true })
  for (let i = 0; i < 5; i++) await Promise.resolve()
  const early = done
  await promise
  return early
}

describe('a replica\'s optimizer thread', () => {
  it('is settled at once when every step\'s reply came, and asks the thread only while a step is out', async () => {
    const spec = trainingSpec({ optimizer: 'sgd', learningRate: 0.1 })
    const arena = arenaOf(spec, 12)
    const weights = regionOf(arena, 12, 0)
    regionOf(arena, 12, 1).fill(0.5)
    const thread = new OptimizerThread({ spec, totalSteps: 4, parameters, arena })
    try {
      const step = thread.step()
      assert.equal(await settlesAtOnce(thread.settled()), false, 'a step is out: the thread answers when it is done')
      await step
      assert.notEqual(weights[0], 0)
      assert.equal(await settlesAtOnce(thread.settled()), true)
      // A step whose caller stopped waiting is still out until its reply comes.
      const controller = new AbortController()
      const abandoned = thread.step(controller.signal)
      controller.abort(new Error('given up'))
      await assert.rejects(abandoned, /given up/)
      await thread.settled()
      assert.equal(await settlesAtOnce(thread.settled()), true)
    } finally {
      await thread.release()
    }
  })
})

describe('a replica\'s optimizer over several threads', () => {
  it('takes a range of the parameters a thread, and makes the same bits and state with any number of threads as on the calling thread', async () => {
    // Three blocks of the norm, tensors that end inside them.
    const shapes = [{ name: 'a.weight', dims: [300, 100] }, { name: 'b', dims: [7] }, { name: 'c.weight', dims: [100, 171] }]
    const size = 300 * 100 + 7 + 100 * 171
    const spec = trainingSpec({ optimizer: 'adamw', learningRate: 0.01, clipNorm: 0.5 })
    const random = seededRandom(3)
    const initial = Float32Array.from({ length: size }, () => random() - 0.5)
    const gradients = [1, 2, 3].map(() => Float32Array.from({ length: size }, () => random() - 0.5))
    const here = optimizerOf({ spec, totalSteps: 10, parameters: shapes })
    const expected = partsOf(shapes, Float32Array.from(initial))
    for (const g of gradients) {
      const grads = partsOf(shapes, g)
      here.step(expected, grads, { gradientScale: clipScale(grads, spec.clipNorm) })
    }
    // One more step, from the state handed over: what a resumed job makes.
    const resume = here.state()
    const next = Float32Array.from({ length: size }, () => random() - 0.5)
    const resumed = partsOf(shapes, Float32Array.from(Object.values(expected).flatMap(w => [...w])))
    optimizerOf({ spec, totalSteps: 10, parameters: shapes, resume }).step(resumed, partsOf(shapes, next), { gradientScale: clipScale(partsOf(shapes, next), spec.clipNorm) })
    for (const threads of [1, 2, 3]) {
      let started = 0
      const count = (): void => { started++ }
      process.on('worker', count)
      const arena = arenaOf(spec, size)
      const weights = regionOf(arena, size, 0)
      const gradient = regionOf(arena, size, 1)
      weights.set(initial)
      const thread = new OptimizerThread({ spec, totalSteps: 10, parameters: shapes, arena }, threads)
      try {
        for (const g of gradients) {
          gradient.set(g)
          await thread.step()
        }
        assert.equal(started, threads)
        assert.deepEqual(partsOf(shapes, weights), expected, `${threads} threads`)
        assert.deepEqual(await thread.state(), resume, `${threads} threads`)
      } finally {
        await thread.release()
      }
      const again = new OptimizerThread({ spec, totalSteps: 10, parameters: shapes, arena, resume }, threads)
      try {
        gradient.set(next)
        await again.step()
        assert.deepEqual(partsOf(shapes, weights), resumed, `${threads} threads, resumed`)
      } finally {
        process.off('worker', count)
        await again.release()
      }
    }
  })
})
