import { JobStateError, taskIdOf } from '@node-daemon/cluster'
import { Type } from 'typebox'
import { farmTaskShape, INVALID_PROMPT, taskShape } from '../error-shapes.ts'
import { BadRequestError } from '../errors.ts'
import { DEFAULT_GENERATE_MODEL, defined, familyRoutes, workSignal } from '../inference.ts'
import { modelDirectory } from '../multipart.ts'
import { local, LocalQuery, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import { defaultTrainingModel } from './training.ts'
import { jobIdOf, matches, pageLinks, pageOf, TASK_STATUS, TASK_STATUSES, taskJson, updatedAt } from '../task-views.ts'
import type { Routes } from '../server.ts'
import type { Allocation, JobRecord, ReadOptions } from '@node-daemon/cluster'
import type { ModelSummary, TaskEstimate, TaskEvent, TaskParams, TaskView } from '@node-daemon/inference'
import type { TrainingRequest, TrainingService } from '@node-daemon/training'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Static } from 'typebox'

const SubmitBody = Type.Object({
  prompt: Type.String({ minLength: 1 }),
  modelId: Type.Optional(Type.String({ minLength: 1, description: `A model name or CID; default ${DEFAULT_GENERATE_MODEL}` })),
  maxTokens: Type.Optional(Type.Integer({ minimum: 1 })),
  temperature: Type.Optional(Type.Number())
})

export const TaskIdParams = Type.Object({ taskId: Type.String({ minLength: 1, description: 'task_<jobId>, or the bare job id' }) })

/** Document 001's filters (`limit`, `status`, `since`) and document 004's pages and `type`. */
const TaskListQuery = Type.Object({
  page: Type.Integer({ minimum: 1, default: 1 }),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 10 }),
  status: Type.Optional(Type.Enum(TASK_STATUSES)),
  type: Type.Optional(Type.Enum(['inference', 'training'])),
  since: Type.Optional(Type.String({ format: 'date-time', description: 'Only tasks submitted at or after this time' })),
  local
})

/**
 * Document 004's task creation. Both kinds of task share the one body, so
 * that a bad `type` is refused by the schema; which fields belong to which
 * kind is checked by the handler (FIELDS).
 */
const CreateBody = Type.Object({
  type: Type.Enum(['training', 'inference']),
  model: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Object({}, { additionalProperties: true })], { description: "A registered model or a model directory's CID; for training also a config.json of an architecture to train from scratch. Default as in /api/tasks/submit and /api/v1/training/start" })),
  prompt: Type.Optional(Type.String({ minLength: 1 })),
  modelId: Type.Optional(Type.String({ minLength: 1, description: "Document 001's name for model" })),
  maxTokens: Type.Optional(Type.Integer({ minimum: 1 })),
  temperature: Type.Optional(Type.Number()),
  dataset: Type.Optional(Type.String({ minLength: 1, description: 'Training: CID of a dataset (see /api/v0/ai/dataset/add) or its registered name' })),
  name: Type.Optional(Type.String({ minLength: 1, description: 'Training: the name the trained model is registered under' })),
  version: Type.Optional(Type.String({ minLength: 1, pattern: '^[\\w.-]+$', description: 'Training: the version of the trained model, as its tag: it is registered as name:version' })),
  url: Type.Optional(Type.String({ minLength: 1, description: 'Training: the model as ipfs://<cid> or /ipfs/<cid>; the daemon never downloads from the web' })),
  batch_size: Type.Optional(Type.Integer({ minimum: 1 })),
  learning_rate: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  epochs: Type.Optional(Type.Integer({ minimum: 1 })),
  optimizer: Type.Optional(Type.String({ description: 'adamw (default) or sgd' })),
  distributed: Type.Optional(Type.Boolean({ description: 'false: train on this node alone' })),
  n_clients: Type.Optional(Type.Integer({ minimum: 1, description: 'How many nodes train; default 1' })),
  requirements: Type.Optional(Type.Object({
    min_gpu_memory: Type.Optional(Type.Number({ minimum: 0, description: 'MiB of VRAM' })),
    min_cpu_cores: Type.Optional(Type.Number({ minimum: 0 })),
    min_ram: Type.Optional(Type.Number({ minimum: 0, description: 'MiB' }))
  }, { additionalProperties: false, description: 'What each node chosen by count must have' }))
}, { additionalProperties: false })

type CreateTask = Static<typeof CreateBody>
type TaskType = CreateTask['type']

/** The fields of one kind of task only; `type` and `model` are both kinds'. */
const FIELDS: Record<TaskType, Array<keyof CreateTask>> = {
  inference: ['prompt', 'modelId', 'maxTokens', 'temperature'],
  training: ['dataset', 'name', 'version', 'url', 'batch_size', 'learning_rate', 'epochs', 'optimizer', 'distributed', 'n_clients', 'requirements']
}

const StatusBody = Type.Object({
  status: Type.Enum(['paused', 'running', 'resumed', 'stopped', 'cancelled']),
  reason: Type.Optional(Type.String())
}, { additionalProperties: false })

/** What the training service is asked to do for each status; a cancelled training stops. */
const CONTROL = {
  paused: 'pause',
  running: 'resume',
  resumed: 'resume',
  stopped: 'stop',
  cancelled: 'stop'
} as const

/** The model a training task names: `model`, or `url` if it is an IPFS path. */
function trainingModel (body: CreateTask): TrainingRequest['model'] | undefined {
  if (body.url == null) return body.model as TrainingRequest['model'] | undefined
  if (body.model != null) throw new BadRequestError('name the model by url or by model, not both')
  const cid = /^(?:ipfs:\/\/|\/ipfs\/)([^/?#]+)\/?$/.exec(body.url)?.[1]
  if (cid == null) throw new BadRequestError(`url ${JSON.stringify(body.url)} is not an ipfs://<cid> or /ipfs/<cid> path: the daemon never downloads models from the web; add the model first (/api/models/upload or /api/v0/ai/model/add) and name its CID`)
  return cid
}

/** The name a training task's model is registered under: `name`, tagged with `version` (Ollama's name:tag). */
function trainedName (body: CreateTask): string | undefined {
  if (body.version == null) return body.name
  if (body.name == null) throw new BadRequestError('version is the tag of the trained model\'s name: give name too')
  if (body.name.includes(':')) throw new BadRequestError(`name ${JSON.stringify(body.name)} has a tag already; give the version as its tag or as version, not both`)
  return `${body.name}:${body.version}`
}

/** Nodes of a training task: `distributed: false` is this node alone. */
function trainingNodes (body: CreateTask): number | undefined {
  if (body.distributed !== false) return body.n_clients
  if (body.n_clients != null && body.n_clients !== 1) throw new BadRequestError(`distributed: false trains on one node, not n_clients ${body.n_clients}`)
  return 1
}

/** Document 004's training task as the service's request, with /api/v1/training/start's default model. */
async function trainingRequest (training: TrainingService, body: CreateTask, signal: AbortSignal): Promise<TrainingRequest> {
  if (body.dataset == null) throw new BadRequestError('a training task needs a dataset: the CID of a dataset (see /api/v0/ai/dataset/add) or its registered name')
  const model = trainingModel(body)
  const nodes = trainingNodes(body)
  const name = trainedName(body)
  const dataset = await training.dataset(body.dataset, { signal })
  const r = body.requirements
  return defined({
    dataset: dataset.cid,
    model: model ?? defaultTrainingModel(dataset),
    name,
    batchSize: body.batch_size,
    learningRate: body.learning_rate,
    epochs: body.epochs,
    optimizer: body.optimizer,
    nodes,
    requirements: r == null ? undefined : defined({ minGpuMemoryMiB: r.min_gpu_memory, minCpuCores: r.min_cpu_cores, minRamMiB: r.min_ram })
  })
}

/** The absolute URL the client asked for, from which the page links are built. */
/**
 * The list's URL with the parameters it understood, for its page links: the
 * rest of a query (a long one, say) would be echoed four times in a header.
 */
function listUrl (request: FastifyRequest): URL {
  const sent = new URL(request.url, `${request.protocol}://${request.host}`)
  const url = new URL(sent.pathname, sent.origin)
  // The route's schema checked these values.
  for (const [key, value] of sent.searchParams) if (Object.hasOwn(TaskListQuery.properties, key)) url.searchParams.append(key, value)
  return url
}

/** Document 001's model entry: `id` the registry id, `name` the display name given at upload (else the id). */
function modelJson (model: ModelSummary): object {
  return { id: model.name, name: model.displayName ?? model.name, description: model.description, cid: model.cid, active: model.active, timestamp: model.modifiedAt.toISOString() }
}

/**
 * Document 001's estimatedTime, in seconds, with what it rests on: the rate
 * the chosen worker measured with the model. Before any task of the model
 * completed there, null, and `estimate` says it has nothing to go on.
 */
function estimateJson (estimate: TaskEstimate | undefined): object {
  if (estimate == null) return { estimatedTime: null }
  if (estimate.seconds == null) return { estimatedTime: null, estimate: { worker: estimate.worker, basis: 'no task of this model has completed on this worker yet', tasks: 0 } }
  return {
    estimatedTime: Math.round(estimate.seconds * 10) / 10,
    estimate: { worker: estimate.worker, basis: 'measured', tasks: estimate.tasks, tokensPerSecond: estimate.tokensPerSecond, tokens: estimate.tokens }
  }
}

/**
 * Document 001's inference tasks, models and events, and document 004's
 * tasks: both are jobs of the cluster's job table, inference and training,
 * so that /api/tasks lists, shows, controls and removes either kind.
 */
export const taskRoutes: Routes = (app, { node, shutdown }) => {
  /** Document 001's submission, for /api/tasks/submit and document 004's create. */
  const submitInference = async (params: Omit<TaskParams, 'model'> & { model?: string }, reply: FastifyReply): Promise<TaskView> =>
    node.inference.submitTask(defined({ ...params, model: params.model ?? DEFAULT_GENERATE_MODEL }), { signal: requestSignal(reply) })

  const taskJob = async (taskId: string, options: ReadOptions): Promise<JobRecord> => node.cluster.job(jobIdOf(taskId), options)

  // Document 004's routes in its form; document 001's own (submit, models, upload) name theirs.
  familyRoutes(app, farmTaskShape, (scope) => {
    scope.post('/api/tasks/submit', {
      permission: 'inference',
      schema: { body: SubmitBody, tags: ['tasks'], summary: 'Submit a generation that runs in the background; poll /api/tasks/:taskId or watch /api/ws' },
      // The prompt and its parameters are all a submission holds, so any bad input is document 001's invalid prompt.
      config: { errorShape: taskShape(INVALID_PROMPT) }
    }, async (request, reply) => {
      const body = request.body as Static<typeof SubmitBody>
      const task = await submitInference({ prompt: body.prompt, model: body.modelId, maxTokens: body.maxTokens, temperature: body.temperature }, reply)
      return { taskId: task.taskId, jobId: task.jobId, status: 'submitted', ...estimateJson(task.estimate), promptCID: task.promptCID, model: task.model }
    })

    scope.post('/api/tasks', {
      permission: 'tasks',
      schema: { body: CreateBody, tags: ['tasks'], summary: 'Create a training task (dataset, model or url, hyperparameters, n_clients, requirements) or an inference task (prompt)' }
    }, async (request, reply) => {
      const body = request.body as CreateTask
      const misplaced = FIELDS[body.type === 'training' ? 'inference' : 'training'].filter(field => body[field] !== undefined)
      if (misplaced.length > 0) throw new BadRequestError(`${misplaced.join(', ')} ${misplaced.length === 1 ? 'is not a field' : 'are not fields'} of ${body.type} tasks`)
      if (body.type === 'inference') {
        if (body.prompt == null) throw new BadRequestError('an inference task needs a prompt')
        if (body.model != null && typeof body.model !== 'string') throw new BadRequestError('the model of an inference task is a model name or CID')
        const task = await submitInference({ prompt: body.prompt, model: body.modelId ?? body.model, maxTokens: body.maxTokens, temperature: body.temperature }, reply)
        return reply.code(201).send({ id: task.taskId, taskId: task.taskId, jobId: task.jobId, type: body.type, status: task.status, created_at: task.timing.submitted })
      }
      const signal = workSignal(reply, shutdown)
      const training = await trainingRequest(node.training, body, signal)
      const job = await node.training.submit(training, { signal })
      return reply.code(201).send({ id: taskIdOf(job.jobId), taskId: taskIdOf(job.jobId), jobId: job.jobId, type: body.type, status: TASK_STATUS[job.status], created_at: job.submittedAt })
    })

    scope.get('/api/tasks/:taskId', {
      permission: 'tasks',
      schema: { params: TaskIdParams, querystring: LocalQuery, tags: ['tasks'], summary: "A task: an inference task's prompt, response, CIDs, worker and timing; a training task's progress, metrics, config, workers and checkpoints" }
    }, async (request, reply) => {
      const options = readOptions(reply)
      return taskJson(node.inference, await taskJob((request.params as Static<typeof TaskIdParams>).taskId, options), options)
    })

    scope.put('/api/tasks/:taskId/status', {
      permission: 'tasks',
      schema: { params: TaskIdParams, body: StatusBody, tags: ['tasks'], summary: 'Pause, resume or stop a training task' }
    }, async (request, reply) => {
      const { taskId } = request.params as Static<typeof TaskIdParams>
      const body = request.body as Static<typeof StatusBody>
      const signal = requestSignal(reply)
      const job = await taskJob(taskId, { signal })
      if (job.kind !== 'training') throw new JobStateError(`${taskIdOf(job.jobId)} is an inference task, which cannot be paused, resumed or stopped`)
      const action = CONTROL[body.status]
      // The coordinator acts at its next step: the answer waits for it, and says the state the task is then in.
      const settled = await node.training.control(job.jobId, action, { signal, settle: true })
      return defined({ id: taskIdOf(job.jobId), status: TASK_STATUS[settled.status], updated_at: updatedAt(settled), reason: body.reason })
    })

    scope.delete('/api/tasks/:taskId', {
      permission: 'tasks',
      schema: { params: TaskIdParams, tags: ['tasks'], summary: "Remove a finished task from the job table; a training task's checkpoints are unpinned" }
    }, async (request, reply) => {
      const signal = requestSignal(reply)
      const job = await taskJob((request.params as Static<typeof TaskIdParams>).taskId, { signal })
      if (job.kind === 'training') await node.training.remove(job.jobId, { signal })
      else await node.cluster.removeJob(job.jobId, { signal })
      return reply.code(204).send()
    })

    scope.get('/api/tasks', {
      permission: 'tasks',
      schema: { querystring: TaskListQuery, tags: ['tasks'], summary: 'Inference and training tasks, newest first, a page at a time; X-Total-Count, X-Page-Count and Link headers' }
    }, async (request, reply) => {
      const query = request.query as Static<typeof TaskListQuery>
      const options = readOptions(reply)
      // The whole job table (it is bounded): the total counts every task that matches.
      const jobs = (await node.cluster.jobs({ limit: Infinity }, options))
        .filter(job => matches(job, { type: query.type, status: query.status, since: query.since == null ? undefined : new Date(query.since) }))
      const { items, total, page, pageCount } = pageOf(jobs, query.page, query.limit)
      const tasks = await Promise.all(items.map(async job => taskJson(node.inference, job, options)))
      reply.header('x-total-count', total).header('x-page-count', pageCount).header('link', pageLinks(listUrl(request), page, pageCount))
      return { tasks, total, page }
    })

    scope.get('/api/models', { permission: 'models:read', schema: { tags: ['tasks'], summary: 'Registered models' }, config: { errorShape: taskShape() } }, async (_request, reply) => {
      const models = await node.inference.models({ signal: requestSignal(reply) })
      return { models: models.map(modelJson) }
    })

    scope.post('/api/models/upload', {
      permission: 'models:write',
      config: { errorShape: taskShape() },
      schema: {
        tags: ['tasks'],
        summary: 'Upload a model directory in the Hugging Face ONNX layout: form fields modelId, name (a display name, kept from the first upload), description and dtype (the ONNX variant to run: fp32, fp16, q4…) first, then one file part per file, named by its path in the directory'
      }
    }, async (request, reply) => {
      const { fields, files } = await modelDirectory(request)
      if (fields.modelId == null || fields.modelId === '') throw new BadRequestError('the form field modelId is required, before the files')
      // A user's upload owns what it registers; keys, admins and the loopback user are no account, and update any model.
      const principal = request.principal
      const account = principal != null && (principal.kind === 'user' || principal.kind === 'jwt') ? principal.name : undefined
      const model = await node.inference.import(defined({ name: fields.modelId, displayName: fields.name, description: fields.description, dtype: fields.dtype, account, files }), { signal: workSignal(reply, shutdown) })
      return reply.code(201).send({ success: true, model: modelJson(model) })
    })

    // Document 001 serves its events on a port of their own; here they have a path that no other document uses.
    scope.get('/api/ws', { permission: 'tasks', websocket: true, schema: { tags: ['tasks'], summary: 'WebSocket: task_submitted, task_completed, task_failed and resource_updated (this node\'s allocation) events as {type, data, timestamp}' } }, (socket) => {
      const send = (event: TaskEvent | { type: 'resource_updated', data: Allocation }): void => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ ...event, timestamp: new Date().toISOString() }))
      }
      const unsubscribe = node.inference.subscribe(send)
      // Document 001's resource_updated: this node's allocation (POST /api/resources), as the cluster applied it.
      const onResources = (e: CustomEvent<{ id: string, allocation: Allocation }>): void => {
        if (e.detail.id === node.peerId) send({ type: 'resource_updated', data: e.detail.allocation })
      }
      node.cluster.addEventListener('ResourcesUpdated', onResources)
      const stop = (): void => { socket.close(1001, 'the daemon is stopping') }
      shutdown.addEventListener('abort', stop, { once: true })
      socket.once('close', () => {
        node.cluster.removeEventListener('ResourcesUpdated', onResources)
        unsubscribe()
        shutdown.removeEventListener('abort', stop)
      })
    })
  })
}
