/**
 * Document 003's training sessions as its routes show them, from the job
 * table's training jobs: the REST routes, the operations GraphQL and the
 * method caller reach, and the event socket share these mappings.
 */
import { BadRequestError } from './errors.ts'
import type { JobRecord, JobStatus } from '@node-daemon/cluster'
import type { StepMetrics } from '@node-daemon/training'

/** Document 003 names sessions `training_…`; the job table numbers them. */
export const sessionId = (job: JobRecord): string => `training_${job.jobId}`

/** The job id of `training_<n>` or a bare `<n>`; undefined for none given, which means the latest session. */
export function sessionJobIdOf (value: unknown): number | undefined {
  if (value == null || value === '') return undefined
  const match = /^(?:training_)?(\d+)$/.exec(String(value))
  if (match == null) throw new BadRequestError(`session ${JSON.stringify(value)} is not a training session id`)
  return Number(match[1])
}

/** Document 003's statuses, with `pending` before the coordinator starts and `paused`. */
export const STATUS: Record<JobStatus, string> = { requested: 'pending', running: 'running', paused: 'paused', completed: 'completed', failed: 'failed', cancelled: 'stopped', stopped: 'stopped' }

/** A training job as document 003's status. */
export function trainingJson (job: JobRecord): object {
  const t = job.training
  const p = t?.progress
  const last = t?.checkpoints.at(-1)
  return {
    session_id: sessionId(job),
    task_id: sessionId(job),
    status: STATUS[job.status],
    progress: {
      epoch: p?.epoch ?? 0,
      total_epochs: p?.totalEpochs ?? Number(job.params.epochs ?? 0),
      loss: p?.loss ?? null,
      accuracy: p?.accuracy ?? null,
      step: p?.step ?? 0,
      total_steps: p?.totalSteps ?? null,
      samples_per_second: p?.samplesPerSecond ?? null,
      learning_rate: p?.learningRate ?? null
    },
    nodes: (t?.workers ?? []).map(w => ({
      id: w.id,
      rank: w.rank,
      // dropped, joining (an external worker not yet taken in) and left say more than the job's status.
      status: w.status !== 'training' ? w.status : job.status === 'running' ? 'training' : STATUS[job.status],
      coordinator: w.id === t?.coordinator,
      ...(w.via == null ? {} : { external: true, via: w.via }),
      drops: w.drops ?? 0,
      ...(w.error == null ? {} : { last_error: w.error }),
      batch_progress: p?.totalSteps != null && p.totalSteps > 0 ? p.step / p.totalSteps : 0
    })),
    model_id: t?.modelId ?? null,
    model: job.modelId === '' ? job.modelCID : job.modelId,
    model_cid: job.modelCID,
    dataset: job.promptCID,
    coordinator: t?.coordinator ?? null,
    checkpoint_cid: last?.cid ?? null,
    checkpoints: t?.checkpoints ?? [],
    config: job.params,
    error: job.error ?? null,
    created_at: job.submittedAt,
    started_at: job.startedAt ?? null,
    completed_at: job.completedAt ?? null
  }
}

/** A step of a session this node coordinates, as document 003's training_progress event. */
export function stepEvent (m: StepMetrics): { type: 'training_progress', data: object } {
  return {
    type: 'training_progress',
    data: { session_id: `training_${m.jobId}`, step: m.step, total_steps: m.totalSteps, epoch: m.epoch, total_epochs: m.totalEpochs, loss: m.loss, accuracy: m.accuracy ?? null, samples_per_second: m.samplesPerSecond, learning_rate: m.learningRate, workers: m.workers, step_ms: m.stepMs, exchange_ms: m.exchangeMs }
  }
}
