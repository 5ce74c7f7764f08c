/**
 * An onnxruntime session in a worker thread of its own, seen from the main
 * thread through the part of `ort.InferenceSession` the runtime uses.
 * onnxruntime-node runs a session synchronously on the thread that calls it:
 * on the main thread a real model's step of seconds would stop HTTP,
 * heartbeats and Raft for as long, and a leader that infers would lose its
 * leadership. session-worker.ts is the other side.
 */
import { Worker } from 'node:worker_threads'
import * as ort from 'onnxruntime-node'
import * as errors from './errors.ts'

/** What the worker loads: model.onnx, rewritten by appendedKeyValues when it is at most `rewriteMaxBytes`. */
export interface SessionSource {
  /** The model directory, where external data is looked for. */
  dir: string
  path: string
  rewriteMaxBytes: number
  options: ort.InferenceSession.SessionOptions
}

/** A tensor as it crosses: its ArrayBuffer moved (transferred), not copied. */
export interface WireTensor {
  type: ort.Tensor.Type
  dims: readonly number[]
  data: ort.Tensor.DataType
}

export interface WireError { name: string, message: string }

export type WorkerRequest =
  | { type: 'run', id: number, feeds: Record<string, WireTensor>, keep: readonly string[] }
  | { type: 'release' }

export type WorkerReply =
  | { type: 'ready', inputNames: string[], outputNames: string[], inputMetadata: ort.InferenceSession.ValueMetadata[], outputMetadata: ort.InferenceSession.ValueMetadata[], appended?: Record<string, string> }
  | { type: 'failed', error: WireError }
  | { type: 'result', id: number, outputs?: Record<string, WireTensor>, kept?: Record<string, WireTensor>, error?: WireError }

export interface RunResult {
  outputs: Record<string, ort.Tensor>
  /** The feeds asked back, their buffers as they went. */
  kept: Record<string, ort.Tensor>
}

/** Rebuilds an error from the worker with its class, so that its `name` still maps to its status. */
export function fromWire (error: WireError): Error {
  const Known = Object.values(errors).find(E => E.name === error.name)
  if (Known != null) return new Known(error.message)
  const err = new Error(error.message)
  err.name = error.name
  return err
}

export function toWire (err: any): WireError {
  return { name: typeof err?.name === 'string' ? err.name : 'Error', message: String(err?.message ?? err) }
}

/** The ArrayBuffers under `tensors`, once each: postMessage refuses a transfer list with duplicates. */
export function movable (tensors: Iterable<WireTensor>): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>()
  for (const t of tensors) {
    const { buffer } = t.data as ArrayBufferView
    if (buffer instanceof ArrayBuffer) buffers.add(buffer)
  }
  return [...buffers]
}

function tensors (wire: Record<string, WireTensor> = {}): Record<string, ort.Tensor> {
  return Object.fromEntries(Object.entries(wire).map(([name, t]) => [name, new ort.Tensor(t.type, t.data as any, t.dims)]))
}

/** How long a released worker has to free its session before it is terminated. */
const RELEASE_TIMEOUT_MS = 5000

export class WorkerSession {
  readonly inputNames: readonly string[]
  readonly outputNames: readonly string[]
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[]
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[]
  /** From appendedKeyValues, when the worker rewrote the graph. */
  readonly appended?: Record<string, string>
  readonly #worker: Worker
  readonly #pending = new Map<number, { resolve: (result: RunResult) => void, reject: (err: Error) => void }>()
  readonly #exited: Promise<void>
  #nextId = 0
  /** Set once the worker is gone: every run after fails with it. */
  #gone?: Error
  #onExit?: (err: Error) => void

  private constructor (worker: Worker, ready: Extract<WorkerReply, { type: 'ready' }>, exited: Promise<void>) {
    this.#worker = worker
    this.#exited = exited
    this.inputNames = ready.inputNames
    this.outputNames = ready.outputNames
    this.inputMetadata = ready.inputMetadata
    this.outputMetadata = ready.outputMetadata
    this.appended = ready.appended
  }

  /** Starts a worker and loads the model in it; the main thread reads no weights. */
  static async open (source: SessionSource): Promise<WorkerSession> {
    const worker = new Worker(new URL('./session-worker.ts', import.meta.url), { workerData: source })
    let failure: Error | undefined
    worker.on('error', err => { failure ??= err })
    const exited = new Promise<number>(resolve => { worker.once('exit', resolve) })
    const ready = await new Promise<Extract<WorkerReply, { type: 'ready' }>>((resolve, reject) => {
      worker.on('message', (reply: WorkerReply) => {
        if (reply.type === 'ready') resolve(reply)
        else if (reply.type === 'failed') reject(fromWire(reply.error))
      })
      // An exception the worker did not catch is the node's failure, not the model's.
      void exited.then(code => { reject(new errors.ModelWorkerError(`the model's worker thread stopped while loading (exit code ${code})${failure == null ? '' : `: ${failure.message}`}`)) })
    }).catch(async (err: Error) => {
      await worker.terminate()
      throw err
    })
    const session = new WorkerSession(worker, ready, exited.then(() => {}))
    worker.removeAllListeners('message')
    worker.on('message', (reply: WorkerReply) => { session.#settle(reply) })
    void exited.then(code => { session.#fail(new errors.ModelWorkerError(`the model's worker thread stopped (exit code ${code})${failure == null ? '' : `: ${failure.message}`}`)) })
    return session
  }

  /** Called once, when the worker stops (released, or died): a model that still had to run must be loaded again. */
  onExit (listener: (err: Error) => void): void {
    this.#onExit = listener
  }

  async run (feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    return (await this.runKeeping(feeds, [])).outputs
  }

  /**
   * Runs the session in the worker. The feeds' buffers move there, unusable
   * here afterwards: those named in `keep` (a KV cache, fed again at the
   * next step) come back with the outputs; the worker frees the others at
   * once, as its own heap, which allocates little, would rarely collect them.
   */
  async runKeeping (feeds: Record<string, ort.Tensor>, keep: readonly string[]): Promise<RunResult> {
    if (this.#gone != null) throw this.#gone
    const id = this.#nextId++
    const wire: Record<string, WireTensor> = {}
    for (const [name, t] of Object.entries(feeds)) wire[name] = { type: t.type, dims: t.dims, data: t.data }
    const request: WorkerRequest = { type: 'run', id, feeds: wire, keep }
    return await new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#worker.postMessage(request, movable(Object.values(wire)))
    })
  }

  /** Frees the session and ends the worker; runs in flight fail. */
  async release (): Promise<void> {
    if (this.#gone != null) return
    this.#fail(new errors.ModelWorkerError('the model was unloaded'))
    const request: WorkerRequest = { type: 'release' }
    this.#worker.postMessage(request)
    const timer = setTimeout(() => { void this.#worker.terminate() }, RELEASE_TIMEOUT_MS)
    await this.#exited
    clearTimeout(timer)
  }

  #settle (reply: WorkerReply): void {
    if (reply.type !== 'result') return
    const pending = this.#pending.get(reply.id)
    if (pending == null) return
    this.#pending.delete(reply.id)
    if (reply.error != null) pending.reject(fromWire(reply.error))
    else pending.resolve({ outputs: tensors(reply.outputs), kept: tensors(reply.kept) })
  }

  #fail (err: Error): void {
    if (this.#gone != null) return
    this.#gone = err
    for (const { reject } of this.#pending.values()) reject(err)
    this.#pending.clear()
    this.#onExit?.(err)
  }
}
