/**
 * Document 003 on two in-process daemons of one cluster: its swarm_*
 * Prometheus metrics from the cluster's own figures, and NODE_NOT_FOUND
 * (1001) for a node id no node has, training start included.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { call, waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import { addDataset, blobs, CLASSIFIER, train } from '../helpers/training.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const STRANGER = '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'

/** The samples of a Prometheus exposition, by their series (name and labels). */
async function scrape (d: TestDaemon): Promise<Map<string, number>> {
  const text = await (await fetch(`${d.url}/metrics`, { signal: AbortSignal.timeout(30_000) })).text()
  return new Map(text.split('\n').filter(l => l !== '' && !l.startsWith('#')).map(l => {
    const at = l.lastIndexOf(' ')
    return [l.slice(0, at), Number(l.slice(at + 1))]
  }))
}

describe('document 003: swarm_* metrics and NODE_NOT_FOUND', { timeout: 240_000 }, () => {
  const daemons: TestDaemon[] = []
  let dataset: string

  before(async () => {
    daemons.push(await startTestDaemon())
    daemons.push(await startTestDaemon({ swarm: { bootstrap: [daemons[0].swarmAddr] } }))
    await waitFor('two members', async () => (await daemons[0].node.cluster.nodes()).length === 2 && daemons[1].node.cluster.isReady(), 60_000)
    dataset = await addDataset({ api: daemons[0].url }, 'blobs-003', blobs(240, 3))
  })
  after(async () => { await Promise.allSettled(daemons.map(async d => d.cleanup())) })

  it('exports the node counts, the peers\' round trips and the committed votes', async () => {
    const [a] = daemons
    const before = await scrape(a)
    assert.equal(before.get('swarm_nodes_total'), 2)
    assert.equal(before.get('swarm_nodes_active'), 2)
    assert.ok((before.get('swarm_network_latency_count') ?? 0) >= 1, 'one ping of the other node at least')
    assert.ok((before.get('swarm_network_latency_sum') ?? 0) > 0)
    assert.ok(![...before.keys()].some(k => k.startsWith('swarm_training_loss')), 'no loss without a training session')

    const model = (await a.node.content.blockPut(randomBytes(64))).toString()
    await a.node.cluster.registerModel({ modelId: 'votes:latest', modelCID: model, replicationFactor: 1 })
    await a.node.cluster.updateModel('votes:latest', (await a.node.content.blockPut(randomBytes(64))).toString())
    const after = await scrape(a)
    assert.equal(after.get('swarm_consensus_votes'), (before.get('swarm_consensus_votes') ?? 0) + 1)
    assert.ok((after.get('swarm_network_latency_count') ?? 0) > (before.get('swarm_network_latency_count') ?? 0))
  })

  it('exports the loss of a training session while it runs', async () => {
    const [a] = daemons
    const session = await train({ api: a.url }, { dataset, model: CLASSIFIER, epochs: 5000, batch_size: 8, nodes: 1 })
    try {
      const loss = await waitFor('a step with a loss', async () => {
        const { body } = await call({ api: a.url }, `/api/v1/training/status?session_id=${session}`)
        return body.progress?.loss != null && body.status === 'running' ? body.progress.loss as number : undefined
      }, 120_000)
      const series = `swarm_training_loss{session="${session}"}`
      const exported = await scrape(a)
      assert.ok(exported.has(series), [...exported.keys()].filter(k => k.startsWith('swarm')).join(', '))
      assert.ok(Number.isFinite(exported.get(series)) && loss > 0)
      // The node that trains says what it holds and how fast it goes.
      const { body: self } = await call({ api: a.url }, `/api/v1/nodes/${a.node.peerId}`)
      assert.match(self.model_hash, /^(Qm|baf)/, JSON.stringify(self))
      assert.ok(self.performance.training_speed > 0, JSON.stringify(self.performance))
    } finally {
      await call({ api: a.url }, '/api/v1/training/stop', { json: { session_id: session } })
    }
  })

  it('stops the latest session on a POST /api/v1/training/stop without a body, as the document sends it', async () => {
    const [a] = daemons
    // The session of the test before stops at its next step.
    await waitFor('the session before to stop', async () => !['running', 'paused', 'pending'].includes((await call({ api: a.url }, '/api/v1/training/status')).body.status), 60_000)
    const session = await train({ api: a.url }, { dataset, model: CLASSIFIER, epochs: 5000, batch_size: 8, nodes: 1 })
    const { status, body } = await call({ api: a.url }, '/api/v1/training/stop', { method: 'POST' })
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.session_id, session)
    // The answer comes once the coordinator stopped it.
    assert.equal(body.status, 'stopped', JSON.stringify(body))
    assert.equal((await call({ api: a.url }, `/api/v1/training/status?session_id=${session}`)).body.status, 'stopped')
  })

  it('answers NODE_NOT_FOUND with 1001 for a training start naming a node the cluster lacks', async () => {
    const [a] = daemons
    await waitFor('the session to stop', async () => {
      const { body } = await call({ api: a.url }, '/api/v1/training/status')
      return !['running', 'paused', 'pending'].includes(body.status)
    }, 60_000)
    const { status, body } = await call({ api: a.url }, '/api/v1/training/start', { json: { dataset, model: CLASSIFIER, epochs: 1, nodes: [a.node.peerId, STRANGER] } })
    assert.equal(status, 404, JSON.stringify(body))
    assert.equal(body.Code, 1001)
    assert.equal(body.code, 'NODE_NOT_FOUND')
    assert.match(body.error, new RegExp(STRANGER))
  })
})
