/**
 * /node-daemon/training/1.0.0 (protocols/training.proto): a coordinator
 * keeps one stream per worker and job, and each round writes a step and
 * reads the worker's gradient sums back. Gradients travel as raw float32
 * bytes inside the message: one copy in, one out.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { pbStream } from '@libp2p/utils'
import { messageStreamOptions, openStream } from '@node-daemon/swarm'
import { StepRequest, StepResponse } from '../../../protocols/training.js'
import type { SliceResult } from './replica.ts'
import type { Libp2p, Logger, Stream } from '@libp2p/interface'

export const TRAINING_PROTOCOL = '/node-daemon/training/1.0.0'
/** A float32 gradient of 128M parameters, plus room for the sample list. */
const STREAM_OPTIONS = messageStreamOptions(512 * 1024 * 1024 + 1024 * 1024)
/** A worker that hears nothing on a job's stream for this long lets it go. */
const IDLE_TIMEOUT_MS = 10 * 60_000

export { StepRequest, StepResponse }

/** Answers one step of a job for a coordinator. */
export type StepHandler = (from: string, request: StepRequest, signal: AbortSignal) => Promise<StepResponse>

export interface TrainingProtocolComponents {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dial'>
  log: Logger
}

export interface TrainingProtocolInit {
  handler: StepHandler
  /** Cluster members only. */
  allow: (peerId: string) => boolean
}

/** The bytes of a float32 array, without a copy. */
export function floatBytes (values: Float32Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(values.buffer as ArrayBuffer, values.byteOffset, values.byteLength)
}

/** A float32 array of message bytes; copied, since a message's bytes need not be 4-byte aligned. */
export function bytesToFloats (bytes: Uint8Array): Float32Array<ArrayBuffer> {
  const out = new Float32Array(bytes.byteLength / 4)
  new Uint8Array(out.buffer).set(bytes)
  return out
}

/** A slice's result as a worker answers it; the gradient's bytes are not copied. */
export function stepResult (round: bigint, r: SliceResult): StepResponse {
  return { status: StepResponse.Status.OK, round, gradient: floatBytes(r.gradient), count: r.count, lossSum: r.lossSum, correct: r.correct, labels: r.labels, computeMs: r.computeMs, errorName: '', errorMessage: '' }
}

/** The result a worker answered, its gradient copied out of the message. */
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
  readonly #components: TrainingProtocolComponents
  readonly #init: TrainingProtocolInit
  readonly #shutdown = new AbortController()

  constructor (components: TrainingProtocolComponents, init: TrainingProtocolInit) {
    this.#components = components
    this.#init = init
  }

  async start (): Promise<void> {
    await this.#components.libp2p.handle(TRAINING_PROTOCOL, async (stream, connection) => {
      await this.#serve(stream, connection.remotePeer.toString())
    }, { runOnLimitedConnection: false })
  }

  async stop (): Promise<void> {
    this.#shutdown.abort(new Error('the training protocol is stopping'))
    await this.#components.libp2p.unhandle(TRAINING_PROTOCOL)
  }

  async #serve (stream: Stream, from: string): Promise<void> {
    const pb = pbStream(stream, STREAM_OPTIONS)
    // A coordinator that gave up on a step (its deadline, a pause) closes the stream: the step ends here too.
    const closed = new AbortController()
    stream.addEventListener('close', () => { closed.abort(new Error(`${from} closed the stream`)) }, { once: true })
    const working = AbortSignal.any([this.#shutdown.signal, closed.signal])
    try {
      if (!this.#init.allow(from)) throw new Error(`${from} is not a member of this cluster`)
      for (;;) {
        const signal = AbortSignal.any([this.#shutdown.signal, AbortSignal.timeout(IDLE_TIMEOUT_MS)])
        const request = await pb.read(StepRequest, { signal })
        const response = await this.#init.handler(from, request, working)
        await pb.write(response, StepResponse, { signal: this.#shutdown.signal })
      }
    } catch (err: any) {
      // The coordinator closing its end is how a job's stream normally ends.
      this.#components.log('training stream from %s ended - %s', from, err.message)
      stream.abort(err)
    }
  }

  /** Opens a job's stream to a worker. */
  async open (peer: string, signal: AbortSignal): Promise<WorkerChannel> {
    const stream = await openStream(this.#components.libp2p, peerIdFromString(peer), TRAINING_PROTOCOL, signal)
    const pb = pbStream(stream, STREAM_OPTIONS)
    return {
      async step (request, signal) {
        const onAbort = (): void => { stream.abort(signal.reason instanceof Error ? signal.reason : new Error('aborted')) }
        signal.addEventListener('abort', onAbort, { once: true })
        try {
          await pb.write(request, StepRequest, { signal })
          return await pb.read(StepResponse, { signal })
        } finally {
          signal.removeEventListener('abort', onAbort)
        }
      },
      close () {
        stream.abort(new Error('the coordinator closed the stream'))
      }
    }
  }
}
