import { Type } from 'typebox'
import { firstArg, option } from '../args.ts'
import { defined } from '../inference.ts'
import { keyGen, publish, resolve } from '../methods.ts'
import { invoke, kuboOperation } from '../operations.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'

const PublishQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: '/ipfs/ path or CID to publish' })),
  key: Type.Optional(Type.String({ default: 'self' })),
  lifetime: Type.Optional(Type.String({ default: '48h' })),
  ttl: Type.Optional(Type.String())
})

const PublishBody = Type.Optional(Type.Object({
  path: Type.Optional(Type.String()),
  key: Type.Optional(Type.String()),
  lifetime: Type.Optional(Type.String()),
  ttl: Type.Optional(Type.String())
}))

const ResolveQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'IPNS name; defaults to this node' })),
  recursive: Type.Optional(Type.Boolean({ default: true })),
  nocache: Type.Optional(Type.Boolean()),
  stream: Type.Optional(Type.Boolean())
})

const KeyQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Key name' })),
  type: Type.Optional(Type.Literal('ed25519', { default: 'ed25519' }))
})

export const nameRoutes: Routes = (app, { node }) => {
  const names = node.content.names

  kuboOperation(app, node, publish, {
    path: 'name/publish',
    summary: publish.summary,
    schema: { querystring: PublishQuery, body: PublishBody },
    input: (request) => defined({ cid: firstArg(request, 'ipfs-path', 'path'), key: option(request, 'key'), lifetime: option(request, 'lifetime'), ttl: option(request, 'ttl') }),
    answer: (output) => ({ Name: output.name, Value: output.value })
  })

  kuboRoute(app, {
    path: 'name/resolve',
    permission: resolve.permission,
    get: true,
    tags: resolve.tags,
    summary: resolve.summary,
    schema: { querystring: ResolveQuery },
    handler: async (request, reply) => {
      const q = request.query as { arg?: string[], stream?: boolean, recursive?: boolean, nocache?: boolean }
      const { path } = await invoke(node, resolve, defined({ ipns_name: q.arg?.[0], recursive: q.recursive, nocache: q.nocache }), requestSignal(reply))
      const body = { success: true, path, Path: path }
      if (q.stream === true) return sendNdjson(reply, (async function * () { yield body })())
      return body
    }
  })

  kuboOperation(app, node, keyGen, {
    path: 'key/gen',
    summary: keyGen.summary,
    schema: { querystring: KeyQuery },
    input: (request) => ({ name: firstArg(request, 'name', 'name') }),
    answer: (key) => ({ Name: key.name, Id: key.id })
  })

  kuboRoute(app, {
    path: 'key/list',
    permission: 'names',
    tags: ['ipns'],
    summary: 'List named keys',
    handler: async () => {
      const keys = await names.listKeys()
      return { success: true, keys: keys.map(k => ({ name: k.name, id: k.id })), Keys: keys.map(k => ({ Name: k.name, Id: k.id })) }
    }
  })

  kuboRoute(app, {
    path: 'key/rm',
    permission: 'names',
    tags: ['ipns'],
    summary: 'Remove a named key',
    schema: { querystring: KeyQuery },
    handler: async (request) => {
      const key = await names.removeKey(firstArg(request, 'name', 'name'))
      return { success: true, keys: [{ name: key.name, id: key.id }], Keys: [{ Name: key.name, Id: key.id }] }
    }
  })
}
