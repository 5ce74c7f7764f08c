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
    const peers = node.peers()
    return {
      status: 'healthy',
      timestamp: new Date().toISOString(),
      version: node.version().version,
      node_id: node.peerId,
      uptime_seconds: Math.round((Date.now() - node.startedAt.getTime()) / 1000),
      services: {
        p2p: node.swarm.status === 'started',
        p2p_peers: new Set(peers.map(p => p.peer)).size,
        ipfs: node.content.helia.status === 'started',
        // Consensus and scheduling arrive with the cluster and inference issues.
        consensus: false,
        consensus_leader: false,
        scheduler: false,
        available_nodes: 1
      }
    }
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
