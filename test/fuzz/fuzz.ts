/**
 * Sends fuzzed requests to a daemon and judges each answer: a 4xx in one of
 * the API families' error shapes (or a 2xx, for a generated request that
 * happened to be good), within the deadline, naming no file of the host.
 * Anything else is a failure, reported with the request that caused it.
 */
import { request } from 'node:http'
import fc from 'fast-check'
import { credentialsFor, requestsFor } from './requests.ts'
import type { Operation } from './openapi.ts'
import type { FuzzContext, FuzzRequest } from './requests.ts'

export interface FuzzOptions {
  /** Cases per operation. */
  perRoute: number
  seed: number
  /** Deadline of one answer. */
  timeoutMs: number
  /** Requests in flight at once. */
  concurrency: number
  /** Text no answer may hold: the repo's path. */
  secret: string
  /** Stop starting new cases after this long; what was not run is counted as skipped. */
  budgetMs?: number
  ctx: FuzzContext
}

/** `refused`: a body over the daemon's limit met a closed connection before any answer, as Go's and nginx's servers also refuse one. */
export type Outcome = '2xx' | '4xx' | '5xx' | 'hang' | 'reset' | 'refused' | 'other'

export interface Failure {
  operation: string
  request: FuzzRequest
  outcome: Outcome
  status?: number
  problem: string
  body: string
}

export interface FuzzReport {
  cases: number
  skipped: number
  byOutcome: Record<Outcome, number>
  /** Answers by exact status. */
  statuses: Map<string, number>
  byOperation: Map<string, Record<Outcome, number>>
  failures: Failure[]
}

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: string }

/** Most of a body that is read: an error envelope is far smaller, a stream is cut. */
const MAX_BODY = 1_048_576
/** How long a 2xx stream (a subscription, a media stream) is read before it is cut. */
const STREAM_READ_MS = 1000

function send (api: URL, req: FuzzRequest, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => { r.destroy(Object.assign(new Error('no answer'), { code: 'FUZZ_HANG' })) }, timeoutMs)
    // A connection of its own, so that one a bad request left closing does not fail the next. It asks for
    // keep-alive as curl and browsers do: a server that refuses a large body early then reads the rest of
    // it, where with `Connection: close` it would close while Node's client is still writing.
    const r = request({ host: api.hostname, port: api.port, method: req.method, path: req.target, headers: { connection: 'keep-alive', ...req.headers }, agent: false }, res => {
      res.once('end', () => { r.destroy() })
      clearTimeout(deadline)
      const chunks: Buffer[] = []
      let size = 0
      const done = (): void => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }) }
      const cut = (): void => { res.destroy(); done() }
      const streamCut = (res.statusCode ?? 0) < 300 ? setTimeout(cut, STREAM_READ_MS) : undefined
      const bodyDeadline = setTimeout(() => { res.destroy(Object.assign(new Error('the body never ended'), { code: 'FUZZ_HANG' })) }, timeoutMs)
      res.on('data', (chunk: Buffer) => {
        size += chunk.byteLength
        if (size <= MAX_BODY) chunks.push(chunk)
        else cut()
      })
      res.on('end', () => { clearTimeout(streamCut); clearTimeout(bodyDeadline); done() })
      res.on('error', err => { clearTimeout(streamCut); clearTimeout(bodyDeadline); reject(err) })
      res.on('close', () => { clearTimeout(streamCut); clearTimeout(bodyDeadline) })
    })
    // What arrived on the socket: a server may answer a body it refuses (413) and close while the client is
    // still writing it; Node's client then reports EPIPE, though the answer came.
    let received = ''
    r.on('socket', socket => { socket.on('data', (chunk: Buffer) => { if (received.length < MAX_BODY) received += chunk.toString('latin1') }) })
    r.on('error', (err: Error & { code?: string }) => {
      clearTimeout(deadline)
      const answered = /^HTTP\/1\.1 (\d{3}) [^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(received)
      if ((err.code === 'EPIPE' || err.code === 'ECONNRESET') && answered != null) {
        const headers = Object.fromEntries(answered[2].split('\r\n').map(line => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]))
        resolve({ status: Number(answered[1]), headers, body: Buffer.from(answered[3], 'latin1').toString('utf8') })
        return
      }
      reject(err)
    })
    r.end(req.body == null ? undefined : Buffer.from(req.body))
  })
}

/** Which API family's error shape a body is in, if any. */
export function errorShapeOf (body: unknown, status: number): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const b = body as Record<string, any>
  if (b.success === false && typeof b.error === 'string' && typeof b.error_type === 'string' && b.status_code === status &&
    b.Message === b.error && typeof b.Code === 'number' && b.Type === 'error') return 'envelope'
  // Ollama's `error`, with document 002's code, timestamp and request_id beside it on Ollama's routes.
  const ollama = ['error', 'code', 'timestamp', 'request_id']
  if (typeof b.error === 'string' && b.error !== '' && Object.keys(b).every(key => ollama.includes(key)) &&
    (Object.keys(b).length === 1 || (typeof b.code === 'string' && typeof b.timestamp === 'string' && typeof b.request_id === 'string'))) return 'ollama'
  if (Array.isArray(b.errors) && b.errors.length > 0 && b.errors.every((e: any) => typeof e?.message === 'string')) return 'graphql'
  const e = b.error
  if (typeof e === 'object' && e !== null) {
    if (typeof e.message === 'string' && typeof e.type === 'string' && 'param' in e && 'code' in e) return 'openai'
    if (typeof e.code === 'string' && typeof e.message === 'string' && typeof e.timestamp === 'string') return 'task'
    if (typeof e.code === 'string' && typeof e.message === 'string' && typeof e.details === 'object' && e.details !== null) return 'farm'
    if (Object.keys(b).length === 1 && typeof e.reason === 'string' && e.reason !== '' && (e.details == null || typeof e.details === 'string')) return 'pinning'
  }
  return undefined
}

/** What is wrong with an answer, or undefined. */
function judge (answer: Answer, secret: string): string | undefined {
  const text = `${JSON.stringify(answer.headers)}\n${answer.body}`
  if (secret !== '' && text.includes(secret)) return 'the answer names the repo\'s path'
  if (answer.status >= 500) return `a ${answer.status}`
  if (answer.status < 400) return undefined
  if (!/json/.test(String(answer.headers['content-type'] ?? ''))) return `a ${answer.status} that is not JSON (${String(answer.headers['content-type'])})`
  let body: unknown
  try {
    body = JSON.parse(answer.body)
  } catch {
    return `a ${answer.status} whose body does not parse`
  }
  if (errorShapeOf(body, answer.status) == null) return `a ${answer.status} in no family's error shape`
  return undefined
}

const outcomeOf = (status: number): Outcome => status >= 500 ? '5xx' : status >= 400 ? '4xx' : status >= 200 && status < 300 ? '2xx' : 'other'
const emptyCounts = (): Record<Outcome, number> => ({ '2xx': 0, '4xx': 0, '5xx': 0, hang: 0, reset: 0, refused: 0, other: 0 })

/** The daemon's JSON body limit: a larger body may be refused by closing the connection. */
const BODY_LIMIT = 1_048_576

/** Runs `perRoute` cases against every operation and reports what each answered. */
export async function fuzz (api: string, operations: Operation[], options: FuzzOptions): Promise<FuzzReport> {
  const url = new URL(api)
  const started = Date.now()
  const report: FuzzReport = { cases: 0, skipped: 0, byOutcome: emptyCounts(), statuses: new Map(), byOperation: new Map(), failures: [] }
  const jobs: Array<{ name: string, request: FuzzRequest }> = []
  operations.forEach((op, i) => {
    const samples = fc.sample(fc.tuple(requestsFor(op, options.ctx), credentialsFor(options.ctx)).map(([request, who]) => ({
      ...request,
      headers: { ...who.headers, ...request.headers },
      mutation: `${request.mutation}, as ${who.as}`
    })), { numRuns: options.perRoute, seed: options.seed + i })
    for (const request of samples) jobs.push({ name: `${op.method} ${op.path}`, request })
  })
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++]
      if (options.budgetMs != null && Date.now() - started > options.budgetMs) {
        report.skipped++
        continue
      }
      const counts = report.byOperation.get(job.name) ?? emptyCounts()
      report.byOperation.set(job.name, counts)
      let outcome: Outcome
      let problem: string | undefined
      let answer: Answer | undefined
      try {
        answer = await send(url, job.request, options.timeoutMs)
        outcome = outcomeOf(answer.status)
        report.statuses.set(String(answer.status), (report.statuses.get(String(answer.status)) ?? 0) + 1)
        problem = judge(answer, options.secret)
      } catch (err: any) {
        if (err.code === 'FUZZ_HANG') {
          outcome = 'hang'
          problem = `no answer within ${options.timeoutMs} ms`
        } else if ((job.request.body?.byteLength ?? 0) > BODY_LIMIT && (err.code === 'EPIPE' || err.code === 'ECONNRESET')) {
          outcome = 'refused'
        } else {
          outcome = 'reset'
          problem = `the connection failed: ${err.code ?? err.message}`
        }
      }
      report.cases++
      report.byOutcome[outcome]++
      counts[outcome]++
      if (problem != null) report.failures.push({ operation: job.name, request: job.request, outcome, status: answer?.status, problem, body: (answer?.body ?? '').slice(0, 300) })
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  return report
}

/** A failure as one line a developer can replay with curl. */
export function describeFailure (f: Failure): string {
  const body = f.request.body == null ? '' : ` body(${f.request.body.byteLength} B)=${JSON.stringify(Buffer.from(f.request.body.subarray(0, 120)).toString('utf8'))}`
  return `${f.problem}: ${f.request.method} ${f.request.target.slice(0, 200)} [${f.request.mutation}] headers=${JSON.stringify(f.request.headers)}${body} -> ${f.status ?? '-'} ${JSON.stringify(f.body.slice(0, 200))}`
}
