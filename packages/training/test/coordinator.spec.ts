/**
 * The coordinator's round deadlines, on a real daemon whose training service
 * is rebuilt with a short floor: an external worker attached in this process
 * answers every step through the node's own StepWorker, only slower, so that
 * the deadline comes from the measured rounds.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import { CLASSIFIER, blobs } from '../../../test/helpers/training.ts'
import { waitFor } from '../../../test/helpers/cluster.ts'
import { startTestDaemon } from '../../../test/helpers/daemon.ts'
import { TrainingService } from '../src/service.ts'
import { StepWorker } from '../src/worker.ts'
import type { TestDaemon } from '../../../test/helpers/daemon.ts'
import type { ExternalWorker } from '../src/external.ts'
import type { StepRequest, StepResponse } from '../src/protocol.ts'

const log = logger('node-daemon:test-training')

/** An external worker that answers each step after `delayMs`, and counts them. */
function slowWorker (id: string, worker: StepWorker, delayMs: number): ExternalWorker & { steps: number } {
  return {
    id,
    steps: 0,
    async step (request: StepRequest, signal: AbortSignal): Promise<StepResponse> {
      await sleep(delayMs, undefined, { signal })
      this.steps++
      return worker.answer(request, signal)
    },
    notify () {}
  }
}

describe('the coordinator', () => {
  let daemon: TestDaemon
  let training: TrainingService
  let dataset: string

  before(async () => {
    daemon = await startTestDaemon()
    const { node } = daemon
    // The daemon's own service gives way to one whose deadlines this test sets.
    await node.training.stop()
    training = new TrainingService({
      cluster: node.cluster,
      content: node.content,
      libp2p: node.swarm,
      models: { resolve: async (name, options) => node.inference.show(name, options), import: async (params, options) => node.inference.import(params, options) },
      log
    }, { minRoundTimeoutMs: 20, lagFactor: 4 })
    await training.start()
    dataset = (await training.addDataset(blobs(90, 1), { name: 'blobs' })).cid
  })
  after(async () => {
    await training?.stop()
    await daemon?.cleanup()
  })

  it('holds a worker slower than the deadline floor to a whole number of ms past its rounds, and trains on', async () => {
    const steps = new StepWorker({ content: daemon.node.content, log })
    // 50 ms a step: four times the median round is past the 20 ms floor, and not a whole number of ms.
    const worker = slowWorker('slow', steps, 50)
    training.attachWorker(worker)
    try {
      await training.requestWork('slow')
      const job = await training.submit({ model: CLASSIFIER, dataset, optimizer: 'sgd', batchSize: 30, epochs: 4, learningRate: 0.1, seed: 1, checkpointEvery: 2 })
      const done = await waitFor('the job to end', async () => {
        const j = await training.job(job.jobId)
        return ['completed', 'failed', 'stopped'].includes(j.status) ? j : undefined
      }, 120_000)
      assert.equal(done.status, 'completed', done.error)
      assert.equal(done.training?.progress?.step, 12)
      assert.ok(worker.steps >= 4, `the slow worker answered ${worker.steps} steps`)
    } finally {
      await training.detachWorker('slow')
      await steps.release()
    }
  })
})
