import type { EntityType, Hop } from './hops.ts'
import type { CollectionRecord, MetadataFieldType } from '@node-daemon/cluster'

export interface CreateCollectionParams {
  name: string
  /** A registered encoder; default the node's default embedding model. */
  embeddingModel?: string
  /** Default 256 tokens, or the model's context less its special tokens if shorter. */
  chunkTokens?: number
  /** Default an eighth of `chunkTokens`. */
  overlapTokens?: number
  metadataSchema?: Record<string, MetadataFieldType>
  replicationFactor?: number
}

/** A document given inline: LangChain's `page_content` or LlamaIndex's `text`, with metadata. */
export interface RawDocument {
  text: string
  metadata?: Record<string, unknown>
  /** The caller's id of the document, kept with its chunks. */
  id?: string
}

export type IndexSource =
  | { cid: string, metadata?: Record<string, unknown> }
  | { documents: RawDocument[] }

export type IndexJobStatus = 'running' | 'completed' | 'failed' | 'cancelled'

/** An indexing job on this node: what it took in so far, and the head it moved the collection to. */
export interface IndexJob {
  id: string
  collection: string
  status: IndexJobStatus
  documents: number
  /** Files of a directory without text to extract, left out. */
  skipped: number
  chunks: number
  /** Batches of chunks embedded and stored. */
  batches: number
  /** Snapshots made, each a head move: every few seconds, and at the end. */
  snapshots: number
  /** A re-index: the model it embeds the collection's chunks with. */
  embeddingModel?: string
  /** The collection's head after the last batch, and its version. */
  headCID?: string
  version?: number
  error?: string
  startedAt: string
  completedAt?: string
}

export interface HybridQuery {
  /** One collection; default every collection that has chunks. */
  collection?: string
  queryText?: string
  queryVector?: number[]
  metadataFilters?: Record<string, unknown>
  /** What the results may hold; default every type. */
  entityTypes?: EntityType[]
  /** How far hops go from the chunks found; default 1, 0 for none. */
  hopCount?: number
  topK?: number
  /** A cross-encoder that reorders the fused chunks. */
  rerankModel?: string
  /**
   * Answer from a replica on this node, written from the head's snapshot
   * if there is none; by default a node without one asks a node that holds it.
   */
  local?: boolean
}

export interface SearchResult {
  entity_type: EntityType
  /** A chunk's id, a file's or directory's CID, a model id, a job id. */
  id: string
  score: number
  collection?: string
  text?: string
  cid?: string
  source_cid?: string
  root_cid?: string
  /** A chunk's document: the id it was given (LangChain's id, LlamaIndex's id_), else its path under the CID indexed. */
  doc_id?: string
  path?: string
  /** A chunk's bytes in its file (or in the text extracted from it, for HTML, JSON, CSV and PDF), end exclusive. */
  byte_range?: [number, number]
  metadata?: Record<string, unknown>
  name?: string
  /** A chunk's rank in the vector and BM25 lists, 1-based. */
  ranks?: Record<string, number>
  /** The relations that led from a chunk found to this entity; empty for the chunks. */
  hop_path: Hop[]
}

export type { CollectionRecord }
