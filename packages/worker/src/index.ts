/**
 * An external training worker (document 004's client): a process that
 * connects to a node's worker WebSocket and computes its share of the
 * cluster's training jobs, without joining the swarm or Raft. The node
 * relays the coordinator's steps to it; `node-daemon worker` runs one.
 */
export { createWorker, FarmWorker, ContentFetchError } from './worker.ts'
export type { FarmWorkerComponents, FarmWorkerEvents, FarmWorkerInit, TaskOutcome } from './worker.ts'
export { ack, errorMessage, InvalidWorkerMessageError, noticeMessage, parseClientMessage } from './messages.ts'
export type { ClientMessage, ServerMessage, TaskData, TrainingMetrics } from './messages.ts'
