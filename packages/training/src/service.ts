/**
 * The training service of one node: it submits jobs to the cluster's job
 * table, coordinates the jobs the table gives it, answers the steps of jobs
 * it works on, takes a job over when its coordinator goes offline, and keeps
 * datasets and trained models as content.
 */
import { TypedEventEmitter } from '@libp2p/interface'
import { readWeights, writeModel } from '@node-daemon/onnx'
import { architectureOf } from './architecture.ts'
import { CHECKPOINT_FORMAT, readCheckpoint, writeCheckpoint } from './checkpoint.ts'
import { readJson, readOnnx } from './content-files.ts'
import { Coordinator } from './coordinator.ts'
import { DatasetScanner } from './dataset.ts'
import { CheckpointError, InvalidTrainingRequestError, TrainingInProgressError, TrainingNotFoundError } from './errors.ts'
import { StepResponse, stepFailure, TrainingProtocol } from './protocol.ts'
import { trainingSpec } from './spec.ts'
import { StepWorker } from './worker.ts'
import { ExternalWorkers } from './external.ts'
import { DataLoaders } from './loader.ts'
import type { ExternalWorker, ExternalWorkerView } from './external.ts'
import type { Checkpoint, CheckpointManifest } from './checkpoint.ts'
import type { StepMetrics } from './coordinator.ts'
import type { DatasetInfo } from './dataset.ts'
import type { StepRequest, WorkerChannel } from './protocol.ts'
import type { Replica } from './replica.ts'
import type { TrainingSpec } from './spec.ts'
import { checkCID, FINAL_JOB_STATUSES, InsufficientPeersError, NodeNotFoundError, workedOn } from '@node-daemon/cluster'
import { loadOf } from '@node-daemon/scheduler'
import type { Cluster, ClusterEvents, JobRecord, JobStatus, ModelKind, ModelRecord, NodeView, RegisteredInfo, TrainingWorker } from '@node-daemon/cluster'
import type { Content } from '@node-daemon/content'
import type { AbortOptions, Libp2p, Logger } from '@libp2p/interface'

export interface ModelStore {
  /** A registered name or a CID: the model directory's CID, and its registry name when it has one. */
  resolve: (name: string, options?: AbortOptions) => Promise<{ name: string, cid: string }>
  /** Adds a model directory in the Hugging Face ONNX layout and registers it, so that inference serves it. */
  import: (params: { name: string, description?: string, files: Array<{ path: string, content: Uint8Array }> }, options?: AbortOptions) => Promise<{ name: string, cid: string }>
}

export interface TrainingComponents {
  cluster: Cluster
  content: Content
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dial' | 'peerId'>
  models: ModelStore
  log: Logger
}

export interface TrainingInit {
  /** Copies of each checkpoint and dataset in the cluster. Default 2. */
  replication?: number
  /** Default 10 min: the first round may build training graphs on every worker. */
  firstRoundTimeoutMs?: number
  /** A worker slower than this many times the median round is dropped from the round. Default 4. */
  lagFactor?: number
  /** Default 10 s. */
  minRoundTimeoutMs?: number
  /** How long a coordinator taking a job over tries to read a checkpoint before it falls back to the one before. Default 2 min. */
  checkpointReadTimeoutMs?: number
  /** onnxruntime's intra-op threads for a training graph (the node's `inference.threads`); unset, its default, all cores. */
  threads?: number
  /**
   * The interface this node's sealed channels listen on (its swarm's host):
   * set, coordinators send this node its gradient streams on a sealed channel
   * rather than on libp2p (see TrainingProtocolInit).
   */
  channelHost?: string
}

/** What a user asks for: the API families map onto this. */
export interface TrainingRequest extends Partial<Record<keyof TrainingSpec, unknown>> {
  /** A registered model name, a model directory's CID, or a fresh architecture's config.json. */
  model: string | Record<string, unknown>
  /** A dataset's CID. */
  dataset: string
  /** How many nodes, or which. Default 1: this node. */
  nodes?: number | string[]
  /** What each node must have to be chosen by count (document 004's requirements); sizes in MiB. */
  requirements?: NodeRequirements
}

export interface NodeRequirements {
  minCpuCores?: number
  minRamMiB?: number
  minGpuMemoryMiB?: number
}

const MIB = 1024 * 1024

/** Whether a node's last reported resources meet the requirements; a node that reported none meets only empty ones. */
function meets (node: NodeView, r: NodeRequirements): boolean {
  const res = node.resources
  const wants = (r.minCpuCores ?? 0) > 0 || (r.minRamMiB ?? 0) > 0 || (r.minGpuMemoryMiB ?? 0) > 0
  if (res == null) return !wants
  const vram = Math.max(0, ...res.gpus.map(g => g.vram.total))
  return res.cpu.cores >= (r.minCpuCores ?? 0) && res.memory.total >= (r.minRamMiB ?? 0) * MIB && vram >= (r.minGpuMemoryMiB ?? 0) * MIB
}

export interface TrainingEvents {
  /** Every step of every job this node coordinates. */
  step: CustomEvent<StepMetrics>
}

export interface DatasetRecord extends DatasetInfo, RegisteredInfo {
  cid: string
  name: string
  /** As its registration gave it; unset for a dataset named by CID alone, or registered without one. */
  description?: string
}

/** What a dataset's registration says of it besides its bytes. */
export interface DatasetParams extends RegisteredInfo {
  /** The registry name; the CID when unset. */
  name?: string
  description?: string
}

const OPEN = ['requested', 'running', 'paused'] as const

type ControlAction = 'pause' | 'resume' | 'stop'

/** How long a settling control waits for the coordinator, which acts at its next step; less than clients commonly wait for an answer. */
const SETTLE_MS = 15_000

/** The statuses in which each control has been carried out; a job that ended takes none any more. */
const SETTLED: Record<ControlAction, readonly JobStatus[]> = {
  pause: ['paused', ...FINAL_JOB_STATUSES],
  resume: ['running', ...FINAL_JOB_STATUSES],
  stop: FINAL_JOB_STATUSES
}
const encoder = new TextEncoder()

export class TrainingService extends TypedEventEmitter<TrainingEvents> {
  readonly #c: TrainingComponents
  readonly #init: Required<Omit<TrainingInit, 'threads' | 'channelHost'>>
  readonly #protocol: TrainingProtocol
  readonly #coordinating = new Map<number, AbortController>()
  readonly #worker: StepWorker
  readonly #external: ExternalWorkers
  /** Document 000's data loaders: batches of datasets streamed to clients. */
  readonly loaders: DataLoaders
  #shutdown = new AbortController()
  #running = false

  constructor (components: TrainingComponents, init: TrainingInit = {}) {
    super()
    this.#c = components
    this.#init = {
      replication: init.replication ?? 2,
      firstRoundTimeoutMs: init.firstRoundTimeoutMs ?? 600_000,
      lagFactor: init.lagFactor ?? 4,
      minRoundTimeoutMs: init.minRoundTimeoutMs ?? 10_000,
      checkpointReadTimeoutMs: init.checkpointReadTimeoutMs ?? 120_000
    }
    this.#worker = new StepWorker({ content: components.content, log: components.log }, { threads: init.threads })
    this.loaders = new DataLoaders({
      content: components.content,
      resolve: async (name, options = {}) => {
        const { record, cid } = await this.#lookup(name, options)
        // A CID the registry does not list must at least be a file this node can reach.
        if (record == null) await components.content.stat(cid, options)
        const records = record?.metadata.records
        return { cid, ...(record == null ? {} : { name: record.modelId }), ...(typeof records === 'number' ? { records } : {}) }
      }
    })
    this.#external = new ExternalWorkers({ cluster: components.cluster, self: () => this.#self, log: components.log })
    // The swarm exists once the node has started: read it when the protocol starts, not now.
    this.#protocol = new TrainingProtocol({ get libp2p () { return components.libp2p }, log: components.log }, {
      handler: async (from, request, signal) => request.client === '' ? this.#worker.answer(request, signal) : this.#relay(request, signal),
      allow: peer => components.cluster.status().voters.includes(peer) || components.cluster.status().learners.includes(peer),
      channelHost: init.channelHost
    })
  }

  get #self (): string {
    return this.#c.libp2p.peerId.toString()
  }

  async start (): Promise<void> {
    if (this.#running) return
    this.#running = true
    this.#shutdown = new AbortController()
    this.loaders.start()
    await this.#protocol.start()
    this.#c.cluster.addEventListener('TrainingUpdated', this.#onChange)
    this.#c.cluster.addEventListener('NodeStatus', this.#onChange)
    // A coordinator that restarted takes its jobs up again from their last checkpoint.
    void this.#reconcile()
  }

  async stop (): Promise<void> {
    if (!this.#running) return
    this.#running = false
    this.#shutdown.abort(new Error('the training service is stopping'))
    this.#c.cluster.removeEventListener('TrainingUpdated', this.#onChange)
    this.#c.cluster.removeEventListener('NodeStatus', this.#onChange)
    for (const controller of this.#coordinating.values()) controller.abort(new Error('the training service is stopping'))
    this.#coordinating.clear()
    this.loaders.stop()
    await this.#protocol.stop()
    await this.#worker.release()
  }

  // ---- jobs

  /** Checks the request, prepares the model and submits the job; the coordinator starts it. */
  async submit (request: TrainingRequest, options: AbortOptions = {}): Promise<JobRecord> {
    const spec = trainingSpec(request)
    const datasetCID = checkCID(request.dataset, 'dataset')
    const running = (await this.jobs(options)).find(j => (OPEN as readonly string[]).includes(j.status))
    if (running != null) throw new TrainingInProgressError(`training job ${running.jobId} is ${running.status}; stop it first`)
    const model = await this.#model(request.model, spec, options)
    // The data must suit the model before the job goes into the log: a bad pair is the user's error, not a failed job.
    await this.#worker.prepare({ config: model.config, baseModelCID: model.cid, datasetCID, spec }, options)
    const workers = await this.#workers(request.nodes, request.requirements ?? {}, options)
    return this.#c.cluster.changeTraining({
      op: 'training.submit',
      spec: spec as unknown as Record<string, unknown>,
      modelId: model.name,
      modelCID: model.cid,
      datasetCID,
      coordinator: workers[0],
      workers
    }, options)
  }

  /** Training jobs, newest first. */
  async jobs (options: AbortOptions & { local?: boolean } = {}): Promise<JobRecord[]> {
    return (await this.#c.cluster.jobs({ limit: 10_000 }, { ...options, local: options.local ?? true })).filter(j => j.kind === 'training')
  }

  /** A training job; the newest when no id is given. */
  async job (jobId?: number, options: AbortOptions = {}): Promise<JobRecord> {
    if (jobId == null) {
      const [latest] = await this.jobs(options)
      if (latest == null) throw new TrainingNotFoundError('no training job has been started')
      return latest
    }
    const job = await this.#c.cluster.job(jobId, { ...options, local: true }).catch(() => undefined)
    if (job?.kind !== 'training') throw new TrainingNotFoundError(`training job ${jobId} does not exist`)
    return job
  }

  /**
   * Asks the job's coordinator to pause, resume or stop it, which it does at
   * its next step. With `settle`, waits for that (at most SETTLE_MS) and
   * answers the job as it then is, so that the answer says what happened.
   */
  async control (jobId: number, action: ControlAction, options: AbortOptions & { settle?: boolean } = {}): Promise<JobRecord> {
    await this.job(jobId, options)
    if (options.settle !== true) return this.#c.cluster.changeTraining({ op: 'training.control', jobId, action }, options)
    const settled = (status: JobStatus): boolean => SETTLED[action].includes(status)
    const done = new AbortController()
    const signal = AbortSignal.any([done.signal, AbortSignal.timeout(SETTLE_MS), ...(options.signal == null ? [] : [options.signal])])
    // Listening before asking: the coordinator may act before the proposal's answer comes back.
    const reached = new Promise<void>(resolve => {
      const listener = (e: CustomEvent<ClusterEvents['TrainingUpdated']>): void => { if (e.detail.jobId === jobId && settled(e.detail.status)) resolve() }
      this.#c.cluster.addEventListener('TrainingUpdated', listener)
      signal.addEventListener('abort', () => { this.#c.cluster.removeEventListener('TrainingUpdated', listener); resolve() }, { once: true })
    })
    try {
      const asked = await this.#c.cluster.changeTraining({ op: 'training.control', jobId, action }, options)
      if (!settled(asked.status)) await reached
      options.signal?.throwIfAborted()
      return await this.job(jobId, options)
    } finally {
      done.abort()
    }
  }

  /**
   * Takes a finished training job out of the job table and unpins its
   * checkpoints; a model saved from it stays registered.
   */
  async remove (jobId: number, options: AbortOptions = {}): Promise<JobRecord> {
    const job = await this.job(jobId, options)
    if ((OPEN as readonly string[]).includes(job.status)) throw new TrainingInProgressError(`training job ${jobId} is ${job.status}; stop it before removing it`)
    const removed = await this.#c.cluster.removeJob(jobId, options)
    const pinned = new Set((await this.#c.cluster.pins({ ...options, local: true })).map(p => p.cid))
    for (const checkpoint of job.training?.checkpoints ?? []) {
      if (!pinned.has(checkpoint.cid)) continue
      await this.#c.cluster.pinRm(checkpoint.cid, options).catch((err: Error) => { this.#c.log('unpinning checkpoint %s failed - %s', checkpoint.cid, err.message) })
      pinned.delete(checkpoint.cid)
    }
    return removed
  }

  /** Registers the weights of the job's latest checkpoint as a model; returns the job with its modelId. */
  async save (jobId: number, options: AbortOptions & { name?: string } = {}): Promise<JobRecord> {
    const job = await this.job(jobId, options)
    const checkpoint = job.training?.checkpoints.at(-1)
    if (checkpoint == null) throw new InvalidTrainingRequestError(`training job ${jobId} has no checkpoint yet`)
    const saved = await this.#saveModel(job, checkpoint.cid, options.name, options)
    return this.#c.cluster.changeTraining({ op: 'training.saved', jobId, modelId: saved.modelId }, options)
  }

  /** A model (registered name or CID) as one ONNX file with its weights inside, which onnxruntime loads anywhere. */
  async download (name: string, options: AbortOptions = {}): Promise<{ name: string, cid: string, bytes: Uint8Array }> {
    // Classifiers are registered but not served by inference, whose resolver knows only what it can run.
    const record = await this.#c.cluster.getModel(name, { ...options, local: true }).catch(() => undefined)
    const model = record?.kind === 'model' ? { name: record.modelId, cid: record.modelCID } : await this.#c.models.resolve(name, options)
    return { ...model, bytes: writeModel(await readOnnx(this.#c.content, model.cid, options)).model }
  }

  // ---- external workers

  /** Connects an external worker process; throws WorkerConflictError when its client id is taken here. */
  attachWorker (worker: ExternalWorker): void {
    this.#external.attach(worker)
  }

  /** The worker's connection closed: an open job it worked on records that it left. */
  async detachWorker (id: string): Promise<void> {
    await this.#external.detach(id)
  }

  /** The worker asks for work; it is given the open job, or the next one, through its `notify`. */
  async requestWork (id: string, options: AbortOptions = {}): Promise<void> {
    await this.#external.request(id, options.signal)
  }

  /** Whether the job was given to the external worker: it took a rank in it, whether or not it still has it. */
  async gaveJob (id: string, jobId: number, options: AbortOptions = {}): Promise<boolean> {
    const job = await this.#c.cluster.job(jobId, { ...options, local: true }).catch(() => undefined)
    return job?.kind === 'training' && workedOn(job, id)
  }

  /** A heartbeat: the worker is alive, and this is what its machine reports. */
  workerSeen (id: string, systemInfo?: Record<string, number>): void {
    this.#external.seen(id, systemInfo)
  }

  /** External workers connected to this node. */
  externalWorkers (): ExternalWorkerView[] {
    return this.#external.views()
  }

  async #relay (request: StepRequest, signal: AbortSignal): Promise<StepResponse> {
    try {
      return await this.#external.relay(request, signal)
    } catch (err: any) {
      return stepFailure(request.round, StepResponse.Status.ERROR, { name: err.name ?? 'Error', message: err.message ?? String(err) })
    }
  }

  /** The coordinator's channel to a worker: a node directly, an external worker through the node it is connected to. */
  async #open (worker: TrainingWorker, signal: AbortSignal): Promise<WorkerChannel> {
    const client = worker.id
    if (worker.via == null) return this.#protocol.open(worker.id, signal)
    if (worker.via === this.#self) return { step: async (request, signal) => this.#relay({ ...request, client }, signal), close: () => {} }
    const channel = await this.#protocol.open(worker.via, signal)
    return { step: async (request, signal) => channel.step({ ...request, client }, signal), close: () => { channel.close() } }
  }

  // ---- datasets

  /**
   * Checks a dataset as it streams into the blockstore, and registers it,
   * replicated. A dataset found bad is refused before its add completes, so
   * it is never pinned; what it wrote is garbage for the next GC.
   */
  async addDataset (source: Uint8Array | AsyncIterable<Uint8Array>, params: DatasetParams = {}, options: AbortOptions = {}): Promise<DatasetRecord> {
    const scanner = new DatasetScanner()
    let info: DatasetInfo | undefined
    const checked = async function * (): AsyncGenerator<Uint8Array> {
      for await (const chunk of source instanceof Uint8Array ? [source] : source) {
        scanner.write(chunk)
        yield chunk
      }
      info = scanner.end()
    }
    let cid: string | undefined
    for await (const event of this.#c.content.addAll([{ path: 'dataset', content: checked() }], { pin: true, signal: options.signal })) {
      if (event.type === 'entry') cid = event.cid.toString()
    }
    if (cid == null || info == null) throw new InvalidTrainingRequestError('the dataset could not be added')
    const { name = cid, ...described } = params
    const record = await this.#register({ id: name, cid, kind: 'dataset', ...described, metadata: { ...info, dataset: true } }, options)
    return { ...info, cid, name, ...describedBy(record) }
  }

  /** What a dataset holds, by CID or registered name: as its registration recorded it, or read as it streams. */
  async dataset (name: string, options: AbortOptions = {}): Promise<DatasetRecord> {
    const { record, cid } = await this.#lookup(name, options)
    if (record == null) return { ...await this.#scan(cid, options), cid, name: cid }
    const { format, records, features, classes, characters } = record.metadata as Partial<DatasetInfo>
    const recorded = Object.fromEntries(Object.entries({ format, records, features, classes, characters }).filter(([, v]) => v != null)) as unknown as DatasetInfo
    const info = format == null || records == null ? await this.#scan(record.modelCID, options) : recorded
    return { ...info, cid: record.modelCID, name: record.modelId, ...describedBy(record) }
  }

  /** A dataset's registration, by name or CID, and its CID; a CID the registry does not list has none. */
  async #lookup (name: string, options: AbortOptions): Promise<{ record?: ModelRecord, cid: string }> {
    const dataset = (record?: ModelRecord): ModelRecord | undefined => record?.kind === 'dataset' ? record : undefined
    let cid: string
    try {
      cid = checkCID(name, 'dataset')
    } catch (err) {
      const named = dataset(await this.#c.cluster.findModel(name, options))
      if (named == null) throw err
      return { record: named, cid: named.modelCID }
    }
    // A CID: the name of a dataset registered without one, or the content of a dataset with a name, or of none.
    const record = dataset(await this.#c.cluster.getModel(name, { ...options, local: true }).catch(() => undefined)) ?? (await this.datasets(options)).find(d => d.modelCID === cid)
    return { record, cid: record?.modelCID ?? cid }
  }

  /** A dataset and its bytes, streamed from the content store. */
  async datasetFile (name: string, options: AbortOptions = {}): Promise<DatasetRecord & { content: AsyncIterable<Uint8Array> }> {
    const dataset = await this.dataset(name, options)
    return { ...dataset, content: this.#c.content.cat(dataset.cid, options) }
  }

  async #scan (cid: string, options: AbortOptions): Promise<DatasetInfo> {
    const scanner = new DatasetScanner()
    for await (const chunk of this.#c.content.cat(cid, options)) scanner.write(chunk)
    return scanner.end()
  }

  async datasets (options: AbortOptions = {}): Promise<ModelRecord[]> {
    return (await this.#c.cluster.getAllModels({ ...options, local: true })).filter(m => m.kind === 'dataset')
  }

  // ---- preparing models and data

  /**
   * Registers `cid` under `id`, replicated, or makes it the entry's new
   * version; an entry that already holds this CID, metadata and description
   * has nothing new to record. Without a description (framework, license) an
   * update keeps the entry's own. Answers the record as it stands.
   */
  async #register (entry: { id: string, cid: string, kind: ModelKind, description?: string, metadata: object } & RegisteredInfo, options: AbortOptions): Promise<ModelRecord> {
    const metadata = entry.metadata as Record<string, unknown>
    const { description, framework, license } = entry
    const existing = await this.#c.cluster.getModel(entry.id, { ...options, local: true }).catch(() => undefined)
    if (existing == null) {
      return this.#c.cluster.registerModel({ modelId: entry.id, modelCID: entry.cid, name: entry.id, description: description ?? '', framework, license, kind: entry.kind, metadata, replicationFactor: this.#init.replication }, options)
    }
    const redescribed = (description != null && description !== existing.description) || (framework != null && framework !== existing.framework) || (license != null && license !== existing.license)
    if (existing.modelCID === entry.cid && JSON.stringify(existing.metadata) === JSON.stringify(metadata) && !redescribed) return existing
    return this.#c.cluster.updateModel(entry.id, entry.cid, { ...options, metadata, description: description ?? existing.description, framework, license })
  }

  /** The model to train, as a directory CID with its config; a fresh architecture is written out first. */
  async #model (model: TrainingRequest['model'], spec: TrainingSpec, options: AbortOptions): Promise<{ name?: string, cid: string, config: Record<string, unknown> }> {
    if (typeof model === 'object' && model != null) {
      const architecture = architectureOf(model, { sequenceLength: spec.sequenceLength })
      const files = [
        { path: 'config.json', content: encoder.encode(JSON.stringify(architecture.config, null, 2) + '\n') },
        { path: 'model.onnx', content: writeModel(architecture.inferenceGraph(architecture.initialWeights(spec.seed))).model }
      ]
      const cid = (await this.#c.content.addDirectory(files, { pin: true, signal: options.signal }))?.toString()
      if (cid == null) throw new InvalidTrainingRequestError('the model could not be added')
      // Replicated like a checkpoint: a coordinator that takes the job over reads the model's files when it saves the result.
      await this.#c.cluster.pinAdd(cid, { name: `initial ${String(architecture.config.model_type)} model for training`, replicationFactorMin: 1, replicationFactorMax: this.#init.replication, signal: options.signal })
      return { cid, config: architecture.config }
    }
    if (typeof model !== 'string' || model === '') throw new InvalidTrainingRequestError('model must be a model name, a CID, or an architecture')
    const resolved = await this.#c.models.resolve(model, options)
    const config = await readJson(this.#c.content, `${resolved.cid}/config.json`, options)
    architectureOf(config, { sequenceLength: spec.sequenceLength })
    return { name: resolved.name === resolved.cid ? undefined : resolved.name, cid: resolved.cid, config }
  }

  async #workers (nodes: TrainingRequest['nodes'], requirements: NodeRequirements, options: AbortOptions): Promise<string[]> {
    const members = await this.#c.cluster.nodes({ ...options, local: true })
    for (const [key, value] of Object.entries(requirements)) {
      if (value != null && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) throw new InvalidTrainingRequestError(`requirements.${key} must be a number from 0`)
    }
    if (Array.isArray(nodes)) {
      if (nodes.length === 0) throw new InvalidTrainingRequestError('nodes must name at least one node')
      for (const id of nodes) {
        const member = members.find(n => n.id === id)
        if (typeof id !== 'string') throw new InvalidTrainingRequestError(`nodes must be node ids, not ${JSON.stringify(id)}`)
        if (member == null) throw new NodeNotFoundError(`node ${id} is not in the cluster`)
        if (!meets(member, requirements)) throw new InvalidTrainingRequestError(`node ${id} does not meet the requirements`)
      }
      return [...new Set(nodes)]
    }
    const count = nodes ?? 1
    if (!Number.isInteger(count) || count < 1) throw new InvalidTrainingRequestError('nodes must be a positive whole number or a list of node ids')
    // This node coordinates (and so computes) when it qualifies; the others by least load, so that busy nodes are asked last.
    const eligible = members.filter(n => n.online && !n.drained && meets(n, requirements))
      .sort((a, b) => Number(b.id === this.#self) - Number(a.id === this.#self) || loadOf(a) - loadOf(b))
    if (eligible.length < count) throw new InsufficientPeersError(`${count} nodes were asked for; ${eligible.length} online ${eligible.length === 1 ? 'node meets' : 'nodes meet'} the requirements`)
    return eligible.slice(0, count).map(n => n.id)
  }

  // ---- coordinating

  /** A job changed, or a node came or went: both may give this node a job to coordinate. */
  readonly #onChange = (): void => { void this.#reconcile() }

  /** Starts coordinating the open jobs given to this node; takes over the jobs whose coordinator went offline. */
  async #reconcile (): Promise<void> {
    if (!this.#running) return
    const signal = this.#shutdown.signal
    try {
      const nodes = new Map((await this.#c.cluster.nodes({ signal, local: true })).map(n => [n.id, n]))
      const jobs = await this.jobs({ signal })
      await this.#external.reconcile(jobs)
      for (const job of jobs) {
        const training = job.training
        if (training == null) continue
        const open = (OPEN as readonly string[]).includes(job.status)
        const mine = this.#coordinating.get(job.jobId)
        if (!open || training.coordinator !== this.#self) {
          mine?.abort(new Error(`job ${job.jobId} is no longer coordinated here`))
          this.#coordinating.delete(job.jobId)
          if (!open) await this.#worker.forget(job.jobId)
        }
        if (!open) continue
        if (training.coordinator === this.#self && mine == null) {
          this.#coordinate(job)
        } else if (nodes.get(training.coordinator)?.online === false) {
          // The first online worker by rank takes over; the log accepts only the first handover.
          const next = training.workers.filter(w => w.id !== training.coordinator && nodes.get(w.id)?.online === true).sort((a, b) => a.rank - b.rank)[0]
          if (next?.id === this.#self) {
            await this.#c.cluster.changeTraining({ op: 'training.handover', jobId: job.jobId, from: training.coordinator, to: this.#self }, { signal })
              .catch((err: Error) => { this.#c.log('taking over job %d failed - %s', job.jobId, err.message) })
          }
        }
      }
    } catch (err: any) {
      if (!signal.aborted) this.#c.log.error('reconciling training jobs failed - %e', err)
    }
  }

  #coordinate (job: JobRecord): void {
    const controller = new AbortController()
    this.#coordinating.set(job.jobId, controller)
    const signal = AbortSignal.any([controller.signal, this.#shutdown.signal])
    void (async () => {
      let replica: Replica | undefined
      try {
        const start = await this.#startingPoint(job, signal)
        const work = await this.#worker.replicaOf(start, signal)
        replica = work.replica
        const coordinator = new Coordinator({
          cluster: this.#c.cluster,
          content: this.#c.content,
          log: this.#c.log,
          self: this.#self,
          open: async (worker, signal) => this.#open(worker, signal),
          onStep: metrics => this.safeDispatchEvent('step', { detail: metrics }),
          save: async (jobId, checkpoint, signal) => this.#saveModel(job, checkpoint, undefined, { signal })
        }, {
          job,
          replica: work.replica,
          architecture: work.prepared.architecture,
          samples: work.prepared.samples,
          manifest: start.manifest,
          checkpoint: start.cid,
          firstRoundTimeoutMs: this.#init.firstRoundTimeoutMs,
          lagFactor: this.#init.lagFactor,
          minRoundTimeoutMs: this.#init.minRoundTimeoutMs,
          replication: this.#init.replication
        })
        await coordinator.run(signal)
      } catch (err: any) {
        if (signal.aborted) return
        this.#c.log.error('training job %d failed - %e', job.jobId, err)
        await this.#c.cluster.failJob(job.jobId, `${err.name ?? 'Error'}: ${err.message}`, { signal: this.#shutdown.signal }).catch(() => {})
      } finally {
        await replica?.release()
        if (this.#coordinating.get(job.jobId) === controller) this.#coordinating.delete(job.jobId)
      }
    })()
  }

  /** The job's last checkpoint, or a first one made from the model's weights. */
  async #startingPoint (job: JobRecord, signal: AbortSignal): Promise<Checkpoint & { cid: string }> {
    const checkpoints = job.training?.checkpoints ?? []
    // A coordinator that died right after a checkpoint may have held its only copy: the newest that an online node has pinned comes first.
    const online = new Set((await this.#c.cluster.nodes({ signal, local: true })).filter(n => n.online).map(n => n.id))
    const reports = await Promise.all(checkpoints.map(async c => this.#c.cluster.pinStatus(c.cid, { signal, local: true }).catch(() => [])))
    const held = new Set(reports.flat().filter(r => r.peers.some(p => p.status === 'pinned' && online.has(p.peer))).map(r => r.cid))
    const order = [...checkpoints].reverse().sort((a, b) => Number(held.has(b.cid)) - Number(held.has(a.cid)))
    for (const { cid } of order) {
      try {
        const checkpoint = await readCheckpoint(this.#c.content, cid, undefined, { signal: AbortSignal.any([signal, AbortSignal.timeout(this.#init.checkpointReadTimeoutMs)]) })
        return { cid, ...checkpoint }
      } catch (err: any) {
        if (signal.aborted) throw err
        this.#c.log('checkpoint %s of job %d cannot be read - %s', cid, job.jobId, err.message)
      }
    }
    if (checkpoints.length > 0) throw new CheckpointError(`none of the checkpoints of job ${job.jobId} can be read`)
    const spec = job.params as unknown as TrainingSpec
    const config = await readJson(this.#c.content, `${job.modelCID}/config.json`, { signal })
    const architecture = architectureOf(config, { sequenceLength: spec.sequenceLength })
    const weights = readWeights(await readOnnx(this.#c.content, job.modelCID, { signal }), architecture.parameters.map(p => p.name))
    const manifest: CheckpointManifest = { format: CHECKPOINT_FORMAT, jobId: job.jobId, step: 0, spec, config, baseModelCID: job.modelCID, datasetCID: job.promptCID }
    const state = { weights }
    const cid = await writeCheckpoint(this.#c.content, manifest, state, architecture.parameters, { signal })
    await this.#c.cluster.changeTraining({ op: 'training.progress', jobId: job.jobId, status: 'running', workers: job.training?.workers ?? [], checkpoint: { step: 0, cid } }, { signal })
    return { cid, manifest, state }
  }

  /** The inference model of a checkpoint, registered under the job's name (or `name`). */
  async #saveModel (job: JobRecord, checkpoint: string, name: string | undefined, options: AbortOptions): Promise<{ modelId: string, modelCID: string }> {
    const { manifest, state } = await readCheckpoint(this.#c.content, checkpoint, undefined, options)
    const architecture = architectureOf(manifest.config, { sequenceLength: manifest.spec.sequenceLength })
    const files = [{ path: 'model.onnx', content: writeModel(architecture.inferenceGraph(state.weights)).model }]
    files.push({ path: 'config.json', content: encoder.encode(JSON.stringify(manifest.config, null, 2) + '\n') })
    if (manifest.baseModelCID !== '') {
      const { entries } = await this.#c.content.ls(manifest.baseModelCID, options)
      for (const entry of entries) {
        if (entry.name === 'config.json' || entry.name.startsWith('model.onnx')) continue
        files.push({ path: entry.name, content: await this.#c.content.readFile(`${manifest.baseModelCID}/${entry.name}`, options) })
      }
    }
    const modelId = name ?? manifest.spec.name ?? `${job.modelId === '' ? 'trained' : job.modelId.replace(/:.*$/, '')}-job${job.jobId}`
    const description = `trained by job ${job.jobId} for ${manifest.step} steps on ${manifest.datasetCID}`
    if (architecture.kind === 'causal-lm') {
      const saved = await this.#c.models.import({ name: modelId, description, files }, options)
      return { modelId: saved.name, modelCID: saved.cid }
    }
    const cid = (await this.#c.content.addDirectory(files, { pin: true, signal: options.signal }))?.toString()
    if (cid == null) throw new InvalidTrainingRequestError('the model could not be added')
    await this.#register({ id: modelId, cid, kind: 'model', description, metadata: { family: architecture.config.model_type, trainedBy: job.jobId } }, options)
    return { modelId, modelCID: cid }
  }
}

export function createTraining (components: TrainingComponents, init?: TrainingInit): TrainingService {
  return new TrainingService(components, init)
}

/** A registration's description, framework and license, each where it has one. */
function describedBy (record: ModelRecord): Pick<DatasetRecord, 'description' | 'framework' | 'license'> {
  const described: Pick<DatasetRecord, 'description' | 'framework' | 'license'> = {}
  if (record.description !== '') described.description = record.description
  if (record.framework != null) described.framework = record.framework
  if (record.license != null) described.license = record.license
  return described
}
