import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import { performance } from 'node:perf_hooks'
import type { Worker } from 'node:worker_threads'
import { clipScale, seededRandom } from '@node-daemon/onnx'
import { architectureOf } from '../src/architecture.ts'
import { Batches, split, totalSteps } from '../src/batches.ts'
import { encodeTensorDataset, parseDataset } from '../src/dataset.ts'
import { optimizerOf, partsOf } from '../src/optimizer.ts'
import { meanOfSlices, Replica } from '../src/replica.ts'
import { trainingSpec } from '../src/spec.ts'

const F = 4
const C = 3
const ROWS = 90

function samples (): ReturnType<ReturnType<typeof architectureOf>['samples']> {
  const random = seededRandom(1)
  const labels = new Int32Array(ROWS).map((_, i) => i % C)
  const features = new Float32Array(ROWS * F).map((_, i) => (i % F === labels[Math.floor(i / F)] ? 1.5 : 0) + random() - 0.5)
  return architectureOf({ model_type: 'mlp-classifier', inputs: F, hidden: [8], classes: C }).samples(parseDataset(encodeTensorDataset({ features, labels, featureCount: F })))
}

/** Trains with every global batch split over `parts` replicas' slices, averaged as the coordinator does. */
async function train (parts: number, optimizer: 'sgd' | 'adamw'): Promise<{ weights: Record<string, Float32Array>, accuracy: number }> {
  const architecture = architectureOf({ model_type: 'mlp-classifier', inputs: F, hidden: [8], classes: C })
  const data = samples()
  const spec = trainingSpec({ optimizer, learningRate: 0.05, batchSize: 20, epochs: 3, seed: 4 })
  const batches = new Batches({ samples: data.count, batchSize: spec.batchSize, epochs: spec.epochs, seed: spec.seed })
  const total = totalSteps(batches.plan)
  const replica = new Replica(architecture, spec, total, { weights: architecture.initialWeights(spec.seed) })
  let correct = 0
  let labels = 0
  try {
    for (let step = 0; step < total; step++) {
      const results = []
      for (const slice of split(batches.batch(step), parts)) {
        const r = await replica.compute(data, slice)
        results.push(r)
        if (step === total - 1) {
          correct += r.correct
          labels += r.labels
        }
      }
      await replica.apply(meanOfSlices(results))
    }
  } finally {
    await replica.release()
  }
  assert.equal(replica.version, total)
  return { weights: replica.weights, accuracy: correct / labels }
}

function maxDifference (a: Record<string, Float32Array>, b: Record<string, Float32Array>): number {
  let max = 0
  for (const name of Object.keys(a)) for (let i = 0; i < a[name].length; i++) max = Math.max(max, Math.abs(a[name][i] - b[name][i]))
  return max
}

describe('data-parallel replicas', () => {
  it('summing the slices of 3 workers gives the weights of one worker with the whole batch', async () => {
    const one = await train(1, 'sgd')
    const three = await train(3, 'sgd')
    assert.ok(maxDifference(one.weights, three.weights) < 1e-5, `differ by ${maxDifference(one.weights, three.weights)}`)
    assert.ok(three.accuracy > 0.8, `accuracy ${three.accuracy}`)
  })

  it('average slices by their share of the samples, reusing the first slice\'s array', () => {
    const first = new Float32Array([1, 2])
    const mean = meanOfSlices([{ gradient: new Float32Array([9, 9]), count: 0 }, { gradient: first, count: 3 }, { gradient: new Float32Array([5, -2]), count: 1 }])
    assert.equal(mean, first)
    assert.deepEqual(mean, new Float32Array([2, 1]))
    const alone = new Float32Array([7])
    assert.equal(meanOfSlices([{ gradient: alone, count: 4 }]), alone)
    assert.deepEqual(alone, new Float32Array([7]))
    assert.throws(() => meanOfSlices([{ gradient: new Float32Array(1), count: 0 }]), RangeError)
  })

  it('makes the same bits of a mean into any slice\'s array as into the first\'s, as every node of a round of two makes it', () => {
    const random = (n: number, seed: number): Float32Array<ArrayBuffer> => new Float32Array(n).map((_, i) => Math.sin(seed * 1000 + i) * 3)
    for (const counts of [[3, 5], [7, 2, 4]]) {
      const arrays = counts.map((_, k) => random(1000, k + 1))
      // The reference: the first array scaled, then each other one added, rounded to float32 at every store.
      const total = counts.reduce((a, b) => a + b, 0)
      const expected = Float32Array.from(arrays[0], v => v * counts[0] / total)
      for (let k = 1; k < counts.length; k++) for (let i = 0; i < expected.length; i++) expected[i] += arrays[k][i] * counts[k] / total
      const last = Float32Array.from(arrays[counts.length - 1])
      const slices = counts.map((count, k) => ({ count, gradient: k === counts.length - 1 ? last : Float32Array.from(arrays[k]) }))
      const mean = meanOfSlices(slices, last)
      assert.equal(mean, last)
      assert.ok(Buffer.from(mean.buffer).equals(Buffer.from(expected.buffer)), `a mean of ${counts.length} slices into the last one differs`)
      assert.ok(Buffer.from(meanOfSlices(counts.map((count, k) => ({ count, gradient: Float32Array.from(arrays[k]) }))).buffer).equals(Buffer.from(expected.buffer)))
    }
  })

  it('learns with AdamW too', async () => {
    const { accuracy } = await train(2, 'adamw')
    assert.ok(accuracy > 0.8, `accuracy ${accuracy}`)
  })
})

/** A replica whose step takes a second or so: 8192 samples through 300k parameters. */
function wide (): { replica: Replica, data: ReturnType<ReturnType<typeof architectureOf>['samples']>, all: number[] } {
  const rows = 8192
  const architecture = architectureOf({ model_type: 'mlp-classifier', inputs: 64, hidden: [512, 512], classes: C })
  const random = seededRandom(3)
  const features = new Float32Array(rows * 64).map(() => random())
  const labels = new Int32Array(rows).map((_, i) => i % C)
  const data = architecture.samples(parseDataset(encodeTensorDataset({ features, labels, featureCount: 64 })))
  const replica = new Replica(architecture, trainingSpec({ batchSize: rows }), 4, { weights: architecture.initialWeights(1) })
  return { replica, data, all: Array.from({ length: rows }, (_, i) => i) }
}

describe('a replica\'s steps in a worker thread', () => {
  it('keep the event loop turning, reading weights shared with the thread, and leave the applied gradient to the caller', async () => {
    const { replica, data, all } = wide()
    try {
      assert.ok(Object.values(replica.weights).every(w => w.buffer instanceof SharedArrayBuffer))
      let ticks = 0
      const timer = setInterval(() => { ticks++ }, 5)
      const t0 = performance.now()
      const { gradient } = await replica.compute(data, all)
      const ms = performance.now() - t0
      clearInterval(timer)
      // On the main thread, the step would let no timer fire.
      assert.ok(ticks >= ms / 5 / 4, `${ticks} ticks of 5 ms in a step of ${ms.toFixed(0)} ms`)
      assert.equal(gradient.length, replica.size)
      assert.ok(gradient.some(g => g !== 0))
      const before = Float32Array.from(replica.weights['layers.0.weight'])
      const sent = Float32Array.from(gradient)
      await replica.apply(gradient)
      assert.notDeepEqual(replica.weights['layers.0.weight'], before)
      // A coordinator sends the mean on to its workers while its own step is made.
      assert.deepEqual(gradient, sent, 'the caller keeps the gradient as it was')
    } finally {
      await replica.release()
    }
  })

  it('gives up a step on its signal at once', async () => {
    const { replica, data, all } = wide()
    try {
      const { computeMs } = await replica.compute(data, all)
      const controller = new AbortController()
      const step = replica.compute(data, all, controller.signal)
      let abortedAt = 0
      setTimeout(() => {
        abortedAt = performance.now()
        controller.abort(new Error('paused'))
      }, 50)
      await assert.rejects(step, { message: 'paused' })
      assert.ok(performance.now() - abortedAt < computeMs / 2, `gave up ${(performance.now() - abortedAt).toFixed(0)} ms after the signal, in a step of ${computeMs.toFixed(0)} ms`)
      // The thread finishes the step given up, and the next one after it.
      const { count } = await replica.compute(data, all.slice(0, 8))
      assert.equal(count, 8)
    } finally {
      await replica.release()
    }
  })

  it('fails its steps with ModelWorkerError once its thread died', async () => {
    const optimizerThread = once(process, 'worker')
    const { replica, data, all } = wide()
    await optimizerThread
    const threads: Worker[] = []
    const started = (worker: Worker): void => { threads.push(worker) }
    process.on('worker', started)
    try {
      await replica.compute(data, all)
      assert.equal(threads.length, 1, 'one session thread started')
      // Between steps: onnxruntime-node aborts the process when its thread is terminated mid-run.
      await threads[0].terminate()
      await assert.rejects(replica.compute(data, all), { name: 'ModelWorkerError' })
      await assert.rejects(replica.compute(data, all), { name: 'ModelWorkerError' })
    } finally {
      process.off('worker', started)
      await replica.release()
    }
  })
})

/** A replica of `hidden` units a layer whose weights come from `seed`, and a gradient stream for it. */
function mlp (optimizer: 'sgd' | 'adamw', hidden: number[]): { replica: Replica, gradient: (seed: number) => Float32Array<ArrayBuffer>, copy: () => Record<string, Float32Array> } {
  const architecture = architectureOf({ model_type: 'mlp-classifier', inputs: 64, hidden, classes: C })
  const replica = new Replica(architecture, trainingSpec({ optimizer, clipNorm: 0.5 }), 10, { weights: architecture.initialWeights(1) })
  const gradient = (seed: number): Float32Array<ArrayBuffer> => {
    const random = seededRandom(seed)
    return new Float32Array(replica.size).map(() => random() - 0.5)
  }
  const copy = (): Record<string, Float32Array> => Object.fromEntries(Object.entries(replica.weights).map(([name, w]) => [name, Float32Array.from(w)]))
  return { replica, gradient, copy }
}

describe('a replica\'s optimizer in a worker thread', () => {
  for (const optimizer of ['sgd', 'adamw'] as const) {
    it(`makes the same bits as ${optimizer} on the calling thread, and hands its state over to resume from`, async () => {
      const { replica, gradient, copy } = mlp(optimizer, [32])
      const { architecture, spec } = replica
      const here = optimizerOf({ spec, totalSteps: 10, parameters: architecture.parameters })
      const weights = copy()
      let resumed: Replica | undefined
      try {
        for (let step = 0; step < 3; step++) {
          const grads = partsOf(architecture.parameters, gradient(step))
          const learningRate = here.step(weights, grads, { gradientScale: clipScale(grads, spec.clipNorm) })
          assert.equal((await replica.apply(gradient(step))).learningRate, learningRate)
        }
        assert.deepEqual(replica.weights, weights)
        const state = await replica.state()
        assert.deepEqual(state.optimizer, here.state())
        resumed = new Replica(architecture, spec, 10, { weights: copy(), optimizer: state.optimizer })
        assert.equal(resumed.version, 3)
        await Promise.all([replica.apply(gradient(3)), resumed.apply(gradient(3))])
        assert.deepEqual(resumed.weights, replica.weights)
      } finally {
        await Promise.all([replica.release(), resumed?.release()])
      }
    })
  }

  it('keeps the event loop turning through a step of millions of parameters', async () => {
    // 4.8M parameters: a first AdamW step, which makes its moments, took 50 ms and more on the main thread.
    const { replica, gradient } = mlp('adamw', [1536, 1536, 1536])
    try {
      const g = gradient(1)
      const t0 = performance.now()
      const before = performance.eventLoopUtilization()
      await replica.apply(g)
      const { utilization } = performance.eventLoopUtilization(before)
      const ms = performance.now() - t0
      // On the main thread, the step would keep the loop busy for all of it. The share of the step the loop
      // was busy, rather than its longest wait: beside other test files on two cores the thread waited 57 ms
      // for a core in a step of 114 ms, while the step's own threads ran. Off the thread, it was 1-59%.
      assert.ok(utilization < 0.8, `the event loop was busy for ${(100 * utilization).toFixed(0)}% of a step of ${ms.toFixed(0)} ms`)
    } finally {
      await replica.release()
    }
  })

  it('refuses a gradient of the wrong size before it goes, and fails with ModelWorkerError once its thread died', async () => {
    const started = once(process, 'worker') as Promise<[Worker]>
    const { replica, gradient } = mlp('adamw', [8])
    try {
      await assert.rejects(replica.apply(new Float32Array(3)), RangeError)
      assert.equal(replica.version, 0)
      const [thread] = await started
      await thread.terminate()
      await assert.rejects(replica.apply(gradient(1)), { name: 'ModelWorkerError' })
      await assert.rejects(replica.state(), { name: 'ModelWorkerError' })
      await assert.rejects(replica.compute(samples(), [0, 1]), { name: 'ModelWorkerError' })
    } finally {
      await replica.release()
    }
  })
})

describe('global batches', () => {
  it('cover every sample once per epoch, in an order that depends on the seed and the epoch only', () => {
    const plan = { samples: 25, batchSize: 10, epochs: 2, seed: 9 }
    const batches = new Batches(plan)
    assert.equal(totalSteps(plan), 6)
    const epoch = [0, 1, 2].flatMap(s => Array.from(batches.batch(s)))
    assert.deepEqual([...epoch].sort((a, b) => a - b), Array.from({ length: 25 }, (_, i) => i))
    assert.equal(batches.batch(2).length, 5)
    assert.notDeepEqual(Array.from(batches.batch(3)), epoch.slice(0, 10))
    assert.deepEqual(Array.from(new Batches(plan).batch(4)), Array.from(batches.batch(4)))
  })

  it('split into contiguous slices that differ in size by at most one', () => {
    const slices = split(Uint32Array.from([1, 2, 3, 4, 5, 6, 7]), 3)
    assert.deepEqual(slices.map(s => Array.from(s)), [[1, 2, 3], [4, 5], [6, 7]])
    assert.deepEqual(split(Uint32Array.from([1]), 2).map(s => s.length), [1, 0])
  })
})

describe('training specs', () => {
  it('fill in defaults and refuse bad fields by name', () => {
    assert.equal(trainingSpec({}).optimizer, 'adamw')
    assert.equal(trainingSpec({ optimizer: 'sgd' }).weightDecay, 0)
    for (const bad of [{ epochs: 0 }, { batchSize: 1.5 }, { learningRate: -1 }, { optimizer: 'lion' }, { strategy: 'gossip' }, { name: '' }]) {
      assert.throws(() => trainingSpec(bad), { name: 'InvalidTrainingRequestError' }, JSON.stringify(bad))
    }
  })
})
