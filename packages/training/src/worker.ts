/**
 * The worker's side of the rounds: it keeps one replica per job, loads a
 * checkpoint when the coordinator says to sync, applies each round's mean
 * update and computes gradient sums over the samples it is given. A node
 * runs one for the jobs it works on; an external worker process runs the
 * same, reading content through a node's HTTP API instead of the swarm.
 */
import { TextCodec } from '@node-daemon/runtime'
import { architectureOf } from './architecture.ts'
import { planOf, totalSteps } from './batches.ts'
import { readCheckpoint } from './checkpoint.ts'
import { readJson } from './content-files.ts'
import { parseDataset } from './dataset.ts'
import { bytesToFloats, StepResponse, stepFailure, stepResult } from './protocol.ts'
import { meanOfSlices, Replica } from './replica.ts'
import type { Architecture, Samples } from './architecture.ts'
import type { Checkpoint, CheckpointManifest } from './checkpoint.ts'
import type { StepRequest } from './protocol.ts'
import type { Content } from '@node-daemon/content'
import type { AbortOptions, Logger } from '@libp2p/interface'

/** Samples prepared for a job; shared by the jobs and checkpoints that use the same data. */
export interface Prepared {
  architecture: Architecture
  samples: Samples
}

export interface WorkerJob {
  replica: Replica
  prepared: Prepared
  /** Optimizer steps of the whole job. */
  totalSteps: number
  /** The gradient this worker answered its last round with: half of the next mean, when the coordinator sends its own gradient rather than the mean. */
  last?: { round: bigint, gradient: Float32Array<ArrayBuffer>, count: number }
}

export interface StepWorkerComponents {
  content: Pick<Content, 'readFile'>
  log: Logger
}

export interface StepWorkerInit {
  /** onnxruntime's intra-op threads for each replica's training graph; unset, its default. */
  threads?: number
}

export class StepWorker {
  readonly #c: StepWorkerComponents
  readonly #init: StepWorkerInit
  readonly #working = new Map<number, WorkerJob>()
  readonly #prepared = new Map<string, Promise<Prepared>>()

  constructor (components: StepWorkerComponents, init: StepWorkerInit = {}) {
    this.#c = components
    this.#init = init
  }

  /** How far the replica of a job has come, if this worker holds one. */
  progress (jobId: number): { step: number, totalSteps: number, learningRate: number } | undefined {
    const work = this.#working.get(jobId)
    return work == null ? undefined : { step: work.replica.version, totalSteps: work.totalSteps, learningRate: work.replica.learningRate }
  }

  /** One step of a job for its coordinator; failures are answered, not thrown. */
  async answer (request: StepRequest, signal: AbortSignal): Promise<StepResponse> {
    const jobId = Number(request.jobId)
    try {
      let work = this.#working.get(jobId)
      if (request.syncCid !== '') {
        await work?.replica.release()
        this.#working.delete(jobId)
        work = await this.replicaOf(await readCheckpoint(this.#c.content, request.syncCid, undefined, { signal }), signal)
        this.#working.set(jobId, work)
      } else if (work != null && request.update.byteLength > 0) {
        const update = bytesToFloats(request.update)
        if (request.peerCount > 0) {
          // A round of two: the mean of the coordinator's gradient and this worker's, in rank order, made as the coordinator makes it.
          const own = work.last
          if (own == null || own.round !== request.round - 1n || own.gradient.length !== update.length) return stepFailure(request.round, StepResponse.Status.OUT_OF_SYNC)
          const peer = { gradient: update, count: request.peerCount }
          // Into the request's buffer: this worker's own may still be on its way to the coordinator.
          meanOfSlices(request.peerFirst ? [peer, own] : [own, peer], update)
        }
        await work.replica.apply(update, signal)
      }
      if (work == null || work.replica.version !== Number(request.version)) return stepFailure(request.round, StepResponse.Status.OUT_OF_SYNC)
      const result = await work.replica.compute(work.prepared.samples, request.samples, signal)
      work.last = { round: request.round, gradient: result.gradient, count: result.count }
      return stepResult(request.round, result)
    } catch (err: any) {
      this.#c.log('step %d of job %d failed - %e', Number(request.round), jobId, err)
      return stepFailure(request.round, StepResponse.Status.ERROR, { name: err.name ?? 'Error', message: err.message ?? String(err) })
    }
  }

  /** A replica of a checkpoint, over the samples of its job. */
  async replicaOf (checkpoint: Checkpoint, signal: AbortSignal): Promise<WorkerJob> {
    const prepared = await this.prepare(checkpoint.manifest, { signal })
    const total = totalSteps(planOf(checkpoint.manifest.spec, prepared.samples.count))
    return { replica: new Replica(prepared.architecture, checkpoint.manifest.spec, total, checkpoint.state, { threads: this.#init.threads }), prepared, totalSteps: total }
  }

  /** Tokenized or decoded samples of a dataset for a model; cached, since every checkpoint of a job shares them. */
  async prepare (m: Pick<CheckpointManifest, 'config' | 'baseModelCID' | 'datasetCID' | 'spec'>, options: AbortOptions): Promise<Prepared> {
    const key = `${m.datasetCID}:${m.baseModelCID}:${m.spec.sequenceLength ?? ''}`
    let prepared = this.#prepared.get(key)
    if (prepared == null) {
      prepared = (async () => {
        const architecture = architectureOf(m.config, { sequenceLength: m.spec.sequenceLength })
        const dataset = parseDataset(await this.#c.content.readFile(m.datasetCID, options))
        let encode: ((text: string) => number[]) | undefined
        if (dataset.format === 'text') {
          const tokenizer = await readJson(this.#c.content, `${m.baseModelCID}/tokenizer.json`, options)
          const tokenizerConfig = await readJson(this.#c.content, `${m.baseModelCID}/tokenizer_config.json`, options)
          const codec = new TextCodec(tokenizer, tokenizerConfig)
          encode = text => codec.encode(text)
        }
        return { architecture, samples: architecture.samples(dataset, encode) }
      })()
      this.#prepared.set(key, prepared)
      prepared.catch(() => this.#prepared.delete(key))
    }
    return prepared
  }

  /** Lets a job's replica go, when the job ended or moved on without this worker. */
  async forget (jobId: number): Promise<void> {
    const work = this.#working.get(jobId)
    this.#working.delete(jobId)
    await work?.replica.release()
  }

  async release (): Promise<void> {
    const jobs = [...this.#working.values()]
    this.#working.clear()
    this.#prepared.clear()
    await Promise.all(jobs.map(async w => w.replica.release()))
  }
}
