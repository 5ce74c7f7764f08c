/**
 * The worker thread of a replica's optimizer (optimizer-thread.ts starts
 * it): the same optimizer code as anywhere, steps applied one at a time in
 * the order they come, so replicas stay bit-identical. It loads only the
 * optimizer's code (optimizer.ts): not the runtime, whose loading takes
 * seconds.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { clipScale } from '@node-daemon/onnx'
import { optimizerOf, partsOf } from './optimizer.ts'
import type { OptimizerReply, OptimizerRequest, OptimizerSource } from './optimizer.ts'

const port = parentPort as NonNullable<typeof parentPort>
const source = workerData as OptimizerSource
const optimizer = optimizerOf(source)

const weights = partsOf(source.parameters, new Float32Array(source.weights))
const grads = partsOf(source.parameters, new Float32Array(source.gradient))

function answer (request: OptimizerRequest): { reply: OptimizerReply, transfer: ArrayBuffer[] } {
  if (request.type === 'settled') return { reply: request, transfer: [] }
  if (request.type === 'state') {
    const state = optimizer.state()
    // The state is a copy already: its buffers move.
    const transfer = Object.values(state.slots).flatMap(slot => Object.values(slot).map(t => t.buffer as ArrayBuffer))
    return { reply: { type: 'state', id: request.id, state }, transfer }
  }
  // Clipping scales as the optimizer reads: the shared gradient is not written.
  const gradientScale = source.spec.clipNorm > 0 ? clipScale(grads, source.spec.clipNorm) : 1
  const learningRate = optimizer.step(weights, grads, { gradientScale })
  return { reply: { type: 'step', id: request.id, learningRate }, transfer: [] }
}

// An exception is a bug that leaves the weights half stepped: it ends the thread, and so fails the job with ModelWorkerError.
port.on('message', (request: OptimizerRequest | { type: 'close' }) => {
  if (request.type === 'close') {
    port.close()
    return
  }
  const { reply, transfer } = answer(request)
  port.postMessage(reply, transfer)
})
