/**
 * A replica's optimizer in worker threads of its own (optimizer-worker.ts
 * is the other side). A step is a pass over every parameter, in double
 * precision: tens of milliseconds for ten million of them, which the
 * node's HTTP, heartbeats and Raft cannot wait. Each thread takes a range of
 * the parameters, so that a step takes the cores onnxruntime is given while
 * they would idle. The threads write the weights in place, in the shared
 * arena the replica's session threads read (optimizer.ts `arenaOf`), and own
 * the optimizer's moments; they read each step's mean gradient from the same
 * arena. Messages are answered in the order they came, so the
 * state asked for after a step is the state after it.
 */
import { Worker } from 'node:worker_threads'
import { ModelWorkerError } from '@node-daemon/runtime'
import { NORM_BLOCK, squaresLength } from '@node-daemon/onnx'
import { concat } from './dataset.ts'
import { sizeOf } from './optimizer.ts'
import type { OptimizerReply, OptimizerRequest, OptimizerShare, OptimizerSource } from './optimizer.ts'
import type { OptimizerState, TensorMap } from '@node-daemon/onnx'

/** How long a released thread has to end before it is terminated: it holds no native resource, so no longer than a step. */
const RELEASE_TIMEOUT_MS = 5000

export class OptimizerThread {
  readonly #workers: Worker[]
  readonly #pending = new Map<number, { resolve: (replies: OptimizerReply[]) => void, reject: (err: Error) => void }>()
  /** Each call's replies so far, by thread: a call is answered once all threads replied. */
  readonly #replies = new Map<number, OptimizerReply[]>()
  readonly #exited: Promise<void>
  #nextId = 0
  /** Steps asked for whose replies have not all come, including steps whose callers stopped waiting. */
  #outstanding = 0
  /** Set once a thread is gone: every call after fails with it. */
  #gone?: Error

  /** `threads` threads at most: one at least a block of the gradient's norm. */
  constructor (source: OptimizerSource, threads = 1) {
    const size = sizeOf(source.parameters)
    const blocks = Math.ceil(size / NORM_BLOCK)
    const count = Math.max(1, Math.min(threads, blocks))
    const partials = new SharedArrayBuffer(Math.max(1, squaresLength(size)) * 8 * 2)
    const arrivals = new SharedArrayBuffer(4)
    this.#workers = Array.from({ length: count }, (_, k) => {
      const share: OptimizerShare = { from: Math.min(size, Math.floor(k * blocks / count) * NORM_BLOCK), to: Math.min(size, Math.floor((k + 1) * blocks / count) * NORM_BLOCK), threads: count, partials, arrivals }
      return new Worker(new URL('./optimizer-worker.ts', import.meta.url), { workerData: { ...source, share } })
    })
    this.#exited = Promise.all(this.#workers.map(async (worker, k) => await new Promise<void>(resolve => {
      let failure: Error | undefined
      worker.on('error', err => { failure ??= err })
      worker.on('message', (reply: OptimizerReply) => { this.#settle(k, reply) })
      worker.once('exit', code => {
        this.#fail(new ModelWorkerError(`the optimizer's worker thread stopped (exit code ${code})${failure == null ? '' : `: ${failure.message}`}`))
        resolve()
      })
    }))).then(() => undefined)
  }

  /**
   * One step from the mean gradient put in the shared gradient buffer, which
   * must stay as it is until the step is done; answers the learning rate
   * used. On `signal` it stops waiting; the threads make the step all the
   * same.
   */
  async step (signal?: AbortSignal): Promise<number> {
    const [reply] = await this.#call({ type: 'step', id: this.#nextId++ }, signal, () => { this.#outstanding++ })
    if (reply.type !== 'step') throw new Error(`a ${reply.type} reply to a step`)
    return reply.learningRate
  }

  /** A copy of the optimizer's state, after the steps sent before: each thread's parts joined. */
  async state (signal?: AbortSignal): Promise<OptimizerState> {
    const replies = await this.#call({ type: 'state', id: this.#nextId++ }, signal)
    const states = replies.map(reply => {
      if (reply.type !== 'state') throw new Error(`a ${reply.type} reply to a state request`)
      return reply.state
    })
    if (states.length === 1) return states[0]
    const slots: Record<string, TensorMap> = {}
    for (const slot of Object.keys(states[0].slots)) {
      const parts = new Map<string, Float32Array[]>()
      for (const state of states) for (const [name, part] of Object.entries(state.slots[slot] ?? {})) parts.set(name, [...parts.get(name) ?? [], part])
      // Parts in the threads' order, which is the parameters'.
      slots[slot] = Object.fromEntries([...parts].map(([name, list]) => [name, list.length === 1 ? list[0] : new Float32Array(concat(list.map(p => new Uint8Array(p.buffer, p.byteOffset, p.byteLength))).buffer)]))
    }
    return { step: states[0].step, slots }
  }

  /**
   * Once the steps sent before are done, and so the weights are theirs: at
   * once when every step's replies came, without a message to the threads,
   * whose wake-up costs each step a scheduling delay on busy cores.
   */
  async settled (signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    if (this.#gone != null) throw this.#gone
    if (this.#outstanding === 0) return
    await this.#call({ type: 'settled', id: this.#nextId++ }, signal)
  }

  /** Ends the threads; calls in flight fail. */
  async release (): Promise<void> {
    if (this.#gone != null) return
    this.#fail(new ModelWorkerError('the replica was released'))
    // Closing the port lets a thread end once its step is done.
    for (const worker of this.#workers) worker.postMessage({ type: 'close' })
    const timer = setTimeout(() => { for (const worker of this.#workers) void worker.terminate() }, RELEASE_TIMEOUT_MS)
    await this.#exited
    clearTimeout(timer)
  }

  async #call (request: OptimizerRequest, signal?: AbortSignal, sent?: () => void): Promise<OptimizerReply[]> {
    signal?.throwIfAborted()
    if (this.#gone != null) throw this.#gone
    return await new Promise((resolve, reject) => {
      const abandon = (): void => {
        this.#pending.delete(request.id)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', abandon, { once: true })
      const settled = (): void => { signal?.removeEventListener('abort', abandon) }
      this.#pending.set(request.id, {
        resolve: replies => { settled(); resolve(replies) },
        reject: err => { settled(); reject(err) }
      })
      for (const worker of this.#workers) worker.postMessage(request)
      sent?.()
    })
  }

  /** A step is done once every thread replied to it, whether its caller waits or not. */
  #settle (thread: number, reply: OptimizerReply): void {
    const replies = this.#replies.get(reply.id) ?? []
    replies[thread] = reply
    if (Object.keys(replies).length < this.#workers.length) {
      this.#replies.set(reply.id, replies)
      return
    }
    this.#replies.delete(reply.id)
    if (reply.type === 'step') this.#outstanding--
    const pending = this.#pending.get(reply.id)
    if (pending == null) return
    this.#pending.delete(reply.id)
    pending.resolve(replies)
  }

  #fail (err: Error): void {
    if (this.#gone != null) return
    this.#gone = err
    for (const { reject } of this.#pending.values()) reject(err)
    this.#pending.clear()
  }
}
