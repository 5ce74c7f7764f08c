import { Type } from 'typebox'
import { args, firstArg } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { kuboRoute, readOptions, ReadQuery } from './route.ts'
import type { Routes } from '../server.ts'
import type { Content, Ref } from '@node-daemon/content'

const RefsQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'CIDs or /ipfs/ paths' })),
  format: Type.Optional(Type.String({ description: 'With <src>, <dst> and <linkname>; default <dst>' })),
  edges: Type.Optional(Type.Boolean({ description: 'Each link as "<src> -> <dst>"' })),
  unique: Type.Optional(Type.Boolean()),
  recursive: Type.Optional(Type.Boolean()),
  'max-depth': Type.Optional(Type.Integer({ minimum: -1, description: 'Levels to follow with recursive; -1 is all' })),
  ...ReadQuery
})

function formatRef (ref: Ref, format: string): string {
  return format.replaceAll('<src>', ref.src.toString()).replaceAll('<dst>', ref.dst.toString()).replaceAll('<linkname>', ref.name)
}

/** The path a name or path comes to, as Kubo's resolve: IPNS names followed (all the way with recursive), then the IPLD path. */
async function resolveName (content: Content, name: string, recursive: boolean, signal: AbortSignal): Promise<string> {
  const path = name.startsWith('/ipns/') ? await content.names.resolve(name, { recursive, signal }) : name
  if (!path.startsWith('/ipfs/') && path.startsWith('/')) return path
  const { cid, remPath } = await content.dagResolve(path, { signal })
  return `/ipfs/${cid}${remPath}`
}

/** Paths to blocks and the links between them: Kubo's dag/resolve, resolve, refs and refs/local. */
export const refsRoutes: Routes = (app, { node }) => {
  const content = node.content

  kuboRoute(app, {
    path: 'dag/resolve',
    permission: 'content:read',
    tags: ['content'],
    summary: 'The block an IPLD path reaches, and the rest of the path inside it',
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String())), ...ReadQuery }) },
    handler: async (request, reply) => {
      const { cid, remPath } = await content.dagResolve(firstArg(request, 'ref'), readOptions(reply))
      return { Cid: { '/': cid.toString() }, RemPath: remPath }
    }
  })

  kuboRoute(app, {
    path: 'resolve',
    permission: 'content:read',
    tags: ['content'],
    summary: 'Resolve an /ipns/ name or an /ipfs/ path to the /ipfs/ path of what it names',
    schema: {
      querystring: Type.Object({
        arg: Type.Optional(Type.Array(Type.String())),
        recursive: Type.Optional(Type.Boolean({ default: true })),
        ...ReadQuery
      })
    },
    handler: async (request, reply) => {
      const q = request.query as { recursive?: boolean }
      return { Path: await resolveName(content, firstArg(request, 'name'), q.recursive !== false, requestSignal(reply)) }
    }
  })

  kuboRoute(app, {
    path: 'refs',
    permission: 'content:read',
    tags: ['content'],
    summary: 'The links under paths, depth first, one NDJSON line each',
    schema: { querystring: RefsQuery },
    handler: async (request, reply) => {
      const q = request.query as { format?: string, edges?: boolean, unique?: boolean, recursive?: boolean, 'max-depth'?: number }
      if (q.edges === true && q.format != null && q.format !== '<dst>') throw new BadRequestError('using format argument with edges is not allowed')
      const format = q.edges === true ? '<src> -> <dst>' : q.format ?? '<dst>'
      const paths = args(request)
      if (paths.length === 0) throw new BadRequestError('argument "ipfs-path" is required')
      // Without recursive, only the links of the node itself, as Kubo.
      const maxDepth = q.recursive === true ? q['max-depth'] ?? -1 : 1
      const read = readOptions(reply)
      return sendNdjson(reply, (async function * () {
        for (const path of paths) {
          for await (const ref of content.refs(path, { ...read, unique: q.unique, maxDepth })) yield { Ref: formatRef(ref, format), Err: '' }
        }
      })())
    }
  })

  kuboRoute(app, {
    path: 'refs/local',
    permission: 'content:read',
    tags: ['content'],
    summary: 'Every block on this node, one NDJSON line each',
    handler: async (_request, reply) => {
      const signal = requestSignal(reply)
      return sendNdjson(reply, (async function * () {
        for await (const cid of content.refsLocal({ signal })) yield { Ref: cid.toString(), Err: '' }
      })())
    }
  })
}
