import { peerCount, topologyJson, trafficJson } from '../cluster-views.ts'
import { LocalQuery, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'
import type { NodeView } from '@node-daemon/cluster'
import type { Node } from '@node-daemon/daemon'

/** A ping slower than this is reported as unanswered: the metrics route must stay quick. */
const PING_TIMEOUT_MS = 2000
/** How long discovery may spend dialling the members this node is not connected to. */
const DISCOVER_TIMEOUT_MS = 10_000

/** Dials a member at each of its known addresses in turn, until one answers. */
async function dialMember (node: Node, member: NodeView, signal: AbortSignal): Promise<{ id: string, addr?: string, error?: string }> {
  let error = 'no known address'
  for (const addr of member.addrs) {
    try {
      await node.connect(`${addr}/p2p/${member.id}`, { signal })
      return { id: member.id, addr }
    } catch (err: any) {
      error = err.message
    }
  }
  return { id: member.id, error }
}

/** Round-trip time to each connected peer, by the swarm's ping protocol; null when it did not answer in time. */
async function pingPeers (node: Node, signal: AbortSignal): Promise<Array<{ peer: string, latency_ms: number | null, error?: string }>> {
  const peers = new Map(node.swarm.getConnections().map(c => [c.remotePeer.toString(), c.remotePeer]))
  return Promise.all([...peers].map(async ([id, peer]) => {
    try {
      return { peer: id, latency_ms: await node.swarm.services.ping.ping(peer, { signal: AbortSignal.any([signal, AbortSignal.timeout(PING_TIMEOUT_MS)]) }) }
    } catch (err: any) {
      return { peer: id, latency_ms: null, error: err.message }
    }
  }))
}

/** Document 003's network routes: topology, discovery of members, and swarm metrics. */
export const networkRoutes: Routes = (app, { node }) => {
  app.get('/api/v1/network/topology', {
    schema: { querystring: LocalQuery, tags: ['network'], summary: "Cluster members and connected peers, with this node's swarm connections" }
  }, async (_request, reply) => {
    return topologyJson(node.peerId, await node.cluster.nodes(readOptions(reply)), node.peers())
  })

  app.post('/api/v1/network/discover', {
    schema: { tags: ['network'], summary: 'Dial the cluster members this node is not connected to, at their known addresses' }
  }, async (_request, reply) => {
    const signal = AbortSignal.any([requestSignal(reply), AbortSignal.timeout(DISCOVER_TIMEOUT_MS)])
    const members = await node.cluster.nodes({ signal })
    const missing = members.filter(m => !m.isSelf && !m.connected)
    const dialled = await Promise.all(missing.map(async m => dialMember(node, m, signal)))
    return {
      success: true,
      members: members.length,
      found: missing.length,
      connected: dialled.filter(d => d.error == null).map(d => ({ id: d.id, addr: d.addr })),
      failed: dialled.filter(d => d.error != null).map(d => ({ id: d.id, error: d.error })),
      peers: peerCount(node.peers())
    }
  })

  app.get('/api/v1/network/metrics', {
    schema: { tags: ['network'], summary: 'Connected peers, their ping latency, and bytes sent and received by libp2p' }
  }, async (_request, reply) => {
    const connections = node.peers()
    const transfer = await node.metrics.getSingleMetric('libp2p_data_transfer_bytes_total')?.get()
    const latencies = await pingPeers(node, requestSignal(reply))
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
