import { Type } from 'typebox'
import { envelopeShape } from '../error-shapes.ts'
import { envelope, RouteNotFoundError } from '../errors.ts'
import { familyRoutes } from '../inference.ts'
import { METHODS } from '../methods.ts'
import { callInput } from '../operations.ts'
import { requestSignal } from '../stream.ts'
import { withDeadline } from './route.ts'
import type { Operation } from '../operations.ts'
import type { Routes } from '../server.ts'
import type { Node } from '@node-daemon/daemon'
import type { FastifyInstance } from 'fastify'
import type { TObject } from 'typebox'

/**
 * The kwargs as documented and checked before the call: the operation's input without its defaults and
 * required fields, which the operation fills in and checks once positional args are placed.
 */
function kwargsSchema (schema: TObject): object {
  const { required: _required, ...rest } = JSON.parse(JSON.stringify(schema, (key, value: unknown) => key === 'default' ? undefined : value))
  return rest
}

const callBody = (op: Operation): TObject => Type.Object({
  args: Type.Optional(Type.Array(Type.Unknown(), { description: `Positional arguments, in this order: ${op.args.join(', ')}` })),
  kwargs: Type.Optional(Type.Unsafe<Record<string, unknown>>({ ...kwargsSchema(op.input), description: 'Keyword arguments' }))
})

/** POST /api/<name>: the call's args and kwargs as the operation's input, its output with `success`. */
function methodRoute (app: FastifyInstance, node: Node, op: Operation): void {
  app.post(`/api/${op.name}`, {
    permission: op.permission,
    schema: {
      tags: ['methods', ...op.tags],
      summary: `${op.name}(${op.args.join(', ')}): ${op.summary}`,
      body: callBody(op),
      response: { 200: Type.Object({ success: Type.Literal(true), ...op.output.properties }, { additionalProperties: (op.output as { additionalProperties?: boolean }).additionalProperties }) }
    },
    // A call without a body is a call without arguments.
    preValidation: async (request) => { request.body ??= {} }
  }, async (request, reply) => withDeadline(request, async () => {
    const { args, kwargs } = request.body as { args?: unknown[], kwargs?: Record<string, unknown> }
    const output = await op.run(node, await callInput(op, args, kwargs), requestSignal(reply)) as object
    return { success: true, ...output }
  }))
}

/**
 * Document 000's generic method caller: POST /api/<method> with
 * {"args": [...], "kwargs": {...}}. Each method is a route of its own, so the
 * access guard checks its operation's permission as on any route, and the
 * routes of the other documents under /api/ (Ollama's /api/generate...) keep
 * their paths: a static path wins over the catch-all that names the methods.
 */
export const methodRoutes: Routes = (app, { node }) => {
  // Strict types, as the operation's input is checked: a string is not taken for a list of one.
  familyRoutes(app, envelopeShape, (scope) => {
    for (const op of METHODS.values()) methodRoute(scope, node, op)
  }, { strictTypes: true })

  const known = [...METHODS.keys()].sort()
  app.post('/api/:method_name', {
    permission: 'public',
    config: { catchAll: true },
    schema: { tags: ['methods'], summary: 'Any other name: 404 with the list of known methods', params: Type.Object({ method_name: Type.String() }) }
  }, async (request, reply) => {
    const { method_name: name } = request.params as { method_name: string }
    // A path another route serves with another method (GET /api/tags) is answered as such: a 405.
    if (app.hasRoute({ method: 'GET', url: `/api/${name}` })) return reply.callNotFound()
    const body = envelope(new RouteNotFoundError(`unknown method ${JSON.stringify(name)}; known methods: ${known.join(', ')}`))
    request.log.info({ status: body.status_code, url: request.url.slice(0, 200) }, body.error)
    return reply.code(body.status_code).send({ ...body, methods: known })
  })
}
