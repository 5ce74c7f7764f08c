/**
 * Document 000's IPFSDataLoader: batches of a dataset in content, for a
 * client that trains elsewhere. A loader is made with its options and named
 * by an id; each stream of it is one pass (an epoch) over the dataset, read as
 * its blocks arrive and shuffled through a bounded buffer with a seed, as
 * streaming loaders (tf.data, Hugging Face's IterableDataset) shuffle, so
 * memory holds the buffer and the batches fetched ahead, never the dataset.
 * A stream stops reading when its client goes; an idle loader expires.
 */
import { randomInt, randomUUID } from 'node:crypto'
import { seededRandom } from '@node-daemon/onnx'
import { LoaderBusyError, LoaderNotFoundError, TooManyLoadersError } from './errors.ts'
import { detectFormat, readRecords } from './records.ts'
import type { LoadedRecord, RecordFormat } from './records.ts'
import type { Content } from '@node-daemon/content'
import type { AbortOptions } from '@libp2p/interface'

export interface LoaderOptions {
  /** Default 32. */
  batchSize?: number
  /** Default true. */
  shuffle?: boolean
  /** The shuffle's seed; a random one, reported in the status, when not given. */
  seed?: number
  /** Batches read ahead of the client. Default 2. */
  prefetch?: number
  /** Leave out a last batch smaller than the others. Default false. */
  dropLast?: boolean
  /** Records the shuffle draws from. Default 1024. */
  shuffleBuffer?: number
  /** Detected from the first bytes when not given; CSV is asked for. */
  format?: RecordFormat
  /** An idle loader is forgotten after this long. Default 10 minutes. */
  ttlMs?: number
}

export interface LoaderStatus {
  id: string
  dataset: { cid: string, name?: string, format: RecordFormat, records?: number }
  batchSize: number
  shuffle: boolean
  seed: number
  prefetch: number
  dropLast: boolean
  shuffleBuffer: number
  /** `streaming` while a client reads a pass. */
  state: 'idle' | 'streaming'
  /** Passes begun. */
  epochs: number
  batches: number
  records: number
  createdAt: string
  lastUsedAt: string
  /** When the loader is forgotten unless used before; none while it streams. */
  expiresAt?: string
  /** Why the last pass failed, if it did. */
  error?: string
}

export interface Batch {
  loaderId: string
  epoch: number
  /** From 0 within the epoch. */
  batch: number
  records: unknown[]
}

export interface ResolvedDataset {
  cid: string
  /** Its registered name, when it has one. */
  name?: string
  /** How many records the registry counted, when it did. */
  records?: number
}

export interface DataLoadersComponents {
  content: Pick<Content, 'cat'>
  /** A dataset by registered name or CID, found to exist. */
  resolve: (ref: string, options?: AbortOptions) => Promise<ResolvedDataset>
}

export const LOADER_LIMITS = {
  loaders: 256,
  batchSize: 10_000,
  prefetch: 64,
  shuffleBuffer: 65_536,
  /** Characters (or bytes) of records the shuffle buffer holds at most, whatever their count. */
  shuffleChars: 64 * 1_048_576,
  ttlMs: 24 * 3_600_000
}

const DEFAULTS = { batchSize: 32, shuffle: true, prefetch: 2, dropLast: false, shuffleBuffer: 1024, ttlMs: 600_000 }

interface Loader {
  status: LoaderStatus
  ttlMs: number
  timer?: NodeJS.Timeout
  /** Stops the pass that streams, when the loader is closed. */
  pass?: AbortController
}

const iso = (ms: number): string => new Date(ms).toISOString()

export class DataLoaders {
  readonly #c: DataLoadersComponents
  readonly #loaders = new Map<string, Loader>()
  #shutdown = new AbortController()

  constructor (components: DataLoadersComponents) {
    this.#c = components
  }

  start (): void {
    if (this.#shutdown.signal.aborted) this.#shutdown = new AbortController()
  }

  stop (): void {
    this.#shutdown.abort(new Error('the node is stopping'))
    for (const loader of this.#loaders.values()) clearTimeout(loader.timer)
    this.#loaders.clear()
  }

  /** A new loader of a dataset; its format is settled now, so that a dataset it cannot read is refused at once. */
  async create (dataset: string, options: LoaderOptions = {}, abort: AbortOptions = {}): Promise<LoaderStatus> {
    if (this.#loaders.size >= LOADER_LIMITS.loaders) throw new TooManyLoadersError(`${LOADER_LIMITS.loaders} data loaders are open on this node; close one or let it expire`)
    const found = await this.#c.resolve(dataset, abort)
    const format = options.format ?? await detectFormat(this.#c.content, found.cid, abort)
    const now = Date.now()
    const status: LoaderStatus = {
      id: `loader_${randomUUID()}`,
      dataset: { cid: found.cid, format, ...(found.name == null ? {} : { name: found.name }), ...(found.records == null ? {} : { records: found.records }) },
      batchSize: options.batchSize ?? DEFAULTS.batchSize,
      shuffle: options.shuffle ?? DEFAULTS.shuffle,
      seed: options.seed ?? randomInt(2 ** 31),
      prefetch: options.prefetch ?? DEFAULTS.prefetch,
      dropLast: options.dropLast ?? DEFAULTS.dropLast,
      shuffleBuffer: options.shuffleBuffer ?? DEFAULTS.shuffleBuffer,
      state: 'idle',
      epochs: 0,
      batches: 0,
      records: 0,
      createdAt: iso(now),
      lastUsedAt: iso(now)
    }
    const loader: Loader = { status, ttlMs: options.ttlMs ?? DEFAULTS.ttlMs }
    this.#loaders.set(status.id, loader)
    this.#arm(loader)
    return structuredClone(status)
  }

  status (id: string): LoaderStatus {
    return structuredClone(this.#get(id).status)
  }

  /** Forgets a loader, stopping the pass it streams. */
  close (id: string): LoaderStatus {
    const loader = this.#get(id)
    clearTimeout(loader.timer)
    loader.pass?.abort(new LoaderNotFoundError(`data loader ${id} was closed`))
    this.#loaders.delete(id)
    return structuredClone(loader.status)
  }

  /**
   * One pass over the dataset as batches: the next epoch unless `epoch`
   * names one (the same epoch gives the same batches again). One pass of a
   * loader runs at a time; `signal` (the client going) stops its reading.
   */
  async * batches (id: string, options: AbortOptions & { epoch?: number } = {}): AsyncGenerator<Batch> {
    const loader = this.#get(id)
    const s = loader.status
    if (s.state === 'streaming') throw new LoaderBusyError(`${id} is streaming to another client; one pass of a loader runs at a time`)
    s.state = 'streaming'
    clearTimeout(loader.timer)
    s.expiresAt = undefined
    s.error = undefined
    const epoch = options.epoch ?? s.epochs
    s.epochs++
    loader.pass = new AbortController()
    const signal = AbortSignal.any([this.#shutdown.signal, loader.pass.signal, ...options.signal == null ? [] : [options.signal]])
    try {
      let records: AsyncIterable<LoadedRecord> = readRecords(this.#c.content, s.dataset.cid, s.dataset.format, { signal })
      // The seed of each epoch's order, as training's batches mix the seed and the epoch.
      if (s.shuffle) records = shuffled(records, s.shuffleBuffer, seededRandom(s.seed * 1_000_003 + epoch))
      let batch = 0
      for await (const values of ahead(batched(records, s.batchSize, s.dropLast), s.prefetch)) {
        // What the shuffle or the read-ahead holds already needs no more reading: the signal is asked here too.
        signal.throwIfAborted()
        s.batches++
        s.records += values.length
        s.lastUsedAt = iso(Date.now())
        yield { loaderId: id, epoch, batch: batch++, records: values }
      }
    } catch (err: any) {
      if (!signal.aborted) s.error = err.message
      throw err
    } finally {
      loader.pass = undefined
      s.state = 'idle'
      s.lastUsedAt = iso(Date.now())
      if (this.#loaders.get(id) === loader) this.#arm(loader)
    }
  }

  #get (id: string): Loader {
    const loader = this.#loaders.get(id)
    if (loader == null) throw new LoaderNotFoundError(`no data loader ${JSON.stringify(id)} on this node: it was never made here, was closed, or expired`)
    return loader
  }

  /** Forgets the loader once it has been idle for its time to live. */
  #arm (loader: Loader): void {
    clearTimeout(loader.timer)
    loader.status.expiresAt = iso(Date.now() + loader.ttlMs)
    loader.timer = setTimeout(() => { this.#loaders.delete(loader.status.id) }, loader.ttlMs)
    loader.timer.unref()
  }
}

/**
 * Records in a seeded random order through a buffer of at most `size`
 * records (and LOADER_LIMITS.shuffleChars of them): each record read takes
 * the place of one drawn from the buffer, which empties in random order at
 * the end. Every record comes out once.
 */
async function * shuffled (records: AsyncIterable<LoadedRecord>, size: number, random: () => number): AsyncGenerator<LoadedRecord> {
  const buffer: LoadedRecord[] = []
  let chars = 0
  const draw = (): LoadedRecord => {
    const j = Math.floor(random() * buffer.length)
    const drawn = buffer[j]
    buffer[j] = buffer[buffer.length - 1]
    buffer.pop()
    chars -= drawn.size
    return drawn
  }
  for await (const record of records) {
    while (buffer.length > 0 && (buffer.length >= size || chars + record.size > LOADER_LIMITS.shuffleChars)) yield draw()
    buffer.push(record)
    chars += record.size
  }
  while (buffer.length > 0) yield draw()
}

async function * batched (records: AsyncIterable<LoadedRecord>, size: number, dropLast: boolean): AsyncGenerator<unknown[]> {
  let batch: unknown[] = []
  for await (const record of records) {
    batch.push(record.value)
    if (batch.length === size) {
      yield batch
      batch = []
    }
  }
  if (batch.length > 0 && !dropLast) yield batch
}

/**
 * The items of `source` with up to `count` more read ahead while the
 * consumer works. An async generator queues calls to `next()`, so asking
 * early is all it takes; what was read ahead is dropped when the consumer stops.
 */
async function * ahead<T> (source: AsyncGenerator<T>, count: number): AsyncGenerator<T> {
  const queue: Array<Promise<IteratorResult<T>>> = []
  try {
    for (;;) {
      while (queue.length <= count) {
        const next = source.next()
        // A read ahead that fails after the consumer stopped has no one to tell.
        next.catch(() => {})
        queue.push(next)
      }
      const result = await (queue.shift() as Promise<IteratorResult<T>>)
      if (result.done === true) return
      yield result.value
    }
  } finally {
    await source.return(undefined)
  }
}
