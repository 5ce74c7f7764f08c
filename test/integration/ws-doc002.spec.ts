/**
 * Document 002's /ws on an in-process daemon: live metrics in the form of
 * /api/distributed/metrics, the progress of a transfer that cannot finish,
 * cluster events and the status of a request as its job moves.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { after, before, describe, it } from 'node:test'
import { startTestDaemon } from '../helpers/daemon.ts'
import { openSocket, wsUrl } from '../helpers/sockets.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { TestSocket } from '../helpers/sockets.ts'

/** The next message of `type`, skipping others, within a bounded count and wait. */
async function nextOf (socket: TestSocket, type: string, match: (data: any) => boolean = () => true): Promise<any> {
  for (let i = 0; i < 200; i++) {
    const message = await socket.json(20_000)
    assert.equal(typeof message.timestamp, 'string')
    if (message.type === type && match(message.data) === true) return message.data
  }
  throw new Error(`no ${type} message among 200`)
}

describe("document 002's /ws", { timeout: 120_000 }, () => {
  let d: TestDaemon
  let live: TestSocket

  before(async () => {
    d = await startTestDaemon()
    live = openSocket(wsUrl(d, '/ws', { interval: '1' }))
    await live.opened
  })
  after(async () => {
    live?.ws.close(1000)
    await d?.cleanup()
  })

  it('sends metrics in the form of /api/distributed/metrics at once and every interval', async () => {
    const first = await nextOf(live, 'metrics')
    const rest = await (await fetch(`${d.url}/api/distributed/metrics`)).json() as object
    assert.deepEqual(Object.keys(first).sort(), Object.keys(rest).sort())
    assert.equal(first.node_id, d.node.peerId)
    const second = await nextOf(live, 'metrics')
    assert.ok(Date.parse(second.timestamp) > Date.parse(first.timestamp))
  })

  it('sends cluster events and the status of a request as its job moves', async () => {
    const added = await d.node.content.blockPut(Buffer.from('prompt'))
    const model = await d.node.content.blockPut(randomBytes(100))
    await d.node.cluster.registerModel({ modelId: 'live:latest', modelCID: model.toString(), replicationFactor: 1 })
    assert.equal((await nextOf(live, 'cluster_event', e => e.event === 'model_registered')).data.modelId, 'live:latest')
    const job = await d.node.cluster.submitJob({ promptCID: added.toString(), modelId: 'live:latest' })
    const requested = await nextOf(live, 'request_status', r => r.id === job.jobId)
    assert.equal(requested.model, 'live:latest')
    assert.ok(['requested', 'running', 'failed'].includes(requested.status), requested.status)
    await d.node.cluster.failJob(job.jobId, 'stopped by the test').catch(() => {})
    const failed = await nextOf(live, 'request_status', r => r.id === job.jobId && r.status === 'failed')
    assert.ok(typeof failed.error === 'string' && failed.error !== '')
  })

  it('sends the progress of a transfer while it runs', async () => {
    // A DAG that cannot arrive whole: the node holds the root and one leaf, nobody the other leaf.
    const leaf = randomBytes(50_000)
    const present = await d.node.content.blockPut(leaf)
    const absent = CID.createV1(0x55, await sha256.digest(randomBytes(64)))
    const root = await d.node.content.blockPut(dagPb.encode({ Links: [{ Hash: present, Tsize: leaf.length }, { Hash: absent, Tsize: 50_000 }] }), { cidCodec: 'dag-pb' })
    await d.node.cluster.pinAdd(root.toString(), { replicationFactor: -1, name: 'live-stuck' })
    const progress = await nextOf(live, 'transfer_progress', p => p.transfers.some((t: any) => t.cid === root.toString()))
    const transfer = progress.transfers.find((t: any) => t.cid === root.toString())
    assert.equal(progress.count, progress.transfers.length)
    assert.equal(transfer.name, 'live-stuck')
    assert.equal(transfer.node, d.node.peerId)
    const listed = await (await fetch(`${d.url}/api/v1/transfers`)).json() as { transfers: Array<{ id: string }> }
    assert.ok(listed.transfers.some(t => t.id === transfer.id), 'the id GET /api/v1/transfers gives')
    await d.node.cluster.pinRm(root.toString())
    await nextOf(live, 'transfer_progress', p => p.count === 0)
  })

  it('refuses an interval it does not take with 400 in document 002\'s error form', async () => {
    const res = await fetch(`${d.url}/ws?interval=0`)
    assert.equal(res.status, 400)
    const body = await res.json() as Record<string, unknown>
    assert.equal(typeof body.request_id, 'string')
    assert.equal(typeof body.code, 'string')
  })
})
