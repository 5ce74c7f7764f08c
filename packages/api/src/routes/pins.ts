import { Type } from 'typebox'
import { args, flag, option } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { defined } from '../inference.ts'
import { pin, unpin } from '../methods.ts'
import { kuboOperation } from '../operations.ts'
import { kuboRoute, readOptions, ReadQuery } from './route.ts'
import type { Routes } from '../server.ts'
import type { PinEntry, PinFilter } from '@node-daemon/content'

const PinQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'CIDs or /ipfs/ paths' })),
  recursive: Type.Optional(Type.Boolean({ default: true })),
  ...ReadQuery
})

const PinAddQuery = Type.Object({
  ...PinQuery.properties,
  name: Type.Optional(Type.String({ maxLength: 255, description: 'A name for the pin, which pin/ls --name finds' }))
})

const PinUpdateQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'The recursively pinned path, then the path to pin instead' })),
  unpin: Type.Optional(Type.Boolean({ default: true, description: 'Remove the old pin' })),
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
  stream: Type.Optional(Type.Boolean({ description: 'One NDJSON line per pin, as kubo-rpc-client asks' })),
  names: Type.Optional(Type.Boolean({ default: false, description: 'Give each pin\'s name, when it has one' })),
  name: Type.Optional(Type.String({ minLength: 1, description: 'Only pins whose name contains this (case-sensitive); implies names' }))
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
      schema: { querystring: op === pin ? PinAddQuery : PinQuery, body: PinBody },
      input: (request) => defined({
        cid: pinArgs(request),
        recursive: flag(option(request, 'recursive'), true),
        ...(op === pin ? { offline: option(request, 'offline'), name: (request.query as { name?: string }).name } : {})
      }),
      answer: (output) => ({ Pins: output.pins })
    })
  }

  kuboRoute(app, {
    path: 'pin/update',
    permission: 'pins',
    tags: ['pins'],
    summary: 'Move a recursive pin to another path, keeping its name; {"Pins": [from, to]} as Kubo',
    schema: { querystring: PinUpdateQuery },
    handler: async (request, reply) => {
      const [from, to] = args(request)
      if (from == null || from === '') throw new BadRequestError('argument "from-path" is required')
      if (to == null || to === '') throw new BadRequestError('argument "to-path" is required')
      const unpin = flag((request.query as { unpin?: boolean }).unpin, true)
      const pins = (await content.pinUpdate(from, to, { ...readOptions(reply), unpin })).map(cid => cid.toString())
      return { Pins: pins }
    }
  })

  kuboRoute(app, {
    path: 'pin/ls',
    permission: 'pins',
    get: true,
    tags: ['pins'],
    summary: 'List pins of type all, recursive, direct or indirect',
    schema: { querystring: PinLsQuery },
    handler: async (request, reply) => {
      const q = request.query as { type?: PinFilter, stream?: boolean, names?: boolean, name?: string, quiet?: boolean }
      const pins = content.pinLs(q.type ?? 'all', args(request, 'cid'), { name: q.name, signal: requestSignal(reply) })
      // Kubo gives names only when asked (--names, or a --name filter), and omits an empty one.
      const names = flag(q.names, false) || q.name != null
      const shape = (pin: PinEntry): { Type: string, Name?: string } => {
        const Type = pin.through == null ? pin.type : `indirect through ${pin.through}`
        return names && pin.name != null ? { Type, Name: pin.name } : { Type }
      }
      if (q.stream === true) {
        return sendNdjson(reply, (async function * () {
          for await (const pin of pins) yield { Cid: pin.cid.toString(), ...shape(pin) }
        })())
      }
      const keys: Record<string, { Type: string, Name?: string }> = {}
      for await (const pin of pins) keys[pin.cid.toString()] = shape(pin)
      // Document 000's quiet gives the CIDs alone; Kubo's Keys stay whole for its clients.
      return { success: true, pins: flag(q.quiet, false) ? Object.keys(keys) : keys, Keys: keys }
    }
  })
}
