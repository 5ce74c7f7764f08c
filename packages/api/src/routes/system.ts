import { nodeStatus, peerCount, uptimeSeconds } from '../cluster-views.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'

export const systemRoutes: Routes = (app, { node }) => {
  kuboRoute(app, {
    path: 'version',
    tags: ['system'],
    summary: 'Daemon version, Kubo style',
    handler: async () => {
      const v = node.version()
      return { Version: v.version, Commit: v.commit, Repo: v.repo, System: v.system, Golang: `node ${v.node}` }
    }
  })

  // Documents 000 and 002 both answer /health; 002's richer form wins, with 000's version beside it.
  app.get('/health', { schema: { tags: ['system'], summary: 'Health of the node and its services' } }, async () => {
    // A local read: health must answer even when the cluster has no leader.
    const nodes = await node.cluster.nodes({ local: true })
    return {
      status: 'healthy',
      timestamp: new Date().toISOString(),
      version: node.version().version,
      node_id: node.peerId,
      uptime_seconds: uptimeSeconds(node.startedAt),
      services: {
        p2p: node.swarm.status === 'started',
        p2p_peers: peerCount(node.peers()),
        ipfs: node.content.helia.status === 'started',
        consensus: node.cluster.isReady(),
        consensus_leader: node.cluster.status().role === 'leader',
        // Scheduling arrives with the inference issue.
        scheduler: false,
        available_nodes: nodes.filter(n => nodeStatus(n) === 'active').length
      }
    }
  })

  // Document 003's Kubernetes probes: ready once the node knows a leader and has caught up.
  app.get('/health/ready', { schema: { tags: ['system'], summary: 'Readiness: 200 once the node knows a Raft leader and has caught up, else 503' } }, async (_request, reply) => {
    const ready = node.cluster.isReady()
    const { leader, term, role } = node.cluster.status()
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', ready, leader, term, role })
  })

  app.get('/health/live', { schema: { tags: ['system'], summary: 'Liveness: 200 while the process serves requests' } }, async () => {
    return { status: 'alive', uptime_seconds: uptimeSeconds(node.startedAt) }
  })

  const version = async (): Promise<object> => {
    const v = node.version()
    return { version: v.version, build_date: v.buildDate, git_commit: v.commit, node_version: v.node, api_versions: ['v0', 'v1'] }
  }
  app.get('/api/version', { schema: { tags: ['system'], summary: 'API version and build' } }, version)
  app.get('/api/v1/version', { schema: { tags: ['system'], summary: 'API version and build' } }, version)

  app.get('/metrics', { schema: { tags: ['system'], summary: 'Prometheus metrics', hide: false } }, async (_request, reply) => {
    return reply.header('content-type', node.metrics.contentType).send(await node.metrics.metrics())
  })

  app.get('/api/v0/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}
