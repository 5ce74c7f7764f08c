import { peerCount, topologyJson, trafficJson } from '../cluster-views.ts'
import { LocalQuery, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'

/** How long discovery may spend dialling the members this node is not connected to. */
const DISCOVER_TIMEOUT_MS = 10_000

/** Document 003's network routes: topology, discovery of members, and swarm metrics. */
export const networkRoutes: Routes = (app, { node }) => {
  app.get('/api/v1/network/topology', {
    permission: 'cluster:read',
    schema: { querystring: LocalQuery, tags: ['network'], summary: "Cluster members and connected peers, with this node's swarm connections" }
  }, async (_request, reply) => {
    return topologyJson(node.peerId, await node.cluster.nodes(readOptions(reply)), node.peers())
  })

  app.post('/api/v1/network/discover', {
    permission: 'cluster:admin',
    schema: { tags: ['network'], summary: 'Dial the cluster members this node is not connected to, at their known addresses' }
  }, async (_request, reply) => {
    const signal = AbortSignal.any([requestSignal(reply), AbortSignal.timeout(DISCOVER_TIMEOUT_MS)])
    const found = await node.cluster.discover({ signal })
    return { success: true, ...found, peers: peerCount(node.peers()) }
  })

  app.get('/api/v1/network/metrics', {
    permission: 'cluster:read',
    schema: { tags: ['network'], summary: 'Connected peers, their ping latency, and bytes sent and received by libp2p' }
  }, async (_request, reply) => {
    const connections = node.peers()
    const transfer = await node.metrics.getSingleMetric('libp2p_data_transfer_bytes_total')?.get()
    const latencies = (await node.pingPeers({ signal: requestSignal(reply) })).map(p => ({ peer: p.peer, latency_ms: p.latencyMs, error: p.error }))
    const answered = latencies.flatMap(l => l.latency_ms ?? [])
    return {
      timestamp: new Date().toISOString(),
      peers: latencies.length,
      connections: connections.length,
      latency: latencies,
      average_latency_ms: answered.length > 0 ? answered.reduce((a, b) => a + b, 0) / answered.length : null,
      bytes: transfer == null ? null : trafficJson(transfer.values)
    }
  })
}
