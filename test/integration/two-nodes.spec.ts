import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { formOf, rpc, startPair, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

describe('two daemons on loopback', () => {
  let a: TestDaemon
  let b: TestDaemon

  before(async () => {
    ;[a, b] = await startPair()
  })

  after(async () => {
    await Promise.allSettled([a?.cleanup(), b?.cleanup()])
  })

  it('connects through swarm/connect and lists each other as peers', async () => {
    const res = await rpc(a, 'swarm/connect', { arg: b.swarmAddr })
    assert.equal(res.status, 200)
    const body = await res.json() as { Strings: string[] }
    assert.deepEqual(body.Strings, [`connect ${b.node.peerId} success`])
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

  it('resolves an IPNS name published on the other node', async () => {
    const added = await (await rpc(a, 'add', {}, { body: formOf([{ path: 'n.txt', content: 'named\n' }]) })).json() as { Hash: string }
    const published = await (await rpc(a, 'name/publish', { arg: added.Hash })).json() as { Name: string }
    let path: string | undefined
    for (let attempt = 0; attempt < 20 && path == null; attempt++) {
      const res = await rpc(b, 'name/resolve', { arg: published.Name, nocache: 'true' })
      if (res.status === 200) path = ((await res.json()) as { Path: string }).Path
      else await new Promise(resolve => setTimeout(resolve, 250))
    }
    // As published: a CIDv0 stays v0 on every node, as with Kubo.
    assert.equal(path, `/ipfs/${added.Hash}`, `B could not resolve ${published.Name}`)
    const cat = await rpc(b, 'cat', { arg: path ?? '' })
    assert.equal(await cat.text(), 'named\n')
  })

  it('delivers pubsub messages across nodes', async () => {
    const topic = 'u' + Buffer.from('cluster-news').toString('base64url')
    const controller = new AbortController()
    const sub = await fetch(`${b.url}/api/v0/pubsub/sub?arg=${topic}`, { method: 'POST', signal: controller.signal })
    assert.equal(sub.status, 200)
    const reader = sub.body!.getReader()
    let received = ''
    let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined
    try {
      // Until A has learnt of B's subscription, A's messages go nowhere: publish until B hears one.
      // One read stays pending across attempts, so that no chunk is lost to a timed-out race.
      pending = reader.read()
      for (let attempt = 0; attempt < 40 && !received.includes('\n'); attempt++) {
        const form = new FormData()
        form.append('file', new Blob(['hello from a']), 'data')
        await (await rpc(a, 'pubsub/pub', { arg: topic }, { body: form })).text()
        const chunk = await Promise.race([pending, new Promise<undefined>(resolve => setTimeout(resolve, 250))])
        if (chunk != null) {
          received += Buffer.from(chunk.value ?? []).toString()
          pending = reader.read()
        }
      }
    } finally {
      controller.abort()
      pending?.catch(() => {})
    }
    const msg = JSON.parse(received.split('\n')[0]) as { from: string, data: string, topicIDs: string[] }
    assert.equal(msg.from, a.node.peerId)
    assert.equal(Buffer.from(msg.data.slice(1), 'base64url').toString(), 'hello from a')
    assert.deepEqual(msg.topicIDs, [topic])
  })

  it('joins through a bootstrap multiaddr given in the config', async () => {
    const c = await startTestDaemon({ swarm: { bootstrap: [a.swarmAddr] } })
    try {
      for (let attempt = 0; attempt < 100 && !c.node.peers().some(p => p.peer === a.node.peerId); attempt++) {
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      assert.ok(c.node.peers().some(p => p.peer === a.node.peerId))
    } finally {
      await c.cleanup()
    }
  })
})
