import { DeadlineExceededError } from '../errors.ts'
import { requestDeadline } from '../stream.ts'
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'

export interface KuboRoute {
  /** Path under /api/v0/. */
  path: string
  /** Document 000 documents GET for this route; POST is always taken, as Kubo does. */
  get?: boolean
  tags: string[]
  summary: string
  schema?: Omit<FastifySchema, 'tags' | 'summary'>
  handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
}

/**
 * Registers a Kubo RPC route at /api/v0/<path>. Kubo's global `timeout` option
 * bounds the work: what fails after it ran out is reported as its timeout.
 */
export function kuboRoute (app: FastifyInstance, route: KuboRoute): void {
  app.route({
    method: route.get === true ? ['GET', 'POST'] : ['POST'],
    url: `/api/v0/${route.path}`,
    schema: { ...route.schema, tags: route.tags, summary: route.summary },
    // Kubo clients POST with no body; the JSON body of the API documents is optional.
    preValidation: async (request) => { request.body ??= {} },
    handler: async (request, reply) => {
      const deadline = requestDeadline(request)
      try {
        return await route.handler(request, reply)
      } catch (err) {
        if (deadline?.aborted === true) {
          throw new DeadlineExceededError(`request timed out after ${String((request.query as { timeout?: unknown }).timeout)}: context deadline exceeded`)
        }
        throw err
      }
    }
  })
}
