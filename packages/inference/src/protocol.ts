/**
 * /node-daemon/inference/1.0.0 (protocols/inference.proto): the caller sends
 * one job, the worker streams chunks and ends with DONE or ERROR. Typed
 * errors travel by name and are raised again at the caller, so that a bad
 * request is not retried on another node.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { pbStream } from '@libp2p/utils'
import { messageStreamOptions, openStream } from '@node-daemon/swarm'
import { InferenceRequest, InferenceResponse } from '../../../protocols/inference.js'
import { InferenceProtocolError } from './errors.ts'
import type { TokenLogprobs } from './interface.ts'
import type { Libp2p, Logger } from '@libp2p/interface'

export const INFERENCE_PROTOCOL = '/node-daemon/inference/1.0.0'
/** A whole result is one message: the embeddings of a large batch, as JSON, run to tens of MB. */
const STREAM_OPTIONS = messageStreamOptions(64 * 1024 * 1024)

const KINDS: Record<Job['kind'], InferenceRequest.Kind> = { generate: InferenceRequest.Kind.GENERATE, embed: InferenceRequest.Kind.EMBED, rerank: InferenceRequest.Kind.RERANK }
const KIND_NAMES: Record<InferenceRequest.Kind, Job['kind']> = { [InferenceRequest.Kind.GENERATE]: 'generate', [InferenceRequest.Kind.EMBED]: 'embed', [InferenceRequest.Kind.RERANK]: 'rerank' }

export interface Job {
  kind: 'generate' | 'embed' | 'rerank'
  jobId: number
  modelCid: string
  modelName: string
  body: any
}

/** What a worker streams back: a generation's start, text (with its tokens' log-probabilities when asked), then one result. */
export type WorkerEvent =
  | { type: 'start', promptText?: string }
  | { type: 'chunk', text: string, logprobs?: TokenLogprobs[] }
  | { type: 'done', result: any }

/** Runs a job on this node for a remote caller. */
export type JobHandler = (from: string, job: Job, signal: AbortSignal) => AsyncIterable<WorkerEvent>

export interface ProtocolComponents {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dial'>
  log: Logger
}

export interface ProtocolInit {
  handler: JobHandler
  /** Whether a peer may send jobs: cluster members only. */
  allow: (peerId: string) => boolean
  /** The longest a job may run for a remote caller. */
  jobTimeoutMs: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const json = (value: unknown): Uint8Array<ArrayBuffer> => encoder.encode(JSON.stringify(value ?? null))

/** Errors a worker reported, as opposed to the transport failing: those are not retried elsewhere. */
const reported = new WeakSet<Error>()

export function reportedByWorker (err: unknown): boolean {
  return err instanceof Error && reported.has(err)
}

/** Error classes the caller raises again by name. */
export type ErrorClasses = Record<string, new (message: string) => Error>

export class InferenceProtocol {
  readonly #components: ProtocolComponents
  readonly #init: ProtocolInit

  constructor (components: ProtocolComponents, init: ProtocolInit) {
    this.#components = components
    this.#init = init
  }

  async start (): Promise<void> {
    await this.#components.libp2p.handle(INFERENCE_PROTOCOL, async (stream, connection) => {
      const from = connection.remotePeer.toString()
      const controller = new AbortController()
      const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(this.#init.jobTimeoutMs)])
      // A caller that goes away ends the job at once, not at its next write: a prefill writes nothing for a while.
      stream.addEventListener('close', () => { controller.abort(new InferenceProtocolError(`${from} went away`)) }, { once: true })
      const pb = pbStream(stream, STREAM_OPTIONS)
      try {
        const request = await pb.read(InferenceRequest, { signal })
        if (!this.#init.allow(from)) throw new InferenceProtocolError(`${from} is not a member of this cluster`)
        const kind = KIND_NAMES[request.kind] as Job['kind'] | undefined
        if (kind == null) throw new InferenceProtocolError(`${from} asked for a kind of job this node does not know`)
        const job: Job = {
          kind,
          jobId: Number(request.jobId),
          modelCid: request.modelCid,
          modelName: request.modelName,
          body: JSON.parse(decoder.decode(request.body))
        }
        for await (const event of this.#init.handler(from, job, signal)) {
          await pb.write(responseOf(event), InferenceResponse, { signal })
        }
      } catch (err: any) {
        // A caller that went away ends the job; the write of its error fails too and is dropped.
        controller.abort(err)
        await pb.write({ type: InferenceResponse.Type.ERROR, text: '', body: new Uint8Array(0), errorName: err.name ?? 'Error', errorMessage: err.message ?? String(err) }, InferenceResponse, { signal: AbortSignal.timeout(5000) }).catch(() => {})
      }
      await stream.close({ signal: AbortSignal.timeout(5000) }).catch((err: Error) => {
        this.#components.log('closing the stream to %s failed - %e', from, err)
        stream.abort(err)
      })
    }, { runOnLimitedConnection: false })
  }

  async stop (): Promise<void> {
    await this.#components.libp2p.unhandle(INFERENCE_PROTOCOL)
  }

  /** Sends a job to `peer` and yields what it streams back; a remote failure is raised with its own type when known. */
  async * call (peer: string, job: Job, errors: ErrorClasses, signal?: AbortSignal): AsyncIterable<WorkerEvent> {
    const stream = await openStream(this.#components.libp2p, peerIdFromString(peer), INFERENCE_PROTOCOL, signal)
    const onAbort = (): void => { stream.abort(signal?.reason ?? new Error('aborted')) }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const pb = pbStream(stream, STREAM_OPTIONS)
      await pb.write({
        kind: KINDS[job.kind],
        jobId: BigInt(job.jobId),
        modelCid: job.modelCid,
        modelName: job.modelName,
        body: json(job.body)
      }, InferenceRequest, { signal })
      while (true) {
        const response = await pb.read(InferenceResponse, { signal })
        if (response.type === InferenceResponse.Type.START) {
          yield { type: 'start', ...JSON.parse(decoder.decode(response.body)) }
        } else if (response.type === InferenceResponse.Type.CHUNK) {
          const extra = response.body.byteLength === 0 ? {} : JSON.parse(decoder.decode(response.body))
          yield { type: 'chunk', text: response.text, ...extra }
        } else if (response.type === InferenceResponse.Type.DONE) {
          yield { type: 'done', result: JSON.parse(decoder.decode(response.body)) }
          await stream.close({ signal }).catch(() => {})
          return
        } else {
          const E = errors[response.errorName]
          const err = E != null ? new E(response.errorMessage) : Object.assign(new Error(response.errorMessage), { name: response.errorName })
          reported.add(err)
          throw err
        }
      }
    } catch (err: any) {
      stream.abort(err)
      throw err
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }
}

/** A worker's event as its message: extras beside a chunk's text travel as JSON in the body, left empty without them. */
function responseOf (event: WorkerEvent): InferenceResponse {
  const message = { text: '', body: new Uint8Array(0), errorName: '', errorMessage: '' }
  switch (event.type) {
    case 'start': {
      const { type, ...rest } = event
      return { ...message, type: InferenceResponse.Type.START, body: json(rest) }
    }
    case 'chunk':
      return { ...message, type: InferenceResponse.Type.CHUNK, text: event.text, body: event.logprobs == null ? message.body : json({ logprobs: event.logprobs }) }
    case 'done':
      return { ...message, type: InferenceResponse.Type.DONE, body: json(event.result) }
  }
}
