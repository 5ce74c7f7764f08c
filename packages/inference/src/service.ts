/**
 * The inference service: every API family's generate, chat, completion and
 * task is one job here. The node that takes the request (the controller)
 * stores the prompt as content, records the job through Raft, and sends it to
 * the best worker (itself first when it holds the model); the worker takes
 * the job, runs it with its runtime, stores the response and completes the
 * job. A worker that dies mid-job is replaced by the next candidate, which
 * replays the same seed, so the client sees one uninterrupted stream. A job
 * whose client goes away is cancelled, and so is one whose controller died:
 * no one waits for its result.
 */
import * as clusterErrors from '@node-daemon/cluster'
import { setTimeout as sleep } from 'node:timers/promises'
import drain from 'it-drain'
import first from 'it-first'
import { raceSignal } from 'race-signal'
import { taskIdOf } from '@node-daemon/cluster'
import * as runtimeErrors from '@node-daemon/runtime'
import { DEFAULT_SAMPLING, InvalidInferenceRequestError, UnsupportedModelError, validateSampling } from '@node-daemon/runtime'
import { checkSchema } from '@node-daemon/grammar'
import { rankWorkers } from '@node-daemon/scheduler'
import * as errors from './errors.ts'
import { ModelLibrary } from './library.ts'
import { estimateTask } from './throughput.ts'
import { parseModelfile } from './modelfile.ts'
import { InferenceProtocol, reportedByWorker } from './protocol.ts'
import type { EmbedInput, EmbedParams, EmbedResult, RerankParams, RerankResult, GenerateOptions, GenerateParams, GenerateStats, ImportParams, Inference, InferenceEvent, LoadedModelView, ModelDetails, ModelSummary, Placement, ProgressEvent, PromptInput, StoredResponse, TaskEvent, TaskParams, TaskStatus, TaskView, TokenLogprob, TokenLogprobs } from './interface.ts'
import type { ResolvedModel } from './library.ts'
import type { ErrorClasses, Job, WorkerEvent } from './protocol.ts'
import type { AbortOptions, Libp2p, Logger } from '@libp2p/interface'
import type { Cluster, JobRecord, JobStatus } from '@node-daemon/cluster'
import type { Content } from '@node-daemon/content'
import type { InputType, ModelRef, OutputOptions, Runtime, SamplingOptions, TextCodec } from '@node-daemon/runtime'

export interface InferenceComponents {
  content: Content
  cluster: Cluster
  runtime: Runtime
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dial'>
  peerId: string
  log: Logger
}

export interface InferenceInit {
  /** Where models are unpacked for onnxruntime. */
  modelsDir: string
  /** Copies of a registered model in the cluster; default 3. */
  replicationFactor?: number
  /** The longest one job may run; default 30 minutes. */
  jobTimeoutMs?: number
}

/** Error classes a remote worker's errors are raised as again. */
const ERROR_CLASSES: ErrorClasses = Object.fromEntries(
  ([...Object.values(clusterErrors), ...Object.values(runtimeErrors), ...Object.values(errors)] as unknown[])
    .filter((E): E is new (message: string) => Error => typeof E === 'function' && E.prototype instanceof Error)
    .map(E => [E.name, E]))

// Inference jobs are never paused or stopped; training jobs are, and the task views show them too.
const STATUS: Record<JobStatus, TaskStatus> = { requested: 'pending', running: 'running', paused: 'pending', completed: 'completed', failed: 'failed', cancelled: 'failed', stopped: 'failed' }
const now = (): number => Number(process.hrtime.bigint())
/** How long a task's view waits for its prompt or response text before it leaves it out. */
const TEXT_READ_TIMEOUT_MS = 5000
/** The cluster pin name of OpenAI's stored responses, which tells them from other content. */
const RESPONSE_PIN = 'openai-response:'
/** Tries to record that a job ended, and the first wait between them, doubled each time. */
const END_ATTEMPTS = 5
const END_RETRY_MS = 200
/** Workers a job is tried on before it fails with NoWorkerError. */
const MAX_ATTEMPTS = 8
/** A worker's completed jobs read for a task's estimate: of every model, of which the latest of the task's are measured. */
const THROUGHPUT_JOBS = 500

interface Prepared {
  model: ResolvedModel
  input: PromptInput
  options: GenerateOptions & { seed: number }
  output: OutputOptions
  keepAliveMs?: number
  logprobs?: number
  echo?: boolean
  /**
   * Resolves once the job is recorded; the generation does not wait for it.
   * Once proposed, it is awaited whatever the client does, so that a client
   * that goes away meanwhile still has its job ended.
   */
  job: Promise<JobRecord>
  startNs: number
}

export class InferenceService implements Inference {
  readonly #c: InferenceComponents
  readonly library: ModelLibrary
  readonly #protocol: InferenceProtocol
  readonly #jobTimeoutMs: number
  /** Background tasks, so that stop() can end them. */
  readonly #tasks = new Set<AbortController>()
  /** Writes recording a job's end or its response, so that stop() lets them reach the log. */
  readonly #ending = new Set<Promise<void>>()
  /** Aborts only when the service stops: the writes that record a job and its end outlive the request. */
  #lifetime = new AbortController()
  #placement: Placement = { mode: 'distributed', fallback: true }
  /** Jobs this node controls were submitted since; older ones it controlled lost their clients when it restarted. */
  #startedAt = Date.now()

  constructor (components: InferenceComponents, init: InferenceInit) {
    this.#c = components
    this.#jobTimeoutMs = init.jobTimeoutMs ?? 30 * 60_000
    this.library = new ModelLibrary(components, { dir: init.modelsDir, replicationFactor: init.replicationFactor })
    this.#protocol = new InferenceProtocol(components, {
      handler: (from, job, signal) => this.#serve(job, signal),
      allow: peer => this.#isMember(peer),
      jobTimeoutMs: this.#jobTimeoutMs
    })
  }

  async start (): Promise<void> {
    if (this.#lifetime.signal.aborted) this.#lifetime = new AbortController()
    this.#startedAt = Date.now()
    await this.library.start()
    await this.#protocol.start()
    this.#c.cluster.addEventListener('NodeStatus', this.#onNodeStatus)
    void this.#reapWhenReady()
  }

  async stop (): Promise<void> {
    this.#c.cluster.removeEventListener('NodeStatus', this.#onNodeStatus)
    for (const task of this.#tasks) task.abort(new Error('the daemon is stopping'))
    await this.#protocol.stop()
    await Promise.allSettled([...this.#ending])
    this.#lifetime.abort(new Error('the daemon is stopping'))
    this.library.stop()
  }

  readonly #onNodeStatus = (): void => { void this.#reap() }

  /** Reaps once the node has applied what the cluster committed before it started: its own jobs from before a restart are there. */
  async #reapWhenReady (): Promise<void> {
    const signal = this.#lifetime.signal
    try {
      while (!this.#c.cluster.status().ready) await sleep(200, undefined, { signal })
      await this.#reap()
    } catch {
      // The service stopped first.
    }
  }

  /**
   * Cancels the open inference jobs whose controller is gone, with the
   * client it streamed to: those this node controlled before it restarted,
   * and, on the leader alone, those of a node the cluster marked offline.
   */
  async #reap (): Promise<void> {
    const self = this.#c.peerId
    try {
      const leading = this.#c.cluster.status().leader === self
      const offline = new Set(leading ? (await this.#c.cluster.nodes({ local: true })).filter(n => !n.online).map(n => n.id) : [])
      const open = await this.#c.cluster.jobs({ status: ['requested', 'running'], limit: Infinity }, { local: true })
      for (const job of open) {
        if (job.kind !== 'inference') continue
        if (job.controller === self && Date.parse(job.submittedAt) < this.#startedAt) this.#end(Promise.resolve(job), 'cancelled', 'its node restarted')
        else if (offline.has(job.controller)) this.#end(Promise.resolve(job), 'cancelled', 'its node went offline')
      }
    } catch (err: any) {
      if (!this.#lifetime.signal.aborted) this.#c.log('reaping the jobs of nodes that went away failed - %e', err)
    }
  }

  placement (): Placement {
    return { ...this.#placement }
  }

  setPlacement (change: Partial<Placement>): Placement {
    this.#placement = { ...this.#placement, ...change }
    return this.placement()
  }

  #isMember (peer: string): boolean {
    const { voters, learners } = this.#c.cluster.status()
    return voters.includes(peer) || learners.includes(peer)
  }

  // ---- generation

  async * generate (params: GenerateParams, options: AbortOptions = {}): AsyncIterable<InferenceEvent> {
    const prepared = await this.#prepare(params, options)
    yield * this.#run(prepared, options.signal)
  }

  async #prepare (params: GenerateParams, options: AbortOptions): Promise<Prepared> {
    const startNs = now()
    const model = await this.library.resolve(params.model, options)
    if (model.profile != null && model.profile.kind !== 'causal-lm') throw new UnsupportedModelError(`"${params.model}" does not support generate`)
    const profile = model.profile
    const merged = { ...profile?.options, ...definedOnly(params.options ?? {}) }
    // A fixed seed lets a replacement worker replay what the first one streamed.
    const seed = merged.seed ?? Math.floor(Math.random() * 2 ** 31)
    const opts = { ...merged, seed }
    validateSampling(sampling(opts))
    if (opts.num_predict != null && (!Number.isInteger(opts.num_predict) || opts.num_predict < -2)) throw new InvalidInferenceRequestError('num_predict: must be a whole number >= -2')
    if (opts.num_ctx != null && (!Number.isInteger(opts.num_ctx) || opts.num_ctx < 1)) throw new InvalidInferenceRequestError('num_ctx: must be a whole number >= 1')
    if (opts.num_keep != null && (!Number.isInteger(opts.num_keep) || opts.num_keep < -1)) throw new InvalidInferenceRequestError('num_keep: must be a whole number >= -1')
    const input = withProfile(params.input, profile?.template, profile?.system)
    if (input.messages == null && input.prompt == null && input.tokens == null) throw new InvalidInferenceRequestError('a prompt or messages are required')
    // A schema the grammar cannot compile is refused here, before a job exists.
    if (params.format?.type === 'json-schema') checkSchema(params.format.schema)
    for (const tool of input.tools ?? []) checkSchema(tool.parameters)
    const promptText = input.messages != null ? JSON.stringify(input.messages) : input.prompt ?? JSON.stringify(input.tokens)
    const job = this.#storeText(promptText, options).then(async promptCID => {
      // No job for a client gone already; once proposed, the record is awaited to its end, or the job could not be ended.
      options.signal?.throwIfAborted()
      return this.#c.cluster.submitJob({
        promptCID,
        modelCID: model.cid,
        modelId: model.record?.modelId,
        params: { options: opts, chat: input.messages != null }
      }, { signal: this.#lifetime.signal })
    })
    // Unobserved until the run awaits it; a failure then ends the stream.
    job.catch(() => {})
    const output = definedOnly({ format: params.format, toolChoice: params.toolChoice, parallelToolCalls: params.parallelToolCalls })
    return { model, input, options: opts, output, keepAliveMs: params.keepAliveMs, logprobs: params.logprobs, echo: params.echo, job, startNs }
  }

  /**
   * Streams the job from its worker and sees that it ends: completed by its
   * worker, failed with the error, or cancelled once no one waits for it. A
   * client's abort cancels it at once, whatever the stream is doing, and so
   * does a consumer that stops reading.
   */
  async * #run (p: Prepared, signal?: AbortSignal): AsyncIterable<InferenceEvent> {
    const job: Job = { kind: 'generate', jobId: 0, modelCid: p.model.cid, modelName: p.model.name, body: { dtype: p.model.profile?.dtype, input: p.input, options: p.options, output: p.output, keepAliveMs: p.keepAliveMs, logprobs: p.logprobs, echo: p.echo } }
    let streamed = ''
    let streamedLogprobs = 0
    let started = false
    let ended = false
    const end = (outcome: 'failed' | 'cancelled', reason: string): void => {
      if (ended) return
      ended = true
      this.#end(p.job, outcome, reason)
    }
    const onAbort = (): void => { end('cancelled', abortReason(signal)) }
    if (signal?.aborted === true) onAbort()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      yield * this.#failover(p.model, signal, async function * (this: InferenceService, worker: string, watched: AbortSignal): AsyncIterable<InferenceEvent> {
        let skip = streamed.length
        let skipLogprobs = streamedLogprobs
        const events = worker === this.#c.peerId
          ? this.#execute(job, p.job, signal)
          : this.#protocol.call(worker, { ...job, jobId: (await p.job).jobId }, ERROR_CLASSES, watched)
        for await (const event of events) {
          if (event.type === 'done') {
            // The worker completed the job before it said so.
            ended = true
            yield { type: 'done', stats: { ...event.result, promptCID: (await p.job).promptCID, totalNs: now() - p.startNs } }
            return
          }
          if (event.type === 'start') {
            if (!started) yield { type: 'start', modelCID: p.model.cid, ...(event.promptText != null ? { promptText: event.promptText } : {}) }
            started = true
            continue
          }
          // A replacement worker replays the same tokens: pass on only what is new.
          const text = skip > 0 ? event.text.slice(skip) : event.text
          skip = Math.max(0, skip - event.text.length)
          const logprobs = event.logprobs?.slice(skipLogprobs) ?? []
          skipLogprobs = Math.max(0, skipLogprobs - (event.logprobs?.length ?? 0))
          if (text === '' && logprobs.length === 0) continue
          streamed += text
          streamedLogprobs += logprobs.length
          yield { type: 'chunk', text, ...(logprobs.length > 0 ? { logprobs } : {}) }
        }
        throw new errors.InferenceProtocolError(`worker ${worker} ended the job without a result`)
      }.bind(this))
    } catch (err: any) {
      if (signal?.aborted !== true) end('failed', err.message ?? String(err))
      throw err
    } finally {
      signal?.removeEventListener('abort', onAbort)
      end('cancelled', 'the client stopped reading')
    }
  }

  /** Records in the background that a job ended without a result, once it is recorded; one that ended already stays as it is. */
  #end (recorded: Promise<Pick<JobRecord, 'jobId'>>, outcome: 'failed' | 'cancelled', reason: string): void {
    this.#record(recorded, `job %d ${outcome}`, async (jobId, options) => {
      await (outcome === 'cancelled' ? this.#c.cluster.cancelJob(jobId, reason, options) : this.#c.cluster.failJob(jobId, reason, options))
    })
  }

  /**
   * Stores a generation's response and completes its job in the background:
   * the client's done line goes out with the last token, as Ollama's and
   * llama-server's do, rather than after a block write and a Raft commit.
   */
  #complete (recorded: Promise<Pick<JobRecord, 'jobId'>>, started: Promise<unknown>, response: string, metrics: Record<string, number>): void {
    let responseCID: string | undefined
    this.#record(recorded, 'the response of job %d', async (jobId, options) => {
      await started
      responseCID ??= await this.#storeText(response, options)
      await this.#c.cluster.submitResponse(jobId, responseCID, { ...options, metrics })
    })
  }

  /** Runs a write about a job once it is recorded, until it lands: one refused while the cluster is busy or electing is tried again, since a job left open would wait for no one. stop() lets it finish. */
  #record (recorded: Promise<Pick<JobRecord, 'jobId'>>, what: string, write: (jobId: number, options: AbortOptions) => Promise<void>): void {
    const options = { signal: this.#lifetime.signal }
    const recording = recorded.then(async ({ jobId }) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await write(jobId, options)
          return
        } catch (err: any) {
          // Its worker completed it, or another path ended it first.
          if (err.name === clusterErrors.JobStateError.name || this.#lifetime.signal.aborted) return
          if (attempt === END_ATTEMPTS) {
            this.#c.log.error(`recording ${what} failed - %e`, jobId, err)
            return
          }
          await sleep(END_RETRY_MS * 2 ** (attempt - 1), undefined, options).catch(() => {})
        }
      }
    }, () => {
      // Never recorded: nothing to end.
    }).finally(() => { this.#ending.delete(recording) })
    this.#ending.add(recording)
  }

  /**
   * Runs `attempt` on the best worker for the model, and again on the next
   * when a remote worker fails in transit or goes offline; a worker's own
   * errors, this node's, and the client's abort are final. `attempt` gets a
   * signal that also aborts when the cluster marks the worker offline.
   */
  async * #failover<T> (model: ResolvedModel, signal: AbortSignal | undefined, attempt: (worker: string, watched: AbortSignal) => AsyncIterable<T>): AsyncIterable<T> {
    const failed = new Set<string>()
    let lastError: Error | undefined
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      // The weights are a lower bound of what loading takes; the worker checks the rest itself.
      const [worker] = await this.#candidates(model.cid, failed, model.profile?.size, signal)
      // No node takes work at all (every one drained or offline): the cluster as it is cannot run the job.
      if (worker == null && i === 0) throw new clusterErrors.InsufficientPeersError(`no node can run ${model.name}: every node is drained or offline`)
      if (worker == null) break
      const watch = this.#watch(worker, signal)
      try {
        yield * attempt(worker, watch.signal)
        return
      } catch (err: any) {
        // A node short of memory for the model is no reason to give up on the others.
        const elsewhere = err.name === runtimeErrors.InsufficientMemoryError.name
        if (signal?.aborted === true || (!elsewhere && (worker === this.#c.peerId || reportedByWorker(err)))) throw err
        this.#c.log('worker %s failed a job of %s, trying another - %e', worker, model.name, err)
        failed.add(worker)
        lastError = err
      } finally {
        watch.stop()
      }
    }
    throw new errors.NoWorkerError(`no node could run ${model.name}${lastError != null ? `: ${lastError.message}` : ''}`)
  }

  /**
   * A signal that also aborts when the cluster marks `worker` offline: a
   * machine that dies without closing its connections would otherwise hold
   * the job until the transport times out.
   */
  #watch (worker: string, signal?: AbortSignal): { signal: AbortSignal, stop: () => void } {
    const lost = new AbortController()
    const listener = (e: CustomEvent<{ id: string, online: boolean }>): void => {
      if (e.detail.id === worker && !e.detail.online) lost.abort(new errors.NoWorkerError(`worker ${worker} went offline`))
    }
    this.#c.cluster.addEventListener('NodeStatus', listener)
    return {
      signal: signal == null ? lost.signal : AbortSignal.any([signal, lost.signal]),
      stop: () => { this.#c.cluster.removeEventListener('NodeStatus', listener) }
    }
  }

  /** Workers for a model, best first: where its replicas are allocated, by load, and this node, which can pull it. */
  async #candidates (cid: string, exclude: Set<string>, needBytes: number | undefined, signal?: AbortSignal): Promise<string[]> {
    const [nodes, pin] = await Promise.all([
      this.#c.cluster.nodes({ local: true, signal }),
      this.#c.cluster.pin(cid, { local: true, signal }).catch(() => undefined)
    ])
    const holders = new Set(pin?.allocations ?? [])
    const loaded = new Set(this.#c.runtime.loaded().some(m => cidOfSession(m.key) === cid) ? [this.#c.peerId] : [])
    for (const id of loaded) holders.add(id)
    const { mode, fallback } = this.#placement
    const eligible = mode === 'local' ? nodes.filter(n => n.id === this.#c.peerId) : nodes
    return rankWorkers(eligible, { self: this.#c.peerId, holders, exclude, needBytes, loaded, fallback: mode === 'local' || fallback })
  }

  /** A job from another node. */
  async * #serve (job: Job, signal: AbortSignal): AsyncIterable<WorkerEvent> {
    if (job.kind !== 'generate') {
      yield { type: 'done', result: await this.#runHere(job, signal) }
      return
    }
    // The caller knows the prompt's CID and puts it in the stats it passes on.
    yield * this.#execute(job, Promise.resolve({ jobId: job.jobId, promptCID: '' }), signal)
  }

  /**
   * Runs a generation on this node: takes the job, streams the text, stores
   * the response as content and completes the job with the measured timings.
   */
  async * #execute (job: Job, recorded: Promise<Pick<JobRecord, 'jobId' | 'promptCID'>>, signal?: AbortSignal): AsyncIterable<WorkerEvent> {
    const { input, options, output, keepAliveMs, logprobs, echo } = job.body as { input: PromptInput, options: GenerateOptions & { seed: number }, output?: OutputOptions, keepAliveMs?: number, logprobs?: number, echo?: boolean }
    const dir = await this.library.unpack(job.modelCid, { signal })
    const started = recorded.then(async ({ jobId }) => this.#c.cluster.startJob(jobId, { signal }))
    started.catch(() => {})
    const { loadNs, events, prompt, codec } = await this.#c.runtime.generate(
      modelRef(job, dir),
      input,
      { sampling: sampling(options), maxTokens: options.num_predict ?? -1, stop: options.stop ?? [], logprobs, numCtx: options.num_ctx, numKeep: options.num_keep === -1 ? Infinity : options.num_keep, ...output },
      { keepAliveMs, signal }
    )
    yield { type: 'start', ...(echo === true ? { promptText: codec.decode(prompt) } : {}) }
    // Log-probabilities of tokens whose text is still held back go with the next text.
    let pending: TokenLogprobs[] = []
    for await (const event of events) {
      if (event.type === 'chunk') {
        const { chunk } = event
        if (chunk.logprob != null) pending.push({ ...tokenLogprob(codec, chunk.token, chunk.logprob), top: (chunk.top ?? []).map(t => tokenLogprob(codec, t.token, t.logprob)) })
        if (chunk.text === '') continue
        yield { type: 'chunk', text: chunk.text, ...(pending.length > 0 ? { logprobs: pending } : {}) }
        pending = []
        continue
      }
      if (pending.length > 0) yield { type: 'chunk', text: '', logprobs: pending }
      const s = event.stats
      const { jobId, promptCID } = await recorded
      // A response that called tools is kept whole: its text and its calls.
      this.#complete(recorded, started, s.toolCalls == null ? s.text : JSON.stringify({ content: s.text, tool_calls: s.toolCalls }), { promptTokens: s.promptTokens, evalTokens: s.tokens.length, loadNs, promptEvalNs: s.promptEvalNs, evalNs: s.evalNs })
      const result: Omit<GenerateStats, 'totalNs'> = {
        doneReason: s.doneReason,
        text: s.text,
        ...(s.toolCalls != null ? { toolCalls: s.toolCalls } : {}),
        promptTokens: s.promptTokens,
        cachedTokens: s.cachedTokens,
        evalTokens: s.tokens.length,
        loadNs,
        promptEvalNs: s.promptEvalNs,
        evalNs: s.evalNs,
        jobId,
        worker: this.#c.peerId,
        promptCID,
        context: [...prompt, ...s.tokens]
      }
      yield { type: 'done', result }
    }
  }

  async #storeText (text: string, options: AbortOptions): Promise<string> {
    let cid: string | undefined
    for await (const event of this.#c.content.addAll([{ content: new TextEncoder().encode(text) }], { signal: options.signal })) {
      if (event.type === 'entry') cid = event.cid.toString()
    }
    return cid as string
  }

  // ---- embeddings

  async embed (params: EmbedParams, options: AbortOptions = {}): Promise<EmbedResult> {
    const startNs = now()
    const model = await this.library.resolve(params.model, options)
    if (model.profile != null && model.profile.kind !== 'encoder') throw new UnsupportedModelError(`"${params.model}" does not support embeddings`)
    const job: Job = { kind: 'embed', jobId: 0, modelCid: model.cid, modelName: model.name, body: { dtype: model.profile?.dtype, input: params.input, truncate: params.truncate ?? true, dimensions: params.dimensions, inputType: params.inputType, keepAliveMs: params.keepAliveMs } }
    const result = await this.#oneResult<Omit<EmbedResult, 'totalNs'>>(model, job, options.signal)
    return { ...result, totalNs: now() - startNs }
  }

  async #embedHere (job: Job, signal?: AbortSignal): Promise<Omit<EmbedResult, 'totalNs'>> {
    const { input, truncate, dimensions, inputType, keepAliveMs } = job.body as { input: EmbedInput[], truncate: boolean, dimensions?: number, inputType?: InputType, keepAliveMs?: number }
    const dir = await this.library.unpack(job.modelCid, { signal })
    const out = await this.#c.runtime.embed(modelRef(job, dir), input, { truncate, dimensions, inputType, keepAliveMs, signal })
    return { model: job.modelName, embeddings: out.embeddings.map(e => Array.from(e)), promptTokens: out.promptTokens, loadNs: out.loadNs }
  }

  async rerank (params: RerankParams, options: AbortOptions = {}): Promise<RerankResult> {
    const startNs = now()
    if (params.topN != null && (!Number.isInteger(params.topN) || params.topN < 1)) throw new InvalidInferenceRequestError(`top_n: must be a whole number of at least 1, not ${params.topN}`)
    const model = await this.library.resolve(params.model, options)
    if (model.profile != null && model.profile.kind !== 'reranker') throw new UnsupportedModelError(`"${params.model}" does not support reranking`)
    const job: Job = { kind: 'rerank', jobId: 0, modelCid: model.cid, modelName: model.name, body: { dtype: model.profile?.dtype, query: params.query, documents: params.documents, truncate: params.truncate ?? true, keepAliveMs: params.keepAliveMs } }
    const { scores, ...rest } = await this.#oneResult<{ model: string, scores: number[], promptTokens: number, loadNs: number }>(model, job, options.signal)
    const results = scores.map((score, index) => ({ index, score })).sort((a, b) => b.score - a.score).slice(0, params.topN)
    return { ...rest, results, totalNs: now() - startNs }
  }

  async #rerankHere (job: Job, signal?: AbortSignal): Promise<{ model: string, scores: number[], promptTokens: number, loadNs: number }> {
    const { query, documents, truncate, keepAliveMs } = job.body as { query: string, documents: string[], truncate: boolean, keepAliveMs?: number }
    const dir = await this.library.unpack(job.modelCid, { signal })
    const out = await this.#c.runtime.rerank(modelRef(job, dir), query, documents, { truncate, keepAliveMs, signal })
    return { model: job.modelName, scores: out.scores, promptTokens: out.promptTokens, loadNs: out.loadNs }
  }

  /** A job that one result answers (embeddings, scores), run here or on a worker that holds the model, the next one if it fails. */
  async #oneResult<T> (model: ResolvedModel, job: Job, signal?: AbortSignal): Promise<T> {
    const results = this.#failover(model, signal, async function * (this: InferenceService, worker: string, watched: AbortSignal): AsyncIterable<T> {
      if (worker === this.#c.peerId) {
        yield await this.#runHere(job, signal) as T
        return
      }
      for await (const event of this.#protocol.call(worker, job, ERROR_CLASSES, watched)) if (event.type === 'done') yield event.result
      throw new errors.InferenceProtocolError(`worker ${worker} ended without a result`)
    }.bind(this))
    // The failover yields one result or throws.
    const result = await first(results)
    if (result == null) throw new errors.InferenceProtocolError(`no result from ${model.name}`)
    return result
  }

  async #runHere (job: Job, signal?: AbortSignal): Promise<unknown> {
    return job.kind === 'rerank' ? this.#rerankHere(job, signal) : this.#embedHere(job, signal)
  }

  // ---- the model library

  async models (options?: AbortOptions): Promise<ModelSummary[]> {
    return this.library.list(options)
  }

  async show (name: string, options?: AbortOptions): Promise<ModelDetails> {
    return this.library.details(name, options)
  }

  async load (name: string, options: AbortOptions & { keepAliveMs?: number } = {}): Promise<void> {
    const model = await this.library.resolve(name, options)
    if (options.keepAliveMs === 0) {
      await this.#c.runtime.unload(sessionKey(model.cid, model.profile?.dtype))
      return
    }
    const dir = await this.library.unpack(model.cid, options)
    const lease = await this.#c.runtime.acquire(modelRef({ modelCid: model.cid, modelName: model.name, body: { dtype: model.profile?.dtype } }, dir), options)
    lease.release()
  }

  loaded (): LoadedModelView[] {
    return this.#c.runtime.loaded().map(m => ({
      name: m.name,
      cid: cidOfSession(m.key),
      size: m.info.size,
      kind: m.info.kind,
      family: m.info.family,
      executionProvider: m.info.executionProvider,
      engine: m.info.engine,
      expiresAt: m.expiresAt,
      contextLength: m.info.contextLength,
      parameters: m.info.parameters,
      quantization: m.info.quantization
    }))
  }

  async * pull (name: string, options: AbortOptions = {}): AsyncIterable<ProgressEvent> {
    // Resolved before the first line, so that an unknown model is a 404 rather than an error line.
    const model = await this.library.resolve(name, options)
    // Every file is a layer, whose size the DAG tells up front; a CID outside the registry is checked here before it is fetched and pinned.
    const files = await this.library.files(model.cid, options)
    yield { status: 'pulling manifest' }
    yield * progress(async emit => {
      const reported = new Set<string>()
      await this.library.unpack(model.cid, {
        ...options,
        onProgress: event => {
          if (event.digest != null) reported.add(event.digest)
          emit(event)
        }
      })
      // A file already on this node is reported whole.
      for (const file of files) if (!reported.has(file.cid)) emit({ status: `pulling ${file.cid}`, digest: file.cid, total: file.size, completed: file.size })
      emit({ status: 'verifying sha256 digest' })
      await this.#c.content.pinAdd(model.cid, true, options)
      emit({ status: 'writing manifest' })
    })
    yield { status: 'success' }
  }

  async * push (name: string, options: AbortOptions = {}): AsyncIterable<ProgressEvent> {
    const model = await this.library.resolve(name, options)
    yield { status: 'retrieving manifest' }
    // Pushing to the cluster is replicating to every node; the pin trackers move the bytes.
    await this.#c.cluster.pinAdd(model.cid, { ...options, replicationFactor: -1, name: model.name })
    yield { status: `pushing ${model.cid}`, digest: model.cid }
    yield { status: 'success' }
  }

  async copy (source: string, destination: string, options?: AbortOptions): Promise<void> {
    await this.library.copy(source, destination, options)
  }

  async delete (name: string, options?: AbortOptions): Promise<void> {
    await this.library.delete(name, options)
  }

  async * create (name: string, modelfile: string, options: AbortOptions = {}): AsyncIterable<ProgressEvent> {
    const parsed = parseModelfile(modelfile)
    yield { status: 'parsing modelfile' }
    yield * progress(async emit => {
      await this.library.create(name, parsed, { ...options, onProgress: emit })
    })
    yield { status: 'success' }
  }

  async import (params: ImportParams, options?: AbortOptions): Promise<ModelSummary> {
    return this.library.import(params, options)
  }

  // ---- OpenAI's stored responses

  async saveResponse (id: string, record: StoredResponse, options: AbortOptions = {}): Promise<string> {
    const cid = await this.#storeText(JSON.stringify(record), options)
    await this.#c.cluster.pinAdd(cid, { ...options, name: `${RESPONSE_PIN}${id}` })
    return cid
  }

  async response (id: string, options: AbortOptions = {}): Promise<StoredResponse> {
    return JSON.parse(await this.library.readText(await this.#responseCid(id, options), options))
  }

  async deleteResponse (id: string, options: AbortOptions = {}): Promise<void> {
    await this.#c.cluster.pinRm(await this.#responseCid(id, options), options)
  }

  /** The pin of a stored response, found by its name: the id is known before the response's CID is. */
  async #responseCid (id: string, options: AbortOptions): Promise<string> {
    const name = `${RESPONSE_PIN}${id}`
    const pin = (await this.#c.cluster.pins(options)).find(p => p.name === name)
    if (pin == null) throw new errors.ResponseNotFoundError(`no stored response with id ${id}`)
    return pin.cid
  }

  // ---- document 001's tasks

  async submitTask (params: TaskParams, options: AbortOptions = {}): Promise<TaskView> {
    // The worker the scheduler would choose now: none is document 001's E002 at submission, not a task that fails later.
    const model = await this.library.resolve(params.model, options)
    // Document 001's E005 at submission: a prompt the model cannot take whole, where a generation would cut it silently.
    const context = model.profile?.contextLength ?? 0
    const tokens = context > 0 ? await this.library.tokenCount(model, params.prompt, options) : undefined
    if (tokens != null && tokens >= context) throw new runtimeErrors.ContextLengthError(`the prompt takes ${tokens} tokens, and ${model.name} takes ${context} with its answer`)
    const [worker] = await this.#candidates(model.cid, new Set(), model.profile?.size, options.signal)
    if (worker == null) throw new clusterErrors.InsufficientPeersError(`no node can run ${model.name}: every node is drained or offline`)
    const completed = await this.#c.cluster.jobs({ status: 'completed', worker, limit: THROUGHPUT_JOBS }, { local: true, signal: options.signal })
    const estimate = estimateTask(completed, worker, model.cid, params.maxTokens ?? model.profile?.options.num_predict)
    const prepared = await this.#prepare({
      model: params.model,
      input: { prompt: params.prompt },
      options: { num_predict: params.maxTokens, temperature: params.temperature }
    }, options)
    let job: JobRecord
    try {
      job = await raceSignal(prepared.job, options.signal)
    } catch (err) {
      // The request failed, or ran out of its time, before the job was recorded: it must not run afterwards.
      this.#end(prepared.job, 'cancelled', options.signal?.aborted === true ? abortReason(options.signal) : 'the submission failed')
      throw err
    }
    const controller = new AbortController()
    this.#tasks.add(controller)
    void (async () => {
      try {
        await drain(this.#run(prepared, AbortSignal.any([controller.signal, AbortSignal.timeout(this.#jobTimeoutMs)])))
      } catch (err: any) {
        this.#c.log('task %d failed - %e', job.jobId, err)
      } finally {
        this.#tasks.delete(controller)
      }
    })()
    return { ...await this.#taskView(job, params.prompt, options), estimate }
  }

  async task (job: JobRecord, options: AbortOptions = {}): Promise<TaskView> {
    if (job.kind !== 'inference') throw new clusterErrors.JobNotFoundError(`job ${job.jobId} is not an inference task`)
    return this.#taskView(job, undefined, options)
  }

  async #taskView (job: JobRecord, prompt: string | undefined, options: AbortOptions): Promise<TaskView> {
    // A prompt or response whose only copy died with its node would hold the view, and a list of views, for good: the CIDs stay.
    const signal = AbortSignal.any([...(options.signal == null ? [] : [options.signal]), AbortSignal.timeout(TEXT_READ_TIMEOUT_MS)])
    const read = async (cid: string): Promise<string> => this.library.readText(cid, { signal })
    const view: TaskView = {
      taskId: taskIdOf(job.jobId),
      jobId: job.jobId,
      status: STATUS[job.status],
      model: job.modelId !== '' ? job.modelId : job.modelCID,
      prompt: prompt ?? await read(job.promptCID).catch(() => undefined),
      promptCID: job.promptCID,
      timing: { submitted: job.submittedAt }
    }
    if (job.startedAt != null) view.timing.started = job.startedAt
    if (job.completedAt != null) {
      view.timing.completed = job.completedAt
      view.timing.totalTime = (Date.parse(job.completedAt) - Date.parse(job.submittedAt)) / 1000
    }
    if (job.worker != null) view.worker = job.worker
    if (job.error != null) view.error = job.error
    if (job.responseCID != null) {
      view.responseCID = job.responseCID
      view.response = await read(job.responseCID).catch(() => undefined)
    }
    return view
  }

  subscribe (listener: (event: TaskEvent) => void): () => void {
    const cluster = this.#c.cluster
    const safely = (work: () => Promise<TaskEvent | undefined>): void => {
      work().then(event => { if (event != null) listener(event) }, err => this.#c.log('task event dropped - %e', err))
    }
    const requested = (e: CustomEvent<{ jobId: number }>): void => safely(async () => {
      const view = await this.#taskView(await cluster.job(e.detail.jobId, { local: true }), undefined, {})
      return { type: 'task_submitted', data: { taskId: view.taskId, jobId: view.jobId, prompt: view.prompt ?? '', modelId: view.model } }
    })
    const completed = (e: CustomEvent<{ jobId: number }>): void => safely(async () => {
      const view = await this.#taskView(await cluster.job(e.detail.jobId, { local: true }), undefined, {})
      return { type: 'task_completed', data: { taskId: view.taskId, jobId: view.jobId, response: view.response ?? '', worker: view.worker ?? '', timing: { totalTime: view.timing.totalTime ?? 0 } } }
    })
    const failed = (e: CustomEvent<{ jobId: number, error: string }>): void => safely(async () => ({ type: 'task_failed', data: { taskId: taskIdOf(e.detail.jobId), jobId: e.detail.jobId, error: e.detail.error } }))
    cluster.addEventListener('InferenceRequested', requested)
    cluster.addEventListener('InferenceCompleted', completed)
    cluster.addEventListener('JobFailed', failed)
    return () => {
      cluster.removeEventListener('InferenceRequested', requested)
      cluster.removeEventListener('InferenceCompleted', completed)
      cluster.removeEventListener('JobFailed', failed)
    }
  }
}

export function createInference (components: InferenceComponents, init: InferenceInit): InferenceService {
  return new InferenceService(components, init)
}

/** Ollama's option names to the runtime's sampling, Ollama's defaults where unset. */
function sampling (o: GenerateOptions & { seed?: number }): SamplingOptions {
  return {
    temperature: o.temperature ?? DEFAULT_SAMPLING.temperature,
    topK: o.top_k ?? DEFAULT_SAMPLING.topK,
    topP: o.top_p ?? DEFAULT_SAMPLING.topP,
    repeatPenalty: o.repeat_penalty ?? DEFAULT_SAMPLING.repeatPenalty,
    repeatLastN: o.repeat_last_n ?? DEFAULT_SAMPLING.repeatLastN,
    seed: o.seed,
    presencePenalty: o.presence_penalty,
    frequencyPenalty: o.frequency_penalty,
    logitBias: o.logit_bias,
    minP: o.min_p,
    typicalP: o.typical_p,
    tfsZ: o.tfs_z,
    mirostat: o.mirostat,
    mirostatTau: o.mirostat_tau,
    mirostatEta: o.mirostat_eta
  }
}

const utf8 = new TextDecoder()

/** A token as the APIs show it; a log-probability of -Infinity (a banned token) as OpenAI's floor of -9999, which JSON can carry. */
function tokenLogprob (codec: TextCodec, id: number, logprob: number): TokenLogprob {
  const bytes = codec.tokenBytes(id)
  return { token: utf8.decode(Uint8Array.from(bytes)), bytes, logprob: Number.isFinite(logprob) ? logprob : -9999 }
}

/** Why a signal aborted, in words for the job record. */
function abortReason (signal?: AbortSignal): string {
  const reason = signal?.reason
  return reason instanceof Error ? reason.message : String(reason ?? 'aborted')
}

/**
 * A record's ONNX variant keys its session apart from other variants of the
 * same bytes: `<cid>#<dtype>`; without one, the CID.
 */
function sessionKey (cid: string, dtype?: string): string {
  return dtype == null ? cid : `${cid}#${dtype}`
}

function cidOfSession (key: string): string {
  return key.split('#')[0]
}

/** The runtime's reference to a job's model, of the variant its record names (in the job's body, which travels between nodes). */
function modelRef (job: Pick<Job, 'modelCid' | 'modelName' | 'body'>, dir: string): ModelRef {
  const dtype: string | undefined = job.body.dtype ?? undefined
  return { key: sessionKey(job.modelCid, dtype), name: job.modelName, dir, dtype }
}

function definedOnly<T extends object> (o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

/** A Modelfile's template and system prompt, where the request does not give its own. */
function withProfile (input: PromptInput, template?: string, system?: string): PromptInput {
  const out: PromptInput = { ...input }
  if (out.template == null && template != null && template !== '') out.template = template
  if (system == null || system === '') return out
  if (out.messages != null) {
    if (!out.messages.some(m => m.role === 'system')) out.messages = [{ role: 'system', content: system }, ...out.messages]
  } else if (out.system == null) {
    out.system = system
  }
  return out
}

/** Runs `work`, yielding the progress events it emits as they come. */
async function * progress (work: (emit: (event: ProgressEvent) => void) => Promise<void>): AsyncIterable<ProgressEvent> {
  const queue: ProgressEvent[] = []
  let wake: (() => void) | undefined
  let finished = false
  let failure: unknown
  const done = work(event => {
    queue.push(event)
    wake?.()
  }).catch(err => { failure = err }).finally(() => {
    finished = true
    wake?.()
  })
  while (true) {
    while (queue.length > 0) yield queue.shift() as ProgressEvent
    if (finished) break
    await new Promise<void>(resolve => { wake = resolve })
    wake = undefined
  }
  await done
  if (failure != null) throw failure
}
