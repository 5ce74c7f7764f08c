import { parseCID } from '@node-daemon/content'
import { PIN_STATUSES } from '@node-daemon/pinning'
import { Type } from 'typebox'
import { cidOption, delimited } from '../args.ts'
import { PINNING_PREFIX } from '../error-shapes.ts'
import { BadRequestError, PinRequestNotFoundError } from '../errors.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'
import type { PinRecord, PinStatusReport } from '@node-daemon/cluster'
import type { Node } from '@node-daemon/daemon'
import type { PinQuery, PinStatus, RemoteStatus } from '@node-daemon/pinning'
import type { FastifyReply } from 'fastify'
import type { Static } from 'typebox'

/**
 * The IPFS Pinning Service API (github.com/ipfs/pinning-services-api-spec)
 * over the cluster's pinset, as IPFS Cluster serves it: a pin request is a
 * cluster pin, its requestid the pin's CID (so pinning a CID again gives the
 * same request, updated), its status the allocated nodes' real one, and its
 * `meta` and `origins` kept in the pin's record. Access is the node's: a
 * bearer token (an API key or JWT) with the `pins` permission.
 */

const Meta = Type.Record(Type.String(), Type.String(), { maxProperties: 1000, description: 'String keys and values kept with the pin' })

const PinBody = Type.Object({
  cid: Type.String({ minLength: 1, maxLength: 4096, description: 'The CID to pin recursively' }),
  name: Type.Optional(Type.String({ maxLength: 255 })),
  origins: Type.Optional(Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 20, uniqueItems: true, description: 'Multiaddrs (with /p2p/) that provide the content: the nodes that fetch it dial them first' })),
  meta: Type.Optional(Meta)
}, { additionalProperties: false })

const StatusSchema = Type.Union(PIN_STATUSES.map(s => Type.Literal(s)))

const PinStatusSchema = Type.Object({
  requestid: Type.String({ description: "The pin's CID, as IPFS Cluster gives it" }),
  status: StatusSchema,
  created: Type.String({ format: 'date-time' }),
  pin: PinBody,
  delegates: Type.Array(Type.String(), { description: "This node's swarm multiaddrs" }),
  info: Type.Optional(Type.Record(Type.String(), Type.String()))
})

const ListQuery = Type.Object({
  cid: Type.Optional(Type.Array(Type.String(), { description: 'CIDs, comma-separated (at most 10)' })),
  name: Type.Optional(Type.String({ maxLength: 255 })),
  match: Type.Optional(Type.Union(['exact', 'iexact', 'partial', 'ipartial'].map(m => Type.Literal(m)), { default: 'exact' })),
  status: Type.Optional(Type.Array(Type.String(), { description: 'queued, pinning, pinned or failed, comma-separated; pinned when missing' })),
  before: Type.Optional(Type.String({ format: 'date-time' })),
  after: Type.Optional(Type.String({ format: 'date-time' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 10 })),
  meta: Type.Optional(Type.String({ description: 'A JSON object of string values: pins whose meta has all of them' }))
})

const RequestParams = Type.Object({ requestid: Type.String() })

const Failure = Type.Object({ error: Type.Object({ reason: Type.String(), details: Type.Optional(Type.String()) }) })
const FAILURES = { 400: Failure, 401: Failure, 403: Failure, 404: Failure }

/** Most addresses a PinStatus may give as delegates. */
const MAX_DELEGATES = 20
/** Most CIDs one listing may filter on. */
const MAX_CIDS = 10

/** The spec's status of a pin from its allocated nodes' statuses: failed if one failed, pinned once all have it. */
function statusOf (report: PinStatusReport | undefined): RemoteStatus {
  const statuses = (report?.peers ?? []).map(p => p.status).filter(s => s !== 'remote')
  if (statuses.includes('error')) return 'failed'
  if (statuses.length > 0 && statuses.every(s => s === 'pinned')) return 'pinned'
  if (statuses.some(s => s === 'pinning' || s === 'pinned')) return 'pinning'
  return 'queued'
}

function parseMeta (text: string | undefined): Record<string, string> | undefined {
  if (text == null) return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new BadRequestError('meta must be a JSON object of string values')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.values(value).every(v => typeof v === 'string')) {
    throw new BadRequestError('meta must be a JSON object of string values')
  }
  return value as Record<string, string>
}

function nameMatches (name: string, wanted: string, match: NonNullable<PinQuery['match']>): boolean {
  const fold = match === 'iexact' || match === 'ipartial'
  const [a, b] = fold ? [name.toLowerCase(), wanted.toLowerCase()] : [name, wanted]
  return match === 'exact' || match === 'iexact' ? a === b : a.includes(b)
}

/** A requestid as the cluster names the pin: a CID, in its canonical form; anything else names no request. */
function requestCid (requestid: string): string {
  try {
    return parseCID(requestid).toString()
  } catch {
    throw new PinRequestNotFoundError(`no pin request ${JSON.stringify(requestid.slice(0, 100))}`)
  }
}

/** Where the service fetches pins from: the answering node's swarm addresses. */
function delegatesOf (node: Node): string[] {
  return node.swarm.getMultiaddrs().map(String).slice(0, MAX_DELEGATES)
}

function view (pin: PinRecord, report: PinStatusReport | undefined, delegates: string[]): PinStatus {
  const errors = (report?.peers ?? []).filter(p => p.status === 'error' && p.error != null).map(p => `${p.peer}: ${p.error as string}`)
  const info: Record<string, string> = {}
  if (errors.length > 0) info.status_details = errors.join('; ')
  if (pin.size > 0) info.dag_size = String(pin.size)
  return {
    requestid: pin.cid,
    status: statusOf(report),
    created: pin.createdAt,
    pin: {
      cid: pin.cid,
      ...(pin.name === '' ? {} : { name: pin.name }),
      ...(pin.origins == null || pin.origins.length === 0 ? {} : { origins: pin.origins }),
      ...(pin.meta == null ? {} : { meta: pin.meta })
    },
    delegates,
    ...(Object.keys(info).length === 0 ? {} : { info })
  }
}

/** One pin request as it is now: its record and its nodes' statuses. */
async function current (node: Node, cid: string, signal: AbortSignal): Promise<PinStatus> {
  try {
    const [pin, [report]] = await Promise.all([node.cluster.pin(cid, { signal }), node.cluster.pinStatus(cid, { signal })])
    return view(pin, report, delegatesOf(node))
  } catch (err: any) {
    if (err.name === 'PinNotFoundError') throw new PinRequestNotFoundError(`no pin request ${cid}`)
    throw err
  }
}

async function pin (node: Node, body: { cid: string, name?: string, origins?: string[], meta?: Record<string, string> }, reply: FastifyReply): Promise<PinStatus> {
  const signal = requestSignal(reply)
  const record = await node.cluster.pinAdd(body.cid, { name: body.name, meta: body.meta, origins: body.origins, signal })
  return current(node, record.cid, signal)
}

export const pinningServiceRoutes: Routes = (app, { node }) => {
  const tags = ['pinning service']

  app.get(`${PINNING_PREFIX}/pins`, {
    permission: 'pins',
    schema: { tags, summary: 'List pin requests: the cluster pins that match, newest first (pinned ones when no status is given)', querystring: ListQuery, response: { 200: Type.Object({ count: Type.Integer(), results: Type.Array(PinStatusSchema) }), ...FAILURES } }
  }, async (request, reply) => {
    const q = request.query as { cid?: string[], name?: string, match?: PinQuery['match'], status?: string[], before?: string, after?: string, limit?: number, meta?: string }
    const cids = delimited(q.cid)
    if (cids != null && cids.length > MAX_CIDS) throw new BadRequestError(`at most ${MAX_CIDS} CIDs may be asked for at once`)
    const wanted = cids == null ? undefined : new Set(cids.map(cid => cidOption(cid)))
    const statuses = delimited(q.status) ?? ['pinned']
    for (const s of statuses) if (!(PIN_STATUSES as readonly string[]).includes(s)) throw new BadRequestError(`status ${JSON.stringify(s.slice(0, 100))} is not one of ${PIN_STATUSES.join(', ')}`)
    const meta = parseMeta(q.meta)
    const before = q.before == null ? Infinity : Date.parse(q.before)
    const after = q.after == null ? -Infinity : Date.parse(q.after)
    const signal = requestSignal(reply)
    const [pins, reports] = await Promise.all([node.cluster.pins({ signal }), node.cluster.pinStatus(undefined, { signal })])
    const byCid = new Map(reports.map(r => [r.cid, r]))
    const delegates = delegatesOf(node)
    const matching = pins
      .filter(p => wanted == null || wanted.has(p.cid))
      .filter(p => q.name == null || nameMatches(p.name, q.name, q.match ?? 'exact'))
      .filter(p => meta == null || Object.entries(meta).every(([k, v]) => p.meta?.[k] === v))
      .filter(p => { const t = Date.parse(p.createdAt); return t < before && t > after })
      .map(p => view(p, byCid.get(p.cid), delegates))
      .filter(s => statuses.includes(s.status))
      .sort((a, b) => b.created.localeCompare(a.created) || a.requestid.localeCompare(b.requestid))
    return { count: matching.length, results: matching.slice(0, q.limit ?? 10) }
  })

  app.post(`${PINNING_PREFIX}/pins`, {
    permission: 'pins',
    schema: { tags, summary: 'Pin a CID in the cluster; the nodes it is allocated to dial its origins, then fetch it', body: PinBody, response: { 202: PinStatusSchema, ...FAILURES } }
  }, async (request, reply) => {
    return reply.code(202).send(await pin(node, request.body as Static<typeof PinBody>, reply))
  })

  app.get(`${PINNING_PREFIX}/pins/:requestid`, {
    permission: 'pins',
    schema: { tags, summary: 'A pin request and its status', params: RequestParams, response: { 200: PinStatusSchema, ...FAILURES } }
  }, async (request, reply) => {
    return current(node, requestCid((request.params as { requestid: string }).requestid), requestSignal(reply))
  })

  app.post(`${PINNING_PREFIX}/pins/:requestid`, {
    permission: 'pins',
    schema: { tags, summary: 'Replace a pin request: pin the new CID, then unpin the old one unless it is the same', params: RequestParams, body: PinBody, response: { 202: PinStatusSchema, ...FAILURES } }
  }, async (request, reply) => {
    const old = (await current(node, requestCid((request.params as { requestid: string }).requestid), requestSignal(reply))).requestid
    const added = await pin(node, request.body as Static<typeof PinBody>, reply)
    if (added.requestid !== old) await node.cluster.pinRm(old, { signal: requestSignal(reply) })
    return reply.code(202).send(added)
  })

  app.delete(`${PINNING_PREFIX}/pins/:requestid`, {
    permission: 'pins',
    schema: { tags, summary: 'Remove a pin request: the cluster unpins the CID', params: RequestParams, response: { 202: Type.Null(), ...FAILURES } }
  }, async (request, reply) => {
    const cid = requestCid((request.params as { requestid: string }).requestid)
    try {
      await node.cluster.pinRm(cid, { signal: requestSignal(reply) })
    } catch (err: any) {
      if (err.name === 'PinNotFoundError') throw new PinRequestNotFoundError(`no pin request ${cid}`)
      throw err
    }
    return reply.code(202).send()
  })
}
