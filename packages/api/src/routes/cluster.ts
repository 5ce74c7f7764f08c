import { Type } from 'typebox'
import { args, firstArg, option } from '../args.ts'
import { pinJson } from '../cluster-views.ts'
import { defined } from '../inference.ts'
import { ClusterPinOptions, clusterPeers, clusterPinOp, clusterStatus } from '../methods.ts'
import { kuboOperation } from '../operations.ts'
import { LocalQuery, local, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'

const PinAddQuery = Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'CID' })), ...ClusterPinOptions })
const PinAddBody = Type.Optional(Type.Object({ cid: Type.Optional(Type.String()), ...ClusterPinOptions }))

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

  kuboOperation(app, node, clusterPinOp, {
    path: 'cluster/pin/add',
    summary: clusterPinOp.summary,
    schema: { querystring: PinAddQuery, body: PinAddBody },
    input: (request) => defined({
      cid: firstArg(request, 'cid', 'cid'),
      name: option(request, 'name'),
      replication_factor: option(request, 'replication_factor'),
      replication_factor_min: option(request, 'replication_factor_min'),
      replication_factor_max: option(request, 'replication_factor_max')
    })
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

  kuboOperation(app, node, clusterStatus, {
    path: 'cluster/status',
    get: true,
    summary: clusterStatus.summary,
    schema: { querystring: StatusQuery },
    input: (request) => defined({ cid: args(request, 'cid')[0], local: option(request, 'local') })
  })

  kuboOperation(app, node, clusterPeers, {
    path: 'cluster/peers',
    get: true,
    summary: clusterPeers.summary,
    schema: { querystring: LocalQuery },
    input: (request) => defined({ local: option(request, 'local') })
  })
}
