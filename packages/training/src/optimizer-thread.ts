/**
 * A replica's optimizer in a worker thread of its own (optimizer-worker.ts
 * is the other side). A step is a pass over every parameter, in double
 * precision: hundreds of milliseconds for ten million of them, which the
 * node's HTTP, heartbeats and Raft cannot wait. The thread writes the
 * weights in place, in the SharedArrayBuffer the replica's session threads
 * read, and owns the optimizer's moments; it reads each step's mean
 * gradient from another SharedArrayBuffer. Messages are answered in the order they came,
 * so the state asked for after a step is the state after it.
 */
import { Worker } from 'node:worker_threads'
import { ModelWorkerError } from '@node-daemon/runtime'
import type { OptimizerReply, OptimizerRequest, OptimizerSource } from './optimizer.ts'
import type { OptimizerState } from '@node-daemon/onnx'

/** How long a released thread has to end before it is terminated: it holds no native resource, so no longer than a step. */
const RELEASE_TIMEOUT_MS = 5000

export class OptimizerThread {
  readonly #worker: Worker
  readonly #pending = new Map<number, { resolve: (reply: OptimizerReply) => void, reject: (err: Error) => void }>()
  readonly #exited: Promise<void>
  #nextId = 0
  /** Steps asked for whose reply has not come, including steps whose callers stopped waiting. */
  #outstanding = 0
  /** Set once the thread is gone: every call after fails with it. */
  #gone?: Error

  constructor (source: OptimizerSource) {
    this.#worker = new Worker(new URL('./optimizer-worker.ts', import.meta.url), { workerData: source })
    let failure: Error | undefined
    this.#worker.on('error', err => { failure ??= err })
    this.#worker.on('message', (reply: OptimizerReply) => {
      if (reply.type === 'step') this.#outstanding--
      this.#settle(reply)
    })
    this.#exited = new Promise(resolve => {
      this.#worker.once('exit', code => {
        this.#fail(new ModelWorkerError(`the optimizer's worker thread stopped (exit code ${code})${failure == null ? '' : `: ${failure.message}`}`))
        resolve()
      })
    })
  }

  /**
   * One step from the mean gradient put in the shared gradient buffer, which
   * must stay as it is until the step is done; answers the learning rate
   * used. On `signal` it stops waiting; the thread makes the step all the
   * same.
   */
  async step (signal?: AbortSignal): Promise<number> {
    const reply = await this.#call({ type: 'step', id: this.#nextId++ }, [], signal, () => { this.#outstanding++ })
    if (reply.type !== 'step') throw new Error(`a ${reply.type} reply to a step`)
    return reply.learningRate
  }

  /** A copy of the optimizer's state, after the steps sent before. */
  async state (signal?: AbortSignal): Promise<OptimizerState> {
    const reply = await this.#call({ type: 'state', id: this.#nextId++ }, [], signal)
    if (reply.type !== 'state') throw new Error(`a ${reply.type} reply to a state request`)
    return reply.state
  }

  /**
   * Once the steps sent before are done, and so the weights are theirs: at
   * once when every step's reply came, without a message to the thread,
   * whose wake-up costs each step a scheduling delay on busy cores.
   */
  async settled (signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    if (this.#gone != null) throw this.#gone
    if (this.#outstanding === 0) return
    await this.#call({ type: 'settled', id: this.#nextId++ }, [], signal)
  }

  /** Ends the thread; calls in flight fail. */
  async release (): Promise<void> {
    if (this.#gone != null) return
    this.#fail(new ModelWorkerError('the replica was released'))
    // Closing the port lets the thread end once its step is done.
    this.#worker.postMessage({ type: 'close' })
    const timer = setTimeout(() => { void this.#worker.terminate() }, RELEASE_TIMEOUT_MS)
    await this.#exited
    clearTimeout(timer)
  }

  async #call (request: OptimizerRequest, transfer: ArrayBuffer[], signal?: AbortSignal, sent?: () => void): Promise<OptimizerReply> {
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
        resolve: reply => { settled(); resolve(reply) },
        reject: err => { settled(); reject(err) }
      })
      this.#worker.postMessage(request, transfer)
      sent?.()
    })
  }

  #settle (reply: OptimizerReply): void {
    const pending = this.#pending.get(reply.id)
    if (pending == null) return
    this.#pending.delete(reply.id)
    pending.resolve(reply)
  }

  #fail (err: Error): void {
    if (this.#gone != null) return
    this.#gone = err
    for (const { reject } of this.#pending.values()) reject(err)
    this.#pending.clear()
  }
}
