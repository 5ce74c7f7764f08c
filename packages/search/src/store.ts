/**
 * A collection's chunks as a LanceDB table in a directory: text, vector,
 * where each chunk came from, its metadata as JSON and, for the fields of
 * the collection's metadata schema, typed columns that filters compile to
 * SQL over. A full-text (BM25) index always; an ANN index (IVF) once the table is
 * large enough that a scan no longer pays. Old versions are dropped before a
 * snapshot, so that a snapshot holds one version.
 */
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import type { MetadataFieldType } from '@node-daemon/cluster'
import type * as Lance from '@lancedb/lancedb'
import type * as Arrow from 'apache-arrow'

// LanceDB 0.31 sizes its compute pool by the cores, and on two cores its
// full-text index builder stalls for good once a table passes about 90,000
// rows (every thread waits on another). A pool of at least 8 threads builds
// it; the pool is made at its first use, after this runs.
process.env.LANCE_CPU_THREADS ??= String(Math.max(8, availableParallelism()))
// The statistics of an IVF index leave out its centroids, as LanceDB's next
// releases do by default; otherwise each index build warns on stderr.
process.env.LANCE_INCLUDE_VECTOR_CENTROIDS ??= 'false'

export const TABLE = 'chunks'

interface Engine {
  lancedb: typeof Lance
  arrow: typeof Arrow
}

let engine: Promise<Engine> | undefined

/**
 * LanceDB and Apache Arrow, imported at the first table a node opens: over
 * 500 modules, which a node without collections would otherwise keep in its
 * heap for its life, marked again by every full collection.
 */
async function loadEngine (): Promise<Engine> {
  // LanceDB's CommonJS build takes a table as Arrow only if it is an instance
  // of apache-arrow's CommonJS classes, which an import here does not give.
  engine ??= import('@lancedb/lancedb').then(lancedb => ({ lancedb, arrow: createRequire(import.meta.url)('apache-arrow') as typeof Arrow }))
  return engine
}

/** The share of a table's rows past which a job's end seals it: the unindexed rows are scanned by every query until then. */
export const UNINDEXED_SHARE = 0.25

/** Below this many chunks a brute-force scan is fast and exact; above it an IVF index answers. */
export const ANN_MIN_ROWS = 20_000
/**
 * The share of the ANN index's partitions a query probes. The partitions are
 * set when the index is made (the square root of the rows then) and later
 * rows join them, so LanceDB's fixed default of 20 probes covers less and
 * less: 0.90 recall@10 at 100,000 rows on 141 partitions, 0.97 at 40.
 */
const PROBED_SHARE = 0.3
const MIN_PROBES = 20
/** The vector index's name carries its partition count, which LanceDB does not report. */
const VECTOR_INDEX = /^vector_ivf_(\d+)$/

export interface ChunkRow {
  id: string
  text: string
  vector: number[]
  doc_id: string
  source_cid: string
  /** The CID the chunk's document was indexed under: the file itself, or the directory it is in. */
  root_cid: string
  path: string
  format: string
  byte_start: number
  byte_end: number
  chunk_index: number
  /** The document's metadata as JSON. */
  metadata: string
  [column: `m_${string}`]: string | number | boolean | null
}

/** A row as a search returns it: no vector, and the search's own score. */
export type ChunkHit = Omit<ChunkRow, 'vector'> & { _distance?: number, _score?: number }

/** The column of a metadata field. */
export const metadataColumn = (field: string): `m_${string}` => `m_${field}`

const BUILTIN = ['id', 'text', 'doc_id', 'source_cid', 'root_cid', 'path', 'format', 'byte_start', 'byte_end', 'chunk_index', 'metadata']

function schemaOf (arrow: typeof Arrow, dimensions: number, metadataSchema: Record<string, MetadataFieldType>): Arrow.Schema {
  const { Bool, Field, FixedSizeList, Float32, Float64, Int32, Schema, Utf8 } = arrow
  const types = { string: () => new Utf8(), number: () => new Float64(), boolean: () => new Bool() }
  return new Schema([
    new Field('id', new Utf8(), false),
    new Field('text', new Utf8(), false),
    new Field('vector', new FixedSizeList(dimensions, new Field('item', new Float32(), true)), false),
    new Field('doc_id', new Utf8(), false),
    new Field('source_cid', new Utf8(), false),
    new Field('root_cid', new Utf8(), false),
    new Field('path', new Utf8(), false),
    new Field('format', new Utf8(), false),
    new Field('byte_start', new Float64(), false),
    new Field('byte_end', new Float64(), false),
    new Field('chunk_index', new Int32(), false),
    new Field('metadata', new Utf8(), false),
    ...Object.entries(metadataSchema).map(([name, type]) => new Field(metadataColumn(name), types[type](), true))
  ])
}

/**
 * Rows as an Arrow table of `schema`, built a column at a time, the vectors
 * as one Float32Array: LanceDB's own conversion of objects walks every
 * row's fields and builds each value through Arrow's builders, which took
 * the main thread twice as long.
 */
function arrowTable (arrow: typeof Arrow, rows: ChunkRow[], schema: Arrow.Schema): Arrow.Table {
  const column = (name: string, type: Arrow.DataType): Arrow.Vector => {
    if (!arrow.DataType.isFixedSizeList(type)) return arrow.vectorFromArray(rows.map(row => row[name as keyof ChunkRow] ?? null), type)
    const dims = (type as Arrow.FixedSizeList).listSize
    const values = new Float32Array(rows.length * dims)
    rows.forEach((row, i) => {
      if (row.vector.length !== dims) throw new Error(`a vector of ${row.vector.length} dimensions for a table of ${dims}`)
      values.set(row.vector, i * dims)
    })
    const child = arrow.makeData({ type: (type as Arrow.FixedSizeList).children[0].type, length: values.length, data: values })
    return arrow.makeVector(arrow.makeData({ type: type as Arrow.FixedSizeList, length: rows.length, nullCount: 0, child }))
  }
  return new arrow.Table(schema, Object.fromEntries(schema.fields.map(field => [field.name, column(field.name, field.type)])))
}

export class ChunkTable {
  readonly #engine: Engine
  readonly #db: Lance.Connection
  #table?: Lance.Table
  /** The schema rows are added with, once the table is made or opened. */
  #schema?: Arrow.Schema
  readonly #metadataSchema: Record<string, MetadataFieldType>
  #dimensions?: number
  /** The ANN index's partitions; null once looked for and not there, until checkpoint() makes the index. */
  #partitionCount?: number | null

  private constructor (engine: Engine, db: Lance.Connection, table: Lance.Table | undefined, metadataSchema: Record<string, MetadataFieldType>) {
    this.#engine = engine
    this.#db = db
    this.#table = table
    this.#metadataSchema = metadataSchema
  }

  /** The table in `dir`, if there is one yet; it is made at the first add, when the vectors' size is known. */
  static async open (dir: string, metadataSchema: Record<string, MetadataFieldType>): Promise<ChunkTable> {
    const engine = await loadEngine()
    const db = await engine.lancedb.connect(dir)
    const table = (await db.tableNames()).includes(TABLE) ? await db.openTable(TABLE) : undefined
    return new ChunkTable(engine, db, table, metadataSchema)
  }

  async count (): Promise<number> {
    return this.#table == null ? 0 : this.#table.countRows()
  }

  /** The size of the vectors, once there are any. */
  async dimensions (): Promise<number | undefined> {
    if (this.#table == null) return undefined
    // Fixed when the table is made; every query asks.
    this.#dimensions ??= ((await this.#table.schema()).fields.find(f => f.name === 'vector')?.type as Arrow.FixedSizeList | undefined)?.listSize
    return this.#dimensions
  }

  async add (rows: ChunkRow[]): Promise<void> {
    if (rows.length === 0) return
    const dimensions = (await this.dimensions()) ?? rows[0].vector.length
    this.#schema ??= schemaOf(this.#engine.arrow, dimensions, this.#metadataSchema)
    this.#table ??= await this.#db.createEmptyTable(TABLE, this.#schema, { mode: 'create' })
    await this.#table.add(arrowTable(this.#engine.arrow, rows, this.#schema))
  }

  /**
   * Makes the indexes a query needs exist, without bringing them up to date:
   * rows added since are searched by a scan of their own, so that a
   * checkpoint mid-job costs nothing per row. The full-text index once; the
   * ANN index once the table crosses ANN_MIN_ROWS.
   */
  async checkpoint (): Promise<void> {
    const table = this.#table
    if (table == null) return
    const indices = await table.listIndices()
    if (!indices.some(i => i.columns.includes('text'))) await table.createIndex('text', { config: this.#engine.lancedb.Index.fts() })
    const rows = await table.countRows()
    if (!indices.some(i => i.columns.includes('vector')) && rows >= ANN_MIN_ROWS) {
      // IVF without quantization: distances stay exact within the partitions probed, and it builds in seconds where HNSW takes minutes here.
      const partitions = Math.round(Math.sqrt(rows))
      await table.createIndex('vector', { config: this.#engine.lancedb.Index.ivfFlat({ distanceType: 'cosine', numPartitions: partitions }), name: `vector_ivf_${partitions}` })
      this.#partitionCount = partitions
    }
  }

  /** Indexes that cover every row, the batches' files compacted, and the current version only. */
  async seal (): Promise<void> {
    const table = this.#table
    if (table == null) return
    await this.checkpoint()
    await table.optimize({ cleanupOlderThan: new Date(), deleteUnverified: true })
  }

  /**
   * The state an indexing job leaves: sealed once the rows its full-text
   * index does not cover reach a fraction of the table (UNINDEXED_SHARE),
   * else only checkpointed. Sealing rewrites the whole table, so sealing at
   * every job's end would cost each job the size of the table; this way the
   * rewrites add up to a few times what was added.
   */
  async settle (): Promise<void> {
    const table = this.#table
    if (table == null) return
    await this.checkpoint()
    if (await this.unindexed() >= await table.countRows() * UNINDEXED_SHARE) await this.seal()
  }

  /** Rows the full-text index does not cover yet: queries scan them. */
  async unindexed (): Promise<number> {
    const table = this.#table
    if (table == null) return 0
    const text = (await table.listIndices()).find(i => i.columns.includes('text'))
    return text == null ? await table.countRows() : (await table.indexStats(text.name))?.numUnindexedRows ?? 0
  }

  async nearest (vector: number[], limit: number, where?: string): Promise<ChunkHit[]> {
    if (this.#table == null) return []
    let query = this.#table.vectorSearch(vector).distanceType('cosine').limit(limit).select([...this.#columns(), '_distance'])
    const partitions = await this.#partitions()
    if (partitions != null) query = query.nprobes(Math.max(MIN_PROBES, Math.ceil(partitions * PROBED_SHARE)))
    if (where != null) query = query.where(where)
    return await query.toArray() as ChunkHit[]
  }

  /** The ANN index's partitions, looked up once: only checkpoint() makes the index, and it records them. */
  async #partitions (): Promise<number | undefined> {
    if (this.#partitionCount === undefined && this.#table != null) {
      const name = (await this.#table.listIndices()).map(i => VECTOR_INDEX.exec(i.name)).find(m => m != null)
      this.#partitionCount = name == null ? null : Number(name[1])
    }
    return this.#partitionCount ?? undefined
  }

  /** BM25 over the chunks' text. */
  async matching (text: string, limit: number, where?: string): Promise<ChunkHit[]> {
    if (this.#table == null) return []
    let query = this.#table.search(text, 'fts', 'text').limit(limit).select([...this.#columns(), '_score'])
    if (where != null) query = query.where(where)
    return await query.toArray() as ChunkHit[]
  }

  /** Rows by a filter alone, for hops that look for a file's chunks. */
  async rows (where: string, limit: number): Promise<ChunkHit[]> {
    if (this.#table == null) return []
    return await this.#table.query().where(where).limit(limit).select(this.#columns()).toArray() as ChunkHit[]
  }

  /** Every row but its vector, a batch of LanceDB's at a time: what a re-index embeds again. */
  async * scan (): AsyncGenerator<ChunkHit> {
    if (this.#table == null) return
    for await (const batch of this.#table.query().select(this.#columns())) {
      for (const row of batch.toArray()) yield { ...row } as ChunkHit
    }
  }

  #columns (): string[] {
    return [...BUILTIN, ...Object.keys(this.#metadataSchema).map(metadataColumn)]
  }

  close (): void {
    this.#table?.close()
    this.#db.close()
  }
}
