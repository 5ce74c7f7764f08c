/**
 * /node-daemon/training/4.0.0 (protocols/training.proto): a coordinator
 * keeps one stream per worker and job, and each round writes a step and
 * reads the worker's gradient back. A message's tensor (a request's update,
 * a response's gradient) follows it as a raw length-prefixed frame rather
 * than inside it: sent from the array itself, and copied once on arrival,
 * into a fresh aligned buffer that the floats are then read from in place.
 * Through protobuf, tens of MB a step were copied into the encoded message,
 * joined again from the stream's chunks to decode it, and copied once more
 * to be aligned.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { askSealedChannel, dialPeer, messageStreamOptions, SealedChannels } from '@node-daemon/swarm'
import { StepRequest, StepResponse } from '../../../protocols/training.js'
import type { SliceResult } from './replica.ts'
import type { AbortOptions, Connection, Libp2p, Logger, Stream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

export const TRAINING_PROTOCOL = '/node-daemon/training/4.0.0'
/** Offers of a sealed channel for a job's stream (ChannelOffer in protocols/blocks.proto). */
export const TRAINING_CHANNEL_PROTOCOL = '/node-daemon/training-channel/1.0.0'
/** How long opening a sealed channel may take before a job's stream goes over libp2p instead. */
const SEALED_OPEN_MS = 3_000
/** A float32 gradient of 128M parameters, plus room for the sample list. */
const STREAM_OPTIONS = messageStreamOptions(512 * 1024 * 1024 + 1024 * 1024)
/** A worker that hears nothing on a job's stream for this long lets it go. */
const IDLE_TIMEOUT_MS = 10 * 60_000

export { StepRequest, StepResponse }

/**
 * Answers one step of a job for a coordinator. The request's update is the
 * handler's until it answers, and is overwritten by the next request's:
 * a handler copies what it keeps.
 */
export type StepHandler = (from: string, request: StepRequest, signal: AbortSignal) => Promise<StepResponse>

export interface TrainingProtocolComponents {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dial'>
  log: Logger
}

export interface TrainingProtocolInit {
  handler: StepHandler
  /** Cluster members only. */
  allow: (peerId: string) => boolean
  /**
   * The interface this node's sealed channels listen on (its swarm's host).
   * Set, coordinators get a sealed channel for their job's stream (see
   * packages/swarm's sealed-channel.ts for why one layer of encryption is
   * enough there); unset, they use libp2p streams. A coordinator asks for a
   * channel either way, and falls back to libp2p if it gets none.
   */
  channelHost?: string
}

/** Job streams this node opened and served, on sealed channels and on libp2p. */
export interface TrainingStreamStats {
  sealedOpened: number
  libp2pOpened: number
  sealedServed: number
  libp2pServed: number
}

/** The bytes of a float32 array, without a copy. */
export function floatBytes (values: Float32Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(values.buffer as ArrayBuffer, values.byteOffset, values.byteLength)
}

/**
 * A float32 view of tensor bytes: in place when they are 4-byte aligned, as
 * a frame read here is; copied when not, as bytes inside a decoded message
 * may be.
 */
export function bytesToFloats (bytes: Uint8Array): Float32Array<ArrayBuffer> {
  if (bytes.byteOffset % 4 === 0 && bytes.buffer instanceof ArrayBuffer) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
  const out = new Float32Array(bytes.byteLength / 4)
  new Uint8Array(out.buffer).set(bytes)
  return out
}

/**
 * A frame's chunks joined into one aligned buffer, the one copy a received
 * tensor costs: `spare` when it is the frame's size, else a fresh one.
 */
function joined (list: Uint8ArrayList, spare?: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const out = spare?.byteLength === list.byteLength ? spare : new Uint8Array(list.byteLength)
  let at = 0
  for (const chunk of list) {
    out.set(chunk, at)
    at += chunk.byteLength
  }
  return out
}

interface Codec<T> {
  encode: (message: T) => Uint8Array
  decode: (bytes: Uint8Array | Uint8ArrayList) => T
}

const EMPTY = new Uint8Array(0)

/** Writes a message with its tensor field emptied, then the tensor as a frame of its own, not copied. */
async function writeFramed<K extends string, T extends Record<K, Uint8Array>> (lp: LengthPrefixedStream<Stream>, codec: Codec<T>, message: T, field: K, options: AbortOptions): Promise<void> {
  await lp.writeV([codec.encode({ ...message, [field]: EMPTY }), message[field]], options)
}

/** Reads a message and the tensor frame after it into its tensor field, in `spare` if it fits. */
async function readFramed<K extends string, T extends Record<K, Uint8Array>> (lp: LengthPrefixedStream<Stream>, codec: Codec<T>, field: K, options: AbortOptions, spare?: Uint8Array<ArrayBuffer>): Promise<T> {
  const message = codec.decode(await lp.read(options))
  // A frame stays in the stream's chunks until it is whole; they are joined once.
  return { ...message, [field]: joined(await lp.read(options), spare) }
}

/** A slice's result as a worker answers it; the gradient's bytes are not copied. */
export function stepResult (round: bigint, r: SliceResult): StepResponse {
  return { status: StepResponse.Status.OK, round, gradient: floatBytes(r.gradient), count: r.count, lossSum: r.lossSum, correct: r.correct, labels: r.labels, computeMs: r.computeMs, errorName: '', errorMessage: '' }
}

/** The result a worker answered; its gradient is copied only if the message's bytes are not aligned. */
export function sliceOf (response: StepResponse): SliceResult {
  return { gradient: bytesToFloats(response.gradient), count: response.count, lossSum: response.lossSum, correct: response.correct, labels: response.labels, computeMs: response.computeMs }
}

/** A step answered without gradients: the worker is out of sync, or failed with the error named. */
export function stepFailure (round: bigint, status: StepResponse.Status, error: { name?: string, message?: string } = {}): StepResponse {
  return { status, round, gradient: new Uint8Array(0), count: 0, lossSum: 0, correct: 0, labels: 0, computeMs: 0, errorName: error.name ?? '', errorMessage: error.message ?? '' }
}

/** The coordinator's end of a stream to one worker for one job. */
export interface WorkerChannel {
  step: (request: StepRequest, signal: AbortSignal) => Promise<StepResponse>
  close: () => void
}

export class TrainingProtocol {
  readonly stats: TrainingStreamStats = { sealedOpened: 0, libp2pOpened: 0, sealedServed: 0, libp2pServed: 0 }
  readonly #components: TrainingProtocolComponents
  readonly #init: TrainingProtocolInit
  readonly #shutdown = new AbortController()
  /** Offers channels to coordinators, when the node has a channel host. */
  readonly #channels?: SealedChannels

  constructor (components: TrainingProtocolComponents, init: TrainingProtocolInit) {
    this.#components = components
    this.#init = init
    if (init.channelHost == null) return
    this.#channels = new SealedChannels({ libp2p: () => components.libp2p, log: components.log }, {
      host: init.channelHost,
      offerProtocol: TRAINING_CHANNEL_PROTOCOL,
      allow: peer => init.allow(peer.toString()),
      onStream: (stream, peer) => {
        this.stats.sealedServed++
        void this.#serve(stream, peer.toString())
      }
    })
  }

  async start (): Promise<void> {
    await this.#components.libp2p.handle(TRAINING_PROTOCOL, async (stream, connection) => {
      this.stats.libp2pServed++
      await this.#serve(stream, connection.remotePeer.toString())
    }, { runOnLimitedConnection: false })
    await this.#channels?.start()
  }

  async stop (): Promise<void> {
    this.#shutdown.abort(new Error('the training protocol is stopping'))
    await this.#channels?.stop()
    await this.#components.libp2p.unhandle(TRAINING_PROTOCOL)
  }

  async #serve (stream: Stream, from: string): Promise<void> {
    const lp = lpStream(stream, STREAM_OPTIONS)
    // A coordinator that gave up on a step (its deadline, a pause) closes the stream: the step ends here too.
    const closed = new AbortController()
    stream.addEventListener('close', () => { closed.abort(new Error(`${from} closed the stream`)) }, { once: true })
    const working = AbortSignal.any([this.#shutdown.signal, closed.signal])
    try {
      if (!this.#init.allow(from)) throw new Error(`${from} is not a member of this cluster`)
      /**
       * Each round's update is read into the last one's buffer: the handler
       * is done with it once it answers (a replica copies it for its
       * optimizer), and a fresh 40 MB buffer a step (10M parameters) cost
       * page faults and full collections.
       */
      let spare: Uint8Array<ArrayBuffer> | undefined
      for (;;) {
        const signal = AbortSignal.any([this.#shutdown.signal, AbortSignal.timeout(IDLE_TIMEOUT_MS)])
        const request = await readFramed(lp, StepRequest, 'update', { signal }, spare)
        const response = await this.#init.handler(from, request, working)
        if (request.update.byteLength > 0) spare = request.update as Uint8Array<ArrayBuffer>
        await writeFramed(lp, StepResponse, response, 'gradient', { signal: this.#shutdown.signal })
      }
    } catch (err: any) {
      // The coordinator closing its end is how a job's stream normally ends.
      this.#components.log('training stream from %s ended - %s', from, err.message)
      stream.abort(err)
    }
  }

  /** Opens a job's stream to a worker: on a sealed channel if the worker offers one, else on libp2p. */
  async open (peer: string, signal: AbortSignal): Promise<WorkerChannel> {
    const stream = await this.#stream(await dialPeer(this.#components.libp2p, peerIdFromString(peer), signal), signal)
    const lp = lpStream(stream, STREAM_OPTIONS)
    // A step may be sent before the last one's answer came (a round of two sends the next step early): writes and reads each keep their turn.
    let writing = Promise.resolve()
    let reading = Promise.resolve()
    return {
      async step (request, signal) {
        const onAbort = (): void => { stream.abort(signal.reason instanceof Error ? signal.reason : new Error('aborted')) }
        signal.addEventListener('abort', onAbort, { once: true })
        try {
          const written = writing.then(async () => { await writeFramed(lp, StepRequest, request, 'update', { signal }) })
          writing = written.catch(() => {})
          const answer = reading.then(async () => { await written; return await readFramed(lp, StepResponse, 'gradient', { signal }) })
          reading = answer.then(() => {}, () => {})
          return await answer
        } finally {
          signal.removeEventListener('abort', onAbort)
        }
      },
      close () {
        stream.abort(new Error('the coordinator closed the stream'))
      }
    }
  }

  async #stream (connection: Connection, signal: AbortSignal): Promise<Stream> {
    try {
      // A port a firewall drops would otherwise hold the job's first round.
      const stream = await askSealedChannel(connection, TRAINING_CHANNEL_PROTOCOL, this.#components.log, { signal: AbortSignal.any([signal, AbortSignal.timeout(SEALED_OPEN_MS)]) })
      this.stats.sealedOpened++
      return stream
    } catch (err: any) {
      signal.throwIfAborted()
      this.#components.log('no sealed channel to %p, the job\'s stream goes over libp2p - %s', connection.remotePeer, err.message)
    }
    const stream = await connection.newStream(TRAINING_PROTOCOL, { signal })
    this.stats.libp2pOpened++
    return stream
  }
}
