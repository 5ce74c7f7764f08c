import { Type } from 'typebox'
import { args } from '../args.ts'
import { connect } from '../methods.ts'
import { kuboOperation } from '../operations.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'

const IdQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Peer id; this node when missing' }))
})

const ConnectQuery = Type.Object({
  arg: Type.Optional(Type.Array(Type.String(), { description: 'Multiaddrs ending in /p2p/<peer id>' }))
})

const ConnectBody = Type.Optional(Type.Object({
  addr: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())]))
}))

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
      return {
        success: true,
        id: id.id,
        addresses: id.addresses,
        ID: id.id,
        PublicKey: id.publicKey,
        Addresses: id.addresses,
        AgentVersion: id.agentVersion,
        ProtocolVersion: id.protocolVersion,
        Protocols: id.protocols
      }
    }
  })

  kuboRoute(app, {
    path: 'swarm/peers',
    permission: 'swarm',
    get: true,
    tags: ['peers'],
    summary: 'Connected peers',
    handler: async () => {
      const peers = node.peers()
      return {
        success: true,
        peers: peers.map(p => ({ peer: p.peer, addr: p.addr, direction: p.direction, latency_ms: p.latencyMs ?? null, streams: p.streams })),
        count: peers.length,
        // Kubo numbers directions as Go's libp2p does: 1 inbound, 2 outbound.
        // Kubo's Addr is the transport address alone; the peer id is in Peer.
        Peers: peers.map(p => ({
          Addr: p.addr.endsWith(`/p2p/${p.peer}`) ? p.addr.slice(0, -`/p2p/${p.peer}`.length) : p.addr,
          Peer: p.peer,
          Latency: p.latencyMs == null ? '' : `${p.latencyMs}ms`,
          Muxer: p.muxer,
          Direction: p.direction === 'inbound' ? 1 : 2,
          Streams: null
        }))
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
