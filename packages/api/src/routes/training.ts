import { Type } from 'typebox'
import { option } from '../args.ts'
import { trainingShape } from '../error-shapes.ts'
import { BadRequestError } from '../errors.ts'
import { DEFAULT_GENERATE_MODEL, defined, workSignal } from '../inference.ts'
import { fieldsAndFile, formMetadata } from '../multipart.ts'
import { requestSignal, sendBytes } from '../stream.ts'
import { datasetAnswer, trainingSessions, trainingStatus } from '../job-operations.ts'
import { registeredModel } from '../models.ts'
import { invoke } from '../operations.ts'
import { sessionJobIdOf, sessionId, STATUS, stepEvent, trainingJson } from '../training-views.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'
import type { JobRecord, JobStatus } from '@node-daemon/cluster'
import type { DatasetInfo, StepMetrics, TrainingRequest, TrainingService } from '@node-daemon/training'
import type { FastifyReply } from 'fastify'
import type { Static } from 'typebox'

/** Datasets up to this size come through the API in one request. */
const MAX_DATASET_BYTES = 1024 * 1024 * 1024

const StartBody = Type.Object({
  dataset: Type.String({ minLength: 1, description: 'CID of a dataset (see /api/v0/ai/dataset/add) or its registered name' }),
  model: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Object({}, { additionalProperties: true })], { description: `A registered model, a model directory's CID, or a config.json of an architecture to train from scratch (model_type mlp-classifier or gpt2). Default: ${DEFAULT_GENERATE_MODEL} for a text dataset, an MLP for a tensor dataset` })),
  epochs: Type.Optional(Type.Integer({ minimum: 1 })),
  batch_size: Type.Optional(Type.Integer({ minimum: 1 })),
  learning_rate: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  optimizer: Type.Optional(Type.String({ description: 'adamw (default) or sgd' })),
  momentum: Type.Optional(Type.Number()),
  weight_decay: Type.Optional(Type.Number()),
  clip_norm: Type.Optional(Type.Number()),
  schedule: Type.Optional(Type.String({ description: 'constant (default) or cosine' })),
  warmup_steps: Type.Optional(Type.Integer()),
  seed: Type.Optional(Type.Integer()),
  sequence_length: Type.Optional(Type.Integer()),
  checkpoint_every: Type.Optional(Type.Integer({ minimum: 1 })),
  nodes: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], { description: 'How many nodes, or which (peer ids); default 1, this node' })),
  strategy: Type.Optional(Type.String({ description: 'data_parallel (default) or cooperative_sgd: synchronous gradient averaging' })),
  name: Type.Optional(Type.String({ minLength: 1, description: 'The name the trained model is registered under' }))
}, { additionalProperties: false })

/** The model a request that names none trains: the node's language model for text, a 64-unit MLP sized to a tensor dataset. */
export function defaultTrainingModel (dataset: DatasetInfo): TrainingRequest['model'] {
  return dataset.format === 'text' ? DEFAULT_GENERATE_MODEL : { model_type: 'mlp-classifier', inputs: dataset.features, hidden: [64], classes: dataset.classes }
}

/** Snake-case API fields to the service's request. */
async function trainingRequest (training: TrainingService, body: Static<typeof StartBody>, signal: AbortSignal): Promise<TrainingRequest> {
  const dataset = await training.dataset(body.dataset, { signal })
  return {
    dataset: dataset.cid,
    model: (body.model as TrainingRequest['model'] | undefined) ?? defaultTrainingModel(dataset),
    epochs: body.epochs,
    batchSize: body.batch_size,
    learningRate: body.learning_rate,
    optimizer: body.optimizer,
    momentum: body.momentum,
    weightDecay: body.weight_decay,
    clipNorm: body.clip_norm,
    schedule: body.schedule,
    warmupSteps: body.warmup_steps,
    seed: body.seed,
    sequenceLength: body.sequence_length,
    checkpointEvery: body.checkpoint_every,
    nodes: body.nodes,
    strategy: body.strategy,
    name: body.name
  }
}

const SessionQuery = Type.Object({ session_id: Type.Optional(Type.String()), task_id: Type.Optional(Type.String()) })
const SessionBody = Type.Object({ session_id: Type.Optional(Type.String()), name: Type.Optional(Type.String({ minLength: 1 })) })

const MetricsQuery = Type.Object({
  model_id: Type.Optional(Type.String({ description: 'A registered model (a bare name is name:latest) or a CID: its inference jobs, and the sessions that trained from it or saved it' })),
  task_id: Type.Optional(Type.String({ description: 'One training session' })),
  metrics_type: Type.Optional(Type.Union([Type.Literal('all'), Type.Literal('training'), Type.Literal('inference')], { default: 'all' }))
})

/** Inference jobs by model: how many, how they ended, tokens in and out, and the generation speed the workers measured. */
function inferenceMetrics (jobs: JobRecord[]): object[] {
  const byModel = new Map<string, JobRecord[]>()
  for (const job of jobs) {
    const id = job.modelId === '' ? job.modelCID : job.modelId
    byModel.set(id, [...byModel.get(id) ?? [], job])
  }
  return [...byModel].map(([modelId, of]) => {
    const sum = (key: string): number => of.reduce((total, j) => total + (j.metrics?.[key] ?? 0), 0)
    const evalSeconds = sum('evalNs') / 1e9
    return {
      model_id: modelId,
      requests: of.length,
      completed: of.filter(j => j.status === 'completed').length,
      failed: of.filter(j => j.status === 'failed').length,
      prompt_tokens: sum('promptTokens'),
      eval_tokens: sum('evalTokens'),
      tokens_per_second: evalSeconds > 0 ? sum('evalTokens') / evalSeconds : null
    }
  })
}

/** Document 003's training, model and event routes, and document 000's datasets and distributed jobs, over the node's training service. */
export const trainingRoutes: Routes = (app, { node, shutdown }) => {
  const { training } = node
  const job = async (id: unknown, reply: FastifyReply): Promise<JobRecord> => training.job(sessionJobIdOf(id), { signal: requestSignal(reply) })

  app.post('/api/v1/training/start', { permission: 'training', schema: { body: StartBody, tags: ['training'], summary: 'Start data-parallel training of a model on a dataset across nodes' }, config: { errorShape: trainingShape } }, async (request, reply) => {
    const signal = workSignal(reply, shutdown)
    const submitted = await training.submit(await trainingRequest(training, request.body as Static<typeof StartBody>, signal), { signal })
    return trainingJson(submitted)
  })

  app.get('/api/v1/training/status', { permission: 'training', schema: { querystring: SessionQuery, tags: ['training'], summary: 'A training session (default the latest): status, progress, nodes, model_id' } }, async (request, reply) => {
    const q = request.query as Static<typeof SessionQuery>
    return (await invoke(node, trainingStatus, defined({ session_id: q.session_id ?? q.task_id }), requestSignal(reply))).session
  })

  app.get('/api/v1/training/sessions', { permission: 'training', schema: { tags: ['training'], summary: 'Every training session, newest first' } }, async (_request, reply) => {
    return await invoke(node, trainingSessions, {}, requestSignal(reply))
  })

  for (const action of ['stop', 'pause', 'resume'] as const) {
    app.post(`/api/v1/training/${action}`, { permission: 'training', schema: { body: Type.Optional(SessionBody), tags: ['training'], summary: `${action[0].toUpperCase()}${action.slice(1)} a training session (default the latest); answers once the coordinator did, at its next step (up to 15 s)` } }, async (request, reply) => {
      const target = await job((request.body as Static<typeof SessionBody> | undefined)?.session_id, reply)
      return trainingJson(await training.control(target.jobId, action, { signal: requestSignal(reply), settle: true }))
    })
  }

  app.post('/api/v1/models/save', { permission: 'models:write', schema: { body: Type.Optional(SessionBody), tags: ['training'], summary: "Register the weights of a session's latest checkpoint as a model" } }, async (request, reply) => {
    const body = request.body as Static<typeof SessionBody> | undefined
    const target = await job(body?.session_id, reply)
    const saved = await training.save(target.jobId, { name: body?.name, signal: workSignal(reply, shutdown) })
    return { success: true, model_id: saved.training?.modelId, session_id: sessionId(saved) }
  })

  const LoadBody = Type.Object({ model_id: Type.String({ minLength: 1 }) })
  app.post('/api/v1/models/load', { permission: 'models:write', schema: { body: LoadBody, tags: ['training'], summary: 'Fetch a saved model to this node and pin it' }, config: { errorShape: trainingShape } }, async (request, reply) => {
    const { model_id: modelId } = request.body as Static<typeof LoadBody>
    const signal = workSignal(reply, shutdown)
    for await (const event of node.inference.pull(modelId, { signal })) void event
    const model = await training.download(modelId, { signal })
    return { success: true, model_id: model.name, cid: model.cid }
  })

  app.get('/api/v1/models/:model_id/download', { permission: 'models:read', schema: { params: Type.Object({ model_id: Type.String() }), tags: ['training'], summary: 'The model as one ONNX file, weights inside' } }, async (request, reply) => {
    const { model_id: modelId } = request.params as { model_id: string }
    const model = await training.download(modelId, { signal: requestSignal(reply) })
    reply.header('content-disposition', `attachment; filename="${model.name.replace(/[^\w.-]+/g, '_')}.onnx"`)
    reply.header('x-model-cid', model.cid)
    return reply.type('application/octet-stream').send(Buffer.from(model.bytes.buffer, model.bytes.byteOffset, model.bytes.byteLength))
  })

  // Document 003's events: steps of the jobs this node coordinates, and the changes of every job, node and vote.
  app.get('/api/v1/ws', { permission: 'training', websocket: true, schema: { tags: ['training'], summary: 'WebSocket: training_progress, model_update, node_joined, node_left and consensus_vote events as {type, data, timestamp}' } }, (socket) => {
    const send = (event: object): void => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ ...event, timestamp: new Date().toISOString() }))
    }
    const onStep = (e: CustomEvent<StepMetrics>): void => { send(stepEvent(e.detail)) }
    const onTraining = (e: CustomEvent<{ jobId: number, status: string, step: number, checkpoint?: string }>): void => {
      send({ type: 'model_update', data: { session_id: `training_${e.detail.jobId}`, status: STATUS[e.detail.status as JobStatus], step: e.detail.step, checkpoint_cid: e.detail.checkpoint ?? null } })
    }
    const onModel = (e: CustomEvent<{ modelId: string, modelCID: string }>): void => { send({ type: 'model_update', data: { model_id: e.detail.modelId, cid: e.detail.modelCID } }) }
    const onJoined = (e: CustomEvent<{ id: string, role: string }>): void => { send({ type: 'node_joined', data: { id: e.detail.id, role: e.detail.role } }) }
    const onLeft = (e: CustomEvent<{ id: string }>): void => { send({ type: 'node_left', data: { id: e.detail.id, reason: 'removed' } }) }
    // A node that died or was marked offline has left too, as document 003's clients see it, though it is still a member.
    const onStatus = (e: CustomEvent<{ id: string, online: boolean }>): void => { if (!e.detail.online) send({ type: 'node_left', data: { id: e.detail.id, reason: 'offline' } }) }
    // A committed model version is a vote the cluster accepted (POST /api/v1/consensus/vote, or any update of a model).
    const onVote = (e: CustomEvent<{ modelId: string, modelCID: string, version: number, by: string }>): void => {
      onModel(e)
      send({ type: 'consensus_vote', data: { model_id: e.detail.modelId, model_cid: e.detail.modelCID, version: e.detail.version, proposer: e.detail.by, accepted: true } })
    }
    const listeners: Array<[string, (e: any) => void]> = [['TrainingUpdated', onTraining], ['ModelRegistered', onModel], ['ModelUpdated', onVote], ['NodeJoined', onJoined], ['NodeLeft', onLeft], ['NodeStatus', onStatus]]
    training.addEventListener('step', onStep)
    for (const [type, listener] of listeners) node.cluster.addEventListener(type as any, listener)
    const stop = (): void => { socket.close(1001, 'the daemon is stopping') }
    shutdown.addEventListener('abort', stop, { once: true })
    socket.once('close', () => {
      training.removeEventListener('step', onStep)
      for (const [type, listener] of listeners) node.cluster.removeEventListener(type as any, listener)
      shutdown.removeEventListener('abort', stop)
    })
  })

  // ---- document 000

  kuboRoute(app, {
    path: 'ai/dataset/add',
    permission: 'training',
    tags: ['ai'],
    summary: 'Add a dataset (JSONL with a text field per line, or a safetensors file of features and labels) from a multipart body: fields name, description, framework and license, or them in metadata (JSON), and one file',
    handler: async (request, reply) => {
      const { fields, file } = await fieldsAndFile(request, MAX_DATASET_BYTES)
      if (file == null) throw new BadRequestError('the multipart body has no dataset file')
      const { name, description, framework, license } = formMetadata(fields)
      return { success: true, ...datasetAnswer(await training.addDataset(file, { name, description, framework, license }, { signal: workSignal(reply, shutdown) })) }
    }
  })

  kuboRoute(app, {
    path: 'ai/dataset/get',
    permission: 'training',
    get: true,
    tags: ['ai'],
    summary: 'A dataset file, by CID or name, with its format in Content-Type and X-Dataset-* headers',
    schema: { querystring: Type.Object({ cid: Type.Optional(Type.String()) }) },
    handler: async (request, reply) => {
      const ref = option<string>(request, 'cid')
      if (ref == null || ref === '') throw new BadRequestError('argument "cid" is required')
      const dataset = await training.datasetFile(ref, { signal: requestSignal(reply) })
      reply.header('x-dataset-format', dataset.format)
      reply.header('x-dataset-records', String(dataset.records))
      reply.header('x-dataset-cid', dataset.cid)
      return sendBytes(reply, dataset.content, () => dataset.format === 'text' ? 'application/x-ndjson' : 'application/octet-stream')
    }
  })

  kuboRoute(app, {
    path: 'ai/distributed/submit',
    permission: 'training',
    tags: ['ai'],
    summary: 'Submit a distributed training job: the body of /api/v1/training/start, or it as task_config',
    schema: { body: Type.Union([Type.Object({ task_config: StartBody }), StartBody]) },
    handler: async (request, reply) => {
      const body = request.body as { task_config?: Static<typeof StartBody> } & Static<typeof StartBody>
      const signal = workSignal(reply, shutdown)
      const submitted = await training.submit(await trainingRequest(training, body.task_config ?? body, signal), { signal })
      return { success: true, task_id: sessionId(submitted), status: STATUS[submitted.status] }
    }
  })

  kuboRoute(app, {
    path: 'ai/distributed/status',
    permission: 'training',
    get: true,
    tags: ['ai'],
    summary: 'A distributed training job: status and progress from 0 to 1',
    schema: { querystring: Type.Object({ task_id: Type.Optional(Type.String()) }) },
    handler: async (request, reply) => {
      const target = await job(option<string>(request, 'task_id'), reply)
      const p = target.training?.progress
      const status = trainingJson(target) as { progress: object }
      return { success: true, ...status, progress: p == null || p.totalSteps === 0 ? 0 : p.step / p.totalSteps, details: status.progress }
    }
  })

  kuboRoute(app, {
    path: 'ai/distributed/aggregate',
    permission: 'training',
    tags: ['ai'],
    summary: "A finished job's result: the trained model's CID and the final metrics",
    schema: { querystring: Type.Object({ task_id: Type.Optional(Type.String()) }) },
    handler: async (request, reply) => {
      const target = await job(option<string>(request, 'task_id'), reply)
      if (target.status !== 'completed') throw new BadRequestError(`training job ${target.jobId} is ${STATUS[target.status]}, not completed`)
      const p = target.training?.progress
      return { success: true, task_id: sessionId(target), final_model_cid: target.responseCID, model_id: target.training?.modelId ?? null, checkpoint_cid: target.training?.checkpoints.at(-1)?.cid ?? null, metrics: { loss: p?.loss ?? null, accuracy: p?.accuracy ?? null, steps: p?.step ?? 0, samples_per_second: p?.samplesPerSecond ?? null } }
    }
  })

  kuboRoute(app, {
    path: 'ai/metrics',
    permission: 'training',
    get: true,
    tags: ['ai'],
    summary: 'Metrics of the training sessions (loss, accuracy, throughput) and of the inference jobs by model (requests, tokens, tokens per second), of every model or one (model_id), or of one session (task_id)',
    schema: { querystring: MetricsQuery },
    handler: async (request, reply) => {
      const modelId = option<string>(request, 'model_id')
      const taskId = sessionJobIdOf(option<string>(request, 'task_id'))
      const type = option<Static<typeof MetricsQuery>['metrics_type']>(request, 'metrics_type') ?? 'all'
      const options = { signal: requestSignal(reply), local: true }
      // A bare name means the registry's name:latest, as everywhere else; an unregistered one (a deleted model's, a CID) matches as given.
      const ids = new Set(modelId == null ? [] : [modelId, (await registeredModel(node.cluster, modelId, options).catch(() => undefined))?.modelId ?? modelId])
      const ofModel = (j: JobRecord): boolean => ids.size === 0 || ids.has(j.modelId) || ids.has(j.modelCID) || (j.training?.modelId != null && ids.has(j.training.modelId))
      const jobs = (await node.cluster.jobs({ limit: Infinity }, options)).filter(j => ofModel(j) && (taskId == null || j.jobId === taskId))
      const metrics: Record<string, unknown> = {}
      if (type !== 'inference') {
        metrics.training = jobs.filter(j => j.kind === 'training').map(j => ({ task_id: sessionId(j), status: STATUS[j.status], model_id: j.training?.modelId ?? null, ...j.training?.progress }))
      }
      if (type !== 'training') metrics.inference = inferenceMetrics(jobs.filter(j => j.kind === 'inference'))
      return { success: true, metrics }
    }
  })
}
