import { Type } from 'typebox'
import { option } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { workSignal } from '../inference.ts'
import { aiModelList, generateEmbeddings, modelMetadata } from '../methods.ts'
import { kuboOperation } from '../operations.ts'
import { formMetadata, modelDirectory } from '../multipart.ts'
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

/** Document 000's model registry and embeddings, over the node's inference. */
export const aiRoutes: Routes = (app, { node, shutdown }) => {
  kuboRoute(app, {
    path: 'ai/model/add',
    permission: 'models:write',
    tags,
    summary: 'Add a model directory (Hugging Face ONNX layout) from a multipart body: fields name, description, dtype (the ONNX variant to run), framework and license, or them in metadata (JSON), first; then one file part per file, named by its path',
    handler: async (request, reply) => {
      const { fields, files } = await modelDirectory(request)
      const { name, ...described } = formMetadata(fields)
      if (name == null) throw new BadRequestError('a model name is required, as the form field name or in metadata, before the files')
      const model = await node.inference.import({ name, ...described, files }, { signal: workSignal(reply, shutdown) })
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
