import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { ErrorEnvelope } from '@node-daemon/api'

/** A well-formed peer id of no member. */
const STRANGER = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const TIMEOUT = AbortSignal.timeout.bind(AbortSignal)

type Json = Record<string, any>

async function call (d: TestDaemon, method: string, path: string, body?: unknown): Promise<Response> {
  const init: RequestInit = { method, signal: TIMEOUT(30_000) }
  if (body !== undefined) {
    init.headers = { 'content-type': 'application/json' }
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
  }
  return fetch(`${d.url}${path}`, init)
}

/** The JSON body of a response that must have this status. */
async function expectJson (res: Response, status = 200): Promise<Json> {
  const text = await res.text()
  assert.equal(res.status, status, `${res.url}: expected ${status}, got ${res.status}: ${text}`)
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
  return JSON.parse(text)
}

/** Document 000's error envelope, with document 003's number in Code where it has one. */
async function expectError (res: Response, status: number, errorType: string, code = 0): Promise<ErrorEnvelope> {
  const body = await expectJson(res, status) as ErrorEnvelope
  assert.equal(body.success, false)
  assert.equal(body.status_code, status)
  assert.equal(body.error_type, errorType)
  assert.ok(body.error.length > 0)
  assert.equal(body.Message, body.error)
  assert.equal(body.Code, code)
  assert.equal(body.Type, 'error')
  return body
}

/** Polls until `check` passes, for at most `ms`; the last failure is the error. */
async function eventually<T> (check: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      return await check()
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
}

async function addContent (d: TestDaemon, content: string): Promise<string> {
  const res = await rpc(d, 'add', {}, { body: formOf([{ path: 'file', content }]) })
  assert.equal(res.status, 200)
  return ((await res.json()) as { Hash: string }).Hash
}

describe('API cluster routes on a cluster of one', { timeout: 180_000 }, () => {
  let d: TestDaemon
  let self: string
  let cid: string
  let modelCid: string

  before(async () => {
    d = await startTestDaemon({ cluster: { allocationLimits: { cpu: 90, storage: 70 } } })
    self = d.node.peerId
    // A node without bootstrap peers forms a cluster of one and leads it within seconds.
    await eventually(async () => { await expectJson(await call(d, 'GET', '/health/ready')) }, 30_000)
    cid = await addContent(d, 'cluster pin\n')
    modelCid = await addContent(d, 'model weights\n')
  })

  after(async () => {
    await d?.cleanup()
  })

  describe('probes', () => {
    it('answers /health/live and /health/ready', async () => {
      assert.equal((await expectJson(await call(d, 'GET', '/health/live'))).status, 'alive')
      const ready = await expectJson(await call(d, 'GET', '/health/ready'))
      assert.equal(ready.ready, true)
      assert.equal(ready.leader, self)
      assert.equal(ready.role, 'leader')
    })

    it('reports consensus in /health', async () => {
      const health = await expectJson(await call(d, 'GET', '/health'))
      assert.equal(health.services.consensus, true)
      assert.equal(health.services.consensus_leader, true)
      assert.equal(health.services.available_nodes, 1)
    })
  })

  describe('document 000: /api/v0/cluster', () => {
    it('lists the one peer', async () => {
      const body = await expectJson(await call(d, 'GET', '/api/v0/cluster/peers'))
      assert.equal(body.success, true)
      assert.equal(body.count, 1)
      assert.equal(body.peers[0].id, self)
      assert.equal(body.peers[0].is_leader, true)
      assert.ok(body.peers[0].addresses.every((a: string) => a.endsWith(`/p2p/${self}`)))
    })

    it('pins by JSON body and by Kubo arg, and lists the pin', async () => {
      const added = await expectJson(await call(d, 'POST', '/api/v0/cluster/pin/add', { cid, name: 'first', replication_factor: 1 }))
      assert.equal(added.success, true)
      assert.equal(added.cid, cid)
      assert.deepEqual(added.peers, [self])
      assert.equal(added.name, 'first')
      assert.equal(added.replication_factor_min, 1)
      assert.equal(added.replication_factor_max, 1)

      const again = await expectJson(await call(d, 'POST', `/api/v0/cluster/pin/add?arg=${cid}&name=second`))
      assert.equal(again.name, 'second')

      const pins = await expectJson(await call(d, 'GET', '/api/v0/cluster/pins'))
      assert.equal(pins.success, true)
      const pin = pins.pins.find((p: Json) => p.cid === cid)
      assert.ok(pin != null)
      assert.deepEqual(pin.allocations, [self])
      for (const key of ['name', 'replication_factor_min', 'replication_factor_max', 'timestamp']) assert.ok(key in pin, key)
    })

    it('reports the pin pinned on this node, keyed by CID', async () => {
      const status = await eventually(async () => {
        const body = await expectJson(await call(d, 'GET', `/api/v0/cluster/status?arg=${cid}`))
        assert.equal(body.status[cid].peer_map[self].status, 'pinned')
        return body
      })
      assert.equal(status.success, true)
      assert.equal(status.status[cid].status, 'pinned')
      const all = await expectJson(await call(d, 'GET', '/api/v0/cluster/status'))
      assert.ok(cid in all.status)
    })

    it('answers local reads', async () => {
      const pins = await expectJson(await call(d, 'GET', '/api/v0/cluster/pins?local=true'))
      assert.ok(pins.pins.some((p: Json) => p.cid === cid))
    })

    it('rejects bad input with 4xx envelopes', async () => {
      await expectError(await call(d, 'POST', '/api/v0/cluster/pin/add', { cid: 'notacid' }), 400, 'IPFSValidationError')
      await expectError(await call(d, 'POST', '/api/v0/cluster/pin/add', {}), 400, 'IPFSValidationError')
      await expectError(await call(d, 'POST', '/api/v0/cluster/pin/add', '{"cid": '), 400, 'IPFSValidationError')
      await expectError(await call(d, 'POST', '/api/v0/cluster/pin/add', { cid, replication_factor: 'two' }), 422, 'ValidationError')
      await expectError(await call(d, 'POST', '/api/v0/cluster/pin/add', { cid, replication_factor: 2 }), 409, 'InsufficientPeersError')
      await expectError(await call(d, 'GET', '/api/v0/cluster/status?arg=notacid'), 400, 'IPFSValidationError')
    })

    it('unpins', async () => {
      const other = await addContent(d, 'to unpin\n')
      await expectJson(await call(d, 'POST', '/api/v0/cluster/pin/add', { cid: other }))
      const removed = await expectJson(await call(d, 'POST', '/api/v0/cluster/pin/rm', { cid: other }))
      assert.deepEqual(removed, { success: true, cid: other, pins: [other] })
      await expectError(await call(d, 'POST', '/api/v0/cluster/pin/rm', { cid: other }), 404, 'PinNotFoundError')
    })
  })

  describe('document 002: distributed', () => {
    before(async () => {
      await d.node.cluster.registerModel({ modelId: 'tiny:1', modelCID: modelCid, name: 'Tiny', replicationFactor: 1 })
    })

    it('answers the cluster status at both paths', async () => {
      for (const path of ['/api/distributed/status', '/api/v1/cluster/status']) {
        const body = await expectJson(await call(d, 'GET', path))
        assert.equal(body.distributed_mode, true)
        assert.equal(body.cluster_size, 1)
        assert.deepEqual(body.active_nodes, [self])
        assert.equal(body.leader, self)
        assert.ok(body.term >= 1)
        assert.equal(typeof body.scheduler_stats.requested, 'number')
      }
    })

    it('lists nodes with the fields of documents 002 and 003 at both paths', async () => {
      for (const path of ['/api/distributed/nodes', '/api/v1/nodes', '/api/v1/nodes?local=true']) {
        const body = await expectJson(await call(d, 'GET', path))
        assert.equal(body.total, 1)
        assert.equal(body.active, 1)
        const [n] = body.nodes
        assert.equal(n.id, self)
        assert.equal(n.status, 'active')
        // The API address reaches the state with the node's next resource report.
        assert.ok(n.address === null || n.address === new URL(d.url).host, n.address)
        assert.deepEqual(n.models, ['tiny:1'])
        for (const key of ['cpu', 'memory', 'disk']) assert.ok(n.resources[key] >= 0 && n.resources[key] <= 1, key)
        assert.ok('last_seen' in n)
        assert.ok('performance' in n)
      }
    })

    it('lists models with their replicas, ready once pinned', async () => {
      const model = await eventually(async () => {
        const body = await expectJson(await call(d, 'GET', '/api/distributed/models'))
        const m = body.models.find((x: Json) => x.name === 'tiny:1')
        assert.equal(m.status, 'ready')
        return m
      })
      assert.equal(model.cid, modelCid)
      assert.equal(model.replicas, 1)
      assert.deepEqual(model.nodes, [self])
      assert.equal(typeof model.total_size, 'string')

      const replicas = await expectJson(await call(d, 'GET', '/api/distributed/models/tiny:1/replicas'))
      assert.deepEqual(replicas.replica_status.map((r: Json) => [r.node, r.status]), [[self, 'pinned']])
      await expectError(await call(d, 'GET', '/api/distributed/models/nope/replicas'), 404, 'ModelNotFoundError')
    })

    it('answers metrics, requests and replication status', async () => {
      const metrics = await expectJson(await call(d, 'GET', '/api/distributed/metrics'))
      assert.equal(metrics.node_id, self)
      assert.equal(metrics.is_leader, true)
      assert.equal(metrics.nodes_total, 1)
      assert.equal(metrics.nodes_online, 1)
      assert.equal(typeof metrics.uptime, 'number')
      assert.ok(metrics.cpu_usage >= 0 && metrics.memory_usage > 0)

      const job = await d.node.cluster.submitJob({ promptCID: cid, modelId: 'tiny:1' })
      const requests = await expectJson(await call(d, 'GET', '/api/distributed/requests'))
      const listed = requests.requests.find((r: Json) => r.id === job.jobId)
      assert.ok(listed != null)
      assert.ok(['requested', 'running'].includes(listed.status))

      const replication = await expectJson(await call(d, 'GET', '/api/distributed/replication/status'))
      const entry = replication.pins.find((p: Json) => p.cid === modelCid)
      assert.equal(entry.model_id, 'tiny:1')
      assert.equal(entry.peer_map[self].status, 'pinned')
      assert.equal(replication.total, replication.pins.length)
    })

    it('rebalances and refuses an impossible migration', async () => {
      const rebalanced = await expectJson(await call(d, 'POST', '/api/distributed/rebalance'))
      assert.equal(rebalanced.success, true)
      assert.equal(rebalanced.moved, rebalanced.pins.length)
      await expectError(await call(d, 'POST', '/api/distributed/migrate', { model_name: 'nope', from_node: self, to_node: STRANGER }), 404, 'ModelNotFoundError')
      await expectError(await call(d, 'POST', '/api/distributed/migrate', { model_name: 'tiny:1', from_node: self, to_node: STRANGER }), 404, 'NodeNotFoundError', 1001)
      const from = await expectError(await call(d, 'POST', '/api/distributed/migrate', { model_name: 'tiny:1', from_node: STRANGER, to_node: self }), 404, 'NodeNotFoundError', 1001)
      assert.equal((from as ErrorEnvelope & { code?: string }).code, 'NODE_NOT_FOUND')
      await expectError(await call(d, 'POST', '/api/distributed/migrate', { model_name: 'tiny:1' }), 400, 'ValidationError')
    })

    it('gets, drains and undrains a node', async () => {
      const n = await expectJson(await call(d, 'GET', `/api/v1/nodes/${self}`))
      assert.equal(n.id, self)
      assert.ok(n.hardware.cpu.cores >= 1)
      const drained = await expectJson(await call(d, 'POST', `/api/v1/nodes/${self}/drain`))
      assert.equal(drained.node.status, 'drained')
      assert.equal(drained.node.drained, true)
      const undrained = await expectJson(await call(d, 'POST', `/api/v1/nodes/${self}/undrain`))
      assert.equal(undrained.node.status, 'active')
      await expectError(await call(d, 'GET', `/api/v1/nodes/${STRANGER}`), 404, 'NodeNotFoundError', 1001)
      await expectError(await call(d, 'POST', `/api/v1/nodes/${STRANGER}/drain`), 404, 'NodeNotFoundError', 1001)
    })
  })

  describe('document 003: nodes, network and consensus', () => {
    it('registers this node by POST /api/v1/nodes and refuses to create one', async () => {
      await expectError(await call(d, 'POST', '/api/v1/nodes', { max_ram: 1024 * 1024 * 1024, max_vram: 0, max_cpu_percent: 95 }), 400, 'IPFSValidationError')
      const created = await expectJson(await call(d, 'POST', '/api/v1/nodes', { max_ram: 1024 * 1024 * 1024, max_vram: 0, max_cpu_percent: 50 }), 201)
      assert.equal(created.node.id, self)
      assert.equal(created.node.registered, true)
      assert.equal(created.node.allocation.cpu, 50)
      const refused = await expectError(await call(d, 'POST', '/api/v1/nodes', { config: { network_config: { port: 8080 } } }), 400, 'IPFSValidationError')
      assert.match(refused.error, /node-daemon start --join <token>/)
      await expectError(await call(d, 'POST', '/api/v1/nodes', { max_ram: -1, max_vram: 0, max_cpu_percent: 50 }), 400, 'ValidationError')
    })

    it('refuses to delete an unknown node or the only voter', async () => {
      await expectError(await call(d, 'DELETE', `/api/v1/nodes/${STRANGER}`), 404, 'NodeNotFoundError', 1001)
      await expectError(await call(d, 'DELETE', `/api/v1/nodes/${self}`), 400, 'IPFSValidationError')
    })

    it('answers the topology, discovery and network metrics', async () => {
      const topology = await expectJson(await call(d, 'GET', '/api/v1/network/topology'))
      assert.equal(topology.node_id, self)
      assert.deepEqual(topology.nodes.filter((n: Json) => n.member).map((n: Json) => n.id), [self])
      assert.ok(Array.isArray(topology.connections))

      const discovered = await expectJson(await call(d, 'POST', '/api/v1/network/discover'))
      assert.deepEqual({ ...discovered, peers: 0 }, { success: true, members: 1, found: 0, connected: [], failed: [], peers: 0 })

      const metrics = await expectJson(await call(d, 'GET', '/api/v1/network/metrics'))
      assert.equal(typeof metrics.peers, 'number')
      assert.ok(Array.isArray(metrics.latency))
      assert.equal(typeof metrics.bytes.sent, 'number')
      assert.equal(typeof metrics.bytes.received, 'number')
    })

    it('answers the consensus status', async () => {
      const status = await expectJson(await call(d, 'GET', '/api/v1/consensus/status'))
      assert.equal(status.leader, self)
      assert.equal(status.role, 'leader')
      assert.equal(status.is_leader, true)
      assert.deepEqual(status.voters, [self])
      assert.deepEqual(status.learners, [])
      assert.ok(status.applied_index > 0)
      assert.ok(status.commit_index >= status.applied_index)
    })

    it('commits a model update by vote and rejects a stale one with 409 and code 1003', async () => {
      const next = await addContent(d, 'model weights v2\n')
      const vote = await expectJson(await call(d, 'POST', '/api/v1/consensus/vote', { model_id: 'tiny:1', model_cid: next, expected_version: 1 }))
      assert.equal(vote.accepted, true)
      assert.equal(vote.version, 2)
      assert.equal(vote.model_cid, next)
      const rejected = await expectError(await call(d, 'POST', '/api/v1/consensus/vote', { model_id: 'tiny:1', model_hash: modelCid, expected_version: 1 }), 409, 'ConsensusRejectedError', 1003)
      // Document 003's name of the code, as its node and training routes give it.
      assert.equal((rejected as ErrorEnvelope & { code?: string }).code, 'CONSENSUS_FAILED')
      await expectError(await call(d, 'POST', '/api/v1/consensus/vote', { model_id: 'nope', model_cid: next }), 404, 'ModelNotFoundError')
      await expectError(await call(d, 'POST', '/api/v1/consensus/vote', { model_id: 'tiny:1' }), 400, 'IPFSValidationError')
      await expectError(await call(d, 'POST', '/api/v1/consensus/vote', { model_id: 'tiny:1', model_cid: 'notacid' }), 400, 'IPFSValidationError')
    })

    it('lists the decision history', async () => {
      const history = await expectJson(await call(d, 'GET', '/api/v1/consensus/history'))
      assert.equal(history.count, history.decisions.length)
      assert.ok(history.decisions.some((x: Json) => x.outcome === 'rejected'))
      for (const x of history.decisions) for (const key of ['index', 'term', 'timestamp', 'proposer', 'op', 'outcome', 'summary']) assert.ok(key in x, key)
      const limited = await expectJson(await call(d, 'GET', '/api/v1/consensus/history?limit=1&local=true'))
      assert.equal(limited.decisions.length, 1)
      const since = history.decisions.at(-1).index
      const later = await expectJson(await call(d, 'GET', `/api/v1/consensus/history?since=${since}`))
      assert.ok(later.decisions.every((x: Json) => x.index >= since))
      await expectError(await call(d, 'GET', '/api/v1/consensus/history?limit=0'), 422, 'ValidationError')
    })
  })

  describe('document 001: status, peers, resources', () => {
    it('answers /api/status', async () => {
      const status = await expectJson(await call(d, 'GET', '/api/status'))
      assert.equal(status.status, 'healthy')
      assert.equal(typeof status.uptime, 'number')
      assert.equal(status.version, d.node.version().version)
      assert.equal(typeof status.network.peers, 'number')
      assert.ok(status.resources.cpu >= 0 && status.resources.cpu <= 100)
      assert.ok(status.resources.memory > 0 && status.resources.memory <= 100)
    })

    it('answers /api/peers without this node', async () => {
      const body = await expectJson(await call(d, 'GET', '/api/peers'))
      assert.ok(Array.isArray(body.peers))
      assert.ok(body.peers.every((p: Json) => p.id !== self))
    })

    it('reads and sets the allocation', async () => {
      const set = await expectJson(await call(d, 'POST', '/api/resources', { cpu: 15, storage: 8 }))
      assert.equal(set.success, true)
      assert.equal(set.allocation.cpu, 15)
      assert.equal(set.allocation.storage, 8)
      const got = await expectJson(await call(d, 'GET', '/api/resources'))
      assert.equal(got.allocation.cpu, 15)
      for (const key of ['cpu', 'memory', 'storage']) assert.equal(typeof got.usage[key], 'number', key)
      assert.deepEqual(got.limits, { cpu: 90, memory: 100, gpu: 100, storage: 70 }, 'the config\'s limits, 100 where it sets none')
      const above = await expectJson(await call(d, 'POST', '/api/resources', { cpu: 20, storage: 75 }), 400)
      assert.match(above.error.message, /storage: 75 % is above this node's limit of 70 %/)
      assert.equal((await expectJson(await call(d, 'GET', '/api/resources'))).allocation.cpu, 15, 'nothing of a refused allocation was set')
      // Document 001's error form, as on its task routes.
      for (const bad of [{ cpu: 150 }, {}, { ram: 5 }, 'cpu=5']) {
        const { error } = await expectJson(await call(d, 'POST', '/api/resources', bad), 400)
        assert.equal(error.code, 'INVALID_REQUEST', JSON.stringify(error))
        assert.ok(error.message.length > 0 && error.details != null, JSON.stringify(error))
        assert.ok(!Number.isNaN(Date.parse(error.timestamp)), JSON.stringify(error))
      }
    })
  })

  describe('document 004: clients', () => {
    it('lists nodes as clients and shows one with its tasks', async () => {
      const list = await expectJson(await call(d, 'GET', '/api/clients'))
      assert.equal(list.total, 1)
      const [client] = list.clients
      assert.equal(client.id, self)
      assert.equal(client.status, 'active')
      assert.ok(client.resources.cpu.cores >= 1)
      assert.ok(client.resources.ram.total > client.resources.ram.used)
      assert.ok(Array.isArray(client.resources.gpu))

      const one = await expectJson(await call(d, 'GET', `/api/clients/${self}`))
      assert.equal(one.id, self)
      assert.ok(Array.isArray(one.tasks))
      assert.equal(typeof one.performance.completed_tasks, 'number')
      // Document 004's error form, details an object.
      const missing = await expectJson(await call(d, 'GET', `/api/clients/${STRANGER}`), 404) as { error: { code: string, details: object } }
      assert.equal(missing.error.code, 'NODE_NOT_FOUND')
      assert.deepEqual(missing.error.details, { type: 'NodeNotFoundError' })
    })
  })

  it('documents every cluster route in the OpenAPI document, with tags', async () => {
    const doc = await expectJson(await call(d, 'GET', '/api/v0/openapi.json'))
    const routes: Array<[string, string]> = [
      ['/api/v0/cluster/pins', 'get'], ['/api/v0/cluster/pin/add', 'post'], ['/api/v0/cluster/pin/rm', 'post'],
      ['/api/v0/cluster/status', 'get'], ['/api/v0/cluster/peers', 'get'],
      ['/api/distributed/status', 'get'], ['/api/v1/cluster/status', 'get'], ['/api/distributed/nodes', 'get'],
      ['/api/distributed/models', 'get'], ['/api/distributed/models/{name}/replicas', 'get'], ['/api/distributed/metrics', 'get'],
      ['/api/distributed/requests', 'get'], ['/api/distributed/replication/status', 'get'],
      ['/api/distributed/rebalance', 'post'], ['/api/distributed/migrate', 'post'],
      ['/api/v1/nodes', 'get'], ['/api/v1/nodes', 'post'], ['/api/v1/nodes/{id}', 'get'], ['/api/v1/nodes/{id}', 'delete'],
      ['/api/v1/nodes/{id}/drain', 'post'], ['/api/v1/nodes/{id}/undrain', 'post'],
      ['/api/v1/network/topology', 'get'], ['/api/v1/network/discover', 'post'], ['/api/v1/network/metrics', 'get'],
      ['/api/v1/consensus/status', 'get'], ['/api/v1/consensus/vote', 'post'], ['/api/v1/consensus/history', 'get'],
      ['/api/status', 'get'], ['/api/peers', 'get'], ['/api/resources', 'get'], ['/api/resources', 'post'],
      ['/api/clients', 'get'], ['/api/clients/{id}', 'get'], ['/health/ready', 'get'], ['/health/live', 'get']
    ]
    for (const [path, method] of routes) {
      const op = doc.paths[path]?.[method]
      assert.ok(op != null, `${method} ${path} is not documented`)
      assert.ok(op.tags?.length > 0, `${method} ${path} has no tag`)
      assert.ok(op.summary?.length > 0, `${method} ${path} has no summary`)
    }
  })
})
