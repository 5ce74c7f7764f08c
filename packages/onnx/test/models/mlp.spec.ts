import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { InferenceSession } from 'onnxruntime-node'
import { buildTrainingGraph, gradientName } from '../../src/autodiff/training-graph.ts'
import { InvalidConfigError } from '../../src/errors.ts'
import type { TensorValue } from '../../src/graph.ts'
import { buildMlpClassifier, buildMlpLoss, initMlpWeights, mlpConfigFromHf, mlpHfConfig, mlpParameterShapes } from '../../src/models/mlp.ts'
import type { MlpConfig } from '../../src/models/mlp.ts'
import { initParameters } from '../../src/models/transformer.ts'
import { createAdamW } from '../../src/optimizers.ts'
import { readModel, readWeights } from '../../src/reader.ts'
import { writeModel } from '../../src/writer.ts'
import { createSession, gradCheck, int64s, randomFloats, rng, run, tensor } from '../autodiff/grad-check.ts'

const config: MlpConfig = { inputs: 4, hidden: [6, 5], classes: 3 }

/** The parameters as graph feeds, copied so that a test may change them. */
function parameterFeeds (config: MlpConfig, weights: Record<string, Float32Array>): Record<string, TensorValue> {
  return Object.fromEntries(mlpParameterShapes(config).map(({ name, dims }) => [name, { type: 'float32', dims, data: Float32Array.from(weights[name]) }]))
}

/**
 * Unit-variance Gaussian blobs, one per class, around centers drawn in
 * [-2, 2)^inputs: separable up to the overlap of the blobs' tails.
 */
function blobs (config: MlpConfig, n: number, seed: number): { features: TensorValue, labels: TensorValue } {
  // The centers depend on the class only, so that every seed draws from the same distribution.
  const centers = Array.from({ length: config.classes }, (_, k) => randomFloats(rng(1000 + k), [config.inputs], { min: -2, max: 2 }).data as Float32Array)
  const rand = rng(seed)
  const classes = Array.from({ length: n }, () => Math.floor(rand() * config.classes))
  // The seeded standard normals that weight initialisation draws.
  const data = initParameters([{ name: 'noise', dims: [n, config.inputs] }], seed, () => 1).noise
  classes.forEach((k, i) => { for (let j = 0; j < config.inputs; j++) data[i * config.inputs + j] += centers[k][j] })
  return { features: { type: 'float32', dims: [n, config.inputs], data }, labels: int64s([n], classes) }
}

describe('mlp classifier', () => {
  it('names its parameters as Hugging Face would, [out, in], initialised deterministically', () => {
    assert.deepEqual(mlpParameterShapes(config), [
      { name: 'layers.0.weight', dims: [6, 4] },
      { name: 'layers.0.bias', dims: [6] },
      { name: 'layers.1.weight', dims: [5, 6] },
      { name: 'layers.1.bias', dims: [5] },
      { name: 'classifier.weight', dims: [3, 5] },
      { name: 'classifier.bias', dims: [3] }
    ])
    const weights = initMlpWeights(config, 1)
    assert.deepEqual(initMlpWeights(config, 1), weights)
    assert.notDeepEqual(initMlpWeights(config, 2)['layers.0.weight'], weights['layers.0.weight'])
    assert.ok(weights['classifier.bias'].every(v => v === 0))
    // He: the first layer's weights have a variance near 2 / fan_in.
    const wide = initMlpWeights({ inputs: 100, hidden: [200], classes: 2 }, 3)['layers.0.weight']
    const variance = wide.reduce((s, v) => s + v * v, 0) / wide.length
    assert.ok(Math.abs(variance - 0.02) < 0.002, `variance ${variance}`)
  })

  it('writes its config.json and reads it back, rejecting what is no MLP classifier', () => {
    const json = mlpHfConfig(config)
    assert.deepEqual(json, { model_type: 'mlp-classifier', architectures: ['MlpClassifier'], inputs: 4, hidden: [6, 5], classes: 3, activation: 'relu' })
    assert.deepEqual(mlpConfigFromHf(JSON.parse(JSON.stringify(json))), { ...config, activation: 'relu' })
    const bad: unknown[] = [
      null,
      [],
      { ...json, model_type: 'gpt2' },
      { ...json, inputs: 0 },
      { ...json, inputs: '4' },
      { ...json, hidden: [6, 2.5] },
      { ...json, hidden: 6 },
      { ...json, classes: 1 },
      { ...json, activation: 'swish' }
    ]
    for (const value of bad) assert.throws(() => mlpConfigFromHf(value), { name: InvalidConfigError.name }, JSON.stringify(value))
    assert.throws(() => mlpParameterShapes({ ...config, hidden: [-1] }), { name: 'InvalidConfigError' })
  })

  for (const activation of ['relu', 'gelu', 'tanh'] as const) {
    it(`has the gradients of finite differences (${activation})`, async () => {
      const c: MlpConfig = { ...config, activation }
      // Seed 3 keeps every pre-activation more than 0.02 from Relu's kink, which a finite difference must not cross.
      const { features, labels } = blobs(c, 6, 3)
      await gradCheck(buildMlpLoss(c, { batchSize: 6 }), {
        params: mlpParameterShapes(c).map(s => s.name),
        feeds: { features, labels, ...parameterFeeds(c, initMlpWeights(c, 5)) },
        // A step of 1e-2 moves Relu's pre-activations by up to a few hundredths.
        eps: activation === 'relu' ? 1e-3 : undefined
      })
    })
  }

  it('gives the loss graph the inference graph\'s logits, and their cross-entropy and argmax count', async () => {
    const c: MlpConfig = { ...config, activation: 'gelu' }
    const weights = initMlpWeights(c, 7)
    const { features, labels } = blobs(c, 8, 3)
    const classes = Array.from(labels.data, Number)
    // One row left out: it counts neither in the loss nor as correct.
    classes[5] = -100
    const feeds = { features, labels: int64s([8], classes) }
    const inference = await run(await createSession(buildMlpClassifier(c, weights)), { features })
    const loss = await run(await createSession(buildMlpLoss(c, { batchSize: 8 })), { ...feeds, ...parameterFeeds(c, weights) })
    assert.deepEqual(loss.logits, inference.logits)
    let sum = 0
    let correct = 0
    classes.forEach((label, i) => {
      if (label === -100) return
      const row = Array.from(inference.logits.subarray(i * c.classes, (i + 1) * c.classes))
      const max = Math.max(...row)
      sum += max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) - row[label]
      if (row.indexOf(max) === label) correct++
    })
    assert.ok(Math.abs(loss.loss[0] - sum / 7) < 1e-5, `${loss.loss[0]} vs ${sum / 7}`)
    assert.equal(loss.correct[0], correct)
  })

  it('learns separable blobs to over 90% held-out accuracy with AdamW, read from the kept `correct`', async () => {
    const c: MlpConfig = { inputs: 8, hidden: [16], classes: 4 }
    const batchSize = 32
    const names = mlpParameterShapes(c).map(s => s.name)
    const training = buildTrainingGraph(buildMlpLoss(c, { batchSize }), { loss: 'loss', params: names, keep: ['correct'] })
    assert.deepEqual(training.graph.outputs.map(o => o.name), ['loss', ...names.map(gradientName), 'correct'])
    const session = await createSession(training)
    const weights = initMlpWeights(c, 11)
    const optimizer = createAdamW({ lr: 0.01 })
    const accuracy = async (): Promise<number> => {
      let correct = 0
      for (let k = 0; k < 4; k++) correct += (await run(session, { ...blobs(c, batchSize, 500 + k), ...parameterFeeds(c, weights) })).correct[0]
      return correct / (4 * batchSize)
    }
    const before = await accuracy()
    let after = before
    let step = 0
    for (; step < 300 && after <= 0.9; step++) {
      const out = await run(session, { ...blobs(c, batchSize, step), ...parameterFeeds(c, weights) })
      optimizer.step(weights, Object.fromEntries(names.map(n => [n, out[gradientName(n)]])))
      if (step % 10 === 9) after = await accuracy()
    }
    assert.ok(after > 0.9, `held-out accuracy ${after} after ${step} steps, from ${before}`)
    assert.ok(before < 0.7, `held-out accuracy ${before} before training`)
  })

  it('is loaded by onnxruntime from a directory with external data, for any batch size, and read back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'onnx-mlp-'))
    try {
      const weights = initMlpWeights(config, 13)
      const written = writeModel(buildMlpClassifier(config, weights), { externalData: { location: 'model.onnx_data', threshold: 64 } })
      await writeFile(join(dir, 'model.onnx'), written.model)
      await writeFile(join(dir, 'model.onnx_data'), written.externalData ?? new Uint8Array(0))
      await writeFile(join(dir, 'config.json'), JSON.stringify(mlpHfConfig(config)))
      const session = await InferenceSession.create(join(dir, 'model.onnx'))
      assert.deepEqual([session.inputNames, session.outputNames], [['features'], ['logits']])
      for (const n of [1, 5]) {
        const out = await session.run({ features: tensor(randomFloats(rng(n), [n, config.inputs])) })
        assert.deepEqual(out.logits.dims, [n, config.classes])
      }
      const external = await readFile(join(dir, 'model.onnx_data'))
      const read = readModel(await readFile(join(dir, 'model.onnx')), { externalData: () => external })
      const loaded = mlpConfigFromHf(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')))
      assert.deepEqual(readWeights(read, mlpParameterShapes(loaded).map(s => s.name)), weights)
    } finally {
      await rm(dir, { recursive: true })
    }
  })
})
