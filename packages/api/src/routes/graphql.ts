import { GraphQLScalarType } from 'graphql'
import mercurius from 'mercurius'
import { pushable } from 'it-pushable'
import { BadRequestError, classify, messageOf } from '../errors.ts'
import { defined } from '../inference.ts'
import {
  add, aiModelAdd, aiModelGet, aiModelList, clusterPeers, clusterPinOp, clusterStatus, contentSize, exists, get,
  keyGen, listPins, ls, nodeInfo, peers, pin, publish, resolve, unpin
} from '../methods.ts'
import { aiDatasetAdd, aiDatasetGet, aiDatasetList, taskGet, taskList, trainingSessions, trainingStatus } from '../job-operations.ts'
import { invoke } from '../operations.ts'
import { CHAIN, INDEX, loadChain, loadIndex, storeChain, storeIndex } from '../documents.ts'
import { closeDataLoader, dataLoader } from '../loaders.ts'
import type { DocumentFamily } from '../documents.ts'
import { sessionJobIdOf, stepEvent } from '../training-views.ts'
import { requestSignal } from '../stream.ts'
import { EVENT_NAMES, listenEvents } from './events.ts'
import { playgroundRoutes } from './graphiql.ts'
import type { Operation } from '../operations.ts'
import type { Routes } from '../server.ts'
import type { Node } from '@node-daemon/daemon'
import type { TaskEvent } from '@node-daemon/inference'
import type { StepMetrics } from '@node-daemon/training'
import type { RoutePermission } from '@node-daemon/access'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { GraphQLError, OperationDefinitionNode } from 'graphql'
import type { Static, TObject } from 'typebox'

/** Document 000's types; each field is one operation of methods.ts. */
const SCHEMA = `
  "Any JSON value: the node's own views, as the REST routes give them"
  scalar JSON

  type NodeInfo { id: String!, version: String!, addresses: [String!]!, agentVersion: String! }
  type PinResult { success: Boolean!, pins: [String!]! }
  type PinInfo { cid: String!, type: String!, "A file's size, or the sum of a directory's entries'" size: Int }
  type IPFSContent {
    cid: String!
    name: String
    size: Int
    type: String
    "The bytes, base64 (up to 16 MiB)"
    data: String
    "Whether it is pinned on this node"
    pin: PinResult
  }
  type PeerInfo { peer: String!, addr: String, direction: String, latency_ms: Float, streams: Int, muxer: String }
  type ClusterPin { cid: String!, peers: [String!]!, info: JSON! }
  type Cluster { peers: [JSON!]!, status(cid: String): JSON! }
  type AIModel { cid: String!, name: String!, kind: String, family: String, description: String, framework: String, license: String, size: Float, version: String, metadata: JSON! }
  "A registered dataset: what its bytes hold, and what its registration said of it"
  type AIDataset {
    cid: String!
    name: String!
    "text (JSONL) or tensors (safetensors)"
    format: String!
    records: Int!
    features: Int
    classes: Int
    characters: Float
    description: String
    framework: String
    license: String
  }
  "A task of the job table, as /api/tasks/{id} gives it: details holds the whole view"
  type Task { id: String!, type: String!, status: String!, progress: Float!, created_at: String!, updated_at: String!, details: JSON! }
  type TrainingProgress { epoch: Int!, total_epochs: Int!, step: Int!, total_steps: Int, loss: Float, accuracy: Float, samples_per_second: Float, learning_rate: Float }
  "A training session, as /api/v1/training/status gives it"
  type TrainingSession {
    session_id: String!
    status: String!
    progress: TrainingProgress!
    model: String
    model_id: String
    model_cid: String
    dataset: String!
    coordinator: String
    checkpoint_cid: String
    error: String
    created_at: String!
    started_at: String
    completed_at: String
    nodes: [JSON!]!
    checkpoints: [JSON!]!
    config: JSON!
  }
  "A step of a session this node coordinates, as /api/v1/ws's training_progress"
  type TrainingStep { session_id: String!, step: Int!, total_steps: Int!, epoch: Int!, total_epochs: Int!, loss: Float!, accuracy: Float, samples_per_second: Float!, learning_rate: Float!, workers: Int!, step_ms: Float!, exchange_ms: Float! }
  "An event of /api/ws: task_submitted, task_completed or task_failed"
  type TaskEvent { type: String!, data: JSON! }
  type IPNSRecord { name: String!, value: String! }
  type Key { name: String!, id: String! }
  "A stored LangChain chain or LlamaIndex index: the document as its framework serialised it"
  type StoredDocument { cid: String!, name: String, version: String, createdAt: String, metadata: JSON, document: JSON! }
  type StoredVersion { cid: String!, name: String!, version: String! }
  "A data loader of a dataset; its batches stream from /api/v0/ai/dataloader/batches and /ws/v0/dataloader/{id}"
  type DataLoader { loaderId: String!, status: JSON! }

  "An event of /ws/v0/events: its name and data"
  type Event { event: String!, data: JSON }

  type Subscription {
    "The node's content and the cluster's events named, as /ws/v0/events sends them"
    events(names: [String!]!): Event!
    "Inference tasks submitted, completed and failed anywhere in the cluster"
    taskEvents: TaskEvent!
    "The steps of the training sessions this node coordinates, or of one"
    trainingProgress(session_id: String): TrainingStep!
  }

  type Query {
    node: NodeInfo!
    pins(type: String = "all"): [PinInfo!]!
    content(cid: String!): IPFSContent!
    ls(cid: String!): [IPFSContent!]!
    exists(cid: String!): Boolean!
    resolve(name: String): String!
    peers(verbose: Boolean = false): [PeerInfo!]!
    cluster: Cluster!
    models: [AIModel!]!
    model(ref: String!): AIModel!
    "By name (the latest version), name and version, or CID"
    chain(name: String, version: String, cid: String): StoredDocument!
    llamaIndex(name: String, version: String, cid: String): StoredDocument!
    dataLoader(loaderId: String!): DataLoader!
    datasets: [AIDataset!]!
    dataset(ref: String!): AIDataset!
    tasks(type: String, status: String, limit: Int = 100): [Task!]!
    task(id: String!): Task!
    trainingSessions: [TrainingSession!]!
    "The latest session when no id is given"
    trainingSession(id: String): TrainingSession!
  }

  type Mutation {
    add(content: String!, encoding: String, name: String, pin: Boolean = true, wrapWithDirectory: Boolean = false): IPFSContent!
    pin(cid: String!, recursive: Boolean = true): PinResult!
    unpin(cid: String!, recursive: Boolean = true): PinResult!
    publish(cid: String!, key: String, lifetime: String, ttl: String): IPNSRecord!
    generateKey(name: String!): Key!
    clusterPin(cid: String!, replicationFactor: Int, name: String): ClusterPin!
    addModel(model: String!, name: String!, description: String, dtype: String, framework: String, license: String): AIModel!
    "A dataset given as JSONL text, or a safetensors file in base64 with encoding base64"
    addDataset(content: String!, encoding: String, name: String, description: String, framework: String, license: String): AIDataset!
    storeChain(chain: JSON!, name: String!, version: String!, metadata: JSON): StoredVersion!
    storeLlamaIndex(index: JSON!, name: String!, version: String!, metadata: JSON): StoredVersion!
    createDataLoader(datasetCid: String, datasetName: String, batchSize: Int, shuffle: Boolean, seed: Int, prefetch: Int, dropLast: Boolean, shuffleBuffer: Int, format: String, ttlSeconds: Int): DataLoader!
    closeDataLoader(loaderId: String!): DataLoader!
  }
`

interface Context { reply: FastifyReply }

/** What a subscription's context holds: the WebSocket's upgrade request. */
interface SubscriptionContext { request: FastifyRequest }

/**
 * The guard's check of a permission for the request's principal, as on a
 * route: once per permission and request, however many fields need it.
 */
function authoriser (node: Node): (request: FastifyRequest, permission: RoutePermission) => Promise<unknown> {
  const checked = new WeakMap<object, Map<string, Promise<unknown>>>()
  return async (request, permission) => {
    let byPermission = checked.get(request)
    if (byPermission == null) checked.set(request, byPermission = new Map())
    let check = byPermission.get(permission)
    if (check == null) {
      check = node.access.guard.check({ method: request.method, route: request.routeOptions.url ?? request.url, headers: request.headers, query: (request.query ?? {}) as Record<string, unknown>, ip: request.ip, permission })
      byPermission.set(permission, check)
    }
    return check
  }
}

/** A field's operation for the request's principal: its permission checked, then the operation validates and runs. */
function caller (node: Node, authorise: ReturnType<typeof authoriser>): <I extends TObject, O extends TObject>(ctx: Context, op: Operation<I, O>, input: unknown) => Promise<Static<O>> {
  return async (ctx, op, input) => {
    await authorise(ctx.reply.request, op.permission)
    return invoke(node, op, input, requestSignal(ctx.reply))
  }
}

/** Queued events past which a subscriber that does not read is dropped rather than held in memory. */
const MAX_QUEUED_EVENTS = 1000

/**
 * What `listen` pushes, as a subscription's iterator: `listen` returns the
 * function that stops it, called when the subscription ends. A subscriber
 * that does not read is dropped rather than held in memory.
 */
function subscriptionStream<T> (listen: (push: (value: T) => void) => () => void): AsyncIterable<T> {
  const stream = pushable<T>({ objectMode: true, onEnd: () => { unlisten() } })
  let dropped = false
  const unlisten = listen((value) => {
    if (dropped) return
    if (stream.readableLength < MAX_QUEUED_EVENTS) stream.push(value)
    else {
      dropped = true
      stream.end(new BadRequestError(`more than ${MAX_QUEUED_EVENTS} events were waiting for this subscriber`))
    }
  })
  return stream
}

interface DocumentRef { name?: string, version?: string, cid?: string }

/** A load's output as the StoredDocument type: the family's field is `document`. */
function storedOf (f: DocumentFamily, output: Record<string, unknown>): object {
  return { ...output, createdAt: output.created_at, document: output[f.field] }
}

const loaderOf = (output: { loader_id: string, loader_status: object }): object => ({ loaderId: output.loader_id, status: output.loader_status })

/** GraphQL's camelCase arguments as the operation's snake_case fields. */
const snakeCase = (name: string): string => name.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)

/** The events of /ws/v0/events named in `names`. */
function eventStream (node: Node, names: string[]): AsyncIterable<{ events: { event: string, data: unknown } }> {
  const unknown = names.filter(n => !EVENT_NAMES.includes(n))
  if (unknown.length > 0) throw new BadRequestError(`unknown events ${unknown.join(', ')}; known events: ${EVENT_NAMES.join(', ')}`)
  const wanted = new Set(names)
  return subscriptionStream(push => listenEvents(node, (event, data) => { if (wanted.has(event)) push({ events: { event, data } }) }))
}

const modelOf = (output: { cid: string, metadata: Record<string, unknown> }): object => ({ ...output.metadata, cid: output.cid, metadata: output.metadata })
const datasetOf = (output: { cid: string, metadata: object }): object => ({ ...output.metadata, cid: output.cid })
const taskOf = (task: any): object => ({ ...task, details: task })

/** Each error with `extensions.code`, the error's name, and the status the REST route would answer; messages as errors.ts gives them. */
function errorFormatter (execution: any, ctx: any): { statusCode: number, response: any } {
  const formatted = mercurius.defaultErrorFormatter(execution, ctx)
  const originals: Array<GraphQLError | undefined> = execution.errors ?? []
  formatted.response.errors = (formatted.response.errors ?? []).map((error: any, i: number) => {
    const original = originals[i]?.originalError as (Error & { code?: string }) | undefined
    // GraphQL's own errors (syntax, validation) have no original error, or mercurius's with a code.
    if (original == null || original.name === 'GraphQLError' || original.code?.startsWith('MER_ERR') === true) return error
    const { status, type } = classify(original)
    return { ...error, message: messageOf(original, type), extensions: { ...error.extensions, code: original.name, type, status } }
  })
  return formatted
}

/**
 * Document 000's GraphQL endpoint at /api/v0/graphql and its playground at
 * /api/v0/graphql/playground. The route is public; each field checks its
 * own operation's permission, so a key sees what it may and gets an error
 * with its code for the rest.
 */
export const graphqlRoutes: Routes = (app, { node }) => {
  const authorise = authoriser(node)
  const run = caller(node, authorise)
  const resolvers = {
    Query: {
      node: async (_: unknown, _a: unknown, ctx: Context) => {
        const info = await run(ctx, nodeInfo, {})
        return { ...info, agentVersion: info.agent_version }
      },
      pins: async (_: unknown, { type }: { type: string }, ctx: Context) => {
        const { pins } = await run(ctx, listPins, { type })
        return Object.entries(pins as Record<string, { Type: string }>).map(([cid, p]) => ({ cid, type: p.Type }))
      },
      content: (_: unknown, { cid }: { cid: string }) => ({ cid }),
      ls: async (_: unknown, { cid }: { cid: string }, ctx: Context) => (await run(ctx, ls, { cid })).objects.flatMap(o => o.entries),
      exists: async (_: unknown, { cid }: { cid: string }, ctx: Context) => (await run(ctx, exists, { cid })).exists,
      resolve: async (_: unknown, { name }: { name?: string }, ctx: Context) => (await run(ctx, resolve, defined({ ipns_name: name }))).path,
      peers: async (_: unknown, { verbose }: { verbose: boolean }, ctx: Context) => (await run(ctx, peers, { verbose })).peers,
      cluster: () => ({}),
      models: async (_: unknown, _a: unknown, ctx: Context) => (await run(ctx, aiModelList, {})).models.map(m => ({ ...m, metadata: m })),
      model: async (_: unknown, { ref }: { ref: string }, ctx: Context) => modelOf(await run(ctx, aiModelGet, { model_cid: ref }) as any),
      chain: async (_: unknown, a: DocumentRef, ctx: Context) => storedOf(CHAIN, await run(ctx, loadChain, defined(a))),
      llamaIndex: async (_: unknown, a: DocumentRef, ctx: Context) => storedOf(INDEX, await run(ctx, loadIndex, defined(a))),
      dataLoader: async (_: unknown, { loaderId }: { loaderId: string }, ctx: Context) => loaderOf(await run(ctx, dataLoader, { loader_id: loaderId })),
      datasets: async (_: unknown, _a: unknown, ctx: Context) => (await run(ctx, aiDatasetList, {})).datasets.map(datasetOf),
      dataset: async (_: unknown, { ref }: { ref: string }, ctx: Context) => datasetOf(await run(ctx, aiDatasetGet, { dataset_cid: ref })),
      tasks: async (_: unknown, a: { type?: string, status?: string, limit: number }, ctx: Context) => (await run(ctx, taskList, defined(a))).tasks.map(taskOf),
      task: async (_: unknown, { id }: { id: string }, ctx: Context) => taskOf((await run(ctx, taskGet, { task_id: id })).task),
      trainingSessions: async (_: unknown, _a: unknown, ctx: Context) => (await run(ctx, trainingSessions, {})).sessions,
      trainingSession: async (_: unknown, { id }: { id?: string }, ctx: Context) => (await run(ctx, trainingStatus, defined({ session_id: id }))).session
    },
    PinInfo: {
      size: async ({ cid }: { cid: string }, _a: unknown, ctx: Context) => (await run(ctx, contentSize, { cid })).size
    },
    IPFSContent: {
      size: async (parent: { cid: string, size?: number }, _a: unknown, ctx: Context) => parent.size ?? (await run(ctx, contentSize, { cid: parent.cid })).size,
      data: async ({ cid }: { cid: string }, _a: unknown, ctx: Context) => (await run(ctx, get, { cid })).data,
      pin: async (parent: { cid: string, pin?: object }, _a: unknown, ctx: Context) => {
        if (parent.pin != null) return parent.pin
        const { pins } = await run(ctx, listPins, {})
        const pinned = Object.hasOwn(pins as object, parent.cid)
        return { success: pinned, pins: pinned ? [parent.cid] : [] }
      }
    },
    Cluster: {
      peers: async (_: unknown, _a: unknown, ctx: Context) => (await run(ctx, clusterPeers, {})).peers,
      status: async (_: unknown, { cid }: { cid?: string }, ctx: Context) => (await run(ctx, clusterStatus, defined({ cid }))).status
    },
    Mutation: {
      add: async (_: unknown, a: { content: string, encoding?: 'utf8' | 'base64', name?: string, pin: boolean, wrapWithDirectory: boolean }, ctx: Context) => {
        const added = await run(ctx, add, defined({ content: a.content, encoding: a.encoding, name: a.name, pin: a.pin, wrap_with_directory: a.wrapWithDirectory }))
        return { ...added, pin: { success: a.pin, pins: a.pin ? [added.cid] : [] } }
      },
      pin: async (_: unknown, { cid, recursive }: { cid: string, recursive: boolean }, ctx: Context) => ({ success: true, ...await run(ctx, pin, { cid, recursive }) }),
      unpin: async (_: unknown, { cid, recursive }: { cid: string, recursive: boolean }, ctx: Context) => ({ success: true, ...await run(ctx, unpin, { cid, recursive }) }),
      publish: async (_: unknown, a: { cid: string, key?: string, lifetime?: string, ttl?: string }, ctx: Context) => await run(ctx, publish, defined(a)),
      generateKey: async (_: unknown, { name }: { name: string }, ctx: Context) => await run(ctx, keyGen, { name }),
      clusterPin: async (_: unknown, a: { cid: string, replicationFactor?: number, name?: string }, ctx: Context) => {
        const pinned = await run(ctx, clusterPinOp, defined({ cid: a.cid, replication_factor: a.replicationFactor, name: a.name }))
        return { cid: pinned.cid, peers: pinned.peers, info: pinned }
      },
      storeChain: async (_: unknown, a: object, ctx: Context) => await run(ctx, storeChain, defined(a)),
      storeLlamaIndex: async (_: unknown, a: object, ctx: Context) => await run(ctx, storeIndex, defined(a)),
      createDataLoader: async (_: unknown, a: Record<string, unknown>, ctx: Context) =>
        loaderOf(await run(ctx, dataLoader, defined(Object.fromEntries(Object.entries(a).map(([k, v]) => [snakeCase(k), v ?? undefined]))))),
      closeDataLoader: async (_: unknown, { loaderId }: { loaderId: string }, ctx: Context) => loaderOf(await run(ctx, closeDataLoader, { loader_id: loaderId })),
      addModel: async (_: unknown, { model, ...metadata }: { model: string, name: string, description?: string, dtype?: string, framework?: string, license?: string }, ctx: Context) =>
        modelOf(await run(ctx, aiModelAdd, { model, metadata: defined(metadata) }) as any),
      addDataset: async (_: unknown, { content, encoding, ...metadata }: { content: string, encoding?: string, name?: string, description?: string, framework?: string, license?: string }, ctx: Context) =>
        datasetOf(await run(ctx, aiDatasetAdd, defined({ dataset: content, encoding, metadata: defined(metadata) })))
    },
    Subscription: {
      events: {
        // The permission of /ws/v0/events, checked against the WebSocket's upgrade request.
        subscribe: async (_: unknown, { names }: { names: string[] }, ctx: SubscriptionContext) => {
          await authorise(ctx.request, 'content:read')
          return eventStream(node, names)
        }
      },
      // The permissions of /api/ws and /api/v1/ws.
      taskEvents: {
        subscribe: async (_: unknown, _a: unknown, ctx: SubscriptionContext) => {
          await authorise(ctx.request, 'tasks')
          return subscriptionStream<{ taskEvents: TaskEvent }>(push => node.inference.subscribe(event => { push({ taskEvents: event }) }))
        }
      },
      trainingProgress: {
        subscribe: async (_: unknown, { session_id: session }: { session_id?: string }, ctx: SubscriptionContext) => {
          await authorise(ctx.request, 'training')
          const jobId = sessionJobIdOf(session)
          return subscriptionStream<{ trainingProgress: unknown }>(push => {
            const onStep = (e: CustomEvent<StepMetrics>): void => { if (jobId == null || e.detail.jobId === jobId) push({ trainingProgress: stepEvent(e.detail).data }) }
            node.training.addEventListener('step', onStep)
            return () => { node.training.removeEventListener('step', onStep) }
          })
        }
      }
    },
    JSON: new GraphQLScalarType({ name: 'JSON', serialize: (value) => value })
  }
  // mercurius registers its routes on the instance it is given: a prefixed scope puts GraphiQL under /api/v0/graphql.
  app.register(async (scope) => {
    await scope.register(mercurius, {
      schema: SCHEMA,
      resolvers: resolvers as any,
      path: '/',
      // mercurius's GraphiQL loads React and GraphiQL from unpkg.com: the node serves them itself (graphiql.ts).
      graphiql: false,
      errorFormatter,
      subscription: { context: (_socket: unknown, request: FastifyRequest) => ({ request }) },
      additionalRouteOptions: { permission: 'public' } as any
    })
    // Over HTTP a subscription would run once as a query and fail on its null field: it is a client's mistake, said as one.
    scope.graphql.addHook('preExecution', async (_schema, document, context) => {
      const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === 'OperationDefinition')
      const named = (context.reply.request.body as { operationName?: unknown } | undefined)?.operationName
      const operation = operations.length === 1 ? operations[0] : operations.find(d => d.name?.value === named)
      if (operation?.operation === 'subscription') throw new mercurius.ErrorWithProps('subscriptions are served over the WebSocket at /api/v0/graphql, not over HTTP', { code: 'BadRequestError' }, 400)
    })
    playgroundRoutes(scope)
  }, { prefix: '/api/v0/graphql' })
}
