import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import { introduce, startLibp2p } from '../../../test/helpers/raft.ts'
import { lpStream } from '@libp2p/utils'
import { bytesToFloats, floatBytes, StepRequest, stepFailure, StepResponse, stepResult, TRAINING_PROTOCOL, TrainingProtocol } from '../src/protocol.ts'
import type { Libp2p } from '@libp2p/interface'

/** 2M parameters: 8 MiB each way, twice the 4 MiB a libp2p stream buffers by default. */
const PARAMETERS = 2 * 1024 * 1024

function request (update: Float32Array): StepRequest {
  return { jobId: 1n, round: 3n, syncCid: '', update: floatBytes(update), version: 3n, samples: [4, 5], client: '', peerCount: 0, peerFirst: false }
}

describe('the training protocol', () => {
  let coordinator: Libp2p
  /** Offers sealed channels; the plain worker does not. */
  let worker: Libp2p
  let plainWorker: Libp2p
  let protocol: TrainingProtocol
  let plainProtocol: TrainingProtocol
  const allowed = new Set<string>()
  /** The buffer each request's update arrived in, in order. */
  const updates: ArrayBufferLike[] = []
  const sender = (): TrainingProtocol => new TrainingProtocol({ libp2p: coordinator, log: logger('test:training') }, { allow: () => false, handler: async (_from, r) => stepFailure(r.round, StepResponse.Status.ERROR) })

  before(async () => {
    coordinator = await startLibp2p()
    worker = await startLibp2p()
    plainWorker = await startLibp2p()
    await introduce([coordinator, worker, plainWorker])
    const init = {
      allow: (peer: string) => allowed.has(peer),
      // Answers with the update doubled, so both directions carry a whole gradient.
      handler: async (_from: string, r: StepRequest) => {
        updates.push(r.update.buffer)
        const update = bytesToFloats(r.update)
        return stepResult(r.round, { gradient: update.map(v => v * 2), count: r.samples.length, lossSum: 1.5, correct: 1, labels: 2, computeMs: 0 })
      }
    }
    protocol = new TrainingProtocol({ libp2p: worker, log: logger('test:training') }, { ...init, channelHost: '127.0.0.1' })
    plainProtocol = new TrainingProtocol({ libp2p: plainWorker, log: logger('test:training') }, init)
    await protocol.start()
    await plainProtocol.start()
  })

  after(async () => {
    await protocol?.stop()
    await plainProtocol?.stop()
    await Promise.allSettled([coordinator?.stop(), worker?.stop(), plainWorker?.stop()])
  })

  /** Two rounds of whole gradients each way on a channel to `to`. */
  async function twoRounds (to: Libp2p): Promise<void> {
    const channel = await sender().open(to.peerId.toString(), AbortSignal.timeout(10_000))
    try {
      for (let round = 0; round < 2; round++) {
        const update = new Float32Array(PARAMETERS).map((_, i) => i % 1000 + round)
        const response = await channel.step(request(update), AbortSignal.timeout(30_000))
        assert.equal(response.status, StepResponse.Status.OK, response.errorMessage)
        assert.equal(response.count, 2)
        const gradient = bytesToFloats(response.gradient)
        assert.equal(gradient.length, PARAMETERS)
        assert.equal(gradient[PARAMETERS - 1], 2 * ((PARAMETERS - 1) % 1000 + round))
      }
    } finally {
      channel.close()
    }
  }

  it('carries gradients larger than a stream buffers by default, both ways, round after round, on a sealed channel', async () => {
    allowed.add(coordinator.peerId.toString())
    const before = { ...protocol.stats }
    updates.length = 0
    await twoRounds(worker)
    assert.equal(protocol.stats.sealedServed, before.sealedServed + 1)
    assert.equal(protocol.stats.libp2pServed, before.libp2pServed)
    // The second round's update was read into the first's buffer, not a fresh one of 8 MiB.
    assert.equal(updates.length, 2)
    assert.equal(updates[1], updates[0])
  })

  it('goes over libp2p to a worker that offers no sealed channel', async () => {
    allowed.add(coordinator.peerId.toString())
    const before = { ...plainProtocol.stats }
    await twoRounds(plainWorker)
    assert.equal(plainProtocol.stats.libp2pServed, before.libp2pServed + 1)
    assert.equal(plainProtocol.stats.sealedServed, 0)
  })

  it('sends no step to a worker that speaks only 2.0.0 (which would apply a coordinator\'s gradient as the mean) or 3.0.0 (whose clipping norm is summed in another order)', async () => {
    allowed.add(coordinator.peerId.toString())
    const old = await startLibp2p()
    try {
      await introduce([coordinator, old])
      let steps = 0
      await old.handle(['/node-daemon/training/2.0.0', '/node-daemon/training/3.0.0'], (stream) => { steps++; stream.abort(new Error('an old worker')) })
      await assert.rejects(sender().open(old.peerId.toString(), AbortSignal.timeout(10_000)))
      assert.equal(steps, 0)
    } finally {
      await old.stop()
    }
  })

  it('sends each message\'s tensor after it as a raw length-prefixed frame, as protocols/training.proto documents', async () => {
    allowed.add(coordinator.peerId.toString())
    const stream = await coordinator.dialProtocol(worker.peerId, TRAINING_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
    const lp = lpStream(stream)
    try {
      const update = new Float32Array([1.5, -2, 3])
      await lp.writeV([StepRequest.encode({ ...request(new Float32Array(0)), samples: [7] }), floatBytes(update)], { signal: AbortSignal.timeout(10_000) })
      const response = StepResponse.decode(await lp.read({ signal: AbortSignal.timeout(10_000) }))
      assert.equal(response.status, StepResponse.Status.OK, response.errorMessage)
      assert.equal(response.count, 1)
      assert.equal(response.gradient.byteLength, 0, 'the gradient is not inside the message')
      const frame = (await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray()
      assert.deepEqual(bytesToFloats(frame), new Float32Array([3, -4, 6]))
    } finally {
      stream.abort(new Error('done'))
    }
  })

  it('reads aligned tensor bytes in place and copies only unaligned ones', () => {
    const floats = new Float32Array([1, 2, 3])
    const aligned = bytesToFloats(floatBytes(floats))
    assert.equal(aligned.buffer, floats.buffer)
    assert.deepEqual(aligned, floats)
    const bytes = new Uint8Array(13)
    bytes.set(floatBytes(floats), 1)
    const unaligned = bytesToFloats(bytes.subarray(1))
    assert.notEqual(unaligned.buffer, bytes.buffer)
    assert.deepEqual(unaligned, floats)
  })

  it('refuses a peer that is not a member of the cluster, a sealed channel as much as a stream', async () => {
    allowed.clear()
    const before = { ...protocol.stats }
    const channel = await sender().open(worker.peerId.toString(), AbortSignal.timeout(10_000))
    try {
      await assert.rejects(channel.step(request(new Float32Array(4)), AbortSignal.timeout(10_000)))
    } finally {
      channel.close()
    }
    assert.equal(protocol.stats.sealedServed, before.sealedServed, 'a channel was offered to a peer outside the cluster')
  })
})
