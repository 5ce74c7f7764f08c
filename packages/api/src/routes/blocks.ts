import { Type } from 'typebox'
import { args, firstArg, flag } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { firstPartBytes } from '../multipart.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { kuboRoute, readOptions, ReadQuery } from './route.ts'
import type { Routes } from '../server.ts'

const BlockPutQuery = Type.Object({
  'cid-codec': Type.Optional(Type.String({ default: 'raw' })),
  mhtype: Type.Optional(Type.String({ default: 'sha2-256' })),
  format: Type.Optional(Type.String({ description: 'Deprecated: v0, dag-pb, dag-cbor' })),
  pin: Type.Optional(Type.Boolean({ default: false })),
  'allow-big-block': Type.Optional(Type.Boolean({ default: false, description: 'Store a block over 1 MiB, which bitswap peers will not exchange' }))
})

const DagPutQuery = Type.Object({
  'store-codec': Type.Optional(Type.String({ default: 'dag-cbor' })),
  'input-codec': Type.Optional(Type.String({ default: 'dag-json' })),
  hash: Type.Optional(Type.String({ default: 'sha2-256' })),
  pin: Type.Optional(Type.Boolean({ default: false })),
  'allow-big-block': Type.Optional(Type.Boolean({ default: false, description: 'Store a block over 1 MiB, which bitswap peers will not exchange' }))
})

const CidQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'CID' })),
  ...ReadQuery
})

const DagGetQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'CID with an optional path' })),
  'output-codec': Type.Optional(Type.String({ default: 'dag-json' })),
  ...ReadQuery
})

const BlockRmQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'CIDs of the blocks to remove' })),
  force: Type.Optional(Type.Boolean({ default: false, description: 'A block that is not here is no error' })),
  quiet: Type.Optional(Type.Boolean({ default: false, description: 'Only the blocks that could not be removed' }))
})

const RepoGcQuery = Type.Object({
  'stream-errors': Type.Optional(Type.Boolean({ default: false, description: 'An {"Error"} line for each block that could not be removed' })),
  quiet: Type.Optional(Type.Boolean({ default: false, description: "Kubo's flag for its text output; the lines are the same" }))
})

/**
 * A block/put or dag/put body is read into memory, so it has a hard cap even
 * with allow-big-block; without it the content package refuses over 1 MiB, as Kubo.
 */
const MAX_BLOCK_BYTES = 4 * 1_048_576

export const blockRoutes: Routes = (app, { node, shutdown }) => {
  const content = node.content

  kuboRoute(app, {
    path: 'block/put',
    permission: 'content:write',
    tags: ['blocks'],
    summary: 'Store one raw block from a multipart body',
    schema: { querystring: BlockPutQuery },
    handler: async (request) => {
      const q = request.query as { 'cid-codec'?: string, mhtype?: string, format?: string, pin?: boolean, 'allow-big-block'?: boolean }
      const cid = await content.blockPut(await firstPartBytes(request, MAX_BLOCK_BYTES), { cidCodec: q.format == null ? q['cid-codec'] : undefined, mhtype: q.mhtype, format: q.format, pin: flag(q.pin, false), allowBigBlock: flag(q['allow-big-block'], false) })
      const size = (await content.blockStat(cid.toString())).size
      return { success: true, cid: cid.toString(), size, Key: cid.toString(), Size: size }
    }
  })

  kuboRoute(app, {
    path: 'block/get',
    permission: 'content:read',
    tags: ['blocks'],
    summary: 'The raw bytes of a block',
    schema: { querystring: CidQuery },
    handler: async (request, reply) => {
      const bytes = await content.blockGet(firstArg(request, 'cid', 'cid'), readOptions(reply))
      return reply.header('content-type', 'application/octet-stream').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    }
  })

  kuboRoute(app, {
    path: 'block/stat',
    permission: 'content:read',
    tags: ['blocks'],
    summary: 'The size of a block',
    schema: { querystring: CidQuery },
    handler: async (request, reply) => {
      const stat = await content.blockStat(firstArg(request, 'cid', 'cid'), readOptions(reply))
      return { success: true, cid: stat.cid.toString(), size: stat.size, Key: stat.cid.toString(), Size: stat.size }
    }
  })

  kuboRoute(app, {
    path: 'dag/put',
    permission: 'content:write',
    tags: ['blocks'],
    summary: 'Store an IPLD node given in input-codec, encoded with store-codec',
    schema: { querystring: DagPutQuery },
    handler: async (request) => {
      const q = request.query as { 'store-codec'?: string, 'input-codec'?: string, hash?: string, pin?: boolean, 'allow-big-block'?: boolean }
      const cid = await content.dagPut(await firstPartBytes(request, MAX_BLOCK_BYTES), { storeCodec: q['store-codec'], inputCodec: q['input-codec'], hash: q.hash, pin: flag(q.pin, false), allowBigBlock: flag(q['allow-big-block'], false) })
      return { success: true, cid: cid.toString(), Cid: { '/': cid.toString() } }
    }
  })

  kuboRoute(app, {
    path: 'dag/get',
    permission: 'content:read',
    tags: ['blocks'],
    summary: 'An IPLD node, or the value at a path inside it, in output-codec',
    schema: { querystring: DagGetQuery },
    handler: async (request, reply) => {
      const codec = (request.query as { 'output-codec'?: string })['output-codec'] ?? 'dag-json'
      const bytes = await content.dagGet(firstArg(request, 'ref', 'cid'), codec, readOptions(reply))
      const type = codec === 'dag-json' || codec === 'json' ? 'application/json' : 'application/octet-stream'
      return reply.header('content-type', type).send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    }
  })
  kuboRoute(app, {
    path: 'block/rm',
    permission: 'content:write',
    tags: ['blocks'],
    summary: 'Remove blocks that nothing pins; NDJSON {"Hash", "Error"} per block, as Kubo',
    schema: { querystring: BlockRmQuery },
    handler: async (request, reply) => {
      const q = request.query as { force?: boolean, quiet?: boolean }
      const cids = args(request, 'cid')
      if (cids.length === 0) throw new BadRequestError('argument "cid" is required')
      const results = content.blockRm(cids, { force: q.force, signal: requestSignal(reply) })
      return sendNdjson(reply, (async function * () {
        for await (const result of results) {
          if (result.error != null) yield { Hash: result.cid.toString(), Error: result.error }
          else if (q.quiet !== true) yield { Hash: result.cid.toString() }
        }
      })())
    }
  })

  kuboRoute(app, {
    path: 'repo/gc',
    permission: 'content:write',
    tags: ['blocks'],
    summary: 'Remove every block that no pin, cluster allocation, or add or pull in flight keeps; NDJSON {"Key": {"/": cid}} per block removed',
    schema: { querystring: RepoGcQuery },
    handler: async (request, reply) => {
      const streamErrors = (request.query as { 'stream-errors'?: boolean })['stream-errors'] === true
      const results = content.gc({ signal: AbortSignal.any([requestSignal(reply), shutdown]) })
      return sendNdjson(reply, (async function * () {
        for await (const result of results) {
          if ('cid' in result) yield { Key: { '/': result.cid.toString() } }
          else if (streamErrors) yield { Error: result.error.message }
        }
      })())
    }
  })
}
