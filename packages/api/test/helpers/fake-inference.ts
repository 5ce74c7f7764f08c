import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AccessService, defaultAccessConfig } from '@node-daemon/access'
import { JobNotFoundError, JobStateError, ModelExistsError, ModelNotFoundError } from '@node-daemon/cluster'
import { ResponseNotFoundError } from '@node-daemon/inference'
import { ContextLengthError, InvalidInferenceRequestError, UnsupportedModelError } from '@node-daemon/runtime'
import { Registry } from 'prom-client'
import { createApiServer } from '../../src/server.ts'
import { nodeView } from './node-view.ts'
import type { ApiInit } from '../../src/server.ts'
import type { CredentialStore } from '@node-daemon/access'
import type { JobQuery, JobRecord, JobStatus, NodeView } from '@node-daemon/cluster'
import type { Node } from '@node-daemon/daemon'
import type { FastifyInstance } from 'fastify'
import type {
  Placement,
  EmbedInput, EmbedParams, EmbedResult, GenerateParams, ImportFile, ImportParams, Inference, RerankResult, InferenceEvent, LoadedModelView,
  ModelDetails, ModelSummary, ProgressEvent, StoredResponse, TaskEvent, TaskParams, TaskView, TokenLogprobs
} from '@node-daemon/inference'

/** Prompts that make the fake generation misbehave on purpose. */
export const FAIL_MIDWAY = 'fail midway'
export const WAIT_FOR_ABORT = 'wait for abort'
/** A prompt on which the fake model chooses, under `auto`, to call its first tool. */
export const CALL_A_TOOL = 'call a tool'

export interface FakeInference extends Inference {
  /** Every call with its arguments, for asserting what the API passed down. */
  calls: Array<{ method: string, args: unknown[] }>
  /** Resolves with the reason when the next WAIT_FOR_ABORT generation sees its signal abort. */
  nextAbort(): Promise<unknown>
  /** The paths and sizes of the files of the last import. */
  imported: Array<{ path: string, size: number }>
  /** Every submitted task, oldest first, as it is now: the job table of fakeCluster. */
  submitted: TaskView[]
}

const MODIFIED = new Date('2025-01-01T00:00:00Z')

function summary (name: string, cid: string, kind: ModelSummary['kind']): ModelSummary {
  return {
    name,
    cid,
    kind,
    family: kind === 'causal-lm' ? 'gpt2' : 'bert',
    description: `fake ${kind}`,
    size: 1234,
    active: true,
    version: 1,
    modifiedAt: MODIFIED,
    parameters: 2_500_000,
    quantization: 'F32',
    contextLength: 128
  }
}

/** Token ids at or past this are out of the fake models' vocabulary. */
export const FAKE_VOCAB = 1000

/** The text the fake reads a prompt of token ids as. */
export const tokensText = (ids: number[]): string => `ids ${ids.join(' ')}`

/** A chunk's token, said to have log-probability -(i + 1)/10, with `top` made-up alternatives below it. */
export function fakeLogprobs (text: string, i: number, top: number): TokenLogprobs {
  const bytes = [...Buffer.from(text)]
  const logprob = -(i + 1) / 10
  return { token: text, bytes, logprob, top: Array.from({ length: top }, (_, j) => j === 0 ? { token: text, bytes, logprob } : { token: `alt${j}`, bytes: [...Buffer.from(`alt${j}`)], logprob: logprob - j }) }
}

/** The reply to a prompt: "Echo:" and its words, one chunk per word. */
export function replyWords (prompt: string): string[] {
  return `Echo: ${prompt}`.split(/(?= )/)
}

async function bytesOf (content: ImportFile['content']): Promise<number> {
  if (content instanceof Uint8Array) return content.byteLength
  let size = 0
  for await (const chunk of content) size += chunk.byteLength
  return size
}

/**
 * A deterministic in-memory Inference: two models (tiny-gpt, an echoing
 * generator, and tiny-embed), tasks that complete on the next turn of the
 * event loop, and generations that fail or wait on cue.
 */
export function fakeInference (): FakeInference {
  const models = new Map<string, ModelSummary>([
    ['tiny-gpt:latest', summary('tiny-gpt:latest', 'bafytinygpt', 'causal-lm')],
    ['tiny-embed:latest', summary('tiny-embed:latest', 'bafytinyembed', 'encoder')]
  ])
  const tasks: TaskView[] = []
  const responses = new Map<string, StoredResponse>()
  const listeners = new Set<(event: TaskEvent) => void>()
  const abortWaiters: Array<(reason: unknown) => void> = []
  let jobs = 0
  const calls: FakeInference['calls'] = []
  const record = (method: string, ...args: unknown[]): void => { calls.push({ method, args }) }
  const emit = (event: TaskEvent): void => { for (const listener of listeners) listener(event) }

  const resolve = (ref: string): ModelSummary => {
    const name = ref.includes(':') ? ref : `${ref}:latest`
    const model = models.get(name) ?? [...models.values()].find(m => m.cid === ref)
    if (model == null) throw new ModelNotFoundError(`no model ${ref}`)
    return model
  }

  const placement: Placement = { mode: 'distributed', fallback: true }
  const fake: FakeInference = {
    calls,
    imported: [],
    submitted: tasks,
    nextAbort: async () => await new Promise(resolve => abortWaiters.push(resolve)),

    placement: () => ({ ...placement }),
    setPlacement (change) {
      Object.assign(placement, change)
      return { ...placement }
    },

    async * generate (params: GenerateParams, options = {}): AsyncGenerator<InferenceEvent> {
      record('generate', params)
      resolve(params.model)
      if ((params.options?.temperature ?? 0) < 0) throw new InvalidInferenceRequestError('temperature must not be negative')
      const input = params.input
      if ([...input.tokens ?? [], ...input.context ?? []].some(id => id >= FAKE_VOCAB)) throw new InvalidInferenceRequestError(`token id out of the vocabulary of ${FAKE_VOCAB}`)
      const prompt = input.prompt ?? (input.tokens != null ? tokensText(input.tokens) : undefined) ?? input.messages?.at(-1)?.content ?? ''
      yield { type: 'start', modelCID: resolve(params.model).cid, ...(params.echo === true ? { promptText: prompt } : {}) }
      // A required or named tool choice calls the named (or the first) tool, as a grammar-bound model would, and writes no text.
      const tools = input.tools ?? []
      const choice = params.toolChoice ?? (prompt === CALL_A_TOOL ? 'required' : undefined)
      const called = tools.length > 0 && choice != null && choice !== 'auto' && choice !== 'none'
        ? [{ id: 'call_fake', name: typeof choice === 'object' ? choice.name : tools[0].name, arguments: { city: 'Bath' } }]
        : undefined
      const words = called != null ? [] : replyWords(prompt)
      const limit = params.options?.num_predict ?? -1
      const sent = limit >= 0 ? words.slice(0, limit) : words
      for (const [i, text] of sent.entries()) {
        yield { type: 'chunk', text, ...(params.logprobs != null ? { logprobs: [fakeLogprobs(text, i, params.logprobs)] } : {}) }
        if (i > 0) continue
        if (prompt === FAIL_MIDWAY) throw new Error('the worker went away')
        if (prompt === WAIT_FOR_ABORT) {
          const signal = options.signal
          const reason = await new Promise(resolve => {
            if (signal == null) return
            if (signal.aborted) resolve(signal.reason)
            signal.addEventListener('abort', () => { resolve(signal.reason) }, { once: true })
          })
          abortWaiters.shift()?.(reason)
          throw reason
        }
      }
      yield {
        type: 'done',
        stats: {
          doneReason: sent.length < words.length ? 'length' : 'stop',
          text: sent.join(''),
          ...(called != null ? { toolCalls: called } : {}),
          promptTokens: prompt.split(' ').length,
          cachedTokens: 0,
          evalTokens: sent.length,
          totalNs: 5_000_000,
          loadNs: 1_000_000,
          promptEvalNs: 2_000_000,
          evalNs: 2_000_000,
          jobId: ++jobs,
          worker: 'peer-fake',
          promptCID: 'bafyprompt',
          context: [...input.context ?? [], ...prompt.split(' ').map((_, i) => i + 1), ...sent.map((_, i) => 100 + i)]
        }
      }
    },

    // A text's vector is its length and word count; token ids', their count and first id. Texts past the context length in characters are too long.
    async embed (params: EmbedParams): Promise<EmbedResult> {
      record('embed', params)
      const model = resolve(params.model)
      if (model.kind !== 'encoder') throw new UnsupportedModelError(`"${params.model}" does not support embeddings`)
      const { dimensions } = params
      if (dimensions != null && (dimensions < 1 || dimensions > 4)) throw new InvalidInferenceRequestError(`dimensions: ${model.name} makes embeddings of 4 dimensions, fewer than the ${dimensions} asked for`)
      const tokens = (input: EmbedInput): number => typeof input === 'string' ? input.split(' ').length : Array.isArray(input) ? input.length : input.ids.length
      if (params.truncate === false && params.input.some(input => tokens(input) > model.contextLength)) throw new ContextLengthError('input exceeds maximum context length')
      return {
        model: model.name,
        embeddings: params.input.map(input => (typeof input === 'string' ? [input.length, tokens(input), 0.5, -0.25] : Array.isArray(input) ? [input.length, input[0], 0.5, -0.25] : [input.text.length, tokens(input), 0.5, -0.25]).slice(0, dimensions)),
        promptTokens: params.input.reduce((sum, input) => sum + tokens(input), 0),
        totalNs: 3_000_000,
        loadNs: 1_000_000
      }
    },

    async models () {
      record('models')
      return [...models.values()]
    },

    async show (name: string): Promise<ModelDetails> {
      record('show', name)
      const model = resolve(name)
      return {
        ...model,
        template: '{{ messages }}',
        system: '',
        options: { temperature: 0.8, stop: ['</s>'] },
        modelfile: `FROM ${model.cid}`,
        config: { model_type: model.family },
        // The generator's config says all; the encoder's leaves the heads out.
        architecture: model.kind === 'causal-lm' ? { embeddingLength: 192, blockCount: 4, headCount: 4, headCountKv: 4, vocabSize: 2048 } : { embeddingLength: 4, blockCount: 2, vocabSize: 2048 },
        license: model.kind === 'causal-lm' ? 'MIT License' : ''
      }
    },

    async load (name: string, options?: { keepAliveMs?: number }) {
      record('load', name, options?.keepAliveMs)
      resolve(name)
    },

    loaded (): LoadedModelView[] {
      const model = resolve('tiny-gpt')
      return [{ name: model.name, cid: model.cid, size: model.size, kind: model.kind, family: model.family, executionProvider: 'cpu', engine: 'onnxruntime', expiresAt: MODIFIED, contextLength: model.contextLength, parameters: model.parameters, quantization: model.quantization }]
    },

    // Ends without a success line: the API adds Ollama's.
    async * pull (name: string): AsyncGenerator<ProgressEvent> {
      record('pull', name)
      const model = resolve(name)
      yield { status: 'pulling manifest' }
      yield { status: `pulling ${model.cid}`, digest: model.cid, total: model.size, completed: 617 }
      yield { status: `pulling ${model.cid}`, digest: model.cid, total: model.size, completed: model.size }
    },

    async * push (name: string): AsyncGenerator<ProgressEvent> {
      record('push', name)
      resolve(name)
      yield { status: 'replicating' }
      yield { status: 'success' }
    },

    async copy (source: string, destination: string) {
      record('copy', source, destination)
      const model = resolve(source)
      if (models.has(destination)) throw new ModelExistsError(`${destination} exists`)
      models.set(destination, { ...model, name: destination })
    },

    async delete (name: string) {
      record('delete', name)
      models.delete(resolve(name).name)
    },

    async * create (name: string, modelfile: string): AsyncGenerator<ProgressEvent> {
      record('create', name, modelfile)
      const from = /^FROM (\S+)/m.exec(modelfile)?.[1]
      if (from == null) throw new InvalidInferenceRequestError('the Modelfile has no FROM')
      const base = resolve(from)
      yield { status: 'reading model metadata' }
      models.set(name, { ...base, name })
      yield { status: 'success' }
    },

    async rerank (): Promise<RerankResult> {
      throw new Error('no route reranks: the search issue calls Inference.rerank directly')
    },

    async import (params: ImportParams): Promise<ModelSummary> {
      record('import', { name: params.name, description: params.description, dtype: params.dtype })
      fake.imported = []
      for await (const file of params.files) fake.imported.push({ path: file.path, size: await bytesOf(file.content) })
      const model = { ...summary(params.name, `bafyimported${fake.imported.length}`, 'causal-lm'), description: params.description ?? '' }
      models.set(model.name, model)
      return model
    },

    async saveResponse (id: string, record: StoredResponse): Promise<string> {
      responses.set(id, record)
      return `bafyresponse${responses.size}`
    },

    async response (id: string): Promise<StoredResponse> {
      const record = responses.get(id)
      if (record == null) throw new ResponseNotFoundError(`no stored response with id ${id}`)
      return record
    },

    async deleteResponse (id: string): Promise<void> {
      if (!responses.delete(id)) throw new ResponseNotFoundError(`no stored response with id ${id}`)
    },

    async submitTask (params: TaskParams): Promise<TaskView> {
      record('submitTask', params)
      const model = resolve(params.model)
      if (params.prompt.trim() === '') throw new InvalidInferenceRequestError('the prompt is empty')
      const jobId = ++jobs
      const task: TaskView = {
        taskId: `task_${jobId}`,
        jobId,
        status: 'pending',
        model: model.name,
        prompt: params.prompt,
        promptCID: `bafyprompt${tasks.length + 1}`,
        timing: { submitted: new Date().toISOString() }
      }
      tasks.push(task)
      emit({ type: 'task_submitted', data: { taskId: task.taskId, jobId: task.jobId, prompt: params.prompt, modelId: model.name } })
      setImmediate(() => {
        Object.assign(task, { status: 'completed', response: replyWords(params.prompt).join(''), responseCID: 'bafyresponse', worker: 'peer-fake' })
        task.timing = { ...task.timing, started: task.timing.submitted, completed: new Date().toISOString(), totalTime: 0.01 }
        emit({ type: 'task_completed', data: { taskId: task.taskId, jobId: task.jobId, response: task.response ?? '', worker: 'peer-fake', timing: { totalTime: 0.01 } } })
      })
      return { ...task, estimate: { worker: 'peer-fake', tasks: 0, tokensPerSecond: null, tokens: null, seconds: null } }
    },

    async task (job: JobRecord): Promise<TaskView> {
      const task = tasks.find(t => t.jobId === job.jobId)
      if (task == null) throw new JobNotFoundError(`no task ${job.jobId}`)
      return { ...task }
    },

    subscribe (listener: (event: TaskEvent) => void): () => void {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }
  return fake
}

const JOB_STATUS: Record<TaskView['status'], JobStatus> = { pending: 'requested', running: 'running', completed: 'completed', failed: 'failed' }

function jobOf (task: TaskView): JobRecord {
  return {
    jobId: task.jobId,
    kind: 'inference',
    status: JOB_STATUS[task.status],
    controller: 'peer-fake',
    promptCID: task.promptCID,
    modelId: task.model,
    modelCID: 'bafytinygpt',
    params: {},
    worker: task.worker,
    responseCID: task.responseCID,
    metrics: task.status === 'completed' ? { promptTokens: 3, evalTokens: 4 } : undefined,
    submittedAt: task.timing.submitted,
    startedAt: task.timing.started,
    completedAt: task.timing.completed
  }
}

/** The one node of the fake cluster, which works every task. */
export const FAKE_NODE: NodeView = nodeView('peer-fake', {
  resources: {
    cpu: { cores: 4, model: 'fake cpu', load1: 1, usage: 0.25 },
    memory: { total: 8 * 1024 ** 3, free: 2 * 1024 ** 3 },
    gpus: [],
    disk: { total: 1000, free: 500 },
    executionProviders: ['cpu']
  },
  isLeader: true,
  isSelf: true
})

/** The part of Cluster that document 004's tasks and metrics read: the fake's tasks as inference jobs, and one node. */
function fakeCluster (inference: FakeInference): object {
  const find = (jobId: number): TaskView => {
    const task = inference.submitted.find(t => t.jobId === jobId)
    if (task == null) throw new JobNotFoundError(`job ${jobId} does not exist`)
    return task
  }
  // An event target as the real cluster is, whose events no one here dispatches.
  return Object.assign(new EventTarget(), {
    async job (jobId: number) { return jobOf(find(jobId)) },
    async jobs (query: JobQuery = {}) {
      const statuses = [query.status ?? []].flat()
      return inference.submitted.map(jobOf).reverse().filter(j => statuses.length === 0 || statuses.includes(j.status)).slice(0, query.limit ?? 100)
    },
    async removeJob (jobId: number) {
      const task = find(jobId)
      if (task.status === 'pending' || task.status === 'running') throw new JobStateError(`job ${jobId} is ${task.status}`)
      inference.submitted.splice(inference.submitted.indexOf(task), 1)
      return jobOf(task)
    },
    async nodes () { return [FAKE_NODE] }
  })
}

/** Files of content by path, under a directory CID, for the routes that read a model's bytes. */
export type FakeFiles = Record<string, Record<string, Uint8Array>>

/** The part of Content that the AI routes read, over in-memory directories; the rest of the API only needs the names and topics to exist. */
function fakeContent (files: FakeFiles): object {
  const split = (path: string): [string, string] => {
    const [cid, ...rest] = path.split('/')
    return [cid, rest.join('/')]
  }
  return {
    names: {},
    topics: {},
    async ls (path: string) {
      const [cid, dir] = split(path)
      const prefix = dir === '' ? '' : `${dir}/`
      const children = new Map<string, { name: string, cid: string, size: number, type: 'file' | 'directory' }>()
      for (const [file, bytes] of Object.entries(files[cid] ?? {})) {
        if (!file.startsWith(prefix)) continue
        const [name, ...deeper] = file.slice(prefix.length).split('/')
        children.set(name, deeper.length > 0 ? { name, cid: `${cid}-${name}`, size: 0, type: 'directory' } : { name, cid: `${cid}-${name}`, size: bytes.byteLength, type: 'file' })
      }
      return { cid, entries: [...children.values()] }
    },
    async * cat (path: string) {
      const [cid, file] = split(path)
      const bytes = files[cid]?.[file]
      if (bytes == null) throw Object.assign(new Error(`no file ${path}`), { name: 'NotFoundError' })
      yield bytes
    }
  }
}

/** A cluster's credential store that holds none. */
function emptyStore (): CredentialStore {
  return {
    bySecretHash: () => undefined,
    user: () => undefined,
    count: () => 0,
    list: () => [],
    signingKey: () => undefined,
    putCredential: async () => {},
    removeCredential: async () => {},
    putSigningKey: async () => {},
    caughtUp: async () => {}
  }
}

export interface TestServer {
  app: FastifyInstance
  url: string
  inference: FakeInference
}

/**
 * The API server over a stub Node: the fake inference, the job table of its
 * tasks, a metrics registry, a version, content for `files`, and no external
 * training workers, with `init` as the API's. Listens on 127.0.0.1 on a free port.
 */
export async function startServer (files: FakeFiles = {}, init: ApiInit = {}): Promise<TestServer> {
  const inference = fakeInference()
  // Access control as a node without credentials has it, on a repo of its own for the JWT key and the cookie.
  const repo = await mkdtemp(join(tmpdir(), 'api-test-'))
  const access = new AccessService({ store: emptyStore() }, { config: defaultAccessConfig(), repo, loopback: true })
  await access.start()
  const node = {
    config: { access: defaultAccessConfig() },
    access,
    inference,
    metrics: new Registry(),
    version: () => ({ version: '0.1.0-test', commit: 'test', buildDate: '2025-01-01', node: process.version, system: process.platform, repo: '1' }),
    content: fakeContent(files),
    cluster: fakeCluster(inference),
    training: { externalWorkers: () => [] }
  } as unknown as Node
  const app = await createApiServer(node, init)
  app.addHook('onClose', async () => { await rm(repo, { recursive: true, force: true }) })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url, inference }
}
