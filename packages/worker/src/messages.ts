/**
 * Document 004's worker WebSocket messages, as JSON text frames, both ways.
 * Steps of a job travel beside them as binary frames: a StepRequest from the
 * node, a StepResponse back (protocols/training.proto), one at a time.
 */
import { taskIdOf } from '@node-daemon/cluster'
import type { TaskAssignment, WorkerNotice } from '@node-daemon/training'

export interface TrainingMetrics {
  loss?: number
  accuracy?: number
  learning_rate?: number
}

export type ClientMessage =
  | { type: 'task_request', client_id?: string, timestamp?: string }
  | { type: 'task_progress', task_id: string, client_id?: string, progress: number, metrics?: TrainingMetrics, timestamp?: string }
  | { type: 'task_result', task_id: string, client_id?: string, status: string, metrics?: Record<string, number>, checkpoint_path?: string, timestamp?: string }
  | { type: 'heartbeat', client_id?: string, system_info?: Record<string, number>, timestamp?: string }

/** The task document 004 assigns, with what a worker of this daemon needs besides. */
export interface TaskData {
  id: string
  type: 'training'
  config: {
    name: string
    batch_size: number
    learning_rate: number
    epochs: number
    distributed: boolean
    rank: number
    world_size: number
    optimizer: string
    model_cid: string
    dataset_cid: string
  }
  requirements: Record<string, number>
}

export type ServerMessage =
  | { type: 'task', data: TaskData, timestamp: string }
  /** `stop` when the job ends also says how: its status, last checkpoint and saved model. */
  | { type: 'control', action: 'pause' | 'resume' | 'stop', task_id: string, status?: string, checkpoint_path?: string, model_id?: string, error?: string, timestamp: string }
  | { type: 'task_result_ack' | 'task_progress_ack' | 'heartbeat_ack' | 'task_request_ack', task_id?: string, received: true, timestamp: string }
  | { type: 'error', error: { code: string, message: string }, timestamp: string }

/** A message a peer sent that is not one of the protocol's. */
export class InvalidWorkerMessageError extends Error {
  static name = 'InvalidWorkerMessageError'
  name = 'InvalidWorkerMessageError'
}

function now (): string {
  return new Date().toISOString()
}

/** What the node tells a worker, as document 004 words it. */
export function noticeMessage (notice: WorkerNotice): ServerMessage {
  if (notice.type === 'task') return { type: 'task', data: taskData(notice.task), timestamp: now() }
  if (notice.type === 'control') return { type: 'control', action: notice.action, task_id: taskIdOf(notice.jobId), timestamp: now() }
  return {
    type: 'control',
    action: 'stop',
    task_id: taskIdOf(notice.jobId),
    status: notice.status,
    ...(notice.checkpoint == null ? {} : { checkpoint_path: `/ipfs/${notice.checkpoint}` }),
    ...(notice.modelId == null ? {} : { model_id: notice.modelId }),
    ...(notice.error == null ? {} : { error: notice.error }),
    timestamp: now()
  }
}

function taskData (task: TaskAssignment): TaskData {
  return {
    id: taskIdOf(task.jobId),
    type: 'training',
    config: {
      name: task.spec.name ?? task.model,
      batch_size: task.spec.batchSize,
      learning_rate: task.spec.learningRate,
      epochs: task.spec.epochs,
      distributed: task.worldSize > 1,
      rank: task.rank,
      world_size: task.worldSize,
      optimizer: task.spec.optimizer,
      model_cid: task.modelCID,
      dataset_cid: task.datasetCID
    },
    // The node asks nothing of an external worker's machine: it takes any that connects.
    requirements: {}
  }
}

export function ack (type: 'task_result_ack' | 'task_progress_ack' | 'heartbeat_ack' | 'task_request_ack', task?: string): ServerMessage {
  return { type, ...(task == null ? {} : { task_id: task }), received: true, timestamp: now() }
}

export function errorMessage (code: string, message: string): ServerMessage {
  return { type: 'error', error: { code, message }, timestamp: now() }
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value != null && !Array.isArray(value)
}

function numbers (value: unknown, field: string): Record<string, number> | undefined {
  if (value == null) return undefined
  if (!isRecord(value) || Object.values(value).some(v => typeof v !== 'number' || !Number.isFinite(v))) throw new InvalidWorkerMessageError(`${field} must be an object of numbers`)
  return value as Record<string, number>
}

function string (value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw new InvalidWorkerMessageError(`${field} must be a non-empty string`)
  return value
}

/** Checks a client's text frame; throws InvalidWorkerMessageError naming what is wrong. */
export function parseClientMessage (text: string): ClientMessage {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new InvalidWorkerMessageError('a message must be a JSON object')
  }
  if (!isRecord(value)) throw new InvalidWorkerMessageError('a message must be a JSON object')
  switch (value.type) {
    case 'task_request':
      return { type: 'task_request' }
    case 'heartbeat': {
      const systemInfo = numbers(value.system_info, 'system_info')
      return { type: 'heartbeat', ...(systemInfo == null ? {} : { system_info: systemInfo }) }
    }
    case 'task_progress': {
      const progress = value.progress
      if (typeof progress !== 'number' || !(progress >= 0 && progress <= 100)) throw new InvalidWorkerMessageError('progress must be a percentage from 0 to 100')
      const metrics = numbers(value.metrics, 'metrics')
      return { type: 'task_progress', task_id: string(value.task_id, 'task_id'), progress, ...(metrics == null ? {} : { metrics }) }
    }
    case 'task_result': {
      const metrics = numbers(value.metrics, 'metrics')
      const checkpoint = value.checkpoint_path
      if (checkpoint != null && typeof checkpoint !== 'string') throw new InvalidWorkerMessageError('checkpoint_path must be a string')
      return { type: 'task_result', task_id: string(value.task_id, 'task_id'), status: string(value.status, 'status'), ...(metrics == null ? {} : { metrics }), ...(checkpoint == null ? {} : { checkpoint_path: checkpoint }) }
    }
    default:
      throw new InvalidWorkerMessageError(`unknown message type ${JSON.stringify(value.type)}: expected task_request, task_progress, task_result or heartbeat`)
  }
}
