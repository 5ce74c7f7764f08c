/**
 * Clients that go away: generation requests of every API family, streamed
 * and not, aborted at seeded random points (before the first byte, during
 * prefill, mid-stream), and a check that the job table holds no job that is
 * neither completed, failed nor cancelled.
 */
import assert from 'node:assert/strict'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { seededRandom } from '@node-daemon/onnx'
import { waitFor } from './cluster.ts'

/** A long generation, so that most aborts land mid-stream; a seed, so that a failing run can be replayed. */
const OPTIONS = { num_predict: 300, temperature: 0.9, seed: 7 }

const LONG_SCHEMA = { type: 'array', items: { type: 'string', maxLength: 12 }, minItems: 40, maxItems: 40 }
const LOOKUP = { type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { query: { type: 'string', minLength: 200, maxLength: 400 } }, required: ['query'] } } }

interface Variant {
  path: string
  body: (stream: boolean) => object
}

export const VARIANTS: Variant[] = [
  { path: '/api/generate', body: stream => ({ model: DEFAULT_MODELS.generate, prompt: 'It was a truth universally acknowledged', stream, options: OPTIONS }) },
  { path: '/api/chat', body: stream => ({ model: DEFAULT_MODELS.generate, messages: [{ role: 'user', content: 'Tell me of Bath.' }], stream, options: OPTIONS }) },
  { path: '/v1/chat/completions', body: stream => ({ model: DEFAULT_MODELS.generate, messages: [{ role: 'user', content: 'Tell me of Bath.' }], stream, max_tokens: OPTIONS.num_predict, seed: OPTIONS.seed }) },
  // Constrained decoding, a required tool call and the Responses API end their jobs the same way.
  { path: '/api/chat', body: stream => ({ model: DEFAULT_MODELS.generate, messages: [{ role: 'user', content: 'List them.' }], stream, format: LONG_SCHEMA, options: OPTIONS }) },
  { path: '/v1/chat/completions', body: stream => ({ model: DEFAULT_MODELS.generate, messages: [{ role: 'user', content: 'Look it up.' }], stream, tools: [LOOKUP], tool_choice: 'required', max_tokens: OPTIONS.num_predict }) },
  { path: '/v1/responses', body: stream => ({ model: DEFAULT_MODELS.generate, input: 'Tell me of Bath.', stream, max_output_tokens: OPTIONS.num_predict, store: false }) }
]

export interface AbortPlan {
  variant: Variant
  stream: boolean
  /** Abort this many ms after sending; with `chunks`, once that many body chunks arrived instead. */
  delayMs: number
  chunks?: number
}

/** `count` seeded plans over every variant, streamed and not: delays up to `maxDelayMs`, and for streams aborts after 0–8 chunks. */
export function abortPlans (seed: number, count: number, maxDelayMs: number): AbortPlan[] {
  const random = seededRandom(seed)
  return Array.from({ length: count }, (_, i) => {
    const variant = VARIANTS[i % VARIANTS.length]
    const stream = Math.floor(i / VARIANTS.length) % 2 === 0
    const delayMs = Math.floor(random() * maxDelayMs)
    return stream && random() < 0.5 ? { variant, stream, delayMs, chunks: Math.floor(random() * 9) } : { variant, stream, delayMs }
  })
}

/** Sends the request and aborts it as planned; a request that finished first is fine too. Bounded by 30 s. */
export async function abortedRequest (api: string, plan: AbortPlan): Promise<void> {
  const controller = new AbortController()
  const timer = plan.chunks == null ? setTimeout(() => { controller.abort() }, plan.delayMs) : undefined
  const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(30_000)])
  try {
    const res = await fetch(`${api}${plan.variant.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(plan.variant.body(plan.stream)), signal })
    const reader = res.body?.getReader()
    if (reader == null) return
    for (let chunks = 0; !(await reader.read()).done; chunks++) {
      if (plan.chunks != null && chunks >= plan.chunks) {
        controller.abort()
        break
      }
    }
  } catch (err: any) {
    if (err.name !== 'AbortError') throw err
  } finally {
    clearTimeout(timer)
  }
}

/** Runs the plans, `parallel` at a time. */
export async function runAborts (api: string, plans: AbortPlan[], parallel: number): Promise<void> {
  const queue = [...plans]
  await Promise.all(Array.from({ length: parallel }, async () => {
    for (let plan = queue.shift(); plan != null; plan = queue.shift()) await abortedRequest(api, plan)
  }))
}

/** A long generation streamed to a client that reads it all, until it aborts. */
export interface StreamingClient {
  controller: AbortController
  /** Chunks of the body read so far. */
  chunks: number
  ended: boolean
  /** Settles when the body ends or the client aborts. */
  read: Promise<void>
}

/** Starts a streamed /api/generate of `body` and resolves once its first chunk arrived. */
export async function streamingClient (api: string, body: object): Promise<StreamingClient> {
  const controller = new AbortController()
  const res = await fetch(`${api}/api/generate`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.any([controller.signal, AbortSignal.timeout(60_000)]) })
  const reader = res.body?.getReader()
  await reader?.read()
  const client: StreamingClient = { controller, chunks: 1, ended: false, read: Promise.resolve() }
  client.read = (async () => {
    while (reader != null && !(await reader.read().catch(() => ({ done: true }))).done) client.chunks++
    client.ended = true
  })()
  return client
}

/** The longest generation of the default model we know of: 407 tokens from this prompt and seed. */
export const LONG_GENERATION = { model: DEFAULT_MODELS.generate, prompt: 'Chapter 1.', stream: true, options: { num_predict: 2000, temperature: 0.9, seed: 2 } }

const OPEN = ['pending', 'running', 'paused']

/** Inference jobs as document 004 lists them at `api`. */
export interface TaskSummary { id: string, status: string, error?: string }

export async function inferenceTasks (api: string): Promise<TaskSummary[]> {
  const res = await fetch(`${api}/api/tasks?type=inference&limit=1000`, { signal: AbortSignal.timeout(30_000) })
  assert.equal(res.status, 200)
  return (await res.json() as { tasks: TaskSummary[] }).tasks
}

/** Waits `graceMs`, then asserts that every inference job at `api` reached a terminal state; returns them. */
export async function assertNoneLeftBehind (api: string, graceMs = 5000): Promise<TaskSummary[]> {
  await new Promise(resolve => setTimeout(resolve, graceMs))
  const tasks = await inferenceTasks(api)
  const open = tasks.filter(t => OPEN.includes(t.status)).map(t => `${t.id} ${t.status}`)
  assert.deepEqual(open, [], `${open.length} of ${tasks.length} jobs were left open ${graceMs} ms after their clients went away`)
  return tasks
}

/** Waits until the default generation model is registered at `api`. */
export async function defaultModelReady (api: string): Promise<void> {
  await waitFor('the default generation model', async () => {
    const res = await fetch(`${api}/api/tags`, { signal: AbortSignal.timeout(10_000) })
    return (await res.json() as { models: Array<{ name: string }> }).models.some(m => m.name === `${DEFAULT_MODELS.generate}:latest`)
  }, 120_000)
}
