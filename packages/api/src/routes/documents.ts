import { Type } from 'typebox'
import { option } from '../args.ts'
import { defined } from '../inference.ts'
import { CHAIN, INDEX, loadChain, loadIndex, MAX_DOCUMENT_BYTES, storeChain, storeIndex } from '../documents.ts'
import { kuboOperation } from '../operations.ts'
import type { DocumentFamily } from '../documents.ts'
import type { Operation } from '../operations.ts'
import type { Routes } from '../server.ts'
import type { FastifyInstance } from 'fastify'
import type { Node } from '@node-daemon/daemon'

const LoadQuery = Type.Object({
  name: Type.Optional(Type.String()),
  version: Type.Optional(Type.String()),
  cid: Type.Optional(Type.String())
})

/** A family's two routes: store takes the JSON body of document 000, load its query (or the same fields as a body). */
function storedFamilyRoutes (app: FastifyInstance, node: Node, f: DocumentFamily, store: Operation, load: Operation): void {
  const base = f.family
  kuboOperation(app, node, store, {
    path: `ai/${base}/store`,
    summary: store.summary,
    // The JSON itself: a LlamaIndex index with its embeddings is far past the server's 1 MiB body.
    bodyLimit: MAX_DOCUMENT_BYTES + 65_536,
    schema: { body: store.input },
    input: (request) => request.body
  })
  kuboOperation(app, node, load, {
    path: `ai/${base}/load`,
    get: true,
    summary: load.summary,
    schema: { querystring: LoadQuery },
    input: (request) => defined({ name: option(request, 'name'), version: option(request, 'version'), cid: option(request, 'cid') })
  })
}

/** Document 000's LangChain chains and LlamaIndex indexes, stored as content under names and versions. */
export const documentRoutes: Routes = (app, { node }) => {
  storedFamilyRoutes(app, node, CHAIN, storeChain, loadChain)
  storedFamilyRoutes(app, node, INDEX, storeIndex, loadIndex)
}
