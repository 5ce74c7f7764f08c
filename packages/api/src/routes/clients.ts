import { Type } from 'typebox'
import { clientJson, clientWork } from '../cluster-views.ts'
import { LocalQuery, readOptions } from '../reads.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

const ClientParams = Type.Object({ id: Type.String({ description: 'Peer id of a cluster node' }) })

/** Document 004's clients are the cluster's nodes; their tasks are the jobs they worked on. */
export const clientRoutes: Routes = (app, { node }) => {
  app.get('/api/clients', {
    schema: { querystring: LocalQuery, tags: ['clients'], summary: 'Cluster nodes as workers: status, CPU, RAM and GPUs' }
  }, async (_request, reply) => {
    const nodes = await node.cluster.nodes(readOptions(reply))
    return { clients: nodes.map(clientJson), total: nodes.length }
  })

  app.get('/api/clients/:id', {
    schema: { params: ClientParams, querystring: LocalQuery, tags: ['clients'], summary: 'One worker with its tasks and performance' }
  }, async (request, reply) => {
    const { id } = request.params as Static<typeof ClientParams>
    const options = readOptions(reply)
    const [view, jobs] = await Promise.all([node.cluster.node(id, options), node.cluster.jobs({ worker: id, limit: 1000 }, options)])
    return { ...clientJson(view), ...clientWork(jobs, id) }
  })
}
