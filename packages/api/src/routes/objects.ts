import { Type } from 'typebox'
import { args } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { kuboRoute, readOptions, ReadQuery } from './route.ts'
import type { Routes } from '../server.ts'
import type { FastifyRequest } from 'fastify'
import type { CID } from 'multiformats/cid'

const link = (cid?: CID): { '/': string } | null => cid == null ? null : { '/': cid.toString() }

/** The positional arguments a command takes, by Kubo's names, all required. */
function argsOf (request: FastifyRequest, names: string[]): string[] {
  const given = args(request)
  const missing = names.find((_, i) => given[i] == null || given[i] === '')
  if (missing != null) throw new BadRequestError(`argument "${missing}" is required`)
  return given
}

const PatchOptions = {
  arg: Type.Optional(Type.Array(Type.String())),
  'allow-non-unixfs': Type.Optional(Type.Boolean({ default: false, description: 'Edit dag-pb nodes that are not UnixFS directories' })),
  ...ReadQuery
}

/**
 * The object commands Kubo still serves, on dag-pb: object/diff and
 * object/patch/add-link|rm-link. Kubo removed object/get, put, stat, data,
 * links, new and patch/append-data|set-data in favour of dag/* and files/*, so they are not here.
 */
export const objectRoutes: Routes = (app, { node }) => {
  kuboRoute(app, {
    path: 'object/diff',
    permission: 'content:read',
    tags: ['content'],
    summary: 'The links added (Type 0), removed (1) and changed (2) from one dag-pb DAG to another, into the directories both have',
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String())), verbose: Type.Optional(Type.Boolean()), ...ReadQuery }) },
    handler: async (request, reply) => {
      const [a, b] = argsOf(request, ['obj_a', 'obj_b'])
      const changes = await node.content.objectDiff(a, b, readOptions(reply))
      return { Changes: changes.map(c => ({ Type: c.type, Path: c.path, Before: link(c.before), After: link(c.after) })) }
    }
  })

  kuboRoute(app, {
    path: 'object/patch/add-link',
    permission: 'content:write',
    tags: ['content'],
    summary: 'A copy of a UnixFS directory with a link added or replaced (a/b/c through directories, made with create); its CID as Hash, not pinned',
    schema: { querystring: Type.Object({ ...PatchOptions, create: Type.Optional(Type.Boolean({ default: false, description: 'Make the missing directories of a name with slashes' })) }) },
    handler: async (request, reply) => {
      const [root, name, ref] = argsOf(request, ['root', 'name', 'ref'])
      const q = request.query as { create?: boolean, 'allow-non-unixfs'?: boolean }
      const cid = await node.content.objectAddLink(root, name, ref, { ...readOptions(reply), create: q.create, allowNonUnixfs: q['allow-non-unixfs'] })
      return { Hash: cid.toString() }
    }
  })

  kuboRoute(app, {
    path: 'object/patch/rm-link',
    permission: 'content:write',
    tags: ['content'],
    summary: 'A copy of a UnixFS directory without a link; its CID as Hash, not pinned',
    schema: { querystring: Type.Object(PatchOptions) },
    handler: async (request, reply) => {
      const [root, name] = argsOf(request, ['root', 'name'])
      const q = request.query as { 'allow-non-unixfs'?: boolean }
      const cid = await node.content.objectRmLink(root, name, { ...readOptions(reply), allowNonUnixfs: q['allow-non-unixfs'] })
      return { Hash: cid.toString() }
    }
  })
}
