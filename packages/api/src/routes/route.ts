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

/** Registers a Kubo RPC route at /api/v0/<path>. */
export function kuboRoute (app: FastifyInstance, route: KuboRoute): void {
  app.route({
    method: route.get === true ? ['GET', 'POST'] : ['POST'],
    url: `/api/v0/${route.path}`,
    schema: { ...route.schema, tags: route.tags, summary: route.summary },
    // Kubo clients POST with no body; the JSON body of the API documents is optional.
    preValidation: async (request) => { request.body ??= {} },
    handler: route.handler
  })
}
