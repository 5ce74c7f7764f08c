import { Type } from 'typebox'
import { deadlineExceeded, requestDeadline, requestSignal } from '../stream.ts'
import type { RoutePermission } from '@node-daemon/access'
import type { ReadOptions } from '@node-daemon/content'
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'

export interface KuboRoute {
  /** Path under /api/v0/. */
  path: string
  /** Document 000 documents GET for this route; POST is always taken, as Kubo does. */
  get?: boolean
  /** What a caller needs to be allowed the route. */
  permission: RoutePermission
  tags: string[]
  summary: string
  schema?: Omit<FastifySchema, 'tags' | 'summary'>
  /** A JSON body larger than the server's limit that this route takes. */
  bodyLimit?: number
  handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
}

/** Kubo's global options of the routes that read content, for their query schemas. */
export const ReadQuery = {
  timeout: Type.Optional(Type.String({ description: 'Give up after this long (Kubo durations: 500ms, 30s, 2m): 504 IPFSTimeoutError' })),
  offline: Type.Optional(Type.Boolean({ description: 'Read local blocks only: content that is not on this node is a 404 at once' }))
}

/** What a content read of this request takes: its signal (client gone, `timeout`) and `offline`. */
export function readOptions (reply: FastifyReply): ReadOptions & { signal: AbortSignal } {
  return { signal: requestSignal(reply), offline: (reply.request.query as { offline?: boolean } | undefined)?.offline === true }
}

/** Runs a request's work; what fails after its `timeout` ran out is reported as that timeout. */
export async function withDeadline<T> (request: FastifyRequest, work: () => Promise<T>): Promise<T> {
  const deadline = requestDeadline(request)
  try {
    return await work()
  } catch (err) {
    if (deadline?.aborted === true) throw deadlineExceeded(request)
    throw err
  }
}

/**
 * Registers a Kubo RPC route at /api/v0/<path>. Kubo's global `timeout` option
 * bounds the work: what fails after it ran out is reported as its timeout.
 */
export function kuboRoute (app: FastifyInstance, route: KuboRoute): void {
  app.route({
    method: route.get === true ? ['GET', 'POST'] : ['POST'],
    url: `/api/v0/${route.path}`,
    permission: route.permission,
    bodyLimit: route.bodyLimit,
    schema: { ...route.schema, tags: route.tags, summary: route.summary },
    // Kubo clients POST with no body; the JSON body of the API documents is optional.
    preValidation: async (request) => { request.body ??= {} },
    handler: async (request, reply) => withDeadline(request, async () => route.handler(request, reply))
  })
}
