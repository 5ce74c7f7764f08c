/**
 * The thread that owns a GGUF model's llama.cpp context (llama-thread.ts
 * starts it and describes the messages). It decodes in a loop of its own,
 * calling llama.cpp synchronously: the rows asked for, and beside them every
 * sequence allowed to run ahead, whose greedy token it feeds back at once
 * rather than waiting for the main thread to ask, and sends on every
 * HOLD_MS. Between decodes it reads its messages without returning to its
 * event loop.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'
import { bindLlama } from './llama-binding.ts'
import { CELLS, DECODES, HOLD_MS, MAIL, SENDS, STEP_US, TOKENS, continues } from './llama-thread.ts'
import type { LlamaApi, LlamaBatch, Pointer } from './llama-binding.ts'
import type { DecodeRow, LlamaReply, LlamaRequest, LlamaThreadInit } from './llama-thread.ts'

const port = parentPort as NonNullable<typeof parentPort>
const BATCH = 512
const init = workerData as LlamaThreadInit

/** A row of a decode request, fed to llama.cpp in pieces of what a batch has room for. */
interface Item {
  request: Pending
  index: number
  row: DecodeRow
  /** Tokens of the row in earlier batches. */
  fed: number
}

interface Pending {
  id: number
  /** The sequences of its rows. */
  seqs: number[]
  out: Array<number | Float32Array>
  left: number
}

/** A sequence running ahead: `token` goes in at `pos` once `pos < until`. */
interface Running {
  epoch: number
  token: number
  pos: number
  until: number
}

class Engine {
  readonly #api: LlamaApi
  readonly #model: Pointer
  readonly #ctx: Pointer
  readonly #memory: Pointer
  readonly #greedy: Pointer
  readonly #batch: LlamaBatch
  readonly #token: Int32Array
  readonly #pos: Int32Array
  readonly #seq: Int32Array[]
  readonly #logits: Int8Array
  readonly #stopIds: Set<number>
  readonly #counters: Int32Array
  readonly sequenceSize: number
  readonly batchSize: number
  readonly vocabSize: number
  readonly canCut: boolean
  readonly #queue: Item[] = []
  readonly #running = new Map<number, Running>()
  /** Tokens computed ahead and not sent yet, and when the step that computed the first of them began. */
  #held: Array<{ seq: number, epoch: number, token: number }> = []
  #heldSince = 0
  #stepUs = 0

  constructor () {
    this.#api = bindLlama(init.dir)
    const api = this.#api
    const model = api.loadModel(init.path, api.modelDefaults())
    if (model == null) throw new Error('llama.cpp could not load the model')
    this.#model = model
    const params = api.contextDefaults()
    const cells = init.contextSize * init.sequences
    // node-llama-cpp's batch, and llama-server's physical one: a prompt's piece holds up the rows running ahead no longer.
    const batch = Math.min(cells, BATCH)
    Object.assign(params, {
      n_ctx: cells,
      n_batch: batch,
      n_ubatch: batch,
      n_seq_max: init.sequences,
      n_threads: init.threads,
      n_threads_batch: init.threads,
      // Each sequence's cells apart, as node-llama-cpp's contexts keep them: no sequence fills another's room.
      kv_unified: false,
      no_perf: true
    })
    const ctx = api.newContext(model, params)
    if (ctx == null) {
      api.freeModel(model)
      throw new Error('llama.cpp could not make a context for the model')
    }
    this.#ctx = ctx
    this.#memory = api.memory(ctx)
    this.#greedy = api.greedy()
    this.sequenceSize = api.sequenceSize(ctx)
    this.batchSize = api.batchSize(ctx)
    this.vocabSize = api.vocabSize(api.vocab(model))
    this.canCut = !api.isRecurrent(model) && !api.isHybrid(model)
    this.#batch = api.batchInit(this.batchSize, 0, 1)
    const b = this.#batch
    this.#token = new Int32Array(api.view(b.token, 4 * this.batchSize))
    this.#pos = new Int32Array(api.view(b.pos, 4 * this.batchSize))
    new Int32Array(api.view(b.n_seq_id, 4 * this.batchSize)).fill(1)
    this.#seq = api.pointers(b.seq_id, this.batchSize).map(p => new Int32Array(api.view(p, 4)))
    this.#logits = new Int8Array(api.view(b.logits, this.batchSize))
    this.#stopIds = new Set(init.stopIds)
    this.#counters = new Int32Array(init.counters)
  }

  handle (message: LlamaRequest): boolean {
    switch (message.type) {
      case 'decode': {
        const request: Pending = { id: message.id, seqs: message.rows.map(r => r.seq), out: [], left: message.rows.length }
        message.rows.forEach((row, index) => {
          this.#running.delete(row.seq)
          this.#queue.push({ request, index, row, fed: 0 })
        })
        return true
      }
      case 'follow':
        for (const { seq, epoch, until } of message.rows) {
          const running = this.#running.get(seq)
          if (running != null && running.epoch === epoch) running.until = Math.max(running.until, until)
        }
        return true
      case 'erase':
        this.#running.delete(message.seq)
        this.#api.erase(this.#memory, message.seq, message.from, -1)
        this.#counters[CELLS + message.seq] = Math.min(this.#counters[CELLS + message.seq], message.from)
        return true
      case 'release':
        this.#release()
        return false
    }
  }

  /** One decode of what is waiting; false when nothing is. */
  step (): boolean {
    const outputs: Array<{ at: number, running?: [number, Running], item?: Item }> = []
    const items: Item[] = []
    let n = 0
    const add = (seq: number, token: number, pos: number, output: boolean): void => {
      this.#token[n] = token
      this.#pos[n] = pos
      this.#seq[n][0] = seq
      this.#logits[n] = output ? 1 : 0
      n++
    }
    for (const entry of this.#running) {
      const [seq, r] = entry
      if (r.pos >= r.until || n === this.batchSize) continue
      outputs.push({ at: n, running: entry })
      add(seq, r.token, r.pos, true)
    }
    while (this.#queue.length > 0 && n < this.batchSize) {
      const item = this.#queue[0]
      const { tokens, pos, seq } = item.row
      const take = Math.min(this.batchSize - n, tokens.length - item.fed)
      for (let j = 0; j < take; j++) add(seq, tokens[item.fed + j], pos + item.fed + j, item.fed + j === tokens.length - 1)
      item.fed += take
      items.push(item)
      if (item.fed < tokens.length) break
      outputs.push({ at: n - 1, item })
      this.#queue.shift()
    }
    if (n === 0) return false
    this.#batch.n_tokens = n
    const started = performance.now()
    const rc = this.#api.decode(this.#ctx, this.#batch)
    const now = performance.now()
    this.#counters[DECODES]++
    this.#counters[TOKENS] += n
    if (rc !== 0) {
      this.#fail(outputs.flatMap(o => o.running != null ? [o.running] : []), items, rc)
      return true
    }
    for (let i = 0; i < n; i++) this.#counters[CELLS + this.#seq[i][0]] = Math.max(this.#counters[CELLS + this.#seq[i][0]], this.#pos[i] + 1)
    if (items.length === 0) {
      // Only rows running ahead: how long such a step takes tells the main thread how far to let them run.
      this.#stepUs = this.#stepUs === 0 ? (now - started) * 1000 : 0.8 * this.#stepUs + 200 * (now - started)
      this.#counters[STEP_US] = Math.max(1, Math.round(this.#stepUs))
    }
    let stopped = false
    for (const { at, running, item } of outputs) {
      if (running != null) {
        // From the step's start: a step as long as HOLD_MS sends its tokens at once, so a large model streams each token as it comes.
        if (this.#held.length === 0) this.#heldSince = started
        this.#held.push(this.#ahead(running[0], running[1], at))
        const r = this.#running.get(running[0])
        stopped ||= r == null || r.pos >= r.until
      } else if (item != null) {
        this.#answer(item, at)
      }
    }
    // A row that can go no further without the main thread sends at once; else the tokens wait for HOLD_MS, all rows' in one message.
    if (stopped || now - this.#heldSince >= HOLD_MS) this.sendHeld()
    return true
  }

  /** Sends the tokens computed ahead that wait: before the thread idles, and whenever a row needs the main thread to go on. */
  sendHeld (): void {
    if (this.#held.length === 0) return
    this.#post({ type: 'ahead', rows: this.#held })
    this.#held = []
    this.#counters[SENDS]++
  }

  #ahead (seq: number, r: Running, at: number): { seq: number, epoch: number, token: number } {
    const token = this.#api.sample(this.#greedy, this.#ctx, at)
    const answer = { seq, epoch: r.epoch, token }
    r.token = token
    r.pos++
    if (!continues(token, r.pos, this.sequenceSize, this.#stopIds)) this.#running.delete(seq)
    return answer
  }

  #answer (item: Item, at: number): void {
    const { request, index, row } = item
    if (row.greedy) {
      const token = this.#api.sample(this.#greedy, this.#ctx, at)
      request.out[index] = token
      const pos = row.pos + row.tokens.length
      if (row.until > pos && continues(token, pos, this.sequenceSize, this.#stopIds)) this.#running.set(row.seq, { epoch: row.epoch, token, pos, until: row.until })
    } else {
      // The row's copy: llama.cpp's next decode overwrites its own.
      request.out[index] = new Float32Array(this.#api.view(this.#api.logits(this.#ctx, at) as Pointer, 4 * this.vocabSize).slice(0))
    }
    if (--request.left === 0) this.#post({ type: 'result', id: request.id, out: request.out }, request.out.flatMap(o => typeof o === 'number' ? [] : [o.buffer as ArrayBuffer]))
  }

  /**
   * A failed decode leaves what its sequences' cells hold unknown: they are
   * emptied, and every request with a row on them fails.
   */
  #fail (running: Array<[number, Running]>, items: Item[], rc: number): void {
    const message = rc === 1 ? 'llama.cpp found no room in the context for the batch' : `llama.cpp refused the batch (${rc})`
    // The tokens before the failure first, as they were computed.
    this.sendHeld()
    const hit = new Set(running.map(([seq]) => seq))
    const failed = new Set(items.map(i => i.request))
    // Every request with a row on a sequence hit, and every sequence of a request that fails, until none is left to add.
    for (let grown = true; grown;) {
      grown = false
      for (const request of failed) for (const seq of request.seqs) hit.add(seq)
      for (const item of this.#queue) {
        if (failed.has(item.request) || !hit.has(item.row.seq)) continue
        failed.add(item.request)
        grown = true
      }
    }
    for (let i = this.#queue.length - 1; i >= 0; i--) if (failed.has(this.#queue[i].request)) this.#queue.splice(i, 1)
    for (const seq of hit) {
      this.#api.erase(this.#memory, seq, -1, -1)
      this.#counters[CELLS + seq] = 0
      const r = this.#running.get(seq)
      this.#running.delete(seq)
      if (r != null) this.#post({ type: 'ahead', rows: [{ seq, epoch: r.epoch, error: message }] })
    }
    for (const request of failed) this.#post({ type: 'result', id: request.id, error: message })
  }

  #release (): void {
    this.#api.batchFree(this.#batch)
    this.#api.freeSampler(this.#greedy)
    this.#api.freeContext(this.#ctx)
    this.#api.freeModel(this.#model)
  }

  #post (reply: LlamaReply, transfer: ArrayBuffer[] = []): void {
    port.postMessage(reply, transfer)
  }
}

let engine: Engine
try {
  engine = new Engine()
  port.postMessage({ type: 'ready', sequenceSize: engine.sequenceSize, batchSize: engine.batchSize, vocabSize: engine.vocabSize, canCut: engine.canCut } satisfies LlamaReply)
} catch (err: any) {
  port.postMessage({ type: 'failed', error: String(err?.message ?? err) } satisfies LlamaReply)
  port.close()
}

const mail = new Int32Array(init.counters)
let seen = 0

/** The next message, read from the port now rather than at the event loop's next turn. */
function receive (): LlamaRequest | undefined {
  seen = Atomics.load(mail, MAIL)
  return receiveMessageOnPort(port)?.message as LlamaRequest | undefined
}

let released = false

/** Handles what came, then decodes until nothing waits; the messages that come meanwhile are read between decodes. */
function pump (first: LlamaRequest): void {
  // What was already queued behind the release still comes: the context is gone.
  if (released) return
  let message: LlamaRequest | undefined = first
  for (;;) {
    for (; message != null; message = receive()) {
      if (engine.handle(message)) continue
      released = true
      port.postMessage({ type: 'released' } satisfies LlamaReply)
      port.close()
      return
    }
    if (!engine.step()) {
      engine.sendHeld()
      return
    }
    message = Atomics.load(mail, MAIL) !== seen ? receive() : undefined
  }
}

port.on('message', pump)
