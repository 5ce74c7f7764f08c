import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { OptimizerThread } from '../src/optimizer-thread.ts'
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
    const weights = new SharedArrayBuffer(12 * 4)
    const gradient = new SharedArrayBuffer(12 * 4)
    new Float32Array(gradient).fill(0.5)
    const thread = new OptimizerThread({ spec: trainingSpec({ optimizer: 'sgd', learningRate: 0.1 }), totalSteps: 4, parameters, weights, gradient })
    try {
      const step = thread.step()
      assert.equal(await settlesAtOnce(thread.settled()), false, 'a step is out: the thread answers when it is done')
      await step
      assert.notEqual(new Float32Array(weights)[0], 0)
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
