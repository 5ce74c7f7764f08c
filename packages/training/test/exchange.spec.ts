/**
 * The gradient exchange of a two-node job, between two in-process daemons
 * in one cluster. The second node answers steps with a StepWorker of this
 * test's, behind the real /node-daemon/training protocol on a sealed
 * channel, as a daemon with a channel host serves it, so that its
 * replica can be read once the job is done: its weights must be those of
 * the coordinator's checkpoint at the same step, bit for bit, though it
 * made most of the means it applied itself, from the coordinator's gradient
 * and its own. The next step's request leaves before the coordinator's own
 * optimizer step: the worker gets it before the coordinator reports the
 * step it finished.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import { blobs } from '../../../test/helpers/training.ts'
import { waitFor } from '../../../test/helpers/cluster.ts'
import { startTestDaemon } from '../../../test/helpers/daemon.ts'
import { StepResponse, TrainingProtocol } from '../src/protocol.ts'
import { StepWorker } from '../src/worker.ts'
import type { TestDaemon } from '../../../test/helpers/daemon.ts'

const log = logger('node-daemon:test-exchange')
/** About 1M parameters: an AdamW step in double precision takes the coordinator milliseconds, a message far less. */
const MODEL = { model_type: 'mlp-classifier', inputs: 4, hidden: [1024, 1024], classes: 3 }

describe('the gradient exchange of two nodes', () => {
  let a: TestDaemon
  let b: TestDaemon
  let steps: StepWorker
  let protocol: TrainingProtocol
  /** Per request the second node got: its round, the steps the coordinator had reported by then, and whether it carried the coordinator's gradient rather than the mean. */
  const arrivals: Array<{ round: number, reported: number, peer: boolean }> = []
  let reported = 0

  before(async () => {
    a = await startTestDaemon()
    b = await startTestDaemon({ swarm: { bootstrap: [a.swarmAddr] } })
    await waitFor('the second node in the cluster', async () => a.node.cluster.status().voters.includes(b.node.peerId) || a.node.cluster.status().learners.includes(b.node.peerId), 60_000)
    // The second node's own service gives way to a worker this test can read.
    await b.node.training.stop()
    steps = new StepWorker({ content: b.node.content, log })
    protocol = new TrainingProtocol({ libp2p: b.node.swarm, log }, {
      allow: peer => peer === a.node.peerId,
      channelHost: '127.0.0.1',
      handler: async (_from, request, signal) => {
        arrivals.push({ round: Number(request.round), reported, peer: request.peerCount > 0 })
        return steps.answer(request, signal)
      }
    })
    await protocol.start()
    a.node.training.addEventListener('step', () => { reported++ })
  })

  after(async () => {
    await protocol?.stop()
    await steps?.release()
    await b?.cleanup()
    await a?.cleanup()
  })

  it('keeps the replicas bit-identical, the worker making the means of a round of two itself, and sends each step before the coordinator\'s optimizer step', async () => {
    const { cid: dataset } = await a.node.training.addDataset(blobs(120, 1), { name: 'blobs' })
    // 8 steps; the checkpoint at step 7 holds the weights the worker has after the last update it is sent.
    // Halves of 16 and 15 samples: with even ones the weights are 1/2, exact, and a mean summed in the wrong order would pass for the right one.
    const job = await a.node.training.submit({ model: MODEL, dataset, batchSize: 31, epochs: 2, learningRate: 1e-3, seed: 1, checkpointEvery: 7, nodes: [a.node.peerId, b.node.peerId] })
    const done = await waitFor('the job to end', async () => {
      const j = await a.node.training.job(job.jobId)
      return ['completed', 'failed', 'stopped'].includes(j.status) ? j : undefined
    }, 180_000)
    assert.equal(done.status, 'completed', done.error)
    assert.ok(done.training?.workers.every(w => w.status === 'training' && (w.drops ?? 0) === 0), JSON.stringify(done.training?.workers))
    assert.equal(arrivals.length, 8)
    // Every step came on the sealed channel the coordinator asked for, none over libp2p.
    assert.equal(protocol.stats.sealedServed, 1)
    assert.equal(protocol.stats.libp2pServed, 0)

    // From round 2 on, each round's step went out with the coordinator's own gradient as soon as it was made, and the worker made the mean itself;
    // round 1 follows the worker's sync (its gradient of round 0 is the first), and round 7 the checkpoint, which may take workers in.
    assert.deepEqual(arrivals.filter(r => r.peer).map(r => r.round), [2, 3, 4, 5, 6])
    // Rounds 1 to 6 went out before the coordinator's optimizer step of the round before; round 7 follows the checkpoint.
    const ahead = arrivals.filter(r => r.round >= 1 && r.round < 7 && r.reported < r.round)
    assert.ok(ahead.length > 0, `every request came after the coordinator reported the step before it: ${JSON.stringify(arrivals)}`)

    // The worker's replica is at step 7: the mean of round 8 goes out with no next request.
    const checkpoint = done.training?.checkpoints.find(c => c.step === 7)
    assert.ok(checkpoint != null, JSON.stringify(done.training?.checkpoints))
    const probe = { jobId: BigInt(job.jobId), round: 100n, syncCid: '', update: new Uint8Array(0), version: 7n, samples: [0, 1, 2, 3, 4], client: '', peerCount: 0, peerFirst: false }
    const worker = await steps.answer(probe, AbortSignal.timeout(60_000))
    assert.equal(worker.status, StepResponse.Status.OK, worker.errorMessage)
    // The coordinator's weights at step 7, in a replica of their own, give the same gradient only if the weights are the same.
    const reference = new StepWorker({ content: a.node.content, log })
    try {
      const coordinator = await reference.answer({ ...probe, syncCid: checkpoint.cid }, AbortSignal.timeout(60_000))
      assert.equal(coordinator.status, StepResponse.Status.OK, coordinator.errorMessage)
      assert.ok(Buffer.from(worker.gradient).equals(Buffer.from(coordinator.gradient)), 'the worker\'s weights differ from the coordinator\'s')
      assert.equal(worker.lossSum, coordinator.lossSum)
    } finally {
      await reference.release()
    }
  })
})
