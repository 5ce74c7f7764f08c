/**
 * External workers: processes that connect to a node (document 004's worker
 * WebSocket) and take a share of its training jobs without joining the
 * swarm or Raft. The node they connect to asks the log to add them to an
 * open job, relays the coordinator's steps to them, and tells them when the
 * job pauses, resumes or ends. The coordinator treats each as one more rank
 * whose steps go through that node.
 */
import { StepResponse, stepFailure } from './protocol.ts'
import { WorkerConflictError } from './errors.ts'
import type { StepRequest } from './protocol.ts'
import type { TrainingSpec } from './spec.ts'
import type { Cluster, JobRecord, JobStatus } from '@node-daemon/cluster'
import type { Logger } from '@libp2p/interface'

/** What an external worker is told about the job it was given. */
export interface TaskAssignment {
  jobId: number
  /** The model trained: its registered name, or its CID. */
  model: string
  modelCID: string
  datasetCID: string
  spec: TrainingSpec
  rank: number
  /** Workers of the job, this one included. */
  worldSize: number
}

export type WorkerNotice =
  | { type: 'task', task: TaskAssignment }
  | { type: 'control', jobId: number, action: 'pause' | 'resume' | 'stop' }
  /** The job ended; `checkpoint` is its last, `modelId` the model saved from it. */
  | { type: 'end', jobId: number, status: JobStatus, checkpoint?: string, modelId?: string, error?: string }

/** The node's end of one external worker's connection. */
export interface ExternalWorker {
  /** The client id it connected with: unique among the workers of this node. */
  id: string
  /** Sends a step to the process and resolves with its answer. */
  step: (request: StepRequest, signal: AbortSignal) => Promise<StepResponse>
  notify: (notice: WorkerNotice) => void
}

/** What the node knows of an attached worker; /api/clients and /api/metrics show it. */
export interface ExternalWorkerView {
  id: string
  connectedAt: string
  lastSeen: string
  /** The job it works on, if any. */
  jobId?: number
  /** Its last heartbeat's figures, as it sent them. */
  systemInfo?: Record<string, number>
  /** Steps it answered since it connected. */
  steps: number
}

interface Attached {
  worker: ExternalWorker
  view: ExternalWorkerView
  /** It asked for work and has none yet. */
  waiting: boolean
  /** A join is being decided; no second one meanwhile. */
  joining: boolean
  /** The job's desired state it was last told. */
  desired?: string
}

export interface ExternalWorkersComponents {
  cluster: Pick<Cluster, 'changeTraining' | 'jobs'>
  self: () => string
  log: Logger
}

const OPEN: readonly JobStatus[] = ['requested', 'running', 'paused']

export class ExternalWorkers {
  readonly #c: ExternalWorkersComponents
  readonly #attached = new Map<string, Attached>()

  constructor (components: ExternalWorkersComponents) {
    this.#c = components
  }

  attach (worker: ExternalWorker): void {
    if (this.#attached.has(worker.id)) throw new WorkerConflictError(`a worker with client id ${worker.id} is already connected to this node`)
    const now = new Date().toISOString()
    this.#attached.set(worker.id, { worker, view: { id: worker.id, connectedAt: now, lastSeen: now, steps: 0 }, waiting: false, joining: false })
  }

  /** Forgets a worker that disconnected; its job, if still open, records that it left. */
  async detach (id: string): Promise<void> {
    const a = this.#attached.get(id)
    if (a == null) return
    this.#attached.delete(id)
    const jobId = a.view.jobId
    if (jobId == null) return
    await this.#c.cluster.changeTraining({ op: 'training.leave', jobId, worker: id }).catch((err: Error) => {
      this.#c.log('recording that worker %s left job %d failed - %s', id, jobId, err.message)
    })
  }

  /** The worker asks for work: it joins the open job now, or the next one submitted. */
  async request (id: string, signal?: AbortSignal): Promise<void> {
    const a = this.#attached.get(id)
    if (a == null) return
    a.waiting = a.view.jobId == null
    this.seen(id)
    await this.reconcile(await this.#c.cluster.jobs({ limit: 100 }, { signal, local: true }))
  }

  seen (id: string, systemInfo?: Record<string, number>): void {
    const a = this.#attached.get(id)
    if (a == null) return
    a.view.lastSeen = new Date().toISOString()
    if (systemInfo != null) a.view.systemInfo = systemInfo
  }

  views (): ExternalWorkerView[] {
    return [...this.#attached.values()].map(a => ({ ...a.view }))
  }

  /** Relays a step the coordinator sent for an attached worker. */
  async relay (request: StepRequest, signal: AbortSignal): Promise<StepResponse> {
    const a = this.#attached.get(request.client)
    if (a == null) {
      return stepFailure(request.round, StepResponse.Status.ERROR, { name: 'WorkerNotConnectedError', message: `worker ${request.client} is not connected to this node` })
    }
    const response = await a.worker.step(request, signal)
    a.view.steps++
    a.view.lastSeen = new Date().toISOString()
    return response
  }

  /** Brings the attached workers in line with the job table: joins, controls and ends. */
  async reconcile (jobs: JobRecord[]): Promise<void> {
    const training = jobs.filter(j => j.training != null)
    for (const a of this.#attached.values()) {
      const jobId = a.view.jobId
      if (jobId != null) {
        const job = training.find(j => j.jobId === jobId)
        if (job == null || !OPEN.includes(job.status) || job.training?.workers.find(w => w.id === a.worker.id)?.status === 'left') {
          a.view.jobId = undefined
          a.desired = undefined
          a.worker.notify({ type: 'end', jobId, status: job?.status ?? 'cancelled', checkpoint: job?.training?.checkpoints.at(-1)?.cid, modelId: job?.training?.modelId, error: job?.error })
          continue
        }
        const desired = job.training?.desired ?? 'run'
        if (desired !== a.desired) {
          a.desired = desired
          a.worker.notify({ type: 'control', jobId, action: desired === 'run' ? 'resume' : desired })
        }
        continue
      }
      if (!a.waiting || a.joining) continue
      // Jobs that are stopping take no one new.
      const open = training.find(j => OPEN.includes(j.status) && j.training?.desired !== 'stop')
      if (open != null) await this.#join(a, open)
    }
  }

  async #join (a: Attached, job: JobRecord): Promise<void> {
    a.joining = true
    try {
      const joined = await this.#c.cluster.changeTraining({ op: 'training.join', jobId: job.jobId, worker: a.worker.id, via: this.#c.self() })
      // It may have disconnected while the log decided.
      if (this.#attached.get(a.worker.id) !== a) return
      const training = joined.training
      const me = training?.workers.find(w => w.id === a.worker.id)
      if (training == null || me == null) return
      a.waiting = false
      a.view.jobId = job.jobId
      a.desired = training.desired
      a.worker.notify({
        type: 'task',
        task: {
          jobId: job.jobId,
          model: joined.modelId !== '' ? joined.modelId : joined.modelCID,
          modelCID: joined.modelCID,
          datasetCID: joined.promptCID,
          spec: joined.params as unknown as TrainingSpec,
          rank: me.rank,
          worldSize: training.workers.filter(w => w.status !== 'left').length
        }
      })
    } catch (err: any) {
      this.#c.log('worker %s could not join job %d - %s', a.worker.id, job.jobId, err.message)
    } finally {
      a.joining = false
    }
  }
}
