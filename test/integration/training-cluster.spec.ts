/**
 * Data-parallel training across three daemons, each its own process: a
 * classifier and a small GPT trained on 2 and 3 nodes end with the weights
 * of training on one node with the same global batch and seed; the loss
 * falls; the trained model downloads as one ONNX file that onnxruntime runs,
 * and the language model is served by the inference API at once; and a
 * worker killed mid-job is dropped while the job goes on to completion.
 */
import assert from 'node:assert/strict'
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as ort from 'onnxruntime-node'
import { encodeTextDataset } from '@node-daemon/training'
import { readCorpus } from '@node-daemon/models'
import { tinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import { FAST, ProcessCluster, agreedLeader, call, waitFor } from '../helpers/cluster.ts'
import { CLASSIFIER, FEATURES, addDataset, blobs, finished, maxDifference, train, weightsOf } from '../helpers/training.ts'
import type { TinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import type { Member } from '../helpers/cluster.ts'

describe('training across a three-node cluster', () => {
  const cluster = new ProcessCluster(FAST)
  let models: TinyModels
  let first: Member

  before(async () => {
    models = await tinyModels()
    first = await cluster.add()
    await cluster.add()
    await cluster.add()
    await agreedLeader(cluster.members)
  })

  after(async () => {
    await cluster.stop()
    await rm(models.root, { recursive: true, force: true })
  })

  it('trains a classifier on 1 and 3 nodes to the same weights, and the model runs anywhere', async () => {
    const dataset = await addDataset(first, 'blobs', blobs(240, 1))
    // SGD: AdamW divides by the gradient's running magnitude, so a weight whose gradient is float noise around 0 moves by a whole step either way.
    const base = { dataset, model: CLASSIFIER, optimizer: 'sgd', epochs: 4, batch_size: 30, learning_rate: 0.1, seed: 5, checkpoint_every: 10 }
    const one = await finished(first, await train(first, { ...base, nodes: 1, name: 'blobs-one' }))
    const three = await finished(first, await train(first, { ...base, nodes: 3, name: 'blobs-three' }))
    assert.equal(one.status, 'completed')
    assert.equal(three.status, 'completed')
    assert.equal(three.nodes.length, 3)
    // Checkpoints bring dropped workers back: none may have been dropped.
    assert.ok(three.nodes.every((n: any) => n.status !== 'dropped' && n.drops === 0), JSON.stringify(three.nodes))
    assert.equal(three.progress.step, 32)
    assert.ok(three.progress.loss < 0.5, `loss ${three.progress.loss}`)
    assert.ok(three.progress.accuracy > 0.9, `accuracy ${three.progress.accuracy}`)
    // Float tolerance: onnxruntime sums a batch of 30 in another order than three slices of 10, about 1e-7 a step, which 32 steps of momentum grow.
    const difference = maxDifference(await weightsOf(first, one.checkpoint_cid), await weightsOf(first, three.checkpoint_cid))
    assert.ok(difference < 2e-3, `the weights differ by ${difference}`)

    const download = await fetch(`${cluster.members[2].api}/api/v1/models/${three.model_id}/download`)
    assert.equal(download.status, 200)
    const session = await ort.InferenceSession.create(new Uint8Array(await download.arrayBuffer()))
    const row = new Float32Array([2, 0, 0, 2])
    const out = await session.run({ features: new ort.Tensor('float32', row, [1, FEATURES]) })
    const logits = out.logits.data as Float32Array
    assert.equal(logits.indexOf(Math.max(...logits)), 0)
    await session.release()
  })

  it('trains the small GPT on 2 nodes as on 1, and serves the result', async () => {
    const form = new FormData()
    form.append('modelId', 'tiny-train')
    for (const file of await readdir(models.decoder)) form.append('file', new Blob([await readFile(join(models.decoder, file))]), file)
    const upload = await call(first, '/api/models/upload', { method: 'POST', body: form })
    assert.equal(upload.status, 201, JSON.stringify(upload.body))
    const [book] = await readCorpus()
    const texts = book.slice(0, 20_000).split(/\n\s*\n/).filter(t => t.trim() !== '')
    const dataset = await addDataset(first, 'austen', encodeTextDataset(texts))
    const base = { dataset, model: 'tiny-train', optimizer: 'sgd', epochs: 1, batch_size: 8, sequence_length: 32, learning_rate: 0.1, seed: 2, checkpoint_every: 5 }
    const one = await finished(first, await train(first, { ...base, nodes: 1, name: 'tiny-one' }))
    const two = await finished(first, await train(first, { ...base, nodes: [first.peerId, cluster.members[1].peerId], name: 'tiny-two' }))
    assert.ok(two.nodes.every((n: any) => n.status !== 'dropped' && n.drops === 0), JSON.stringify(two.nodes))
    assert.ok(two.progress.loss < Math.log(384), `loss ${two.progress.loss} is not below a uniform guess's`)
    const difference = maxDifference(await weightsOf(first, one.checkpoint_cid), await weightsOf(first, two.checkpoint_cid))
    assert.ok(difference < 1e-4, `the weights differ by ${difference}`)
    const generated = await call(cluster.members[1], '/api/generate', { json: { model: two.model_id, prompt: 'Elizabeth', stream: false, options: { temperature: 0, num_predict: 8 } } })
    assert.equal(generated.status, 200, JSON.stringify(generated.body))
    assert.equal(generated.body.done, true)
  })

  it('drops a worker killed mid-job and completes with the others', async () => {
    const dataset = await addDataset(first, 'blobs-big', blobs(600, 2))
    const session = await train(first, { dataset, model: CLASSIFIER, epochs: 40, batch_size: 30, learning_rate: 0.02, seed: 3, checkpoint_every: 50, nodes: 3 })
    const victim = cluster.members[2]
    const running = await waitFor('a few steps', async () => {
      const { body } = await call(first, `/api/v1/training/status?session_id=${session}`)
      return body.progress.step >= 20 ? body : undefined
    }, 120_000)
    assert.notEqual(running.coordinator, victim.peerId)
    assert.deepEqual(running.nodes.map((n: any) => n.status), ['training', 'training', 'training'], JSON.stringify(running.nodes))
    await cluster.kill(victim)
    const done = await finished(first, session)
    assert.equal(done.status, 'completed')
    assert.equal(done.progress.step, 800)
    assert.equal(done.nodes.find((n: any) => n.id === victim.peerId).status, 'dropped')
    assert.ok(done.progress.accuracy > 0.9, `accuracy ${done.progress.accuracy}`)
  })

  it('refuses bad requests with the documented errors', async () => {
    const bad = await call(first, '/api/v1/training/start', { json: { dataset: 'not-a-cid', model: CLASSIFIER } })
    assert.equal(bad.status, 400, JSON.stringify(bad.body))
    const missing = await call(first, '/api/v1/training/status?session_id=training_9999')
    assert.equal(missing.status, 404)
  })
})
