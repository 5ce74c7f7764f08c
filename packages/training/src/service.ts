/**
 * The training service of one node: it submits jobs to the cluster's job
 * table, coordinates the jobs the table gives it, answers the steps of jobs
 * it works on, takes a job over when its coordinator goes offline, and keeps
 * datasets and trained models as content.
 */
import { TypedEventEmitter } from '@libp2p/interface'
import { readWeights, writeModel } from '@node-daemon/onnx'
import { TextCodec } from '@node-daemon/runtime'
import { architectureOf } from './architecture.ts'
import { planOf, totalSteps } from './batches.ts'
import { CHECKPOINT_FORMAT, readCheckpoint, writeCheckpoint } from './checkpoint.ts'
import { readJson, readOnnx } from './content-files.ts'
import { Coordinator } from './coordinator.ts'
import { describeDataset, parseDataset } from './dataset.ts'
import { InvalidTrainingRequestError, TrainingInProgressError, TrainingNotFoundError } from './errors.ts'
import { bytesToFloats, floatBytes, StepResponse, TrainingProtocol } from './protocol.ts'
import { Replica } from './replica.ts'
import { trainingSpec } from './spec.ts'
import type { Architecture, Samples } from './architecture.ts'
import type { Checkpoint, CheckpointManifest } from './checkpoint.ts'
import type { StepMetrics } from './coordinator.ts'
import type { DatasetInfo } from './dataset.ts'
import type { StepRequest } from './protocol.ts'
import type { TrainingSpec } from './spec.ts'
import { checkCID } from '@node-daemon/cluster'
import { loadOf } from '@node-daemon/scheduler'
import type { Cluster, JobRecord, ModelKind, ModelRecord } from '@node-daemon/cluster'
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
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol' | 'peerId'>
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
}

/** What a user asks for: the API families map onto this. */
export interface TrainingRequest extends Partial<Record<keyof TrainingSpec, unknown>> {
  /** A registered model name, a model directory's CID, or a fresh architecture's config.json. */
  model: string | Record<string, unknown>
  /** A dataset's CID. */
  dataset: string
  /** How many nodes, or which. Default 1: this node. */
  nodes?: number | string[]
}

export interface TrainingEvents {
  /** Every step of every job this node coordinates. */
  step: CustomEvent<StepMetrics>
}

export interface DatasetRecord extends DatasetInfo {
  cid: string
  name: string
}

const OPEN = ['requested', 'running', 'paused'] as const
const encoder = new TextEncoder()

/** Samples prepared for a job; shared by the jobs and checkpoints that use the same data. */
interface Prepared {
  architecture: Architecture
  samples: Samples
}

interface WorkerJob {
  replica: Replica
  prepared: Prepared
}

export class TrainingService extends TypedEventEmitter<TrainingEvents> {
  readonly #c: TrainingComponents
  readonly #init: Required<TrainingInit>
  readonly #protocol: TrainingProtocol
  readonly #coordinating = new Map<number, AbortController>()
  readonly #working = new Map<number, WorkerJob>()
  readonly #prepared = new Map<string, Promise<Prepared>>()
  #shutdown = new AbortController()
  #running = false

  constructor (components: TrainingComponents, init: TrainingInit = {}) {
    super()
    this.#c = components
    this.#init = {
      replication: init.replication ?? 2,
      firstRoundTimeoutMs: init.firstRoundTimeoutMs ?? 600_000,
      lagFactor: init.lagFactor ?? 4,
      minRoundTimeoutMs: init.minRoundTimeoutMs ?? 10_000
    }
    // The swarm exists once the node has started: read it when the protocol starts, not now.
    this.#protocol = new TrainingProtocol({ get libp2p () { return components.libp2p }, log: components.log }, {
      handler: async (from, request, signal) => this.#answer(request, signal),
      allow: peer => components.cluster.status().voters.includes(peer) || components.cluster.status().learners.includes(peer)
    })
  }

  get #self (): string {
    return this.#c.libp2p.peerId.toString()
  }

  async start (): Promise<void> {
    if (this.#running) return
    this.#running = true
    this.#shutdown = new AbortController()
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
    await this.#protocol.stop()
    await Promise.all([...this.#working.values()].map(async w => w.replica.release()))
    this.#working.clear()
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
    await this.#prepare({ config: model.config, baseModelCID: model.cid, datasetCID, spec }, options)
    const workers = await this.#workers(request.nodes, options)
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

  async control (jobId: number, action: 'pause' | 'resume' | 'stop', options: AbortOptions = {}): Promise<JobRecord> {
    await this.job(jobId, options)
    return this.#c.cluster.changeTraining({ op: 'training.control', jobId, action }, options)
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

  // ---- datasets

  /** Checks a dataset, adds it as content and registers it, replicated. */
  async addDataset (bytes: Uint8Array, params: { name?: string, description?: string } = {}, options: AbortOptions = {}): Promise<DatasetRecord> {
    const info = describeDataset(parseDataset(bytes))
    let cid: string | undefined
    for await (const event of this.#c.content.addAll([{ path: 'dataset', content: bytes }], { pin: true, signal: options.signal })) {
      if (event.type === 'entry') cid = event.cid.toString()
    }
    if (cid == null) throw new InvalidTrainingRequestError('the dataset could not be added')
    const name = params.name ?? cid
    await this.#register({ id: name, cid, kind: 'dataset', description: params.description, metadata: { ...info, dataset: true } }, options)
    return { ...info, cid, name }
  }

  /** A dataset's bytes and what they hold, by CID or registered name. */
  async dataset (name: string, options: AbortOptions = {}): Promise<DatasetRecord & { bytes: Uint8Array }> {
    let cid: string
    let registered: string = name
    const record = await this.#c.cluster.getModel(name, { ...options, local: true }).catch(() => undefined)
    if (record?.kind === 'dataset') {
      cid = record.modelCID
    } else {
      cid = checkCID(name, 'dataset')
      registered = (await this.datasets(options)).find(d => d.modelCID === cid)?.modelId ?? cid
    }
    const bytes = await this.#c.content.readFile(cid, options)
    return { ...describeDataset(parseDataset(bytes)), cid, name: registered, bytes }
  }

  async datasets (options: AbortOptions = {}): Promise<ModelRecord[]> {
    return (await this.#c.cluster.getAllModels({ ...options, local: true })).filter(m => m.kind === 'dataset')
  }

  // ---- preparing models and data

  /**
   * Registers `cid` under `id`, replicated, or makes it the entry's new
   * version; an entry that already holds this CID and metadata has nothing
   * new to record. Without a description an update keeps the entry's own.
   */
  async #register (entry: { id: string, cid: string, kind: ModelKind, description?: string, metadata: object }, options: AbortOptions): Promise<void> {
    const metadata = entry.metadata as Record<string, unknown>
    const existing = await this.#c.cluster.getModel(entry.id, { ...options, local: true }).catch(() => undefined)
    if (existing == null) {
      await this.#c.cluster.registerModel({ modelId: entry.id, modelCID: entry.cid, name: entry.id, description: entry.description ?? '', kind: entry.kind, metadata, replicationFactor: this.#init.replication }, options)
    } else if (existing.modelCID !== entry.cid || JSON.stringify(existing.metadata) !== JSON.stringify(metadata)) {
      await this.#c.cluster.updateModel(entry.id, entry.cid, { ...options, metadata, description: entry.description ?? existing.description })
    }
  }

  /** The model to train, as a directory CID with its config; a fresh architecture is written out first. */
  async #model (model: TrainingRequest['model'], spec: TrainingSpec, options: AbortOptions): Promise<{ name?: string, cid: string, config: Record<string, unknown> }> {
    if (typeof model === 'object' && model != null) {
      const architecture = architectureOf(model, { sequenceLength: spec.sequenceLength })
      const files = [
        { path: 'config.json', content: encoder.encode(JSON.stringify(architecture.config, null, 2) + '\n') },
        { path: 'model.onnx', content: writeModel(architecture.inferenceGraph(architecture.initialWeights(spec.seed))).model }
      ]
      const cid = await this.#c.content.addDirectory(files, { pin: true, signal: options.signal })
      if (cid == null) throw new InvalidTrainingRequestError('the model could not be added')
      return { cid: cid.toString(), config: architecture.config }
    }
    if (typeof model !== 'string' || model === '') throw new InvalidTrainingRequestError('model must be a model name, a CID, or an architecture')
    const resolved = await this.#c.models.resolve(model, options)
    const config = await readJson(this.#c.content, `${resolved.cid}/config.json`, options)
    architectureOf(config, { sequenceLength: spec.sequenceLength })
    return { name: resolved.name === resolved.cid ? undefined : resolved.name, cid: resolved.cid, config }
  }

  async #workers (nodes: TrainingRequest['nodes'], options: AbortOptions): Promise<string[]> {
    const members = await this.#c.cluster.nodes({ ...options, local: true })
    if (Array.isArray(nodes)) {
      if (nodes.length === 0) throw new InvalidTrainingRequestError('nodes must name at least one node')
      for (const id of nodes) {
        if (typeof id !== 'string' || members.find(n => n.id === id) == null) throw new InvalidTrainingRequestError(`node ${String(id)} is not in the cluster`)
      }
      return [...new Set(nodes)]
    }
    const count = nodes ?? 1
    if (!Number.isInteger(count) || count < 1) throw new InvalidTrainingRequestError('nodes must be a positive whole number or a list of node ids')
    // This node coordinates; the others by least load, so that busy nodes are asked last.
    const others = members.filter(n => n.online && !n.drained && n.id !== this.#self)
      .sort((a, b) => loadOf(a) - loadOf(b))
    if (others.length + 1 < count) throw new InvalidTrainingRequestError(`${count} nodes were asked for; ${others.length + 1} are online`)
    return [this.#self, ...others.slice(0, count - 1).map(n => n.id)]
  }

  /** Tokenized or decoded samples of a dataset for a model; cached, since every checkpoint of a job shares them. */
  async #prepare (m: Pick<CheckpointManifest, 'config' | 'baseModelCID' | 'datasetCID' | 'spec'>, options: AbortOptions): Promise<Prepared> {
    const key = `${m.datasetCID}:${m.baseModelCID}:${m.spec.sequenceLength ?? ''}`
    let prepared = this.#prepared.get(key)
    if (prepared == null) {
      prepared = (async () => {
        const architecture = architectureOf(m.config, { sequenceLength: m.spec.sequenceLength })
        const dataset = parseDataset(await this.#c.content.readFile(m.datasetCID, options))
        let encode: ((text: string) => number[]) | undefined
        if (dataset.format === 'text') {
          const tokenizer = await readJson(this.#c.content, `${m.baseModelCID}/tokenizer.json`, options)
          const tokenizerConfig = await readJson(this.#c.content, `${m.baseModelCID}/tokenizer_config.json`, options)
          const codec = new TextCodec(tokenizer, tokenizerConfig)
          encode = text => codec.encode(text)
        }
        return { architecture, samples: architecture.samples(dataset, encode) }
      })()
      this.#prepared.set(key, prepared)
      prepared.catch(() => this.#prepared.delete(key))
    }
    return prepared
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
      for (const job of await this.jobs({ signal })) {
        const training = job.training
        if (training == null) continue
        const open = (OPEN as readonly string[]).includes(job.status)
        const mine = this.#coordinating.get(job.jobId)
        if (!open || training.coordinator !== this.#self) {
          mine?.abort(new Error(`job ${job.jobId} is no longer coordinated here`))
          this.#coordinating.delete(job.jobId)
          if (!open) await this.#forget(job.jobId)
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
        const work = await this.#replicaOf(start, signal)
        replica = work.replica
        const coordinator = new Coordinator({
          cluster: this.#c.cluster,
          content: this.#c.content,
          log: this.#c.log,
          self: this.#self,
          open: async (peer, signal) => this.#protocol.open(peer, signal),
          onStep: metrics => this.safeDispatchEvent('step', { detail: metrics }),
          save: async (jobId, checkpoint, signal) => this.#saveModel(job, checkpoint, undefined, { signal })
        }, {
          job,
          replica,
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

  /** A replica of a checkpoint, over the samples of its job. */
  async #replicaOf (checkpoint: Checkpoint, signal: AbortSignal): Promise<WorkerJob> {
    const prepared = await this.#prepare(checkpoint.manifest, { signal })
    const total = totalSteps(planOf(checkpoint.manifest.spec, prepared.samples.count))
    return { replica: new Replica(prepared.architecture, checkpoint.manifest.spec, total, checkpoint.state), prepared }
  }

  /** The job's last checkpoint, or a first one made from the model's weights. */
  async #startingPoint (job: JobRecord, signal: AbortSignal): Promise<Checkpoint & { cid: string }> {
    const last = job.training?.checkpoints.at(-1)
    if (last != null) {
      const checkpoint = await readCheckpoint(this.#c.content, last.cid, undefined, { signal })
      return { cid: last.cid, ...checkpoint }
    }
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

  // ---- working

  async #forget (jobId: number): Promise<void> {
    const work = this.#working.get(jobId)
    this.#working.delete(jobId)
    await work?.replica.release()
  }

  /** One step of a job for its coordinator. */
  async #answer (request: StepRequest, signal: AbortSignal): Promise<StepResponse> {
    const jobId = Number(request.jobId)
    const base = { round: request.round, gradient: new Uint8Array(0), count: 0, lossSum: 0, correct: 0, labels: 0, computeMs: 0, errorName: '', errorMessage: '' }
    try {
      let work = this.#working.get(jobId)
      if (request.syncCid !== '') {
        await work?.replica.release()
        work = await this.#replicaOf(await readCheckpoint(this.#c.content, request.syncCid, undefined, { signal }), signal)
        this.#working.set(jobId, work)
      } else if (work != null && request.update.byteLength > 0) {
        work.replica.apply(bytesToFloats(request.update))
      }
      if (work == null || work.replica.version !== Number(request.version)) return { ...base, status: StepResponse.Status.OUT_OF_SYNC }
      const result = await work.replica.compute(work.prepared.samples, request.samples)
      return { ...base, status: StepResponse.Status.OK, gradient: floatBytes(result.gradient), count: result.count, lossSum: result.lossSum, correct: result.correct, labels: result.labels, computeMs: result.computeMs }
    } catch (err: any) {
      this.#c.log('step %d of job %d failed - %e', Number(request.round), jobId, err)
      return { ...base, status: StepResponse.Status.ERROR, errorName: err.name ?? 'Error', errorMessage: err.message ?? String(err) }
    }
  }
}

export function createTraining (components: TrainingComponents, init?: TrainingInit): TrainingService {
  return new TrainingService(components, init)
}
