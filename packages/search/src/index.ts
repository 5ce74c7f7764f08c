/**
 * Search over the cluster's content. A collection (recorded in the cluster
 * state through Raft) takes in files, directories and inline documents:
 * their text is extracted (text, Markdown, HTML, JSON, CSV, PDF), cut into
 * overlapping windows of the embedding model's tokens, embedded through the
 * inference layer and stored in LanceDB with BM25 and vector indexes. The
 * LanceDB directory is itself content: snapshotted as a directory DAG after
 * each batch, pinned with the collection's replication factor, its CID the
 * collection's head. Any node answers a hybrid query (vector and BM25 fused
 * by reciprocal rank, metadata filters, optional cross-encoder rerank, graph
 * hops over IPLD links and the registry) from a replica of the head.
 */
export { SearchService, createSearch, MAX_HOPS, MAX_TOP_K } from './service.ts'
export type { SearchComponents, SearchEvents, SearchInit } from './service.ts'
export type * from './interface.ts'
export { ENTITY_TYPES } from './hops.ts'
export type { EntityType, Hop } from './hops.ts'
export { extractText, formatOf } from './extract.ts'
export type { DocumentFormat, Extracted } from './extract.ts'
export { chunkText } from './chunk.ts'
export type { ChunkTokenizer, TextChunk } from './chunk.ts'
export { reciprocalRankFusion, RRF_K } from './fusion.ts'
export { ChunkTable, ANN_MIN_ROWS, TABLE } from './store.ts'
export { snapshotDirectory } from './snapshot.ts'
export type { ChunkRow, ChunkHit } from './store.ts'
export * from './errors.ts'
