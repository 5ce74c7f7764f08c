import { Type } from 'typebox'
import { firstArg } from '../args.ts'
import { kuboRoute } from './route.ts'
import { parsePeerId } from '@node-daemon/swarm'
import type { Routes } from '../server.ts'
import type { CID } from 'multiformats/cid'

const keys = (cids: CID[]): Array<{ '/': string }> => cids.map(cid => ({ '/': cid.toString() }))

/**
 * Helia's bitswap, the block exchange with IPFS nodes that are not daemons
 * (daemons move blocks between them over the block-stream protocol, which
 * these figures leave out): Kubo's bitswap/stat, bitswap/wantlist and bitswap/ledger.
 */
export const bitswapRoutes: Routes = (app, { node }) => {
  kuboRoute(app, {
    path: 'bitswap/stat',
    permission: 'swarm',
    tags: ['bitswap'],
    summary: "Blocks and bytes bitswap received and sent since start, its wantlist and its partners (Kubo's fields but ProvideBufLen: Helia's bitswap has no provide queue)",
    schema: {
      querystring: Type.Object({
        verbose: Type.Optional(Type.Boolean({ description: "Kubo's flag for its text output; the JSON answer is the same" })),
        human: Type.Optional(Type.Boolean({ description: "Kubo's flag for its text output; the JSON answer is the same" }))
      })
    },
    handler: async () => {
      const stat = node.content.bitswap.stat()
      return {
        Wantlist: keys(stat.wantlist),
        Peers: stat.peers,
        BlocksReceived: stat.blocksReceived,
        DataReceived: stat.dataReceived,
        DupBlksReceived: stat.dupBlksReceived,
        DupDataReceived: stat.dupDataReceived,
        MessagesReceived: stat.messagesReceived,
        BlocksSent: stat.blocksSent,
        DataSent: stat.dataSent
      }
    }
  })

  kuboRoute(app, {
    path: 'bitswap/wantlist',
    permission: 'swarm',
    tags: ['bitswap'],
    summary: 'The CIDs this node wants from bitswap peers, or with peer, what that peer asked this node for',
    schema: { querystring: Type.Object({ peer: Type.Optional(Type.String({ description: 'Peer ID; default: this node' })) }) },
    handler: async (request) => {
      const peer = (request.query as { peer?: string }).peer
      const bitswap = node.content.bitswap
      const other = peer == null || peer === '' ? undefined : parsePeerId(peer).toString()
      return { Keys: keys(other == null || other === node.peerId ? bitswap.stat().wantlist : bitswap.wantlistOf(other)) }
    }
  })

  kuboRoute(app, {
    path: 'bitswap/ledger',
    permission: 'swarm',
    tags: ['bitswap'],
    summary: 'Bytes bitswap exchanged with a peer while it is connected, and the debt ratio (Value)',
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'Peer ID' })) }) },
    handler: async (request) => {
      const ledger = node.content.bitswap.ledger(parsePeerId(firstArg(request, 'peer')).toString())
      return { Peer: ledger.peer, Value: ledger.value, Sent: ledger.sent, Recv: ledger.recv, Exchanged: ledger.exchanged }
    }
  })
}
