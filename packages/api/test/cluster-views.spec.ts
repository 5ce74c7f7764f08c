import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  clientJson, externalClientJson, latencies, modelJson, modelsOn, nodeJson, nodeStatus, peersJson, trainingOn, transferId, transfersJson,
  pinStatusJson, replicasJson, replicationState, topologyJson, trafficJson, usage, usagePercent
} from '../src/cluster-views.ts'
import { humanSize } from '../src/size.ts'
import { clientWork } from '../src/task-views.ts'
import { taskIdOf } from '@node-daemon/cluster'
import type { JobRecord, ModelRecord, NodeView, PinRecord, PinStatusReport, Resources } from '@node-daemon/cluster'
import type { PeerConnection } from '@node-daemon/swarm'
import { nodeView } from './helpers/node-view.ts'

const GIB = 1024 ** 3
const CID = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'

const resources: Resources = {
  cpu: { cores: 8, model: 'test cpu', load1: 2, usage: 0.25 },
  memory: { total: 16 * GIB, free: 4 * GIB },
  gpus: [{ id: 0, name: 'gpu', vram: { total: 10 * GIB, used: 2.5 * GIB } }],
  disk: { total: 1000, free: 800 },
  executionProviders: ['cpu']
}

function view (id: string, over: Partial<NodeView> = {}): NodeView {
  return nodeView(id, {
    addrs: ['/ip4/10.0.0.1/tcp/4001'],
    apiUrl: 'http://10.0.0.1:8000',
    resources,
    lastSeen: '2025-01-01T00:01:00.000Z',
    pins: { allocated: 1, pending: 0 },
    matchIndex: 5,
    ...over
  })
}

function pin (cid: string, allocations: string[], modelId?: string): PinRecord {
  return { cid, name: '', replicationFactorMin: 1, replicationFactorMax: 2, allocations, size: 3_800_000_000, modelId, createdAt: 't0', updatedAt: 't1', index: 3 }
}

const model: ModelRecord = {
  modelId: 'llama2:7b',
  kind: 'model',
  modelCID: CID,
  name: 'Llama 2',
  description: '',
  timestamp: 0,
  isActive: true,
  version: 1,
  versions: [],
  owner: 'a',
  size: 0,
  metadata: {}
}

function report (summary: PinStatusReport['summary'], peers: PinStatusReport['peers'] = []): PinStatusReport {
  return { cid: CID, name: '', peers, summary }
}

function conn (peer: string, latencyMs?: number): PeerConnection {
  return { peer, addr: `/ip4/10.0.0.9/tcp/4001/p2p/${peer}`, direction: 'outbound', muxer: '/yamux/1.0.0', streams: 1, protocols: ['/ipfs/id/1.0.0'], latencyMs }
}

function job (jobId: number, worker: string, status: JobRecord['status'], seconds?: number): JobRecord {
  return {
    jobId,
    kind: 'inference',
    status,
    controller: 'c',
    promptCID: CID,
    modelId: 'm',
    modelCID: CID,
    params: {},
    worker,
    submittedAt: '2025-01-01T00:00:00.000Z',
    startedAt: seconds == null ? undefined : '2025-01-01T00:00:00.000Z',
    completedAt: seconds == null ? undefined : new Date(Date.parse('2025-01-01T00:00:00.000Z') + seconds * 1000).toISOString()
  }
}

describe('cluster views', () => {
  it('measures usage as fractions and percent, with VRAM for the GPU', () => {
    assert.deepEqual(usage(resources), { cpu: 0.25, memory: 0.75, gpu: 0.25, disk: 0.2 })
    assert.deepEqual(usagePercent(resources), { cpu: 25, memory: 75, gpu: 25, storage: 20 })
    assert.equal(usage({ ...resources, gpus: [] }).gpu, null)
    assert.equal(usage({ ...resources, memory: { total: 0, free: 0 } }).memory, 0)
  })

  it('prints sizes as Ollama does', () => {
    assert.equal(humanSize(3_800_000_000), '3.8GB')
    assert.equal(humanSize(512), '512B')
    assert.equal(humanSize(1500), '1.5KB')
  })

  it('names a node active, drained or offline', () => {
    assert.equal(nodeStatus(view('a')), 'active')
    assert.equal(nodeStatus(view('a', { drained: true })), 'drained')
    assert.equal(nodeStatus(view('a', { online: false, drained: true })), 'offline')
  })

  it('keeps the lowest latency of each peer and the models allocated to a node', () => {
    assert.deepEqual([...latencies([conn('a', 9), conn('a', 4), conn('b')])], [['a', 4]])
    const pins = [pin(CID, ['a', 'b'], 'm1'), pin('x', ['b'], 'm2'), pin('y', ['a'], 'gone'), pin('z', ['a', 'b'], 'd1')]
    // m3 shares m1's CID, and its pin names m1 only; the model of pin y was deleted; d1 is a dataset, no model.
    const models = [
      { ...model, modelId: 'm1', modelCID: CID }, { ...model, modelId: 'm2', modelCID: 'x' }, { ...model, modelId: 'm3', modelCID: CID },
      { ...model, modelId: 'd1', modelCID: 'z', kind: 'dataset' as const }
    ]
    assert.deepEqual(modelsOn(models, pins, 'a'), ['m1', 'm3'])
    assert.deepEqual(modelsOn(models, pins, 'b'), ['m1', 'm2', 'm3'])
  })

  it('gives each replica still arriving as a transfer, with its rate and time left', () => {
    const now = Date.parse('2026-01-01T00:00:10Z')
    const peers: PinStatusReport['peers'] = [
      { peer: 'a', status: 'pinned', updatedAt: 't' },
      { peer: 'b', status: 'pinning', updatedAt: 't', bytes: 1_000_000_000, startedAt: '2026-01-01T00:00:00Z', attempts: 1 },
      { peer: 'c', status: 'queued', updatedAt: 't' }
    ]
    const [b, c, ...rest] = transfersJson([pin(CID, ['a', 'b', 'c'])], [report('pinning', peers)], [model], now) as any[]
    assert.equal(rest.length, 0, 'a pinned replica is no transfer')
    assert.equal(b.id, transferId(CID, 'b'))
    assert.equal(b.model, 'llama2:7b')
    assert.equal(b.rate, 100_000_000)
    assert.equal(b.eta_seconds, 28)
    assert.equal(b.bytes_total, 3_800_000_000)
    assert.equal(c.rate, 0)
    assert.equal(c.eta_seconds, null)
    assert.notEqual(transferId(CID, 'b'), transferId(CID, 'c'))
  })

  it('gives a node the fields of documents 002 and 003', () => {
    const json = nodeJson(view('a'), { models: ['m1'], latencyMs: 4 }) as Record<string, any>
    assert.equal(json.status, 'active')
    assert.equal(json.address, '10.0.0.1:8000')
    assert.deepEqual(json.addresses, ['/ip4/10.0.0.1/tcp/4001/p2p/a'])
    assert.deepEqual(json.models, ['m1'])
    assert.deepEqual(json.resources, { cpu: 0.25, memory: 0.75, disk: 0.2, gpu: 0.25 })
    assert.equal(json.last_seen, '2025-01-01T00:01:00.000Z')
    assert.deepEqual(json.performance, { training_speed: null, memory_usage: 0.75, network_latency: 4 })
    assert.equal(json.model_hash, null)
    const bare = nodeJson(view('b', { apiUrl: undefined, resources: undefined, lastSeen: undefined }), { models: [] }) as Record<string, any>
    assert.equal(bare.address, null)
    assert.equal(bare.resources, null)
    assert.equal(bare.last_seen, null)
    assert.deepEqual(bare.performance, { training_speed: null, memory_usage: null, network_latency: null })
  })

  it("gives a training node document 003's model_hash and training_speed: its latest checkpoint and share of the rate", () => {
    const training = (status: JobRecord['status'], checkpoints: string[]): JobRecord => ({
      ...job(7, '', status),
      kind: 'training',
      worker: undefined,
      training: {
        coordinator: 'a',
        workers: [{ id: 'a', rank: 0, status: 'training' }, { id: 'b', rank: 1, status: 'training' }, { id: 'c', rank: 2, status: 'dropped' }],
        desired: 'run',
        progress: { step: 3, totalSteps: 10, epoch: 1, totalEpochs: 1, loss: 1, samplesPerSecond: 40, learningRate: 0.1 },
        checkpoints: checkpoints.map((cid, step) => ({ step, cid, at: 't' }))
      }
    })
    const running = [job(1, 'a', 'running'), training('running', ['c1', 'c2'])]
    assert.deepEqual(trainingOn(running, 'b'), { modelHash: 'c2', samplesPerSecond: 20 })
    assert.equal(trainingOn(running, 'c'), undefined, 'a dropped rank trains nothing')
    assert.equal(trainingOn(running, 'z'), undefined)
    assert.deepEqual(trainingOn([training('running', [])], 'a'), { modelHash: CID, samplesPerSecond: 20 })
    assert.equal(trainingOn([training('completed', ['c1'])], 'a'), undefined)
    const json = nodeJson(view('b'), { models: [], training: trainingOn(running, 'b') }) as Record<string, any>
    assert.equal(json.model_hash, 'c2')
    assert.equal(json.performance.training_speed, 20)
  })

  it("keys a pin's statuses by peer, as IPFS Cluster's peer_map", () => {
    const json = pinStatusJson(report('pinning', [
      { peer: 'a', status: 'pinned', updatedAt: 't' },
      { peer: 'b', status: 'error', error: 'boom', attempts: 2, updatedAt: 't' }
    ])) as Record<string, any>
    assert.equal(json.status, 'pinning')
    assert.deepEqual(json.peer_map, {
      a: { status: 'pinned', error: '', attempt_count: 0, timestamp: 't' },
      b: { status: 'error', error: 'boom', attempt_count: 2, timestamp: 't' }
    })
  })

  it('calls a model ready once every allocated node pinned it', () => {
    assert.equal(replicationState(undefined), 'unallocated')
    assert.equal(replicationState(report('pinned')), 'ready')
    assert.equal(replicationState(report('queued')), 'replicating')
    assert.equal(replicationState(report('error')), 'error')
    const json = modelJson(model, pin(CID, ['a', 'b']), report('pinned')) as Record<string, any>
    assert.equal(json.name, 'llama2:7b')
    assert.equal(json.replicas, 2)
    assert.deepEqual(json.nodes, ['a', 'b'])
    assert.equal(json.total_size, '3.8GB')
    assert.equal(json.status, 'ready')
    const unpinned = modelJson(model) as Record<string, any>
    assert.equal(unpinned.replicas, 0)
    assert.equal(unpinned.status, 'unallocated')
  })

  it("lists a model's replicas with each node's status", () => {
    const json = replicasJson(model, pin(CID, ['a', 'b']), report('pinning', [
      { peer: 'a', status: 'pinned', updatedAt: 't' },
      { peer: 'b', status: 'pinning', attempts: 1, updatedAt: 't' },
      { peer: 'c', status: 'remote', updatedAt: 't' }
    ])) as Record<string, any>
    assert.deepEqual(json.replica_status.map((r: any) => [r.node, r.status]), [['a', 'pinned'], ['b', 'pinning']])
  })

  it("lists document 001's peers: other members, then connected strangers", () => {
    const members = [view('self', { isSelf: true }), view('a'), view('b', { connected: false, lastSeen: undefined })]
    const peers = peersJson(members, [conn('a'), conn('x'), conn('x')]) as Array<Record<string, any>>
    assert.deepEqual(peers.map(p => [p.id, p.connected, p.member]), [['a', true, true], ['b', false, true], ['x', true, false]])
    assert.equal(peers[0].address, '/ip4/10.0.0.9/tcp/4001/p2p/a')
    assert.equal(peers[1].address, '/ip4/10.0.0.1/tcp/4001/p2p/b')
    assert.equal(peers[1].lastSeen, null)
  })

  it("draws this node's connections in the topology", () => {
    const json = topologyJson('self', [view('self', { isSelf: true }), view('a')], [conn('a', 3), conn('x')]) as Record<string, any>
    assert.deepEqual(json.nodes.map((n: any) => [n.id, n.member]), [['self', true], ['a', true], ['x', false]])
    assert.deepEqual(json.connections.map((c: any) => [c.from, c.to, c.latency_ms, c.member]), [['self', 'a', 3, true], ['self', 'x', null, false]])
  })

  it("reads libp2p's transfer counters", () => {
    const traffic = trafficJson([
      { labels: { protocol: 'global sent' }, value: 100 },
      { labels: { protocol: 'global received' }, value: 250 },
      { labels: { protocol: '/ipfs/bitswap/1.2.0 sent' }, value: 40 },
      { labels: { protocol: 'nonsense' }, value: 1 }
    ])
    assert.deepEqual(traffic, { sent: 100, received: 250, protocols: { '/ipfs/bitswap/1.2.0': { sent: 40, received: 0 } } })
    assert.deepEqual(trafficJson([]), { sent: 0, received: 0, protocols: {} })
  })

  it('shows a node as document 004 shows a client, in MiB and percent', () => {
    const json = clientJson(view('a')) as Record<string, any>
    assert.deepEqual(json.resources, {
      cpu: { cores: 8, usage: 25 },
      ram: { total: 16384, used: 12288 },
      gpu: [{ id: 0, name: 'gpu', memory: { total: 10240, used: 2560 } }]
    })
    assert.deepEqual((clientJson(view('b', { resources: undefined })) as Record<string, any>).resources, { cpu: {}, ram: {}, gpu: [] })
  })

  it("counts a client's tasks and performance from the jobs it worked on", () => {
    const work = clientWork([job(1, 'a', 'completed', 10), job(2, 'a', 'completed', 30), job(3, 'a', 'failed'), job(4, 'b', 'completed', 5), job(5, 'a', 'running')], 'a')
    assert.deepEqual(work.tasks.map((t: any) => t.id), [1, 2, 3, 5].map(taskIdOf))
    assert.deepEqual(work.tasks.map((t: any) => t.progress), [100, 100, 0, 0])
    assert.deepEqual(work.performance, { completed_tasks: 2, average_time: 20, success_rate: 2 / 3 })
    assert.deepEqual(clientWork([], 'a').performance, { completed_tasks: 0, average_time: null, success_rate: null })
  })

  it('counts a training job among the tasks of every worker that took a rank of it', () => {
    const training = { ...job(6, 'a', 'completed', 10), training: { workers: [{ id: 'a', rank: 0, status: 'training' }, { id: 'w1', via: 'b', rank: 1, status: 'left' }] } } as unknown as JobRecord
    assert.deepEqual(clientWork([training, job(7, 'b', 'completed', 5)], 'w1').tasks.map((t: any) => t.id), [taskIdOf(6)])
  })

  it('shows an external worker with the figures of its last heartbeat and the node it is connected to', () => {
    const json = externalClientJson({ id: 'w1', connectedAt: 't0', lastSeen: 't1', jobId: 4, systemInfo: { cpu_usage: 12.5, ram_usage: 40 }, steps: 9 }, 'node-b') as Record<string, any>
    assert.deepEqual(json, {
      id: 'w1',
      status: 'active',
      external: true,
      via: 'node-b',
      resources: { cpu: { usage: 12.5 }, ram: { usage: 40 }, gpu: [] },
      connected_at: 't0',
      last_seen: 't1',
      job_id: 4,
      steps: 9
    })
  })
})
