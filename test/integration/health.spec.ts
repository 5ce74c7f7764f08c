/**
 * /health tells a node that serves its cluster from one that cannot: without
 * quorum, or removed from its cluster, it says `degraded` with the reason,
 * and stays 200 for probes that read only the status code.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

interface Health { status: string, reasons?: string[], services: { consensus: boolean, scheduler: boolean } }

async function health (d: TestDaemon): Promise<{ code: number, body: Health }> {
  const res = await fetch(`${d.url}/health`, { signal: AbortSignal.timeout(10_000) })
  return { code: res.status, body: await res.json() as Health }
}

describe('/health', { timeout: 180_000 }, () => {
  const daemons: TestDaemon[] = []
  before(async () => {
    daemons.push(await startTestDaemon())
    for (let i = 0; i < 2; i++) daemons.push(await startTestDaemon({ swarm: { bootstrap: [daemons[0].swarmAddr] } }))
  })
  after(async () => { await Promise.all(daemons.map(async d => d.cleanup())) })

  it('is healthy, with no reasons, on members of a cluster with a leader', async () => {
    await waitFor('three voters', async () => daemons[0].node.cluster.status().voters.length === 3, 60_000)
    for (const d of daemons) {
      const { code, body } = await waitFor('a healthy member', async () => {
        const h = await health(d)
        return h.body.status === 'healthy' ? h : undefined
      }, 30_000)
      assert.equal(code, 200)
      assert.equal(body.reasons, undefined)
      assert.equal(body.services.scheduler, true)
    }
  })

  it('says removed on a node taken out of its cluster', async () => {
    const [first, , removed] = daemons
    const res = await fetch(`${first.url}/api/v1/nodes/${removed.node.peerId}`, { method: 'DELETE' })
    assert.equal(res.status, 200, await res.text())
    // A node just started is also degraded while it catches up with the log: only the removal's reason counts.
    const { code, body } = await waitFor('the removed node to say so', async () => {
      const h = await health(removed)
      return h.body.status === 'degraded' && h.body.reasons?.some(r => /removed/.test(r)) === true ? h : undefined
    }, 30_000)
    assert.equal(code, 200)
    assert.ok(body.reasons?.some(r => /removed/.test(r)), JSON.stringify(body))
    assert.equal(body.services.scheduler, false)
  })

  it('says no quorum on a node whose cluster lost its majority', async () => {
    const [first, second] = daemons
    await waitFor('two voters', async () => first.node.cluster.status().voters.length === 2, 30_000)
    await second.cleanup()
    daemons.splice(1, 1)
    const { code, body } = await waitFor('the lone voter to notice', async () => {
      const h = await health(first)
      return h.body.status === 'degraded' ? h : undefined
    }, 30_000)
    assert.equal(code, 200)
    assert.ok(body.reasons?.some(r => /no quorum/.test(r)), JSON.stringify(body))
  })
})
