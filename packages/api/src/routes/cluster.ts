import { Type } from 'typebox'
import { args, firstArg, option } from '../args.ts'
import { peerJson, pinJson, pinStatusJson } from '../cluster-views.ts'
import { LocalQuery, local, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'

const PinOptions = {
  name: Type.Optional(Type.String()),
  replication_factor: Type.Optional(Type.Integer({ minimum: -1, description: 'Both factors at once; -1 is every node' })),
  replication_factor_min: Type.Optional(Type.Integer({ minimum: -1, description: 'Fewest nodes that must hold the content; -1 is every node' })),
  replication_factor_max: Type.Optional(Type.Integer({ minimum: -1, description: 'Most nodes that hold the content; -1 is every node' }))
}

const PinAddQuery = Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'CID' })), ...PinOptions })
const PinAddBody = Type.Optional(Type.Object({ cid: Type.Optional(Type.String()), ...PinOptions }))

const PinRmQuery = Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'CID' })) })
const PinRmBody = Type.Optional(Type.Object({ cid: Type.Optional(Type.String()) }))

const StatusQuery = Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'CID; every pin when missing' })), local })

/** Document 000's cluster routes, with IPFS Cluster's field names for pins and statuses. */
export const clusterRoutes: Routes = (app, { node }) => {
  kuboRoute(app, {
    path: 'cluster/pins',
    permission: 'cluster:read',
    get: true,
    tags: ['cluster'],
    summary: 'The cluster pinset: each pin with its replication factors and allocations',
    schema: { querystring: LocalQuery },
    handler: async (_request, reply) => {
      const pins = await node.cluster.pins(readOptions(reply))
      return { success: true, pins: pins.map(pinJson), count: pins.length }
    }
  })

  kuboRoute(app, {
    path: 'cluster/pin/add',
    permission: 'pins',
    tags: ['cluster'],
    summary: 'Pin a CID in the cluster; answers the nodes it is allocated to',
    schema: { querystring: PinAddQuery, body: PinAddBody },
    handler: async (request, reply) => {
      const pin = await node.cluster.pinAdd(firstArg(request, 'cid', 'cid'), {
        name: option(request, 'name'),
        replicationFactor: option(request, 'replication_factor'),
        replicationFactorMin: option(request, 'replication_factor_min'),
        replicationFactorMax: option(request, 'replication_factor_max'),
        signal: requestSignal(reply)
      })
      return { success: true, ...pinJson(pin), peers: pin.allocations }
    }
  })

  kuboRoute(app, {
    path: 'cluster/pin/rm',
    permission: 'pins',
    tags: ['cluster'],
    summary: 'Remove a pin from the cluster; every node unpins it',
    schema: { querystring: PinRmQuery, body: PinRmBody },
    handler: async (request, reply) => {
      const cid = firstArg(request, 'cid', 'cid')
      await node.cluster.pinRm(cid, { signal: requestSignal(reply) })
      return { success: true, cid, pins: [cid] }
    }
  })

  kuboRoute(app, {
    path: 'cluster/status',
    permission: 'cluster:read',
    get: true,
    tags: ['cluster'],
    summary: 'Status of one pin (arg) or of all, on every node, keyed by CID',
    schema: { querystring: StatusQuery },
    handler: async (request, reply) => {
      const reports = await node.cluster.pinStatus(args(request, 'cid')[0], readOptions(reply))
      return { success: true, status: Object.fromEntries(reports.map(r => [r.cid, pinStatusJson(r)])) }
    }
  })

  kuboRoute(app, {
    path: 'cluster/peers',
    permission: 'cluster:read',
    get: true,
    tags: ['cluster'],
    summary: 'Members of the cluster',
    schema: { querystring: LocalQuery },
    handler: async (_request, reply) => {
      const nodes = await node.cluster.nodes(readOptions(reply))
      return { success: true, peers: nodes.map(peerJson), count: nodes.length }
    }
  })
}
