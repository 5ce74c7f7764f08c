import { Type } from 'typebox'
import { consensusJson, jobJson, modelJson, nodeStatus, peerCount, pinJson, pinStatusJson, replicasJson, uptimeSeconds, usage } from '../cluster-views.ts'
import { registeredModel } from '../models.ts'
import { websocketConnections } from '../metrics.ts'
import { LocalQuery, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import { rates, TrafficMeter } from '../traffic.ts'
import type { Routes } from '../server.ts'
import type { Cluster, JobRecord, ReadOptions } from '@node-daemon/cluster'
import type { Node } from '@node-daemon/daemon'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Static } from 'typebox'

const ModelParams = Type.Object({ name: Type.String({ description: 'Model id; a bare name means name:latest, as in Ollama' }) })

// Unknown fields are refused: a node named by another field would otherwise be this node, silently.
const DownloadBody = Type.Optional(Type.Object({
  node_id: Type.Optional(Type.String({ minLength: 1, description: 'Peer id of the node to download to; default this node' }))
}, { additionalProperties: false }))

const MigrateBody = Type.Object({
  model_name: Type.String({ minLength: 1, description: 'Model id' }),
  from_node: Type.String({ minLength: 1, description: 'Peer id holding a replica' }),
  to_node: Type.String({ minLength: 1, description: 'Peer id to hold it instead' })
}, { additionalProperties: false })

/** Jobs that are not finished: document 002's active requests. */
async function activeJobs (cluster: Cluster, options: ReadOptions): Promise<JobRecord[]> {
  return cluster.jobs({ status: ['requested', 'running'], limit: 1000 }, options)
}

/**
 * Document 002's system metrics: this node's view of the cluster (peers, leadership, nodes), the inference
 * requests it ran to an end that the job table still holds, the models it has loaded, its own load,
 * `websockets`, the API's open WebSocket connections, and the swarm's bytes per second in and out since
 * `traffic`'s previous reading.
 */
export async function distributedMetrics (node: Node, options: ReadOptions, websockets: number, traffic: TrafficMeter): Promise<object> {
  const [nodes, resources, ended, moved] = await Promise.all([
    node.cluster.nodes(options),
    node.cluster.resources(),
    node.cluster.jobs({ status: ['completed', 'failed'], worker: node.peerId, limit: Infinity }, options),
    traffic.read()
  ])
  const load = usage(resources)
  const rate = rates(moved.now, moved.before)
  return {
    timestamp: new Date().toISOString(),
    node_id: node.peerId,
    connected_peers: peerCount(node.peers()),
    is_leader: node.cluster.status().role === 'leader',
    requests_processed: ended.filter(j => j.kind === 'inference').length,
    models_loaded: node.inference.loaded().length,
    websocket_connections: websockets,
    nodes_total: nodes.length,
    nodes_online: nodes.filter(n => n.online).length,
    uptime: uptimeSeconds(node.startedAt),
    cpu_usage: load.cpu,
    memory_usage: load.memory,
    gpu_usage: load.gpu,
    disk_usage: load.disk,
    network_usage: rate.in + rate.out
  }
}

/** Document 002's distributed API, answered from the replicated cluster state. */
export const distributedRoutes: Routes = (app, { node }) => {
  // network_usage is the traffic since the previous call of /api/distributed/metrics, or since start.
  const traffic = new TrafficMeter(node)
  const status = async (_request: FastifyRequest, reply: FastifyReply): Promise<object> => {
    const options = readOptions(reply)
    const [nodes, active] = await Promise.all([node.cluster.nodes(options), activeJobs(node.cluster, options)])
    // This node's placement, which /admin/mode and /admin/fallback set.
    const { mode, fallback } = node.inference.placement()
    const loaded = node.inference.loaded()
    return {
      distributed_mode: mode === 'distributed',
      fallback_mode: fallback,
      node_id: node.peerId,
      cluster_size: nodes.length,
      active_nodes: nodes.filter(n => nodeStatus(n) === 'active').map(n => n.id),
      ...consensusJson(node.cluster.status()),
      scheduler_stats: {
        requested: active.filter(j => j.status === 'requested').length,
        running: active.filter(j => j.status === 'running').length
      },
      // The runtime's sessions on this node: the models loaded, as /api/ps lists them.
      runner_stats: {
        models_loaded: loaded.length,
        bytes_loaded: loaded.reduce((sum, m) => sum + m.size, 0),
        models: loaded.map(m => ({ name: m.name, cid: m.cid, size: m.size, execution_provider: m.executionProvider, engine: m.engine, expires_at: m.expiresAt?.toISOString() ?? null }))
      }
    }
  }
  for (const url of ['/api/distributed/status', '/api/v1/cluster/status']) {
    app.get(url, { permission: 'cluster:read', schema: { querystring: LocalQuery, tags: ['distributed'], summary: 'Cluster size, active nodes, leader and term' } }, status)
  }

  // Document 003's model list is document 002's distributed one.
  for (const url of ['/api/distributed/models', '/api/v1/models']) {
    app.get(url, {
      permission: 'models:read',
      schema: { querystring: LocalQuery, tags: ['distributed'], summary: 'Registered models: replicas, the nodes holding them, size and readiness' }
    }, async (_request, reply) => {
      const options = readOptions(reply)
      const [models, pins, reports] = await Promise.all([node.cluster.getAllModels(options), node.cluster.pins(options), node.cluster.pinStatus(undefined, options)])
      const pinOf = new Map(pins.map(p => [p.cid, p]))
      const reportOf = new Map(reports.map(r => [r.cid, r]))
      return { models: models.map(m => modelJson(m, pinOf.get(m.modelCID), reportOf.get(m.modelCID))), total: models.length }
    })
  }

  /** A model with its replicas and the registry's record: description, metadata, owner and versions. */
  const modelDetail = async (name: string, options: ReadOptions): Promise<object> => {
    const model = await registeredModel(node.cluster, name, options)
    const [pin, reports] = await Promise.all([node.cluster.pin(model.modelCID, options), node.cluster.pinStatus(model.modelCID, options)])
    return { ...replicasJson(model, pin, reports[0]), description: model.description, metadata: model.metadata, owner: model.owner, versions: model.versions }
  }

  app.get('/api/v1/models/:name', {
    permission: 'models:read',
    schema: { params: ModelParams, querystring: LocalQuery, tags: ['distributed'], summary: 'One model in detail: its replicas and their status on each node, description, metadata and versions' }
  }, async (request, reply) => modelDetail((request.params as Static<typeof ModelParams>).name, readOptions(reply)))

  app.delete('/api/v1/models/:name', {
    permission: 'models:write',
    schema: { params: ModelParams, tags: ['distributed'], summary: 'Remove a model from the cluster: its registration, and its pin unless another model shares the content' }
  }, async (request, reply) => {
    const signal = requestSignal(reply)
    const model = await registeredModel(node.cluster, (request.params as Static<typeof ModelParams>).name, { signal })
    await node.cluster.removeModel(model.modelId, { signal })
    return { success: true, model_id: model.modelId, cid: model.modelCID, deleted: true }
  })

  app.post('/api/v1/models/:name/download', {
    permission: 'models:write',
    schema: { params: ModelParams, body: DownloadBody, tags: ['distributed'], summary: "Have a node fetch and pin a model: it becomes one of the model's replicas (202; follow it in the node's transfers or the model's replica_status)" }
  }, async (request, reply) => {
    const signal = requestSignal(reply)
    const target = (request.body as Static<typeof DownloadBody> | undefined)?.node_id ?? node.peerId
    const model = await registeredModel(node.cluster, (request.params as Static<typeof ModelParams>).name, { signal })
    const pin = await node.cluster.allocate(model.modelCID, target, { signal })
    return reply.code(202).send({ success: true, model_id: model.modelId, cid: model.modelCID, node_id: target, nodes: pin.allocations })
  })

  app.get('/api/distributed/models/:name/replicas', {
    permission: 'models:read',
    schema: { params: ModelParams, querystring: LocalQuery, tags: ['distributed'], summary: "A model's replicas and their pin status on each node" }
  }, async (request, reply) => {
    const options = readOptions(reply)
    const model = await registeredModel(node.cluster, (request.params as Static<typeof ModelParams>).name, options)
    const [pin, reports] = await Promise.all([node.cluster.pin(model.modelCID, options), node.cluster.pinStatus(model.modelCID, options)])
    return replicasJson(model, pin, reports[0])
  })

  app.get('/api/distributed/metrics', {
    permission: 'cluster:read',
    schema: { querystring: LocalQuery, tags: ['distributed'], summary: "This node's view of the cluster: peers, leadership, nodes and its own load" }
  }, async (_request, reply) => distributedMetrics(node, readOptions(reply), websocketConnections(app), traffic))

  app.get('/api/distributed/requests', {
    permission: 'cluster:read',
    schema: { querystring: LocalQuery, tags: ['distributed'], summary: 'Jobs requested or running' }
  }, async (_request, reply) => {
    const jobs = await activeJobs(node.cluster, readOptions(reply))
    return { requests: jobs.map(jobJson), count: jobs.length }
  })

  app.get('/api/distributed/replication/status', {
    permission: 'cluster:read',
    schema: { querystring: LocalQuery, tags: ['distributed'], summary: 'Replication of every pin (models and datasets among them) on every node' }
  }, async (_request, reply) => {
    const options = readOptions(reply)
    const [pins, reports] = await Promise.all([node.cluster.pins(options), node.cluster.pinStatus(undefined, options)])
    const reportOf = new Map(reports.map(r => [r.cid, r]))
    const entries = pins.map(p => {
      const report = reportOf.get(p.cid)
      return { ...pinJson(p), ...(report == null ? { status: null, peer_map: {} } : pinStatusJson(report)) }
    })
    const summary: Record<string, number> = {}
    for (const r of reports) summary[r.summary] = (summary[r.summary] ?? 0) + 1
    return { pins: entries, total: pins.length, summary }
  })

  app.post('/api/distributed/rebalance', {
    permission: 'cluster:admin',
    schema: { tags: ['distributed'], summary: 'Recompute allocations to balance load; answers the pins that moved' }
  }, async (_request, reply) => {
    const moved = await node.cluster.rebalance({ signal: requestSignal(reply) })
    return { success: true, moved: moved.length, pins: moved.map(pinJson) }
  })

  app.post('/api/distributed/migrate', {
    permission: 'cluster:admin',
    schema: { body: MigrateBody, tags: ['distributed'], summary: "Move a replica of a model's content from one node to another" }
  }, async (request, reply) => {
    const body = request.body as Static<typeof MigrateBody>
    const signal = requestSignal(reply)
    const model = await registeredModel(node.cluster, body.model_name, { signal })
    const pin = await node.cluster.migrate(model.modelCID, body.from_node, body.to_node, { signal })
    return { success: true, model_name: model.modelId, cid: pin.cid, from_node: body.from_node, to_node: body.to_node, nodes: pin.allocations }
  })
}
