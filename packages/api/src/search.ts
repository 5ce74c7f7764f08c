/**
 * Search as operations: collections (create, list, delete), indexing jobs
 * (start, status) and document 000's `hybrid_search`, each one call of the
 * node's search service, for the REST routes and the method caller alike.
 */
import { randomBytes } from 'node:crypto'
import { Type } from 'typebox'
import { ENTITY_TYPES, MAX_HOPS, MAX_TOP_K } from '@node-daemon/search'
import { BadRequestError } from './errors.ts'
import { defined } from './inference.ts'
import { defineOperation, Loose } from './operations.ts'
import type { CollectionRecord } from '@node-daemon/cluster'
import type { Node } from '@node-daemon/daemon'
import type { Static } from 'typebox'
import type { IndexJob, IndexSource, RawDocument } from '@node-daemon/search'

/** A collection as the API shows it, in document 000's snake case. */
export function collectionJson (c: CollectionRecord): Record<string, unknown> {
  return {
    name: c.name,
    version: c.version,
    embedding_model: c.embeddingModel,
    chunk_tokens: c.chunking.chunkTokens,
    overlap_tokens: c.chunking.overlapTokens,
    metadata_schema: c.metadataSchema,
    head_cid: c.headCID === '' ? null : c.headCID,
    cid: c.headCID === '' ? null : c.headCID,
    replication_factor: c.replicationFactor,
    chunks: c.chunks,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
    owner: c.owner
  }
}

export function indexJobJson (j: IndexJob): Record<string, unknown> {
  return defined({
    id: j.id,
    collection: j.collection,
    status: j.status,
    documents: j.documents,
    skipped: j.skipped,
    chunks: j.chunks,
    batches: j.batches,
    snapshots: j.snapshots,
    embedding_model: j.embeddingModel,
    head_cid: j.headCID,
    version: j.version,
    error: j.error,
    started_at: j.startedAt,
    completed_at: j.completedAt
  })
}

const Name = Type.String({ minLength: 1, maxLength: 128, description: 'The collection\'s name: letters, digits, ".", "_" and "-"' })
const Metadata = Type.Record(Type.String(), Type.Unknown())

export const searchCollectionCreate = defineOperation({
  name: 'search_collection_create',
  summary: 'Create a search collection: its embedding model, chunking by the model\'s tokens, the metadata fields filters may name, and the copies of its snapshots',
  tags: ['search'],
  permission: 'content:write',
  input: Type.Object({
    name: Name,
    embedding_model: Type.Optional(Type.String({ minLength: 1, description: 'A registered encoder; default the embedded default' })),
    chunk_tokens: Type.Optional(Type.Integer({ minimum: 8, maximum: 8192 })),
    overlap_tokens: Type.Optional(Type.Integer({ minimum: 0, maximum: 8191 })),
    metadata_schema: Type.Optional(Type.Record(Type.String(), Type.Union([Type.Literal('string'), Type.Literal('number'), Type.Literal('boolean')]))),
    replication_factor: Type.Optional(Type.Integer({ minimum: -1, description: 'Copies of each snapshot; -1 is every node. Default 3, or every node if fewer' }))
  }, { additionalProperties: false }),
  args: ['name', 'embedding_model'],
  output: Type.Object({ collection: Loose }),
  run: async (node, input, signal) => {
    if (input.replication_factor === 0) throw new BadRequestError('replication_factor must be -1 or at least 1')
    const collection = await node.search.createCollection(defined({
      name: input.name,
      embeddingModel: input.embedding_model,
      chunkTokens: input.chunk_tokens,
      overlapTokens: input.overlap_tokens,
      metadataSchema: input.metadata_schema,
      replicationFactor: input.replication_factor
    }), { signal })
    return { collection: collectionJson(collection) }
  }
})

export const searchCollectionList = defineOperation({
  name: 'search_collection_list',
  summary: 'The search collections of the cluster, with their head snapshots',
  tags: ['search'],
  permission: 'content:read',
  input: Type.Object({}, { additionalProperties: false }),
  args: [],
  output: Type.Object({ collections: Type.Array(Loose), count: Type.Integer() }),
  run: async (node, _input, signal) => {
    const collections = (await node.search.collections({ signal })).map(collectionJson)
    return { collections, count: collections.length }
  }
})

export const searchCollectionDelete = defineOperation({
  name: 'search_collection_delete',
  summary: 'Delete a search collection; its snapshot is unpinned',
  tags: ['search'],
  permission: 'content:write',
  input: Type.Object({ name: Name }, { additionalProperties: false }),
  args: ['name'],
  output: Type.Object({ collection: Loose }),
  run: async (node, input, signal) => ({ collection: collectionJson(await node.search.removeCollection(input.name, { signal })) })
})

/** LangChain's Document (page_content) or LlamaIndex's (text), with metadata and an optional id. */
const RawDoc = Type.Object({
  page_content: Type.Optional(Type.String()),
  text: Type.Optional(Type.String()),
  metadata: Type.Optional(Metadata),
  id: Type.Optional(Type.String()),
  id_: Type.Optional(Type.String()),
  doc_id: Type.Optional(Type.String())
})

type RawDocInput = Static<typeof RawDoc>

export function rawDocuments (docs: RawDocInput[]): RawDocument[] {
  return docs.map((d, i) => {
    const text = d.page_content ?? d.text
    if (text == null) throw new BadRequestError(`documents[${i}] needs page_content (LangChain) or text (LlamaIndex)`)
    return defined({ text, metadata: d.metadata, id: d.id ?? d.id_ ?? d.doc_id })
  })
}

export const searchIndex = defineOperation({
  name: 'search_index',
  summary: 'Index a CID (a file or a directory) or inline documents into a collection: a job on this node that extracts, chunks, embeds and snapshots in batches',
  tags: ['search'],
  permission: 'content:write',
  input: Type.Object({
    collection: Name,
    cid: Type.Optional(Type.String({ minLength: 1, description: 'A file or directory to index' })),
    documents: Type.Optional(Type.Array(RawDoc, { minItems: 1, maxItems: 100_000 })),
    metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Metadata of every document of a CID' })),
    wait: Type.Optional(Type.Boolean({ default: false, description: 'Answer when the job has ended instead of at once' }))
  }, { additionalProperties: false }),
  args: ['collection', 'cid'],
  output: Type.Object({ job: Loose }),
  run: async (node, input, signal) => {
    if ((input.cid == null) === (input.documents == null)) throw new BadRequestError('give either cid or documents')
    const source: IndexSource = input.cid != null ? defined({ cid: input.cid, metadata: input.metadata }) : { documents: rawDocuments(input.documents ?? []) }
    let job = await node.search.index(input.collection, source, { signal })
    if (input.wait === true) job = await node.search.wait(job.id, { signal })
    return { job: indexJobJson(job) }
  }
})

export const searchCollectionReindex = defineOperation({
  name: 'search_collection_reindex',
  summary: 'Re-embed a collection\'s chunks with another embedding model: a job on this node, in the background; the collection\'s head and model switch when it is done, and queries use the old ones until then',
  tags: ['search'],
  permission: 'content:write',
  input: Type.Object({
    name: Name,
    embedding_model: Type.String({ minLength: 1, description: 'A registered encoder whose context fits the collection\'s chunks' }),
    wait: Type.Optional(Type.Boolean({ default: false, description: 'Answer when the job has ended instead of at once' }))
  }, { additionalProperties: false }),
  args: ['name', 'embedding_model'],
  output: Type.Object({ job: Loose }),
  run: async (node, input, signal) => {
    let job = await node.search.reindex(input.name, input.embedding_model, { signal })
    if (input.wait === true) job = await node.search.wait(job.id, { signal })
    return { job: indexJobJson(job) }
  }
})

export const searchIndexStatus = defineOperation({
  name: 'search_index_status',
  summary: 'An indexing job of this node by id, or all of them, newest first',
  tags: ['search'],
  permission: 'content:read',
  input: Type.Object({ id: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
  args: ['id'],
  output: Type.Object({ job: Type.Optional(Loose), jobs: Type.Optional(Type.Array(Loose)) }),
  run: async (node, input) => input.id != null ? { job: indexJobJson(node.search.job(input.id)) } : { jobs: node.search.jobs().map(indexJobJson) }
})

const EntityType = Type.Union(ENTITY_TYPES.map(t => Type.Literal(t)))

const LocalReplica = Type.Optional(Type.Boolean({ description: 'Answer from a replica on this node, written from the head\'s snapshot if it has none; by default a node without one asks a node that holds one' }))

export const hybridSearch = defineOperation({
  name: 'hybrid_search',
  summary: 'Hybrid search: query text (by vector and BM25) or a query vector, fused by reciprocal rank, under metadata filters, with hops from the chunks found to their files, directories and registry entries',
  tags: ['search'],
  permission: 'content:read',
  input: Type.Object({
    query_text: Type.Optional(Type.String({ maxLength: 10_000 })),
    query_vector: Type.Optional(Type.Array(Type.Number(), { minItems: 1, maxItems: 65_536 })),
    metadata_filters: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'field: value for equality, or field: {"$gte": ..., "$lt": ..., "$in": [...]}' })),
    entity_types: Type.Optional(Type.Array(EntityType, { minItems: 1, description: 'What results may be; default every type' })),
    hop_count: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_HOPS, default: 1 })),
    top_k: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TOP_K, default: 10 })),
    collection: Type.Optional(Name),
    rerank_model: Type.Optional(Type.String({ minLength: 1, description: 'A cross-encoder that reorders the fused chunks' })),
    local: LocalReplica
  }, { additionalProperties: false }),
  args: ['query_text', 'query_vector', 'metadata_filters', 'entity_types', 'hop_count', 'top_k'],
  output: Type.Object({ results: Type.Array(Loose), count: Type.Integer() }),
  run: async (node, input, signal) => {
    const results = await node.search.search(defined({
      collection: input.collection,
      queryText: input.query_text,
      queryVector: input.query_vector,
      metadataFilters: input.metadata_filters,
      entityTypes: input.entity_types,
      hopCount: input.hop_count,
      topK: input.top_k,
      rerankModel: input.rerank_model,
      local: input.local
    }), { signal })
    return { results: results as unknown as Array<Record<string, unknown>>, count: results.length }
  }
})

/** A framework's embedding setting: a model name, or an object naming one as LangChain (`model`, `model_name`) or LlamaIndex (`embed_model`) do. */
const EmbeddingConfig = Type.Union([Type.String({ minLength: 1 }), Type.Object({
  model: Type.Optional(Type.String({ minLength: 1 })),
  model_name: Type.Optional(Type.String({ minLength: 1 })),
  embed_model: Type.Optional(Type.String({ minLength: 1 }))
}, { additionalProperties: true })])

function modelOf (config: string | { model?: string, model_name?: string, embed_model?: string } | undefined): string | undefined {
  return typeof config === 'string' ? config : config?.model ?? config?.model_name ?? config?.embed_model
}

/** A name for a collection made without one, as the frameworks make theirs. */
const generatedName = (prefix: string): string => `${prefix}-${randomBytes(6).toString('hex')}`

const FrameworkOptions = {
  chunk_tokens: Type.Optional(Type.Integer({ minimum: 8, maximum: 8192 })),
  overlap_tokens: Type.Optional(Type.Integer({ minimum: 0, maximum: 8191 })),
  replication_factor: Type.Optional(Type.Integer({ minimum: -1 }))
}

/** What both frameworks' create routes do: a collection from the documents, indexed; its head CID and records. */
async function fromDocuments (node: Node, name: string, embeddingModel: string | undefined, input: { documents: RawDocInput[], chunk_tokens?: number, overlap_tokens?: number, replication_factor?: number }, signal: AbortSignal): Promise<{ name: string, cid: string, collection: Record<string, unknown>, job: Record<string, unknown> }> {
  const { collection, job } = await node.search.createFromDocuments(defined({
    name, embeddingModel, chunkTokens: input.chunk_tokens, overlapTokens: input.overlap_tokens, replicationFactor: input.replication_factor
  }), rawDocuments(input.documents), { signal })
  return { name, cid: collection.headCID, collection: collectionJson(collection), job: indexJobJson(job) }
}

export const langchainCreateVectorstore = defineOperation({
  name: 'ai_langchain_create_vectorstore',
  summary: 'Make a collection (a LangChain vector store) from LangChain documents: embedded, indexed and snapshotted; answers its head CID',
  tags: ['search', 'ai'],
  permission: 'content:write',
  input: Type.Object({
    documents: Type.Array(RawDoc, { minItems: 1, maxItems: 100_000 }),
    embedding_model: Type.Optional(EmbeddingConfig),
    collection_name: Type.Optional(Name),
    ...FrameworkOptions
  }, { additionalProperties: false }),
  args: ['documents', 'embedding_model', 'collection_name'],
  output: Type.Object({ cid: Type.String(), collection_name: Type.String(), collection: Loose, job: Loose }),
  run: async (node, input, signal) => {
    const { name, ...made } = await fromDocuments(node, input.collection_name ?? generatedName('langchain'), modelOf(input.embedding_model), input, signal)
    return { ...made, collection_name: name }
  }
})

export const llamaIndexCreateIndex = defineOperation({
  name: 'ai_llama_index_create_index',
  summary: 'Make a collection (a LlamaIndex vector index) from LlamaIndex documents: embedded, indexed and snapshotted; answers its head CID',
  tags: ['search', 'ai'],
  permission: 'content:write',
  input: Type.Object({
    documents: Type.Array(RawDoc, { minItems: 1, maxItems: 100_000 }),
    service_context: Type.Optional(EmbeddingConfig),
    embedding_model: Type.Optional(EmbeddingConfig),
    index_name: Type.Optional(Name),
    ...FrameworkOptions
  }, { additionalProperties: false }),
  args: ['documents', 'service_context'],
  output: Type.Object({ cid: Type.String(), index_name: Type.String(), collection: Loose, job: Loose }),
  run: async (node, input, signal) => {
    const { name, ...made } = await fromDocuments(node, input.index_name ?? generatedName('llamaindex'), modelOf(input.embedding_model) ?? modelOf(input.service_context), input, signal)
    return { ...made, index_name: name }
  }
})

export const langchainSimilaritySearch = defineOperation({
  name: 'ai_langchain_similarity_search',
  summary: 'A LangChain vector store\'s similarity search: the k chunks nearest a query (text, or its vector), as documents with their scores',
  tags: ['search', 'ai'],
  permission: 'content:read',
  input: Type.Object({
    collection_name: Name,
    query: Type.Optional(Type.String({ maxLength: 10_000 })),
    query_vector: Type.Optional(Type.Array(Type.Number(), { minItems: 1, maxItems: 65_536 })),
    k: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TOP_K, default: 4 })),
    filter: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Metadata filters, as hybrid_search\'s metadata_filters' })),
    local: LocalReplica
  }, { additionalProperties: false }),
  args: ['collection_name', 'query', 'k'],
  output: Type.Object({ results: Type.Array(Type.Object({ page_content: Type.String(), metadata: Loose, score: Type.Number(), id: Type.String() })) }),
  run: async (node, input, signal) => {
    const results = await node.search.search(defined({
      collection: input.collection_name, queryText: input.query, queryVector: input.query_vector, metadataFilters: input.filter, topK: input.k, entityTypes: ['chunk' as const], hopCount: 0, local: input.local
    }), { signal })
    return { results: results.map(r => ({ page_content: r.text ?? '', metadata: r.metadata ?? {}, score: r.score, id: r.id })) }
  }
})

export const SEARCH_OPERATIONS = [searchCollectionCreate, searchCollectionList, searchCollectionDelete, searchCollectionReindex, searchIndex, searchIndexStatus, hybridSearch, langchainCreateVectorstore, llamaIndexCreateIndex, langchainSimilaritySearch]
