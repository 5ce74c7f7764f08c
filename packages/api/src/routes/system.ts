import { nodeStatus, peerCount, uptimeSeconds } from '../cluster-views.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'
import type { ClusterProblem } from '@node-daemon/cluster'
import type { VersionInfo } from '@node-daemon/daemon'

/** What /health says of each cluster problem. */
const PROBLEMS: Record<ClusterProblem, string> = {
  joining: 'not a member: still joining the cluster',
  removed: 'removed from the cluster: start it with a fresh repo to join again',
  no_quorum: 'no quorum: no Raft leader is known',
  catching_up: 'catching up with the cluster log'
}

/** Kubo's version answer (its VersionInfo), which diag/profile's version.json holds too; Golang names the Node runtime. */
export function kuboVersion (v: VersionInfo): object {
  return { Version: v.version, Commit: v.commit, Repo: v.repo, System: v.system, Golang: `node ${v.node}` }
}

export const systemRoutes: Routes = (app, { node }) => {
  kuboRoute(app, {
    path: 'version',
    permission: 'public',
    tags: ['system'],
    summary: 'Daemon version, Kubo style',
    handler: async () => kuboVersion(node.version())
  })

  // Documents 000 and 002 both answer /health; 002's richer form wins, with 000's version beside it.
  app.get('/health', { permission: 'public', schema: { tags: ['system'], summary: 'Health of the node and its services' } }, async () => {
    // A local read: health must answer even when the cluster has no leader.
    const nodes = await node.cluster.nodes({ local: true })
    // Degraded, not failed: a liveness probe that reads only the status code still sees 200.
    const problems = node.cluster.problems()
    return {
      status: problems.length === 0 ? 'healthy' : 'degraded',
      ...(problems.length === 0 ? {} : { reasons: problems.map(p => p === 'joining' ? node.cluster.lastJoinFailure()?.message ?? PROBLEMS[p] : PROBLEMS[p]) }),
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
        // Jobs are placed through the cluster's job table, which needs a leader this node follows.
        scheduler: problems.length === 0,
        available_nodes: nodes.filter(n => nodeStatus(n) === 'active').length
      }
    }
  })

  // Document 003's Kubernetes probes: ready once the node knows a leader and has caught up.
  // Not ready, it says why, as the log does: a node that cannot join is otherwise only a 503.
  app.get('/health/ready', { permission: 'public', schema: { tags: ['system'], summary: 'Readiness: 200 once the node knows a Raft leader, has caught up and has registered the default models, else 503 with the reason' } }, async (_request, reply) => {
    const starting = node.starting()
    const ready = node.cluster.isReady() && starting == null
    const { leader, term, role } = node.cluster.status()
    if (ready) return reply.code(200).send({ status: 'ready', ready, leader, term, role })
    if (node.cluster.isReady()) return reply.code(503).send({ status: 'not_ready', ready, leader, term, role, reason: `the node is ${starting ?? 'starting'}` })
    const failure = node.cluster.lastJoinFailure()
    const problem = node.cluster.problems()[0]
    const why = failure != null
      ? { reason: failure.message, join_failure: { kind: failure.kind, address: failure.addr, since: new Date(failure.since).toISOString() } }
      : { reason: problem == null ? PROBLEMS.catching_up : PROBLEMS[problem] }
    return reply.code(503).send({ status: 'not_ready', ready, leader, term, role, ...why })
  })

  app.get('/health/live', { permission: 'public', schema: { tags: ['system'], summary: 'Liveness: 200 while the process serves requests' } }, async () => {
    return { status: 'alive', uptime_seconds: uptimeSeconds(node.startedAt) }
  })

  const version = async (): Promise<object> => {
    const v = node.version()
    return { version: v.version, build_date: v.buildDate, git_commit: v.commit, node_version: v.node, api_versions: ['v0', 'v1'] }
  }
  app.get('/api/version', { permission: 'public', schema: { tags: ['system'], summary: 'API version and build' } }, version)
  app.get('/api/v1/version', { permission: 'public', schema: { tags: ['system'], summary: 'API version and build' } }, version)

  app.get('/metrics', { permission: 'cluster:read', schema: { tags: ['system'], summary: 'Prometheus metrics', hide: false } }, async (_request, reply) => {
    return reply.header('content-type', node.metrics.contentType).send(await node.metrics.metrics())
  })

  app.get('/api/v0/openapi.json', { permission: 'public', schema: { hide: true } }, async () => app.swagger())
}
