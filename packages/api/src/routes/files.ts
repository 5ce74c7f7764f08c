import { Type } from 'typebox'
import { args, firstArg } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { fieldsAndFile } from '../multipart.ts'
import { requestSignal, sendBytes, sendNdjson } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'
import type { MfsEntry } from '@node-daemon/content'
import type { Version } from 'multiformats/cid'

const Arg = { arg: Type.Optional(Type.Array(Type.String(), { description: 'MFS paths, absolute' })) }
const CidVersion = Type.Optional(Type.Integer({ minimum: 0, maximum: 1 }))
const Hash = Type.Optional(Type.String({ description: 'Multihash function, such as sha2-512; as Kubo, it makes the CID version 1' }))

/** Kubo's ls entry: Type 0 is a file, 1 a directory; without `long`, no hash or size. */
function lsEntry (entry: MfsEntry, long: boolean): object {
  return { Name: entry.name, Type: entry.type === 'directory' ? 1 : 0, Size: long ? entry.size : 0, Hash: long ? entry.cid.toString() : '' }
}

/** Kubo's mutable file system, files/*: a tree of paths over UnixFS whose root survives restarts. */
export const filesRoutes: Routes = (app, { node }) => {
  const mfs = node.content.mfs

  kuboRoute(app, {
    path: 'files/mkdir',
    permission: 'content:write',
    tags: ['files'],
    summary: 'Make a directory; with parents, its missing parents too and no error if it exists',
    schema: { querystring: Type.Object({ ...Arg, parents: Type.Optional(Type.Boolean()), 'cid-version': CidVersion, hash: Hash }) },
    handler: async (request, reply) => {
      const q = request.query as { parents?: boolean, 'cid-version'?: Version, hash?: string }
      await mfs.mkdir(firstArg(request, 'path'), { parents: q.parents, cidVersion: q['cid-version'], hash: q.hash, signal: requestSignal(reply) })
      return reply.send('')
    }
  })

  kuboRoute(app, {
    path: 'files/write',
    permission: 'content:write',
    tags: ['files'],
    summary: 'Write the multipart body\'s file at an offset of a file, creating it with create',
    schema: {
      querystring: Type.Object({
        ...Arg,
        offset: Type.Optional(Type.Integer({ minimum: 0 })),
        create: Type.Optional(Type.Boolean()),
        parents: Type.Optional(Type.Boolean()),
        truncate: Type.Optional(Type.Boolean()),
        count: Type.Optional(Type.Integer({ minimum: 0, description: 'Write at most this many bytes' })),
        'raw-leaves': Type.Optional(Type.Boolean()),
        'cid-version': CidVersion,
        hash: Hash
      })
    },
    handler: async (request, reply) => {
      const q = request.query as { offset?: number, create?: boolean, parents?: boolean, truncate?: boolean, count?: number, 'raw-leaves'?: boolean, 'cid-version'?: Version, hash?: string, mode?: string, mtime?: string }
      // The importer could set them, but a file rewritten at an offset would drop them: refused, not ignored.
      if (q.mode != null || q.mtime != null) throw new BadRequestError('files/write does not set mode or mtime')
      const path = firstArg(request, 'path')
      const { file } = await fieldsAndFile(request, Number.MAX_SAFE_INTEGER)
      if (file == null) throw new BadRequestError('argument "data" is required')
      const { offset, create, parents, truncate, count } = q
      await mfs.write(path, file, { offset, create, parents, truncate, count, rawLeaves: q['raw-leaves'], cidVersion: q['cid-version'], hash: q.hash, signal: requestSignal(reply) })
      return reply.send('')
    }
  })

  kuboRoute(app, {
    path: 'files/read',
    permission: 'content:read',
    tags: ['files'],
    summary: 'Stream a file\'s bytes from offset, at most count of them',
    schema: { querystring: Type.Object({ ...Arg, offset: Type.Optional(Type.Integer({ minimum: 0 })), count: Type.Optional(Type.Integer({ minimum: 0 })) }) },
    handler: async (request, reply) => {
      const q = request.query as { offset?: number, count?: number }
      return sendBytes(reply, mfs.read(firstArg(request, 'path'), { offset: q.offset, length: q.count, signal: requestSignal(reply) }), () => 'application/octet-stream')
    }
  })

  kuboRoute(app, {
    path: 'files/ls',
    permission: 'content:read',
    tags: ['files'],
    summary: 'List a directory (or name a file); long gives hashes and sizes; stream gives one NDJSON line per entry',
    schema: { querystring: Type.Object({ ...Arg, long: Type.Optional(Type.Boolean()), U: Type.Optional(Type.Boolean({ description: 'Unsorted: entries come in directory order either way' })), stream: Type.Optional(Type.Boolean()) }) },
    handler: async (request, reply) => {
      const q = request.query as { long?: boolean, stream?: boolean }
      const [path = '/'] = args(request)
      const entries = await mfs.ls(path, { signal: requestSignal(reply) })
      const long = q.long === true
      if (q.stream === true) return sendNdjson(reply, (async function * () { for (const e of entries) yield lsEntry(e, long) })())
      return { Entries: entries.map(e => lsEntry(e, long)) }
    }
  })

  kuboRoute(app, {
    path: 'files/stat',
    permission: 'content:read',
    tags: ['files'],
    summary: 'Hash, size, cumulative size, links and type of a path',
    schema: {
      querystring: Type.Object({
        ...Arg,
        format: Type.Optional(Type.String({ description: 'Kubo\'s text template; the JSON answer is the same' })),
        hash: Type.Optional(Type.Boolean({ description: 'Kubo prints only the hash in text; the JSON answer is the same' })),
        size: Type.Optional(Type.Boolean({ description: 'Kubo prints only the size in text; the JSON answer is the same' })),
        'with-local': Type.Optional(Type.Boolean())
      })
    },
    handler: async (request, reply) => {
      if ((request.query as { 'with-local'?: boolean })['with-local'] === true) throw new BadRequestError('with-local is not supported')
      const stat = await mfs.stat(firstArg(request, 'path'), { signal: requestSignal(reply) })
      return { Hash: stat.cid.toString(), Size: stat.size, CumulativeSize: stat.cumulativeSize, Blocks: stat.blocks, Type: stat.type, WithLocality: false }
    }
  })

  kuboRoute(app, {
    path: 'files/cp',
    permission: 'content:write',
    tags: ['files'],
    summary: 'Copy /ipfs/<cid> or an MFS path to an MFS path (a trailing slash keeps the name)',
    schema: { querystring: Type.Object({ ...Arg, parents: Type.Optional(Type.Boolean()), force: Type.Optional(Type.Boolean({ description: 'Replace what is at the destination' })) }) },
    handler: async (request, reply) => {
      const q = request.query as { parents?: boolean, force?: boolean }
      const paths = args(request)
      if (paths.length !== 2) throw new BadRequestError('files/cp takes two arguments: source and dest')
      await mfs.cp(paths[0], paths[1], { parents: q.parents, force: q.force, signal: requestSignal(reply) })
      return reply.send('')
    }
  })

  kuboRoute(app, {
    path: 'files/mv',
    permission: 'content:write',
    tags: ['files'],
    summary: 'Move or rename paths; the last argument is the destination',
    schema: { querystring: Type.Object(Arg) },
    handler: async (request, reply) => {
      const paths = args(request)
      if (paths.length < 2) throw new BadRequestError('files/mv takes a source and a dest')
      await mfs.mv(paths.slice(0, -1), paths[paths.length - 1], { signal: requestSignal(reply) })
      return reply.send('')
    }
  })

  kuboRoute(app, {
    path: 'files/rm',
    permission: 'content:write',
    tags: ['files'],
    summary: 'Remove paths; directories with recursive; force ignores missing ones',
    schema: { querystring: Type.Object({ ...Arg, recursive: Type.Optional(Type.Boolean()), force: Type.Optional(Type.Boolean()) }) },
    handler: async (request, reply) => {
      const q = request.query as { recursive?: boolean, force?: boolean }
      const paths = args(request)
      if (paths.length === 0) throw new BadRequestError('argument "path" is required')
      await mfs.rm(paths, { recursive: q.recursive, force: q.force, signal: requestSignal(reply) })
      return reply.send('')
    }
  })

  kuboRoute(app, {
    path: 'files/flush',
    permission: 'content:write',
    tags: ['files'],
    summary: 'The CID of a path; every change is already stored',
    schema: { querystring: Type.Object(Arg) },
    handler: async (request, reply) => {
      const [path = '/'] = args(request)
      return { Cid: (await mfs.flush(path, { signal: requestSignal(reply) })).toString() }
    }
  })

  kuboRoute(app, {
    path: 'files/chcid',
    permission: 'content:write',
    tags: ['files'],
    summary: 'Store a directory (not the root) under another CID version or hash function, which its edits keep',
    schema: { querystring: Type.Object({ ...Arg, 'cid-version': CidVersion, hash: Hash }) },
    handler: async (request, reply) => {
      const q = request.query as { 'cid-version'?: Version, hash?: string }
      const [path = '/'] = args(request)
      await mfs.chcid(path, { cidVersion: q['cid-version'], hash: q.hash, signal: requestSignal(reply) })
      return reply.send('')
    }
  })
}
