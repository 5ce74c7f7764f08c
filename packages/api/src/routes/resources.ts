import { Type } from 'typebox'
import { peerCount, peersJson, uptimeSeconds, usagePercent } from '../cluster-views.ts'
import { LocalQuery, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

/** An allocation is a share of the machine, so no part of it passes 100 %; the node's limits may set less. */
const MAX_PERCENT = 100

const AllocationBody = Type.Object({
  cpu: Type.Optional(Type.Number({ minimum: 0, maximum: MAX_PERCENT, description: 'Percent of the CPU' })),
  memory: Type.Optional(Type.Number({ minimum: 0, maximum: MAX_PERCENT, description: 'Percent of the RAM' })),
  gpu: Type.Optional(Type.Number({ minimum: 0, maximum: MAX_PERCENT, description: 'Percent of the GPUs' })),
  storage: Type.Optional(Type.Number({ minimum: 0, maximum: MAX_PERCENT, description: 'Percent of the free disk' }))
}, { additionalProperties: false, minProperties: 1 })

/** Document 001's node routes: status, peers, and the resources this node gives the cluster. */
export const resourceRoutes: Routes = (app, { node }) => {
  app.get('/api/status', {
    permission: 'cluster:read',
    schema: { tags: ['node'], summary: "This node's status, uptime, peers and load in percent" }
  }, async () => {
    const resources = await node.cluster.resources()
    const consensus = node.cluster.status()
    const load = usagePercent(resources)
    return {
      status: node.cluster.isReady() ? 'healthy' : 'degraded',
      uptime: uptimeSeconds(node.startedAt),
      version: node.version().version,
      node_id: node.peerId,
      // The replicated log plays the chain's part: its commit index is the block number.
      network: { peers: peerCount(node.peers()), blockNumber: consensus.commitIndex, leader: consensus.leader, term: consensus.term },
      resources: { cpu: load.cpu, memory: load.memory, gpu: load.gpu }
    }
  })

  app.get('/api/peers', {
    permission: 'cluster:read',
    schema: { querystring: LocalQuery, tags: ['node'], summary: 'Other cluster members and connected peers' }
  }, async (_request, reply) => {
    return { peers: peersJson(await node.cluster.nodes(readOptions(reply)), node.peers()) }
  })

  app.get('/api/resources', {
    permission: 'cluster:read',
    schema: { querystring: LocalQuery, tags: ['node'], summary: "This node's allocation to the cluster, its measured usage, and the limits its operator set on an allocation (cluster.allocation_limits), in percent" }
  }, async (_request, reply) => {
    const [self, measured] = await Promise.all([node.cluster.node(node.cluster.id, readOptions(reply)), node.cluster.resources()])
    return {
      allocation: self.allocation,
      usage: usagePercent(measured),
      limits: node.cluster.allocationLimits(),
      capacity: {
        cpu_cores: measured.cpu.cores,
        memory_bytes: measured.memory.total,
        gpu_memory_bytes: measured.gpus.reduce((sum, g) => sum + g.vram.total, 0),
        storage_bytes: measured.disk.total
      },
      registered: self.registered
    }
  })

  app.post('/api/resources', {
    permission: 'cluster:admin',
    schema: { body: AllocationBody, tags: ['node'], summary: 'Set how much of this machine the cluster may use, in percent, within the limits GET shows' }
  }, async (request, reply) => {
    const allocation = await node.cluster.setAllocation(request.body as Static<typeof AllocationBody>, { signal: requestSignal(reply) })
    return { success: true, allocation }
  })
}
