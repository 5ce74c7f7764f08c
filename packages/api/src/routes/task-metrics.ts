import { farmTaskShape } from '../error-shapes.ts'
import { familyRoutes } from '../inference.ts'
import { LocalQuery, readOptions } from '../reads.ts'
import { jobIdOf, systemMetricsJson, taskMetricsJson } from '../task-views.ts'
import { TaskIdParams } from './tasks.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

/** Document 004's metrics: its clients are the cluster's nodes and its tasks the jobs of the job table. */
export const taskMetricRoutes: Routes = (app, { node }) => {
  familyRoutes(app, farmTaskShape, (scope) => {
    scope.get('/api/metrics', {
      permission: 'tasks',
      schema: { querystring: LocalQuery, tags: ['tasks'], summary: 'Clients (cluster nodes and the workers connected to this node), tasks by status, and the mean usage of the online nodes in percent' }
    }, async (_request, reply) => {
      const options = readOptions(reply)
      // The whole job table (it is bounded), to count every task.
      const [nodes, jobs] = await Promise.all([node.cluster.nodes(options), node.cluster.jobs({ limit: Infinity }, options)])
      return { ...systemMetricsJson(nodes, jobs, node.training.externalWorkers().length), timestamp: new Date().toISOString() }
    })

    scope.get('/api/metrics/tasks/:taskId', {
      permission: 'tasks',
      schema: { params: TaskIdParams, querystring: LocalQuery, tags: ['tasks'], summary: "A task's progress, its latest metrics, and the mean usage of its worker nodes in percent" }
    }, async (request, reply) => {
      const options = readOptions(reply)
      const [job, nodes] = await Promise.all([node.cluster.job(jobIdOf((request.params as Static<typeof TaskIdParams>).taskId), options), node.cluster.nodes(options)])
      return { ...taskMetricsJson(job, nodes), timestamp: new Date().toISOString() }
    })
  })
}
