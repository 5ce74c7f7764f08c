/**
 * Search benchmark, on a daemon in this process (temp repo, ephemeral
 * ports), with the embedded default embedding model. Prints:
 *
 * 1. ingest: chunks/s of `search/index` over documents cut from the
 *    public-domain novels (one chunk each), against the embedding model's
 *    own throughput on the same texts in the same batches through the
 *    inference layer, measured before and after (target >= 0.8x);
 * 2. query latency, p50 and p99 at top_k 10 over a collection of
 *    BENCH_SEARCH_CHUNKS (100,000) chunks (the ingested vectors, perturbed,
 *    under the novels' text), by query_vector and by query_text (embedding,
 *    vector and BM25);
 * 3. recall@10 of the collection's ANN index against an exact scan of the
 *    same table in the same run (target >= 0.95);
 * 4. queries/s of `search/hybrid` by query_vector, 4 at a time, against
 *    LanceDB queried directly in this process on the same replica (target
 *    >= 0.7x).
 *
 * Env: BENCH_SEARCH_DOCS (2000) documents ingested; BENCH_SEARCH_CHUNKS
 * (100000); BENCH_SEARCH_QUERIES (200) queries per latency figure;
 * BENCH_SEARCH_SECONDS (10) per throughput figure.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as lancedb from '@lancedb/lancedb'
import { startDaemon } from '@node-daemon/cli'
import { createLogger, defaults, merge } from '@node-daemon/daemon'
import { DEFAULT_MODELS, readCorpus } from '@node-daemon/models'
import { seededRandom } from '@node-daemon/onnx'
import { ChunkTable, snapshotDirectory, TABLE } from '@node-daemon/search'
import { numberFromEnv, say } from './lib/cli.ts'
import { withCleanup } from './lib/cleanup.ts'
import type { ChunkRow } from '@node-daemon/search'

const TARGET_INGEST = 0.8
const TARGET_RECALL = 0.95
const TARGET_QPS = 0.7
const EMBED_BATCH = 32
const CONCURRENCY = 4

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

async function post (url: string, body: unknown): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(600_000) })
  const json = await res.json()
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

/** Calls `one` from CONCURRENCY loops for `seconds`; answers calls per second. */
async function throughput (seconds: number, one: (i: number) => Promise<void>): Promise<number> {
  const end = performance.now() + seconds * 1000
  let done = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) await one(done++)
  }))
  return done / seconds
}

export async function main (): Promise<number> {
  const docCount = numberFromEnv('BENCH_SEARCH_DOCS', 2000, 100_000, { whole: true })
  const chunkCount = numberFromEnv('BENCH_SEARCH_CHUNKS', 100_000, 10_000_000, { whole: true })
  const queries = numberFromEnv('BENCH_SEARCH_QUERIES', 200, 100_000, { whole: true })
  const seconds = numberFromEnv('BENCH_SEARCH_SECONDS', 10, 3600)
  return withCleanup(async (cleanup) => {
    const repo = await mkdtemp(join(tmpdir(), 'bench-search-'))
    cleanup.defer(async () => { await rm(repo, { recursive: true, force: true }) })
    const config = merge(defaults(), { api: { host: '127.0.0.1', port: 0 }, swarm: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' } }, { repo })
    const daemon = await startDaemon(config, createLogger(config.log.level))
    cleanup.defer(async () => { await daemon.stop() })
    const { node, url } = daemon
    for (let i = 0; !(await node.cluster.getAllModels({ local: true })).some(m => m.modelId === `${DEFAULT_MODELS.embed}:latest`); i++) {
      if (i > 600) throw new Error('the default embedding model was not registered within a minute')
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    const texts = (await readCorpus()).flatMap(novel => novel.split(/\n\s*\n/).map(p => p.replace(/\s+/g, ' ').trim()).filter(p => p.length > 80 && p.length < 400))
    const docs = Array.from({ length: docCount }, (_, i) => texts[i % texts.length])
    const results: boolean[] = []

    // 1. ingest, between two runs of the model alone on the same texts and batches
    const embedRate = async (): Promise<number> => {
      const t0 = performance.now()
      for (let i = 0; i < docs.length; i += EMBED_BATCH) await node.inference.embed({ model: DEFAULT_MODELS.embed, input: docs.slice(i, i + EMBED_BATCH) })
      return docs.length / ((performance.now() - t0) / 1000)
    }
    const before = await embedRate()
    await post(`${url}/api/v0/search/collection/create`, { name: 'ingest', chunk_tokens: 128, overlap_tokens: 0 })
    const t0 = performance.now()
    const { job } = await post(`${url}/api/v0/search/index`, { collection: 'ingest', wait: true, documents: docs.map((text, i) => ({ page_content: text, metadata: { n: i } })) })
    const ingestSeconds = (performance.now() - t0) / 1000
    const after = await embedRate()
    const ingestRate = job.chunks / ingestSeconds
    const model = (before + after) / 2
    const ingestRatio = ingestRate / model
    say(`ingest: ${job.chunks} chunks of ${docs.length} documents in ${ingestSeconds.toFixed(1)} s = ${ingestRate.toFixed(0)} chunks/s, ${job.batches} snapshots; the model alone ${model.toFixed(0)} texts/s (${before.toFixed(0)} before, ${after.toFixed(0)} after) = ${ingestRatio.toFixed(2)} x (target >= ${TARGET_INGEST})`)
    results.push(ingestRatio >= TARGET_INGEST)

    // 2. a large collection: the ingested vectors, perturbed, under the novels' text
    const source = await ChunkTable.open(join(repo, 'search', 'work', 'ingest'), {})
    const seedRows = await source.rows('chunk_index >= 0', docCount)
    source.close()
    const seeds = (await node.inference.embed({ model: DEFAULT_MODELS.embed, input: seedRows.slice(0, 256).map(r => r.text) })).embeddings
    // A seeded generator, so that every run perturbs the same way.
    const rand = seededRandom(42)
    const dir = join(repo, 'bench-large')
    const large = await ChunkTable.open(dir, {})
    const tBuild = performance.now()
    for (let start = 0; start < chunkCount; start += 10_000) {
      const rows: ChunkRow[] = []
      for (let i = start; i < Math.min(chunkCount, start + 10_000); i++) {
        const seed = seeds[i % seeds.length]
        const vector = seed.map(v => v + (rand() - 0.5) * 0.03)
        const norm = Math.hypot(...vector)
        rows.push({ id: `c${i}`, text: `${texts[i % texts.length]} (${i})`, vector: vector.map(v => v / norm), doc_id: `d${i}`, source_cid: 'bench', root_cid: 'bench', path: `${i}.txt`, format: 'text', byte_start: 0, byte_end: 0, chunk_index: 0, metadata: '{}' })
      }
      await large.add(rows)
    }
    await large.seal()
    large.close()
    const buildSeconds = (performance.now() - tBuild) / 1000
    await node.search.createCollection({ name: 'large' })
    const head = await snapshotDirectory(node.content, dir)
    await node.cluster.setCollectionHead('large', { headCID: head, expectedHead: '', chunks: chunkCount })
    say(`large collection: ${chunkCount} chunks built and indexed (BM25 and IVF) in ${buildSeconds.toFixed(1)} s, snapshot ${head}`)

    const queryVectors = Array.from({ length: queries }, (_, i) => seeds[(i * 7) % seeds.length].map(v => v + (rand() - 0.5) * 0.015))
    const queryTexts = Array.from({ length: queries }, (_, i) => texts[(i * 13) % texts.length].split(' ').slice(2, 8).join(' '))
    await post(`${url}/api/v0/search/hybrid`, { collection: 'large', query_vector: queryVectors[0], top_k: 10, hop_count: 0 })
    for (const [label, bodyOf] of [['query_vector', (i: number) => ({ query_vector: queryVectors[i] })], ['query_text', (i: number) => ({ query_text: queryTexts[i] })]] as const) {
      const latencies: number[] = []
      for (let i = 0; i < queries; i++) {
        const q0 = performance.now()
        await post(`${url}/api/v0/search/hybrid`, { collection: 'large', top_k: 10, hop_count: 0, ...bodyOf(i) })
        latencies.push(performance.now() - q0)
      }
      latencies.sort((a, b) => a - b)
      say(`query by ${label} over ${chunkCount} chunks, top_k 10: p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p99 ${percentile(latencies, 0.99).toFixed(1)} ms (${queries} queries, one at a time)`)
    }

    // 3. recall@10 of the ANN index against an exact scan, on the replica the queries used
    const db = await lancedb.connect(join(repo, 'search', 'replicas', head))
    const table = await db.openTable(TABLE)
    let hits = 0
    const recallQueries = Math.min(queries, 100)
    for (let i = 0; i < recallQueries; i++) {
      const ann = await table.vectorSearch(queryVectors[i]).distanceType('cosine').limit(10).select(['id']).toArray()
      const exact = await table.vectorSearch(queryVectors[i]).distanceType('cosine').bypassVectorIndex().limit(10).select(['id']).toArray()
      const truth = new Set(exact.map(r => r.id))
      hits += ann.filter(r => truth.has(r.id)).length
    }
    const recall = hits / (recallQueries * 10)
    say(`recall@10 of the ANN index against an exact scan: ${recall.toFixed(3)} (target >= ${TARGET_RECALL}, ${recallQueries} queries)`)
    results.push(recall >= TARGET_RECALL)

    // 4. queries/s through the API against LanceDB itself, alternated so that load falls on both
    // The same columns as the API's answer: everything but the vector.
    const columns = (await table.schema()).fields.map(f => f.name).filter(name => name !== 'vector')
    const direct = async (i: number): Promise<void> => { await table.vectorSearch(queryVectors[i % queries]).distanceType('cosine').limit(10).select([...columns, '_distance']).toArray() }
    const hybrid = async (i: number): Promise<void> => { await post(`${url}/api/v0/search/hybrid`, { collection: 'large', query_vector: queryVectors[i % queries], top_k: 10, hop_count: 0 }) }
    const directQps = [await throughput(seconds / 2, direct)]
    const hybridQps = [await throughput(seconds / 2, hybrid)]
    directQps.push(await throughput(seconds / 2, direct))
    hybridQps.push(await throughput(seconds / 2, hybrid))
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    const qpsRatio = mean(hybridQps) / mean(directQps)
    say(`queries/s, ${CONCURRENCY} at a time: search/hybrid ${mean(hybridQps).toFixed(0)}, LanceDB directly ${mean(directQps).toFixed(0)} = ${qpsRatio.toFixed(2)} x (target >= ${TARGET_QPS})`)
    results.push(qpsRatio >= TARGET_QPS)
    table.close()
    db.close()
    return results.every(Boolean) ? 0 : 1
  })
}
