import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from 'typebox'
import { args, firstArg } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { kuboRoute } from './route.ts'
import { NoPeersError, disconnect, knownAddrs, parsePeerId, pingPeer } from '@node-daemon/swarm'
import type { Routes } from '../server.ts'

/** Kubo waits a second between pings. */
const PING_INTERVAL_MS = 1000
/** More pings than anyone waits for are refused rather than left running. */
const MAX_PINGS = 1000

/** The swarm's addresses, connections and bootstrap peers, and pings: Kubo's swarm/addrs, swarm/addrs/local, swarm/disconnect, bootstrap and ping. */
export const swarmOpsRoutes: Routes = (app, { node, shutdown }) => {
  kuboRoute(app, {
    path: 'swarm/addrs',
    permission: 'swarm',
    tags: ['peers'],
    summary: 'The addresses known for each peer in the peer store',
    handler: async () => ({ Addrs: await knownAddrs(node.swarm) })
  })

  kuboRoute(app, {
    path: 'swarm/addrs/local',
    permission: 'swarm',
    tags: ['peers'],
    summary: 'The addresses this node listens on; with id, each ends in /p2p/<peer id>',
    schema: { querystring: Type.Object({ id: Type.Optional(Type.Boolean()) }) },
    handler: async (request) => {
      const withId = (request.query as { id?: boolean }).id === true
      const addrs = node.swarm.getMultiaddrs().map(ma => ma.toString().replace(/\/p2p\/[^/]+$/, ''))
      return { Strings: [...new Set(addrs)].map(a => withId ? `${a}/p2p/${node.peerId}` : a) }
    }
  })

  kuboRoute(app, {
    path: 'swarm/disconnect',
    permission: 'swarm',
    tags: ['peers'],
    summary: 'Close the connections to peers, by multiaddrs ending in /p2p/<peer id>',
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String())) }) },
    handler: async (request, reply) => {
      const addrs = args(request)
      if (addrs.length === 0) throw new BadRequestError('argument "address" is required')
      const strings: string[] = []
      for (const addr of addrs) strings.push(`disconnect ${await disconnect(node.swarm, addr, { signal: requestSignal(reply) })} success`)
      return { Strings: strings }
    }
  })

  for (const path of ['bootstrap', 'bootstrap/list']) {
    kuboRoute(app, {
      path,
      permission: 'swarm',
      tags: ['peers'],
      summary: 'The peers this node joined through at start: the configured ones and a join token\'s',
      handler: async () => ({ Peers: [...node.bootstrap] })
    })
  }

  for (const path of ['bootstrap/add', 'bootstrap/rm']) {
    kuboRoute(app, {
      path,
      permission: 'swarm',
      tags: ['peers'],
      summary: 'Refused: the bootstrap list is read at start (swarm.bootstrap in config.yaml, --bootstrap or --join); swarm/connect dials a peer now',
      handler: async () => {
        throw new BadRequestError(`${path} is not supported: the bootstrap list is read at start; set swarm.bootstrap in config.yaml (or pass --bootstrap) and restart, or use swarm/connect to dial a peer now`)
      }
    })
  }

  kuboRoute(app, {
    path: 'ping',
    permission: 'swarm',
    tags: ['peers'],
    summary: 'Ping a peer by id or multiaddr, a second apart; NDJSON lines with Success, Time (ns) and Text, as Kubo',
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String())), count: Type.Optional(Type.Integer({ default: 10 })) }) },
    handler: async (request, reply) => {
      const target = firstArg(request, 'peer ID')
      const count = (request.query as { count?: number }).count ?? 10
      if (count <= 0) throw new BadRequestError('ping count must be greater than 0')
      if (count > MAX_PINGS) throw new BadRequestError(`ping count must be at most ${MAX_PINGS}`)
      const peer = target.startsWith('/') ? target.split('/p2p/').at(-1) ?? target : parsePeerId(target).toString()
      if (peer === node.peerId) throw new BadRequestError('peer ID refers to self')
      const signal = AbortSignal.any([requestSignal(reply), shutdown])
      // A peer with no known address is looked up by the first ping; when that fails there is
      // nothing to stream: the request fails, as Kubo's does with 'peer lookup failed'.
      const unknown = !target.startsWith('/') && (await knownAddrs(node.swarm))[peer] == null
      // With no peer to ask, the DHT would wait for one rather than fail: Kubo's empty routing table fails at once.
      if (unknown && node.swarm.getConnections().length === 0) throw new NoPeersError(`ping ${peer}: peer lookup failed: routing: not found (no connected peer to ask)`)
      const first = unknown ? await pingPeer(node.swarm, target, { signal }) : undefined
      return sendNdjson(reply, (async function * () {
        yield { Success: true, Time: 0, Text: `PING ${peer}.` }
        const times: number[] = []
        for (let i = 0; i < count && !signal.aborted; i++) {
          if (i > 0) await sleep(PING_INTERVAL_MS, undefined, { signal })
          try {
            const ms = i === 0 && first != null ? first : await pingPeer(node.swarm, target, { signal })
            times.push(ms)
            yield { Success: true, Time: Math.round(ms * 1e6), Text: '' }
          } catch (err: any) {
            if (signal.aborted) return
            yield { Success: false, Time: 0, Text: `Ping error: ${err.message}` }
          }
        }
        if (times.length === 0) throw new BadRequestError('ping failed')
        yield { Success: true, Time: 0, Text: `Average latency: ${(times.reduce((a, b) => a + b, 0) / times.length).toFixed(2)}ms` }
      })())
    }
  })
}
