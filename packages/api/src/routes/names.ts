import { Type } from 'typebox'
import { checkKeyFormat, KEY_FORMATS } from '@node-daemon/content'
import { args, firstArg, flag, option } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { defined } from '../inference.ts'
import { keyGen, publish, resolve } from '../methods.ts'
import { firstPartBytes } from '../multipart.ts'
import { invoke, kuboOperation } from '../operations.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'

const PublishQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: '/ipfs/ path or CID to publish' })),
  // No defaults here: a default in the query would shadow the same field of a JSON body (the operation has them).
  key: Type.Optional(Type.String({ description: 'A key of key/list; self when missing' })),
  lifetime: Type.Optional(Type.String({ description: 'Kubo duration; 48h when missing' })),
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
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Key name' }))
})

const KeyGenQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Key name' })),
  type: Type.Optional(Type.Union([Type.Literal('ed25519'), Type.Literal('rsa')], { default: 'ed25519' })),
  size: Type.Optional(Type.Integer({ minimum: 2048, maximum: 4096, description: 'RSA modulus bits, 2048 unless given; at most 4096, whose key takes about a second to make (8192 bits would hold a request for tens of seconds)' }))
})

const KeyRenameQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'The key\'s name, then its new name' })),
  force: Type.Optional(Type.Boolean({ default: false, description: 'Replace a key that has the new name' }))
})

const KeyFormat = Type.Optional(Type.Union(KEY_FORMATS.map(f => Type.Literal(f)), { default: 'libp2p-protobuf-cleartext' }))

const KeyImportQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Name of the new key' })),
  format: KeyFormat,
  'allow-any-key-type': Type.Optional(Type.Boolean({ default: false, description: 'Import key types other than RSA and Ed25519' }))
})

const KeyExportQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Key name' })),
  format: KeyFormat
})

/** A private key file is a few KiB at most (an 8192-bit RSA key in PEM is under 7 KiB). */
const MAX_KEY_BYTES = 64 * 1024

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
    schema: { querystring: KeyGenQuery },
    input: (request) => {
      const q = request.query as { type?: 'ed25519' | 'rsa', size?: number }
      return defined({ name: firstArg(request, 'name', 'name'), type: q.type, size: q.size })
    },
    answer: (key) => ({ Name: key.name, Id: key.id })
  })

  kuboRoute(app, {
    path: 'key/rename',
    permission: 'names',
    tags: ['ipns'],
    summary: 'Rename a named key; {"Was", "Now", "Id", "Overwrite"} as Kubo',
    schema: { querystring: KeyRenameQuery },
    handler: async (request) => {
      const [was, now] = args(request)
      if (was == null || was === '') throw new BadRequestError('argument "name" is required')
      if (now == null || now === '') throw new BadRequestError('argument "newName" is required')
      const renamed = await names.renameKey(was, now, { force: flag((request.query as { force?: boolean }).force, false) })
      return { Was: renamed.was, Now: renamed.now, Id: renamed.id, Overwrite: renamed.overwrite }
    }
  })

  kuboRoute(app, {
    path: 'key/import',
    permission: 'names',
    tags: ['ipns'],
    summary: 'Import a private key sent as a multipart file, in one of Kubo\'s export formats',
    schema: { querystring: KeyImportQuery },
    handler: async (request) => {
      const q = request.query as { format?: string, 'allow-any-key-type'?: boolean }
      const name = firstArg(request, 'name')
      const key = await names.importKey(name, await firstPartBytes(request, MAX_KEY_BYTES), {
        format: checkKeyFormat(q.format ?? 'libp2p-protobuf-cleartext'),
        allowAnyKeyType: flag(q['allow-any-key-type'], false)
      })
      return { Name: key.name, Id: key.id }
    }
  })

  kuboRoute(app, {
    path: 'key/export',
    permission: 'names',
    tags: ['ipns'],
    summary: 'A named key\'s private key, in one of Kubo\'s export formats; the node\'s own self key is refused',
    schema: { querystring: KeyExportQuery },
    handler: async (request, reply) => {
      const format = checkKeyFormat((request.query as { format?: string }).format ?? 'libp2p-protobuf-cleartext')
      const bytes = await names.exportKey(firstArg(request, 'name'), format)
      return reply.header('content-type', 'application/octet-stream').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
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

  // The daemon resolves and publishes IPNS over the DHT only, as Kubo without --enable-namesys-pubsub: its answers are those of that Kubo.
  kuboRoute(app, {
    path: 'name/pubsub/state',
    permission: 'names',
    tags: ['ipns'],
    summary: 'Whether IPNS over pubsub is on: never here, names go over the DHT',
    handler: async () => ({ Enabled: false })
  })

  for (const path of ['name/pubsub/subs', 'name/pubsub/cancel']) {
    kuboRoute(app, {
      path,
      permission: 'names',
      tags: ['ipns'],
      summary: 'Refused as Kubo refuses it without IPNS over pubsub: there are no name subscriptions',
      schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String())), 'ipns-base': Type.Optional(Type.String()) }) },
      handler: async () => { throw new BadRequestError('IPNS pubsub subsystem is not enabled') }
    })
  }
}
