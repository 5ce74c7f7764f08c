import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { IPNSEntry } from '@helia/ipns'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { waitFor } from '../helpers/cluster.ts'
import { formOf, rpc, startPair } from '../helpers/daemon.ts'
import { startHeliaPeer } from '../helpers/helia-peer.ts'
import { collect, ndjson } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { HeliaWithLibp2p } from '@helia/libp2p'
import type { SwarmServices } from '@node-daemon/swarm'
import type { KuboRPCClient } from 'kubo-rpc-client'

async function rawBlock (bytes: Uint8Array): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(bytes))
}

describe('Kubo bitswap, routing and dht commands', { timeout: 180_000 }, () => {
  let a: TestDaemon
  let b: TestDaemon
  let peer: HeliaWithLibp2p<SwarmServices>
  let client: KuboRPCClient

  before(async () => {
    ;[a, b] = await startPair()
    peer = await startHeliaPeer()
    await peer.libp2p.dial(multiaddr(a.swarmAddr))
    client = create({ url: `${a.url}/api/v0`, timeout: 60_000 })
  })

  after(async () => {
    await Promise.allSettled([peer?.stop(), a?.cleanup(), b?.cleanup()])
  })

  it('counts the blocks bitswap receives from a peer that is not a daemon, with its ledger', async () => {
    const bytes = randomBytes(5000)
    const cid = await rawBlock(bytes)
    await peer.blockstore.put(cid, bytes)
    const before = await client.bitswap.stat()
    const got = await (await rpc(a, 'block/get', { arg: cid.toString() })).arrayBuffer()
    assert.deepEqual(Buffer.from(got), bytes)
    const stat = await client.bitswap.stat()
    assert.equal(stat.blocksReceived - before.blocksReceived, 1n)
    assert.equal(stat.dataReceived - before.dataReceived, 5000n)
    assert.equal(stat.dupBlksReceived, 0n)
    assert.ok(stat.peers.some(p => p.equals(peer.libp2p.peerId)), 'the Helia peer is a bitswap partner')
    const rawStat = await (await rpc(a, 'bitswap/stat')).json()
    assert.ok(rawStat.MessagesReceived >= 1)
    assert.equal(rawStat.ProvideBufLen, undefined, 'no provide queue, so no figure')
    const ledger = await (await rpc(a, 'bitswap/ledger', { arg: peer.libp2p.peerId.toString() })).json()
    assert.equal(ledger.Peer, peer.libp2p.peerId.toString())
    assert.equal(ledger.Recv, 5000)
    assert.ok(ledger.Exchanged >= 1)
  })

  it('counts the blocks bitswap sends, in bitswap/stat and the ledger', async () => {
    const bytes = randomBytes(7000)
    const { cid } = await client.add(bytes, { rawLeaves: true, cidVersion: 1 })
    const before = await client.bitswap.stat()
    const got = Buffer.concat(await collect(peer.blockstore.get(cid, { signal: AbortSignal.timeout(30_000) })))
    assert.equal(got.byteLength, 7000)
    // The peer has the block once bitswap wrote it; the sender counts after its write returned.
    const stat = await waitFor('the send counted', async () => {
      const now = await client.bitswap.stat()
      return now.blocksSent > before.blocksSent ? now : undefined
    })
    assert.equal(stat.blocksSent - before.blocksSent, 1n)
    assert.equal(stat.dataSent - before.dataSent, 7000n)
    const ledger = await (await rpc(a, 'bitswap/ledger', { arg: peer.libp2p.peerId.toString() })).json()
    assert.ok(ledger.Sent >= 7000, JSON.stringify(ledger))
    assert.ok(ledger.Value > 0)
  })

  it('lists its own wantlist and a peer\'s', async () => {
    const mine = await rawBlock(randomBytes(32))
    const gone = new AbortController()
    const wanted = rpc(a, 'block/get', { arg: mine.toString(), timeout: '30s' }, { signal: gone.signal }).catch(() => undefined)
    await waitFor('the daemon\'s want', async () => (await client.bitswap.wantlist()).some(c => c.equals(mine)))
    const theirs = await rawBlock(randomBytes(32))
    const controller = new AbortController()
    const peerWants = collect(peer.blockstore.get(theirs, { signal: controller.signal })).catch(() => {})
    try {
      await waitFor('the peer\'s want', async () => (await client.bitswap.wantlistForPeer(peer.libp2p.peerId)).some(c => c.equals(theirs)))
      const self = await (await rpc(a, 'bitswap/wantlist', { peer: a.node.peerId })).json()
      assert.ok(self.Keys.some((k: { '/': string }) => k['/'] === mine.toString()))
    } finally {
      controller.abort()
      gone.abort()
      await Promise.all([peerWants, wanted])
    }
    // The client went away: the daemon no longer wants the block.
    await waitFor('the want withdrawn', async () => !(await client.bitswap.wantlist()).some(c => c.equals(mine)))
    assert.deepEqual(await (await rpc(a, 'bitswap/wantlist', { peer: b.node.peerId })).json(), { Keys: [] })
  })

  it('keeps a want two requests share until both gave up', async () => {
    const cid = await rawBlock(randomBytes(32))
    const first = new AbortController()
    const second = new AbortController()
    const requests = [first, second].map(async c => client.block.get(cid, { signal: c.signal }).catch(() => undefined))
    await waitFor('the want', async () => (await client.bitswap.wantlist()).some(c => c.equals(cid)))
    first.abort()
    await requests[0]
    // Helia's bitswap alone withdrew the want at the first abort.
    await new Promise(resolve => setTimeout(resolve, 500))
    assert.ok((await client.bitswap.wantlist()).some(c => c.equals(cid)), 'still wanted for the second request')
    second.abort()
    await requests[1]
    await waitFor('the want withdrawn', async () => !(await client.bitswap.wantlist()).some(c => c.equals(cid)))
  })

  it('answers a ledger without bytes for a peer it exchanged no block with, and refuses a bad peer id', async () => {
    // Daemons move blocks over the block-stream protocol; bitswap only traded (empty) wantlists with b.
    const ledger = await (await rpc(a, 'bitswap/ledger', { arg: b.node.peerId })).json()
    assert.deepEqual({ ...ledger, Exchanged: 0 }, { Peer: b.node.peerId, Value: 0, Sent: 0, Recv: 0, Exchanged: 0 })
    const stranger = peerIdFromString('12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq').toString()
    assert.deepEqual(await (await rpc(a, 'bitswap/ledger', { arg: stranger })).json(), { Peer: stranger, Value: 0, Sent: 0, Recv: 0, Exchanged: 0 })
    for (const [path, params] of [['bitswap/ledger', { arg: 'not-a-peer' }], ['bitswap/wantlist', { peer: 'not-a-peer' }], ['bitswap/ledger', {}]] as const) {
      const res = await rpc(a, path, params)
      assert.equal(res.status, 400, path)
      assert.equal((await res.json()).Type, 'error')
    }
  })

  it('provides a block and finds its provider with routing/provide and routing/findprovs', async () => {
    const { cid } = await client.add('provided for routing/findprovs\n')
    const provided = await ndjson(await rpc(a, 'routing/provide', { arg: cid.toString() }))
    assert.ok(provided.every(e => typeof e.Type === 'number' && 'Extra' in e && 'ID' in e && 'Responses' in e), JSON.stringify(provided[0]))
    const clientB = create({ url: `${b.url}/api/v0`, timeout: 60_000 })
    const events = await collect(clientB.routing.findProvs(cid))
    const providers = events.flatMap(e => e.name === 'PROVIDER' ? e.providers : [])
    assert.ok(providers.some(p => p.id.toString() === a.node.peerId), JSON.stringify(events.map(e => e.name)))
    const limited = await ndjson(await rpc(b, 'routing/findprovs', { arg: cid.toString(), 'num-providers': '1' }))
    assert.equal(limited.filter(e => e.Type === 4).length, 1)
  })

  it('refuses to provide a block it does not have, and findprovs with no count', async () => {
    const missing = await rawBlock(randomBytes(16))
    const res = await rpc(a, 'routing/provide', { arg: missing.toString() })
    assert.equal(res.status, 404)
    assert.match((await res.json()).Message, /not found locally, cannot provide/)
    assert.equal((await rpc(a, 'routing/findprovs', { arg: missing.toString(), 'num-providers': '0' })).status, 400)
    assert.equal((await rpc(a, 'routing/findprovs', { arg: 'not-a-cid' })).status, 400)
  })

  it('finds the addresses of a peer that only its neighbour is connected to with routing/findpeer', async () => {
    const target = peer.libp2p.peerId
    const events = await collect(create({ url: `${b.url}/api/v0`, timeout: 60_000 }).routing.findPeer(target))
    const last = events.at(-1)
    assert.equal(last?.name, 'FINAL_PEER')
    assert.ok(last?.name === 'FINAL_PEER' && last.peer.id.equals(target) && last.peer.multiaddrs.length > 0)
    const self = await rpc(a, 'routing/findpeer', { arg: a.node.peerId })
    assert.equal(self.status, 400)
    // As Kubo: a peer the DHT does not know ends the events with a query error.
    const missing = await collect(client.routing.findPeer(peerIdFromString('Qmd7qZS4T7xXtsNFdRoK1trfMs5zU94EpokQ9WFtxdPxsZ')))
    assert.deepEqual(missing.filter(e => e.name === 'FINAL_PEER'), [])
    const error = missing.at(-1)
    assert.ok(error?.name === 'QUERY_ERROR' && error.error.message === 'routing: not found', JSON.stringify(missing.map(e => e.name)))
  })

  it('gets a name\'s IPNS record from the DHT and puts it elsewhere with routing/get and routing/put', async () => {
    const { cid } = await client.add('published for routing/get\n')
    await client.name.publish(cid)
    const key = `/ipns/${a.node.peerId}`
    const clientB = create({ url: `${b.url}/api/v0`, timeout: 60_000 })
    const [event] = await waitFor('the record in the DHT', async () => {
      const events = await collect(clientB.routing.get(key)).catch(() => [])
      return events.length > 0 ? events : undefined
    })
    assert.equal(event.name, 'VALUE')
    const record = event.name === 'VALUE' ? event.value : new Uint8Array()
    assert.equal(IPNSEntry.decode(record).value != null, true)
    assert.ok(new TextDecoder().decode(IPNSEntry.decode(record).value).includes(cid.toV1().toString()))
    const [put] = await collect(clientB.routing.put(key, record))
    assert.equal(put.name, 'VALUE')
    const rawPut = await ndjson(await rpc(b, 'routing/put', { arg: key }, { body: formOf([{ path: 'record', content: record }]) }))
    assert.deepEqual(rawPut, [{ Extra: '', ID: a.node.peerId, Responses: null, Type: 5 }])
    const tampered = Uint8Array.from(record)
    tampered[tampered.length - 5] ^= 0xff
    assert.equal((await rpc(b, 'routing/put', { arg: key }, { body: formOf([{ path: 'record', content: tampered }]) })).status, 400)
    assert.equal((await rpc(b, 'routing/put', { arg: `/ipns/${b.node.peerId}` }, { body: formOf([{ path: 'record', content: record }]) })).status, 400, 'a record under another name')
    assert.equal((await rpc(b, 'routing/get', { arg: '/pk/whatever' })).status, 400)
  })

  it('streams the closest peers to a peer id with dht/query', async () => {
    const events = await collect(client.dht.query(peerIdFromString(b.node.peerId)))
    const finals = events.flatMap(e => e.name === 'FINAL_PEER' ? [e.peer.id.toString()] : [])
    assert.ok(finals.includes(b.node.peerId) || finals.includes(peer.libp2p.peerId.toString()), JSON.stringify(finals))
    const rawLines = await ndjson(await rpc(a, 'dht/query', { arg: b.node.peerId }))
    const final = rawLines.find(e => e.Type === 2)
    assert.ok(final != null && final.Responses === null && typeof final.ID === 'string' && final.Extra === '')
    assert.equal((await rpc(a, 'dht/query', { arg: 'nope' })).status, 400)
  })
})
