/**
 * The search service over a real node's content, cluster and inference (an
 * in-process daemon with the default models), built here with settings a
 * test can reach: small batches, and snapshots far apart.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import { assetDir, DEFAULT_MODELS } from '@node-daemon/models'
import { TextCodec } from '@node-daemon/runtime'
import { tinyModels } from '../../runtime/test/helpers/tiny-models.ts'
import { upload, waitFor } from '../../../test/helpers/cluster.ts'
import { startTestDaemon } from '../../../test/helpers/daemon.ts'
import { createSearch } from '../src/service.ts'
import type { SearchComponents, SearchInit, SearchService } from '../src/service.ts'
import type { TestDaemon } from '../../../test/helpers/daemon.ts'
import type { AddOptions } from '@node-daemon/content'
import type { EmbedInput, EmbedParams } from '@node-daemon/inference'

const MODEL = 'tiny-embed:latest'
const WORDS = ['harbour', 'lantern', 'orchard', 'quarry', 'meadow', 'ferry', 'granary', 'belfry', 'cistern', 'pasture']

/** Short documents of one chunk each, every one with a word of its own. */
const documents = (n: number, prefix: string): Array<{ text: string, id: string }> =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, text: `The ${WORDS[i % WORDS.length]} of ${prefix}${i} lies past the mill.` }))

describe('search service', { timeout: 240_000 }, () => {
  let daemon: TestDaemon
  let dir: string
  const services: SearchService[] = []

  async function service (init: Partial<SearchInit>, inference: SearchComponents['inference'] = daemon.node.inference): Promise<SearchService> {
    const s = createSearch({ content: daemon.node.content, cluster: daemon.node.cluster, inference, log: logger('test:search') }, { dir: join(dir, String(services.length)), defaultModel: MODEL, ...init })
    await s.start()
    services.push(s)
    return s
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'search-service-'))
    daemon = await startTestDaemon({ inference: { defaultModels: true } })
    await waitFor('the default embedding model', async () => (await daemon.node.cluster.getAllModels()).some(m => m.modelId === MODEL), 120_000)
  })
  after(async () => {
    await Promise.allSettled(services.map(async s => s.stop()))
    await daemon?.cleanup()
    await rm(dir, { recursive: true, force: true })
  })

  it('moves the head by time, not per batch, and once at the end with the indexes up to date', async () => {
    const search = await service({ batchChunks: 8, snapshotMs: 600_000 })
    await search.createCollection({ name: 'cadence', chunkTokens: 32, replicationFactor: 1 })
    const started = await search.index('cadence', { documents: documents(40, 'doc') })
    const job = await search.wait(started.id)
    assert.equal(job.status, 'completed', job.error)
    assert.equal(job.chunks, 40)
    assert.equal(job.batches, 5)
    assert.equal(job.snapshots, 1, 'no snapshot mid-job: the cadence is longer than the job')
    const collection = await search.collection('cadence')
    assert.deepEqual([collection.version, collection.headCID, collection.chunks], [1, job.headCID, 40])
    const [top] = await search.search({ collection: 'cadence', queryText: 'doc37', topK: 1, hopCount: 0 })
    assert.equal(top.doc_id, 'doc37')
    assert.equal(top.ranks?.bm25, 1)

    // A cadence of 0 moves the head after every batch, and again at the end once the indexes are up to date.
    const often = await service({ batchChunks: 8, snapshotMs: 0 })
    const second = await often.wait((await often.index('cadence', { documents: documents(16, 'more') })).id)
    assert.equal(second.status, 'completed', second.error)
    assert.deepEqual([second.batches, second.snapshots, second.version], [2, 3, 4])
    const [found] = await often.search({ collection: 'cadence', queryText: 'more15', topK: 1, hopCount: 0 })
    assert.equal(found.doc_id, 'more15')
  })

  it('embeds a document of one chunk from the tokens chunking found, not tokenizing it again', async () => {
    const real = daemon.node.inference
    const inputs: EmbedInput[] = []
    const inference = new Proxy(real, {
      get: (target, key) => key === 'embed'
        ? async (params: EmbedParams, options?: object) => { inputs.push(...params.input); return target.embed(params, options) }
        : (target as any)[key]?.bind?.(target) ?? (target as any)[key]
    })
    const search = await service({ batchChunks: 8, snapshotMs: 600_000 }, inference)
    await search.createCollection({ name: 'tokens', chunkTokens: 32, replicationFactor: 1 })
    const docs = documents(4, 'tok')
    const job = await search.wait((await search.index('tokens', { documents: docs })).id)
    assert.equal(job.status, 'completed', job.error)
    const model = assetDir(DEFAULT_MODELS.embed)
    const codec = new TextCodec(JSON.parse(await readFile(join(model, 'tokenizer.json'), 'utf8')), JSON.parse(await readFile(join(model, 'tokenizer_config.json'), 'utf8')))
    assert.deepEqual(inputs, docs.map(d => ({ text: d.text, ids: codec.encode(d.text) })))
    const { embeddings: [vector] } = await real.embed({ model: MODEL, input: [docs[2].text], inputType: 'document' })
    const [top] = await search.search({ collection: 'tokens', queryVector: vector, topK: 1, hopCount: 0 })
    assert.equal(top.doc_id, 'tok2')
  })

  it('stores inline documents as content in one add, whose entries give the chunks their CIDs', async () => {
    const real = daemon.node.content
    const adds: AddOptions[] = []
    const content = new Proxy(real, {
      get: (target, key) => key === 'addAll'
        ? (source: Parameters<typeof real.addAll>[0], options: AddOptions = {}) => { adds.push(options); return target.addAll(source, options) }
        : (target as any)[key]?.bind?.(target) ?? (target as any)[key]
    })
    const s = createSearch({ content, cluster: daemon.node.cluster, inference: daemon.node.inference, log: logger('test:search') }, { dir: join(dir, String(services.length)), defaultModel: MODEL, batchChunks: 4, snapshotMs: 600_000 })
    await s.start()
    services.push(s)
    await s.createCollection({ name: 'once', chunkTokens: 32, replicationFactor: 1 })
    const docs = documents(10, 'once')
    const job = await s.wait((await s.index('once', { documents: docs })).id)
    assert.equal(job.status, 'completed', job.error)
    const inline = adds.filter(options => options.wrapWithDirectory === true)
    assert.equal(inline.length, 1, 'the documents are hashed once, by the add that stores them')
    assert.notEqual(inline[0].onlyHash, true)
    const hits = await s.search({ collection: 'once', queryText: 'once7', topK: 1, hopCount: 0 })
    assert.equal(hits[0].doc_id, 'once7')
    assert.equal(Buffer.from(await real.readFile(hits[0].source_cid as string)).toString(), docs[7].text)
    const listing = await real.ls(hits[0].root_cid as string)
    assert.equal(listing.entries.length, docs.length)
    assert.ok(listing.entries.some(e => e.name === hits[0].path && e.cid.toString() === hits[0].source_cid))
  })

  it('stores a queued job\'s documents as content once the job before it started, not all of a queue\'s at once', async () => {
    const real = daemon.node.content
    const adds: string[] = []
    const content = new Proxy(real, {
      get: (target, key) => key === 'addAll'
        ? async function * (source: Array<{ path: string }>, options: AddOptions = {}) {
          if (options.wrapWithDirectory === true) adds.push(source[0].path)
          yield * target.addAll(source, options)
          if (options.wrapWithDirectory === true) adds.push(`end of ${source[0].path}`)
        }
        : (target as any)[key]?.bind?.(target) ?? (target as any)[key]
    })
    // The first job's embedding is held: the second job cannot start, so the third job's documents wait.
    const gate = Promise.withResolvers<void>()
    const inference = new Proxy(daemon.node.inference, {
      get: (target, key) => key === 'embed'
        ? async (params: EmbedParams, options?: object) => { await gate.promise; return target.embed(params, options) }
        : (target as any)[key]?.bind?.(target) ?? (target as any)[key]
    })
    const s = createSearch({ content, cluster: daemon.node.cluster, inference, log: logger('test:search') }, { dir: join(dir, String(services.length)), defaultModel: MODEL, batchChunks: 4, snapshotMs: 600_000 })
    await s.start()
    services.push(s)
    await s.createCollection({ name: 'paced', chunkTokens: 32, replicationFactor: 1 })
    const jobs = []
    for (let j = 0; j < 3; j++) jobs.push(await s.index('paced', { documents: documents(3, `paced${j}-`).map((d, i) => ({ ...d, id: `${j}:${i}` })) }))
    try {
      await waitFor('the second job\'s documents stored', async () => adds.length >= 4, 30_000)
      // Time for a third add to begin, had it only waited for the second.
      await new Promise(resolve => setTimeout(resolve, 300))
      assert.equal(adds.length, 4, adds.join(', '))
    } finally {
      gate.resolve()
    }
    for (const started of jobs) assert.equal((await s.wait(started.id)).status, 'completed')
    assert.equal(adds.length, 6)
    assert.equal((await s.collection('paced')).chunks, 9)
  })

  it('re-embeds a collection with another model in the background, and switches its head and model when done', async () => {
    const models = await tinyModels()
    try {
      // The tiny test encoder: 32 dimensions where the default has 128, so the vectors tell which model made them.
      await upload({ api: daemon.url }, 'tiny-other', models.encoder)
      const other = (await daemon.node.inference.show('tiny-other')).name
      const search = await service({ batchChunks: 8 })
      await search.createCollection({ name: 'swap', chunkTokens: 32, replicationFactor: 1 })
      const indexed = await search.wait((await search.index('swap', { documents: documents(24, 'swap') })).id)
      assert.equal(indexed.status, 'completed', indexed.error)
      const before = await search.collection('swap')
      await assert.rejects(search.reindex('swap', MODEL), { name: 'InvalidSearchRequestError' })

      const started = await search.reindex('swap', 'tiny-other')
      assert.deepEqual([started.status, started.embeddingModel], ['running', other])
      // Until it ends, the collection and its queries stay on the old head and model.
      const during = await search.collection('swap')
      assert.deepEqual([during.headCID, during.embeddingModel], [before.headCID, MODEL])
      const [old] = await search.search({ collection: 'swap', queryText: 'swap7', topK: 1, hopCount: 0 })
      assert.equal(old.doc_id, 'swap7')

      const job = await search.wait(started.id)
      assert.equal(job.status, 'completed', job.error)
      assert.equal(job.chunks, 24)
      const after = await search.collection('swap')
      assert.deepEqual([after.embeddingModel, after.headCID, after.version, after.chunks], [other, job.headCID, before.version + 1, 24])
      const { embeddings: [vector] } = await daemon.node.inference.embed({ model: other, input: [documents(1, 'swap')[0].text], inputType: 'document' })
      assert.equal(vector.length, 32)
      const [hit] = await search.search({ collection: 'swap', queryVector: vector, topK: 1, hopCount: 0 })
      assert.equal(hit.doc_id, 'swap0', 'the chunks hold the new model\'s vectors')
      await assert.rejects(search.search({ collection: 'swap', queryVector: new Array(128).fill(0.1), topK: 1 }), { name: 'InvalidSearchRequestError' })
      // A job after it appends to the new table, with the new model.
      const late = await search.wait((await search.index('swap', { documents: documents(3, 'late') })).id)
      assert.equal(late.status, 'completed', late.error)
      assert.equal((await search.collection('swap')).chunks, 27)
      const [found] = await search.search({ collection: 'swap', queryText: 'late2', topK: 1, hopCount: 0 })
      assert.equal(found.doc_id, 'late2')
    } finally {
      await rm(models.root, { recursive: true, force: true })
    }
  })

  it('embeds the chunks another node indexed during a re-index too, and then switches', async () => {
    const models = await tinyModels()
    try {
      await upload({ api: daemon.url }, 'tiny-catchup', models.encoder)
      const other = (await daemon.node.inference.show('tiny-catchup')).name
      // The re-index's first embedding waits until the other node's job moved the head.
      let release!: () => void
      const gate = new Promise<void>(resolve => { release = resolve })
      const real = daemon.node.inference
      const held: SearchComponents['inference'] = {
        show: async (...args) => real.show(...args),
        rerank: async (...args) => real.rerank(...args),
        embed: async (params, options) => {
          if (params.model === other) await gate
          return real.embed(params, options)
        }
      }
      const a = await service({ batchChunks: 8 }, held)
      const b = await service({ batchChunks: 8 })
      await a.createCollection({ name: 'catchup', chunkTokens: 32, replicationFactor: 1 })
      assert.equal((await a.wait((await a.index('catchup', { documents: documents(12, 'first') })).id)).status, 'completed')
      const started = await a.reindex('catchup', 'tiny-catchup')
      const meanwhile = await b.wait((await b.index('catchup', { documents: documents(5, 'meanwhile') })).id)
      assert.equal(meanwhile.status, 'completed', meanwhile.error)
      release()
      const job = await a.wait(started.id)
      assert.equal(job.status, 'completed', job.error)
      const after = await a.collection('catchup')
      assert.deepEqual([after.embeddingModel, after.headCID, after.chunks], [other, job.headCID, 17])
      const { embeddings: [vector] } = await real.embed({ model: other, input: [documents(5, 'meanwhile')[3].text], inputType: 'document' })
      const [hit] = await a.search({ collection: 'catchup', queryVector: vector, topK: 1, hopCount: 0 })
      assert.equal(hit.doc_id, 'meanwhile3', 'a chunk indexed during the re-index holds the new model\'s vector')
    } finally {
      await rm(models.root, { recursive: true, force: true })
    }
  })

  it('closes an evicted replica only once the queries using it are done', async () => {
    const search = await service({ batchChunks: 8 })
    // More collections than replicas kept open (8): queries over all of them at once evict replicas others are reading.
    const names = Array.from({ length: 10 }, (_, i) => `evict${i}`)
    for (const name of names) {
      await search.createCollection({ name, chunkTokens: 32, replicationFactor: 1 })
      const job = await search.wait((await search.index(name, { documents: documents(2, name) })).id)
      assert.equal(job.status, 'completed', job.error)
    }
    const queries = Array.from({ length: 40 }, (_, i) => names[(i * 3) % names.length])
    const results = await Promise.all(queries.map(async name => search.search({ collection: name, queryText: `${name}1 mill`, topK: 1, hopCount: 0 })))
    assert.deepEqual(results.map(([top]) => top?.doc_id), queries.map(name => `${name}1`))
    // The evicted ones are closed and deleted once done with: at most the 8 kept stay on disk.
    await waitFor('the evicted replicas deleted', async () => (await readdir(join(dir, String(services.length - 1), 'replicas'))).length <= 8, 10_000)
  })
})
