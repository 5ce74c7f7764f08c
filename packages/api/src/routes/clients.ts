import { Type } from 'typebox'
import { clientJson, externalClientJson } from '../cluster-views.ts'
import { clientWork } from '../task-views.ts'
import { LocalQuery, readOptions } from '../reads.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

const ClientParams = Type.Object({ id: Type.String({ description: 'Peer id of a cluster node, or the client id of a worker connected to this node' }) })

/**
 * Document 004's clients: the cluster's nodes, and the external worker
 * processes connected to this node. Their tasks are the jobs they worked on.
 */
export const clientRoutes: Routes = (app, { node }) => {
  app.get('/api/clients', {
    permission: 'cluster:read',
    schema: { querystring: LocalQuery, tags: ['clients'], summary: 'Cluster nodes and the worker processes connected to this node: status, CPU, RAM and GPUs' }
  }, async (_request, reply) => {
    const nodes = await node.cluster.nodes(readOptions(reply))
    const external = node.training.externalWorkers().map(w => externalClientJson(w, node.peerId))
    return { clients: [...nodes.map(clientJson), ...external], total: nodes.length + external.length }
  })

  app.get('/api/clients/:id', {
    permission: 'cluster:read',
    schema: { params: ClientParams, querystring: LocalQuery, tags: ['clients'], summary: 'One worker with its tasks and performance' }
  }, async (request, reply) => {
    const { id } = request.params as Static<typeof ClientParams>
    const options = readOptions(reply)
    const external = node.training.externalWorkers().find(w => w.id === id)
    const [client, jobs] = await Promise.all([
      external == null ? node.cluster.node(id, options).then(clientJson) : externalClientJson(external, node.peerId),
      node.cluster.jobs({ worker: id, limit: 1000 }, options)
    ])
    return { ...client, ...clientWork(jobs, id) }
  })
}
