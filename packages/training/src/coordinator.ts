/**
 * The rounds of one training job, on the node that coordinates it. Each
 * step's global batch is split over the workers in rank order; the
 * coordinator computes its own slice while the others compute theirs,
 * averages the gradients it gets back by their samples, and applies the mean. The mean goes out with
 * the next step's request, so a round costs one message each way, and
 * that request is sent as soon as the mean is ready, before the
 * coordinator's own optimizer step: the workers' steps are made meanwhile,
 * not one after the other. A worker
 * that fails or misses the deadline is dropped and its slice skipped, as
 * hivemind does; at the next checkpoint it is brought back with the
 * checkpoint's CID, as is a worker that joins. A pause or stop asked for
 * mid-round cuts the steps still out short, so that it takes effect within
 * the step whatever a worker does; their workers come back from the
 * checkpoint the pause makes.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Batches, planOf, split, totalSteps } from './batches.ts'
import { writeCheckpoint } from './checkpoint.ts'
import { floatBytes, sliceOf, StepResponse } from './protocol.ts'
import { meanOfSlices } from './replica.ts'
import type { Architecture, Samples } from './architecture.ts'
import type { CheckpointManifest } from './checkpoint.ts'
import type { StepRequest, WorkerChannel } from './protocol.ts'
import type { Replica, SliceResult } from './replica.ts'
import type { Cluster, JobRecord, TrainingProgress, TrainingWorker } from '@node-daemon/cluster'
import type { Content } from '@node-daemon/content'
import type { Logger } from '@libp2p/interface'

/** Per-step figures, streamed as events. */
export interface StepMetrics extends TrainingProgress {
  jobId: number
  /** Workers whose gradients made this step. */
  workers: number
  /** Milliseconds of the step beyond the coordinator's own compute until the mean gradient was ready: waiting for the other workers and summing theirs. */
  exchangeMs: number
  stepMs: number
}

export interface CoordinatorComponents {
  cluster: Pick<Cluster, 'changeTraining' | 'job' | 'pinAdd' | 'pinRm' | 'nodes' | 'addEventListener' | 'removeEventListener'>
  content: Pick<Content, 'addDirectory'>
  log: Logger
  self: string
  /** A channel to a worker: a node, or an external worker through the node it is connected to. */
  open: (worker: TrainingWorker, signal: AbortSignal) => Promise<WorkerChannel>
  /** Called after every step. */
  onStep: (metrics: StepMetrics) => void
  /** Registers the trained model; returns its id and CID. */
  save: (jobId: number, checkpoint: string, signal: AbortSignal) => Promise<{ modelId: string, modelCID: string }>
}

export interface CoordinatorInit {
  job: JobRecord
  replica: Replica
  architecture: Architecture
  samples: Samples
  manifest: Omit<CheckpointManifest, 'step'>
  /** The checkpoint the replica was loaded from, which the workers sync to first. */
  checkpoint: string
  /** The first round may build training graphs; later ones are held to a multiple of the usual round time. */
  firstRoundTimeoutMs: number
  lagFactor: number
  minRoundTimeoutMs: number
  /** Copies of each checkpoint in the cluster, as many as there are nodes up to this. */
  replication: number
}

interface Member {
  worker: TrainingWorker
  channel?: WorkerChannel
  /** The checkpoint it must load before its next step, if it has not got the replica's state. */
  sync?: string
  /** Slice sizes it has built training graphs for: a new size builds one, which the usual deadline does not allow for. */
  sizes: Set<number>
  /** It applied the last update already, with a step sent ahead that its round did not use: its next request goes without. */
  current?: boolean
}

/**
 * The next round's steps, sent with the mean before the coordinator's own
 * optimizer step. The round uses them when it has the same workers; else
 * their answers are waited for and dropped.
 */
interface Ahead {
  step: number
  /** The workers of the round they were sent for, in rank order. */
  ids: string[]
  results: Map<Member, Promise<SliceResult | undefined>>
  /** Aborted as the round they are for is: on a pause or stop asked for then. */
  control: AbortController
  /** Sent with the coordinator's own gradient, not the mean (#sendPeer). */
  peer?: boolean
}

/** Checkpoints kept pinned; older ones are unpinned once a newer one is recorded. */
const KEEP_CHECKPOINTS = 2
/** The job record's progress is written at most this often between checkpoints, to keep the log small. */
const PROGRESS_EVERY_MS = 1000

export class Coordinator {
  readonly #c: CoordinatorComponents
  readonly #init: CoordinatorInit
  readonly #members: Member[]
  readonly #batches: Batches
  readonly #total: number
  #checkpoint: string
  readonly #pinned: string[] = []
  #roundMs: number[] = []
  #update: Uint8Array<ArrayBuffer> = new Uint8Array(0)
  #ahead?: Ahead
  #lastReport = 0

  constructor (components: CoordinatorComponents, init: CoordinatorInit) {
    this.#c = components
    this.#init = init
    const training = init.job.training
    if (training == null) throw new Error(`job ${init.job.jobId} is not a training job`)
    // Every worker starts (or restarts) from the checkpoint; the coordinator has it loaded already.
    this.#members = training.workers.map(w => ({ worker: { ...w, status: w.status === 'left' ? 'left' : 'training' }, sync: w.id === components.self ? undefined : init.checkpoint, sizes: new Set() }))
    this.#checkpoint = init.checkpoint
    this.#batches = new Batches(planOf(init.manifest.spec, init.samples.count))
    this.#total = totalSteps(this.#batches.plan)
  }

  /** Runs the job to its end, a stop, or the signal; records each outcome in the job table. */
  async run (signal: AbortSignal): Promise<void> {
    const { replica } = this.#init
    const jobId = this.#init.job.jobId
    try {
      while (replica.version < this.#total) {
        signal.throwIfAborted()
        const desired = await this.#desired(signal)
        if (desired === 'stop') {
          const checkpoint = await this.#saveCheckpoint(signal)
          await this.#c.cluster.changeTraining({ op: 'training.finish', jobId, status: 'stopped', checkpoint: { step: replica.version, cid: checkpoint } }, { signal })
          return
        }
        if (desired === 'pause') {
          await this.#pause(signal)
          continue
        }
        await this.#round(signal)
        if (replica.version % this.#init.manifest.spec.checkpointEvery === 0 && replica.version < this.#total) {
          await this.#saveCheckpoint(signal)
          await this.#readmit(signal)
          await this.#report('running', signal, this.#checkpoint)
        } else if (Date.now() - this.#lastReport > PROGRESS_EVERY_MS) {
          await this.#report('running', signal)
        }
      }
      const checkpoint = await this.#saveCheckpoint(signal)
      const saved = await this.#c.save(jobId, checkpoint, signal)
      await this.#c.cluster.changeTraining({ op: 'training.saved', jobId, modelId: saved.modelId }, { signal })
      await this.#report('running', signal)
      await this.#c.cluster.changeTraining({ op: 'training.finish', jobId, status: 'completed', checkpoint: { step: replica.version, cid: checkpoint }, responseCID: saved.modelCID }, { signal })
    } finally {
      for (const m of this.#members) m.channel?.close()
    }
  }

  async #desired (signal: AbortSignal): Promise<string> {
    const job = await this.#c.cluster.job(this.#init.job.jobId, { signal, local: true })
    return job.training?.desired ?? 'run'
  }

  async #pause (signal: AbortSignal): Promise<void> {
    // Workers whose step the pause cut short come back from a checkpoint of where the job stands.
    const resync = this.#members.some(m => m.worker.status === 'dropped')
    if (resync) {
      await this.#saveCheckpoint(signal)
      await this.#readmit(signal)
    }
    await this.#report('paused', signal, resync ? this.#checkpoint : undefined)
    while (await this.#desired(signal) === 'pause') {
      // The node's stop must end a paused job's wait, or its process never exits.
      await sleep(200, undefined, { signal })
    }
    // Resumed: the job table says so now, not after the next round, which a slow worker may hold up.
    if (await this.#desired(signal) === 'run') await this.#report('running', signal)
  }

  #progress (): TrainingProgress & { samplesPerSecond: number } {
    return this.#last ?? { step: this.#init.replica.version, totalSteps: this.#total, epoch: 0, totalEpochs: this.#init.manifest.spec.epochs, loss: 0, samplesPerSecond: 0, learningRate: this.#init.replica.learningRate }
  }

  #last?: TrainingProgress

  async #report (status: 'running' | 'paused', signal: AbortSignal, checkpoint?: string): Promise<void> {
    this.#lastReport = Date.now()
    // Progress is advisory: a write the cluster could not decide in time (a busy or re-electing leader) is made good by the next one.
    await this.#c.cluster.changeTraining({
      op: 'training.progress',
      jobId: this.#init.job.jobId,
      status,
      workers: this.#members.map(m => m.worker),
      progress: this.#progress(),
      checkpoint: checkpoint == null ? undefined : { step: this.#init.replica.version, cid: checkpoint }
    }, { signal }).catch((err: Error) => {
      if (signal.aborted) throw err
      this.#c.log('reporting the progress of job %d failed - %s', this.#init.job.jobId, err.message)
    })
  }

  /**
   * The deadline of a round: generous at first, then a multiple of the median
   * round, in whole ms, since timers take no fractions and rounds are measured
   * in them.
   */
  #deadline (): number {
    if (this.#roundMs.length === 0) return this.#init.firstRoundTimeoutMs
    const sorted = [...this.#roundMs].sort((a, b) => a - b)
    return Math.ceil(Math.max(this.#init.minRoundTimeoutMs, this.#init.lagFactor * sorted[Math.floor(sorted.length / 2)]))
  }

  /** A signal that aborts once the job is asked to pause or stop: the round stops waiting for workers then. */
  #controlled (): { signal: AbortSignal, stop: () => void } {
    const controller = new AbortController()
    const jobId = this.#init.job.jobId
    const check = (): void => {
      this.#c.cluster.job(jobId, { local: true }).then(job => {
        const desired = job.training?.desired ?? 'run'
        if (desired !== 'run') controller.abort(new Error(`the job was asked to ${desired}`))
      }, () => {})
    }
    const listener = (e: CustomEvent<{ jobId: number }>): void => { if (e.detail.jobId === jobId) check() }
    this.#c.cluster.addEventListener('TrainingUpdated', listener)
    // A control decided since the loop last read the job fired no event this listener heard.
    check()
    return { signal: controller.signal, stop: () => { this.#c.cluster.removeEventListener('TrainingUpdated', listener) } }
  }

  async #round (signal: AbortSignal): Promise<void> {
    const control = this.#controlled()
    try {
      await this.#roundUntil(signal, control.signal)
    } finally {
      control.stop()
    }
  }

  async #roundUntil (signal: AbortSignal, control: AbortSignal): Promise<void> {
    const { replica, samples } = this.#init
    const t0 = performance.now()
    const step = replica.version
    const active = this.#members.filter(m => m.worker.status === 'training')
    const slices = split(this.#batches.batch(step), active.length)
    const sent = await this.#takeAhead(step, active, control)
    let ownMs = 0
    let own: SliceResult | undefined
    const results = await Promise.all(active.map(async (m, i): Promise<SliceResult | undefined> => {
      if (m.worker.id === this.#c.self) {
        try {
          own = await replica.compute(samples, slices[i], AbortSignal.any([signal, control]))
          this.#sendPeer(step + 1, own, active, signal, control)
          return own
        } catch (err) {
          // Its own step is cut short like the others', its slice skipped; the replica's weights are as they were.
          if (signal.aborted || !control.aborted) throw err
          return undefined
        } finally {
          ownMs = performance.now() - t0
        }
      }
      return await (sent?.get(m) ?? this.#step(m, step, slices[i], signal, control))
    }))
    signal.throwIfAborted()
    const answered = results.filter(r => r != null)
    const count = answered.reduce((n, r) => n + r.count, 0)
    if (count === 0) return
    // The coordinator's own gradient may still be on its way to the other node (#sendPeer): the mean goes into the other's.
    const mean = meanOfSlices(answered, this.#ahead?.peer === true ? answered.find(r => r !== own)?.gradient : undefined)
    const lossSum = answered.reduce((n, r) => n + r.lossSum, 0)
    const correct = answered.reduce((n, r) => n + r.correct, 0)
    const labels = answered.reduce((n, r) => n + r.labels, 0)
    const exchangeMs = Math.max(0, performance.now() - t0 - ownMs)
    this.#update = floatBytes(mean)
    // The round after a checkpoint may take workers in or back, and its slices are then others.
    const next = step + 1
    if (this.#ahead == null && next < this.#total && next % this.#init.manifest.spec.checkpointEvery !== 0 && !control.aborted) this.#sendAhead(next, signal)
    const { learningRate } = await replica.apply(mean, signal)
    const stepMs = performance.now() - t0
    this.#roundMs.push(stepMs)
    if (this.#roundMs.length > 20) this.#roundMs.shift()
    const spec = this.#init.manifest.spec
    this.#last = {
      step: replica.version,
      totalSteps: this.#total,
      epoch: this.#batches.epochOf(step) + 1,
      totalEpochs: spec.epochs,
      loss: lossSum / count,
      ...(labels > 0 ? { accuracy: correct / labels } : {}),
      samplesPerSecond: count / (stepMs / 1000),
      learningRate
    }
    this.#c.onStep({ ...this.#last, jobId: this.#init.job.jobId, workers: answered.length, exchangeMs, stepMs })
  }

  /**
   * One worker's step of a round: its answer, or undefined when it failed or
   * was cut short, and it is then dropped. With `peer`, the request carries
   * the coordinator's own gradient of the round before instead of the mean.
   */
  async #step (m: Member, step: number, slice: ArrayLike<number>, signal: AbortSignal, control: AbortSignal, peer?: SliceResult & { first: boolean }): Promise<SliceResult | undefined> {
    const { replica } = this.#init
    const fresh = m.sync != null || !m.sizes.has(slice.length)
    const deadline = AbortSignal.any([signal, control, AbortSignal.timeout(fresh ? this.#init.firstRoundTimeoutMs : this.#deadline())])
    try {
      m.channel ??= await this.#c.open(m.worker, deadline)
      const update = peer != null ? floatBytes(peer.gradient) : m.sync == null && m.current !== true ? this.#update : new Uint8Array(0)
      m.current = false
      const request: StepRequest = { jobId: BigInt(this.#init.job.jobId), round: BigInt(step), syncCid: m.sync ?? '', update, version: BigInt(step), samples: Array.from(slice), client: '', peerCount: peer?.count ?? 0, peerFirst: peer?.first ?? false }
      const response = await m.channel.step(request, deadline)
      if (response.status !== StepResponse.Status.OK) throw new Error(response.status === StepResponse.Status.OUT_OF_SYNC ? 'out of sync' : `${response.errorName}: ${response.errorMessage}`)
      // A late answer to a step given up on must not pass for this one.
      if (response.round !== request.round || response.count !== slice.length) throw new Error(`an answer to round ${response.round} of ${response.count} samples in round ${step} of ${slice.length}`)
      if (response.gradient.byteLength !== replica.size * 4) throw new Error(`a gradient of ${response.gradient.byteLength} bytes for ${replica.size} parameters`)
      m.sync = undefined
      m.sizes.add(slice.length)
      return sliceOf(response)
    } catch (err: any) {
      if (signal.aborted) throw err
      m.channel?.close()
      m.channel = undefined
      m.worker.status = 'dropped'
      if (control.aborted) {
        // No failure of the worker's: its step may have applied the last update, so it syncs again all the same.
        this.#c.log('cutting the step of worker %s in job %d short at step %d - %s', m.worker.id, this.#init.job.jobId, step, control.reason.message)
        return undefined
      }
      this.#c.log('dropping worker %s from job %d at step %d - %s', m.worker.id, this.#init.job.jobId, step, err.message)
      m.worker.error = `step ${step}: ${String(err.message)}`
      m.worker.drops = (m.worker.drops ?? 0) + 1
      return undefined
    }
  }

  /**
   * In a round of two nodes, sends the other its step of the round after
   * this one as soon as the coordinator's own gradient is made, with that
   * gradient rather than the mean: the other makes the mean itself, of the
   * two in rank order as the coordinator does, so that its gradient and the
   * coordinator's cross at once, each way, as an all-reduce's do, where the
   * mean went out only once the other's gradient had come in. If the other
   * fails this round, it is dropped, and syncs again before it rejoins.
   */
  #sendPeer (step: number, own: SliceResult, active: Member[], signal: AbortSignal, control: AbortSignal): void {
    const other = active.find(m => m.worker.id !== this.#c.self)
    if (active.length !== 2 || other == null || other.worker.via != null || other.sync != null || other.current === true || own.count === 0) return
    if (step >= this.#total || step % this.#init.manifest.spec.checkpointEvery === 0 || control.aborted) return
    const slices = split(this.#batches.batch(step), 2)
    const index = active.indexOf(other)
    const ahead = new AbortController()
    const results = new Map([[other, this.#step(other, step, slices[index], signal, ahead.signal, { ...own, first: index === 1 }).catch(() => undefined)]])
    this.#ahead = { step, ids: active.map(m => m.worker.id), results, control: ahead, peer: true }
  }

  /** Sends the workers their steps of the round after this one, with the mean just made. */
  #sendAhead (step: number, signal: AbortSignal): void {
    const active = this.#members.filter(m => m.worker.status === 'training')
    const slices = split(this.#batches.batch(step), active.length)
    const control = new AbortController()
    const results = new Map<Member, Promise<SliceResult | undefined>>()
    active.forEach((m, i) => {
      // A job stopped meanwhile leaves these unread: the job's own abort is seen where the run is.
      if (m.worker.id !== this.#c.self) results.set(m, this.#step(m, step, slices[i], signal, control.signal).catch(() => undefined))
    })
    this.#ahead = { step, ids: active.map(m => m.worker.id), results, control }
  }

  /**
   * The steps sent ahead for this round, which its control cuts short from
   * now on, if they went to its workers. Otherwise their answers are waited
   * for, and the workers that answered have applied the update.
   */
  async #takeAhead (step: number, active: Member[], control: AbortSignal): Promise<Map<Member, Promise<SliceResult | undefined>> | undefined> {
    const ahead = this.#ahead
    this.#ahead = undefined
    if (ahead == null) return undefined
    const cut = (): void => { ahead.control.abort(control.reason) }
    if (control.aborted) cut()
    else control.addEventListener('abort', cut, { once: true })
    if (ahead.step === step && ahead.ids.join() === active.map(m => m.worker.id).join()) return ahead.results
    for (const [m, result] of ahead.results) {
      if (await result != null) m.current = true
    }
    return undefined
  }

  /**
   * At the checkpoint just made: external workers that joined since come in,
   * those that left go, and dropped workers that are online (or whose node
   * is) rejoin. All of them load the checkpoint first.
   */
  async #readmit (signal: AbortSignal): Promise<void> {
    const job = await this.#c.cluster.job(this.#init.job.jobId, { signal, local: true })
    for (const recorded of job.training?.workers ?? []) {
      if (recorded.status !== 'joining' && recorded.status !== 'left') continue
      let m = this.#members.find(m => m.worker.id === recorded.id)
      if (m == null) {
        m = { worker: { ...recorded }, sizes: new Set() }
        this.#members.push(m)
      }
      m.worker = { ...recorded, status: recorded.status === 'joining' ? 'dropped' : 'left', ...(m.worker.drops == null ? {} : { drops: m.worker.drops }) }
      m.channel?.close()
      m.channel = undefined
    }
    this.#members.sort((a, b) => a.worker.rank - b.worker.rank)
    if (this.#members.every(m => m.worker.status !== 'dropped')) return
    const online = new Set((await this.#c.cluster.nodes({ signal, local: true })).filter(n => n.online).map(n => n.id))
    for (const m of this.#members) {
      if (m.worker.status !== 'dropped' || !online.has(m.worker.via ?? m.worker.id)) continue
      m.worker.status = 'training'
      m.sync = this.#checkpoint
      m.sizes.clear()
    }
  }

  async #saveCheckpoint (signal: AbortSignal): Promise<string> {
    const { replica, architecture, manifest } = this.#init
    const cid = await writeCheckpoint(this.#c.content, { ...manifest, step: replica.version }, await replica.state(signal), architecture.parameters, { signal })
    if (cid !== this.#checkpoint || this.#pinned.length === 0) {
      await this.#c.cluster.pinAdd(cid, { name: `training job ${this.#init.job.jobId} step ${replica.version}`, replicationFactorMin: 1, replicationFactorMax: this.#init.replication, signal })
      this.#pinned.push(cid)
      while (this.#pinned.length > KEEP_CHECKPOINTS) {
        const old = this.#pinned.shift() as string
        await this.#c.cluster.pinRm(old, { signal }).catch((err: Error) => { this.#c.log('unpinning checkpoint %s failed - %s', old, err.message) })
      }
    }
    this.#checkpoint = cid
    return cid
  }
}
