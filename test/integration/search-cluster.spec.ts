/**
 * Search across three in-process nodes: a corpus cut from the public-domain
 * novels the default models learn from is indexed on one node, in two jobs
 * (a snapshot and a head move through Raft at each job's end); another node finds passages
 * by BM25 and by vector, under metadata filters, and hops from chunks to
 * their files, directories and a dataset of the registry. With the indexing
 * node stopped, the others still answer from their replicas of the head.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Document } from '@langchain/core/documents'
import { Embeddings } from '@langchain/core/embeddings'
import { VectorStore } from '@langchain/core/vectorstores'
import { readCorpus } from '@node-daemon/models'
import { minimalPdf } from '../../packages/search/test/helpers/pdf.ts'
import { waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import { runCli } from '../helpers/process.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { EmbeddingsInterface } from '@langchain/core/embeddings'

const BOOKS = ['pride', 'sense', 'persuasion']

async function callJson (url: string, body: unknown): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
  const json = await res.json()
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

/** LangChain's Embeddings over the node's embeddings route. */
class NodeEmbeddings extends Embeddings {
  readonly url: string
  constructor (url: string) {
    super({})
    this.url = url
  }

  async embedDocuments (texts: string[]): Promise<number[][]> {
    return (await callJson(`${this.url}/api/v0/embeddings/generate`, { texts })).embeddings
  }

  async embedQuery (text: string): Promise<number[]> {
    return (await callJson(`${this.url}/api/v0/embeddings/generate`, { texts: [text], input_type: 'query' })).embeddings[0]
  }
}

/** A LangChain.js vector store whose collection lives in the cluster: the node embeds, indexes and searches. */
class NodeVectorStore extends VectorStore {
  declare FilterType: Record<string, unknown>
  readonly url: string
  readonly collectionName: string
  cid = ''

  constructor (embeddings: EmbeddingsInterface, args: { url: string, collectionName: string }) {
    super(embeddings, args)
    this.url = args.url
    this.collectionName = args.collectionName
  }

  _vectorstoreType (): string {
    return 'node-daemon'
  }

  async addVectors (): Promise<void> {
    throw new Error('the node embeds documents itself: use addDocuments')
  }

  async addDocuments (documents: Document[]): Promise<void> {
    const body = { collection_name: this.collectionName, documents: documents.map(d => ({ page_content: d.pageContent, metadata: d.metadata })) }
    this.cid = (await callJson(`${this.url}/api/v0/ai/langchain/vectorstore/create`, body)).cid
  }

  async similaritySearchVectorWithScore (query: number[], k: number, filter?: this['FilterType']): Promise<Array<[Document, number]>> {
    const { results } = await callJson(`${this.url}/api/v0/ai/langchain/vectorstore/search`, { collection_name: this.collectionName, query_vector: query, k, filter })
    return results.map((r: any) => [new Document({ pageContent: r.page_content, metadata: r.metadata, id: r.id }), r.score])
  }

  static async fromDocuments (docs: Document[], embeddings: EmbeddingsInterface, args: { url: string, collectionName: string }): Promise<NodeVectorStore> {
    const store = new NodeVectorStore(embeddings, args)
    await store.addDocuments(docs)
    return store
  }
}

/** Documents of a few paragraphs each, in order through each novel: about a hundred a novel. */
async function corpus (): Promise<Array<{ book: string, part: number, text: string }>> {
  const out: Array<{ book: string, part: number, text: string }> = []
  for (const [b, novel] of (await readCorpus()).entries()) {
    const paragraphs = novel.split(/\n\s*\n/).map(p => p.trim()).filter(p => p.length > 200)
    for (let part = 0; part < 100; part++) out.push({ book: BOOKS[b], part, text: paragraphs.slice(part * 2, part * 2 + 2).join('\n\n') })
  }
  return out
}

async function post (d: TestDaemon, path: string, body: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${d.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
  return { status: res.status, body: await res.json() }
}

async function ok (d: TestDaemon, path: string, body: unknown): Promise<any> {
  const res = await post(d, path, body)
  assert.equal(res.status, 200, JSON.stringify(res.body))
  return res.body
}

describe('search across a three-node cluster', { timeout: 180_000 }, () => {
  const daemons: TestDaemon[] = []
  let docs: Array<{ book: string, part: number, text: string }>
  let novelsHead: string

  before(async () => {
    docs = await corpus()
    daemons.push(await startTestDaemon({ inference: { defaultModels: true } }))
    for (let i = 0; i < 2; i++) daemons.push(await startTestDaemon({ swarm: { bootstrap: [daemons[0].swarmAddr] } }))
    const [a] = daemons
    await waitFor('three ready members', async () => (await a.node.cluster.nodes()).length === 3 && daemons.every(d => d.node.cluster.isReady()), 60_000)
    await waitFor('the default embedding model', async () => (await a.node.cluster.getAllModels()).some(m => m.modelId === 'tiny-embed:latest'), 120_000)

    await ok(a, '/api/v0/search/collection/create', { name: 'novels', chunk_tokens: 128, overlap_tokens: 16, metadata_schema: { book: 'string', part: 'number' }, replication_factor: 3 })
    // LangChain's form for two novels, LlamaIndex's for the third: two jobs, two snapshots.
    const first = await ok(a, '/api/v0/search/index', { collection: 'novels', wait: true, documents: docs.filter(d => d.book !== 'persuasion').map(d => ({ page_content: d.text, metadata: { book: d.book, part: d.part } })) })
    assert.equal(first.job.status, 'completed', JSON.stringify(first.job))
    const second = await ok(a, '/api/v0/search/index', { collection: 'novels', wait: true, documents: docs.filter(d => d.book === 'persuasion').map(d => ({ text: d.text, metadata: { book: d.book, part: d.part }, id_: `persuasion-${d.part}` })) })
    assert.equal(second.job.status, 'completed', JSON.stringify(second.job))
    // A version per snapshot: each moved the head.
    assert.equal(second.job.version, first.job.snapshots + second.job.snapshots)
    novelsHead = second.job.head_cid

    const files = [
      { path: 'library/notes.md', content: '# Lighthouse keeping\n\nThe lamp of the lighthouse is trimmed at dusk by the keeper.' },
      { path: 'library/page.html', content: '<html><head><title>Bees</title></head><body><p>Honeybees dance to tell the hive where the clover grows.</p><script>ignored()</script></body></html>' },
      { path: 'library/report.pdf', content: minimalPdf(['Glaciers retreat a little further every summer.']) },
      { path: 'library/data/tides.json', content: JSON.stringify({ station: 'harbour', note: 'spring tides follow the new moon' }) },
      { path: 'library/data/image.bin', content: new Uint8Array([0, 1, 2, 3, 255]) }
    ]
    const wrapper = await a.node.content.addDirectory(files.map(f => ({ path: f.path, content: typeof f.content === 'string' ? new TextEncoder().encode(f.content) : f.content })))
    const library = (await a.node.content.ls(`${wrapper?.toString()}/library`)).cid.toString()
    await ok(a, '/api/v0/search/collection/create', { name: 'library', chunk_tokens: 64 })
    const indexed = await ok(a, '/api/v0/search/index', { collection: 'library', cid: library, wait: true })
    assert.equal(indexed.job.status, 'completed', JSON.stringify(indexed.job))
    assert.equal(indexed.job.documents, 4)
    assert.equal(indexed.job.skipped, 1, 'the binary file is left out')
    await a.node.cluster.registerModel({ modelId: 'library-data', modelCID: library, kind: 'dataset' })
  })
  after(async () => { await Promise.allSettled(daemons.map(async d => d.cleanup())) })

  it('records the collections in the cluster state, seen from every node', async () => {
    const listed = await ok(daemons[1], '/api/v0/search/collection/list', {})
    const novels = listed.collections.find((c: any) => c.name === 'novels')
    assert.equal(novels.head_cid, novelsHead)
    assert.ok(novels.version >= 2)
    assert.equal(novels.embedding_model, 'tiny-embed:latest')
    assert.ok(novels.chunks >= 300, `${novels.chunks} chunks`)
  })

  it('finds a passage by BM25 and by vector on a node that did not index it', async () => {
    const b = daemons[1]
    const target = docs.find(d => d.book === 'sense' && d.part === 37) as { text: string }
    const phrase = target.text.split(/\s+/).slice(5, 17).join(' ')
    const byText = await ok(b, '/api/v0/search/hybrid', { collection: 'novels', query_text: phrase, top_k: 5, entity_types: ['chunk'] })
    const top = byText.results[0]
    assert.ok(top.text.includes(phrase.split(' ').slice(0, 4).join(' ')), top.text)
    assert.equal(top.ranks.bm25, 1)
    assert.deepEqual(top.metadata, { book: 'sense', part: 37 })
    assert.equal(top.hop_path.length, 0)
    assert.ok(top.source_cid.length > 0 && top.path.endsWith('.txt'))
    assert.equal(Buffer.from(target.text).subarray(top.byte_range[0], top.byte_range[1]).toString(), top.text, 'the byte range names the chunk in its document')
    // The vector of the chunk's own text finds that chunk first, by the vector list alone.
    const { embeddings: [vector] } = await ok(b, '/api/v0/embeddings/generate', { texts: [top.text] })
    const byVector = await ok(b, '/api/v0/search/hybrid', { collection: 'novels', query_vector: vector, top_k: 3, entity_types: ['chunk'] })
    assert.equal(byVector.results[0].id, top.id)
    assert.equal(byVector.results[0].ranks.vector, 1)
    assert.equal(byVector.results[0].ranks.bm25, undefined)
  })

  it('keeps to the metadata filters: equality, ranges and in', async () => {
    const c = daemons[2]
    const query = { collection: 'novels', query_text: 'a letter from her sister', top_k: 20, entity_types: ['chunk'] }
    const persuasion = await ok(c, '/api/v0/search/hybrid', { ...query, metadata_filters: { book: 'persuasion' } })
    assert.ok(persuasion.results.length > 0)
    assert.ok(persuasion.results.every((r: any) => r.metadata.book === 'persuasion'))
    const range = await ok(c, '/api/v0/search/hybrid', { ...query, metadata_filters: { part: { $gte: 10, $lt: 20 }, book: { $in: ['pride', 'sense'] } } })
    assert.ok(range.results.length > 0)
    assert.ok(range.results.every((r: any) => r.metadata.part >= 10 && r.metadata.part < 20 && r.metadata.book !== 'persuasion'))
    const bad = await post(c, '/api/v0/search/hybrid', { ...query, metadata_filters: { colour: 'red' } })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.success, false)
  })

  it('hops from chunks to their files, directories, siblings and the dataset the directory is', async () => {
    const b = daemons[1]
    const tides = await ok(b, '/api/v0/search/hybrid', { collection: 'library', query_text: 'spring tides new moon', top_k: 1, hop_count: 3 })
    const [chunk] = tides.results.filter((r: any) => r.entity_type === 'chunk')
    assert.equal(chunk.path, 'data/tides.json')
    assert.match(chunk.text, /note: spring tides follow the new moon/)
    const file = tides.results.find((r: any) => r.entity_type === 'file' && r.path === 'data/tides.json')
    assert.deepEqual(file.hop_path.map((h: any) => h.relation), ['part_of'])
    const dir = tides.results.find((r: any) => r.entity_type === 'directory' && r.path === 'data')
    assert.deepEqual(dir.hop_path.map((h: any) => h.relation), ['part_of', 'in_directory'])
    const sibling = tides.results.find((r: any) => r.entity_type === 'file' && r.path === 'data/image.bin')
    assert.deepEqual(sibling.hop_path.map((h: any) => h.relation), ['part_of', 'in_directory', 'contains'])
    assert.ok(file.score > dir.score && dir.score > sibling.score, 'each hop halves the score')
    const datasets = await ok(b, '/api/v0/search/hybrid', { collection: 'library', query_text: 'lighthouse keeper lamp', top_k: 1, hop_count: 3, entity_types: ['dataset'] })
    assert.deepEqual(datasets.results.map((r: any) => [r.entity_type, r.id]), [['dataset', 'library-data']])
    assert.deepEqual(datasets.results[0].hop_path.map((h: any) => h.relation), ['part_of', 'in_directory', 'registered_as'])
    // The HTML's text without its markup, and the PDF's, were indexed.
    const bees = await ok(b, '/api/v0/search/hybrid', { collection: 'library', query_text: 'honeybees clover', top_k: 1, entity_types: ['chunk'] })
    assert.equal(bees.results[0].path, 'page.html')
    assert.equal(bees.results[0].metadata.title, 'Bees')
    const glaciers = await ok(b, '/api/v0/search/hybrid', { collection: 'library', query_text: 'glaciers retreat', top_k: 1, entity_types: ['chunk'] })
    assert.equal(glaciers.results[0].path, 'report.pdf')
  })

  it('answers bad queries with 4xx in document 000\'s envelope', async () => {
    const b = daemons[1]
    assert.equal((await post(b, '/api/v0/search/hybrid', { collection: 'novels' })).status, 400)
    const missing = await post(b, '/api/v0/search/hybrid', { collection: 'nope', query_text: 'x' })
    assert.equal(missing.status, 404)
    assert.equal(missing.body.error_type, 'CollectionNotFoundError')
    assert.equal((await post(b, '/api/v0/search/hybrid', { collection: 'novels', query_vector: [1, 2, 3] })).status, 400)
    assert.equal((await post(b, '/api/v0/search/collection/create', { name: 'novels' })).status, 409)
    assert.equal((await post(b, '/api/v0/search/index', { collection: 'novels' })).status, 400)
    assert.equal((await post(b, '/api/v0/search/collection/reindex', { name: 'nope', embedding_model: 'tiny-embed' })).status, 404)
    const same = await post(b, '/api/v0/search/collection/reindex', { name: 'novels', embedding_model: 'tiny-embed' })
    assert.equal(same.status, 400)
    assert.match(same.body.error, /embedded with tiny-embed:latest already/)
  })

  it('is driven by the CLI: create, index with progress lines, list and query', async () => {
    const b = daemons[1]
    const dir = await mkdtemp(join(tmpdir(), 'search-cli-'))
    try {
      const file = join(dir, 'docs.json')
      await writeFile(file, JSON.stringify([{ page_content: 'The orchard keeper counts the quinces in autumn.', metadata: { kind: 'note' } }, { text: 'Ferries cross the strait twice a day.' }]))
      const cli = async (...args: string[]): Promise<string> => {
        const res = await runCli([...args, '--api', b.url])
        assert.equal(res.code, 0, res.stderr)
        return res.stdout
      }
      assert.match(await cli('search', 'collection', 'create', 'cli', '--chunk-tokens', '32', '--field', 'kind:string'), /^created cli: tiny-embed:latest, 32 tokens per chunk, 4 overlapping\n$/)
      assert.match(await cli('search', 'index', 'cli', '--documents', file), /completed: 2 documents, 2 chunks, 1 batches head \S+ \(v1\)/)
      assert.match(await cli('search', 'collection', 'ls'), /\ncli\s+1\s+2\s+tiny-embed:latest/)
      const results = JSON.parse(await cli('search', 'query', 'quinces orchard', '--collection', 'cli', '--top-k', '1', '--filter', '{"kind": "note"}', '--json'))
      assert.match(results.results[0].text, /orchard keeper/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('round-trips LangChain documents through a VectorStore subclass, and LlamaIndex documents through index/create', async () => {
    const b = daemons[1]
    const embeddings = new NodeEmbeddings(b.url)
    const docs = [
      new Document({ pageContent: 'The miller grinds barley at the water mill.', metadata: { topic: 'mill', year: 1801 } }),
      new Document({ pageContent: 'Swallows nest under the eaves of the barn.', metadata: { topic: 'birds', year: 1802 } }),
      new Document({ pageContent: 'The blacksmith shoes the grey mare at the forge.', metadata: { topic: 'forge', year: 1803 } })
    ]
    const store = await NodeVectorStore.fromDocuments(docs, embeddings, { url: b.url, collectionName: 'lc-village' })
    assert.match(store.cid, /^(Qm|baf)/)
    const [[best, score]] = await store.similaritySearchWithScore('grinding barley at the mill', 1)
    assert.equal(best.pageContent, docs[0].pageContent)
    assert.deepEqual(best.metadata, { topic: 'mill', year: 1801 })
    assert.ok(score > 0)
    const filtered = await store.similaritySearch('grinding barley at the mill', 3, { year: { $gte: 1802 } })
    assert.deepEqual(filtered.map(d => d.metadata.topic).sort(), ['birds', 'forge'])

    const created = await ok(b, '/api/v0/ai/llamaindex/index/create', { index_name: 'li-village', documents: [{ text: 'The shepherd counts his flock at dusk.', metadata: { kind: 'pastoral' }, id_: 'doc-shepherd' }] })
    assert.equal(created.index_name, 'li-village')
    assert.equal(created.cid, (await ok(b, '/api/v0/search/collection/list', {})).collections.find((c: any) => c.name === 'li-village').head_cid)
    const found = await ok(b, '/api/v0/search/hybrid', { collection: 'li-village', query_text: 'shepherd flock', top_k: 1, entity_types: ['chunk'] })
    assert.deepEqual([found.results[0].doc_id, found.results[0].metadata], ['doc-shepherd', { kind: 'pastoral' }])
  })

  it('forwards a query from a node without a replica to one that holds it, unless asked for local=true', async () => {
    const [a] = daemons
    await ok(a, '/api/v0/search/collection/create', { name: 'single', chunk_tokens: 64, replication_factor: 1 })
    const indexed = await ok(a, '/api/v0/search/index', { collection: 'single', wait: true, documents: [{ page_content: 'The ferryman rows the pilgrims across the grey river at dawn.' }, { page_content: 'Bakers knead the rye dough before the bells of the abbey ring.' }] })
    assert.equal(indexed.job.status, 'completed', JSON.stringify(indexed.job))
    const head = indexed.job.head_cid
    const { allocations } = await a.node.cluster.pin(head)
    assert.equal(allocations.length, 1)
    // A node the head is not pinned on (the indexing node may be one: it still has no replica to answer from).
    const asker = daemons.find(d => !allocations.includes(d.node.peerId)) as TestDaemon
    const replica = join(asker.repo, 'search', 'replicas', head)
    const query = { collection: 'single', query_text: 'ferryman river pilgrims', top_k: 1, entity_types: ['chunk'] }
    const forwarded = await ok(asker, '/api/v0/search/hybrid', query)
    assert.match(forwarded.results[0].text, /ferryman rows the pilgrims/)
    assert.equal(await stat(replica).then(() => true, () => false), false, 'answered without a replica written here')
    const similar = await ok(asker, '/api/v0/ai/langchain/vectorstore/search', { collection_name: 'single', query: 'bakers knead rye dough', k: 1 })
    assert.match(similar.results[0].page_content, /Bakers knead/)
    assert.equal(await stat(replica).then(() => true, () => false), false)
    const local = await ok(asker, '/api/v0/search/hybrid', { ...query, local: true })
    assert.deepEqual(local.results.map((r: any) => [r.id, r.score]), forwarded.results.map((r: any) => [r.id, r.score]))
    assert.ok((await stat(replica)).isDirectory(), 'local=true wrote a replica here')
  })

  it('still answers from the replicas when the indexing node is gone', async () => {
    const [a, b, c] = daemons
    await waitFor('the head pinned on the other nodes', async () => {
      const [status] = await b.node.cluster.pinStatus(novelsHead)
      return [b.node.peerId, c.node.peerId].every(id => status.peers.find(p => p.peer === id)?.status === 'pinned')
    }, 60_000)
    await a.cleanup()
    daemons.shift()
    const target = docs.find(d => d.book === 'persuasion' && d.part === 64) as { text: string }
    const phrase = target.text.split(/\s+/).slice(3, 15).join(' ')
    const found = await ok(c, '/api/v0/search/hybrid', { collection: 'novels', query_text: phrase, top_k: 3, entity_types: ['chunk'] })
    assert.ok(found.results[0].text.includes(phrase), JSON.stringify(found.results.map((r: any) => r.text.slice(0, 80))))
    assert.deepEqual(found.results[0].metadata, { book: 'persuasion', part: 64 })
  })
})
