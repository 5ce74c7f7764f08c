/**
 * The replicated state machine: nodes, pinset, model registry, jobs and the
 * history of decisions, changed only by applying committed commands in log
 * order. Nothing here reads a clock, a random source or the network, so every
 * node holds the same state after the same entries.
 */
import { allocate, eligible } from './allocate.ts'
import { decodeCommand, decodeJoinContext } from './commands.ts'
import { CredentialNotFoundError } from '@node-daemon/access'
import { CollectionExistsError, CollectionNotFoundError, ConsensusRejectedError, DocumentVersionExistsError, InvalidClusterRequestError, JobNotFoundError, JobStateError, ModelExistsError, ModelNotFoundError, NodeNotFoundError, PinNotFoundError } from './errors.ts'
import type { Candidate } from './allocate.ts'
import type { Command } from './commands.ts'
import { FINAL_JOB_STATUSES } from './types.ts'
import type { Allocation, ClusterEvents, CollectionRecord, Decision, DocumentRecord, JobRecord, ModelRecord, NodeRecord, PinRecord, RegisteredInfo, SigningKey, TrainingRecord } from './types.ts'
import type { StoredCredential } from '@node-daemon/access'
import type { StateMachine } from '@node-daemon/raft-node'
import type { ConfChange, ConfState } from '@node-daemon/raft'

export const DEFAULT_ALLOCATION: Allocation = { cpu: 100, memory: 100, gpu: 100, storage: 100 }

/** Decisions kept for the history; older ones fall off. */
export const HISTORY_LIMIT = 10_000
/** Finished jobs kept in the state; their prompts and responses stay in IPFS. */
export const JOB_LIMIT = 10_000
/** Checkpoints a training job's record lists, the newest. */
export const CHECKPOINT_LIMIT = 20

const SNAPSHOT_VERSION = 1

/** Per-node bookkeeping the allocator needs, reset when the node reports. */
interface Queue {
  queuedBytes: number
  allocatedSinceReport: number
  reportedQueue: number
}

interface Snapshot {
  version: number
  /** Absent in snapshots made before credentials were replicated. */
  credentials?: StoredCredential[]
  signingKeys?: Array<[string, SigningKey]>
  /** Absent in snapshots made before search collections existed. */
  collections?: CollectionRecord[]
  nodes: NodeRecord[]
  queues: Array<[string, Queue]>
  pins: PinRecord[]
  models: ModelRecord[]
  /** Absent in snapshots made before documents were stored. */
  documents?: DocumentRecord[]
  jobs: JobRecord[]
  nextJobId: number
  history: Decision[]
  appliedIndex: number
}

/** What applying a batch gives each of its commands: its value, or the error it was rejected with. */
export type BatchOutcome = { value: unknown } | { error: Error }

export type EmitFn = <K extends keyof ClusterEvents>(type: K, detail: ClusterEvents[K]) => void

const iso = (ms: number): string => new Date(ms).toISOString()

export class ClusterState implements StateMachine {
  readonly nodes = new Map<string, NodeRecord>()
  readonly pins = new Map<string, PinRecord>()
  readonly models = new Map<string, ModelRecord>()
  readonly jobs = new Map<number, JobRecord>()
  /** Stored documents by documentKey(family, name). */
  readonly documents = new Map<string, DocumentRecord>()
  /** Search collections by name. */
  readonly collections = new Map<string, CollectionRecord>()
  /** API keys, bearer tokens and users made through any node, by id; hashes only. */
  readonly credentials = new Map<string, StoredCredential>()
  readonly #bySecretHash = new Map<string, StoredCredential>()
  readonly #users = new Map<string, StoredCredential>()
  /** Each node's public JWT key, by kid. */
  readonly signingKeys = new Map<string, SigningKey>()
  private queues = new Map<string, Queue>()
  /** CIDs allocated to each node: each node's tracker asks after every entry, so a scan of the pinset would grow with its square. */
  private readonly allocated = new Map<string, Set<string>>()
  private nextJobId = 1
  private history: Decision[] = []
  /** Index of the last entry applied, conf changes included. */
  appliedIndex = 0
  private readonly emit: EmitFn
  /** Called after each applied entry. */
  onApplied?: (index: number) => void
  /** Called when a pin's allocations may have changed, or without a cid when any may have (a snapshot was restored): wakes the pin tracker. */
  onAllocationChange?: (cid?: string) => void

  constructor (emit: EmitFn = () => {}) {
    this.emit = emit
  }

  // ---- StateMachine

  /** A batch's value is each command's outcome, in order: one command rejected leaves the others applied. */
  apply (bytes: Uint8Array, index: number, term: number): unknown {
    let command: Command
    try {
      command = decodeCommand(bytes)
    } catch {
      this.appliedIndex = index
      throw new InvalidClusterRequestError(`entry ${index} is not a cluster command`)
    }
    try {
      if (command.op !== 'batch') return this.applyCommand(command, index, term)
      return command.commands.map((inner): BatchOutcome => {
        try {
          return { value: this.applyCommand(inner, index, term) }
        } catch (err: any) {
          return { error: err }
        }
      })
    } finally {
      this.appliedIndex = index
      this.onApplied?.(index)
    }
  }

  /** Applies one command and records the decision, under the index of the entry that carries it. */
  private applyCommand (command: Command, index: number, term: number): unknown {
    const decision: Decision = { index, term, at: iso(command.at), proposer: command.by, op: command.op, outcome: 'committed', summary: '' }
    try {
      const { result, summary } = this.dispatch(command, index)
      decision.summary = summary
      return result
    } catch (err: any) {
      decision.outcome = 'rejected'
      decision.summary = `${err.name ?? 'Error'}: ${err.message}`
      throw err
    } finally {
      this.record(decision)
    }
  }

  applyConfChange (cc: ConfChange, cs: ConfState, context: Uint8Array, index: number, term: number): void {
    let join: ReturnType<typeof decodeJoinContext>
    try {
      join = decodeJoinContext(context)
    } catch {
      join = undefined
    }
    const at = join?.at ?? 0
    const members = new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext])
    const summary: string[] = []
    for (const change of cc.changes) {
      const id = change.nodeId
      if (change.type === 'remove-node') {
        if (this.nodes.delete(id)) {
          this.queues.delete(id)
          this.reallocateFrom(id, index, at)
          this.emit('NodeLeft', { id })
        }
        summary.push(`removed ${id}`)
        continue
      }
      if (!this.nodes.has(id)) {
        this.nodes.set(id, {
          id,
          addrs: join?.addrs ?? [],
          apiUrl: join?.apiUrl,
          role: 'learner',
          online: true,
          joinedAt: iso(at),
          registered: true,
          allocation: { ...DEFAULT_ALLOCATION },
          drained: false,
          ...(join?.token == null ? {} : { tokenRole: join.token.role })
        })
        this.queues.set(id, { queuedBytes: 0, allocatedSinceReport: 0, reportedQueue: 0 })
      }
      summary.push(`${change.type === 'add-node' ? 'voter' : 'learner'} ${id}${join?.token == null ? '' : ` (${join.token.role} token of ${join.token.issuer})`}`)
    }
    for (const node of this.nodes.values()) {
      if (!members.has(node.id)) continue
      const role = cs.voters.includes(node.id) ? 'voter' : 'learner'
      const joined = node.role !== role || cc.changes.some(c => c.nodeId === node.id && c.type !== 'remove-node')
      node.role = role
      if (joined) this.emit('NodeJoined', { id: node.id, role })
    }
    // Nodes that joined learn of the under-replicated pins.
    this.fillUnderReplicated(index, at)
    this.record({ index, term, at: iso(at), proposer: join?.by ?? '', op: 'membership', outcome: 'committed', summary: summary.join(', ') })
    this.appliedIndex = index
    this.onApplied?.(index)
  }

  snapshot (): Uint8Array {
    const snap: Snapshot = {
      version: SNAPSHOT_VERSION,
      nodes: [...this.nodes.values()],
      queues: [...this.queues],
      pins: [...this.pins.values()],
      models: [...this.models.values()],
      documents: [...this.documents.values()],
      jobs: [...this.jobs.values()],
      nextJobId: this.nextJobId,
      history: this.history,
      appliedIndex: this.appliedIndex,
      credentials: [...this.credentials.values()],
      signingKeys: [...this.signingKeys],
      collections: [...this.collections.values()]
    }
    return new TextEncoder().encode(JSON.stringify(snap))
  }

  restore (data: Uint8Array): void {
    const snap: Snapshot = JSON.parse(new TextDecoder().decode(data))
    if (snap.version !== SNAPSHOT_VERSION) throw new InvalidClusterRequestError(`snapshot version ${snap.version} is not ${SNAPSHOT_VERSION}`)
    this.nodes.clear()
    for (const n of snap.nodes) this.nodes.set(n.id, n)
    this.queues = new Map(snap.queues)
    this.pins.clear()
    this.allocated.clear()
    for (const p of snap.pins) {
      this.pins.set(p.cid, p)
      this.index(p, [], p.allocations)
    }
    this.models.clear()
    for (const m of snap.models) this.models.set(m.modelId, m)
    this.documents.clear()
    for (const d of snap.documents ?? []) this.documents.set(documentKey(d.family, d.name), d)
    this.jobs.clear()
    for (const j of snap.jobs) this.jobs.set(j.jobId, j)
    this.nextJobId = snap.nextJobId
    this.credentials.clear()
    this.#bySecretHash.clear()
    this.#users.clear()
    for (const c of snap.credentials ?? []) this.#putCredential(c)
    this.signingKeys.clear()
    for (const [kid, jwk] of snap.signingKeys ?? []) this.signingKeys.set(kid, jwk)
    this.collections.clear()
    for (const c of snap.collections ?? []) this.collections.set(c.name, c)
    this.history = snap.history
    this.appliedIndex = snap.appliedIndex
    this.onAllocationChange?.()
    this.onApplied?.(this.appliedIndex)
  }

  // ---- queries

  /** Decisions at or after `since`, oldest first. */
  decisions (since = 0, limit = 100, op?: string): Decision[] {
    const out: Decision[] = []
    // history is in index order: binary search would do, but a scan from the end is short for recent queries
    let start = this.history.length
    while (start > 0 && this.history[start - 1].index >= since) start--
    for (let i = start; i < this.history.length && out.length < limit; i++) {
      if (op == null || this.history[i].op === op) out.push(this.history[i])
    }
    return out
  }

  // ---- credentials: the directory access control looks secrets up in

  bySecretHash (hash: string): StoredCredential | undefined {
    return this.#bySecretHash.get(hash)
  }

  user (name: string): StoredCredential | undefined {
    return this.#users.get(name)
  }

  count (): number {
    return this.credentials.size
  }

  #putCredential (c: StoredCredential): void {
    this.credentials.set(c.id, c)
    if (c.kind === 'user') this.#users.set(c.name, c)
    else this.#bySecretHash.set(c.hash, c)
  }

  #removeCredential (c: StoredCredential): void {
    this.credentials.delete(c.id)
    if (c.kind === 'user') this.#users.delete(c.name)
    else this.#bySecretHash.delete(c.hash)
  }

  pinsAllocatedTo (id: string): PinRecord[] {
    return [...this.allocated.get(id) ?? []].map(cid => this.pins.get(cid) as PinRecord)
  }

  private index (pin: PinRecord, from: string[], to: string[]): void {
    for (const id of from) this.allocated.get(id)?.delete(pin.cid)
    for (const id of to) {
      let set = this.allocated.get(id)
      if (set == null) this.allocated.set(id, set = new Set())
      set.add(pin.cid)
    }
    this.onAllocationChange?.(pin.cid)
  }

  // ---- applying commands

  private dispatch (c: Command, index: number): { result: unknown, summary: string } {
    switch (c.op) {
      case 'node.report': {
        const node = this.requireNode(c.id)
        node.addrs = c.addrs
        node.apiUrl = c.apiUrl
        node.resources = c.resources
        this.queues.set(c.id, { queuedBytes: 0, allocatedSinceReport: 0, reportedQueue: c.pinQueue })
        return { result: clone(node), summary: `${c.id} reported ${Math.round(c.resources.disk.free / 1e6)} MB free, ${c.pinQueue} queued` }
      }
      case 'node.status': {
        const node = this.requireNode(c.id)
        if (node.online === c.online) return { result: clone(node), summary: `${c.id} already ${c.online ? 'online' : 'offline'}` }
        node.online = c.online
        this.emit('NodeStatus', { id: c.id, online: c.online })
        if (c.online) this.fillUnderReplicated(index, c.at)
        else this.reallocateFrom(c.id, index, c.at)
        return { result: clone(node), summary: `${c.id} ${c.online ? 'online' : 'offline'}` }
      }
      case 'node.drain': {
        const node = this.requireNode(c.id)
        node.drained = c.drained
        if (c.drained) this.reallocateFrom(c.id, index, c.at)
        else this.fillUnderReplicated(index, c.at)
        return { result: clone(node), summary: `${c.id} ${c.drained ? 'drained' : 'undrained'}` }
      }
      case 'node.allocation': {
        const node = this.requireNode(c.id)
        for (const key of ['cpu', 'memory', 'gpu', 'storage'] as const) {
          const v = c.allocation[key]
          if (v == null) continue
          if (!Number.isFinite(v) || v < 0 || v > 100) throw new InvalidClusterRequestError(`${key} allocation must be a percentage from 0 to 100, got ${v}`)
          node.allocation[key] = v
        }
        const wasRegistered = node.registered
        if (c.registered != null) node.registered = c.registered
        if (wasRegistered && !node.registered) this.reallocateFrom(c.id, index, c.at)
        if (!wasRegistered && node.registered) this.fillUnderReplicated(index, c.at)
        this.emit('ResourcesUpdated', { id: c.id, allocation: { ...node.allocation } })
        return { result: clone(node), summary: `${c.id} allows cpu ${node.allocation.cpu}%, memory ${node.allocation.memory}%, gpu ${node.allocation.gpu}%, storage ${node.allocation.storage}%${node.registered ? '' : ' (deregistered)'}` }
      }
      case 'pin.add': {
        const pin = this.addPin(c.cid, c.name, c.rmin, c.rmax, c.size, index, c.at)
        // Given, they replace what the pin had, as a new pin request with its own meta and origins does.
        if (c.meta != null) pin.meta = c.meta
        if (c.origins != null) pin.origins = c.origins
        return { result: clone(pin), summary: `pin ${c.cid} on ${pin.allocations.length} node(s)` }
      }
      case 'pin.rm': {
        if (!this.pins.has(c.cid)) throw new PinNotFoundError(`${c.cid} is not pinned in the cluster`)
        this.removePin(c.cid)
        return { result: undefined, summary: `unpin ${c.cid}` }
      }
      case 'pin.rebalance': {
        const moved = this.rebalance(index, c.at)
        return { result: moved.map(clone), summary: `rebalanced ${moved.length} pin(s)` }
      }
      case 'pin.migrate': {
        const pin = this.pins.get(c.cid)
        if (pin == null) throw new PinNotFoundError(`${c.cid} is not pinned in the cluster`)
        if (!pin.allocations.includes(c.from)) {
          this.requireNode(c.from)
          throw new InvalidClusterRequestError(`${c.cid} is not allocated to ${c.from}`)
        }
        const to = this.requireNode(c.to)
        if (!eligible(to)) throw new InvalidClusterRequestError(`${c.to} cannot take pins now (offline, drained or deregistered)`)
        if (pin.allocations.includes(c.to)) throw new InvalidClusterRequestError(`${c.cid} is already allocated to ${c.to}`)
        this.setAllocations(pin, pin.allocations.map(id => id === c.from ? c.to : id), index, c.at)
        return { result: clone(pin), summary: `moved ${c.cid} from ${c.from} to ${c.to}` }
      }
      case 'pin.allocate': {
        const pin = this.pins.get(c.cid)
        if (pin == null) throw new PinNotFoundError(`${c.cid} is not pinned in the cluster`)
        const to = this.requireNode(c.to)
        if (pin.allocations.includes(c.to)) return { result: clone(pin), summary: `${c.cid} is already allocated to ${c.to}` }
        if (!eligible(to)) throw new InvalidClusterRequestError(`${c.to} cannot take pins now (offline, drained or deregistered)`)
        // The replica asked for is one more wanted, so that no rebalance takes it away again.
        if (pin.replicationFactorMax !== -1) pin.replicationFactorMax = Math.max(pin.replicationFactorMax, pin.allocations.length + 1)
        this.setAllocations(pin, [...pin.allocations, c.to], index, c.at)
        return { result: clone(pin), summary: `allocated ${c.cid} to ${c.to}` }
      }
      case 'pin.deallocate': {
        const pin = this.pins.get(c.cid)
        if (pin == null) throw new PinNotFoundError(`${c.cid} is not pinned in the cluster`)
        if (!pin.allocations.includes(c.from)) throw new PinNotFoundError(`${c.cid} is not allocated to ${c.from}`)
        if (pin.allocations.length === 1) throw new InvalidClusterRequestError(`${c.from} holds the only replica of ${c.cid}: unpin it instead`)
        // One replica fewer wanted, so that filling under-replicated pins does not give it back.
        const left = pin.allocations.length - 1
        if (pin.replicationFactorMax === -1 || pin.replicationFactorMax > left) pin.replicationFactorMax = left
        pin.replicationFactorMin = Math.min(pin.replicationFactorMin === -1 ? left : pin.replicationFactorMin, left)
        this.setAllocations(pin, pin.allocations.filter(id => id !== c.from), index, c.at)
        return { result: clone(pin), summary: `took ${c.cid} from ${c.from}` }
      }
      case 'model.register': {
        if (this.models.has(c.modelId)) throw new ModelExistsError(`model ${c.modelId} is registered already`)
        const model: ModelRecord = {
          modelId: c.modelId,
          kind: c.kind,
          modelCID: c.modelCID,
          name: c.name,
          description: c.description,
          timestamp: Math.floor(c.at / 1000),
          isActive: true,
          version: 1,
          versions: [{ version: 1, cid: c.modelCID, at: iso(c.at), by: c.by }],
          owner: c.by,
          size: c.size,
          metadata: c.metadata,
          ...registeredInfo(c)
        }
        this.pinModel(model, c.replicationFactor, index, c.at)
        this.models.set(c.modelId, model)
        this.emit('ModelRegistered', { modelId: c.modelId, modelCID: c.modelCID })
        return { result: clone(model), summary: `register ${c.kind} ${c.modelId} = ${c.modelCID}` }
      }
      case 'model.update': {
        const model = this.requireModel(c.modelId)
        if (c.expectedVersion != null && c.expectedVersion !== model.version) {
          throw new ConsensusRejectedError(`model ${c.modelId} is at version ${model.version}, not ${c.expectedVersion}`)
        }
        const info = registeredInfo(c)
        const described = c.description != null || c.metadata != null || Object.keys(info).length > 0
        if (c.description != null) model.description = c.description
        if (c.metadata != null) model.metadata = c.metadata
        Object.assign(model, info)
        if (model.modelCID === c.modelCID) {
          if (!described) return { result: clone(model), summary: `model ${c.modelId} unchanged` }
          // New metadata on the same bytes (a Modelfile's parameters, say) is a new version too.
          model.version++
          model.timestamp = Math.floor(c.at / 1000)
          model.versions.push({ version: model.version, cid: c.modelCID, at: iso(c.at), by: c.by })
          this.emit('ModelUpdated', { modelId: c.modelId, modelCID: c.modelCID, version: model.version, by: c.by })
          return { result: clone(model), summary: `model ${c.modelId} v${model.version}: metadata` }
        }
        const old = model.modelCID
        const rf = this.pins.get(old)?.replicationFactorMax ?? 3
        model.modelCID = c.modelCID
        model.version++
        model.timestamp = Math.floor(c.at / 1000)
        model.size = c.size
        model.versions.push({ version: model.version, cid: c.modelCID, at: iso(c.at), by: c.by })
        this.pinModel(model, rf, index, c.at)
        if (this.pins.get(old)?.modelId === c.modelId && !this.cidInUse(old, c.modelId)) this.removePin(old)
        this.emit('ModelUpdated', { modelId: c.modelId, modelCID: c.modelCID, version: model.version, by: c.by })
        return { result: clone(model), summary: `model ${c.modelId} v${model.version} = ${c.modelCID}` }
      }
      case 'model.active': {
        const model = this.requireModel(c.modelId)
        model.isActive = c.active
        return { result: clone(model), summary: `model ${c.modelId} ${c.active ? 'activated' : 'deactivated'}` }
      }
      case 'model.remove': {
        const model = this.requireModel(c.modelId)
        this.models.delete(c.modelId)
        if (this.pins.get(model.modelCID)?.modelId === c.modelId && !this.cidInUse(model.modelCID, c.modelId)) this.removePin(model.modelCID)
        return { result: undefined, summary: `model ${c.modelId} removed` }
      }
      case 'document.put': {
        checkDocumentName(c)
        const key = documentKey(c.family, c.name)
        const record = this.documents.get(key) ?? { family: c.family, name: c.name, versions: [] }
        const known = record.versions.find(v => v.version === c.version)
        if (known != null) {
          if (known.cid !== c.cid) throw new DocumentVersionExistsError(`${c.family} ${c.name} version ${c.version} is stored already as ${known.cid}`)
          return { result: clone(record), summary: `${c.family} ${c.name}@${c.version} unchanged` }
        }
        // Pinned first: a pin refused leaves the record as it was.
        this.pinReplicated(c.cid, `${c.family}:${c.name}@${c.version}`, c.replicationFactor, c.size, index, c.at)
        record.versions.push({ version: c.version, cid: c.cid, at: iso(c.at), by: c.by, metadata: c.metadata })
        this.documents.set(key, record)
        return { result: clone(record), summary: `${c.family} ${c.name}@${c.version} = ${c.cid}` }
      }
      case 'job.submit': {
        let modelId = c.modelId ?? ''
        let modelCID = c.modelCID ?? ''
        if (c.modelId != null) {
          const model = this.requireModel(c.modelId)
          if (!model.isActive) throw new ModelNotFoundError(`model ${c.modelId} is not active`)
          modelCID = model.modelCID
        } else if (c.modelCID == null) {
          throw new InvalidClusterRequestError('a job needs a modelId or a modelCID')
        } else {
          modelId = [...this.models.values()].find(m => m.modelCID === c.modelCID)?.modelId ?? ''
        }
        const job: JobRecord = {
          jobId: this.nextJobId++,
          kind: c.kind,
          status: 'requested',
          controller: c.by,
          promptCID: c.promptCID,
          modelId,
          modelCID,
          params: c.params,
          submittedAt: iso(c.at)
        }
        this.jobs.set(job.jobId, job)
        this.pruneJobs()
        this.emit('InferenceRequested', { jobId: job.jobId, controller: c.by, promptCID: c.promptCID, modelId, modelCID })
        return { result: clone(job), summary: `job ${job.jobId}: ${c.kind} of ${modelId === '' ? modelCID : modelId} on ${c.promptCID}` }
      }
      case 'job.start': {
        // A job whose worker died is started again by another, which takes it over.
        const job = this.openJob(c.jobId)
        job.status = 'running'
        job.worker = c.by
        job.startedAt = iso(c.at)
        this.emit('JobStarted', { jobId: job.jobId, worker: c.by })
        return { result: clone(job), summary: `job ${job.jobId} started by ${c.by}` }
      }
      case 'job.complete': {
        const job = this.openJob(c.jobId)
        job.status = 'completed'
        job.worker = c.by
        job.responseCID = c.responseCID
        if (c.metrics != null) job.metrics = c.metrics
        job.completedAt = iso(c.at)
        this.emit('InferenceCompleted', { jobId: job.jobId, worker: c.by, responseCID: c.responseCID })
        return { result: clone(job), summary: `job ${job.jobId} completed by ${c.by}: ${c.responseCID}` }
      }
      case 'job.fail': {
        const job = this.openJob(c.jobId)
        job.status = 'failed'
        job.worker = c.by
        job.error = c.error
        job.completedAt = iso(c.at)
        this.emit('JobFailed', { jobId: job.jobId, error: c.error })
        return { result: clone(job), summary: `job ${job.jobId} failed: ${c.error}` }
      }
      case 'job.cancel': {
        const job = this.openJob(c.jobId)
        // A training job stops through its coordinator, which checkpoints it first.
        if (job.kind !== 'inference') throw new JobStateError(`job ${c.jobId} is a ${job.kind} job; stop it instead`)
        job.status = 'cancelled'
        job.error = c.reason
        job.completedAt = iso(c.at)
        this.emit('JobFailed', { jobId: job.jobId, error: c.reason })
        return { result: clone(job), summary: `job ${job.jobId} cancelled: ${c.reason}` }
      }
      case 'training.submit': {
        if (c.workers.length === 0) throw new InvalidClusterRequestError('a training job needs at least one worker')
        for (const id of [c.coordinator, ...c.workers]) this.requireNode(id)
        const job: JobRecord = {
          jobId: this.nextJobId++,
          kind: 'training',
          status: 'requested',
          controller: c.by,
          promptCID: c.datasetCID,
          modelId: c.modelId ?? '',
          modelCID: c.modelCID,
          params: c.spec,
          submittedAt: iso(c.at),
          training: { coordinator: c.coordinator, workers: c.workers.map((id, rank) => ({ id, rank, status: 'training' })), desired: 'run', checkpoints: [] }
        }
        this.jobs.set(job.jobId, job)
        this.pruneJobs()
        this.emitTraining(job)
        return { result: clone(job), summary: `job ${job.jobId}: training of ${c.modelId ?? c.modelCID} on ${c.datasetCID}, coordinated by ${c.coordinator} with ${c.workers.length} workers` }
      }
      case 'training.progress': {
        const { job, training } = this.openTraining(c.jobId, c.by)
        if (job.status === 'requested') job.startedAt = iso(c.at)
        job.status = c.status
        // The coordinator reports the workers it runs; it learns of external workers joining and leaving only at checkpoints, so what they did since stands.
        const recorded = new Map(training.workers.map(w => [w.id, w]))
        const merged = c.workers.map(w => {
          const r = recorded.get(w.id)
          return (r?.status === 'left' && w.status !== 'left') || (r?.status === 'joining' && w.status === 'left') ? r : w
        })
        training.workers = [...merged, ...training.workers.filter(w => !c.workers.some(x => x.id === w.id))].sort((a, b) => a.rank - b.rank)
        if (c.progress != null) training.progress = c.progress
        if (c.checkpoint != null) this.addCheckpoint(training, c.checkpoint, c.at)
        this.emitTraining(job, c.checkpoint?.cid)
        return { result: clone(job), summary: `job ${job.jobId} ${c.status} at step ${training.progress?.step ?? 0}${c.checkpoint == null ? '' : `, checkpoint ${c.checkpoint.cid}`}` }
      }
      case 'training.control': {
        const { job, training } = this.openTraining(c.jobId)
        training.desired = c.action === 'resume' ? 'run' : c.action
        this.emitTraining(job)
        return { result: clone(job), summary: `job ${job.jobId}: ${c.action} asked by ${c.by}` }
      }
      case 'training.finish': {
        const { job, training } = this.openTraining(c.jobId, c.by)
        job.status = c.status
        if (c.checkpoint != null) this.addCheckpoint(training, c.checkpoint, c.at)
        if (c.responseCID != null) job.responseCID = c.responseCID
        job.completedAt = iso(c.at)
        this.emitTraining(job, c.checkpoint?.cid)
        return { result: clone(job), summary: `job ${job.jobId} ${c.status} at step ${training.progress?.step ?? 0}` }
      }
      case 'training.handover': {
        const { job, training } = this.openTraining(c.jobId)
        // Several nodes may see the coordinator go: the first handover wins, the others no longer match.
        if (training.coordinator !== c.from) throw new JobStateError(`job ${job.jobId} is coordinated by ${training.coordinator}, not ${c.from}`)
        this.requireNode(c.to)
        training.coordinator = c.to
        this.emitTraining(job)
        return { result: clone(job), summary: `job ${job.jobId} coordinated by ${c.to} instead of ${c.from}` }
      }
      case 'training.saved': {
        const job = this.jobs.get(c.jobId)
        if (job?.training == null) throw new JobNotFoundError(`training job ${c.jobId} does not exist`)
        this.requireModel(c.modelId)
        job.training.modelId = c.modelId
        return { result: clone(job), summary: `job ${job.jobId} saved as model ${c.modelId}` }
      }
      case 'training.join': {
        const { job, training } = this.openTraining(c.jobId)
        this.requireNode(c.via)
        const known = training.workers.find(w => w.id === c.worker)
        if (known != null && known.via == null) throw new JobStateError(`${c.worker} is a node of job ${job.jobId}, not an external worker`)
        if (known?.status === 'training' && known.via === c.via) return { result: clone(job), summary: `job ${job.jobId}: ${c.worker} is already training` }
        // A worker that comes back keeps its rank; a new one takes the next.
        const rank = known?.rank ?? Math.max(-1, ...training.workers.map(w => w.rank)) + 1
        const worker = { id: c.worker, via: c.via, rank, status: 'joining' as const, ...(known?.drops == null ? {} : { drops: known.drops }) }
        training.workers = [...training.workers.filter(w => w.id !== c.worker), worker].sort((a, b) => a.rank - b.rank)
        this.emitTraining(job)
        return { result: clone(job), summary: `job ${job.jobId}: external worker ${c.worker} joins through ${c.via} as rank ${rank}` }
      }
      case 'training.leave': {
        const { job, training } = this.openTraining(c.jobId)
        const worker = training.workers.find(w => w.id === c.worker)
        if (worker?.via == null) throw new JobStateError(`${c.worker} is not an external worker of job ${job.jobId}`)
        worker.status = 'left'
        this.emitTraining(job)
        return { result: clone(job), summary: `job ${job.jobId}: external worker ${c.worker} left` }
      }
      case 'job.remove': {
        const job = this.jobs.get(c.jobId)
        if (job == null) throw new JobNotFoundError(`job ${c.jobId} does not exist`)
        if (!FINAL_JOB_STATUSES.includes(job.status)) throw new JobStateError(`job ${c.jobId} is ${job.status}; stop it before removing it`)
        this.jobs.delete(c.jobId)
        return { result: clone(job), summary: `job ${c.jobId} removed` }
      }
      case 'credential.put': {
        const credential = checkCredential(c.credential)
        // A user added again under the same name is the same user with a new password.
        const replaced = credential.kind === 'user' ? this.#users.get(credential.name) : this.credentials.get(credential.id)
        if (replaced != null) this.#removeCredential(replaced)
        this.#putCredential(credential)
        return { result: { ...credential, hash: '' }, summary: `${credential.kind} ${credential.name} (${credential.id}) ${replaced == null ? 'added' : 'replaced'}` }
      }
      case 'credential.remove': {
        const credential = this.credentials.get(c.id)
        if (credential == null) throw new CredentialNotFoundError(`no credential has the id ${JSON.stringify(c.id)}`)
        this.#removeCredential(credential)
        return { result: { ...credential, hash: '' }, summary: `${credential.kind} ${credential.name} (${credential.id}) revoked` }
      }
      case 'collection.create': {
        if (this.collections.has(c.name)) throw new CollectionExistsError(`collection ${c.name} exists already`)
        const collection: CollectionRecord = {
          name: checkCollectionName(c.name),
          version: 0,
          embeddingModel: c.embeddingModel,
          chunking: checkChunking(c.chunking),
          metadataSchema: checkMetadataSchema(c.metadataSchema),
          headCID: '',
          replicationFactor: checkReplication(c.replicationFactor),
          chunks: 0,
          createdAt: iso(c.at),
          updatedAt: iso(c.at),
          owner: c.by
        }
        this.collections.set(c.name, collection)
        this.emit('CollectionChanged', { name: c.name, version: 0 })
        return { result: clone(collection), summary: `collection ${c.name} created, embedded with ${c.embeddingModel}` }
      }
      case 'collection.head': {
        const collection = this.requireCollection(c.name)
        if (collection.headCID !== c.expectedHead) {
          throw new ConsensusRejectedError(`collection ${c.name} moved to ${collection.headCID === '' ? 'no head' : collection.headCID} (version ${collection.version}) since ${c.expectedHead === '' ? 'it was empty' : c.expectedHead}`)
        }
        if (c.embeddingModel !== undefined && (typeof c.embeddingModel !== 'string' || c.embeddingModel === '')) throw new InvalidClusterRequestError('a collection\'s embedding model must be a model name')
        const old = collection.headCID
        collection.headCID = c.headCID
        collection.version++
        collection.chunks = c.chunks
        if (c.embeddingModel !== undefined) collection.embeddingModel = c.embeddingModel
        collection.updatedAt = iso(c.at)
        this.pinCollection(collection, c.size, index, c.at)
        if (old !== '' && old !== c.headCID) this.unpinCollection(old, c.name)
        this.emit('CollectionChanged', { name: c.name, version: collection.version, headCID: c.headCID })
        return { result: clone(collection), summary: `collection ${c.name} v${collection.version} = ${c.headCID} (${c.chunks} chunks${c.embeddingModel !== undefined ? `, re-embedded with ${c.embeddingModel}` : ''})` }
      }
      case 'collection.remove': {
        const collection = this.requireCollection(c.name)
        this.collections.delete(c.name)
        if (collection.headCID !== '') this.unpinCollection(collection.headCID, c.name)
        this.emit('CollectionChanged', { name: c.name, version: collection.version })
        return { result: clone(collection), summary: `collection ${c.name} removed` }
      }
      case 'signing-key.put': {
        this.signingKeys.set(c.kid, c.jwk)
        return { result: c.kid, summary: `JWT signing key ${c.kid} of ${c.by}` }
      }
      // apply() opens a batch; one inside another is not one.
      case 'batch':
        throw new InvalidClusterRequestError('a batch may not hold a batch')
      default:
        throw new InvalidClusterRequestError(`unknown cluster command ${JSON.stringify((c as { op: unknown }).op)}`)
    }
  }

  private record (d: Decision): void {
    this.history.push(d)
    if (this.history.length > HISTORY_LIMIT * 1.1) this.history = this.history.slice(-HISTORY_LIMIT)
  }

  private requireNode (id: string): NodeRecord {
    const node = this.nodes.get(id)
    if (node == null) throw new NodeNotFoundError(`node ${id} is not in the cluster`)
    return node
  }

  private requireModel (id: string): ModelRecord {
    const model = this.models.get(id)
    if (model == null) throw new ModelNotFoundError(`model ${id} is not registered`)
    return model
  }

  private requireCollection (name: string): CollectionRecord {
    const collection = this.collections.get(name)
    if (collection == null) throw new CollectionNotFoundError(`collection ${JSON.stringify(name)} does not exist`)
    return collection
  }

  /** Keeps the job table bounded: past JOB_LIMIT jobs, the oldest finished ones go, as the history does. */
  private pruneJobs (): void {
    if (this.jobs.size <= JOB_LIMIT * 1.1) return
    for (const [id, job] of this.jobs) {
      if (this.jobs.size <= JOB_LIMIT) break
      if (FINAL_JOB_STATUSES.includes(job.status)) this.jobs.delete(id)
    }
  }

  /** An unfinished training job; with `coordinator`, only that node may change it. */
  private openTraining (jobId: number, coordinator?: string): { job: JobRecord, training: TrainingRecord } {
    const job = this.openJob(jobId)
    if (job.training == null) throw new JobStateError(`job ${jobId} is not a training job`)
    if (coordinator != null && job.training.coordinator !== coordinator) throw new JobStateError(`job ${jobId} is coordinated by ${job.training.coordinator}, not ${coordinator}`)
    return { job, training: job.training }
  }

  private addCheckpoint (training: TrainingRecord, checkpoint: { step: number, cid: string }, at: number): void {
    training.checkpoints.push({ step: checkpoint.step, cid: checkpoint.cid, at: iso(at) })
    // The record stays small; older checkpoints remain in the consensus history.
    if (training.checkpoints.length > CHECKPOINT_LIMIT) training.checkpoints.splice(0, training.checkpoints.length - CHECKPOINT_LIMIT)
  }

  private emitTraining (job: JobRecord, checkpoint?: string): void {
    const training = job.training as TrainingRecord
    this.emit('TrainingUpdated', { jobId: job.jobId, status: job.status, coordinator: training.coordinator, step: training.progress?.step ?? 0, checkpoint })
  }

  private openJob (jobId: number): JobRecord {
    const job = this.jobs.get(jobId)
    if (job == null) throw new JobNotFoundError(`job ${jobId} does not exist`)
    if (FINAL_JOB_STATUSES.includes(job.status)) throw new JobStateError(`job ${jobId} is ${job.status} already`)
    return job
  }

  private candidates (): Candidate[] {
    const out: Candidate[] = []
    for (const node of this.nodes.values()) {
      if (!eligible(node)) continue
      const q = this.queues.get(node.id)
      out.push({ node, queuedBytes: q?.queuedBytes ?? 0, queue: (q?.reportedQueue ?? 0) + (q?.allocatedSinceReport ?? 0) })
    }
    return out
  }

  private addPin (cid: string, name: string, rmin: number, rmax: number, size: number, index: number, at: number, modelId?: string): PinRecord {
    if (!(rmin === -1 || (Number.isInteger(rmin) && rmin >= 1)) || !(rmax === -1 || (Number.isInteger(rmax) && rmax >= 1))) {
      throw new InvalidClusterRequestError(`replication factors must be -1 or at least 1, got min ${rmin} and max ${rmax}`)
    }
    if (rmax !== -1 && (rmin === -1 || rmin > rmax)) throw new InvalidClusterRequestError(`replication factor min ${rmin} exceeds max ${rmax}`)
    const existing = this.pins.get(cid)
    const allocations = allocate({ rmin, rmax, size, current: existing?.allocations ?? [] }, this.candidates())
    const pin: PinRecord = existing ?? { cid, name, replicationFactorMin: rmin, replicationFactorMax: rmax, allocations: [], size, createdAt: iso(at), updatedAt: iso(at), index }
    pin.name = name === '' ? pin.name : name
    pin.replicationFactorMin = rmin
    pin.replicationFactorMax = rmax
    pin.size = size > 0 ? size : pin.size
    if (modelId != null) pin.modelId = modelId
    this.pins.set(cid, pin)
    this.setAllocations(pin, allocations, index, at)
    return pin
  }

  private removePin (cid: string): void {
    const pin = this.pins.get(cid)
    if (pin != null) this.index(pin, pin.allocations, [])
    this.pins.delete(cid)
    this.emit('PinRemoved', { cid })
  }

  private setAllocations (pin: PinRecord, allocations: string[], index: number, at: number): void {
    const added = allocations.filter(id => !pin.allocations.includes(id))
    for (const id of added) {
      const q = this.queues.get(id)
      if (q == null) continue
      q.allocatedSinceReport++
      q.queuedBytes += pin.size
    }
    const changed = added.length > 0 || allocations.length !== pin.allocations.length
    this.index(pin, pin.allocations, allocations)
    pin.allocations = allocations
    pin.updatedAt = iso(at)
    pin.index = index
    if (changed) this.emit('PinChanged', { cid: pin.cid, allocations: [...allocations] })
  }

  /** A node left, went offline or stopped taking pins: its replicas go elsewhere where they can. */
  private reallocateFrom (id: string, index: number, at: number): void {
    const candidates = this.candidates()
    for (const pin of this.pins.values()) {
      if (!pin.allocations.includes(id)) continue
      const others = pin.allocations.filter(a => a !== id)
      let next: string[]
      try {
        next = allocate({ rmin: pin.replicationFactorMin, rmax: pin.replicationFactorMax, size: pin.size, current: others }, candidates)
      } catch {
        // Too few nodes: keep the replica where it was, to be pinned there again when it returns.
        next = this.nodes.has(id) ? pin.allocations : others
      }
      this.setAllocations(pin, next, index, at)
    }
  }

  /** Pins with fewer replicas than they want take the eligible nodes that now exist. */
  private fillUnderReplicated (index: number, at: number): void {
    const candidates = this.candidates()
    const eligibleCount = candidates.length
    for (const pin of this.pins.values()) {
      const want = pin.replicationFactorMax === -1 ? eligibleCount : pin.replicationFactorMax
      const live = pin.allocations.filter(id => candidates.some(c => c.node.id === id))
      if (live.length >= want && live.length === pin.allocations.length) continue
      try {
        const next = allocate({ rmin: pin.replicationFactorMin, rmax: pin.replicationFactorMax, size: pin.size, current: live }, candidates)
        if (next.length > live.length || live.length !== pin.allocations.length) this.setAllocations(pin, next, index, at)
      } catch {
        // still too few nodes; nothing to do until more come
      }
    }
  }

  /**
   * Moves replicas from the most to the least loaded eligible nodes until
   * their pin counts differ by at most one, and fills under-replicated pins.
   */
  private rebalance (index: number, at: number): PinRecord[] {
    const moved = new Set<PinRecord>()
    const before = new Map([...this.pins.values()].map(p => [p.cid, p.allocations.join()]))
    this.fillUnderReplicated(index, at)
    const ids = this.candidates().map(c => c.node.id).sort()
    if (ids.length > 1) {
      const load = new Map(ids.map(id => [id, 0]))
      for (const pin of this.pins.values()) for (const id of pin.allocations) if (load.has(id)) load.set(id, (load.get(id) ?? 0) + 1)
      const pins = [...this.pins.values()].sort((a, b) => (a.cid < b.cid ? -1 : 1))
      for (let round = 0; round < pins.length * ids.length; round++) {
        const sorted = [...ids].sort((a, b) => (load.get(b) ?? 0) - (load.get(a) ?? 0) || (a < b ? -1 : 1))
        const most = sorted[0]
        const least = sorted[sorted.length - 1]
        if ((load.get(most) ?? 0) - (load.get(least) ?? 0) <= 1) break
        const pin = pins.find(p => p.allocations.includes(most) && !p.allocations.includes(least))
        if (pin == null) break
        this.setAllocations(pin, pin.allocations.map(id => id === most ? least : id), index, at)
        load.set(most, (load.get(most) ?? 0) - 1)
        load.set(least, (load.get(least) ?? 0) + 1)
      }
    }
    for (const pin of this.pins.values()) if (before.get(pin.cid) !== pin.allocations.join()) moved.add(pin)
    return [...moved]
  }

  private pinModel (model: ModelRecord, replicationFactor: number, index: number, at: number): void {
    this.pinReplicated(model.modelCID, `${model.kind}:${model.modelId}@${model.version}`, replicationFactor, model.size, index, at, model.modelId)
  }

  /** Pins content the state records, on as many nodes as wanted and as exist now (-1: every node); more nodes fill it up later. */
  private pinReplicated (cid: string, name: string, replicationFactor: number, size: number, index: number, at: number, modelId?: string): void {
    const eligibleCount = this.candidates().length
    const rmax = replicationFactor === -1 ? -1 : Math.max(1, replicationFactor)
    this.addPin(cid, name, rmax === -1 ? 1 : Math.min(rmax, Math.max(1, eligibleCount)), rmax, size, index, at, modelId)
  }

  private pinCollection (collection: CollectionRecord, size: number, index: number, at: number): void {
    const rmax = collection.replicationFactor
    const rmin = rmax === -1 ? 1 : Math.min(rmax, Math.max(1, this.candidates().length))
    const pin = this.addPin(collection.headCID, `collection:${collection.name}@${collection.version}`, rmin, rmax, size, index, at)
    pin.collection = collection.name
  }

  /** An old snapshot of a collection is unpinned, unless something else pinned the same CID. */
  private unpinCollection (cid: string, name: string): void {
    const pin = this.pins.get(cid)
    if (pin?.collection === name && pin.modelId == null) this.removePin(cid)
  }

  /** Whether any model other than `exceptModel` still points at `cid`. */
  private cidInUse (cid: string, exceptModel: string): boolean {
    for (const m of this.models.values()) if (m.modelId !== exceptModel && m.modelCID === cid) return true
    return false
  }
}

/** The framework and license a command gives, as strings: a field it leaves out stays as the record has it. */
function registeredInfo (c: RegisteredInfo): RegisteredInfo {
  const info: RegisteredInfo = {}
  if (typeof c.framework === 'string') info.framework = c.framework
  if (typeof c.license === 'string') info.license = c.license
  if (typeof c.account === 'string') info.account = c.account
  return info
}

function clone<T> (value: T): T {
  return structuredClone(value)
}

/** The key of a stored document in the state: unambiguous whatever characters the family and the name hold. */
export function documentKey (family: string, name: string): string {
  return JSON.stringify([family, name])
}

/** A stored document's metadata, as JSON: the log carries names and CIDs, not documents. */
export const MAX_DOCUMENT_METADATA_CHARS = 16_384

/** Names, versions and metadata as the log must carry them, whoever proposed the command. */
export function checkDocumentName (c: { family: unknown, name: unknown, version: unknown, metadata: unknown, replicationFactor: unknown }): void {
  for (const [field, max] of [['family', 64], ['name', 256], ['version', 128]] as const) {
    const value = c[field]
    if (typeof value !== 'string' || value === '' || value.length > max) throw new InvalidClusterRequestError(`a document's ${field} must be a string of 1 to ${max} characters`)
  }
  if (typeof c.metadata !== 'object' || c.metadata == null || Array.isArray(c.metadata)) throw new InvalidClusterRequestError("a document's metadata must be an object")
  if (JSON.stringify(c.metadata).length > MAX_DOCUMENT_METADATA_CHARS) throw new InvalidClusterRequestError(`a document's metadata must be at most ${MAX_DOCUMENT_METADATA_CHARS} characters of JSON`)
  if (!Number.isInteger(c.replicationFactor)) throw new InvalidClusterRequestError("a document's replication factor must be an integer")
}

/** Documents 001 and 004 name a job `task_<jobId>`. */
export function taskIdOf (jobId: number): string {
  return `task_${jobId}`
}

/** The job id a `task_<jobId>` names; undefined for any other string. */
export function jobIdOfTask (task: string): number | undefined {
  const match = /^task_(\d+)$/.exec(task)
  return match == null ? undefined : Number(match[1])
}

/** Whether a node or an external worker worked on a job: ran it, or took a rank of its training. */
export function workedOn (job: JobRecord, id: string): boolean {
  return job.worker === id || job.training?.workers.some(w => w.id === id) === true
}

/** Collection names go into pin names, paths and URLs: a short word of letters, digits, `.`, `_` and `-`. */
function checkCollectionName (name: string): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) throw new InvalidClusterRequestError(`collection name ${JSON.stringify(String(name).slice(0, 100))} must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`)
  return name
}

function checkChunking (chunking: CollectionRecord['chunking']): CollectionRecord['chunking'] {
  const { chunkTokens, overlapTokens } = chunking ?? {}
  if (!Number.isInteger(chunkTokens) || chunkTokens < 8 || !Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens >= chunkTokens) {
    throw new InvalidClusterRequestError(`chunking needs at least 8 tokens per chunk and an overlap from 0 to fewer than that, got ${chunkTokens} and ${overlapTokens}`)
  }
  return { chunkTokens, overlapTokens }
}

function checkMetadataSchema (schema: CollectionRecord['metadataSchema']): CollectionRecord['metadataSchema'] {
  const out: CollectionRecord['metadataSchema'] = {}
  for (const [field, type] of Object.entries(schema ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(field)) throw new InvalidClusterRequestError(`metadata field ${JSON.stringify(field.slice(0, 100))} must be a word of letters, digits and '_'`)
    if (!['string', 'number', 'boolean'].includes(type)) throw new InvalidClusterRequestError(`metadata field ${field} must be of type string, number or boolean, not ${JSON.stringify(type)}`)
    out[field] = type
  }
  return out
}

function checkReplication (rf: number): number {
  if (!(rf === -1 || (Number.isInteger(rf) && rf >= 1))) throw new InvalidClusterRequestError(`replication factor must be -1 or at least 1, got ${rf}`)
  return rf
}

/** A credential as a command carries it: the fields access control reads, of the right types. */
function checkCredential (c: StoredCredential): StoredCredential {
  const ok = typeof c === 'object' && c != null && typeof c.id === 'string' && c.id !== '' && ['api_key', 'bearer_token', 'user'].includes(c.kind) &&
    typeof c.name === 'string' && c.name !== '' && Array.isArray(c.permissions) && c.permissions.every(p => typeof p === 'string') &&
    typeof c.hash === 'string' && c.hash !== '' && (c.expiresAt == null || typeof c.expiresAt === 'string')
  if (!ok) throw new InvalidClusterRequestError('not a credential record')
  const { id, kind, name, permissions, hash, createdAt, expiresAt } = c
  return { id, kind, name, permissions: [...permissions], hash, createdAt, expiresAt }
}
