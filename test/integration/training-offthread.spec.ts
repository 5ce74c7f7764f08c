/**
 * Training steps run off the node's event loop, as inference steps do (see
 * inference-offthread.spec.ts): the training graph's sessions and the
 * optimizer both. On the leader of a two-node cluster, each process a real
 * daemon, a one-node job whose every step takes seconds trains while the
 * test checks that the node answers /health at once and is still the leader
 * in the same term when the job ends: with the training graph run on the
 * main thread, the follower would hear no heartbeat for a step's length,
 * longer than the election timeout, and take over; with the optimizer run
 * there, a probe would wait a pass over millions of parameters (caught here
 * when that pass is over a quarter of a step: the unit tests of Replica
 * catch it always).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { encodeTensorDataset } from '@node-daemon/training'
import { seededRandom } from '@node-daemon/onnx'
import { FAST, ProcessCluster, agreedLeader, assertQuick, call, healthLatencies, waitFor } from '../helpers/cluster.ts'
import { addDataset, finished, train } from '../helpers/training.ts'
import type { Member } from '../helpers/cluster.ts'

/**
 * 8.5M parameters: an SGD step with momentum, a pass over them all, held the
 * main thread for 200 to 400 ms on this 2-core machine; 2048 samples through
 * them, forward and backward, 100 GFLOP, take 1 to 10 s more, idle or
 * loaded.
 */
const MODEL = { model_type: 'mlp-classifier', inputs: 64, hidden: [2048, 2048, 2048], classes: 3 }
const BATCH = 2048
const EPOCHS = 4
/** Probes 20 ms apart, in rounds, until an optimizer step happened among them. */
const PROBES = 20
const GAP_MS = 20

function dataset (): Uint8Array {
  const random = seededRandom(2)
  const features = new Float32Array(BATCH * MODEL.inputs).map(() => random() * 2 - 1)
  const labels = new Int32Array(BATCH).map((_, i) => i % MODEL.classes)
  return encodeTensorDataset({ features, labels, featureCount: MODEL.inputs })
}

describe('a training job whose step takes seconds, on the leader', () => {
  const cluster = new ProcessCluster(FAST)
  let leader: Member
  let data: string
  let term: number

  before(async () => {
    await cluster.add()
    await cluster.add()
    const status = await agreedLeader(cluster.members)
    leader = cluster.members.find(m => m.peerId === status.leader) as Member
    data = await addDataset(leader, 'wide', dataset())
    term = (await agreedLeader(cluster.members)).term
  })
  after(async () => {
    await cluster.stop()
  })

  it('answers /health at once and keeps its leadership while it trains', async () => {
    const session = await train(leader, { dataset: data, model: MODEL, nodes: [leader.peerId], batch_size: BATCH, epochs: EPOCHS, optimizer: 'sgd', learning_rate: 1e-3, checkpoint_every: 1000 })
    const step = async (): Promise<number> => {
      const { body } = await call(leader, `/api/v1/training/status?session_id=${session}`)
      if (body.status === 'failed') assert.fail(`training failed: ${body.error}`)
      return body.progress.step
    }
    // From the first step's report on, the next steps run: seconds of training.
    await waitFor('the first step', async () => await step() >= 1 ? true : undefined, 120_000)
    const first = await step()
    const latencies: number[] = []
    // Two steps reported since the probes began: an optimizer step surely ran among them. Bounded by the job's steps.
    for (let round = 0; round < 1000 && await step() < first + 2; round++) latencies.push(...(await healthLatencies(leader, PROBES, GAP_MS)).latencies)
    const during = (await call(leader, `/api/v1/training/status?session_id=${session}`)).body
    const done = await finished(leader, session, 300_000)
    assert.equal(done.status, 'completed')
    assert.ok(during.status === 'running' && during.progress.step < EPOCHS, `the probes ran while the job trained: ${JSON.stringify(during)}`)
    const stepMs = BATCH / done.progress.samples_per_second * 1000
    assert.ok(stepMs >= 1000, `a step took ${stepMs.toFixed(0)} ms, not the ≥ 1 s this test needs`)
    // A loaded machine delays probes by up to a few hundred ms, as it slows steps: no probe waited a quarter of one.
    assertQuick(latencies, stepMs / 4)
    const ending = await agreedLeader(cluster.members)
    assert.deepEqual(ending, { leader: leader.peerId, term }, 'the leader kept its leadership, in the same term')
  })
})
