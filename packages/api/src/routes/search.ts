import { Type } from 'typebox'
import { args, option } from '../args.ts'
import { defined, workSignal } from '../inference.ts'
import { kuboOperation } from '../operations.ts'
import { hybridSearch, indexJobJson, langchainCreateVectorstore, langchainSimilaritySearch, llamaIndexCreateIndex, searchCollectionCreate, searchCollectionDelete, searchCollectionList, searchCollectionReindex, searchIndex, searchIndexStatus } from '../search.ts'
import type { Routes } from '../server.ts'

/**
 * Document 000's `/api/v0/search/hybrid`, the collections and indexing jobs
 * it searches, and the framework routes that make a collection from
 * LangChain or LlamaIndex documents, with the similarity search a LangChain
 * vector store calls.
 */
export const searchRoutes: Routes = (app, { node, shutdown }) => {
  kuboOperation(app, node, langchainCreateVectorstore, { path: 'ai/langchain/vectorstore/create', summary: langchainCreateVectorstore.summary, schema: { body: langchainCreateVectorstore.input }, input: (request) => request.body })
  kuboOperation(app, node, langchainSimilaritySearch, { path: 'ai/langchain/vectorstore/search', summary: langchainSimilaritySearch.summary, schema: { body: langchainSimilaritySearch.input }, input: (request) => request.body })
  kuboOperation(app, node, llamaIndexCreateIndex, { path: 'ai/llamaindex/index/create', summary: llamaIndexCreateIndex.summary, schema: { body: llamaIndexCreateIndex.input }, input: (request) => request.body })
  kuboOperation(app, node, hybridSearch, { path: 'search/hybrid', summary: hybridSearch.summary, schema: { body: hybridSearch.input }, input: (request) => request.body })
  kuboOperation(app, node, searchCollectionCreate, { path: 'search/collection/create', summary: searchCollectionCreate.summary, schema: { body: searchCollectionCreate.input }, input: (request) => request.body })
  kuboOperation(app, node, searchCollectionList, { path: 'search/collection/list', get: true, summary: searchCollectionList.summary, input: () => ({}) })
  kuboOperation(app, node, searchCollectionDelete, {
    path: 'search/collection/rm',
    summary: searchCollectionDelete.summary,
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.String()) }) },
    input: (request) => ({ name: args(request, 'name')[0] })
  })
  kuboOperation(app, node, searchCollectionReindex, { path: 'search/collection/reindex', summary: searchCollectionReindex.summary, schema: { body: searchCollectionReindex.input }, input: (request) => request.body })
  kuboOperation(app, node, searchIndex, { path: 'search/index', summary: searchIndex.summary, schema: { body: searchIndex.input }, input: (request) => request.body })
  kuboOperation(app, node, searchIndexStatus, {
    path: 'search/index/status',
    get: true,
    summary: searchIndexStatus.summary,
    schema: { querystring: Type.Object({ id: Type.Optional(Type.String()) }) },
    input: (request) => defined({ id: option<string>(request, 'id') })
  })

  // NDJSON of an indexing job's progress until it ends, for the CLI's progress bar.
  app.get('/api/v0/search/index/progress', {
    permission: 'content:read',
    schema: { tags: ['search'], summary: 'An indexing job\'s progress as NDJSON lines, one per batch, until it ends', querystring: Type.Object({ id: Type.String({ minLength: 1 }) }) }
  }, async (request, reply) => {
    const { id } = request.query as { id: string }
    const signal = workSignal(reply, shutdown)
    const first = node.search.job(id)
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson' })
    const write = (job: Record<string, unknown>): void => { reply.raw.write(`${JSON.stringify(job)}\n`) }
    write(indexJobJson(first))
    if (first.status === 'running') {
      const listener = (e: CustomEvent): void => { if (e.detail.id === id) write(indexJobJson(e.detail)) }
      node.search.addEventListener('IndexProgress', listener)
      try {
        await node.search.wait(id, { signal }).catch(() => {})
      } finally {
        node.search.removeEventListener('IndexProgress', listener)
      }
    }
    reply.raw.end()
    return reply
  })
}
