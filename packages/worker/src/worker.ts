/**
 * The worker process: it connects to a node's worker WebSocket, asks for a
 * task, answers the steps the node relays from the job's coordinator with
 * the same StepWorker a node runs, and reads checkpoints and datasets
 * through the node's Kubo RPC `cat`. It reconnects when the node goes away.
 */
import { tmpdir } from 'node:os'
import { TypedEventEmitter } from '@libp2p/interface'
import { jobIdOfTask, measureResources, usageOf } from '@node-daemon/cluster'
import { StepRequest, StepResponse, StepWorker } from '@node-daemon/training'
import WebSocket from 'ws'
import { InvalidWorkerMessageError } from './messages.ts'
import type { ClientMessage, ServerMessage, TaskData } from './messages.ts'
import type { Logger } from '@libp2p/interface'

export interface FarmWorkerInit {
  /** The node's HTTP API, e.g. http://127.0.0.1:8000. */
  api: string
  /** Unique among the workers connected to that node. */
  clientId: string
  /** Sent as a bearer token, for a node that requires one. */
  token?: string
  /** Default 10 s. */
  heartbeatMs?: number
  /** task_progress at most this often. Default 2 s. */
  progressMs?: number
  /** Ask for another task when one ends. Default true. */
  repeat?: boolean
  /** The first wait before reconnecting, doubled up to 30 s. Default 1 s. */
  reconnectMs?: number
}

export interface FarmWorkerComponents {
  log: Logger
}

export interface TaskOutcome {
  task: string
  status: string
  /** Steps this worker computed gradients for. */
  steps: number
  checkpointPath?: string
  modelId?: string
}

export interface FarmWorkerEvents {
  task: CustomEvent<TaskData>
  control: CustomEvent<{ task: string, action: string }>
  /** A task ended and its result was sent. */
  result: CustomEvent<TaskOutcome>
}

/** The node answered a read with an error. */
export class ContentFetchError extends Error {
  static name = 'ContentFetchError'
  name = 'ContentFetchError'
}

const MAX_RECONNECT_MS = 30_000

interface Running {
  task: TaskData
  startedAt: number
  steps: number
  lastLoss?: number
  lastAccuracy?: number
  lastProgressAt: number
}

export class FarmWorker extends TypedEventEmitter<FarmWorkerEvents> {
  readonly #c: FarmWorkerComponents
  readonly #init: Required<Omit<FarmWorkerInit, 'token'>> & { token?: string }
  readonly #worker: StepWorker
  #socket?: WebSocket
  #running?: Running
  #heartbeat?: ReturnType<typeof setInterval>
  #shutdown = new AbortController()
  #stopped = true
  #failures = 0
  /** Steps are answered one at a time, in the order they came. */
  #queue: Promise<void> = Promise.resolve()

  constructor (components: FarmWorkerComponents, init: FarmWorkerInit) {
    super()
    this.#c = components
    this.#init = { heartbeatMs: 10_000, progressMs: 2_000, repeat: true, reconnectMs: 1_000, ...init, api: init.api.replace(/\/+$/, '') }
    this.#worker = new StepWorker({ content: { readFile: async (path, options) => this.#readFile(path, options?.signal) }, log: components.log })
  }

  get #headers (): Record<string, string> {
    return { 'Client-ID': this.#init.clientId, ...(this.#init.token == null ? {} : { Authorization: `Bearer ${this.#init.token}` }) }
  }

  /** Connects and asks for work; resolves once connected, rejects if the first connection fails. */
  async start (): Promise<void> {
    if (!this.#stopped) return
    this.#stopped = false
    this.#shutdown = new AbortController()
    await this.#connect()
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    this.#shutdown.abort(new Error('the worker is stopping'))
    clearInterval(this.#heartbeat)
    this.#socket?.close(1000, 'the worker is stopping')
    await this.#queue
    await this.#worker.release()
  }

  async #connect (): Promise<void> {
    const url = `${this.#init.api.replace(/^http/, 'ws')}/api/workers/ws`
    const socket = new WebSocket(url, { headers: this.#headers })
    this.#socket = socket
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => { resolve() })
      socket.once('error', reject)
      socket.once('unexpected-response', (_request, response) => { reject(new Error(`the node refused the connection: HTTP ${response.statusCode}`)) })
    })
    this.#failures = 0
    socket.on('error', (err) => { this.#c.log('worker socket error - %s', err.message) })
    socket.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        this.#queue = this.#queue.then(async () => this.#step(socket, data))
        return
      }
      this.#onMessage(data.toString())
    })
    socket.on('close', (code, reason) => {
      clearInterval(this.#heartbeat)
      if (this.#stopped) return
      this.#c.log('the node closed the connection (%d %s); reconnecting', code, reason.toString())
      this.#running = undefined
      void this.#reconnect()
    })
    this.#send(this.#heartbeatMessage(await this.#systemInfo()))
    this.#heartbeat = setInterval(() => {
      void this.#systemInfo().then(info => { this.#send(this.#heartbeatMessage(info)) })
    }, this.#init.heartbeatMs)
    this.#send({ type: 'task_request', client_id: this.#init.clientId, timestamp: new Date().toISOString() })
  }

  async #reconnect (): Promise<void> {
    while (!this.#stopped) {
      const wait = Math.min(MAX_RECONNECT_MS, this.#init.reconnectMs * 2 ** this.#failures++)
      await new Promise(resolve => setTimeout(resolve, wait))
      if (this.#stopped) return
      try {
        await this.#connect()
        return
      } catch (err: any) {
        this.#c.log('reconnecting to %s failed - %s', this.#init.api, err.message)
      }
    }
  }

  #heartbeatMessage (systemInfo: Record<string, number>): ClientMessage {
    return { type: 'heartbeat', client_id: this.#init.clientId, system_info: systemInfo, timestamp: new Date().toISOString() }
  }

  /** Document 004's system_info, in percent. */
  async #systemInfo (): Promise<Record<string, number>> {
    const u = usageOf(await measureResources(tmpdir()))
    const percent = (fraction: number): number => Math.round(fraction * 1000) / 10
    return { cpu_usage: percent(u.cpu), ram_usage: percent(u.memory), ...(u.gpu == null ? {} : { gpu_usage: percent(u.gpu) }) }
  }

  #send (message: ClientMessage): void {
    if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message))
  }

  #onMessage (text: string): void {
    let message: ServerMessage
    try {
      message = JSON.parse(text)
    } catch {
      this.#c.log('the node sent a frame that is not JSON')
      return
    }
    if (message.type === 'task') {
      this.#running = { task: message.data, startedAt: Date.now(), steps: 0, lastProgressAt: 0 }
      this.safeDispatchEvent('task', { detail: message.data })
    } else if (message.type === 'control') {
      this.safeDispatchEvent('control', { detail: { task: message.task_id, action: message.action } })
      if (message.action === 'stop' && message.status != null) this.#queue = this.#queue.then(async () => this.#end(message))
    } else if (message.type === 'error') {
      this.#c.log('the node refused a message - %s', message.error.message)
    }
  }

  async #step (socket: WebSocket, data: Buffer): Promise<void> {
    let request: StepRequest
    try {
      request = StepRequest.decode(data)
    } catch (err: any) {
      socket.close(1003, new InvalidWorkerMessageError(`a binary frame must be a StepRequest: ${String(err.message)}`).message)
      return
    }
    const response = await this.#worker.answer(request, this.#shutdown.signal)
    if (socket.readyState !== WebSocket.OPEN) return
    socket.send(StepResponse.encode(response))
    const running = this.#running
    if (running == null || response.status !== StepResponse.Status.OK) return
    running.steps++
    if (response.count > 0) running.lastLoss = response.lossSum / response.count
    if (response.labels > 0) running.lastAccuracy = response.correct / response.labels
    if (Date.now() - running.lastProgressAt >= this.#init.progressMs) {
      running.lastProgressAt = Date.now()
      const progress = this.#worker.progress(Number(request.jobId))
      this.#send({
        type: 'task_progress',
        task_id: running.task.id,
        client_id: this.#init.clientId,
        progress: progress == null ? 0 : Math.round(progress.step / Math.max(1, progress.totalSteps) * 1000) / 10,
        metrics: {
          ...(running.lastLoss == null ? {} : { loss: running.lastLoss }),
          ...(running.lastAccuracy == null ? {} : { accuracy: running.lastAccuracy }),
          ...(progress == null ? {} : { learning_rate: progress.learningRate })
        },
        timestamp: new Date().toISOString()
      })
    }
  }

  /** The task ended: report what this worker did, let the replica go, and ask for more. */
  async #end (message: Extract<ServerMessage, { type: 'control' }>): Promise<void> {
    const running = this.#running?.task.id === message.task_id ? this.#running : undefined
    this.#running = undefined
    const jobId = jobIdOfTask(message.task_id)
    if (jobId != null) await this.#worker.forget(jobId)
    const steps = running?.steps ?? 0
    this.#send({
      type: 'task_result',
      task_id: message.task_id,
      client_id: this.#init.clientId,
      status: message.status ?? 'stopped',
      metrics: {
        steps,
        training_time: running == null ? 0 : (Date.now() - running.startedAt) / 1000,
        ...(running?.lastLoss == null ? {} : { final_loss: running.lastLoss }),
        ...(running?.lastAccuracy == null ? {} : { final_accuracy: running.lastAccuracy })
      },
      ...(message.checkpoint_path == null ? {} : { checkpoint_path: message.checkpoint_path }),
      timestamp: new Date().toISOString()
    })
    this.safeDispatchEvent('result', { detail: { task: message.task_id, status: message.status ?? 'stopped', steps, ...(message.checkpoint_path == null ? {} : { checkpointPath: message.checkpoint_path }), ...(message.model_id == null ? {} : { modelId: message.model_id }) } })
    if (this.#init.repeat) this.#send({ type: 'task_request', client_id: this.#init.clientId, timestamp: new Date().toISOString() })
  }

  async #readFile (path: string, signal?: AbortSignal): Promise<Uint8Array> {
    const res = await fetch(`${this.#init.api}/api/v0/cat?arg=${encodeURIComponent(path)}`, { method: 'POST', headers: this.#headers, signal })
    if (!res.ok) {
      const body = await res.text()
      throw new ContentFetchError(`reading ${path} from ${this.#init.api} failed: HTTP ${res.status} ${body.slice(0, 200)}`)
    }
    return new Uint8Array(await res.arrayBuffer())
  }
}

export function createWorker (components: FarmWorkerComponents, init: FarmWorkerInit): FarmWorker {
  return new FarmWorker(components, init)
}
