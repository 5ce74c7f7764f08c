import { Type } from 'typebox'
import { firstArg } from '../args.ts'
import { candidates } from '../multipart.ts'
import { requestSignal, sendBytes, sendNdjson } from '../stream.ts'
import { kuboRoute, readOptions, ReadQuery } from './route.ts'
import type { Routes } from '../server.ts'
import type { CarImportEvent } from '@node-daemon/content'

/** Kubo's dag/import lines: one per root, then the counts when `stats` asks for them. */
function importLine (evt: CarImportEvent, stats: boolean): object | undefined {
  if (evt.type === 'root') return { Root: { Cid: { '/': evt.cid.toString() }, PinErrorMsg: evt.pinError } }
  return stats ? { Stats: { BlockCount: evt.blocks, BlockBytesCount: evt.bytes } } : undefined
}

/** CAR files, the standard way to move DAGs between IPFS nodes: Kubo's dag/export and dag/import. */
export const dagCarRoutes: Routes = (app, { node, shutdown }) => {
  const content = node.content

  kuboRoute(app, {
    path: 'dag/export',
    permission: 'content:read',
    tags: ['content'],
    summary: 'The DAG under a CID or path as a CARv1 stream, fetching what is not local unless offline',
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String())), progress: Type.Optional(Type.Boolean({ description: 'Kubo prints progress on its CLI only' })), ...ReadQuery }) },
    handler: async (request, reply) => {
      const read = readOptions(reply)
      const options = { ...read, signal: AbortSignal.any([read.signal, shutdown]) }
      return sendBytes(reply, await content.dagExport(firstArg(request, 'root'), options), () => 'application/vnd.ipld.car')
    }
  })

  kuboRoute(app, {
    path: 'dag/import',
    permission: 'content:write',
    tags: ['content'],
    summary: 'Store the blocks of CAR files (multipart, one per part) and pin their roots unless pin-roots=false; NDJSON',
    schema: {
      querystring: Type.Object({
        'pin-roots': Type.Optional(Type.Boolean({ default: true })),
        silent: Type.Optional(Type.Boolean()),
        stats: Type.Optional(Type.Boolean()),
        'allow-big-block': Type.Optional(Type.Boolean())
      })
    },
    handler: async (request, reply) => {
      const q = request.query as { 'pin-roots'?: boolean, silent?: boolean, stats?: boolean, 'allow-big-block'?: boolean }
      const signal = requestSignal(reply)
      const cars = (async function * () {
        for await (const part of candidates(request, {}, signal)) if (part.content != null) yield part.content
      })()
      const events = content.dagImport(cars, { pinRoots: q['pin-roots'], allowBigBlock: q['allow-big-block'], signal })
      return sendNdjson(reply, (async function * () {
        for await (const evt of events) {
          const line = q.silent === true ? undefined : importLine(evt, q.stats === true)
          if (line != null) yield line
        }
      })())
    }
  })
}
