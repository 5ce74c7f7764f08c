/**
 * A GGUF model's llama.cpp context in a worker thread of its own
 * (llama-worker.ts), seen from the main thread: its sequences, a decode of
 * rows on them, and the tokens a greedy sequence computes ahead of being
 * asked. On a two-core VM a message between threads costs 80 to 110 µs when
 * the other side sleeps, a tenth of a small model's token: so a greedy
 * sequence does not wait for the main thread between its tokens, but feeds
 * each back at once, a few tokens past the one the main thread last asked
 * for, and the worker sends what it computed so every HOLD_MS rather than
 * every token. What it computed and was never asked for is erased when the
 * sequence goes another way.
 */
import { Worker } from 'node:worker_threads'

export interface LlamaThreadInit {
  /** The directory of the libllama node-llama-cpp loaded. */
  dir: string
  path: string
  /** Positions of each sequence. */
  contextSize: number
  sequences: number
  threads: number
  /** Tokens that end a row: a sequence never runs ahead past one. */
  stopIds: number[]
  /** Shared counters, at the indexes below: read without a message. */
  counters: SharedArrayBuffer
}

/**
 * Tokens at positions `pos`…, on sequence `seq`: greedy, the row comes back
 * as llama.cpp's argmax of its last logits, else as those logits. A greedy
 * row then runs ahead while the position it writes is below `until`.
 */
export interface DecodeRow {
  seq: number
  epoch: number
  pos: number
  tokens: number[]
  greedy: boolean
  until: number
}

export type LlamaRequest =
  | { type: 'decode', id: number, rows: DecodeRow[] }
  /** A sequence running ahead may write up to `until` (exclusive). */
  | { type: 'follow', rows: Array<{ seq: number, epoch: number, until: number }> }
  /** Stops a sequence running ahead and erases its cells from `from` on. */
  | { type: 'erase', seq: number, from: number }
  | { type: 'release' }

export type LlamaReply =
  | { type: 'ready', sequenceSize: number, batchSize: number, vocabSize: number, canCut: boolean }
  | { type: 'failed', error: string }
  | { type: 'result', id: number, out?: Array<number | Float32Array>, error?: string }
  /** Sequences' next tokens, computed ahead. */
  | { type: 'ahead', rows: Array<{ seq: number, epoch: number, token?: number, error?: string }> }
  | { type: 'released' }

/** Decodes done. */
export const DECODES = 0
/** Tokens they held. */
export const TOKENS = 1
/** Messages sent to the worker: it reads its port between decodes only when this moved, which saves a tenth of a small model's overhead a token. */
export const MAIL = 2
/** µs a step of tokens computed ahead takes, a moving average the worker keeps. */
export const STEP_US = 3
/** Messages the worker sent with tokens computed ahead. */
export const SENDS = 4
/** Then each sequence's cells in use. */
export const CELLS = 5

/**
 * The worker holds the tokens it computed ahead for up to this long before
 * it sends them, unless a row can go no further without the main thread:
 * one wake-up of each thread per few tokens of a small model rather than per
 * token, whose HTTP writes gather a few ms of tokens anyway.
 */
export const HOLD_MS = 1
/**
 * Tokens a greedy sequence computes past the one asked for: twice what the
 * worker's steps make in HOLD_MS, so that it goes on while the main thread
 * takes what it sent; at least AHEAD_MIN, which keeps a slow model's waste
 * small when a request ends on a stop string, and at most AHEAD_MAX.
 */
export const AHEAD_MIN = 2
export const AHEAD_MAX = 16

/** Whether a sequence goes on from `token` at `pos`: not past an end token, nor into its last position. */
export function continues (token: number, pos: number, sequenceSize: number, stopIds: ReadonlySet<number>): boolean {
  return !stopIds.has(token) && pos + 1 < sequenceSize
}

interface Waiter {
  resolve: (token: number) => void
  reject: (err: Error) => void
}

/** A sequence of the context, as the main thread knows it. */
export class LlamaSequence {
  readonly id: number
  /** The tokens its cells hold that callers gave it; cells past them hold tokens computed ahead. */
  readonly tokens: number[] = []
  /** Raised when the sequence stops running ahead: what the worker computed before is stale. */
  epoch = 0
  /** The position it may run ahead to, as last sent. */
  until = 0
  /** Running ahead: the token it feeds next, at `tokens.length`, and the answers that came before they were asked for. */
  ahead?: { input: number, arrived: number[], waiter?: Waiter }
  /** Why its cells are lost, until it is cut back to empty. */
  failed?: string

  constructor (id: number) {
    this.id = id
  }
}

export class LlamaThreadError extends Error {
  override name = 'LlamaThreadError'
}

export class LlamaThread {
  readonly sequenceSize: number
  readonly batchSize: number
  readonly vocabSize: number
  /** Whether a sequence's cells can be cut back to a position (not a recurrent or hybrid model's). */
  readonly canCut: boolean
  readonly sequences: LlamaSequence[]
  readonly #worker: Worker
  readonly #stopIds: ReadonlySet<number>
  readonly #counters: Int32Array
  readonly #pending = new Map<number, { resolve: (out: Array<number | Float32Array>) => void, reject: (err: Error) => void }>()
  #nextId = 0
  #follows: LlamaSequence[] = []
  /** The lead every row asked for in this turn of the event loop gets: the same for all, so that they run ahead in the same batches. */
  #lead?: number
  #gone?: Error
  readonly #released: Promise<void>

  /** Starts the worker, which loads the model and makes its context; `signal` stops it there. */
  static async start (init: Omit<LlamaThreadInit, 'counters'>, signal?: AbortSignal): Promise<LlamaThread> {
    signal?.throwIfAborted()
    const counters = new SharedArrayBuffer(4 * (CELLS + init.sequences))
    const worker = new Worker(new URL('./llama-worker.ts', import.meta.url), { workerData: { ...init, counters } satisfies LlamaThreadInit })
    let abort: (() => void) | undefined
    try {
      const ready = await new Promise<Extract<LlamaReply, { type: 'ready' }>>((resolve, reject) => {
        const fail = (err: Error): void => { worker.off('message', first); reject(err) }
        const first = (reply: LlamaReply): void => {
          worker.off('error', fail)
          if (reply.type === 'ready') resolve(reply)
          else reject(new LlamaThreadError(reply.type === 'failed' ? reply.error : `unexpected ${reply.type}`))
        }
        abort = () => { reject(signal?.reason) }
        worker.once('message', first)
        worker.once('error', fail)
        signal?.addEventListener('abort', abort, { once: true })
      })
      return new LlamaThread(worker, ready, init, counters)
    } catch (err) {
      // Its loading is cut short with it.
      await worker.terminate()
      throw err
    } finally {
      if (abort != null) signal?.removeEventListener('abort', abort)
    }
  }

  private constructor (worker: Worker, ready: Extract<LlamaReply, { type: 'ready' }>, init: Omit<LlamaThreadInit, 'counters'>, counters: SharedArrayBuffer) {
    this.#worker = worker
    this.sequenceSize = ready.sequenceSize
    this.batchSize = ready.batchSize
    this.vocabSize = ready.vocabSize
    this.canCut = ready.canCut
    this.sequences = Array.from({ length: init.sequences }, (_, i) => new LlamaSequence(i))
    this.#stopIds = new Set(init.stopIds)
    this.#counters = new Int32Array(counters)
    worker.on('message', (reply: LlamaReply) => { this.#receive(reply) })
    this.#released = new Promise(resolve => {
      const end = (err?: Error): void => {
        this.#gone ??= new LlamaThreadError(err != null ? `llama.cpp's thread failed: ${err.message}` : 'llama.cpp\'s thread is gone')
        for (const { reject } of this.#pending.values()) reject(this.#gone)
        this.#pending.clear()
        for (const s of this.sequences) s.ahead?.waiter?.reject(this.#gone)
        resolve()
      }
      worker.once('error', end)
      worker.once('exit', () => { end() })
    })
  }

  /** Decodes done, tokens they held, messages that brought tokens computed ahead, and the worker's µs a step of those. */
  evaluated (): { decodes: number, tokens: number, sends: number, stepUs: number } {
    const at = (index: number): number => Atomics.load(this.#counters, index)
    return { decodes: at(DECODES), tokens: at(TOKENS), sends: at(SENDS), stepUs: at(STEP_US) }
  }

  /** Positions a sequence's cells hold, tokens computed ahead included. */
  cells (sequence: LlamaSequence): number {
    return Atomics.load(this.#counters, CELLS + sequence.id)
  }

  /**
   * Evaluates each row's tokens after what its sequence holds, all in one
   * llama.cpp batch where they fit; `room` is how many tokens a greedy row
   * may still take after this one, which bounds how far it runs ahead.
   */
  async decode (rows: Array<{ sequence: LlamaSequence, tokens: number[], greedy: boolean, room: number }>): Promise<Array<number | Float32Array>> {
    if (this.#gone != null) throw this.#gone
    for (const { sequence: s, tokens } of rows) {
      if (s.failed != null) throw new LlamaThreadError(s.failed)
      if (s.ahead != null) throw new Error('a sequence running ahead was asked to decode: drop it first')
      if (s.tokens.length + tokens.length >= this.sequenceSize) throw new LlamaThreadError(`a row of ${s.tokens.length + tokens.length} tokens does not fit its llama.cpp sequence of ${this.sequenceSize}`)
    }
    const wire = rows.map(({ sequence: s, tokens, greedy, room }): DecodeRow => {
      const pos = s.tokens.length
      for (const t of tokens) s.tokens.push(t)
      s.until = greedy && this.canCut ? s.tokens.length + Math.min(room, this.#ahead()) : 0
      return { seq: s.id, epoch: s.epoch, pos, tokens, greedy, until: s.until }
    })
    const id = this.#nextId++
    const out = await new Promise<Array<number | Float32Array>>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#flush()
      this.#send({ type: 'decode', id, rows: wire })
    }).catch((err: Error) => {
      // The worker emptied the rows' sequences.
      for (const { sequence } of rows) this.#lost(sequence, err.message)
      throw err
    })
    rows.forEach(({ sequence: s, greedy }, i) => {
      const token = out[i]
      if (greedy && typeof token === 'number' && s.until > s.tokens.length && continues(token, s.tokens.length, this.sequenceSize, this.#stopIds)) s.ahead = { input: token, arrived: [] }
    })
    return out
  }

  /**
   * The answer to `input` fed to a sequence that runs ahead from it, as
   * computed or once it is; undefined when the sequence is not running ahead
   * from `input`. `room` as decode's.
   */
  next (sequence: LlamaSequence, input: number, room: number): Promise<number> | undefined {
    const s = sequence
    const ahead = s.ahead
    if (ahead == null || ahead.input !== input) return undefined
    s.tokens.push(input)
    const length = s.tokens.length
    // What was asked for may always be computed; past it, what the row has room for, the lead at most.
    const until = Math.max(length, length + Math.min(room, this.#ahead()))
    if (until > s.until) {
      s.until = until
      this.#follow(s)
    }
    const answered = (token: number): number => {
      if (s.ahead === ahead) {
        if (continues(token, length, this.sequenceSize, this.#stopIds)) ahead.input = token
        else s.ahead = undefined
      }
      return token
    }
    const first = ahead.arrived.shift()
    if (first != null) return Promise.resolve(answered(first))
    if (this.#gone != null) return Promise.reject(this.#gone)
    return new Promise<number>((resolve, reject) => { ahead.waiter = { resolve, reject } }).then(answered)
  }

  /** Stops a sequence running ahead, erasing what it computed past the tokens callers gave it. */
  drop (sequence: LlamaSequence): void {
    if (sequence.ahead == null) return
    sequence.ahead = undefined
    this.#erase(sequence, sequence.tokens.length)
  }

  /** Cuts a sequence back to its first `length` tokens (all, when it failed). */
  cut (sequence: LlamaSequence, length: number): void {
    this.drop(sequence)
    if (sequence.failed != null) {
      // The worker emptied it.
      sequence.failed = undefined
      sequence.tokens.length = 0
      return
    }
    if (sequence.tokens.length <= length) return
    sequence.tokens.length = length
    this.#erase(sequence, length)
  }

  async release (): Promise<void> {
    if (this.#gone == null) this.#send({ type: 'release' })
    // Nothing is sent after it: the worker frees the context at once.
    this.#gone ??= new LlamaThreadError('the model was released')
    await Promise.race([this.#released, new Promise(resolve => { this.#worker.once('message', (reply: LlamaReply) => { if (reply.type === 'released') resolve(undefined) }) })])
    await this.#worker.terminate()
  }

  /** How far a greedy row may run ahead (see AHEAD_MIN). */
  #ahead (): number {
    if (this.#lead == null) {
      const stepUs = Atomics.load(this.#counters, STEP_US)
      this.#lead = stepUs <= 0 ? AHEAD_MIN : Math.min(AHEAD_MAX, Math.max(AHEAD_MIN, Math.ceil(2 * HOLD_MS * 1000 / stepUs)))
      queueMicrotask(() => { this.#lead = undefined })
    }
    return this.#lead
  }

  /**
   * Lets a sequence run ahead to its `until`: sent with the others of the
   * same step in one message, so that a worker that waited for them decodes
   * all of them in one batch.
   */
  #follow (sequence: LlamaSequence): void {
    if (this.#follows.length === 0) queueMicrotask(() => { this.#flush() })
    this.#follows.push(sequence)
  }

  #flush (): void {
    if (this.#follows.length === 0 || this.#gone != null) return
    const rows = this.#follows.map(s => ({ seq: s.id, epoch: s.epoch, until: s.until }))
    this.#follows = []
    this.#send({ type: 'follow', rows })
  }

  #send (request: LlamaRequest): void {
    this.#worker.postMessage(request)
    // After the message is in the port: a worker that sees the count moved finds it there.
    Atomics.add(this.#counters, MAIL, 1)
  }

  #erase (sequence: LlamaSequence, from: number): void {
    sequence.epoch++
    if (this.#gone == null) this.#send({ type: 'erase', seq: sequence.id, from })
  }

  /** A failed decode emptied the sequence: any caller of its tokens so far must fail, not go on from an empty cache. */
  #lost (sequence: LlamaSequence, message: string): void {
    sequence.epoch++
    sequence.ahead = undefined
    sequence.failed = message
  }

  #receive (reply: LlamaReply): void {
    if (reply.type === 'result') {
      const pending = this.#pending.get(reply.id)
      this.#pending.delete(reply.id)
      if (reply.error != null) pending?.reject(new LlamaThreadError(reply.error))
      else pending?.resolve(reply.out as Array<number | Float32Array>)
    } else if (reply.type === 'ahead') {
      for (const row of reply.rows) this.#arrived(row)
    }
  }

  #arrived (row: { seq: number, epoch: number, token?: number, error?: string }): void {
    const s = this.sequences[row.seq]
    const ahead = s.ahead
    if (row.epoch !== s.epoch || ahead == null) return
    const waiter = ahead.waiter
    ahead.waiter = undefined
    if (row.error != null) {
      // No longer running ahead: a later step finds the sequence failed.
      this.#lost(s, row.error)
      waiter?.reject(new LlamaThreadError(row.error))
    } else if (waiter != null) {
      waiter.resolve(row.token as number)
    } else {
      ahead.arrived.push(row.token as number)
    }
  }
}
