/**
 * Document 003's event socket: `consensus_vote` when a vote is committed, and
 * `node_left` when a node dies and is marked offline, not only on removal.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { call, waitFor } from '../helpers/cluster.ts'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const TIMING = { cluster: { heartbeatMs: 250, nodeTimeoutMs: 3000 } }

describe('document 003 events', { timeout: 180_000 }, () => {
  const daemons: TestDaemon[] = []
  const events: Array<{ type: string, data: any }> = []
  let socket: WebSocket

  before(async () => {
    daemons.push(await startTestDaemon(TIMING))
    for (let i = 0; i < 2; i++) daemons.push(await startTestDaemon({ ...TIMING, swarm: { bootstrap: [daemons[0].swarmAddr] } }))
    await waitFor('three voters', async () => daemons[0].node.cluster.status().voters.length === 3, 60_000)
    socket = new WebSocket(`${daemons[0].url.replace('http', 'ws')}/api/v1/ws`)
    socket.addEventListener('message', (e) => { events.push(JSON.parse(String(e.data))) })
    await new Promise((resolve, reject) => { socket.addEventListener('open', resolve); socket.addEventListener('error', reject) })
  })
  after(async () => {
    socket?.close()
    await Promise.allSettled(daemons.map(async d => d.cleanup()))
  })

  it('sends consensus_vote when a vote is committed', async () => {
    const [a] = daemons
    const add = async (): Promise<string> => ((await (await rpc(a, 'add', {}, { body: formOf([{ path: 'w', content: randomBytes(1000) }]) })).json()) as { Hash: string }).Hash
    await a.node.cluster.registerModel({ modelId: 'voted:latest', modelCID: await add(), replicationFactor: 1 })
    const next = await add()
    const vote = await call({ api: a.url }, '/api/v1/consensus/vote', { json: { model_id: 'voted', model_cid: next } })
    assert.equal(vote.status, 200, JSON.stringify(vote.body))
    const event = await waitFor('consensus_vote', async () => events.find(e => e.type === 'consensus_vote'), 10_000)
    assert.deepEqual(event.data, { model_id: 'voted:latest', model_cid: next, version: 2, proposer: a.node.peerId, accepted: true })
  })

  it('sends node_left when a node dies and is marked offline', async () => {
    const dead = daemons.pop() as TestDaemon
    const id = dead.node.peerId
    await dead.cleanup()
    const event = await waitFor('node_left', async () => events.find(e => e.type === 'node_left' && e.data.id === id), 60_000)
    assert.equal(event.data.reason, 'offline')
  })
})
