import { Type } from 'typebox'
import { args, flag, option } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { defined } from '../inference.ts'
import { pin, unpin } from '../methods.ts'
import { kuboOperation } from '../operations.ts'
import { kuboRoute, ReadQuery } from './route.ts'
import type { Routes } from '../server.ts'
import type { PinFilter } from '@node-daemon/content'

const PinQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'CIDs or /ipfs/ paths' })),
  recursive: Type.Optional(Type.Boolean({ default: true })),
  ...ReadQuery
})

const PinBody = Type.Optional(Type.Object({
  cid: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
  recursive: Type.Optional(Type.Boolean())
}))

const PinLsQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String())),
  type: Type.Optional(Type.Union([Type.Literal('all'), Type.Literal('recursive'), Type.Literal('direct'), Type.Literal('indirect')], { default: 'all' })),
  quiet: Type.Optional(Type.Boolean()),
  stream: Type.Optional(Type.Boolean({ description: 'One NDJSON line per pin, as kubo-rpc-client asks' }))
})

function pinArgs (request: Parameters<typeof args>[0]): string[] {
  const cids = args(request, 'cid')
  if (cids.length === 0) throw new BadRequestError('argument "ipfs-path" is required')
  return cids
}

export const pinRoutes: Routes = (app, { node }) => {
  const content = node.content

  for (const [path, op] of [['pin/add', pin], ['pin/rm', unpin]] as const) {
    kuboOperation(app, node, op, {
      path,
      summary: op.summary,
      schema: { querystring: PinQuery, body: PinBody },
      input: (request) => defined({ cid: pinArgs(request), recursive: flag(option(request, 'recursive'), true), offline: op === pin ? option(request, 'offline') : undefined }),
      answer: (output) => ({ Pins: output.pins })
    })
  }

  kuboRoute(app, {
    path: 'pin/ls',
    permission: 'pins',
    get: true,
    tags: ['pins'],
    summary: 'List pins of type all, recursive, direct or indirect',
    schema: { querystring: PinLsQuery },
    handler: async (request, reply) => {
      const q = request.query as { type?: PinFilter, stream?: boolean }
      const pins = content.pinLs(q.type ?? 'all', args(request, 'cid'), { signal: requestSignal(reply) })
      if (q.stream === true) {
        return sendNdjson(reply, (async function * () {
          for await (const pin of pins) yield { Cid: pin.cid.toString(), Type: pin.type }
        })())
      }
      const keys: Record<string, { Type: string }> = {}
      for await (const pin of pins) keys[pin.cid.toString()] = { Type: pin.type }
      return { success: true, pins: keys, Keys: keys }
    }
  })
}
