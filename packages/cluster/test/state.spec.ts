import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encodeCommand, encodeJoinContext } from '../src/commands.ts'
import { ClusterState, documentKey, JOB_LIMIT } from '../src/state.ts'
import type { Command } from '../src/commands.ts'
import type { Resources } from '../src/types.ts'
import type { ConfState } from '@node-daemon/raft'

const CID_A = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const CID_B = 'bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e'
const CID_C = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'

const GIB = 1 << 30

function resources (freeGiB: number): Resources {
  return {
    cpu: { cores: 4, model: 'test', load1: 0, usage: 0 },
    memory: { total: 8 * GIB, free: 4 * GIB },
    gpus: [],
    disk: { total: 100 * GIB, free: freeGiB * GIB },
    executionProviders: ['cpu']
  }
}

/** Feeds a state entries as the driver would, with consecutive indexes. */
class Log {
  readonly state: ClusterState
  readonly events: Array<{ type: string, detail: any }> = []
  index = 0
  cs: ConfState = { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }

  constructor () {
    this.state = new ClusterState((type, detail) => { this.events.push({ type, detail }) })
  }

  apply (body: Record<string, unknown> & { op: Command['op'] }, by = 'n1'): any {
    return this.state.apply(encodeCommand({ at: 1_700_000_000_000 + this.index, by, ...body } as Command), ++this.index, 1)
  }

  join (id: string, voter = false): void {
    if (voter) this.cs.voters.push(id)
    else this.cs.learners.push(id)
    this.state.applyConfChange({ changes: [{ type: voter ? 'add-node' : 'add-learner-node', nodeId: id }] }, structuredClone(this.cs),
      encodeJoinContext({ addrs: [`/ip4/127.0.0.1/tcp/${4000 + this.index}`], at: 1_700_000_000_000, by: id }), ++this.index, 1)
  }

  remove (id: string): void {
    this.cs.voters = this.cs.voters.filter(v => v !== id)
    this.cs.learners = this.cs.learners.filter(v => v !== id)
    this.state.applyConfChange({ changes: [{ type: 'remove-node', nodeId: id }] }, structuredClone(this.cs), new Uint8Array(0), ++this.index, 1)
  }

  report (id: string, freeGiB = 50, pinQueue = 0): void {
    this.apply({ op: 'node.report', id, addrs: this.state.nodes.get(id)?.addrs ?? [], resources: resources(freeGiB), pinQueue }, id)
  }
}

function cluster (n: number): Log {
  const log = new Log()
  for (let i = 1; i <= n; i++) {
    log.join(`n${i}`, i <= 3)
    log.report(`n${i}`)
  }
  return log
}

describe('ClusterState', () => {
  it('records joining nodes with their roles and addresses', () => {
    const log = cluster(4)
    assert.deepEqual([...log.state.nodes.keys()], ['n1', 'n2', 'n3', 'n4'])
    assert.equal(log.state.nodes.get('n1')?.role, 'voter')
    assert.equal(log.state.nodes.get('n4')?.role, 'learner')
    assert.match(log.state.nodes.get('n2')?.addrs[0] ?? '', /^\/ip4\/127\.0\.0\.1\/tcp\//)
    assert.ok(log.events.some(e => e.type === 'NodeJoined' && e.detail.id === 'n4' && e.detail.role === 'learner'))
  })

  it('keeps a pin\'s meta and origins, replaced only by a pin request that gives them, and through a snapshot', () => {
    const log = cluster(2)
    const origin = '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGC6TvWhfapngX6wvJHMYvKpDMXPb3ZnCZ6dMoaMtimQ5'
    log.apply({ op: 'pin.add', cid: CID_A, name: 'a', rmin: 1, rmax: 2, size: 0, meta: { app: 'x' }, origins: [origin] })
    const again = log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 1, rmax: 2, size: 0 })
    assert.deepEqual([again.name, again.meta, again.origins], ['a', { app: 'x' }, [origin]])
    const replaced = log.apply({ op: 'pin.add', cid: CID_A, name: 'b', rmin: 1, rmax: 2, size: 0, meta: { app: 'y' }, origins: [] })
    assert.deepEqual([replaced.name, replaced.meta, replaced.origins], ['b', { app: 'y' }, []])
    const restored = new ClusterState(() => {})
    restored.restore(log.state.snapshot())
    assert.deepEqual(restored.pins.get(CID_A)?.meta, { app: 'y' })
  })

  it('allocates replicas up to the maximum factor, spread by queue length', () => {
    const log = cluster(3)
    const a = log.apply({ op: 'pin.add', cid: CID_A, name: 'a', rmin: 2, rmax: 2, size: 0 })
    const b = log.apply({ op: 'pin.add', cid: CID_B, name: 'b', rmin: 2, rmax: 2, size: 0 })
    const c = log.apply({ op: 'pin.add', cid: CID_C, name: 'c', rmin: 2, rmax: 2, size: 0 })
    assert.equal(a.allocations.length, 2)
    const counts = new Map<string, number>()
    for (const pin of [a, b, c]) for (const id of pin.allocations) counts.set(id, (counts.get(id) ?? 0) + 1)
    // six replicas over three nodes: two each
    assert.deepEqual([...counts.values()], [2, 2, 2])
  })

  it('adds replicas when a pin\'s replication factor is raised, keeping the ones it has', () => {
    const log = cluster(4)
    const one = log.apply({ op: 'pin.add', cid: CID_A, name: 'a', rmin: 1, rmax: 1, size: 0 })
    const three = log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 3, rmax: 3, size: 0 })
    assert.equal(three.allocations.length, 3)
    assert.equal(three.allocations[0], one.allocations[0])
    assert.equal(three.name, 'a', 'a re-pin without a name keeps the name')
    const two = log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 2, rmax: 2, size: 0 })
    assert.deepEqual(two.allocations, three.allocations.slice(0, 2))
  })

  it('prefers the node with clearly more free space', () => {
    const log = cluster(3)
    log.report('n3', 90)
    const pin = log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 1, rmax: 1, size: 0 })
    assert.deepEqual(pin.allocations, ['n3'])
  })

  it('counts nodes whose free space differs by less than a GiB as equal, even across a multiple of a GiB, and balances them by their queues', () => {
    const log = cluster(2)
    // A shared disk, read at two moments: 51.05 and 50.95 GiB.
    log.report('n1', 51.05)
    log.report('n2', 50.95)
    const cids = [CID_A, CID_B, CID_C, 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy']
    const allocated = cids.map(cid => log.apply({ op: 'pin.add', cid, name: '', rmin: 1, rmax: 1, size: 0 }).allocations[0])
    assert.deepEqual(allocated.filter(id => id === 'n1').length, 2, allocated.join(', '))
  })

  it('rejects a pin that cannot reach its minimum, and fills a pin up as nodes join', () => {
    const log = cluster(2)
    assert.throws(() => log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 3, rmax: 3, size: 0 }), { name: 'InsufficientPeersError' })
    assert.equal(log.state.pins.size, 0)
    const pin = log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 1, rmax: 3, size: 0 })
    assert.equal(pin.allocations.length, 2)
    log.join('n3')
    assert.equal(log.state.pins.get(CID_A)?.allocations.length, 3)
  })

  it('moves the replicas of a node that goes offline or leaves, and of a drained one', () => {
    const log = cluster(5)
    log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 2, rmax: 2, size: 0 })
    const [first, second] = log.state.pins.get(CID_A)?.allocations ?? []
    log.apply({ op: 'node.status', id: first, online: false })
    let allocations = log.state.pins.get(CID_A)?.allocations ?? []
    assert.equal(allocations.length, 2)
    assert.ok(!allocations.includes(first))
    assert.ok(allocations.includes(second), 'the replica that was fine stays')
    log.remove(second)
    allocations = log.state.pins.get(CID_A)?.allocations ?? []
    assert.equal(allocations.length, 2)
    assert.ok(!allocations.includes(second))
    assert.ok(!log.state.nodes.has(second))
    const [third] = allocations
    log.apply({ op: 'node.drain', id: third, drained: true })
    allocations = log.state.pins.get(CID_A)?.allocations ?? []
    assert.ok(!allocations.includes(third))
  })

  it('keeps a replica on an offline node when there is nowhere else to go', () => {
    const log = cluster(2)
    log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 2, rmax: 2, size: 0 })
    log.apply({ op: 'node.status', id: 'n2', online: false })
    assert.deepEqual(log.state.pins.get(CID_A)?.allocations.sort(), ['n1', 'n2'])
  })

  it('rebalances pins from a loaded node, and migrates one replica', () => {
    const log = cluster(2)
    for (const cid of [CID_A, CID_B, CID_C]) log.apply({ op: 'pin.add', cid, name: '', rmin: 1, rmax: 1, size: 0 })
    log.join('n3')
    log.report('n3')
    const moved = log.apply({ op: 'pin.rebalance' })
    const load = new Map<string, number>()
    for (const pin of log.state.pins.values()) for (const id of pin.allocations) load.set(id, (load.get(id) ?? 0) + 1)
    assert.deepEqual([...load.values()].sort(), [1, 1, 1])
    assert.ok(moved.length >= 1)
    const pin = log.state.pins.get(CID_A)
    const to = ['n1', 'n2', 'n3'].find(id => !(pin?.allocations.includes(id) ?? false)) as string
    const after = log.apply({ op: 'pin.migrate', cid: CID_A, from: pin?.allocations[0], to })
    assert.deepEqual(after.allocations, [to])
    const member = ['n1', 'n2', 'n3'].find(id => id !== to) as string
    assert.throws(() => log.apply({ op: 'pin.migrate', cid: CID_A, from: member, to: pin?.allocations[0] }), { name: 'InvalidClusterRequestError' })
    // A node the cluster lacks is named as such, as an unknown `to` is.
    assert.throws(() => log.apply({ op: 'pin.migrate', cid: CID_A, from: 'n9', to: member }), { name: 'NodeNotFoundError' })
  })

  it('allocates a pin to one more node, which a rebalance keeps', () => {
    const log = cluster(3)
    const pin = log.apply({ op: 'pin.add', cid: CID_A, name: 'a', rmin: 1, rmax: 1, size: 10 })
    const to = ['n1', 'n2', 'n3'].find(id => !pin.allocations.includes(id)) as string
    const after = log.apply({ op: 'pin.allocate', cid: CID_A, to })
    assert.deepEqual(after.allocations, [...pin.allocations, to])
    assert.equal(after.replicationFactorMax, 2)
    log.apply({ op: 'pin.rebalance' })
    assert.ok(log.state.pins.get(CID_A)?.allocations.includes(to))
    assert.deepEqual(log.apply({ op: 'pin.allocate', cid: CID_A, to }).allocations, after.allocations, 'allocating again changes nothing')
    assert.throws(() => log.apply({ op: 'pin.allocate', cid: CID_B, to }), { name: 'PinNotFoundError' })
    assert.throws(() => log.apply({ op: 'pin.allocate', cid: CID_A, to: 'n9' }), { name: 'NodeNotFoundError' })
  })

  it('takes one node\'s replica of a pin away, and not the last one', () => {
    const log = cluster(3)
    const pin = log.apply({ op: 'pin.add', cid: CID_A, name: 'a', rmin: -1, rmax: -1, size: 10 })
    assert.equal(pin.allocations.length, 3)
    const after = log.apply({ op: 'pin.deallocate', cid: CID_A, from: 'n2' })
    assert.deepEqual(after.allocations, pin.allocations.filter((id: string) => id !== 'n2'))
    log.apply({ op: 'pin.rebalance' })
    assert.ok(!(log.state.pins.get(CID_A)?.allocations.includes('n2') ?? true), 'a rebalance does not give it back')
    assert.throws(() => log.apply({ op: 'pin.deallocate', cid: CID_A, from: 'n2' }), { name: 'PinNotFoundError' })
    log.apply({ op: 'pin.deallocate', cid: CID_A, from: 'n1' })
    assert.throws(() => log.apply({ op: 'pin.deallocate', cid: CID_A, from: 'n3' }), { name: 'InvalidClusterRequestError' })
  })

  it('registers versioned models, pins them, and rejects a stale update', () => {
    const log = cluster(3)
    const model = log.apply({ op: 'model.register', modelId: 'm', modelCID: CID_A, name: 'M', description: 'd', kind: 'model', metadata: {}, size: 0, replicationFactor: 2 })
    assert.equal(model.version, 1)
    assert.equal(log.state.pins.get(CID_A)?.allocations.length, 2)
    assert.throws(() => log.apply({ op: 'model.register', modelId: 'm', modelCID: CID_B, name: 'M', description: '', kind: 'model', metadata: {}, size: 0, replicationFactor: 2 }), { name: 'ModelExistsError' })
    const v2 = log.apply({ op: 'model.update', modelId: 'm', modelCID: CID_B, size: 0, expectedVersion: 1 })
    assert.equal(v2.version, 2)
    assert.equal(v2.modelCID, CID_B)
    assert.ok(!log.state.pins.has(CID_A), 'the old version is unpinned')
    assert.equal(log.state.pins.get(CID_B)?.modelId, 'm')
    assert.throws(() => log.apply({ op: 'model.update', modelId: 'm', modelCID: CID_C, size: 0, expectedVersion: 1 }), { name: 'ConsensusRejectedError' })
    const last = log.state.decisions(0, 1000).at(-1)
    assert.equal(last?.outcome, 'rejected')
    assert.equal(last?.op, 'model.update')
    assert.match(last?.summary ?? '', /ConsensusRejectedError/)
    log.apply({ op: 'model.active', modelId: 'm', active: false })
    assert.throws(() => log.apply({ op: 'job.submit', kind: 'inference', promptCID: CID_C, modelId: 'm', params: {} }), { name: 'ModelNotFoundError' })
  })

  it("keeps a registration's framework and license, replaces them on an update that gives them, and reads records made without them", () => {
    const log = cluster(1)
    const model = log.apply({ op: 'model.register', modelId: 'm', modelCID: CID_A, name: 'M', description: 'd', kind: 'model', metadata: {}, size: 0, replicationFactor: 1, framework: 'onnx', license: 'MIT' })
    assert.deepEqual([model.framework, model.license], ['onnx', 'MIT'])
    const relicensed = log.apply({ op: 'model.update', modelId: 'm', modelCID: CID_A, size: 0, license: 'Apache-2.0' })
    assert.deepEqual([relicensed.version, relicensed.framework, relicensed.license], [2, 'onnx', 'Apache-2.0'], 'a new license on the same bytes is a new version; the framework stays')
    const moved = log.apply({ op: 'model.update', modelId: 'm', modelCID: CID_B, size: 0 })
    assert.deepEqual([moved.version, moved.framework, moved.license], [3, 'onnx', 'Apache-2.0'], 'an update that gives neither keeps both')

    // A snapshot taken before the fields existed: its records have neither, and restore as they were.
    const old = new ClusterState()
    old.restore(log.state.snapshot())
    const bare = old.models.get('m')
    assert.ok(bare != null)
    delete bare.framework
    delete bare.license
    const restored = new ClusterState()
    restored.restore(old.snapshot())
    assert.deepEqual([restored.models.get('m')?.framework, restored.models.get('m')?.license], [undefined, undefined])
    assert.ok(!('framework' in (restored.models.get('m') ?? {})), 'nothing is made up for an old record')
  })

  it('numbers jobs monotonically and emits the coordinator events', () => {
    const log = cluster(1)
    log.apply({ op: 'model.register', modelId: 'm', modelCID: CID_A, name: 'M', description: '', kind: 'model', metadata: {}, size: 0, replicationFactor: 1 })
    const j1 = log.apply({ op: 'job.submit', kind: 'inference', promptCID: CID_B, modelId: 'm', params: {} })
    const j2 = log.apply({ op: 'job.submit', kind: 'inference', promptCID: CID_C, modelCID: CID_A, params: {} })
    assert.deepEqual([j1.jobId, j2.jobId], [1, 2])
    assert.equal(j2.modelId, 'm', 'submitPromptWithCID finds the model by CID')
    const done = log.apply({ op: 'job.complete', jobId: 1, responseCID: CID_C }, 'n1')
    assert.equal(done.status, 'completed')
    assert.equal(done.worker, 'n1')
    assert.throws(() => log.apply({ op: 'job.complete', jobId: 1, responseCID: CID_C }), { name: 'JobStateError' })
    assert.throws(() => log.apply({ op: 'job.fail', jobId: 7, error: 'x' }), { name: 'JobNotFoundError' })
    assert.deepEqual(log.events.filter(e => e.type.startsWith('Inference')).map(e => [e.type, e.detail.jobId]),
      [['InferenceRequested', 1], ['InferenceRequested', 2], ['InferenceCompleted', 1]])
  })

  it('lets a worker take a job, and another take it over, until it is finished', () => {
    const log = cluster(2)
    const job = log.apply({ op: 'job.submit', kind: 'inference', promptCID: CID_B, modelCID: CID_A, params: {} })
    assert.equal(log.apply({ op: 'job.start', jobId: job.jobId }, 'n1').worker, 'n1')
    const taken = log.apply({ op: 'job.start', jobId: job.jobId }, 'n2')
    assert.equal(taken.status, 'running')
    assert.equal(taken.worker, 'n2')
    const done = log.apply({ op: 'job.complete', jobId: job.jobId, responseCID: CID_C, metrics: { evalTokens: 5 } }, 'n2')
    assert.deepEqual(done.metrics, { evalTokens: 5 })
    assert.throws(() => log.apply({ op: 'job.start', jobId: job.jobId }, 'n1'), { name: 'JobStateError' })
  })

  it('cancels an open inference job for good, and no training job', () => {
    const log = cluster(2)
    const job = log.apply({ op: 'job.submit', kind: 'inference', promptCID: CID_B, modelCID: CID_A, params: {} })
    log.apply({ op: 'job.start', jobId: job.jobId }, 'n2')
    const cancelled = log.apply({ op: 'job.cancel', jobId: job.jobId, reason: 'the client went away' }, 'n1')
    assert.deepEqual([cancelled.status, cancelled.error, cancelled.worker], ['cancelled', 'the client went away', 'n2'])
    assert.ok(cancelled.completedAt != null)
    // A worker that finishes late, or starts late, finds the job ended.
    assert.throws(() => log.apply({ op: 'job.complete', jobId: job.jobId, responseCID: CID_C }, 'n2'), { name: 'JobStateError' })
    assert.throws(() => log.apply({ op: 'job.start', jobId: job.jobId }, 'n2'), { name: 'JobStateError' })
    assert.throws(() => log.apply({ op: 'job.cancel', jobId: job.jobId, reason: 'again' }), { name: 'JobStateError' })
    assert.deepEqual(log.events.filter(e => e.type === 'JobFailed').map(e => e.detail), [{ jobId: job.jobId, error: 'the client went away' }])
    const training = log.apply({ op: 'training.submit', spec: {}, modelCID: CID_A, datasetCID: CID_B, coordinator: 'n1', workers: ['n1'] })
    assert.throws(() => log.apply({ op: 'job.cancel', jobId: training.jobId, reason: 'x' }), { name: 'JobStateError' })
  })

  it('adds external workers to a training job and keeps their joins and leaves against a stale coordinator report', () => {
    const log = cluster(2)
    const job = log.apply({ op: 'training.submit', spec: {}, modelCID: CID_A, datasetCID: CID_B, coordinator: 'n1', workers: ['n1'] })
    const workers = (): any[] => log.state.jobs.get(job.jobId)?.training?.workers.map(w => [w.id, w.rank, w.status, w.via]) ?? []
    assert.throws(() => log.apply({ op: 'training.join', jobId: job.jobId, worker: 'n1', via: 'n2' }), { name: 'JobStateError' }, 'a node is not an external worker')
    assert.throws(() => log.apply({ op: 'training.join', jobId: job.jobId, worker: 'w', via: 'n9' }), { name: 'NodeNotFoundError' })
    log.apply({ op: 'training.join', jobId: job.jobId, worker: 'w', via: 'n2' }, 'n2')
    assert.deepEqual(workers(), [['n1', 0, 'training', undefined], ['w', 1, 'joining', 'n2']])

    // The coordinator has not read the job since: its report leaves the joiner as it is.
    const own = { id: 'n1', rank: 0, status: 'training' }
    log.apply({ op: 'training.progress', jobId: job.jobId, status: 'running', workers: [own] })
    assert.deepEqual(workers(), [['n1', 0, 'training', undefined], ['w', 1, 'joining', 'n2']])
    // Once it took the worker in, its report says so.
    log.apply({ op: 'training.progress', jobId: job.jobId, status: 'running', workers: [own, { id: 'w', via: 'n2', rank: 1, status: 'training' }] })
    assert.deepEqual(workers(), [['n1', 0, 'training', undefined], ['w', 1, 'training', 'n2']])

    log.apply({ op: 'training.leave', jobId: job.jobId, worker: 'w' }, 'n2')
    log.apply({ op: 'training.progress', jobId: job.jobId, status: 'running', workers: [own, { id: 'w', via: 'n2', rank: 1, status: 'training' }] })
    assert.deepEqual(workers(), [['n1', 0, 'training', undefined], ['w', 1, 'left', 'n2']], 'a leave outlives a report made before it was seen')
    // Back again, through the other node, it keeps its rank; a report of the leave does not undo the return.
    log.apply({ op: 'training.join', jobId: job.jobId, worker: 'w', via: 'n1' }, 'n1')
    log.apply({ op: 'training.progress', jobId: job.jobId, status: 'running', workers: [own, { id: 'w', via: 'n2', rank: 1, status: 'left' }] })
    assert.deepEqual(workers(), [['n1', 0, 'training', undefined], ['w', 1, 'joining', 'n1']])
    assert.throws(() => log.apply({ op: 'training.leave', jobId: job.jobId, worker: 'n1' }), { name: 'JobStateError' })

    assert.throws(() => log.apply({ op: 'job.remove', jobId: job.jobId }), { name: 'JobStateError' }, 'an open job is not removed')
    log.apply({ op: 'training.finish', jobId: job.jobId, status: 'stopped' })
    assert.throws(() => log.apply({ op: 'training.join', jobId: job.jobId, worker: 'x', via: 'n1' }), { name: 'JobStateError' })
    log.apply({ op: 'job.remove', jobId: job.jobId })
    assert.equal(log.state.jobs.has(job.jobId), false)
    assert.throws(() => log.apply({ op: 'job.remove', jobId: job.jobId }), { name: 'JobNotFoundError' })
  })

  it('keeps the job table bounded, dropping the oldest finished jobs', () => {
    const log = cluster(1)
    const open = log.apply({ op: 'job.submit', kind: 'inference', promptCID: CID_B, modelCID: CID_A, params: {} })
    for (let i = 0; i < JOB_LIMIT * 1.2; i++) {
      const j = log.apply({ op: 'job.submit', kind: 'inference', promptCID: CID_B, modelCID: CID_A, params: {} })
      log.apply({ op: 'job.fail', jobId: j.jobId, error: 'x' })
    }
    assert.ok(log.state.jobs.size <= JOB_LIMIT * 1.1 + 1)
    assert.ok(log.state.jobs.has(open.jobId), 'a job still open is kept')
    assert.ok(!log.state.jobs.has(open.jobId + 1), 'the oldest finished jobs go first')
  })

  it('validates allocations and replication factors', () => {
    const log = cluster(1)
    assert.throws(() => log.apply({ op: 'node.allocation', id: 'n1', allocation: { cpu: 150 } }), { name: 'InvalidClusterRequestError' })
    assert.throws(() => log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 3, rmax: 2, size: 0 }), { name: 'InvalidClusterRequestError' })
    assert.throws(() => log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 0, rmax: 2, size: 0 }), { name: 'InvalidClusterRequestError' })
    assert.throws(() => log.apply({ op: 'node.status', id: 'nx', online: false }), { name: 'NodeNotFoundError' })
    const node = log.apply({ op: 'node.allocation', id: 'n1', allocation: { cpu: 15, storage: 8 } })
    assert.deepEqual(node.allocation, { cpu: 15, memory: 100, gpu: 100, storage: 8 })
  })

  it('gives every replica the same state, and a snapshot restores it exactly', () => {
    const a = cluster(4)
    const b = cluster(4)
    for (const log of [a, b]) {
      log.apply({ op: 'pin.add', cid: CID_A, name: 'x', rmin: 1, rmax: 3, size: 10 })
      log.apply({ op: 'pin.add', cid: CID_B, name: 'y', rmin: -1, rmax: -1, size: 0 })
      log.apply({ op: 'node.status', id: 'n2', online: false })
      log.apply({ op: 'job.submit', kind: 'training', promptCID: CID_C, modelCID: CID_A, params: { epochs: 1 } })
    }
    assert.deepEqual(a.state.snapshot(), b.state.snapshot())
    const restored = new ClusterState()
    restored.restore(a.state.snapshot())
    assert.deepEqual(restored.snapshot(), a.state.snapshot())
    // the per-node index agrees with the pins themselves, before and after the snapshot
    for (const state of [a.state, restored]) {
      for (const id of ['n1', 'n2', 'n3', 'n4']) {
        const scanned = [...state.pins.values()].filter(p => p.allocations.includes(id)).map(p => p.cid).sort()
        assert.deepEqual(state.pinsAllocatedTo(id).map(p => p.cid).sort(), scanned, id)
      }
    }
    assert.equal(restored.appliedIndex, a.index)
    assert.equal(restored.pins.get(CID_B)?.allocations.length, 3, '-1 means every online node')
    // the job counter survives the snapshot
    const job = restored.apply(encodeCommand({ op: 'job.submit', kind: 'inference', promptCID: CID_C, modelCID: CID_A, params: {}, at: 0, by: 'n1' }), a.index + 1, 1) as { jobId: number }
    assert.equal(job.jobId, 2)
  })

  it('keeps a queryable history of decisions', () => {
    const log = cluster(2)
    log.apply({ op: 'pin.add', cid: CID_A, name: '', rmin: 1, rmax: 1, size: 0 })
    const all = log.state.decisions(0, 1000)
    assert.ok(all.some(d => d.op === 'membership'))
    const pins = log.state.decisions(0, 10, 'pin.add')
    assert.equal(pins.length, 1)
    assert.equal(pins[0].index, log.index)
    assert.equal(pins[0].term, 1)
    assert.equal(pins[0].proposer, 'n1')
    assert.equal(log.state.decisions(log.index + 1).length, 0)
  })

  it('applies a batch in order as one entry, each command with its own outcome and decision, as the same commands one by one', () => {
    const pins = [CID_A, CID_B, CID_C].map(cid => ({ op: 'pin.add' as const, cid, name: '', rmin: 1, rmax: 1, size: 0 }))
    const apart = cluster(3)
    const oneByOne = pins.map(pin => apart.apply(pin).allocations)
    const log = cluster(3)
    const onApplied: number[] = []
    log.state.onApplied = (index) => { onApplied.push(index) }
    const commands = [pins[0], { op: 'pin.add', cid: CID_B, name: '', rmin: 2, rmax: 1, size: 0 }, pins[1], { op: 'batch', commands: [] }, pins[2]]
      .map((body, i) => ({ at: 1_700_000_000_000 + i, by: 'n2', ...body }))
    const outcomes = log.apply({ op: 'batch', commands }, 'n2')
    assert.equal(log.state.appliedIndex, log.index)
    assert.deepEqual(onApplied, [log.index], 'one entry, one wake-up')
    assert.deepEqual([outcomes[0], outcomes[2], outcomes[4]].map(o => o.value.allocations), oneByOne, 'allocated as one by one')
    assert.equal(outcomes[1].error.name, 'InvalidClusterRequestError')
    assert.match(outcomes[3].error.message, /batch/)
    assert.deepEqual([...log.state.pins.keys()].sort(), [CID_A, CID_B, CID_C].sort())
    const decisions = log.state.decisions(log.index)
    assert.deepEqual(decisions.map(d => [d.op, d.outcome, d.proposer, d.index]), [
      ['pin.add', 'committed', 'n2', log.index], ['pin.add', 'rejected', 'n2', log.index], ['pin.add', 'committed', 'n2', log.index],
      ['batch', 'rejected', 'n2', log.index], ['pin.add', 'committed', 'n2', log.index]
    ])
  })

  describe('search collections', () => {
    const create = { op: 'collection.create' as const, name: 'novels', embeddingModel: 'tiny-embed:latest', chunking: { chunkTokens: 64, overlapTokens: 8 }, metadataSchema: { year: 'number' }, replicationFactor: 2 }

    it('records a collection, pins each head with its replication factor and unpins the head it replaces', () => {
      const log = cluster(3)
      assert.equal(log.apply(create).version, 0)
      assert.throws(() => log.apply(create), { name: 'CollectionExistsError' })
      const v1 = log.apply({ op: 'collection.head', name: 'novels', headCID: CID_A, expectedHead: '', chunks: 10, size: 100 })
      assert.equal(v1.version, 1)
      assert.equal(log.state.pins.get(CID_A)?.allocations.length, 2)
      assert.equal(log.state.pins.get(CID_A)?.collection, 'novels')
      log.apply({ op: 'collection.head', name: 'novels', headCID: CID_B, expectedHead: CID_A, chunks: 20, size: 200 })
      assert.equal(log.state.pins.has(CID_A), false, 'the old snapshot is no longer pinned')
      assert.equal(log.state.collections.get('novels')?.chunks, 20)
      assert.ok(log.events.some(e => e.type === 'CollectionChanged' && e.detail.headCID === CID_B && e.detail.version === 2))
    })

    it('rejects a head made from a version that is no longer the head, so concurrent writers lose nothing', () => {
      const log = cluster(3)
      log.apply(create)
      log.apply({ op: 'collection.head', name: 'novels', headCID: CID_A, expectedHead: '', chunks: 1, size: 1 })
      assert.throws(() => log.apply({ op: 'collection.head', name: 'novels', headCID: CID_B, expectedHead: '', chunks: 1, size: 1 }), { name: 'ConsensusRejectedError' })
      assert.equal(log.state.collections.get('novels')?.headCID, CID_A)
    })

    it('refuses bad names, chunking and metadata schemas, and removes a collection with its pin', () => {
      const log = cluster(3)
      assert.throws(() => log.apply({ ...create, name: '../x' }), { name: 'InvalidClusterRequestError' })
      assert.throws(() => log.apply({ ...create, chunking: { chunkTokens: 16, overlapTokens: 16 } }), { name: 'InvalidClusterRequestError' })
      assert.throws(() => log.apply({ ...create, metadataSchema: { year: 'date' } }), { name: 'InvalidClusterRequestError' })
      assert.throws(() => log.apply({ op: 'collection.remove', name: 'novels' }), { name: 'CollectionNotFoundError' })
      log.apply(create)
      log.apply({ op: 'collection.head', name: 'novels', headCID: CID_C, expectedHead: '', chunks: 1, size: 1 })
      log.apply({ op: 'collection.remove', name: 'novels' })
      assert.equal(log.state.collections.size, 0)
      assert.equal(log.state.pins.has(CID_C), false)
    })

    it('keeps collections through a snapshot, and restores a snapshot made before they existed', () => {
      const log = cluster(3)
      log.apply(create)
      const restored = new ClusterState()
      restored.restore(log.state.snapshot())
      assert.deepEqual(restored.collections.get('novels'), log.state.collections.get('novels'))
      const old = JSON.parse(new TextDecoder().decode(log.state.snapshot()))
      delete old.collections
      restored.restore(new TextEncoder().encode(JSON.stringify(old)))
      assert.equal(restored.collections.size, 0)
    })
  })
})

describe('ClusterState: stored documents', () => {
  const put = (log: Log, version: string, cid: string, extra: Record<string, unknown> = {}): any =>
    log.apply({ op: 'document.put', family: 'langchain/chain', name: 'qa', version, cid, metadata: {}, size: 10, replicationFactor: 2, ...extra })

  it('records versions in order, pins each, and never changes one', () => {
    const log = cluster(3)
    put(log, '1.0', CID_A)
    const record = put(log, '2.0', CID_B)
    assert.deepEqual(record.versions.map((v: any) => [v.version, v.cid, v.by]), [['1.0', CID_A, 'n1'], ['2.0', CID_B, 'n1']])
    assert.equal(log.state.pins.get(CID_A)?.allocations.length, 2)
    assert.equal(log.state.pins.get(CID_B)?.name, 'langchain/chain:qa@2.0')
    assert.equal(put(log, '1.0', CID_A).versions.length, 2, 'the same version and CID again is no change')
    assert.throws(() => put(log, '1.0', CID_C), { name: 'DocumentVersionExistsError' })
    assert.equal(log.state.pins.has(CID_C), false)
    // another family keeps its own names, whatever its name and theirs hold
    log.apply({ op: 'document.put', family: 'llamaindex/index', name: 'qa', version: '1.0', cid: CID_C, metadata: {}, size: 0, replicationFactor: 1 })
    log.apply({ op: 'document.put', family: 'langchain', name: 'chain/qa', version: '1.0', cid: CID_C, metadata: {}, size: 0, replicationFactor: 1 })
    assert.equal(log.state.documents.size, 3)
    assert.equal(log.state.documents.get(documentKey('langchain/chain', 'qa'))?.versions.length, 2)
  })

  it('refuses malformed names and leaves the state as it was', () => {
    const log = cluster(1)
    for (const bad of [{ name: '' }, { version: 'v'.repeat(129) }, { family: 7 }, { metadata: [] }, { metadata: { note: 'x'.repeat(20_000) } }, { replicationFactor: 'two' }]) {
      assert.throws(() => put(log, '1', CID_A, bad), { name: 'InvalidClusterRequestError' }, JSON.stringify(bad))
    }
    assert.equal(log.state.documents.size, 0)
    assert.equal(log.state.pins.size, 0)
  })

  it('restores documents from a snapshot, and a snapshot made before them', () => {
    const log = cluster(2)
    put(log, '1.0', CID_A)
    const restored = new ClusterState()
    restored.restore(log.state.snapshot())
    assert.deepEqual(restored.snapshot(), log.state.snapshot())
    assert.equal(restored.documents.get(documentKey('langchain/chain', 'qa'))?.versions[0].cid, CID_A)
    const { documents: _documents, ...older } = JSON.parse(new TextDecoder().decode(log.state.snapshot()))
    restored.restore(new TextEncoder().encode(JSON.stringify(older)))
    assert.equal(restored.documents.size, 0)
    assert.equal(restored.pins.size, 1)
  })
})
