/**
 * The commands that go through the Raft log, and their encoding. Every
 * command carries its proposer and the proposer's clock, so that applying
 * it gives the same records on every node. Commands are JSON: they are small,
 * and the history shows them as they were.
 */
import { parseCID } from '@node-daemon/content'
import { InvalidClusterRequestError } from './errors.ts'
import type { JoinRole } from './join-token.ts'
import type { Allocation, ChunkingPolicy, MetadataFieldType, ModelKind, RegisteredInfo, Resources, SigningKey, TrainingProgress, TrainingWorker } from './types.ts'
import type { StoredCredential } from '@node-daemon/access'

interface Base {
  /** Proposer's clock, milliseconds since the epoch. */
  at: number
  /** Proposer's peer id. */
  by: string
}

/** Context of a membership change that adds a node: what the state records of it. */
export interface JoinContext extends Base {
  addrs: string[]
  apiUrl?: string
  /** The join token the node was admitted with, less its signature (which would let anyone reading the log use it): a `voter` token makes it trusted. */
  token?: { issuer: string, role: JoinRole, nonce: string }
}

export type Command = Base & (
  | { op: 'node.report', id: string, addrs: string[], apiUrl?: string, resources: Resources, pinQueue: number }
  | { op: 'node.status', id: string, online: boolean }
  | { op: 'node.drain', id: string, drained: boolean }
  | { op: 'node.allocation', id: string, allocation: Partial<Allocation>, registered?: boolean }
  | { op: 'pin.add', cid: string, name: string, rmin: number, rmax: number, size: number, meta?: Record<string, string>, origins?: string[] }
  | { op: 'pin.rm', cid: string }
  | { op: 'pin.rebalance' }
  | { op: 'pin.migrate', cid: string, from: string, to: string }
  | { op: 'pin.allocate', cid: string, to: string }
  | { op: 'pin.deallocate', cid: string, from: string }
  | { op: 'model.register', modelId: string, modelCID: string, name: string, description: string, kind: ModelKind, metadata: Record<string, unknown>, size: number, replicationFactor: number } & RegisteredInfo
  | { op: 'model.update', modelId: string, modelCID: string, size: number, expectedVersion?: number, description?: string, metadata?: Record<string, unknown> } & RegisteredInfo
  | { op: 'model.active', modelId: string, active: boolean }
  | { op: 'model.remove', modelId: string }
  | { op: 'document.put', family: string, name: string, version: string, cid: string, metadata: Record<string, unknown>, size: number, replicationFactor: number }
  | { op: 'job.submit', kind: 'inference' | 'training', promptCID: string, modelId?: string, modelCID?: string, params: Record<string, unknown> }
  | { op: 'job.start', jobId: number }
  | { op: 'job.complete', jobId: number, responseCID: string, metrics?: Record<string, number> }
  | { op: 'job.fail', jobId: number, error: string }
  | { op: 'job.cancel', jobId: number, reason: string }
  | { op: 'job.remove', jobId: number }
  | { op: 'collection.create', name: string, embeddingModel: string, chunking: ChunkingPolicy, metadataSchema: Record<string, MetadataFieldType>, replicationFactor: number }
  /** Moves the head if it still is `expectedHead`, so that two writers cannot lose each other's chunks; a re-index's head brings its model. */
  | { op: 'collection.head', name: string, headCID: string, expectedHead: string, chunks: number, size: number, embeddingModel?: string }
  | { op: 'collection.remove', name: string }
  | { op: 'credential.put', credential: StoredCredential }
  | { op: 'credential.remove', id: string }
  | { op: 'signing-key.put', kid: string, jwk: SigningKey }
  | TrainingChange
  /** Commands proposed together on one node (group commit), applied in order in one entry, each with its own outcome. */
  | { op: 'batch', commands: Command[] }
)

/** The changes a training job goes through; only its coordinator reports progress and the end. */
export type TrainingChange =
  | { op: 'training.submit', spec: Record<string, unknown>, modelId?: string, modelCID: string, datasetCID: string, coordinator: string, workers: string[] }
  | { op: 'training.progress', jobId: number, status: 'running' | 'paused', workers: TrainingWorker[], progress?: TrainingProgress, checkpoint?: { step: number, cid: string } }
  | { op: 'training.control', jobId: number, action: 'pause' | 'resume' | 'stop' }
  | { op: 'training.finish', jobId: number, status: 'completed' | 'stopped', checkpoint?: { step: number, cid: string }, responseCID?: string }
  | { op: 'training.handover', jobId: number, from: string, to: string }
  | { op: 'training.saved', jobId: number, modelId: string }
  | { op: 'training.join', jobId: number, worker: string, via: string }
  | { op: 'training.leave', jobId: number, worker: string }

export type Op = Command['op']

/** Distributes over the union, so that each op keeps its own fields. */
type WithoutBase<T> = T extends unknown ? Omit<T, 'at' | 'by'> : never
export type CommandBody = WithoutBase<Command>

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function encodeCommand (command: Command): Uint8Array {
  return encoder.encode(JSON.stringify(command))
}

export function decodeCommand (bytes: Uint8Array): Command {
  const command = JSON.parse(decoder.decode(bytes))
  if (typeof command !== 'object' || command == null || typeof command.op !== 'string') throw new InvalidClusterRequestError('not a cluster command')
  return command
}

export function encodeJoinContext (context: JoinContext): Uint8Array {
  return encoder.encode(JSON.stringify(context))
}

export function decodeJoinContext (bytes: Uint8Array): JoinContext | undefined {
  if (bytes.byteLength === 0) return undefined
  return JSON.parse(decoder.decode(bytes))
}

/** The canonical string of a CID given by a user; rejects anything else before it reaches the log. */
export function checkCID (cid: string, what = 'cid'): string {
  try {
    return parseCID(cid.replace(/^\/ipfs\//, '')).toString()
  } catch {
    throw new InvalidClusterRequestError(`${what} ${JSON.stringify(cid.slice(0, 100))} is not a valid CID`)
  }
}
