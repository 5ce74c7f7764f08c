/**
 * Search benchmark (issue 22): a real daemon (its own process on 127.0.0.1,
 * temp repo, ephemeral ports) indexes a corpus cut from the project's own
 * novels into a collection of the default embedding model, then answers
 * `search/hybrid`; every figure is a ratio to a peer measured in this run:
 *
 * 1. ingest: chunks/s of indexing through the daemon (inline documents in
 *    jobs under the API's body limit, each document one chunk; extraction,
 *    chunking, embedding, LanceDB, and a snapshot and a head move through
 *    Raft every few seconds and at each job's end) against the embedding model's own throughput: the runtime's
 *    Encoder in this process, tokenizing and embedding the same texts in the
 *    batches the search service uses (target ≥ 0.8×). The peer runs before
 *    and after the ingest; the ratio is to the faster of the two. Since the
 *    shared machine's load moves both, the CPU time per chunk of the daemon
 *    and of the peer is compared too, and the time a batch takes against the
 *    peer's time for as many chunks;
 * 2. query latency: p50 and p99 of `search/hybrid` with query_text, top_k 10,
 *    no hops, one request at a time, against the same query done directly in
 *    this process (the Encoder embeds the text, then LanceDB's vector and
 *    BM25 searches over the daemon's replica, fused by reciprocal rank);
 * 3. Recall@10 of the ANN index: `search/hybrid` with query_vector alone
 *    (so that its results are the vector list's order) against an exact
 *    brute-force cosine search over every vector of the table, in this
 *    process (target ≥ 0.95). Below the search package's ANN_MIN_ROWS the
 *    table has no ANN index and the figure is of a flat scan: the bench says so.
 *    Then the recall LanceDB's query options (refine factor, probes, ef) give
 *    over the same index, queried directly: where to turn for more;
 * 4. queries/s of `search/hybrid` (query_vector and query_text, top_k 10, no
 *    hops: vector and BM25 lists fused) against the same two LanceDB queries
 *    and the fusion run directly in this process on the daemon's replica,
 *    with as many concurrent clients (target ≥ 0.7×). Rounds alternate.
 *
 * The corpus is deterministic: document i is the longest run of words of the
 * three novels (packages/models/corpus), from word i·7919 mod their count,
 * that fits one chunk of the collection's tokens. Queries are 12-word runs
 * from other offsets.
 *
 * Env: BENCH_SEARCH_CHUNKS (100000) documents, one chunk each;
 * BENCH_SEARCH_CHUNK_TOKENS (64); BENCH_SEARCH_QUERIES (200);
 * BENCH_SEARCH_EMBED_SAMPLE (4096) texts the peer of part 1 embeds;
 * BENCH_SEARCH_SECONDS (5) per round of part 4; BENCH_SEARCH_ROUNDS (3);
 * BENCH_SEARCH_CONNECTIONS (4) concurrent clients of part 4;
 * BENCH_ONLY=latency,recall,qps skips query parts (the ingest always runs);
 * BENCH_PROFILE_DIR=<dir> writes a --cpu-prof profile of the daemon there.
 */
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import * as lancedb from '@lancedb/lancedb'
import { DEFAULT_MODELS, assetDir, readCorpus } from '@node-daemon/models'
import { loadModel } from '@node-daemon/runtime'
import { ANN_MIN_ROWS, reciprocalRankFusion } from '@node-daemon/search'
import type { Encoder } from '@node-daemon/runtime'
import { withCleanup } from './lib/cleanup.ts'
import { numberFromEnv, onlyFromEnv, profileDirFromEnv, say } from './lib/cli.ts'
import { postJson, spawnDaemon, untilModelsListed } from './lib/daemon.ts'
import { createPhaseLog } from './lib/phases.ts'
import { percentile } from './lib/raft-load.ts'
import type { Cleanup } from './lib/cleanup.ts'
import type { DaemonProcess } from './lib/daemon.ts'

const TARGET_INGEST = 0.8
const TARGET_RECALL = 0.95
const TARGET_QPS = 0.7
const TOP_K = 10
/** What the search service asks each list for: max(top_k · 3, 30). */
const CANDIDATES = Math.max(TOP_K * 3, 30)
/** Texts per embedding request of the search service (its embedBatch). */
const EMBED_BATCH = 32
/** Chunks the search service embeds and stores at a time (its batchChunks): a progress line each. */
const BATCH_CHUNKS = 512
/** Under the API's 1 MiB body limit, with room for the JSON around the texts. */
const JOB_BYTES = 900_000
const COLLECTION = 'bench'
/** Coprime to any corpus length that is not a multiple of it: every document starts at another word. */
const DOC_STRIDE = 7919
/** One document in this many is encoded whole, to check that its words' tokens add up. */
const VERIFY_EVERY = 50
const QUERY_STRIDE = 104_729
const QUERY_WORDS = 12
const REQUEST_TIMEOUT_MS = 300_000
const REGISTER_TIMEOUT_MS = 120_000
const PROGRESS_EVERY = 0.1
/** The columns the search service reads of a hit, so that the direct queries fetch as much. */
const HIT_COLUMNS = ['id', 'text', 'doc_id', 'source_cid', 'root_cid', 'path', 'format', 'byte_start', 'byte_end', 'chunk_index', 'metadata']

const PARTS = ['latency', 'recall', 'qps'] as const
type Part = typeof PARTS[number]

interface Settings {
  chunks: number
  chunkTokens: number
  queries: number
  embedSample: number
  seconds: number
  rounds: number
  connections: number
  only: Set<Part>
  profileDir?: string
}

function settingsFromEnv (): Settings {
  return {
    chunks: numberFromEnv('BENCH_SEARCH_CHUNKS', 100_000, 300_000, { whole: true }),
    chunkTokens: numberFromEnv('BENCH_SEARCH_CHUNK_TOKENS', 64, 510, { whole: true }),
    queries: numberFromEnv('BENCH_SEARCH_QUERIES', 200, 100_000, { whole: true }),
    embedSample: numberFromEnv('BENCH_SEARCH_EMBED_SAMPLE', 4096, 300_000, { whole: true }),
    seconds: numberFromEnv('BENCH_SEARCH_SECONDS', 5, 600),
    rounds: numberFromEnv('BENCH_SEARCH_ROUNDS', 3, 100, { whole: true }),
    connections: numberFromEnv('BENCH_SEARCH_CONNECTIONS', 4, 256, { whole: true }),
    only: onlyFromEnv(PARTS, 'part'),
    profileDir: profileDirFromEnv()
  }
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits)
const thousands = (n: number): string => Math.round(n).toLocaleString('en-US')
const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b)
const median = (xs: number[]): number => percentile(sorted(xs), 0.5)
const verdict = (value: number, target: number, unit = '×'): string => `(target ≥ ${target}${unit}) ${value >= target ? 'ok' : 'MISSED'}`

// ---- the corpus

/**
 * Document i: the longest run of words from word i·DOC_STRIDE that the
 * tokenizer makes at most `tokens` tokens of. A byte-level BPE splits text at
 * the spaces before words, so a run's tokens are the sum of its words' (each
 * counted once, with its space); every VERIFY_EVERY-th run is encoded whole to
 * check that, since encoding them all takes minutes here.
 */
function documents (words: string[], count: number, tokens: number, codec: Encoder['codec']): string[] {
  if (count > words.length) throw new Error(`BENCH_SEARCH_CHUNKS=${count}: the corpus has ${words.length} words, and each document starts at another`)
  const counts = new Map<string, number>()
  const tokensOf = (word: string): number => {
    let n = counts.get(word)
    if (n == null) counts.set(word, n = codec.encode(word).length)
    return n
  }
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    const start = (i * DOC_STRIDE) % words.length
    const run: string[] = []
    for (let used = 0; ;) {
      const word = words[(start + run.length) % words.length]
      used += tokensOf(run.length === 0 ? word : ` ${word}`)
      if (used > tokens || run.length === words.length) break
      run.push(word)
    }
    const text = run.join(' ')
    if (i % VERIFY_EVERY === 0 && codec.encode(text).length > tokens) throw new Error(`document ${i} counts ${codec.encode(text).length} tokens whole, more than its words' sum: the tokenizer is not split at spaces`)
    out.push(text)
  }
  return out
}

function queryTexts (words: string[], count: number): string[] {
  return Array.from({ length: count }, (_, j) => {
    const start = (j * QUERY_STRIDE + 13) % words.length
    return Array.from({ length: QUERY_WORDS }, (_, k) => words[(start + k) % words.length]).join(' ')
  })
}

// ---- the daemon's API

async function post (d: DaemonProcess, path: string, body: unknown, signal: AbortSignal): Promise<any> {
  const res = await postJson(d, path, body, AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), signal]))
  const text = await res.text()
  if (!res.ok) throw new Error(`${d.label}: ${path} answered ${res.status}: ${text.slice(0, 500)}`)
  return JSON.parse(text)
}

/** Inline documents in jobs whose JSON stays under the body limit. */
function jobsOf (docs: string[]): string[][] {
  const jobs: string[][] = [[]]
  let bytes = 0
  for (const text of docs) {
    const size = Buffer.byteLength(JSON.stringify({ page_content: text })) + 1
    if (bytes + size > JOB_BYTES && jobs[jobs.length - 1].length > 0) {
      jobs.push([])
      bytes = 0
    }
    jobs[jobs.length - 1].push(text)
    bytes += size
  }
  return jobs
}

interface IndexJob { id: string, status: string, chunks: number, batches: number, head_cid?: string, error?: string }

/** Follows a job's NDJSON progress until it ends; `onBatch` sees each line. */
async function follow (d: DaemonProcess, id: string, signal: AbortSignal, onBatch: (job: IndexJob) => void): Promise<IndexJob> {
  const res = await fetch(`${d.url}/api/v0/search/index/progress?id=${encodeURIComponent(id)}`, { signal })
  if (!res.ok || res.body == null) throw new Error(`${d.label}: progress of ${id} answered ${res.status}: ${await res.text()}`)
  let last: IndexJob | undefined
  let buffered = ''
  const decoder = new TextDecoder()
  const reader = res.body.getReader()
  for (;;) {
    const { value: bytes, done } = await reader.read()
    if (done) break
    buffered += decoder.decode(bytes, { stream: true })
    const lines = buffered.split('\n')
    buffered = lines.pop() as string
    for (const line of lines.filter(l => l.trim() !== '')) {
      last = JSON.parse(line) as IndexJob
      onBatch(last)
    }
  }
  if (last == null) throw new Error(`${d.label}: no progress of ${id}`)
  return last
}

// ---- direct queries, in this process, on the daemon's replica

interface Direct {
  table: lancedb.Table
  close: () => void
}

async function openDirect (dir: string): Promise<Direct> {
  const db = await lancedb.connect(dir)
  const table = await db.openTable('chunks')
  return { table, close: () => { table.close(); db.close() } }
}

/** The vector and BM25 lists the search service asks for, fused as it fuses them. */
async function directHybrid (direct: Direct, vector: number[], text: string): Promise<string[]> {
  const [byVector, byText] = await Promise.all([
    direct.table.vectorSearch(vector).distanceType('cosine').limit(CANDIDATES).select([...HIT_COLUMNS, '_distance']).toArray(),
    direct.table.search(text, 'fts', 'text').limit(CANDIDATES).select([...HIT_COLUMNS, '_score']).toArray()
  ])
  return reciprocalRankFusion({ vector: byVector, bm25: byText }, (hit: { id: string }) => hit.id).slice(0, TOP_K).map(r => r.item.id)
}

/** Every vector of the table, normalized, for the exact search. */
async function allVectors (direct: Direct): Promise<{ ids: string[], vectors: Float32Array, dims: number }> {
  const rows = await direct.table.query().select(['id', 'vector']).toArray() as Array<{ id: string, vector: { toArray: () => Float32Array } }>
  const dims = rows[0].vector.toArray().length
  const vectors = new Float32Array(rows.length * dims)
  rows.forEach((row, i) => { vectors.set(normalized(row.vector.toArray()), i * dims) })
  return { ids: rows.map(r => r.id), vectors, dims }
}

function normalized (v: ArrayLike<number>): Float32Array {
  const out = Float32Array.from(v)
  const norm = Math.hypot(...out)
  if (norm > 0) for (let i = 0; i < out.length; i++) out[i] /= norm
  return out
}

/** The exact top k by cosine similarity: every vector compared. */
function exactTopK (all: { ids: string[], vectors: Float32Array, dims: number }, query: number[], k: number): string[] {
  const q = normalized(query)
  const best: Array<{ i: number, s: number }> = []
  for (let i = 0; i < all.ids.length; i++) {
    let s = 0
    const at = i * all.dims
    for (let j = 0; j < all.dims; j++) s += q[j] * all.vectors[at + j]
    if (best.length < k || s > best[best.length - 1].s) {
      best.push({ i, s })
      best.sort((a, b) => b.s - a.s)
      if (best.length > k) best.pop()
    }
  }
  return best.map(b => all.ids[b.i])
}

// ---- the peer of the ingest

/** Chunks/s of the Encoder alone over `texts`, tokenized and embedded in the search service's batches, and the CPU time it used per chunk (ms). */
async function embedRate (encoder: Encoder, texts: string[]): Promise<{ rate: number, cpuMs: number }> {
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < texts.length; i += EMBED_BATCH) {
    await encoder.embed(encoder.tokenize(texts.slice(i, i + EMBED_BATCH), true, 'document'))
  }
  const cpu = process.cpuUsage(cpu0)
  return { rate: texts.length / ((performance.now() - t0) / 1000), cpuMs: (cpu.user + cpu.system) / 1000 / texts.length }
}

/** Queries/s of `query` run by `connections` clients, each taking the next query, for `seconds`. */
async function rate (connections: number, seconds: number, count: number, query: (i: number) => Promise<unknown>, signal: AbortSignal): Promise<number> {
  let next = 0
  let done = 0
  const end = performance.now() + seconds * 1000
  const t0 = performance.now()
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < end) {
      signal.throwIfAborted()
      await query(next++ % count)
      done++
    }
  }))
  return done / ((performance.now() - t0) / 1000)
}

async function run (cleanup: Cleanup, s: Settings): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'node-daemon-bench-search-'))
  cleanup.defer(async () => rm(root, { recursive: true, force: true, maxRetries: 3 }))
  const phases = createPhaseLog()
  const missed: string[] = []
  const signal = cleanup.signal

  const loaded = await loadModel(assetDir(DEFAULT_MODELS.embed), { signal })
  if (loaded.kind !== 'encoder') throw new Error(`${DEFAULT_MODELS.embed} loaded as a ${loaded.kind}`)
  const encoder = loaded
  cleanup.defer(async () => encoder.release())
  const words = (await readCorpus({ signal })).join('\n').split(/\s+/).filter(w => w !== '')
  const t0 = performance.now()
  const docs = documents(words, s.chunks, s.chunkTokens, encoder.codec)
  const queries = queryTexts(words, s.queries)
  say(`corpus: ${thousands(docs.length)} documents of at most ${s.chunkTokens} tokens cut from ${thousands(words.length)} words in ${fmt((performance.now() - t0) / 1000)} s`)

  const label = 'daemon'
  const d = await spawnDaemon({
    label,
    repo: join(root, label),
    nodeOptions: s.profileDir != null ? `--cpu-prof --cpu-prof-dir=${s.profileDir} --cpu-prof-name=${label}-${process.pid}.cpuprofile` : undefined,
    signal
  })
  cleanup.defer(d.stop)
  await untilModelsListed(d, [DEFAULT_MODELS.embed], { timeoutMs: REGISTER_TIMEOUT_MS, signal })
  await post(d, '/api/v0/search/collection/create', { name: COLLECTION, embedding_model: DEFAULT_MODELS.embed, chunk_tokens: s.chunkTokens, overlap_tokens: 0, replication_factor: 1 }, signal)

  // ---- 1. ingest
  const sample = docs.filter((_, i) => i % Math.max(1, Math.floor(docs.length / s.embedSample)) === 0).slice(0, s.embedSample)
  await embedRate(encoder, sample.slice(0, EMBED_BATCH * 4))
  const before = await embedRate(encoder, sample)
  const peerBefore = before.rate
  const jobs = jobsOf(docs)
  say(`ingest: ${thousands(docs.length)} chunks in ${jobs.length} jobs; the embedding model alone: ${fmt(peerBefore, 0)} chunks/s over ${thousands(sample.length)} texts`)
  let reported = 0
  /** Time between two batches' progress lines, the first batch's counted from the submission of the jobs. */
  const batchMs: number[] = []
  const ingest = await phases.timed('ingest', [d], async () => {
    const ids: string[] = []
    for (const job of jobs) ids.push((await post(d, '/api/v0/search/index', { collection: COLLECTION, documents: job.map(text => ({ page_content: text })) }, signal)).job.id)
    let before = 0
    const t0 = performance.now()
    let last: IndexJob | undefined
    let batchAt = t0
    for (const id of ids) {
      last = await follow(d, id, signal, job => {
        const now = performance.now()
        if (job.status === 'running' && job.batches > 0) { batchMs.push(now - batchAt); batchAt = now }
        const total = before + job.chunks
        if (total - reported >= PROGRESS_EVERY * docs.length) {
          reported = total
          say(`  ${thousands(total)} chunks after ${fmt((performance.now() - t0) / 1000, 0)} s (${fmt(total / ((performance.now() - t0) / 1000), 0)} chunks/s so far)`)
        }
      })
      if (last.status !== 'completed') throw new Error(`indexing job ${id} ended ${last.status}: ${last.error ?? ''}`)
      before += last.chunks
    }
    return { chunks: before, head: last?.head_cid as string }
  })
  const after = await embedRate(encoder, sample)
  const peerAfter = after.rate
  const peer = Math.max(peerBefore, peerAfter)
  const { collections } = await post(d, '/api/v0/search/collection/list', {}, signal)
  const collection = collections.find((c: { name: string }) => c.name === COLLECTION)
  if (ingest.value.chunks !== docs.length || collection?.chunks !== docs.length) throw new Error(`indexed ${ingest.value.chunks} chunks, the collection says ${collection?.chunks}; expected one per document, ${docs.length}`)
  const ingestRate = docs.length / ingest.seconds
  say(`ingest: ${thousands(docs.length)} chunks in ${fmt(ingest.seconds)} s (${fmt(ingest.seconds / 60)} min), daemon ${fmt(ingest.daemonCores[0], 2)} cores; head ${ingest.value.head}, version ${collection.version}`)
  say(`  ${fmt(ingestRate, 0)} chunks/s against the embedding model's ${fmt(peer, 0)}, the faster of before and after the ingest (${fmt(peerBefore, 0)}, ${fmt(peerAfter, 0)}): ${fmt(ingestRate / peer, 2)}× ${verdict(ingestRate / peer, TARGET_INGEST)} (${fmt(ingestRate / Math.min(peerBefore, peerAfter), 2)}× the slower)`)
  // CPU time is what the machine's changing load disturbs least: the daemon's per chunk against the model's alone.
  const daemonCpuMs = ingest.daemonCores[0] * ingest.seconds * 1000 / docs.length
  const modelCpuMs = Math.min(before.cpuMs, after.cpuMs)
  say(`  CPU per chunk: the daemon ${fmt(daemonCpuMs, 2)} ms, the embedding model alone ${fmt(modelCpuMs, 2)} ms (${fmt(modelCpuMs / daemonCpuMs, 2)}× the daemon's: its share of the daemon's work)`)
  const [early, late] = [batchMs.slice(1, 6), batchMs.slice(-5)]
  say(`  a batch (${BATCH_CHUNKS} chunks: embedding, LanceDB add, and at times a snapshot and head move): median ${fmt(median(batchMs) / 1000, 2)} s, the first ones ${fmt(median(early) / 1000, 2)} s, the last ones ${fmt(median(late) / 1000, 2)} s; the embedding model alone takes ${fmt(BATCH_CHUNKS / peer, 2)} s for as many`)
  if (ingestRate / peer < TARGET_INGEST) missed.push('ingest')

  // ---- queries: the replica the daemon answers from, opened here too
  const vectors: number[][] = []
  for (let i = 0; i < queries.length; i += 64) {
    vectors.push(...(await post(d, '/api/v0/embeddings/generate', { texts: queries.slice(i, i + 64), model: DEFAULT_MODELS.embed, input_type: 'query' }, signal)).embeddings)
  }
  const hybrid = async (body: Record<string, unknown>): Promise<string[]> =>
    (await post(d, '/api/v0/search/hybrid', { collection: COLLECTION, top_k: TOP_K, hop_count: 0, entity_types: ['chunk'], ...body }, signal)).results.map((r: { id: string }) => r.id)
  // The first query writes the head's replica to the daemon's disk.
  await hybrid({ query_text: queries[0] })
  const replica = join(d.repo, 'search', 'replicas', ingest.value.head)
  await stat(replica)
  const direct = await openDirect(replica)
  cleanup.defer(async () => direct.close())
  const vectorIndex = (await direct.table.listIndices()).find(i => i.columns.includes('vector'))
  const annIndex = vectorIndex != null
  const indexStats = vectorIndex == null ? undefined : await direct.table.indexStats(vectorIndex.name)
  const described = indexStats == null
    ? `no ANN index (fewer than ${ANN_MIN_ROWS} chunks: vector queries scan)`
    : `an ANN index (${indexStats.indexType}, ${indexStats.numIndices ?? 1} part(s), ${thousands(indexStats.numIndexedRows)} rows indexed, ${thousands(indexStats.numUnindexedRows)} not)`
  say(`queries: ${queries.length} of ${QUERY_WORDS} words, top_k ${TOP_K}, no hops; the table has ${described}; load ${loadavg().map(l => fmt(l, 2)).join(' ')}`)

  if (s.only.has('latency')) {
    const timeOf = async (fn: () => Promise<unknown>): Promise<number> => { const t = performance.now(); await fn(); return performance.now() - t }
    const daemonMs: number[] = []
    const directMs: number[] = []
    // Alternating, so that the machine's load falls on both.
    for (const [i, text] of queries.entries()) {
      daemonMs.push(await timeOf(async () => hybrid({ query_text: text })))
      directMs.push(await timeOf(async () => directHybrid(direct, Array.from((await encoder.embed(encoder.tokenize([text], true, 'query')))[0]), text)))
      signal.throwIfAborted()
      if (i === 0) { daemonMs.pop(); directMs.pop() }
    }
    const [dp, ds] = [sorted(daemonMs), sorted(directMs)]
    say(`latency over ${thousands(docs.length)} chunks, query_text (embedded, vector and BM25, fused), one at a time:`)
    say(`  search/hybrid  p50 ${fmt(percentile(dp, 0.5))} ms, p99 ${fmt(percentile(dp, 0.99))} ms`)
    say(`  direct         p50 ${fmt(percentile(ds, 0.5))} ms, p99 ${fmt(percentile(ds, 0.99))} ms (the Encoder and LanceDB in this process)`)
    say(`  search/hybrid against direct: p50 ${fmt(percentile(dp, 0.5) / percentile(ds, 0.5), 2)}×, p99 ${fmt(percentile(dp, 0.99) / percentile(ds, 0.99), 2)}× the time`)
  }

  if (s.only.has('recall')) {
    const t = performance.now()
    const all = await allVectors(direct)
    const readSeconds = (performance.now() - t) / 1000
    let found = 0
    let exactMs = 0
    const exacts: string[][] = []
    let annMs = 0
    for (const vector of vectors) {
      const t1 = performance.now()
      const ann = await hybrid({ query_vector: vector })
      const t2 = performance.now()
      const exact = exactTopK(all, vector, TOP_K)
      exacts.push(exact)
      annMs += t2 - t1
      exactMs += performance.now() - t2
      found += exact.filter(id => ann.includes(id)).length
    }
    const recall = found / (vectors.length * TOP_K)
    say(`recall@${TOP_K} of search/hybrid's vector list (query_vector alone) against an exact scan of all ${thousands(all.ids.length)} vectors (read in ${fmt(readSeconds)} s): ${fmt(recall, 3)} ${verdict(recall, TARGET_RECALL, '')}${annIndex ? '' : ' (no ANN index: a flat scan)'}`)
    say(`  mean per query: search/hybrid ${fmt(annMs / vectors.length)} ms, the exact scan in this process ${fmt(exactMs / vectors.length)} ms`)
    if (recall < TARGET_RECALL) missed.push('recall')
    if (annIndex) {
      // What LanceDB's query options would give over the same index, asking for the service's CANDIDATES: where to turn for more recall (the service probes 30% of the partitions).
      const variants: Array<[string, (q: lancedb.VectorQuery) => lancedb.VectorQuery]> = [
        ['LanceDB\'s defaults (20 probes)', q => q],
        ['refineFactor(2)', q => q.refineFactor(2)],
        ['nprobes(40)', q => q.nprobes(40)],
        ['ef(300)', q => q.ef(300)],
        ['nprobes(40), refineFactor(2)', q => q.nprobes(40).refineFactor(2)]
      ]
      say('  direct LanceDB queries of the same index, recall@10 and mean ms:')
      for (const [name, option] of variants) {
        let hits = 0
        const t = performance.now()
        try {
          for (const [i, vector] of vectors.entries()) {
            const rows = await option(direct.table.vectorSearch(vector).distanceType('cosine').limit(CANDIDATES)).select(['id', '_distance']).toArray() as Array<{ id: string }>
            hits += exacts[i].filter(id => rows.slice(0, TOP_K).some(r => r.id === id)).length
          }
          say(`    ${name.padEnd(30)} ${fmt(hits / (vectors.length * TOP_K), 3)}  ${fmt((performance.now() - t) / vectors.length)} ms`)
        } catch (err: any) {
          say(`    ${name.padEnd(30)} failed: ${err.message}`)
        }
      }
    }
  }

  if (s.only.has('qps')) {
    const viaDaemon = async (i: number): Promise<unknown> => hybrid({ query_vector: vectors[i], query_text: queries[i] })
    const viaDirect = async (i: number): Promise<unknown> => directHybrid(direct, vectors[i], queries[i])
    await rate(s.connections, 1, queries.length, viaDaemon, signal)
    await rate(s.connections, 1, queries.length, viaDirect, signal)
    const runs: Record<'daemon' | 'direct', number[]> = { daemon: [], direct: [] }
    for (let round = 0; round < s.rounds; round++) {
      const order = round % 2 === 0 ? ['daemon', 'direct'] as const : ['direct', 'daemon'] as const
      for (const side of order) runs[side].push(await rate(s.connections, s.seconds, queries.length, side === 'daemon' ? viaDaemon : viaDirect, signal))
    }
    const ratio = median(runs.daemon) / median(runs.direct)
    say(`queries/s, ${s.connections} clients, query_vector and query_text (vector and BM25 lists of ${CANDIDATES}, fused), ${s.rounds} rounds of ${s.seconds} s:`)
    say(`  search/hybrid ${fmt(median(runs.daemon))} (rounds ${runs.daemon.map(r => fmt(r)).join(', ')})`)
    say(`  direct        ${fmt(median(runs.direct))} (rounds ${runs.direct.map(r => fmt(r)).join(', ')}; LanceDB in this process)`)
    say(`  ${fmt(ratio, 2)}× ${verdict(ratio, TARGET_QPS)}`)
    if (ratio < TARGET_QPS) missed.push('queries/s')
  }

  if (s.profileDir != null) {
    const file = await phases.write(s.profileDir)
    say(`cpu profile: ${s.profileDir}/${label}-${process.pid}.cpuprofile; phases in ${file}; summarise with node bench/cpu-profile.ts <profile> [--phase ingest]`)
  }
  say(`summary: ${missed.length === 0 ? 'all targets met' : `missed: ${missed.join(', ')}`}`)
  return 0
}

export async function main (): Promise<number> {
  const s = settingsFromEnv()
  if (s.profileDir != null) await mkdir(s.profileDir, { recursive: true })
  say(`search bench: ${thousands(s.chunks)} chunks of ${s.chunkTokens} tokens, ${s.queries} queries; node ${process.version}, ${cpus().length} cpus, load ${loadavg().map(l => fmt(l, 2)).join(' ')}${s.profileDir != null ? `; cpu profile in ${s.profileDir}` : ''}`)
  return withCleanup(async (cleanup) => run(cleanup, s))
}
