import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createLibp2p } from 'libp2p'
import { DialError } from '../src/errors.ts'
import { describePeer } from '../src/identity.ts'
import { connect, listPeers } from '../src/peers.ts'
import { swarmOptions } from '../src/options.ts'
import { formatSwarmKey } from '../src/private-network.ts'
import type { Swarm } from '../src/options.ts'

async function startSwarm (swarmKey?: Uint8Array): Promise<Swarm> {
  return createLibp2p(swarmOptions({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', port: 0, swarmKey }))
}

describe('swarm', () => {
  let a: Swarm
  let b: Swarm

  before(async () => {
    a = await startSwarm()
    b = await startSwarm()
  })

  after(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()])
  })

  it('listens on loopback with the protocols of an IPFS node', async () => {
    assert.ok(a.getMultiaddrs().every(ma => ma.toString().startsWith('/ip4/127.0.0.1/tcp/')))
    const self = await describePeer(a, 'test/1')
    assert.equal(self.id, a.peerId.toString())
    for (const protocol of ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/ipfs/kad/1.0.0', '/meshsub/1.1.0']) {
      assert.ok(self.protocols.includes(protocol), protocol)
    }
  })

  it('pings a peer while an earlier ping stream is still open, as under load', async () => {
    await connect(b, a.getMultiaddrs()[0].toString())
    // A ping still closing when the connection monitor's next one starts: with ping's default of one stream, the second failed and the monitor aborted the connection.
    const lingering = await b.dialProtocol(a.peerId, '/ipfs/ping/1.0.0')
    try {
      const rtt = await b.services.ping.ping(a.peerId, { signal: AbortSignal.timeout(5_000) })
      assert.ok(rtt >= 0)
    } finally {
      lingering.abort(new Error('test over'))
    }
  })

  it('connects by a /p2p/ multiaddr and lists the connection', async () => {
    const peer = await connect(b, a.getMultiaddrs()[0].toString())
    assert.equal(peer, a.peerId.toString())
    const peers = listPeers(b)
    assert.equal(peers.length, 1)
    assert.equal(peers[0].peer, a.peerId.toString())
    assert.equal(peers[0].direction, 'outbound')
    for (let attempt = 0; attempt < 50 && listPeers(a).length === 0; attempt++) await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(listPeers(a)[0]?.direction, 'inbound')
  })

  it('describes a connected peer from what identify told it', async () => {
    let info = await describePeer(b, 'test/1', a.peerId.toString())
    for (let attempt = 0; attempt < 50 && info.protocols.length === 0; attempt++) {
      await new Promise(resolve => setTimeout(resolve, 50))
      info = await describePeer(b, 'test/1', a.peerId.toString())
    }
    assert.equal(info.id, a.peerId.toString())
    assert.ok(info.protocols.includes('/ipfs/kad/1.0.0'))
  })

  it('refuses bad multiaddrs and peer ids with typed errors', async () => {
    await assert.rejects(connect(b, 'not a multiaddr'), { name: 'InvalidMultiaddrError' })
    await assert.rejects(connect(b, '/ip4/127.0.0.1/tcp/1'), { name: 'InvalidMultiaddrError', message: /no \/p2p\// })
    // The node itself is no peer to connect to: bad input, not a failed dial.
    await assert.rejects(connect(b, b.getMultiaddrs()[0].toString()), { name: 'InvalidMultiaddrError', message: /this node itself/ })
    const nobody = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    await assert.rejects(connect(b, `/ip4/127.0.0.1/tcp/1/p2p/${nobody.toString()}`, { signal: AbortSignal.timeout(5000) }), { name: 'DialError' })
    await assert.rejects(describePeer(b, 'test/1', 'nope'), { name: 'InvalidPeerIdError' })
  })

  it('tells a failed private-network handshake from an unreachable peer, whichever side holds a key', async () => {
    const key = (): Uint8Array => formatSwarmKey(randomBytes(32))
    const cases: Array<[string, Uint8Array | undefined, Uint8Array | undefined]> = [['another key', key(), key()], ['no key here', key(), undefined], ['no key there', undefined, key()]]
    for (const [what, theirs, ours] of cases) {
      const [there, here] = await Promise.all([startSwarm(theirs), startSwarm(ours)])
      try {
        await assert.rejects(connect(here, there.getMultiaddrs()[0].toString(), { signal: AbortSignal.timeout(20_000) }),
          (err: Error) => err.name === 'HandshakeFailedError' && err instanceof DialError && /handshake failed/.test(err.message), what)
      } finally {
        await Promise.allSettled([there.stop(), here.stop()])
      }
    }
    const closed = `/ip4/127.0.0.1/tcp/1/p2p/${peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()}`
    await assert.rejects(connect(b, closed), (err: Error) => err.name === 'DialError' && /ECONNREFUSED/.test(err.message))
  })
})
