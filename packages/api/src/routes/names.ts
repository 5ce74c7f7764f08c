import { Type } from 'typebox'
import { duration, firstArg, flag, option } from '../args.ts'
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

  kuboRoute(app, {
    path: 'name/publish',
    permission: 'names',
    tags: ['ipns'],
    summary: 'Publish an IPNS record for a path, signed with a named key',
    schema: { querystring: PublishQuery, body: PublishBody },
    handler: async (request, reply) => {
      const path = firstArg(request, 'ipfs-path', 'path')
      const published = await names.publish(path, {
        key: option<string>(request, 'key'),
        lifetime: duration(option(request, 'lifetime'), 'lifetime'),
        ttl: duration(option(request, 'ttl'), 'ttl'),
        signal: requestSignal(reply)
      })
      return { success: true, name: published.name, value: published.value, Name: published.name, Value: published.value }
    }
  })

  kuboRoute(app, {
    path: 'name/resolve',
    permission: 'names',
    get: true,
    tags: ['ipns'],
    summary: 'Resolve an IPNS name to a path',
    schema: { querystring: ResolveQuery },
    handler: async (request, reply) => {
      const q = request.query as { arg?: string[], stream?: boolean, recursive?: boolean, nocache?: boolean }
      const name = q.arg?.[0] ?? node.peerId
      const path = await names.resolve(name, { recursive: flag(q.recursive, true), nocache: q.nocache, signal: requestSignal(reply) })
      const body = { success: true, path, Path: path }
      if (q.stream === true) return sendNdjson(reply, (async function * () { yield body })())
      return body
    }
  })

  kuboRoute(app, {
    path: 'key/gen',
    permission: 'names',
    tags: ['ipns'],
    summary: 'Create a named Ed25519 key',
    schema: { querystring: KeyQuery },
    handler: async (request) => {
      const key = await names.generateKey(firstArg(request, 'name', 'name'))
      return { success: true, name: key.name, id: key.id, Name: key.name, Id: key.id }
    }
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
