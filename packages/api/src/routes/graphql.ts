import { GraphQLScalarType } from 'graphql'
import mercurius from 'mercurius'
import { classify, messageOf } from '../errors.ts'
import { defined } from '../inference.ts'
import {
  add, aiModelAdd, aiModelGet, aiModelList, clusterPeers, clusterPinOp, clusterStatus, contentSize, exists, get,
  keyGen, listPins, ls, nodeInfo, peers, pin, publish, resolve, unpin
} from '../methods.ts'
import { invoke } from '../operations.ts'
import { requestSignal } from '../stream.ts'
import type { Operation } from '../operations.ts'
import type { Routes } from '../server.ts'
import type { Node } from '@node-daemon/daemon'
import type { FastifyReply } from 'fastify'
import type { GraphQLError } from 'graphql'
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
  type AIModel { cid: String!, name: String!, kind: String, family: String, description: String, size: Float, version: String, metadata: JSON! }
  type IPNSRecord { name: String!, value: String! }
  type Key { name: String!, id: String! }

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
  }

  type Mutation {
    add(content: String!, encoding: String, name: String, pin: Boolean = true, wrapWithDirectory: Boolean = false): IPFSContent!
    pin(cid: String!, recursive: Boolean = true): PinResult!
    unpin(cid: String!, recursive: Boolean = true): PinResult!
    publish(cid: String!, key: String, lifetime: String, ttl: String): IPNSRecord!
    generateKey(name: String!): Key!
    clusterPin(cid: String!, replicationFactor: Int, name: String): ClusterPin!
    addModel(model: String!, name: String!, description: String, dtype: String): AIModel!
  }
`

interface Context { reply: FastifyReply }

/**
 * The field's operation for the request's principal: the guard checks the
 * operation's permission as it checks a route's (once per permission and
 * request), then the operation validates and runs.
 */
function caller (node: Node): <I extends TObject, O extends TObject>(ctx: Context, op: Operation<I, O>, input: unknown) => Promise<Static<O>> {
  const checked = new WeakMap<object, Map<string, Promise<unknown>>>()
  return async (ctx, op, input) => {
    const request = ctx.reply.request
    let byPermission = checked.get(request)
    if (byPermission == null) checked.set(request, byPermission = new Map())
    let check = byPermission.get(op.permission)
    if (check == null) {
      check = node.access.guard.check({ method: request.method, route: request.routeOptions.url ?? request.url, headers: request.headers, query: (request.query ?? {}) as Record<string, unknown>, ip: request.ip, permission: op.permission })
      byPermission.set(op.permission, check)
    }
    await check
    return invoke(node, op, input, requestSignal(ctx.reply))
  }
}

const modelOf = (output: { cid: string, metadata: Record<string, unknown> }): object => ({ ...output.metadata, cid: output.cid, metadata: output.metadata })

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
 * Document 000's GraphQL endpoint at /api/v0/graphql and its GraphiQL at
 * /api/v0/graphql/playground. The route is public; each field checks its
 * own operation's permission, so a key sees what it may and gets an error
 * with its code for the rest.
 */
export const graphqlRoutes: Routes = (app, { node }) => {
  const run = caller(node)
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
      model: async (_: unknown, { ref }: { ref: string }, ctx: Context) => modelOf(await run(ctx, aiModelGet, { model_cid: ref }) as any)
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
      addModel: async (_: unknown, a: { model: string, name: string, description?: string, dtype?: string }, ctx: Context) =>
        modelOf(await run(ctx, aiModelAdd, { model: a.model, metadata: defined({ name: a.name, description: a.description, dtype: a.dtype }) }) as any)
    },
    JSON: new GraphQLScalarType({ name: 'JSON', serialize: (value) => value })
  }
  // mercurius registers its routes on the instance it is given: a prefixed scope puts GraphiQL under /api/v0/graphql.
  app.register(async (scope) => {
    await scope.register(mercurius, {
      schema: SCHEMA,
      resolvers: resolvers as any,
      path: '/',
      graphiql: true,
      errorFormatter,
      additionalRouteOptions: { permission: 'public' } as any
    })
    scope.get('/playground', { permission: 'public', schema: { tags: ['graphql'], summary: 'GraphiQL, the GraphQL IDE' } }, async (_request, reply) => reply.redirect('/api/v0/graphql/graphiql'))
  }, { prefix: '/api/v0/graphql' })
}
