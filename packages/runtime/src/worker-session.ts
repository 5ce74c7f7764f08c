/**
 * An onnxruntime session in a worker thread of its own, seen from the main
 * thread through the part of `ort.InferenceSession` the runtime uses.
 * onnxruntime-node runs a session synchronously on the thread that calls it:
 * on the main thread a real model's step of seconds would stop HTTP,
 * heartbeats and Raft for as long, and a leader that infers would lose its
 * leadership. session-worker.ts is the other side.
 *
 * A small model whose steps are measured short (a test or default model)
 * moves to the main thread, though: there a step of a millisecond stops
 * nothing, while the messages to the worker and back cost a fifth of its
 * decoding speed.
 */
import { Worker } from 'node:worker_threads'
import * as ort from 'onnxruntime-node'
import * as errors from './errors.ts'
import { fed } from './float16.ts'

/** What the worker loads: a model file, or a graph built in memory. */
export type SessionSource = FileSource | GraphSource

/** model.onnx, rewritten by appendedKeyValues when it is at most `rewriteMaxBytes`. */
export interface FileSource {
  /** The model directory, where external data is looked for. */
  dir: string
  path: string
  /** Bytes of model.onnx and its external data. */
  size: number
  rewriteMaxBytes: number
  /** appendedKeyValues' roomMasked: the model's config says nothing reads a sequence's length but its positions and mask. */
  roomMasked: boolean
  options: ort.InferenceSession.SessionOptions
}

/** A graph the node built (a training graph, whose weights are inputs): loaded as it is, from a copy of its bytes. */
export interface GraphSource {
  model: Uint8Array
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
  | { type: 'run', id: number, feeds: Record<string, WireTensor>, keep: readonly string[], fetches?: Record<string, WireTensor | null> }
  /** The graph as the worker loaded it, for the main thread to load in turn. */
  | { type: 'model' }
  | { type: 'release' }

export type WorkerReply =
  | { type: 'ready', inputNames: string[], outputNames: string[], inputMetadata: ort.InferenceSession.ValueMetadata[], outputMetadata: ort.InferenceSession.ValueMetadata[], appended?: Record<string, string>, sliced?: boolean }
  | { type: 'failed', error: WireError }
  | { type: 'result', id: number, outputs?: Record<string, WireTensor>, kept?: Record<string, WireTensor>, error?: WireError, ms?: number }
  /** `model` absent: loaded from its path. */
  | { type: 'model', model?: Uint8Array, error?: WireError }

export interface RunOptions {
  /** Feeds to have back with the outputs (a KV cache, fed again at the next step). */
  keep?: readonly string[]
  /** Outputs to write into (gradients, straight into their place in an array that holds them all): they come back among the outputs, their buffers as they went. */
  fetches?: Record<string, ort.Tensor | null>
  /** Gives up waiting for the run; the worker finishes it all the same, and its outputs are dropped. */
  signal?: AbortSignal
}

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

/**
 * Loads `source`'s model, or the graph rewritten from it, on the calling
 * thread. Either way onnxruntime maps the external data file in place
 * rather than reading it, where no prepacking op copies it; handing it
 * `externalData` as buffers instead would put all of it in the heap.
 */
export async function createSession (source: SessionSource, rewritten?: Uint8Array): Promise<ort.InferenceSession> {
  if ('model' in source) return await ort.InferenceSession.create(source.model, source.options)
  const { dir, path, options } = source
  if (rewritten == null) return await ort.InferenceSession.create(path, options)
  // Loaded from bytes, onnxruntime would look for external data in the working directory.
  const extra = { ...options.extra, session: { ...(options.extra?.session as Record<string, unknown>), model_external_initializers_file_folder_path: dir } }
  return await ort.InferenceSession.create(rewritten, { ...options, extra })
}

/** The ArrayBuffers under `tensors`, once each: postMessage refuses a transfer list with duplicates. */
export function movable (tensors: Iterable<WireTensor | null>): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>()
  for (const t of tensors) {
    const buffer = (t?.data as ArrayBufferView | undefined)?.buffer
    if (buffer instanceof ArrayBuffer) buffers.add(buffer)
  }
  return [...buffers]
}

export function tensors<T extends WireTensor | null> (wire: Record<string, T> = {}): Record<string, ort.Tensor | (T & null)> {
  return Object.fromEntries(Object.entries(wire).map(([name, t]) => [name, t == null ? null : new ort.Tensor(t.type, t.data as any, t.dims)])) as Record<string, ort.Tensor | (T & null)>
}

function wire<T extends ort.Tensor | null> (tensors: Record<string, T>): Record<string, WireTensor | (T & null)> {
  const out: Record<string, WireTensor | (T & null)> = {}
  for (const [name, t] of Object.entries(tensors)) out[name] = t == null ? null as T & null : { type: t.type, dims: t.dims, data: t.data }
  return out
}

/** The outputs of a run, those written into `fetches` as the fetches themselves, onnxruntime-node's copies of them freed. */
export function withFetched<T extends ort.Tensor | WireTensor> (outputs: Record<string, ort.Tensor>, fetches?: Record<string, T | null>): Record<string, ort.Tensor | T> {
  if (fetches == null) return outputs
  const result: Record<string, ort.Tensor | T> = { ...outputs }
  for (const [name, t] of Object.entries(fetches)) {
    if (t == null) continue
    freeOutputs([outputs[name]])
    result[name] = t
  }
  return result
}

/**
 * Frees now the ArrayBuffers of onnxruntime outputs that are done with.
 * onnxruntime-node copies every output into an ArrayBuffer of its own, even
 * one it also wrote into a tensor the caller gave; left to V8, megabytes of
 * them per run bring on full collections by their external size alone.
 */
export function freeOutputs (tensors: Iterable<ort.Tensor | undefined>): void {
  for (const t of tensors) {
    const data = t?.data as ArrayBufferView | undefined
    // Only a buffer the tensor has to itself, as onnxruntime-node makes them.
    if (data?.buffer instanceof ArrayBuffer && !data.buffer.detached && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) data.buffer.transfer(0)
  }
}

/** How long a released worker has to free its session before it is terminated. */
const RELEASE_TIMEOUT_MS = 5000
/** Steps measured together: a model moves to the main thread after such a run of short steps. */
const MEASURED_STEPS = 8
/** Steps up to this long (median) stop the event loop no longer than a collection of the heap does. */
const MAIN_THREAD_STEP_MS = 2
/** Loading a model on the main thread stops it: for tens of milliseconds at this size. */
const MAIN_THREAD_MAX_BYTES = 32 * 1_048_576

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[sorted.length >> 1]
}

export class WorkerSession {
  readonly inputNames: readonly string[]
  readonly outputNames: readonly string[]
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[]
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[]
  /** From appendedKeyValues, when the worker rewrote the graph. */
  readonly appended?: Record<string, string>
  /** The rewritten graph slices each past to the mask's past length: the room past its end needs no masking. */
  readonly sliced: boolean
  readonly #source: SessionSource
  readonly #worker: Worker
  readonly #pending = new Map<number, { resolve: (result: RunResult) => void, reject: (err: Error) => void }>()
  readonly #exited: Promise<void>
  #workerExited = false
  #stopping?: Promise<void>
  #nextId = 0
  /**
   * Runs sent to the worker and not answered yet, given up on or not. The
   * worker is terminated only once it runs none: onnxruntime-node aborts the
   * whole process when a thread is terminated in the middle of a run.
   */
  #inWorker = 0
  #idle?: () => void
  /** Set once the worker is gone: every run after fails with it. */
  #gone?: Error
  #onExit?: (err: Error) => void
  /** How long the last steps took in the worker; none are measured for a model too large to move. */
  #stepMs?: number[]
  /** The session on the main thread, once the model moved there. */
  #local?: ort.InferenceSession
  readonly #localRuns = new Set<Promise<unknown>>()
  #onModel?: (reply: Extract<WorkerReply, { type: 'model' }>) => void

  private constructor (source: SessionSource, worker: Worker, ready: Extract<WorkerReply, { type: 'ready' }>, exited: Promise<void>) {
    this.#source = source
    this.#worker = worker
    this.#exited = exited
    if (('model' in source ? source.model.byteLength : source.size) <= MAIN_THREAD_MAX_BYTES) this.#stepMs = []
    this.inputNames = ready.inputNames
    this.outputNames = ready.outputNames
    this.inputMetadata = ready.inputMetadata
    this.outputMetadata = ready.outputMetadata
    this.appended = ready.appended
    this.sliced = ready.sliced === true
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
    const session = new WorkerSession(source, worker, ready, exited.then(() => {}))
    worker.removeAllListeners('message')
    worker.on('message', (reply: WorkerReply) => { session.#settle(reply) })
    void exited.then(code => { session.#workerGone(new errors.ModelWorkerError(`the model's worker thread stopped (exit code ${code})${failure == null ? '' : `: ${failure.message}`}`)) })
    return session
  }

  /** Called once, when the session stops (released, or its worker died): a model that still had to run must be loaded again. */
  onExit (listener: (err: Error) => void): void {
    this.#onExit = listener
  }

  async run (feeds: Record<string, ort.Tensor>, options: Omit<RunOptions, 'keep'> = {}): Promise<Record<string, ort.Tensor>> {
    return (await this.runKeeping(feeds, [], options)).outputs
  }

  /**
   * Runs the session in the worker. The feeds' and fetches' ArrayBuffers
   * move there, unusable here afterwards (those on a SharedArrayBuffer, such
   * as a replica's weights, are shared instead): the feeds named in `keep`
   * come back with the outputs, and so do the fetches; the worker frees the
   * other feeds at once, as its own heap, which allocates little, would
   * rarely collect them. Once the model moved to the main thread, the feeds
   * stay where they are.
   */
  async runKeeping (feeds: Record<string, ort.Tensor>, keep: readonly string[], options: Omit<RunOptions, 'keep'> = {}): Promise<RunResult> {
    const { fetches, signal } = options
    signal?.throwIfAborted()
    if (this.#gone != null) throw this.#gone
    if (this.#local != null) return await this.#runHere(this.#local, feeds, keep, fetches)
    const id = this.#nextId++
    const request: WorkerRequest = { type: 'run', id, feeds: wire(feeds), keep, fetches: fetches == null ? undefined : wire(fetches) }
    return await new Promise((resolve, reject) => {
      const abandon = (): void => {
        this.#pending.delete(id)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', abandon, { once: true })
      const settled = (): void => { signal?.removeEventListener('abort', abandon) }
      this.#pending.set(id, {
        resolve: result => { settled(); resolve(result) },
        reject: err => { settled(); reject(err) }
      })
      this.#inWorker++
      this.#worker.postMessage(request, movable([...Object.values(request.feeds), ...Object.values(request.fetches ?? {})]))
    })
  }

  /** Frees the session and ends the worker; runs in flight fail. */
  async release (): Promise<void> {
    if (this.#gone != null) return
    this.#fail(new errors.ModelWorkerError('the model was unloaded'))
    await Promise.allSettled(this.#localRuns)
    await this.#local?.release()
    await this.#stopWorker()
  }

  async #runHere (session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, keep: readonly string[], fetches?: Record<string, ort.Tensor | null>): Promise<RunResult> {
    for (const t of Object.values(feeds)) fed(t)
    const running = fetches == null ? session.run(feeds) : session.run(feeds, fetches)
    this.#localRuns.add(running)
    try {
      const outputs = withFetched(await running, fetches)
      return { outputs, kept: Object.fromEntries(keep.map(name => [name, feeds[name]])) }
    } finally {
      this.#localRuns.delete(running)
    }
  }

  #settle (reply: WorkerReply): void {
    if (reply.type === 'model') {
      this.#onModel?.(reply)
      return
    }
    if (reply.type !== 'result') return
    if (--this.#inWorker === 0) this.#idle?.()
    const pending = this.#pending.get(reply.id)
    if (pending == null) return
    this.#pending.delete(reply.id)
    if (reply.error != null) pending.reject(fromWire(reply.error))
    else pending.resolve({ outputs: tensors(reply.outputs), kept: tensors(reply.kept) })
    if (reply.ms != null) this.#measured(reply.ms)
    // The worker's last runs, sent before the model moved, are done.
    if (this.#local != null && this.#pending.size === 0) void this.#stopWorker()
  }

  #measured (ms: number): void {
    const steps = this.#stepMs
    if (steps == null) return
    steps.push(ms)
    if (steps.length < MEASURED_STEPS) return
    // A loaded machine slows some runs of steps: the next run is measured anew.
    if (median(steps) >= MAIN_THREAD_STEP_MS) {
      this.#stepMs = []
      return
    }
    this.#stepMs = undefined
    void this.#moveHere().catch(() => {})
  }

  /** Loads the model on the main thread and ends the worker once its runs are done; on failure the model stays in the worker. */
  async #moveHere (): Promise<void> {
    const reply = await new Promise<Extract<WorkerReply, { type: 'model' }>>(resolve => {
      this.#onModel = resolve
      const request: WorkerRequest = { type: 'model' }
      this.#worker.postMessage(request)
    })
    this.#onModel = undefined
    if (reply.error != null || this.#gone != null) return
    const session = await createSession(this.#source, reply.model)
    if (this.#gone != null) {
      await session.release()
      return
    }
    this.#local = session
    if (this.#pending.size === 0) await this.#stopWorker()
  }

  async #stopWorker (): Promise<void> {
    if (this.#workerExited) return
    this.#stopping ??= (async () => {
      const request: WorkerRequest = { type: 'release' }
      this.#worker.postMessage(request)
      // The worker reads the release after the runs it has, which may take seconds each (a training step).
      if (this.#inWorker > 0) await Promise.race([this.#exited, new Promise<void>(resolve => { this.#idle = resolve })])
      const timer = setTimeout(() => { void this.#worker.terminate() }, RELEASE_TIMEOUT_MS)
      await this.#exited
      clearTimeout(timer)
    })()
    await this.#stopping
  }

  /** The worker stopped: its runs fail, and so does the session unless the model moved to the main thread. */
  #workerGone (err: Error): void {
    this.#workerExited = true
    this.#onModel?.({ type: 'model', error: toWire(err) })
    for (const { reject } of this.#pending.values()) reject(err)
    this.#pending.clear()
    if (this.#local == null) this.#fail(err)
  }

  #fail (err: Error): void {
    if (this.#gone != null) return
    this.#gone = err
    for (const { reject } of this.#pending.values()) reject(err)
    this.#pending.clear()
    this.#onExit?.(err)
  }
}
