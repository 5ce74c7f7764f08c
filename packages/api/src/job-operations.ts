/**
 * The operations on the node's work: datasets, training sessions and tasks
 * (the job table's inference and training jobs). Document 000's method
 * caller and GraphQL reach them; document 003's session routes are mapped
 * onto them; each answer is the view its REST route gives.
 */
import { Type } from 'typebox'
import { defineOperation, Loose } from './operations.ts'
import { jobIdOf, matches, TASK_STATUSES, taskJson } from './task-views.ts'
import { sessionJobIdOf, trainingJson } from './training-views.ts'
import type { DatasetRecord } from '@node-daemon/training'

/** What a registration of a model or dataset may say of it, kept in its registry record. */
export const RegisteredInfoFields = {
  framework: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'The framework it was made with or for: onnx, pytorch…' })),
  license: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: 'Its license: an SPDX id or a name' }))
}

/** Document 000's answer for a dataset: its CID, and the rest of what the registry says of it as metadata. */
export function datasetAnswer (dataset: DatasetRecord): { cid: string, metadata: object } {
  const { cid, ...metadata } = dataset
  return { cid, metadata }
}

const DatasetOutput = Type.Object({ cid: Type.String(), metadata: Loose })

export const aiDatasetAdd = defineOperation({
  name: 'ai_dataset_add',
  summary: 'Add a dataset given in the call (JSONL text, or a safetensors file in base64) and register it; larger ones go through /api/v0/ai/dataset/add',
  tags: ['ai'],
  permission: 'training',
  input: Type.Object({
    dataset: Type.String({ minLength: 1, description: 'The bytes: JSONL text, or base64 with encoding "base64"' }),
    metadata: Type.Optional(Type.Object({
      name: Type.Optional(Type.String({ minLength: 1, description: 'The registry name; the CID when missing' })),
      description: Type.Optional(Type.String()),
      ...RegisteredInfoFields
    }, { additionalProperties: false })),
    encoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('base64')], { default: 'utf8' }))
  }, { additionalProperties: false }),
  args: ['dataset', 'metadata'],
  output: DatasetOutput,
  run: async (node, input, signal) => datasetAnswer(await node.training.addDataset(Buffer.from(input.dataset, input.encoding === 'base64' ? 'base64' : 'utf8'), input.metadata, { signal }))
})

export const aiDatasetGet = defineOperation({
  name: 'ai_dataset_get',
  summary: "A dataset's CID and metadata: format, records, and what its registration said (its bytes: /api/v0/ai/dataset/get)",
  tags: ['ai'],
  permission: 'training',
  input: Type.Object({ dataset_cid: Type.String({ minLength: 1, description: "The dataset's CID, or its registered name" }) }, { additionalProperties: false }),
  args: ['dataset_cid'],
  output: DatasetOutput,
  run: async (node, input, signal) => datasetAnswer(await node.training.dataset(input.dataset_cid, { signal }))
})

export const aiDatasetList = defineOperation({
  name: 'ai_dataset_list',
  summary: 'Registered datasets with their metadata',
  tags: ['ai'],
  permission: 'training',
  input: Type.Object({}, { additionalProperties: false }),
  args: [],
  output: Type.Object({ datasets: Type.Array(DatasetOutput) }),
  run: async (node, _input, signal) => {
    const records = await node.training.datasets({ signal })
    return { datasets: await Promise.all(records.map(async r => datasetAnswer(await node.training.dataset(r.modelId, { signal })))) }
  }
})

export const trainingStatus = defineOperation({
  name: 'training_status',
  summary: 'A training session (default the latest): status, progress, nodes, checkpoints, model_id',
  tags: ['training'],
  permission: 'training',
  input: Type.Object({ session_id: Type.Optional(Type.String({ description: 'training_<n>; the latest session when missing' })) }, { additionalProperties: false }),
  args: ['session_id'],
  output: Type.Object({ session: Loose }),
  run: async (node, input, signal) => ({ session: trainingJson(await node.training.job(sessionJobIdOf(input.session_id), { signal })) })
})

export const trainingSessions = defineOperation({
  name: 'training_sessions',
  summary: 'Every training session, newest first',
  tags: ['training'],
  permission: 'training',
  input: Type.Object({}, { additionalProperties: false }),
  args: [],
  output: Type.Object({ sessions: Type.Array(Loose) }),
  run: async (node, _input, signal) => ({ sessions: (await node.training.jobs({ signal })).map(trainingJson) })
})

export const taskGet = defineOperation({
  name: 'task_get',
  summary: "A task of the job table: an inference task's prompt, response, CIDs, worker and timing; a training task's progress, metrics, config and workers",
  tags: ['tasks'],
  permission: 'tasks',
  input: Type.Object({ task_id: Type.String({ minLength: 1, description: 'task_<n>, or the job id' }) }, { additionalProperties: false }),
  args: ['task_id'],
  output: Type.Object({ task: Loose }),
  run: async (node, input, signal) => ({ task: await taskJson(node.inference, await node.cluster.job(jobIdOf(input.task_id), { signal }), { signal }) })
})

export const taskList = defineOperation({
  name: 'task_list',
  summary: 'Inference and training tasks, newest first',
  tags: ['tasks'],
  permission: 'tasks',
  input: Type.Object({
    type: Type.Optional(Type.Union([Type.Literal('inference'), Type.Literal('training')])),
    status: Type.Optional(Type.Union(TASK_STATUSES.map(s => Type.Literal(s)))),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 }))
  }, { additionalProperties: false }),
  args: ['type', 'status', 'limit'],
  output: Type.Object({ tasks: Type.Array(Loose), total: Type.Integer() }),
  run: async (node, input, signal) => {
    const jobs = (await node.cluster.jobs({ limit: Infinity }, { signal })).filter(job => matches(job, input))
    return { tasks: await Promise.all(jobs.slice(0, input.limit).map(async job => taskJson(node.inference, job, { signal }))), total: jobs.length }
  }
})
