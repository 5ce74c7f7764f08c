/**
 * The search service of a node: collections (recorded in the cluster through
 * Raft), indexing jobs that extract, chunk, embed and store documents, and
 * hybrid queries over a replica of each collection's head snapshot.
 *
 * Indexing works in a directory of its own per collection, made from the
 * head it starts from; after each batch it seals the table, adds it as a
 * snapshot and moves the head through Raft, only from the head it started
 * from. Queries open the head's snapshot, written to disk under its CID
 * (fetched from the cluster where this node lacks the blocks), so that every
 * node answers from the same version, the indexing node gone or not.
 */
import { randomUUID } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TypedEventEmitter } from '@libp2p/interface'
import { TextCodec } from '@node-daemon/runtime'
import { raceSignal } from 'race-signal'
import { chunkText } from './chunk.ts'
import { IndexJobNotFoundError, InvalidSearchRequestError, UnsupportedDocumentError } from './errors.ts'
import { extractText } from './extract.ts'
import { compileFilters, hasType } from './filters.ts'
import { reciprocalRankFusion } from './fusion.ts'
import { ENTITY_TYPES, expandHops } from './hops.ts'
import { hasReplica, snapshotDirectory, writeReplica } from './snapshot.ts'
import { ChunkTable, metadataColumn } from './store.ts'
import type { ChunkHit, ChunkRow } from './store.ts'
import type { SnapshotCache } from './snapshot.ts'
import type { HopResult } from './hops.ts'
import type { CreateCollectionParams, HybridQuery, IndexJob, IndexSource, RawDocument, SearchResult } from './interface.ts'
import type { AbortOptions, Logger } from '@libp2p/interface'
import { ConsensusRejectedError } from '@node-daemon/cluster'
import type { Cluster, CollectionRecord, MetadataFieldType } from '@node-daemon/cluster'
import type { Content } from '@node-daemon/content'
import type { Inference } from '@node-daemon/inference'

export interface SearchComponents {
  content: Pick<Content, 'addAll' | 'linkDirectory' | 'blockStat' | 'ls' | 'cat' | 'readFile' | 'stat'>
  cluster: Pick<Cluster, 'id' | 'createCollection' | 'setCollectionHead' | 'removeCollection' | 'collection' | 'collections' | 'getAllModels' | 'jobs' | 'pin' | 'serve' | 'ask'>
  inference: Pick<Inference, 'embed' | 'rerank' | 'show'>
  log: Logger
}

export interface SearchInit {
  /** Where the working tables and the replicas live. */
  dir: string
  /** The embedding model of a collection created without one. */
  defaultModel: string
  /** Texts per embedding request. Default 32. */
  embedBatch?: number
  /** Chunks embedded and stored at a time. Default 512. */
  batchChunks?: number
  /** The head moves mid-job at most this often (ms); always at the job's end. Default 5000. */
  snapshotMs?: number
  /** Bytes of one file read for indexing, at most. Default 64 MiB. */
  maxFileBytes?: number
  /** Replicas kept open; the least recently used beyond this are closed and deleted once no query uses them. Default 8. */
  openReplicas?: number
}

export interface SearchEvents {
  /** An indexing job took in a batch, ended or failed. */
  IndexProgress: CustomEvent<IndexJob>
}

/** Inline documents' files written at once: each waits on its block's write, not on the CPU. */
const INLINE_ADD_CONCURRENCY = 32
/** Jobs remembered after they end. */
const JOB_HISTORY = 100
/** How often a re-index catches up with chunks indexed elsewhere meanwhile before it gives up. */
const REINDEX_CATCH_UPS = 5
/** The most results a query returns, of each kind. */
export const MAX_TOP_K = 1000
export const MAX_HOPS = 3
/** Entities hops may return, per chunk asked for. */
const HOP_RESULTS_PER_CHUNK = 10

/** What one collection's table gives a query: the hits of the vector and the BM25 search. */
type Lists = Partial<Record<'vector' | 'bm25', ChunkHit[]>>

/** A query of one collection's head, as a node forwards it to one that holds a replica (the cluster protocol's SEARCH). */
interface ListsRequest {
  collection: string
  head: string
  vector?: number[]
  text: string
  filters?: Record<string, unknown>
  candidates: number
  /** A query_vector of another size than the collection's is an error, not a collection to leave out. */
  strict: boolean
}

/** A replica of a head open on this node, and the queries using it. */
interface Replica {
  table: Promise<ChunkTable>
  users: number
  /** Out of the open set: closed when its last user is done. */
  evicted: boolean
}

/** Inline documents of a job, as content: see #inline. */
interface Inline {
  docs: Doc[]
  sources: Promise<(row: ChunkRow) => void>
  stored: Promise<void>
  isStored: () => boolean
}

interface Doc {
  docId: string
  sourceCid: string
  rootCid: string
  path: string
  bytes: Uint8Array
  metadata: Record<string, unknown>
}

export class SearchService extends TypedEventEmitter<SearchEvents> {
  readonly #c: SearchComponents
  readonly #init: Required<SearchInit>
  readonly #jobs = new Map<string, { job: IndexJob, controller: AbortController, done: Promise<IndexJob> }>()
  /** One indexing job at a time per collection on this node writes: they share its working directory. */
  readonly #writers = new Map<string, Promise<unknown>>()
  /** Per collection, the last job's embedding phase: the next job embeds once it ended. */
  readonly #embedders = new Map<string, Promise<void>>()
  /** Per running job, ends its embedding phase. */
  readonly #embedded = new Map<string, () => void>()
  /** Per collection, when the last job queued starts: the next job's documents are stored as content from then on. */
  readonly #starts = new Map<string, Promise<void>>()
  /** Open replicas by head CID, least recently used first. */
  readonly #replicas = new Map<string, Replica>()
  /** Evicted replicas that queries still use, closed when the last is done. */
  readonly #draining = new Map<string, Replica>()
  /** Evicted replicas being closed and deleted, by head CID. */
  readonly #closing = new Map<string, Promise<void>>()
  /** Per working directory: the CIDs its files gave, for the next snapshot to link unread. */
  readonly #snapshotCaches = new Map<string, SnapshotCache>()
  /** The last add of inline documents as content, for the next to wait on. */
  #storing: Promise<void> = Promise.resolve()
  readonly #codecs = new Map<string, Promise<TextCodec>>()
  #lifetime = new AbortController()

  constructor (components: SearchComponents, init: SearchInit) {
    super()
    this.#c = components
    this.#init = { embedBatch: 32, batchChunks: 512, snapshotMs: 5000, maxFileBytes: 64 * 1_048_576, openReplicas: 8, ...init }
  }

  async start (): Promise<void> {
    this.#lifetime = new AbortController()
    this.#c.cluster.serve('search', async (_from, body, signal) => this.#answer(body, signal))
    // Replicas are copies of snapshots whose blocks stay in the blockstore: what an earlier run left is written again when asked for.
    await rm(join(this.#init.dir, 'replicas'), { recursive: true, force: true })
  }

  async stop (): Promise<void> {
    this.#c.cluster.serve('search', undefined)
    this.#lifetime.abort(new Error('the node is stopping'))
    await Promise.allSettled([...this.#jobs.values()].map(async j => j.done))
    for (const replica of [...this.#replicas.values(), ...this.#draining.values()]) (await replica.table.catch(() => undefined))?.close()
    this.#replicas.clear()
    this.#draining.clear()
    await Promise.allSettled(this.#closing.values())
  }

  // ---- collections

  async createCollection (params: CreateCollectionParams, options: AbortOptions = {}): Promise<CollectionRecord> {
    const embeddingModel = params.embeddingModel ?? this.#init.defaultModel
    const model = await this.#c.inference.show(embeddingModel, options)
    if (model.kind !== 'encoder') throw new InvalidSearchRequestError(`${embeddingModel} is a ${model.kind}, not an embedding model`)
    // The model's special tokens ([CLS], [SEP]) take part of its context.
    const fits = Math.max(8, model.contextLength - 2)
    const chunkTokens = params.chunkTokens ?? Math.min(256, fits)
    if (chunkTokens > fits) throw new InvalidSearchRequestError(`chunks of ${chunkTokens} tokens do not fit the ${model.contextLength}-token context of ${embeddingModel}; at most ${fits}`)
    return this.#c.cluster.createCollection({
      name: params.name,
      embeddingModel: model.name,
      chunking: { chunkTokens, overlapTokens: params.overlapTokens ?? Math.floor(chunkTokens / 8) },
      metadataSchema: params.metadataSchema,
      replicationFactor: params.replicationFactor
    }, options)
  }

  async collections (options: AbortOptions = {}): Promise<CollectionRecord[]> {
    return this.#c.cluster.collections(options)
  }

  async collection (name: string, options: AbortOptions = {}): Promise<CollectionRecord> {
    return this.#c.cluster.collection(name, options)
  }

  async removeCollection (name: string, options: AbortOptions = {}): Promise<CollectionRecord> {
    const removed = await this.#c.cluster.removeCollection(name, options)
    this.#snapshotCaches.delete(this.#workDir(name))
    await rm(this.#workDir(name), { recursive: true, force: true })
    return removed
  }

  // ---- indexing

  /** Starts indexing into a collection; the job runs on after this returns. Bad input and a missing collection fail here. */
  async index (name: string, source: IndexSource, options: AbortOptions = {}): Promise<IndexJob> {
    const collection = await this.#c.cluster.collection(name, options)
    if ('documents' in source) {
      if (source.documents.length === 0) throw new InvalidSearchRequestError('no documents to index')
    } else {
      await this.#c.content.ls(source.cid, options)
    }
    // Inline documents are stored as content from now on, while the jobs before this one run.
    let inline: Inline | undefined
    return this.#queue(name, (signal, previousStarted) => { inline = 'documents' in source ? this.#inline(source.documents, signal, previousStarted) : undefined }, async (job, previous, signal) => this.#run(job, collection, source, inline, previous, signal))
  }

  /**
   * Re-embeds a collection's chunks with another model, in the background:
   * a job that reads the head's table, embeds every chunk's text again into
   * a table of its own and, once done, moves the head to it with the new
   * model in one Raft command, from the head it read (a job that appended
   * meanwhile fails it). Queries use the old head and model until then.
   * The chunks stay as they were cut: the new model must fit them.
   */
  async reindex (name: string, embeddingModel: string, options: AbortOptions = {}): Promise<IndexJob> {
    const collection = await this.#c.cluster.collection(name, options)
    const model = await this.#c.inference.show(embeddingModel, options)
    if (model.kind !== 'encoder') throw new InvalidSearchRequestError(`${embeddingModel} is a ${model.kind}, not an embedding model`)
    if (model.name === collection.embeddingModel) throw new InvalidSearchRequestError(`collection ${name} is embedded with ${model.name} already`)
    if (collection.chunking.chunkTokens > model.contextLength - 2) throw new InvalidSearchRequestError(`the ${collection.chunking.chunkTokens}-token chunks of ${name} do not fit the ${model.contextLength}-token context of ${model.name}`)
    if (collection.headCID === '') throw new InvalidSearchRequestError(`collection ${name} has no chunks to re-embed`)
    return this.#queue(name, () => {}, async (job, previous, signal) => this.#reindex(job, collection, model.name, previous, signal), model.name)
  }

  /**
   * Starts a job on a collection: it begins once the job before it embedded
   * its last batch, and writes once that job ended (`previous`).
   */
  #queue (name: string, prepare: (signal: AbortSignal, previousStarted: Promise<void>) => void, run: (job: IndexJob, previous: Promise<unknown>, signal: AbortSignal) => Promise<IndexJob>, embeddingModel?: string): IndexJob {
    const job: IndexJob = { id: `index_${randomUUID()}`, collection: name, status: 'running', documents: 0, skipped: 0, chunks: 0, batches: 0, snapshots: 0, startedAt: new Date().toISOString(), ...(embeddingModel != null ? { embeddingModel } : {}) }
    const controller = new AbortController()
    const signal = AbortSignal.any([controller.signal, this.#lifetime.signal])
    const previous = this.#writers.get(name) ?? Promise.resolve()
    const previousEmbedded = this.#embedders.get(name) ?? Promise.resolve()
    const embedded = new Promise<void>(resolve => this.#embedded.set(job.id, () => { this.#embedded.delete(job.id); resolve() }))
    this.#embedders.set(name, embedded)
    void embedded.then(() => { if (this.#embedders.get(name) === embedded) this.#embedders.delete(name) })
    // This job starts once the one before it embedded its last batch.
    const previousStarted = this.#starts.get(name) ?? Promise.resolve()
    this.#starts.set(name, previousEmbedded)
    void previousEmbedded.then(() => { if (this.#starts.get(name) === previousEmbedded) this.#starts.delete(name) })
    prepare(signal, previousStarted)
    const done = previousEmbedded.then(async () => run(job, previous, signal))
    this.#writers.set(name, done)
    void done.finally(() => { if (this.#writers.get(name) === done) this.#writers.delete(name) })
    this.#jobs.set(job.id, { job, controller, done })
    this.#forgetOldJobs()
    return { ...job }
  }

  async #reindex (job: IndexJob, collection: CollectionRecord, model: string, previous: Promise<unknown>, signal: AbortSignal): Promise<IndexJob> {
    const work = this.#workDir(collection.name)
    const dir = `${work}.reindex`
    let built: ChunkTable | undefined
    try {
      await previous.catch(() => {})
      let from = await this.#c.cluster.collection(collection.name, { signal })
      if (from.embeddingModel !== collection.embeddingModel) throw new InvalidSearchRequestError(`collection ${collection.name} was re-embedded with ${from.embeddingModel} meanwhile`)
      await rm(dir, { recursive: true, force: true })
      built = await ChunkTable.open(dir, from.metadataSchema)
      const store = async (rows: ChunkRow[]): Promise<void> => {
        await this.#embedRows(rows, model, signal)
        await (built as ChunkTable).add(rows)
        job.chunks += rows.length
        job.batches++
        this.#progress(job)
      }
      // Collections only grow, so the chunks a head has that the new table lacks are those whose ids it has not seen.
      const copied = new Set<string>()
      const copy = async (source: CollectionRecord): Promise<void> => this.#withTable(source, { signal }, async table => {
        const rows: ChunkRow[] = []
        for await (const row of table.scan()) {
          if (copied.has(row.id)) continue
          copied.add(row.id)
          rows.push({ ...row, vector: [] })
          if (rows.length >= this.#init.batchChunks) await store(rows.splice(0))
        }
        if (rows.length > 0) await store(rows)
      })
      await copy(from)
      let cid: string
      let moved: CollectionRecord
      for (let attempt = 1; ; attempt++) {
        await built.seal()
        cid = await snapshotDirectory(this.#c.content, dir, { signal })
        try {
          moved = await this.#c.cluster.setCollectionHead(collection.name, { headCID: cid, expectedHead: from.headCID, chunks: await built.count(), embeddingModel: model }, { signal })
          break
        } catch (err: any) {
          if (err.name !== ConsensusRejectedError.name || attempt >= REINDEX_CATCH_UPS) throw err
          // Another node indexed into the collection meanwhile: its chunks are embedded too, and the switch tried again from its head.
          const now = await this.#c.cluster.collection(collection.name, { signal })
          if (now.embeddingModel !== collection.embeddingModel) throw new InvalidSearchRequestError(`collection ${collection.name} was re-embedded with ${now.embeddingModel} meanwhile`)
          if (now.headCID === from.headCID) throw err
          from = now
          await copy(from)
        }
      }
      built.close()
      built = undefined
      job.snapshots++
      job.headCID = cid
      job.version = moved.version
      // The new table is the working directory now: the next job appends to it.
      await writeFile(join(dir, HEAD_FILE), cid)
      this.#snapshotCaches.delete(work)
      await rm(work, { recursive: true, force: true })
      await rename(dir, work)
      job.status = 'completed'
    } catch (err: any) {
      job.status = signal.aborted ? 'cancelled' : 'failed'
      job.error = err.message
      this.#c.log('re-embedding %s with %s failed - %s', collection.name, model, err.message)
    } finally {
      built?.close()
      this.#embedded.get(job.id)?.()
      if (job.status !== 'completed') await rm(dir, { recursive: true, force: true }).catch(() => {})
    }
    job.completedAt = new Date().toISOString()
    this.#progress(job)
    return { ...job }
  }

  /**
   * A collection made from inline documents at once, as LangChain's vector
   * store and LlamaIndex's index are: the metadata schema is what the
   * documents' metadata holds (each field whose values share one scalar
   * type), and the answer waits for the indexing to end.
   */
  async createFromDocuments (params: CreateCollectionParams, documents: RawDocument[], options: AbortOptions = {}): Promise<{ collection: CollectionRecord, job: IndexJob }> {
    if (documents.length === 0) throw new InvalidSearchRequestError('no documents to index')
    await this.createCollection({ metadataSchema: schemaOf(documents), ...params }, options)
    const started = await this.index(params.name, { documents }, options)
    const job = await this.wait(started.id, options)
    if (job.status !== 'completed') throw new InvalidSearchRequestError(`indexing the documents ${job.status}: ${job.error ?? ''}`)
    return { collection: await this.#c.cluster.collection(params.name, options), job }
  }

  job (id: string): IndexJob {
    const entry = this.#jobs.get(id)
    if (entry == null) throw new IndexJobNotFoundError(`no indexing job ${JSON.stringify(id.slice(0, 100))} on this node`)
    return { ...entry.job }
  }

  jobs (): IndexJob[] {
    return [...this.#jobs.values()].map(e => ({ ...e.job })).reverse()
  }

  /** The job once it ended; the wait stops at `signal`, the job does not. */
  async wait (id: string, options: AbortOptions = {}): Promise<IndexJob> {
    const entry = this.#jobs.get(id)
    if (entry == null) throw new IndexJobNotFoundError(`no indexing job ${JSON.stringify(id.slice(0, 100))} on this node`)
    const aborted = new Promise<never>((_resolve, reject) => {
      options.signal?.addEventListener('abort', () => { reject(options.signal?.reason) }, { once: true })
    })
    options.signal?.throwIfAborted()
    return Promise.race([entry.done, aborted])
  }

  cancel (id: string): IndexJob {
    const entry = this.#jobs.get(id)
    if (entry == null) throw new IndexJobNotFoundError(`no indexing job ${JSON.stringify(id.slice(0, 100))} on this node`)
    entry.controller.abort(new Error('cancelled'))
    return { ...entry.job }
  }

  #forgetOldJobs (): void {
    const ended = [...this.#jobs.entries()].filter(([, e]) => e.job.status !== 'running')
    for (const [id] of ended.slice(0, Math.max(0, ended.length - JOB_HISTORY))) this.#jobs.delete(id)
  }

  #progress (job: IndexJob): void {
    this.safeDispatchEvent('IndexProgress', { detail: { ...job } })
  }

  /**
   * A job in two phases: extracting, chunking and embedding its batches,
   * which starts once the job before it on this collection embedded its
   * last batch; and storing them in the working table, which waits for that
   * job to end (`previous`). The model thus goes on from one job to the next
   * while the last one seals and snapshots.
   */
  async #run (job: IndexJob, submitted: CollectionRecord, source: IndexSource, inline: Inline | undefined, previous: Promise<unknown>, signal: AbortSignal): Promise<IndexJob> {
    const dir = this.#workDir(submitted.name)
    // As it is now: a re-index before this job may have changed its model.
    const fresh = this.#c.cluster.collection(submitted.name, { signal })
    fresh.catch(() => {})
    let collection = submitted
    let writing = false
    let table: ChunkTable | undefined
    let head = ''
    let cache: SnapshotCache = new Map()
    // The working directory is this job's once the job before it ended; it starts from the head as it is then.
    const opened = (async () => {
      await previous.catch(() => {})
      signal.throwIfAborted()
      writing = true
      const current = await this.#c.cluster.collection(submitted.name, { signal })
      if (current.embeddingModel !== (await fresh).embeddingModel) throw new InvalidSearchRequestError(`collection ${collection.name} was re-embedded with ${current.embeddingModel} meanwhile`)
      head = current.headCID
      await this.#checkout(dir, head, signal)
      cache = this.#snapshotCaches.get(dir) ?? cache
      this.#snapshotCaches.set(dir, cache)
      table = await ChunkTable.open(dir, collection.metadataSchema)
      return table
    })()
    opened.catch(() => {})
    // A batch is stored while the next one is embedded, and the one after that is chunked meanwhile: the model never waits for the disk.
    let storing: Promise<void> = Promise.resolve()
    let embedding: Promise<void> = Promise.resolve()
    try {
      collection = await fresh
      const codec = await this.#codec(collection.embeddingModel, { signal })
      let pending: ChunkRow[] = []
      /** The pending chunks' tokens where chunking has them: the model need not tokenize those again. */
      let pendingIds: Array<number[] | undefined> = []
      let snapshotAt = performance.now()
      /** Moves the head to a snapshot of the table, only from the head this job last saw. */
      const snapshot = async (table: ChunkTable): Promise<void> => {
        const cid = await snapshotDirectory(this.#c.content, dir, { signal, cache })
        const moved = await this.#c.cluster.setCollectionHead(collection.name, { headCID: cid, expectedHead: head, chunks: await table.count() }, { signal })
        await writeFile(join(dir, HEAD_FILE), cid)
        head = cid
        snapshotAt = performance.now()
        job.snapshots++
        job.headCID = cid
        job.version = moved.version
      }
      const store = async (rows: ChunkRow[]): Promise<void> => {
        if (inline != null) rows.forEach(await inline.sources)
        const table = await opened
        await table.add(rows)
        job.chunks += rows.length
        job.batches++
        // Mid-job the head moves by time, so that readers see progress while snapshots stay a small share of the job's cost.
        if (performance.now() - snapshotAt >= this.#init.snapshotMs && inline?.isStored() !== false) {
          await table.checkpoint()
          await snapshot(table)
        }
        this.#progress(job)
      }
      const flush = async (): Promise<void> => {
        const rows = pending
        const ids = pendingIds
        pending = []
        pendingIds = []
        await embedding
        const embedded = this.#embedRows(rows, collection.embeddingModel, signal, ids)
        const stored = storing
        embedding = embedded
        storing = (async () => {
          await embedded
          await stored
          await store(rows)
        })()
        // Seen at the next flush or at the end; until then no rejection goes unhandled.
        embedding.catch(() => {})
        storing.catch(() => {})
      }
      for await (const doc of inline?.docs ?? this.#documents(source as { cid: string }, signal)) {
        let text: string
        let extracted: Record<string, unknown>
        let format: string
        try {
          ({ text, metadata: extracted, format } = await extractText(doc.path, doc.bytes, { signal }))
        } catch (err: any) {
          // A directory may hold images and the like; a file asked for by itself must have text.
          if (err.name !== UnsupportedDocumentError.name || !('cid' in source) || doc.sourceCid === doc.rootCid) throw err
          job.skipped++
          continue
        }
        const metadata = { ...extracted, ...doc.metadata }
        const chunks = chunkText(text, codec, collection.chunking)
        chunks.forEach((chunk, i) => {
          pending.push(rowOf(doc, chunk, i, format, metadata, collection.metadataSchema))
          pendingIds.push(chunk.ids)
        })
        job.documents++
        if (pending.length >= this.#init.batchChunks) await flush()
      }
      if (pending.length > 0) await flush()
      await embedding
      this.#embedded.get(job.id)?.()
      await storing
      // The indexes are brought up to date here, not per batch, and only once enough rows were added that it pays.
      if (table != null && job.batches > 0) {
        await inline?.stored
        await table.settle()
        await snapshot(table)
      }
      job.status = 'completed'
    } catch (err: any) {
      job.status = signal.aborted ? 'cancelled' : 'failed'
      job.error = err.message
      this.#c.log('indexing into %s failed - %s', collection.name, err.message)
    } finally {
      this.#embedded.get(job.id)?.()
      await Promise.allSettled([embedding, storing])
      table?.close()
    }
    if (job.status !== 'completed') {
      // Not before the job ahead ended: the directory is its until then.
      await opened.catch(() => {})
      // The table may hold rows no snapshot has: the next job starts again from the head.
      if (writing) {
        this.#snapshotCaches.delete(dir)
        await rm(dir, { recursive: true, force: true }).catch(() => {})
      }
    }
    job.completedAt = new Date().toISOString()
    this.#progress(job)
    return { ...job }
  }

  /** Makes the working directory hold the head, from a replica of its snapshot unless it holds it already. */
  async #checkout (dir: string, head: string, signal: AbortSignal): Promise<void> {
    const at = await readFile(join(dir, HEAD_FILE), 'utf8').catch(() => undefined)
    if (at === head && head !== '') return
    this.#snapshotCaches.delete(dir)
    await rm(dir, { recursive: true, force: true })
    if (head !== '') await writeReplica(this.#c.content, head, dir, { signal })
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, HEAD_FILE), head)
  }

  /**
   * Inline documents become content too, a directory of one file each, so
   * that their chunks name a CID and hops reach them. One add stores (and
   * pins) the directory; rows take their CIDs from `sources`, the add's
   * entries, which are all there once it reaches the directory, before its
   * pin. The batches are embedded meanwhile, and no head that names its CIDs
   * moves before the add is done (`stored`). The add begins once the job
   * before this one started (`after`), and after that job's add: so the adds
   * go one job ahead of the embedding, rather than all of a queue's at once
   * under its first batches.
   */
  #inline (documents: RawDocument[], signal: AbortSignal, after: Promise<void>): Inline {
    const files = documents.map((d, i) => ({ path: `${String(i).padStart(6, '0')}.txt`, content: new TextEncoder().encode(d.text) }))
    const docs = files.map((file, i) => ({ docId: documents[i].id ?? file.path, sourceCid: '', rootCid: '', path: file.path, bytes: file.content, metadata: documents[i].metadata ?? {} }))
    const sources = Promise.withResolvers<(row: ChunkRow) => void>()
    let done = false
    const stored = Promise.all([this.#storing.catch(() => {}), after]).then(async () => {
      const cids = new Map<string, string>()
      for await (const event of this.#c.content.addAll(files, { wrapWithDirectory: true, cidVersion: 1, rawLeaves: true, signal, fileConcurrency: INLINE_ADD_CONCURRENCY })) {
        if (event.type !== 'entry') continue
        if (event.name !== '') {
          cids.set(event.name, event.cid.toString())
          continue
        }
        // The directory comes last, after every file.
        const root = event.cid.toString()
        sources.resolve((row: ChunkRow) => {
          row.source_cid = cids.get(row.path) ?? root
          row.root_cid = root
          row.id = `${row.source_cid}:${row.path}#${row.chunk_index}`
        })
      }
      done = true
    })
    // Once resolved this changes nothing: the rows wait on an add that failed before the directory, or gave none, no longer.
    stored.then(() => { sources.reject(new Error('adding the documents gave no directory')) }, err => { sources.reject(err) })
    this.#storing = stored
    sources.promise.catch(() => {})
    return { docs, sources: sources.promise, stored, isStored: () => done }
  }

  async * #documents (source: { cid: string, metadata?: Record<string, unknown> }, signal: AbortSignal): AsyncGenerator<Doc> {
    const listing = await this.#c.content.ls(source.cid, { signal })
    const root = listing.cid.toString()
    if (!listing.directory) {
      yield { docId: root, sourceCid: root, rootCid: root, path: '', bytes: await this.#read(root, signal), metadata: source.metadata ?? {} }
      return
    }
    for await (const file of this.#filesOf(root, '', signal)) {
      yield { docId: `${root}/${file.path}`, sourceCid: file.cid, rootCid: root, path: file.path, bytes: await this.#read(file.cid, signal), metadata: source.metadata ?? {} }
    }
  }

  async * #filesOf (root: string, prefix: string, signal: AbortSignal): AsyncGenerator<{ path: string, cid: string }> {
    const { entries } = await this.#c.content.ls(prefix === '' ? root : `${root}/${prefix}`, { signal })
    for (const entry of entries) {
      const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
      if (entry.type === 'directory') yield * this.#filesOf(root, path, signal)
      else yield { path, cid: entry.cid.toString() }
    }
  }

  async #read (cid: string, signal: AbortSignal): Promise<Uint8Array> {
    const { size } = await this.#c.content.stat(cid, { signal })
    if (size > this.#init.maxFileBytes) throw new InvalidSearchRequestError(`${cid} has ${size} bytes, more than the ${this.#init.maxFileBytes} a file may have to be indexed`)
    return this.#c.content.readFile(cid, { signal })
  }

  /** Embeds the rows' texts, with their tokens where `ids` has them, in batches, two requests in flight: the next batch is on its way while the model runs one. */
  async #embedRows (rows: ChunkRow[], model: string, signal: AbortSignal, ids: Array<number[] | undefined> = []): Promise<void> {
    const batches: number[] = []
    for (let i = 0; i < rows.length; i += this.#init.embedBatch) batches.push(i)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < batches.length) {
        const from = batches[next++]
        const batch = rows.slice(from, from + this.#init.embedBatch)
        const input = batch.map((row, k) => {
          const tokens = ids[from + k]
          return tokens == null ? row.text : { text: row.text, ids: tokens }
        })
        const { embeddings } = await this.#c.inference.embed({ model, input, inputType: 'document' }, { signal })
        batch.forEach((row, k) => { row.vector = embeddings[k] })
      }
    }
    await Promise.all([worker(), worker()])
  }

  /** The embedding model's tokenizer, read from its directory once. */
  async #codec (model: string, options: AbortOptions): Promise<TextCodec> {
    const { cid } = await this.#c.inference.show(model, options)
    let codec = this.#codecs.get(cid)
    if (codec == null) {
      codec = (async () => {
        const read = async (file: string): Promise<Record<string, unknown>> => JSON.parse(Buffer.from(await this.#c.content.readFile(`${cid}/${file}`, options)).toString('utf8'))
        return new TextCodec(await read('tokenizer.json'), await read('tokenizer_config.json').catch(() => ({})))
      })()
      codec.catch(() => this.#codecs.delete(cid))
      this.#codecs.set(cid, codec)
    }
    return codec
  }

  #replicaDir (cid: string): string {
    return join(this.#init.dir, 'replicas', cid)
  }

  #workDir (name: string): string {
    return join(this.#init.dir, 'work', name)
  }

  // ---- queries

  /**
   * Runs `fn` on the table of a collection's head: a replica on this node's
   * disk, written from the snapshot first if needed. The replica counts its
   * users, so that evicting it closes the table only once the last is done.
   */
  async #withTable<T> (collection: CollectionRecord, options: AbortOptions, fn: (table: ChunkTable) => Promise<T>): Promise<T> {
    const cid = collection.headCID
    let replica = this.#replicas.get(cid) ?? this.#draining.get(cid)
    if (replica != null) {
      // An evicted one still in use is taken back rather than written again beside it.
      this.#draining.delete(cid)
      replica.evicted = false
    } else {
      const dir = this.#replicaDir(cid)
      // After an eviction of the same head has deleted its directory, not while it does.
      const closing = this.#closing.get(cid) ?? Promise.resolve()
      const table = closing.then(async () => {
        if (!(await hasReplica(dir))) await writeReplica(this.#c.content, cid, dir, { signal: this.#lifetime.signal })
        return ChunkTable.open(dir, collection.metadataSchema)
      })
      const opened: Replica = { table, users: 0, evicted: false }
      replica = opened
      table.catch(() => { if (this.#replicas.get(cid) === opened) this.#replicas.delete(cid) })
    }
    // Most recently used last.
    this.#replicas.delete(cid)
    this.#replicas.set(cid, replica)
    replica.users++
    try {
      this.#evictReplicas()
      return await fn(await raceSignal(replica.table, options.signal))
    } finally {
      replica.users--
      if (replica.evicted && replica.users === 0) this.#close(cid, replica)
    }
  }

  #evictReplicas (): void {
    for (const [cid, replica] of [...this.#replicas].slice(0, Math.max(0, this.#replicas.size - this.#init.openReplicas))) {
      this.#replicas.delete(cid)
      replica.evicted = true
      if (replica.users === 0) this.#close(cid, replica)
      else this.#draining.set(cid, replica)
    }
  }

  #close (cid: string, replica: Replica): void {
    if (this.#draining.get(cid) === replica) this.#draining.delete(cid)
    const closing = replica.table.then(async table => {
      table.close()
      await rm(this.#replicaDir(cid), { recursive: true, force: true })
    }, () => {}).finally(() => { if (this.#closing.get(cid) === closing) this.#closing.delete(cid) })
    this.#closing.set(cid, closing)
  }

  /**
   * A collection's vector and BM25 lists: from this node's replica of the
   * head if it has one (open, on disk, or the head pinned here), else from a
   * node the head is pinned on, through the cluster protocol; from a replica
   * written here when none answers, or when the caller asked for `local`.
   */
  async #lists (collection: CollectionRecord, request: ListsRequest, where: string | undefined, local: boolean, options: AbortOptions): Promise<Lists | null> {
    if (!local) {
      const holders = await this.#holders(collection.headCID, options)
      if (!holders.includes(this.#c.cluster.id) && !(await this.#hasReplica(collection.headCID))) {
        for (const peer of holders) {
          try {
            return (await this.#c.cluster.ask<{ lists: Lists | null }>(peer, 'search', request, options)).lists
          } catch (err: any) {
            options.signal?.throwIfAborted()
            this.#c.log('searching %s at %s failed - %s', collection.name, peer, err.message)
          }
        }
      }
    }
    return this.#listsHere(collection, request, where, options)
  }

  /** The nodes the head is pinned on, in random order: queries spread over them. */
  async #holders (head: string, options: AbortOptions): Promise<string[]> {
    const pin = await this.#c.cluster.pin(head, { ...options, local: true }).catch(() => undefined)
    const holders = [...pin?.allocations ?? []]
    for (let i = holders.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [holders[i], holders[j]] = [holders[j], holders[i]]
    }
    return holders
  }

  async #hasReplica (head: string): Promise<boolean> {
    return this.#replicas.has(head) || hasReplica(this.#replicaDir(head))
  }

  async #listsHere (collection: CollectionRecord, request: ListsRequest, where: string | undefined, options: AbortOptions): Promise<Lists | null> {
    return this.#withTable(collection, options, async table => {
      const dims = await table.dimensions()
      const { vector, text, candidates } = request
      if (vector != null && vector.length !== dims) {
        if (request.strict) throw new InvalidSearchRequestError(`query_vector has ${vector.length} dimensions; collection ${collection.name} has ${dims}`)
        return null
      }
      const lists: Lists = {}
      // Plain objects, not Arrow's row proxies: a forwarded query sends them as JSON.
      if (vector != null) lists.vector = (await table.nearest(vector, candidates, where)).map(hit => ({ ...hit }))
      if (text !== '') lists.bm25 = (await table.matching(text, candidates, where)).map(hit => ({ ...hit }))
      return lists
    })
  }

  /** Another member's query of a head this node holds: checked as a caller's would be, since the body came over the wire. */
  async #answer (body: ListsRequest, signal: AbortSignal): Promise<{ lists: Lists | null }> {
    if (typeof body?.collection !== 'string' || typeof body.head !== 'string' || typeof body.text !== 'string' || typeof body.strict !== 'boolean') throw new InvalidSearchRequestError('a forwarded search needs collection, head, text and strict')
    if (!Number.isInteger(body.candidates) || body.candidates < 1 || body.candidates > MAX_TOP_K * 3) throw new InvalidSearchRequestError(`candidates must be from 1 to ${MAX_TOP_K * 3}`)
    if (body.vector != null && (!Array.isArray(body.vector) || body.vector.some(v => typeof v !== 'number' || !Number.isFinite(v)))) throw new InvalidSearchRequestError('query_vector must hold finite numbers')
    const collection = await this.#c.cluster.collection(body.collection, { signal, local: true })
    // Only the head as this node knows it: a replica is written for no CID a caller names.
    if (collection.headCID !== body.head) throw new InvalidSearchRequestError(`collection ${collection.name} is at ${collection.headCID === '' ? 'no head' : collection.headCID} here, not ${body.head}`)
    return { lists: await this.#listsHere(collection, body, compileFilters(body.filters, collection.metadataSchema), { signal }) }
  }

  async search (query: HybridQuery, options: AbortOptions = {}): Promise<SearchResult[]> {
    const topK = query.topK ?? 10
    const hopCount = query.hopCount ?? 1
    if (!Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K) throw new InvalidSearchRequestError(`top_k must be from 1 to ${MAX_TOP_K}`)
    if (!Number.isInteger(hopCount) || hopCount < 0 || hopCount > MAX_HOPS) throw new InvalidSearchRequestError(`hop_count must be from 0 to ${MAX_HOPS}`)
    const text = query.queryText?.trim() ?? ''
    if (text === '' && query.queryVector == null) throw new InvalidSearchRequestError('a search needs query_text, query_vector or both')
    if (query.queryVector?.some(v => !Number.isFinite(v)) === true) throw new InvalidSearchRequestError('query_vector must hold finite numbers')
    const wanted = new Set(query.entityTypes ?? ENTITY_TYPES)
    const collections = query.collection != null
      ? [await this.#c.cluster.collection(query.collection, { ...options, local: true })]
      : (await this.#c.cluster.collections({ ...options, local: true })).filter(c => c.headCID !== '')
    // Filters are checked against every collection before any search runs.
    const filters = collections.map(c => compileFilters(query.metadataFilters, c.metadataSchema))
    const candidates = Math.max(topK * 3, 30)
    const fused: Array<{ hit: ChunkHit, collection: string, score: number, ranks: Record<string, number> }> = []
    const queryVectors = new Map<string, number[]>()
    for (const [i, collection] of collections.entries()) {
      if (collection.headCID === '') continue
      let vector = query.queryVector
      if (vector == null && text !== '') {
        vector = queryVectors.get(collection.embeddingModel)
        if (vector == null) {
          vector = (await this.#c.inference.embed({ model: collection.embeddingModel, input: [text], inputType: 'query' }, options)).embeddings[0]
          queryVectors.set(collection.embeddingModel, vector)
        }
      }
      const request: ListsRequest = { collection: collection.name, head: collection.headCID, vector, text, filters: query.metadataFilters, candidates, strict: query.collection != null }
      const lists = await this.#lists(collection, request, filters[i], query.local === true, options)
      if (lists == null) continue
      for (const { item, score, ranks } of reciprocalRankFusion(lists, hit => hit.id)) fused.push({ hit: item, collection: collection.name, score, ranks })
    }
    fused.sort((a, b) => b.score - a.score)
    let best = fused.slice(0, query.rerankModel == null ? topK : candidates)
    if (query.rerankModel != null && best.length > 0) {
      const reranked = await this.#c.inference.rerank({ model: query.rerankModel, query: text === '' ? '' : text, documents: best.map(b => b.hit.text), topN: topK }, options)
      best = reranked.results.map(r => ({ ...best[r.index], score: r.score }))
    }
    best = best.slice(0, topK)
    const chunks: SearchResult[] = best.map(({ hit, collection, score, ranks }) => ({
      entity_type: 'chunk',
      id: hit.id,
      score,
      collection,
      text: hit.text,
      source_cid: hit.source_cid,
      root_cid: hit.root_cid,
      doc_id: hit.doc_id,
      path: hit.path,
      byte_range: [hit.byte_start, hit.byte_end],
      metadata: JSON.parse(hit.metadata),
      ranks,
      hop_path: []
    }))
    const out = chunks.filter(() => wanted.has('chunk'))
    if (hopCount > 0 && chunks.length > 0 && [...wanted].some(t => t !== 'chunk')) {
      const starts: HopResult[] = chunks.map(c => ({ entity: { type: 'chunk', id: c.id, cid: c.source_cid, path: c.path, root_cid: c.root_cid }, score: c.score, hops: [] }))
      const found = await expandHops(starts, hopCount, this.#c, { signal: options.signal, limit: topK * 4 })
      // Each chunk may lead to several entities a hop: a file, its directory, the directory's files.
      const hops = found.filter(r => wanted.has(r.entity.type)).sort((a, b) => b.score - a.score).slice(0, topK * HOP_RESULTS_PER_CHUNK)
      for (const { entity, score, hops: path } of hops) {
        out.push({ entity_type: entity.type, id: entity.id, score, cid: entity.cid, path: entity.path, root_cid: entity.root_cid, name: entity.name, hop_path: path })
      }
    }
    return out
  }
}

/** The metadata fields of documents that filters can name: identifiers whose values are all of one scalar type. */
function schemaOf (documents: RawDocument[]): Record<string, MetadataFieldType> {
  const types = new Map<string, MetadataFieldType | null>()
  for (const doc of documents) {
    for (const [key, value] of Object.entries(doc.metadata ?? {})) {
      if (value == null) continue
      const type = typeof value
      const scalar = type === 'string' || type === 'number' || type === 'boolean' ? type : null
      const known = types.get(key)
      types.set(key, known === undefined || known === scalar ? scalar : null)
    }
  }
  return Object.fromEntries([...types].filter((e): e is [string, MetadataFieldType] => e[1] != null && /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(e[0])))
}

/** In the working directory: the head its table holds. */
const HEAD_FILE = '.head'

function rowOf (doc: Doc, chunk: { text: string, start: number, end: number }, index: number, format: string, metadata: Record<string, unknown>, schema: Record<string, MetadataFieldType>): ChunkRow {
  const row: ChunkRow = {
    id: `${doc.sourceCid}:${doc.path}#${index}`,
    text: chunk.text,
    vector: [],
    doc_id: doc.docId,
    source_cid: doc.sourceCid,
    root_cid: doc.rootCid,
    path: doc.path,
    format,
    byte_start: chunk.start,
    byte_end: chunk.end,
    chunk_index: index,
    metadata: JSON.stringify(metadata)
  }
  // A value of another type than the schema's is kept in the JSON only, not in the column filters read.
  for (const [field, type] of Object.entries(schema)) {
    const value = metadata[field]
    row[metadataColumn(field)] = hasType(value, type) ? value : null
  }
  return row
}

export function createSearch (components: SearchComponents, init: SearchInit): SearchService {
  return new SearchService(components, init)
}
