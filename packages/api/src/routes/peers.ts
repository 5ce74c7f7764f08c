import { Type } from 'typebox'
import { args, flag } from '../args.ts'
import { connect } from '../methods.ts'
import { kuboOperation } from '../operations.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'

const IdQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Peer id; this node when missing' }))
})

const PeersQuery = Type.Object({
  verbose: Type.Optional(Type.Boolean({ default: false, description: 'Latency, direction, streams and identify, as Kubo' })),
  latency: Type.Optional(Type.Boolean({ default: false })),
  direction: Type.Optional(Type.Boolean({ default: false })),
  streams: Type.Optional(Type.Boolean({ default: false })),
  identify: Type.Optional(Type.Boolean({ default: false }))
})

const ConnectQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Multiaddrs ending in /p2p/<peer id>' }))
})

const ConnectBody = Type.Optional(Type.Object({
  addr: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())]))
}))

/** Kubo's IdOutput, as `id` gives it and `swarm peers --identify` nests it. */
function idOutput (id: Awaited<ReturnType<Parameters<Routes>[1]['node']['identity']>>): object {
  return { ID: id.id, PublicKey: id.publicKey, Addresses: id.addresses, AgentVersion: id.agentVersion, ProtocolVersion: id.protocolVersion, Protocols: id.protocols }
}

export const peerRoutes: Routes = (app, { node }) => {
  kuboRoute(app, {
    path: 'id',
    permission: 'swarm',
    get: true,
    tags: ['peers'],
    summary: 'Identity of this node or of another peer',
    schema: { querystring: IdQuery },
    handler: async (request, reply) => {
      const peer = args(request)[0]
      const id = await node.identity(peer, { signal: requestSignal(reply) })
      return { success: true, id: id.id, addresses: id.addresses, ...idOutput(id) }
    }
  })

  kuboRoute(app, {
    path: 'swarm/peers',
    permission: 'swarm',
    get: true,
    tags: ['peers'],
    summary: 'Connected peers; Kubo\'s Latency, Direction, Streams and Identify only when asked, as Kubo',
    schema: { querystring: PeersQuery },
    handler: async (request, reply) => {
      const q = request.query as { verbose?: boolean, latency?: boolean, direction?: boolean, streams?: boolean, identify?: boolean }
      const verbose = flag(q.verbose, false)
      const want = (option: boolean | undefined): boolean => verbose || flag(option, false)
      const peers = node.peers()
      const signal = requestSignal(reply)
      const Peers = []
      for (const p of peers) {
        Peers.push({
          // Kubo's Addr is the transport address alone; the peer id is in Peer.
          Addr: p.addr.endsWith(`/p2p/${p.peer}`) ? p.addr.slice(0, -`/p2p/${p.peer}`.length) : p.addr,
          Peer: p.peer,
          ...(want(q.latency) ? { Latency: p.latencyMs == null ? 'n/a' : `${p.latencyMs}ms` } : {}),
          // Kubo numbers directions as Go's libp2p does: 1 inbound, 2 outbound.
          ...(want(q.direction) ? { Direction: p.direction === 'inbound' ? 1 : 2 } : {}),
          ...(want(q.streams) ? { Streams: p.protocols.map(Protocol => ({ Protocol })) } : {}),
          ...(want(q.identify) ? { Identify: idOutput(await node.identity(p.peer, { signal })) } : {})
        })
      }
      return {
        success: true,
        peers: peers.map(p => ({ peer: p.peer, addr: p.addr, direction: p.direction, latency_ms: p.latencyMs ?? null, streams: p.streams })),
        count: peers.length,
        Peers
      }
    }
  })

  kuboOperation(app, node, connect, {
    path: 'swarm/connect',
    summary: connect.summary,
    schema: { querystring: ConnectQuery, body: ConnectBody },
    input: (request) => {
      const addrs = args(request, 'addr')
      if (addrs.length === 0) throw new BadRequestError('argument "address" is required')
      return { peer_addr: addrs }
    },
    answer: (output) => ({ Strings: output.peers.map(peer => `connect ${peer} success`) })
  })
}
