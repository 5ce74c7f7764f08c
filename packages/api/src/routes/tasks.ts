import { Type } from 'typebox'
import { INVALID_PROMPT, taskShape } from '../error-shapes.ts'
import { BadRequestError } from '../errors.ts'
import { DEFAULT_GENERATE_MODEL, defined, familyRoutes, workSignal } from '../inference.ts'
import { modelDirectory } from '../multipart.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'
import type { ModelSummary, TaskEvent } from '@node-daemon/inference'
import type { Static } from 'typebox'

const SubmitBody = Type.Object({
  prompt: Type.String({ minLength: 1 }),
  modelId: Type.Optional(Type.String({ minLength: 1, description: `A model name or CID; default ${DEFAULT_GENERATE_MODEL}` })),
  maxTokens: Type.Optional(Type.Integer({ minimum: 1 })),
  temperature: Type.Optional(Type.Number())
})

const TaskParams = Type.Object({ taskId: Type.String({ minLength: 1 }) })

/**
 * Document 001's filters. Document 004 lists the same path by `page` and
 * `limit`: its issue adds `page` here and `total` and `page` to the answer.
 */
const TaskListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 10 }),
  status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed')])),
  since: Type.Optional(Type.String({ format: 'date-time', description: 'Only tasks submitted at or after this time' }))
})

/** Document 001's model entry; the registry id serves as the display name, which the registry does not keep apart. */
function modelJson (model: ModelSummary): object {
  return { id: model.name, name: model.name, description: model.description, cid: model.cid, active: model.active, timestamp: model.modifiedAt.toISOString() }
}

/**
 * Document 001's inference tasks, models and events. Tasks are jobs of the
 * cluster's job table; GET /api/tasks and /api/tasks/:taskId are also
 * document 004's, whose training tasks a later issue adds to these handlers.
 */
export const taskRoutes: Routes = (app, { node, shutdown }) => {
  familyRoutes(app, taskShape(), (scope) => {
    scope.post('/api/tasks/submit', {
      schema: { body: SubmitBody, tags: ['tasks'], summary: 'Submit a generation that runs in the background; poll /api/tasks/:taskId or watch /api/ws' },
      // The prompt and its parameters are all a submission holds, so any bad input is document 001's invalid prompt.
      config: { errorShape: taskShape(INVALID_PROMPT) }
    }, async (request, reply) => {
      const body = request.body as Static<typeof SubmitBody>
      const task = await node.inference.submitTask(defined({
        prompt: body.prompt,
        model: body.modelId ?? DEFAULT_GENERATE_MODEL,
        maxTokens: body.maxTokens,
        temperature: body.temperature
      }), { signal: requestSignal(reply) })
      // The node has no estimate of a task's duration yet.
      return { taskId: task.taskId, jobId: task.jobId, status: 'submitted', estimatedTime: null, promptCID: task.promptCID, model: task.model }
    })

    scope.get('/api/tasks/:taskId', {
      schema: { params: TaskParams, tags: ['tasks'], summary: 'A task: status, prompt, response and their CIDs, worker and timing' }
    }, async (request, reply) => {
      return node.inference.task((request.params as Static<typeof TaskParams>).taskId, { signal: requestSignal(reply) })
    })

    scope.get('/api/tasks', {
      schema: { querystring: TaskListQuery, tags: ['tasks'], summary: 'Recent tasks, newest first' }
    }, async (request, reply) => {
      const query = request.query as Static<typeof TaskListQuery>
      const tasks = await node.inference.tasks(defined({
        limit: query.limit,
        status: query.status,
        since: query.since == null ? undefined : new Date(query.since)
      }), { signal: requestSignal(reply) })
      return { tasks }
    })

    scope.get('/api/models', { schema: { tags: ['tasks'], summary: 'Registered models' } }, async (_request, reply) => {
      const models = await node.inference.models({ signal: requestSignal(reply) })
      return { models: models.map(modelJson) }
    })

    scope.post('/api/models/upload', {
      schema: {
        tags: ['tasks'],
        summary: 'Upload a model directory in the Hugging Face ONNX layout: form fields modelId and description first, then one file part per file, named by its path in the directory'
      }
    }, async (request, reply) => {
      const { fields, files } = await modelDirectory(request)
      if (fields.modelId == null || fields.modelId === '') throw new BadRequestError('the form field modelId is required, before the files')
      const model = await node.inference.import(defined({ name: fields.modelId, description: fields.description, files }), { signal: workSignal(reply, shutdown) })
      return reply.code(201).send({ success: true, model: modelJson(model) })
    })

    // Document 001 serves its events on a port of their own; here they have a path that no other document uses.
    scope.get('/api/ws', { websocket: true, schema: { tags: ['tasks'], summary: 'WebSocket: task_submitted, task_completed and task_failed events as {type, data, timestamp}' } }, (socket) => {
      const send = (event: TaskEvent): void => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ ...event, timestamp: new Date().toISOString() }))
      }
      const unsubscribe = node.inference.subscribe(send)
      const stop = (): void => { socket.close(1001, 'the daemon is stopping') }
      shutdown.addEventListener('abort', stop, { once: true })
      socket.once('close', () => {
        unsubscribe()
        shutdown.removeEventListener('abort', stop)
      })
    })
  })
}
