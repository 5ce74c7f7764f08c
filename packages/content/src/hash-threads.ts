import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'

export interface HashRequest { id: number, block: Uint8Array<ArrayBuffer> }
export interface HashReply { id: number, block: Uint8Array<ArrayBuffer>, digest: Uint8Array }

/**
 * SHA-256 of an add's leaves in worker threads (hash-worker.ts), beside the
 * thread that parses the upload and writes the blocks: hashing was a tenth of
 * that thread's time. A block moves to a thread and back, not copied, so it
 * must own its whole ArrayBuffer; the caller uses the one sent back. The
 * threads start at the first block and do not keep the process alive.
 */
export class HashThreads {
  readonly #size: number
  readonly #workers: Array<Worker | undefined> = []
  readonly #pending = new Map<number, { resolve: (reply: HashReply) => void, reject: (err: Error) => void }>()
  #nextId = 0
  #stopped = false

  constructor (threads = Math.min(2, availableParallelism())) {
    this.#size = Math.max(1, threads)
  }

  /** Whether a block can move to a thread: it is the whole of its buffer, and the threads still run. */
  movable (block: Uint8Array): block is Uint8Array<ArrayBuffer> {
    return !this.#stopped && block.buffer instanceof ArrayBuffer && block.byteOffset === 0 && block.byteLength === block.buffer.byteLength
  }

  async sha256 (block: Uint8Array<ArrayBuffer>): Promise<HashReply> {
    if (this.#stopped) throw new Error('the hash threads have stopped')
    const id = this.#nextId++
    const worker = this.#worker(id % this.#size)
    return await new Promise<HashReply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      worker.postMessage({ id, block } satisfies HashRequest, [block.buffer])
    })
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#fail(new Error('the hash threads have stopped'))
    await Promise.all(this.#workers.splice(0).map(async worker => worker?.terminate()))
  }

  #worker (index: number): Worker {
    let worker = this.#workers[index]
    if (worker == null) {
      worker = new Worker(new URL('./hash-worker.ts', import.meta.url))
      worker.unref()
      worker.on('message', (reply: HashReply) => {
        const pending = this.#pending.get(reply.id)
        this.#pending.delete(reply.id)
        pending?.resolve(reply)
      })
      // A thread that dies takes the blocks it held: their adds fail, and a new thread serves the next ones.
      worker.on('error', (err) => { this.#fail(err) })
      worker.on('exit', () => { if (this.#workers[index] === worker) this.#workers[index] = undefined })
      this.#workers[index] = worker
    }
    return worker
  }

  #fail (err: Error): void {
    for (const { reject } of this.#pending.values()) reject(err)
    this.#pending.clear()
  }
}
