/**
 * Document 000's data loader as operations: one call makes a loader of a
 * dataset (or, given a loader's id, answers its status), another closes one.
 * The batches themselves stream from routes/dataloader.ts.
 */
import { Type } from 'typebox'
import { LOADER_LIMITS, RECORD_FORMATS } from '@node-daemon/training'
import { BadRequestError } from './errors.ts'
import { defined } from './inference.ts'
import { defineOperation, Loose } from './operations.ts'
import type { Batch, LoaderStatus } from '@node-daemon/training'

/** Document 000's field names for a loader's status. */
export function loaderJson (s: LoaderStatus): Record<string, unknown> {
  return defined({
    loader_id: s.id,
    dataset_cid: s.dataset.cid,
    dataset_name: s.dataset.name,
    format: s.dataset.format,
    records: s.dataset.records,
    batch_size: s.batchSize,
    shuffle: s.shuffle,
    seed: s.seed,
    prefetch: s.prefetch,
    drop_last: s.dropLast,
    shuffle_buffer: s.shuffleBuffer,
    state: s.state,
    epochs: s.epochs,
    batches_served: s.batches,
    records_served: s.records,
    created_at: s.createdAt,
    last_used_at: s.lastUsedAt,
    expires_at: s.expiresAt,
    error: s.error
  })
}

export function batchJson (b: Batch): object {
  return { loader_id: b.loaderId, epoch: b.epoch, batch: b.batch, size: b.records.length, records: b.records }
}

const LoaderId = Type.String({ minLength: 1, maxLength: 200 })
const Output = Type.Object({ loader_id: Type.String(), loader_status: Loose })

export const dataLoader = defineOperation({
  name: 'ai_data_loader',
  summary: 'Make a data loader of a dataset (by CID or registered name) and answer its id and status; given loader_id, answer that loader\'s status',
  tags: ['ai'],
  permission: 'training',
  input: Type.Object({
    loader_id: Type.Optional(LoaderId),
    dataset_cid: Type.Optional(Type.String({ minLength: 1, description: 'A dataset\'s CID (or /ipfs/ path of a file): JSONL, CSV, text lines, or a tensor dataset' })),
    dataset_name: Type.Optional(Type.String({ minLength: 1, description: 'A dataset\'s registered name (ai/dataset/add)' })),
    batch_size: Type.Optional(Type.Integer({ minimum: 1, maximum: LOADER_LIMITS.batchSize, description: 'Default 32' })),
    shuffle: Type.Optional(Type.Boolean({ description: 'Default true: a seeded shuffle through a buffer of shuffle_buffer records, another order each epoch' })),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description: 'The shuffle\'s seed; random unless given, and reported in the status' })),
    prefetch: Type.Optional(Type.Integer({ minimum: 0, maximum: LOADER_LIMITS.prefetch, description: 'Batches read ahead of the client. Default 2' })),
    drop_last: Type.Optional(Type.Boolean({ description: 'Leave out a last, smaller batch. Default false' })),
    shuffle_buffer: Type.Optional(Type.Integer({ minimum: 1, maximum: LOADER_LIMITS.shuffleBuffer, description: 'Default 1024' })),
    format: Type.Optional(Type.Union(RECORD_FORMATS.map(f => Type.Literal(f)), { description: 'Detected from the first bytes unless given (tensors, jsonl, else text); csv is asked for' })),
    ttl_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: LOADER_LIMITS.ttlMs / 1000, description: 'An idle loader is forgotten after this long. Default 600' }))
  }, { additionalProperties: false }),
  args: ['dataset_cid', 'dataset_name', 'batch_size', 'shuffle', 'prefetch'],
  output: Output,
  run: async (node, input, signal) => {
    const { loader_id: id, dataset_cid: cid, dataset_name: name, ...options } = input
    const loaders = node.training.loaders
    if (id != null) {
      if (cid != null || name != null || Object.keys(options).length > 0) throw new BadRequestError('give a loader_id to ask for its status, or a dataset and options to make a loader, not both')
      return { loader_id: id, loader_status: loaderJson(loaders.status(id)) }
    }
    const dataset = cid ?? name
    if (dataset == null || (cid != null && name != null)) throw new BadRequestError('a data loader needs one of dataset_cid and dataset_name')
    const status = await loaders.create(dataset, defined({
      batchSize: options.batch_size,
      shuffle: options.shuffle,
      seed: options.seed,
      prefetch: options.prefetch,
      dropLast: options.drop_last,
      shuffleBuffer: options.shuffle_buffer,
      format: options.format,
      ttlMs: options.ttl_seconds == null ? undefined : options.ttl_seconds * 1000
    }), { signal })
    return { loader_id: status.id, loader_status: loaderJson(status) }
  }
})

export const closeDataLoader = defineOperation({
  name: 'ai_data_loader_close',
  summary: 'Close a data loader: its id is forgotten at once, as it is when it expires',
  tags: ['ai'],
  permission: 'training',
  input: Type.Object({ loader_id: LoaderId }, { additionalProperties: false }),
  args: ['loader_id'],
  output: Output,
  run: async (node, { loader_id: id }) => ({ loader_id: id, loader_status: loaderJson(node.training.loaders.close(id)) })
})
