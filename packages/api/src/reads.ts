import { Type } from 'typebox'
import { requestSignal } from './stream.ts'
import type { ReadOptions } from '@node-daemon/cluster'
import type { FastifyReply } from 'fastify'

/** The query flag of every cluster read. */
export const local = Type.Optional(Type.Boolean({
  default: false,
  description: "Answer from this node's applied state without a ReadIndex round: fast, possibly stale. Default: linearizable"
}))

export const LocalQuery = Type.Object({ local })

/** Cluster read options of a request: its abort signal and `?local=true`. */
export function readOptions (reply: FastifyReply): ReadOptions {
  return { signal: requestSignal(reply), local: (reply.request.query as { local?: boolean } | undefined)?.local === true }
}
