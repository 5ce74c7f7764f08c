import { Type } from 'typebox'
import { latencies, modelsOn, nodeJson, nodeStatus, trainingOn } from '../cluster-views.ts'
import { duration } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { LocalQuery, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'
import type { NodeView, ReadOptions } from '@node-daemon/cluster'
import type { Node } from '@node-daemon/daemon'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Static } from 'typebox'

const NodeParams = Type.Object({ id: Type.String({ description: 'Peer id of a cluster node' }) })

const RegisterBody = Type.Object({
  max_ram: Type.Optional(Type.Integer({ minimum: 0, description: 'Bytes of RAM the cluster may use on this node' })),
  max_vram: Type.Optional(Type.Integer({ minimum: 0, description: 'Bytes of GPU memory the cluster may use on this node' })),
  max_cpu_percent: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'Share of the CPU the cluster may use' })),
  config: Type.Optional(Type.Unknown({ description: "Document 003's config of a new node: refused, since a node joins by running `node-daemon start --join <token>`" }))
})

const TokenBody = Type.Optional(Type.Object({
  expires: Type.Optional(Type.String({ description: 'How long the token admits nodes, as a duration: 30m, 1h, 24h; default 1h, at most 720h' })),
  role: Type.Optional(Type.Union([Type.Literal('voter'), Type.Literal('learner')], { description: 'voter: a trusted peer, which may vote and call admin operations; learner (default): one that stores and serves only' }))
}))

const JOIN_BY_START = 'a node cannot be created over HTTP: run `node-daemon start --join <token>` on the new machine to join it, ' +
  'with a token from `node-daemon cluster invite` (POST /api/v1/cluster/tokens). ' +
  "POST /api/v1/nodes registers this node's resource limits and takes max_ram, max_vram and max_cpu_percent"

/**
 * Nodes in the shape of documents 002 and 003, which share GET /api/v1/nodes:
 * the models a node holds come from the pinset, its latency from the swarm.
 */
async function nodesJson (node: Node, views: NodeView[], options: ReadOptions): Promise<object[]> {
  const [models, pins, running] = await Promise.all([node.cluster.getAllModels(options), node.cluster.pins(options), node.cluster.jobs({ status: 'running', limit: Infinity }, options)])
  const rtt = latencies(node.peers())
  return views.map(v => nodeJson(v, { models: modelsOn(models, pins, v.id), latencyMs: rtt.get(v.id), training: trainingOn(running, v.id) }))
}

/** Cluster nodes: document 002's list, get, drain and undrain, and document 003's CRUD. */
export const nodeRoutes: Routes = (app, { node }) => {
  const nodeId = (request: FastifyRequest): string => (request.params as Static<typeof NodeParams>).id

  const list = async (_request: FastifyRequest, reply: FastifyReply): Promise<object> => {
    const options = readOptions(reply)
    const views = await node.cluster.nodes(options)
    return { nodes: await nodesJson(node, views, options), total: views.length, active: views.filter(v => nodeStatus(v) === 'active').length }
  }
  for (const url of ['/api/distributed/nodes', '/api/v1/nodes']) {
    app.get(url, { permission: 'cluster:read', schema: { querystring: LocalQuery, tags: ['nodes'], summary: 'Cluster nodes with status, address, models, resources and latency' } }, list)
  }

  app.post('/api/v1/nodes', {
    permission: 'cluster:admin',
    schema: { body: RegisterBody, tags: ['nodes'], summary: "Register this node's resource limits (NodeProfileRegistry.registerNode); nodes join by `node-daemon start --join <token>`" }
  }, async (request, reply) => {
    const body = request.body as Static<typeof RegisterBody>
    if (body.config !== undefined || body.max_ram == null || body.max_vram == null || body.max_cpu_percent == null) throw new BadRequestError(JOIN_BY_START)
    const signal = requestSignal(reply)
    const view = await node.cluster.registerNode({ maxRAM: body.max_ram, maxVRAM: body.max_vram, maxCPUPercent: body.max_cpu_percent }, { signal })
    const [json] = await nodesJson(node, [view], { signal })
    return reply.code(201).send({ success: true, node: json })
  })

  app.post('/api/v1/cluster/tokens', {
    permission: 'cluster:admin',
    schema: {
      body: TokenBody,
      tags: ['nodes'],
      summary: 'A join token (`node-daemon cluster invite`): the members\' addresses, an admission signed by this node (a trusted peer) and the cluster\'s private-network key. ' +
        '`node-daemon start --join <token>` joins with it alone until it expires. It is a secret: whoever holds it can join and connect to the cluster'
    }
  }, async (request, reply) => {
    const body = (request.body ?? {}) as NonNullable<Static<typeof TokenBody>>
    const made = await node.cluster.createJoinToken({ expiresInMs: duration(body.expires, 'expires'), role: body.role })
    return reply.code(201).send({ success: true, token: made.token, role: made.role, issuer: made.issuer, expires_at: made.expiresAt, addresses: made.addrs })
  })

  app.get('/api/v1/nodes/:id', {
    permission: 'cluster:read',
    schema: { params: NodeParams, querystring: LocalQuery, tags: ['nodes'], summary: 'One node in detail' }
  }, async (request, reply) => {
    const options = readOptions(reply)
    const [json] = await nodesJson(node, [await node.cluster.node(nodeId(request), options)], options)
    return json
  })

  app.delete('/api/v1/nodes/:id', {
    permission: 'cluster:admin',
    schema: { params: NodeParams, tags: ['nodes'], summary: 'Remove a node from the cluster; its pins move elsewhere' }
  }, async (request, reply) => {
    const id = nodeId(request)
    await node.cluster.removeNode(id, { signal: requestSignal(reply) })
    return { success: true, id, removed: true }
  })

  for (const [action, drained] of [['drain', true], ['undrain', false]] as const) {
    app.post(`/api/v1/nodes/:id/${action}`, {
      permission: 'cluster:admin',
      schema: { params: NodeParams, tags: ['nodes'], summary: drained ? 'Drain a node: it takes no new allocations or jobs' : 'Let a drained node take work again' }
    }, async (request, reply) => {
      const signal = requestSignal(reply)
      const [json] = await nodesJson(node, [await node.cluster.setDrained(nodeId(request), drained, { signal })], { signal })
      return { success: true, node: json }
    })
  }
}
