/**
 * A worker thread of a replica's optimizer (optimizer-thread.ts starts
 * them): the same optimizer code as anywhere, over this thread's range of
 * the parameters, steps applied one at a time in the order they come. The
 * update is elementwise and the gradient's norm is summed by fixed blocks,
 * so replicas stay bit-identical whatever their number of threads. It loads
 * only the optimizer's code (optimizer.ts): not the runtime, whose loading
 * takes seconds.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { addSquares, normOfSquares, scaleForNorm, squaresLength } from '@node-daemon/onnx'
import { optimizerOf, piecesOf, regionOf, sizeOf } from './optimizer.ts'
import type { OptimizerReply, OptimizerRequest, OptimizerShare, OptimizerSource } from './optimizer.ts'
import type { OptimizerState } from '@node-daemon/onnx'

const port = parentPort as NonNullable<typeof parentPort>
const { share, ...source } = workerData as OptimizerSource & { share: OptimizerShare }
const { from, to, threads } = share

const size = sizeOf(source.parameters)
const piecesIn = (region: 0 | 1 | 2 | 3): ReturnType<typeof piecesOf> => piecesOf(source.parameters, regionOf(source.arena, size, region), from, to)
const mapOf = (pieces: ReturnType<typeof piecesOf>): Record<string, Float32Array> => Object.fromEntries(pieces.map(p => [p.name, p.view]))
const weightPieces = piecesIn(0)
const gradPieces = piecesIn(1)
const weights = mapOf(weightPieces)
const grads = mapOf(gradPieces)
// AdamW's moments in the arena too: in a WebAssembly memory, its kernel updates all four arrays in place.
const moments = source.spec.optimizer === 'adamw' ? { m: mapOf(piecesIn(2)), v: mapOf(piecesIn(3)), memory: source.arena instanceof SharedArrayBuffer ? undefined : source.arena } : undefined
const optimizer = optimizerOf({ ...source, resume: source.resume == null ? undefined : resumeOf(source.resume) }, moments)

// Two sets of partials, a step's and the next's: a thread may sum its blocks for the next step while another still reads this one's.
const lanes = share.partials.byteLength / 8 / 2
const partials = [new Float64Array(share.partials, 0, lanes), new Float64Array(share.partials, lanes * 8, lanes)]
const arrivals = new Int32Array(share.arrivals)
let steps = 0

/** This thread's part of a whole state. */
function resumeOf (state: OptimizerState): OptimizerState {
  const slots = Object.fromEntries(Object.entries(state.slots).map(([slot, map]) =>
    [slot, Object.fromEntries(weightPieces.filter(p => map[p.name] != null).map(p => [p.name, map[p.name].subarray(p.within, p.within + p.view.length)]))]))
  return { step: state.step, slots }
}

/** The scale that clips the whole gradient: this thread sums its blocks, then waits for the others' before it reads them all. */
function gradientScale (): number {
  const mine = partials[steps % 2]
  mine.fill(0, squaresLength(from), squaresLength(to))
  for (const p of gradPieces) addSquares(p.view, p.at, mine)
  steps++
  Atomics.add(arrivals, 0, 1)
  Atomics.notify(arrivals, 0)
  for (let seen = Atomics.load(arrivals, 0); seen < steps * threads; seen = Atomics.load(arrivals, 0)) Atomics.wait(arrivals, 0, seen)
  return scaleForNorm(normOfSquares(mine), source.spec.clipNorm)
}

function answer (request: OptimizerRequest): { reply: OptimizerReply, transfer: ArrayBuffer[] } {
  if (request.type === 'settled') return { reply: request, transfer: [] }
  if (request.type === 'state') {
    const state = optimizer.state()
    // The state is a copy already: its buffers move.
    const transfer = Object.values(state.slots).flatMap(slot => Object.values(slot).map(t => t.buffer as ArrayBuffer))
    return { reply: { type: 'state', id: request.id, state }, transfer }
  }
  // Clipping scales as the optimizer reads: the shared gradient is not written.
  const scale = source.spec.clipNorm > 0 ? gradientScale() : 1
  const learningRate = optimizer.step(weights, grads, { gradientScale: scale })
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
