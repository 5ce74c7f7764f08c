import { Type } from 'typebox'
import { consensusJson, nodeStatus, pinJson, uptimeSeconds } from '../cluster-views.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

const ModeBody = Type.Object({
  mode: Type.Union([Type.Literal('distributed'), Type.Literal('local')], { description: "distributed: this node's jobs run on the best node of the cluster; local: on this node only" })
})

const FallbackBody = Type.Object({
  enabled: Type.Boolean({ description: 'Whether this node runs, as the last resort, a job of a model it holds no replica of (pulling it); off, such a job fails when no holder can run it' })
})

/**
 * Document 002's admin API, for the admin token (or any credential with
 * cluster:admin). Mode and fallback are this node's placement settings, not
 * the cluster's, and last until the node restarts.
 */
export const adminRoutes: Routes = (app, { node }) => {
  const placementJson = (): object => {
    const { mode, fallback } = node.inference.placement()
    return { success: true, mode, fallback }
  }

  app.post('/admin/mode', {
    permission: 'cluster:admin',
    schema: { body: ModeBody, tags: ['admin'], summary: "Where this node's inference jobs run: the whole cluster (distributed) or this node only (local)" }
  }, async (request) => {
    node.inference.setPlacement({ mode: (request.body as Static<typeof ModeBody>).mode })
    return placementJson()
  })

  app.post('/admin/fallback', {
    permission: 'cluster:admin',
    schema: { body: FallbackBody, tags: ['admin'], summary: 'Whether this node runs, as the last resort, jobs of models no holder can run' }
  }, async (request) => {
    node.inference.setPlacement({ fallback: (request.body as Static<typeof FallbackBody>).enabled })
    return placementJson()
  })

  app.post('/admin/rebalance', {
    permission: 'cluster:admin',
    schema: { tags: ['admin'], summary: 'Re-run pin allocation now: fill under-replicated pins and even out the replicas per node; answers the pins that moved' }
  }, async (_request, reply) => {
    const moved = await node.cluster.rebalance({ signal: requestSignal(reply) })
    return { success: true, moved: moved.length, pins: moved.map(pinJson) }
  })

  app.get('/admin/stats', {
    permission: 'cluster:admin',
    schema: { tags: ['admin'], summary: "This node's placement settings and process, and the cluster's nodes, models, pins, jobs and Raft state as this node knows them" }
  }, async () => {
    // Local reads: the statistics must answer on a node that lost its leader.
    const options = { local: true }
    const [nodes, models, pins, jobs] = await Promise.all([
      node.cluster.nodes(options), node.cluster.getAllModels(options), node.cluster.pins(options), node.cluster.jobs({ status: ['requested', 'running'], limit: 1000 }, options)
    ])
    const mem = process.memoryUsage()
    const { mode, fallback } = node.inference.placement()
    return {
      node_id: node.peerId,
      version: node.version().version,
      uptime: uptimeSeconds(node.startedAt),
      mode,
      fallback,
      process: { rss: mem.rss, heap_used: mem.heapUsed, heap_total: mem.heapTotal, external: mem.external },
      consensus: consensusJson(node.cluster.status()),
      nodes: { total: nodes.length, active: nodes.filter(n => nodeStatus(n) === 'active').length, online: nodes.filter(n => n.online).length },
      models: models.length,
      pins: { total: pins.length, bytes: pins.reduce((sum, p) => sum + p.size, 0), local: node.cluster.localPins().length },
      jobs: { requested: jobs.filter(j => j.status === 'requested').length, running: jobs.filter(j => j.status === 'running').length }
    }
  })
}
