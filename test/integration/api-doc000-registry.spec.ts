/**
 * Document 000's registry routes on a real in-process node: ai/model/add and
 * ai/dataset/add keep the metadata they were given (framework, description,
 * license) and give it back, and ai/metrics filters by model_id and
 * metrics_type over real inference and training jobs.
 */
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { assetDir, DEFAULT_MODELS } from '@node-daemon/models'
import { call } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import { blobs, CLASSIFIER, finished, train } from '../helpers/training.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

/** A model directory of the embedded defaults as ai/model/add's form, described by `metadata`. */
async function modelForm (name: string, metadata: Record<string, string>): Promise<FormData> {
  const form = new FormData()
  form.append('metadata', JSON.stringify(metadata))
  const dir = assetDir(name)
  for (const file of await readdir(dir)) form.append('file', new Blob([await readFile(join(dir, file))]), file)
  return form
}

function datasetForm (fields: Record<string, string>, bytes: Uint8Array): FormData {
  const form = new FormData()
  for (const [key, value] of Object.entries(fields)) form.append(key, value)
  form.append('file', new Blob([bytes as Uint8Array<ArrayBuffer>]), 'blobs.safetensors')
  return form
}

describe("document 000's model and dataset registry on a real node", { timeout: 300_000 }, () => {
  let d: TestDaemon
  let node: { api: string }

  before(async () => {
    d = await startTestDaemon()
    node = { api: d.url }
  })
  after(async () => { await d?.cleanup() })

  it('keeps the framework, description and license ai/model/add was given, and gives them back', async () => {
    const described = { framework: 'onnx', description: 'the embedded generator, described', license: 'Apache-2.0' }
    const added = await call(node, '/api/v0/ai/model/add', { method: 'POST', body: await modelForm(DEFAULT_MODELS.generate, { name: 'described-gpt', ...described }) })
    assert.equal(added.status, 200, JSON.stringify(added.body))
    assert.deepEqual(pick(added.body.metadata), described)

    const listed = await call(node, '/api/v0/ai/model/list')
    assert.deepEqual(pick(listed.body.models.find((m: { name: string }) => m.name === 'described-gpt:latest')), described)
    const got = await call(node, '/api/ai_model_get', { json: { args: ['described-gpt:latest'] } })
    assert.deepEqual(pick(got.body.metadata), described, JSON.stringify(got.body))

    // The method caller registers a model already in IPFS with the same metadata.
    const again = await call(node, '/api/ai_model_add', { json: { args: [added.body.cid, { name: 'described-copy', framework: 'onnxruntime', license: 'MIT' }] } })
    assert.equal(again.status, 200, JSON.stringify(again.body))
    assert.deepEqual([again.body.metadata.framework, again.body.metadata.license], ['onnxruntime', 'MIT'])
  })

  it('keeps the framework, description and license ai/dataset/add was given, as fields or in metadata, and a new description of the same bytes', async () => {
    const bytes = blobs(60, 7)
    const added = await call(node, '/api/v0/ai/dataset/add', { method: 'POST', body: datasetForm({ name: 'described-blobs', framework: 'pytorch', description: 'three blobs', license: 'CC-BY-4.0' }, bytes) })
    assert.equal(added.status, 200, JSON.stringify(added.body))
    assert.deepEqual(pick(added.body.metadata), { framework: 'pytorch', description: 'three blobs', license: 'CC-BY-4.0' })
    assert.deepEqual([added.body.metadata.name, added.body.metadata.format, added.body.metadata.records], ['described-blobs', 'tensors', 60])

    const redescribed = await call(node, '/api/v0/ai/dataset/add', { method: 'POST', body: datasetForm({ metadata: JSON.stringify({ name: 'described-blobs', description: 'the same blobs, described again' }) }, bytes) })
    assert.equal(redescribed.status, 200, JSON.stringify(redescribed.body))
    assert.equal(redescribed.body.cid, added.body.cid)
    assert.deepEqual(pick(redescribed.body.metadata), { framework: 'pytorch', description: 'the same blobs, described again', license: 'CC-BY-4.0' }, 'what the new form leaves out stays')
    const record = await d.node.cluster.getModel('described-blobs')
    assert.deepEqual([record.description, record.framework, record.license], ['the same blobs, described again', 'pytorch', 'CC-BY-4.0'], 'the replicated record holds them')

    const bad = await call(node, '/api/v0/ai/dataset/add', { method: 'POST', body: datasetForm({ metadata: '[1]' }, bytes) })
    assert.equal(bad.status, 400, JSON.stringify(bad.body))

    // Document 000's methods: ai_dataset_get reads the registration, ai_dataset_add takes a dataset in the call.
    const got = await call(node, '/api/ai_dataset_get', { json: { args: ['described-blobs'] } })
    assert.deepEqual([got.status, got.body.cid, got.body.metadata.license], [200, added.body.cid, 'CC-BY-4.0'], JSON.stringify(got.body))
    const text = '{"text": "one"}\n{"text": "two"}\n'
    const called = await call(node, '/api/ai_dataset_add', { json: { args: [text, { name: 'called-text', license: 'MIT' }] } })
    assert.equal(called.status, 200, JSON.stringify(called.body))
    assert.deepEqual([called.body.metadata.name, called.body.metadata.format, called.body.metadata.records, called.body.metadata.license], ['called-text', 'text', 2, 'MIT'])
  })

  it('filters ai/metrics by model_id (a bare name meaning :latest) and metrics_type', async () => {
    const generated = await call(node, '/api/generate', { json: { model: 'described-gpt', prompt: 'Once upon a time', stream: false, options: { num_predict: 3, temperature: 0 } } })
    assert.equal(generated.status, 200, JSON.stringify(generated.body))
    await call(node, '/api/v0/ai/dataset/add', { method: 'POST', body: datasetForm({ name: 'metric-blobs' }, blobs(60, 3)) })
    const session = await train(node, { dataset: 'metric-blobs', model: CLASSIFIER, epochs: 1, batch_size: 20 })
    await finished(node, session)

    const all = await call(node, '/api/v0/ai/metrics')
    assert.equal(all.status, 200, JSON.stringify(all.body))
    assert.ok(all.body.metrics.training.some((t: { task_id: string }) => t.task_id === session), JSON.stringify(all.body))
    assert.ok(all.body.metrics.inference.some((m: { model_id: string }) => m.model_id === 'described-gpt:latest'), JSON.stringify(all.body))

    const ofModel = await call(node, '/api/v0/ai/metrics?model_id=described-gpt&metrics_type=inference')
    assert.equal(ofModel.status, 200, JSON.stringify(ofModel.body))
    assert.deepEqual(Object.keys(ofModel.body.metrics), ['inference'])
    const [inference, ...others] = ofModel.body.metrics.inference
    assert.deepEqual(others, [])
    assert.deepEqual([inference.model_id, inference.requests, inference.completed, inference.failed], ['described-gpt:latest', 1, 1, 0])
    assert.equal(inference.eval_tokens, generated.body.eval_count)
    assert.ok(inference.tokens_per_second > 0, JSON.stringify(inference))

    const training = await call(node, `/api/v0/ai/metrics?task_id=${session}&metrics_type=training`)
    assert.deepEqual(Object.keys(training.body.metrics), ['training'])
    assert.deepEqual(training.body.metrics.training.map((t: { task_id: string }) => t.task_id), [session])
    assert.ok(Number.isFinite(training.body.metrics.training[0].loss), JSON.stringify(training.body))

    const none = await call(node, '/api/v0/ai/metrics?model_id=described-gpt&metrics_type=training')
    assert.deepEqual(none.body.metrics, { training: [] }, 'the model trained in no session')
    const bad = await call(node, '/api/v0/ai/metrics?metrics_type=visual')
    assert.equal(bad.status, 422, JSON.stringify(bad.body))
  })
})

/** The fields a registration describes its model or dataset with. */
function pick (metadata: Record<string, unknown> | undefined): object {
  return { framework: metadata?.framework, description: metadata?.description, license: metadata?.license }
}
