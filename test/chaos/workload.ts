/**
 * Clients that send cluster writes and linearizable reads through random
 * nodes over HTTP, and record every operation as Jepsen does: an invocation
 * and a completion that is ok, fail (it certainly did not happen) or info
 * (it may have happened, now or later: a timeout, a 503, a dropped
 * connection). A client whose operation ended in info is retired, and a new
 * client takes its place, since the old one may still be in flight.
 *
 * Keys: pins are identity CIDs (their bytes are inline, so pinning them needs
 * no transfer and the workload measures consensus, not bitswap); models are
 * registered by /api/copy of the default generation model and moved by
 * /api/v1/consensus/vote with an expected version to identity CIDs unique to
 * each vote; jobs are one-token generations with a prompt unique to each.
 */
import { performance } from 'node:perf_hooks'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { call } from '../helpers/cluster.ts'
import type { ChaosNode } from './cluster.ts'

export type OpKind = 'pin.add' | 'pin.rm' | 'pin.read' | 'model.register' | 'model.vote' | 'model.read' | 'job.submit' | 'job.read'
export const OP_KINDS: OpKind[] = ['pin.add', 'pin.rm', 'pin.read', 'model.register', 'model.vote', 'model.read', 'job.submit', 'job.read']

/** Of a write: what it did; of a read: what it saw. */
export type OpResult =
  | { kind: 'pin.add', rejected: boolean }
  | { kind: 'pin.rm', absent: boolean }
  | { kind: 'pin.read', pins: string[] }
  | { kind: 'model.register', outcome: 'ok' | 'exists' }
  | { kind: 'model.vote', outcome: 'ok' | 'conflict' | 'missing', version?: number }
  | { kind: 'model.read', cids: Record<string, string> }
  | { kind: 'job.submit', jobId: number, promptCID: string }
  | { kind: 'job.read', exists: boolean }

export interface Op {
  index: number
  /** The client; a new one after each info. */
  process: number
  node: string
  kind: OpKind
  /** The pin's CID or the model's id. */
  key?: string
  /** vote: the expected version and the new CID; submit: the prompt; job read: the job id. */
  args?: { expected?: number, cid?: string, prompt?: string, jobId?: number }
  /** Milliseconds since the run started (monotonic). */
  call: number
  /** Infinity while pending, and for info. */
  ret: number
  type: 'ok' | 'fail' | 'info' | 'pending'
  result?: OpResult
  /** HTTP status or client error, for fail and info. */
  error?: string
}

export const DEFAULT_MODEL = 'tiny-gpt'

/** An identity CID: its bytes are the text itself. */
export function identityCID (text: string): string {
  return CID.createV1(raw.code, identity.digest(new TextEncoder().encode(text))).toString()
}

export interface WorkloadOptions {
  runId: string
  pinKeys?: number
  modelKeys?: number
  /** Concurrent clients. */
  clients: number
  /** A request slower than this ends in info. */
  timeoutMs?: number
  /**
   * Operations per second, all clients together; default 12. The consensus
   * history, from which the final state is read, keeps the last 10,000
   * decisions: at this rate it covers a 10-minute run.
   */
  rate?: number
  /** The job ids below this existed before the run. */
  firstJobId: number
}

const WEIGHTS: Array<[OpKind, number]> = [
  ['pin.add', 20], ['pin.rm', 10], ['pin.read', 12],
  ['model.register', 1], ['model.vote', 20], ['model.read', 12],
  ['job.submit', 8], ['job.read', 12]
]

type Outcome = { type: 'ok' | 'fail' | 'info', result?: OpResult, error?: string }
type Reply = { status: number, body: any } | { failure: 'refused' | 'timeout' | 'network', message: string }

export class Workload {
  readonly history: Op[] = []
  readonly pinKeys: string[]
  readonly modelIds: string[]
  private readonly nodes: ChaosNode[]
  private readonly opts: Required<WorkloadOptions>
  private readonly t0 = performance.now()
  private nextProcess = 0
  private seq = 0
  /** Highest model versions seen, from which votes choose their expected version. */
  private readonly versions = new Map<string, number>()
  /** The version each acknowledged vote's CID got. */
  private readonly granted = new Map<string, number>()
  private maxJobId: number

  constructor (nodes: ChaosNode[], opts: WorkloadOptions) {
    this.nodes = nodes
    this.opts = { ...opts, pinKeys: opts.pinKeys ?? 12, modelKeys: opts.modelKeys ?? 4, timeoutMs: opts.timeoutMs ?? 15_000, rate: opts.rate ?? 12 }
    this.pinKeys = Array.from({ length: this.opts.pinKeys }, (_, i) => identityCID(`chaos ${opts.runId} pin ${i}`))
    this.modelIds = Array.from({ length: this.opts.modelKeys }, (_, i) => `chaos-${opts.runId}-m${i}:latest`)
    this.maxJobId = opts.firstJobId - 1
  }

  now (): number {
    return performance.now() - this.t0
  }

  /** Runs the clients until `signal` aborts, and waits for the operations in flight. */
  async run (signal: AbortSignal): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.clients }, async () => {
      let process = this.nextProcess++
      while (!signal.aborted) {
        const op = await this.invoke(process, pick(this.nodes), pickKind())
        if (op.type === 'info') process = this.nextProcess++
        await sleep(Math.random() * 2000 * this.opts.clients / this.opts.rate)
      }
    }))
  }

  /** Records one operation of `kind` through `node`. */
  async invoke (process: number, node: ChaosNode, kind: OpKind): Promise<Op> {
    const op: Op = { index: this.history.length, process, node: node.host.name, kind, call: this.now(), ret: Infinity, type: 'pending' }
    this.history.push(op)
    const outcome = await this.perform(op, node)
    op.type = outcome.type
    op.result = outcome.result
    op.error = outcome.error
    // the checker needs a return strictly after the call
    if (outcome.type !== 'info') op.ret = Math.max(this.now(), op.call + 1e-3)
    return op
  }

  private async perform (op: Op, node: ChaosNode): Promise<Outcome> {
    switch (op.kind) {
      case 'pin.add': {
        op.key = pick(this.pinKeys)
        const r = await this.send(node, '/api/v0/cluster/pin/add', { cid: op.key, replication_factor: 1 })
        return write(r, body => ({ kind: 'pin.add', rejected: false }), { 409: () => ({ kind: 'pin.add', rejected: true }) })
      }
      case 'pin.rm': {
        op.key = pick(this.pinKeys)
        const r = await this.send(node, '/api/v0/cluster/pin/rm', { cid: op.key })
        return write(r, () => ({ kind: 'pin.rm', absent: false }), { 404: () => ({ kind: 'pin.rm', absent: true }) })
      }
      case 'pin.read': {
        const r = await this.send(node, '/api/v0/cluster/pins')
        return read(r, body => ({ kind: 'pin.read', pins: body.pins.map((p: any) => p.cid).filter((c: string) => this.pinKeys.includes(c)) }))
      }
      case 'model.register': {
        op.key = pick(this.modelIds)
        const r = await this.send(node, '/api/copy', { source: DEFAULT_MODEL, destination: op.key.replace(/:latest$/, '') })
        return write(r, () => ({ kind: 'model.register', outcome: 'ok' }), { 409: () => ({ kind: 'model.register', outcome: 'exists' }) })
      }
      case 'model.vote': {
        const key = op.key = pick(this.modelIds)
        const known = this.versions.get(key) ?? 1
        // mostly the newest version seen, sometimes a stale or a future one
        const expected = Math.max(1, known + (Math.random() < 0.8 ? 0 : pick([-1, 1])))
        const cid = identityCID(`chaos ${this.opts.runId} model ${key} op ${this.seq++}`)
        op.args = { expected, cid }
        const r = await this.send(node, '/api/v1/consensus/vote', { model_id: key, model_cid: cid, expected_version: expected })
        const outcome = write(r, body => ({ kind: 'model.vote', outcome: 'ok', version: body.version }), {
          409: () => ({ kind: 'model.vote', outcome: 'conflict' }),
          404: () => ({ kind: 'model.vote', outcome: 'missing' })
        })
        if (outcome.result?.kind === 'model.vote' && outcome.result.version != null) {
          this.seen(key, outcome.result.version)
          this.granted.set(cid, outcome.result.version)
        }
        // a rejection names the version it found: the next vote expects that one
        const current = /is at version (\d+)/.exec(outcome.error ?? '')
        if (current != null) this.seen(key, Number(current[1]))
        return outcome
      }
      case 'model.read': {
        const r = await this.send(node, '/api/models')
        const outcome = read(r, body => ({
          kind: 'model.read',
          cids: Object.fromEntries(body.models.filter((m: any) => this.modelIds.includes(m.id)).map((m: any) => [m.id, m.cid]))
        }))
        // the version behind a CID is the vote's that wrote it
        if (outcome.result?.kind === 'model.read') {
          for (const [id, cid] of Object.entries(outcome.result.cids)) {
            const version = this.granted.get(cid)
            if (version != null) this.seen(id, version)
          }
        }
        return outcome
      }
      case 'job.submit': {
        const prompt = `chaos ${this.opts.runId} job ${this.seq++}`
        op.args = { prompt }
        const r = await this.send(node, '/api/tasks/submit', { prompt, maxTokens: 1 })
        const outcome = write(r, body => ({ kind: 'job.submit', jobId: body.jobId, promptCID: body.promptCID }), {})
        if (outcome.result?.kind === 'job.submit') this.maxJobId = Math.max(this.maxJobId, outcome.result.jobId)
        return outcome
      }
      case 'job.read': {
        const jobId = Math.max(1, this.maxJobId - Math.floor(Math.random() * 20) + 3)
        op.args = { jobId }
        const r = await this.send(node, `/api/metrics/tasks/task_${jobId}`)
        if ('status' in r && r.status === 404) return { type: 'ok', result: { kind: 'job.read', exists: false } }
        return read(r, () => ({ kind: 'job.read', exists: true }))
      }
    }
  }

  private seen (model: string, version: number): void {
    this.versions.set(model, Math.max(this.versions.get(model) ?? 0, version))
  }

  private async send (node: ChaosNode, path: string, json?: unknown): Promise<Reply> {
    if (!node.alive) return { failure: 'refused', message: 'the node is down' }
    try {
      return await call(node, path, { json, signal: AbortSignal.timeout(this.opts.timeoutMs) })
    } catch (err: any) {
      if (err.name === 'TimeoutError') return { failure: 'timeout', message: err.message }
      if (err.cause?.code === 'ECONNREFUSED') return { failure: 'refused', message: err.cause.message }
      return { failure: 'network', message: `${err.message}${err.cause != null ? `: ${err.cause.message ?? err.cause.code}` : ''}` }
    }
  }
}

/**
 * A write's outcome: 2xx is ok; the statuses in `definite` are answers the
 * cluster decided (a rejection applied through the log, or refused before
 * it); other 4xx did not happen; 5xx, timeouts and broken connections may
 * have happened. A refused connection reached no daemon.
 */
function write (r: Reply, ok: (body: any) => OpResult, definite: Record<number, () => OpResult>): Outcome {
  if ('failure' in r) return r.failure === 'refused' ? { type: 'fail', error: r.message } : { type: 'info', error: `${r.failure}: ${r.message}` }
  if (r.status >= 200 && r.status < 300) return { type: 'ok', result: ok(r.body) }
  const error = `${r.status} ${errorText(r.body)}`
  if (definite[r.status] != null) return { type: 'ok', result: definite[r.status](), error }
  return { type: r.status >= 500 ? 'info' : 'fail', error }
}

/** A read that did not answer 2xx saw nothing: it is a fail, and the checker leaves it out. */
function read (r: Reply, ok: (body: any) => OpResult): Outcome {
  if ('failure' in r) return { type: 'fail', error: `${r.failure}: ${r.message}` }
  if (r.status >= 200 && r.status < 300) return { type: 'ok', result: ok(r.body) }
  return { type: 'fail', error: `${r.status} ${errorText(r.body)}` }
}

function errorText (body: any): string {
  const e = body?.error_type ?? body?.error?.code ?? ''
  const m = body?.error?.message ?? body?.error ?? body?.Message ?? ''
  return `${e} ${typeof m === 'string' ? m : JSON.stringify(m)}`.trim().slice(0, 200)
}

function pick<T> (items: T[]): T {
  return items[Math.floor(Math.random() * items.length)]
}

function pickKind (): OpKind {
  const total = WEIGHTS.reduce((n, [, w]) => n + w, 0)
  let r = Math.random() * total
  for (const [kind, w] of WEIGHTS) {
    r -= w
    if (r < 0) return kind
  }
  return WEIGHTS[0][0]
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
