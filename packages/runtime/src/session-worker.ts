/**
 * The worker thread that holds one loaded model's onnxruntime session
 * (worker-session.ts starts it). It loads the model, rewriting the graph so
 * that a step returns only the keys and values it adds, then runs steps as
 * they come. Loading happens here too: reading and rewriting a large model
 * takes seconds of its own.
 */
import { readFile, stat } from 'node:fs/promises'
import { parentPort, workerData } from 'node:worker_threads'
import { appendedKeyValues } from '@node-daemon/onnx'
import * as ort from 'onnxruntime-node'
import { bitsOf, fed } from './float16.ts'
import { createSession, movable, tensors, toWire, withFetched } from './worker-session.ts'
import type { SessionSource, WireTensor, WorkerReply, WorkerRequest } from './worker-session.ts'

const port = parentPort as NonNullable<typeof parentPort>
const source = workerData as SessionSource

async function rewrite (): Promise<ReturnType<typeof appendedKeyValues> | undefined> {
  // A graph the node built is loaded as it is.
  if ('model' in source) return undefined
  const { path, rewriteMaxBytes, roomMasked } = source
  return (await stat(path)).size <= rewriteMaxBytes ? appendedKeyValues(await readFile(path), { roomMasked }) : undefined
}

async function load (): Promise<{ session: ort.InferenceSession, appended?: Record<string, string>, sliced?: boolean }> {
  const rewritten = await rewrite()
  return { session: await createSession(source, rewritten?.model), appended: rewritten?.outputs, sliced: rewritten?.sliced }
}

async function run (session: ort.InferenceSession, request: Extract<WorkerRequest, { type: 'run' }>): Promise<void> {
  const kept: Record<string, WireTensor> = {}
  for (const name of request.keep) kept[name] = request.feeds[name]
  let reply: WorkerReply
  try {
    const feeds = tensors(request.feeds)
    for (const t of Object.values(feeds)) fed(t)
    const t0 = performance.now()
    const out = await session.run(feeds, tensors(request.fetches))
    const ms = performance.now() - t0
    // onnxruntime-node gives every output an ArrayBuffer of its own; the fetches go back as they came.
    const outputs = Object.fromEntries(Object.entries(withFetched(out, request.fetches)).map(([name, t]) => [name, { type: t.type, dims: t.dims, data: t instanceof ort.Tensor ? bitsOf(t) : t.data }]))
    reply = { type: 'result', id: request.id, outputs, kept, ms }
  } catch (err) {
    reply = { type: 'result', id: request.id, error: toWire(err) }
  }
  const moving = movable([...Object.values(reply.outputs ?? {}), ...Object.values(reply.kept ?? {})])
  port.postMessage(reply, moving)
  // What did not go back is freed now: left to this thread's collector, it could pile up for thousands of steps.
  for (const buffer of movable(Object.values(request.feeds))) if (!buffer.detached) buffer.transfer(0)
}

try {
  const { session, appended, sliced } = await load()
  port.on('message', (request: WorkerRequest) => {
    if (request.type === 'run') {
      void run(session, request)
      return
    }
    if (request.type === 'model') {
      // Rewritten again rather than kept since the load: most models never move.
      void rewrite().then(rewritten => {
        const reply: WorkerReply = { type: 'model', model: rewritten?.model }
        const { buffer, byteLength } = rewritten?.model ?? {}
        port.postMessage(reply, buffer instanceof ArrayBuffer && buffer.byteLength === byteLength ? [buffer] : [])
      }, err => {
        const reply: WorkerReply = { type: 'model', error: toWire(err) }
        port.postMessage(reply)
      })
      return
    }
    // Closing the port lets the thread end once the session is freed.
    void session.release().finally(() => { port.close() })
  })
  const ready: WorkerReply = { type: 'ready', inputNames: [...session.inputNames], outputNames: [...session.outputNames], inputMetadata: [...session.inputMetadata], outputMetadata: [...session.outputMetadata], appended, sliced }
  port.postMessage(ready)
} catch (err) {
  const failed: WorkerReply = { type: 'failed', error: toWire(err) }
  port.postMessage(failed)
  port.close()
}
