import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

describe('two daemons on loopback', () => {
  let a: TestDaemon
  let b: TestDaemon

  before(async () => {
    a = await startTestDaemon()
    b = await startTestDaemon()
  })

  after(async () => {
    await Promise.allSettled([a?.cleanup(), b?.cleanup()])
  })

  it('connects through swarm/connect and lists each other as peers', async () => {
    const res = await rpc(b, 'swarm/connect', { arg: a.swarmAddr })
    assert.equal(res.status, 200)
    const body = await res.json() as { Strings: string[] }
    assert.deepEqual(body.Strings, [`connect ${a.node.peerId} success`])
    const peers = await (await rpc(b, 'swarm/peers')).json() as { Peers: Array<{ Peer: string }>, count: number }
    assert.ok(peers.Peers.some(p => p.Peer === a.node.peerId))
    assert.ok(peers.count >= 1)
  })

  it('fetches content added on one node from the other by bitswap', async () => {
    const data = randomBytes(1_500_000)
    const added = await (await rpc(a, 'add', {}, { body: formOf([{ path: 'random.bin', content: data }]) })).json() as { Hash: string }
    const res = await rpc(b, 'cat', { arg: added.Hash })
    assert.equal(res.status, 200)
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data)
  })

  it('pins remote content, fetching the whole DAG', async () => {
    const data = randomBytes(700_000)
    const added = await (await rpc(a, 'add', { pin: 'false' }, { body: formOf([{ path: 'x', content: data }]) })).json() as { Hash: string }
    const res = await rpc(b, 'pin/add', { arg: added.Hash })
    assert.equal(res.status, 200)
    const ls = await (await rpc(b, 'pin/ls', { arg: added.Hash })).json() as { Keys: Record<string, { Type: string }> }
    assert.equal(ls.Keys[added.Hash]?.Type, 'recursive')
  })
})
