import { Type } from 'typebox'
import { option } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { defined, workSignal } from '../inference.ts'
import { aiModelList, generateEmbeddings, modelMetadata } from '../methods.ts'
import { kuboOperation } from '../operations.ts'
import { modelDirectory } from '../multipart.ts'
import { sniffContentType, SNIFF_BYTES } from '../sniff.ts'
import { sendBytes } from '../stream.ts'
import { tarDirectory } from '../tar.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

const tags = ['ai']

const ModelGetQuery = Type.Object({
  cid: Type.Optional(Type.String({ description: "The model's CID, or its registry name" })),
  path: Type.Optional(Type.String({ description: 'A file of the model directory, e.g. config.json or model.onnx; without it, the whole directory as a tar archive' }))
})

/** The `metadata` form field: a JSON object, of which the registry keeps the name and description. */
function metadataField (text: string | undefined): { name?: unknown, description?: unknown, dtype?: unknown } {
  if (text == null) return {}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new BadRequestError('the metadata field must be a JSON object')
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value)) throw new BadRequestError('the metadata field must be a JSON object')
  return value
}

const text = (value: unknown): string | undefined => typeof value === 'string' && value !== '' ? value : undefined

/** Document 000's model registry and embeddings, over the node's inference. */
export const aiRoutes: Routes = (app, { node, shutdown }) => {
  kuboRoute(app, {
    path: 'ai/model/add',
    permission: 'models:write',
    tags,
    summary: 'Add a model directory (Hugging Face ONNX layout) from a multipart body: fields name, description, dtype (the ONNX variant to run) or metadata (JSON) first, then one file part per file, named by its path',
    handler: async (request, reply) => {
      const { fields, files } = await modelDirectory(request)
      const metadata = metadataField(fields.metadata)
      const name = text(fields.name) ?? text(metadata.name)
      if (name == null) throw new BadRequestError('a model name is required, as the form field name or in metadata, before the files')
      const model = await node.inference.import(defined({ name, description: text(fields.description) ?? text(metadata.description), dtype: text(fields.dtype) ?? text(metadata.dtype), files }), { signal: workSignal(reply, shutdown) })
      return { success: true, cid: model.cid, metadata: modelMetadata(model) }
    }
  })

  kuboRoute(app, {
    path: 'ai/model/get',
    permission: 'models:read',
    get: true,
    tags,
    summary: 'A model: one file of it with `path`, else its directory as a tar archive',
    schema: { querystring: ModelGetQuery },
    handler: async (request, reply) => {
      const ref = option<string>(request, 'cid')
      if (ref == null || ref === '') throw new BadRequestError('argument "cid" is required')
      const { path } = request.query as Static<typeof ModelGetQuery>
      const signal = workSignal(reply, shutdown)
      // Resolving through the registry makes an unknown CID a missing model, not just missing content.
      const model = await node.inference.show(ref, { signal })
      if (path != null && path !== '') {
        return sendBytes(reply, node.content.cat(`${model.cid}/${path}`, { signal }), async (first) => sniffContentType(first?.subarray(0, SNIFF_BYTES) ?? new Uint8Array(), path))
      }
      reply.header('content-disposition', `attachment; filename="${model.cid}.tar"`)
      return sendBytes(reply, tarDirectory(node.content, model.cid, { signal }), () => 'application/x-tar')
    }
  })

  kuboOperation(app, node, aiModelList, { path: 'ai/model/list', get: true, summary: aiModelList.summary, input: () => ({}) })

  kuboOperation(app, node, generateEmbeddings, {
    path: 'embeddings/generate',
    summary: generateEmbeddings.summary,
    schema: { body: generateEmbeddings.input },
    input: (request) => request.body
  })
}
