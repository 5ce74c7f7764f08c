/**
 * Pure mappings from the cluster's job table to document 004's tasks and
 * metrics. Inference and training jobs are both tasks there; routes fetch,
 * these shape and count.
 */
import { JobNotFoundError, taskIdOf, workedOn } from '@node-daemon/cluster'
import { nodeStatus, percent, usage } from './cluster-views.ts'
import type { JobKind, JobRecord, JobStatus, NodeView } from '@node-daemon/cluster'
import type { Inference, TaskView } from '@node-daemon/inference'
import type { AbortOptions } from '@libp2p/interface'

/** Document 004's statuses: document 001's four, and what a training job can also be. */
export const TASK_STATUSES = ['pending', 'running', 'paused', 'completed', 'failed', 'stopped', 'cancelled'] as const
export type TaskStatus = typeof TASK_STATUSES[number]

export const TASK_STATUS: Record<JobStatus, TaskStatus> = {
  requested: 'pending',
  running: 'running',
  paused: 'paused',
  completed: 'completed',
  failed: 'failed',
  stopped: 'stopped',
  cancelled: 'cancelled'
}

/** The job id of `task_<n>` or a bare `<n>`; any other id names no task. */
export function jobIdOf (taskId: string): number {
  const jobId = Number(/^(?:task_)?(\d+)$/.exec(taskId)?.[1] ?? NaN)
  if (!Number.isSafeInteger(jobId)) throw new JobNotFoundError(`no task ${JSON.stringify(taskId)}`)
  return jobId
}

/** Percent done, one decimal: an inference task is done or not; a training task by its steps. */
export function progressOf (job: JobRecord): number {
  if (job.kind === 'inference') return job.status === 'completed' ? 100 : 0
  const p = job.training?.progress
  return p == null || p.totalSteps <= 0 ? 0 : percent(p.step / p.totalSteps)
}

/** The latest time the job table recorded for the job: submitted, started, completed or its last checkpoint. */
export function updatedAt (job: JobRecord): string {
  const times = [job.submittedAt, job.startedAt, job.completedAt, job.training?.checkpoints.at(-1)?.at]
    .filter((t): t is string => t != null)
  return times.reduce((latest, t) => Date.parse(t) > Date.parse(latest) ? t : latest)
}

export interface TaskFields {
  id: string
  type: JobKind
  status: TaskStatus
  progress: number
  created_at: string
  updated_at: string
}

/** The fields document 004 gives every task, in its list and its details. */
export function taskFields (job: JobRecord): TaskFields {
  return { id: taskIdOf(job.jobId), type: job.kind, status: TASK_STATUS[job.status], progress: progressOf(job), created_at: job.submittedAt, updated_at: updatedAt(job) }
}

/** A task as document 004 shows it; an inference task with document 001's fields, read from its prompt and response. */
export async function taskJson (inference: Pick<Inference, 'task'>, job: JobRecord, options: AbortOptions): Promise<object> {
  return job.kind === 'training' ? trainingTaskJson(job) : inferenceTaskJson(job, await inference.task(job, options))
}

/** An inference task: document 001's view (prompt, response, CIDs, worker, timing) with document 004's fields. */
export function inferenceTaskJson (job: JobRecord, view: TaskView): object {
  return { ...view, ...taskFields(job) }
}

/** Document 004's training metrics; accuracy only where the labels allow it. */
function trainingMetrics (job: JobRecord): object {
  const p = job.training?.progress
  return {
    loss: p?.loss ?? null,
    ...(p?.accuracy == null ? {} : { accuracy: p.accuracy }),
    learning_rate: p?.learningRate ?? null,
    samples_per_second: p?.samplesPerSecond ?? null
  }
}

/** A training task with its metrics, its config as document 004's task message gives it, and its workers. */
export function trainingTaskJson (job: JobRecord): object {
  const t = job.training
  const params = job.params
  // An external worker that left no longer takes a slice of the batch.
  const worldSize = (t?.workers ?? []).filter(w => w.status !== 'left').length
  return {
    ...taskFields(job),
    taskId: taskIdOf(job.jobId),
    jobId: job.jobId,
    metrics: trainingMetrics(job),
    config: {
      name: params.name ?? null,
      model: job.modelId === '' ? job.modelCID : job.modelId,
      dataset: job.promptCID,
      batch_size: params.batchSize ?? null,
      learning_rate: params.learningRate ?? null,
      epochs: params.epochs ?? null,
      optimizer: params.optimizer ?? null,
      strategy: params.strategy ?? null,
      distributed: worldSize > 1,
      world_size: worldSize
    },
    workers: (t?.workers ?? []).map(w => ({ id: w.id, rank: w.rank, status: w.status, ...(w.via == null ? {} : { via: w.via }) })),
    coordinator: t?.coordinator ?? null,
    checkpoints: t?.checkpoints ?? [],
    model_id: t?.modelId ?? null,
    error: job.error ?? null
  }
}

export interface TaskFilter {
  type?: JobKind
  status?: TaskStatus
  since?: Date
}

export function matches (job: JobRecord, filter: TaskFilter): boolean {
  return (filter.type == null || job.kind === filter.type) &&
    (filter.status == null || TASK_STATUS[job.status] === filter.status) &&
    (filter.since == null || Date.parse(job.submittedAt) >= filter.since.getTime())
}

export interface Page<T> {
  items: T[]
  total: number
  page: number
  /** At least 1: an empty list still has its first page. */
  pageCount: number
}

/** Page `page` (from 1) of `limit` items; a page past the last is empty. */
export function pageOf<T> (items: T[], page: number, limit: number): Page<T> {
  return { items: items.slice((page - 1) * limit, page * limit), total: items.length, page, pageCount: Math.max(1, Math.ceil(items.length / limit)) }
}

/**
 * RFC 8288 links to the next, previous, first and last pages of `url`, whose
 * other query parameters (limit, filters) they keep.
 */
export function pageLinks (url: URL, page: number, pageCount: number): string {
  const link = (n: number, rel: string): string => {
    const target = new URL(url)
    target.searchParams.set('page', String(n))
    return `<${target.href}>; rel="${rel}"`
  }
  return [
    ...(page < pageCount ? [link(page + 1, 'next')] : []),
    ...(page > 1 ? [link(Math.min(page - 1, pageCount), 'prev')] : []),
    link(1, 'first'),
    link(pageCount, 'last')
  ].join(', ')
}

export interface ResourceUsage {
  cpu_usage: number | null
  ram_usage: number | null
  gpu_usage: number | null
}

/** Mean usage in percent over the online nodes that reported resources; GPU over those with GPUs, null without. */
export function meanUsage (nodes: NodeView[]): ResourceUsage {
  const usages = nodes.filter(n => n.online && n.resources != null).map(n => usage(n.resources as NonNullable<NodeView['resources']>))
  const mean = (values: number[]): number | null => values.length === 0 ? null : percent(values.reduce((sum, v) => sum + v, 0) / values.length)
  return {
    cpu_usage: mean(usages.map(u => u.cpu)),
    ram_usage: mean(usages.map(u => u.memory)),
    gpu_usage: mean(usages.flatMap(u => u.gpu == null ? [] : [u.gpu]))
  }
}

/**
 * Document 004's system metrics: clients are the cluster's nodes, active
 * when online and not drained, and the external workers connected to this node.
 */
export function systemMetricsJson (nodes: NodeView[], jobs: JobRecord[], externalWorkers = 0): object {
  return {
    clients: { total: nodes.length + externalWorkers, active: nodes.filter(n => nodeStatus(n) === 'active').length + externalWorkers },
    tasks: { total: jobs.length, ...Object.fromEntries(TASK_STATUSES.map(s => [s, jobs.filter(j => TASK_STATUS[j.status] === s).length])) },
    resources: meanUsage(nodes)
  }
}

/** Peer ids of the cluster nodes that work on a job; external training workers are not nodes. */
export function workerNodes (job: JobRecord): string[] {
  if (job.kind === 'inference') return job.worker == null ? [] : [job.worker]
  return (job.training?.workers ?? []).filter(w => w.via == null).map(w => w.id)
}

/**
 * Document 004's metrics of one task, with the mean usage of its worker
 * nodes; an inference task's metrics are what its worker measured (tokens, durations).
 */
export function taskMetricsJson (job: JobRecord, nodes: NodeView[]): object {
  const workers = new Set(workerNodes(job))
  return {
    progress: progressOf(job),
    metrics: job.kind === 'training' ? trainingMetrics(job) : { ...job.metrics },
    resources: meanUsage(nodes.filter(n => workers.has(n.id)))
  }
}

/** Document 004's `tasks` and `performance` of a client, from the jobs it worked on. */
export function clientWork (jobs: JobRecord[], clientId: string): { tasks: object[], performance: object } {
  const mine = jobs.filter(j => workedOn(j, clientId))
  const completed = mine.filter(j => j.status === 'completed')
  const failed = mine.filter(j => j.status === 'failed').length
  const timed = completed.filter(j => j.startedAt != null && j.completedAt != null)
  const seconds = timed.reduce((sum, j) => sum + (Date.parse(j.completedAt as string) - Date.parse(j.startedAt as string)) / 1000, 0)
  return {
    tasks: mine.map(j => ({ id: taskIdOf(j.jobId), type: j.kind, status: TASK_STATUS[j.status], progress: progressOf(j) })),
    performance: {
      completed_tasks: completed.length,
      average_time: timed.length > 0 ? seconds / timed.length : null,
      success_rate: completed.length + failed > 0 ? completed.length / (completed.length + failed) : null
    }
  }
}
