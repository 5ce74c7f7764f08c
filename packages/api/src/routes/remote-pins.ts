import { PIN_STATUSES } from '@node-daemon/pinning'
import { Type } from 'typebox'
import { args, cidOption, delimited, firstArg, flag } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'
import type { RemotePinQuery, RemoteStatus } from '@node-daemon/pinning'
import type { FastifyRequest } from 'fastify'

/** Kubo's `pin remote` and `pin remote service`: pins on other nodes' Pinning Service APIs, in Kubo's shapes. */

const Service = Type.Optional(Type.String({ description: 'Name of the remote pinning service to use (mandatory)' }))
const Name = Type.Optional(Type.String({ description: 'A pin name (at most 255 bytes)' }))
const Background = Type.Optional(Type.Boolean({ default: false, description: 'Return once the service queued the pin, without waiting for pinned' }))

const QueryOptions = {
  service: Service,
  name: Type.Optional(Type.String({ description: 'Pins with this name (case-sensitive, exact match)' })),
  cid: Type.Optional(Type.Array(Type.String(), { description: 'Pins for these CIDs (repeated, or comma-separated)' })),
  status: Type.Optional(Type.Array(Type.String(), { description: 'Pins with these statuses: queued, pinning, pinned, failed (default pinned)' }))
}

function serviceOf (value: string | undefined): string {
  if (value == null) throw new BadRequestError('a service name must be passed')
  return value
}

/** A listing's filters as Kubo checks them: CIDs that parse, statuses the spec names. */
function remoteQuery (request: FastifyRequest): RemotePinQuery {
  const q = request.query as { service?: string, name?: string, cid?: string[], status?: string[] }
  const cid = delimited(q.cid)?.map(raw => cidOption(raw))
  const status = delimited(q.status)?.map(s => {
    if (!(PIN_STATUSES as readonly string[]).includes(s)) throw new BadRequestError(`status ${JSON.stringify(s.slice(0, 100))} is not valid`)
    return s as RemoteStatus
  })
  return { service: serviceOf(q.service), name: q.name, cid, status }
}

export const remotePinRoutes: Routes = (app, { node }) => {
  const remote = node.remotePinning
  const tags = ['pins']

  kuboRoute(app, {
    path: 'pin/remote/service/add',
    // It writes the daemon's settings and points the node at a URL, as config would: an admin's.
    permission: 'cluster:admin',
    tags,
    summary: "Add a remote pinning service (name, endpoint, key) to the daemon's settings",
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'Service name, endpoint and key' })) }) },
    handler: async (request, reply) => {
      const [name, endpoint, key] = args(request)
      if (name == null || endpoint == null || key == null) throw new BadRequestError('expecting three arguments: service name, endpoint and key')
      await remote.addService(name, endpoint, key)
      return reply.send('')
    }
  })

  kuboRoute(app, {
    path: 'pin/remote/service/ls',
    permission: 'pins',
    tags,
    summary: 'The remote pinning services, by name, with their pin counts when asked (keys are never shown)',
    schema: { querystring: Type.Object({ stat: Type.Optional(Type.Boolean({ default: false, description: 'Ask each service for its pin counts' })) }) },
    handler: async (request, reply) => {
      const stat = flag((request.query as { stat?: boolean }).stat, false)
      return { RemoteServices: await remote.services({ stat, signal: requestSignal(reply) }) }
    }
  })

  kuboRoute(app, {
    path: 'pin/remote/service/rm',
    // It writes the daemon's settings and points the node at a URL, as config would: an admin's.
    permission: 'cluster:admin',
    tags,
    summary: "Remove a remote pinning service from the daemon's settings",
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'Service name' })) }) },
    handler: async (request, reply) => {
      await remote.removeService(firstArg(request, 'remote-pin-service'))
      return reply.send('')
    }
  })

  kuboRoute(app, {
    path: 'pin/remote/add',
    permission: 'pins',
    tags,
    summary: 'Pin a path on a remote pinning service, offering this node as an origin; waits for pinned unless background',
    schema: {
      querystring: Type.Object({
        arg: Type.Optional(Type.Array(Type.String(), { description: 'CID or path to pin' })),
        service: Service,
        name: Name,
        background: Background,
        origin: Type.Optional(Type.Array(Type.String(), { description: 'More origins (multiaddrs), as kubo-rpc-client sends them' }))
      })
    },
    handler: async (request, reply) => {
      const q = request.query as { service?: string, name?: string, background?: boolean, origin?: string[] }
      const paths = args(request)
      if (paths.length !== 1 || paths[0] === '') throw new BadRequestError('expecting one CID argument')
      return remote.add(paths[0], { service: serviceOf(q.service), name: q.name, background: flag(q.background, false), origins: q.origin, signal: requestSignal(reply) })
    }
  })

  kuboRoute(app, {
    path: 'pin/remote/ls',
    permission: 'pins',
    tags,
    summary: 'The pins on a remote service that match, one {Status, Cid, Name} per line',
    schema: { querystring: Type.Object(QueryOptions) },
    handler: async (request, reply) => sendNdjson(reply, remote.ls({ ...remoteQuery(request), signal: requestSignal(reply) }))
  })

  kuboRoute(app, {
    path: 'pin/remote/rm',
    permission: 'pins',
    tags,
    summary: 'Remove the pins on a remote service that match; more than one only with force',
    schema: { querystring: Type.Object({ ...QueryOptions, force: Type.Optional(Type.Boolean({ default: false, description: 'Allow removing more than one pin' })) }) },
    handler: async (request, reply) => {
      if (args(request).length > 0) throw new BadRequestError(`unexpected argument ${JSON.stringify(args(request)[0].slice(0, 100))}`)
      const force = flag((request.query as { force?: boolean }).force, false)
      await remote.rm({ ...remoteQuery(request), force, signal: requestSignal(reply) })
      return reply.send('')
    }
  })
}
