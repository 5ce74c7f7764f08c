/**
 * /node-daemon/cluster/1.0.0: one request and one response per stream
 * (protocols/cluster.proto), for what is not a Raft message: joining,
 * asking a node for the status of its pins, and what services beside the
 * cluster answer each other (a search of a replica). Handlers run with a
 * deadline; their typed errors travel by name and are raised again at the
 * caller.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { pbStream } from '@libp2p/utils'
import { messageStreamOptions } from '@node-daemon/swarm'
import { ClusterRequest, ClusterResponse } from '../../../protocols/cluster.js'
import * as errors from './errors.ts'
import type { Libp2p, Logger } from '@libp2p/interface'

export const CLUSTER_PROTOCOL = '/node-daemon/cluster/1.0.0'
/** A node's pin statuses are one response, about 100 bytes a pin. */
const STREAM_OPTIONS = messageStreamOptions(64 * 1024 * 1024)

export type Method = 'join' | 'pin-status' | ServiceMethod
/** Methods a service beside the cluster answers (see Cluster.serve). */
export type ServiceMethod = 'search'

const METHOD_TO_WIRE: Record<Method, ClusterRequest.Method> = {
  join: ClusterRequest.Method.JOIN,
  'pin-status': ClusterRequest.Method.PIN_STATUS,
  search: ClusterRequest.Method.SEARCH
}

/** A handler gets the caller's peer id and JSON body, and returns the JSON result. */
export type Handler = (from: string, body: any, signal: AbortSignal) => Promise<unknown>

export interface RpcComponents {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>
  log: Logger
}

export interface RpcInit {
  /** The cluster's own methods; a service's only on a node that runs it. */
  handlers: Record<Exclude<Method, ServiceMethod>, Handler> & Partial<Record<ServiceMethod, Handler>>
  /** Whether a peer may call `method`; others get ClusterProtocolError. */
  allow: (peerId: string, method: Method) => boolean
  /** Deadline of an inbound request. */
  handlerTimeoutMs: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const json = (value: unknown): Uint8Array<ArrayBuffer> => encoder.encode(JSON.stringify(value ?? null))
const parse = (bytes: Uint8Array): any => bytes.byteLength === 0 ? undefined : JSON.parse(decoder.decode(bytes))

/** Known error classes by name, so that a remote failure keeps its type. */
const ERRORS: Record<string, new (message: string) => Error> = Object.fromEntries(
  Object.values(errors).map(E => [E.name, E as new (message: string) => Error]))

export class ClusterRpc {
  private readonly components: RpcComponents
  private readonly init: RpcInit

  constructor (components: RpcComponents, init: RpcInit) {
    this.components = components
    this.init = init
  }

  async start (): Promise<void> {
    await this.components.libp2p.handle(CLUSTER_PROTOCOL, async (stream, connection) => {
      const from = connection.remotePeer.toString()
      const signal = AbortSignal.timeout(this.init.handlerTimeoutMs)
      const pb = pbStream(stream, STREAM_OPTIONS)
      let response: ClusterResponse
      try {
        const request = await pb.read(ClusterRequest, { signal })
        const method = (Object.keys(METHOD_TO_WIRE) as Method[]).find(m => METHOD_TO_WIRE[m] === request.method)
        if (method == null) throw new errors.ClusterProtocolError(`unknown method ${request.method}`)
        if (!this.init.allow(from, method)) throw new errors.ClusterProtocolError(`${from} may not call ${method}`)
        const handler = this.init.handlers[method]
        if (handler == null) throw new errors.ClusterProtocolError(`this node does not serve ${method}`)
        const result = await handler(from, parse(request.body), signal)
        response = { ok: true, body: json(result), errorName: '', errorMessage: '' }
      } catch (err: any) {
        response = { ok: false, body: new Uint8Array(0) as Uint8Array<ArrayBuffer>, errorName: err.name ?? 'Error', errorMessage: err.message ?? String(err) }
      }
      try {
        await pb.write(response, ClusterResponse, { signal })
        await stream.close({ signal })
      } catch (err: any) {
        this.components.log('answering %s failed - %e', from, err)
        stream.abort(err)
      }
    }, { runOnLimitedConnection: false })
  }

  async stop (): Promise<void> {
    await this.components.libp2p.unhandle(CLUSTER_PROTOCOL)
  }

  /** Calls `method` on `peer`; rejects with the remote's typed error, or the dial's. */
  async call<T> (peer: string, method: Method, body: unknown, signal: AbortSignal): Promise<T> {
    const stream = await this.components.libp2p.dialProtocol(peerIdFromString(peer), CLUSTER_PROTOCOL, { signal })
    try {
      const pb = pbStream(stream, STREAM_OPTIONS)
      await pb.write({ method: METHOD_TO_WIRE[method], body: json(body) }, ClusterRequest, { signal })
      const response = await pb.read(ClusterResponse, { signal })
      await stream.close({ signal }).catch(() => {})
      if (!response.ok) {
        const E = ERRORS[response.errorName]
        const err = E != null ? new E(response.errorMessage) : Object.assign(new Error(response.errorMessage), { name: response.errorName })
        throw err
      }
      return parse(response.body) as T
    } catch (err: any) {
      stream.abort(err)
      throw err
    }
  }
}
