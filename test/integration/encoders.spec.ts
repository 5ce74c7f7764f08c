/**
 * Encoders through one daemon: a cross-encoder reranker imported like any
 * model and run by the node's rerank operation (what the search issue
 * calls), and an embedding model's query and document prefixes picked by
 * `input_type` in each family's embeddings route.
 */
import assert from 'node:assert/strict'
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Runtime } from '../../packages/runtime/src/runtime.ts'
import { tinyModels, writeReranker } from '../../packages/runtime/test/helpers/tiny-models.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const QUERY = 'Who is the youngest daughter?'
const DOCUMENTS = ['Emma', 'It is a truth universally acknowledged', 'She was the youngest of the two daughters of a most affectionate, indulgent father']

async function post (daemon: TestDaemon, path: string, body: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${daemon.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
  return { status: res.status, body: await res.json() }
}

async function upload (daemon: TestDaemon, name: string, dir: string): Promise<void> {
  const form = new FormData()
  form.append('modelId', name)
  for (const file of await readdir(dir)) form.append('file', new Blob([await readFile(join(dir, file))]), file)
  const res = await fetch(`${daemon.url}/api/models/upload`, { method: 'POST', body: form, signal: AbortSignal.timeout(60_000) })
  assert.equal(res.status, 201, await res.text())
}

describe('encoders through a daemon', { timeout: 240_000 }, () => {
  let models: TinyModels
  let daemon: TestDaemon
  let reranker: string

  before(async () => {
    models = await tinyModels()
    daemon = await startTestDaemon()
    reranker = join(models.root, 'reranker')
    await writeReranker(models.encoder, reranker, 1)
    const prefixed = join(models.root, 'prefixed')
    await cp(models.encoder, prefixed, { recursive: true })
    await writeFile(join(prefixed, 'config_sentence_transformers.json'), JSON.stringify({ prompts: { query: 'query: ', document: 'passage: ' } }))
    await upload(daemon, 'tiny-rerank', reranker)
    await upload(daemon, 'tiny-e5', prefixed)
    await upload(daemon, 'tiny-bare', models.encoder)
  })
  after(async () => {
    await daemon?.cleanup()
    if (models != null) await rm(models.root, { recursive: true, force: true })
  })

  it('reranks documents best first, scored as the runtime scores them, and keeps the best top_n', async () => {
    const result = await daemon.node.inference.rerank({ model: 'tiny-rerank', query: QUERY, documents: DOCUMENTS, topN: 2 })
    const runtime = new Runtime()
    await runtime.start()
    try {
      const { scores } = await runtime.rerank({ key: 'r', name: 'r', dir: reranker }, QUERY, DOCUMENTS)
      const best = scores.map((score, index) => ({ index, score })).sort((a, b) => b.score - a.score).slice(0, 2)
      assert.deepEqual(result.results.map(r => r.index), best.map(r => r.index))
      for (const [k, r] of result.results.entries()) assert.ok(Math.abs(r.score - best[k].score) < 1e-6)
    } finally {
      await runtime.stop()
    }
    assert.equal(result.model, 'tiny-rerank:latest')
    assert.ok(result.promptTokens > 0)
    await assert.rejects(daemon.node.inference.rerank({ model: 'tiny-bare', query: QUERY, documents: DOCUMENTS }), { name: 'UnsupportedModelError' })
    await assert.rejects(daemon.node.inference.rerank({ model: 'tiny-rerank', query: QUERY, documents: DOCUMENTS, topN: 0 }), { name: 'InvalidInferenceRequestError' })
    const embed = await post(daemon, '/api/embed', { model: 'tiny-rerank', input: 'x' })
    assert.equal(embed.status, 400, JSON.stringify(embed.body))
  })

  it('puts the query or document prefix before texts as input_type says, the document\'s by default, in every family', async () => {
    const text = DOCUMENTS[2]
    const [query, document, bare] = (await post(daemon, '/api/embed', { model: 'tiny-bare', input: ['query: ' + text, 'passage: ' + text, text] })).body.embeddings
    const ollama = async (inputType?: string): Promise<number[]> => (await post(daemon, '/api/embed', { model: 'tiny-e5', input: text, input_type: inputType })).body.embeddings[0]
    const near = (a: number[], b: number[]): boolean => a.every((x, i) => Math.abs(x - b[i]) < 1e-5)
    assert.ok(near(await ollama('query'), query))
    assert.ok(near(await ollama('document'), document))
    assert.ok(near(await ollama(), document))
    assert.ok(!near(await ollama(), bare))
    const openai = await post(daemon, '/v1/embeddings', { model: 'tiny-e5', input: text, input_type: 'query' })
    assert.ok(near(openai.body.data[0].embedding, query))
    const doc000 = await post(daemon, '/api/v0/embeddings/generate', { model: 'tiny-e5', texts: [text], input_type: 'query' })
    assert.ok(near(doc000.body.embeddings[0], query), JSON.stringify(doc000.body).slice(0, 200))
    const bad = await post(daemon, '/api/embed', { model: 'tiny-e5', input: text, input_type: 'passage' })
    assert.equal(bad.status, 400)
  })

  it('reorders a hybrid search\'s chunks by the cross-encoder given as rerank_model', async () => {
    const created = await post(daemon, '/api/v0/search/collection/create', { name: 'reranked', embedding_model: 'tiny-bare', chunk_tokens: 48 })
    assert.equal(created.status, 200, JSON.stringify(created.body))
    const indexed = await post(daemon, '/api/v0/search/index', { collection: 'reranked', wait: true, documents: DOCUMENTS.map(text => ({ text })) })
    assert.equal(indexed.body.job.status, 'completed', JSON.stringify(indexed.body))
    const query = { collection: 'reranked', query_text: QUERY, top_k: 3, entity_types: ['chunk'] }
    const reranked = await post(daemon, '/api/v0/search/hybrid', { ...query, rerank_model: 'tiny-rerank' })
    assert.equal(reranked.status, 200, JSON.stringify(reranked.body))
    const expected = await daemon.node.inference.rerank({ model: 'tiny-rerank', query: QUERY, documents: DOCUMENTS })
    assert.deepEqual(reranked.body.results.map((r: any) => r.text), expected.results.map(r => DOCUMENTS[r.index]))
    for (const [k, r] of reranked.body.results.entries()) assert.ok(Math.abs(r.score - expected.results[k].score) < 1e-6)
    const bad = await post(daemon, '/api/v0/search/hybrid', { ...query, rerank_model: 'tiny-bare' })
    assert.equal(bad.status, 400, JSON.stringify(bad.body))
  })
})
