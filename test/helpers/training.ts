/**
 * Training jobs driven over the HTTP API of test daemons: datasets the tests
 * generate, jobs started and awaited, and checkpoint weights compared.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import WebSocket from 'ws'
import { seededRandom } from '@node-daemon/onnx'
import { decodeSafetensors, encodeTensorDataset } from '@node-daemon/training'
import { call, waitFor } from './cluster.ts'
import type { Member } from './cluster.ts'

export const FEATURES = 4
export const CLASSES = 3
export const CLASSIFIER = { model_type: 'mlp-classifier', inputs: FEATURES, hidden: [16], classes: CLASSES }

/** Gaussian blobs, one per class: a classifier can learn them well. */
export function blobs (rows: number, seed: number): Uint8Array {
  const random = seededRandom(seed)
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
  const features = new Float32Array(rows * FEATURES)
  const labels = new Int32Array(rows)
  for (let r = 0; r < rows; r++) {
    const label = r % CLASSES
    labels[r] = label
    for (let f = 0; f < FEATURES; f++) features[r * FEATURES + f] = (f % CLASSES === label ? 2 : 0) + 0.5 * normal()
  }
  return encodeTensorDataset({ features, labels, featureCount: FEATURES })
}

export async function addDataset (m: Pick<Member, 'api'>, name: string, bytes: Uint8Array): Promise<string> {
  const form = new FormData()
  form.append('name', name)
  form.append('file', new Blob([bytes as Uint8Array<ArrayBuffer>]), name)
  const { status, body } = await call(m, '/api/v0/ai/dataset/add', { method: 'POST', body: form })
  assert.equal(status, 200, JSON.stringify(body))
  return body.cid
}

export async function train (m: Parameters<typeof call>[0], request: Record<string, unknown>): Promise<string> {
  const { status, body } = await call(m, '/api/v1/training/start', { json: request })
  assert.equal(status, 200, JSON.stringify(body))
  return body.session_id
}

export async function finished (m: Parameters<typeof call>[0], session: string, timeoutMs = 180_000): Promise<any> {
  return waitFor(`training ${session} to finish`, async () => {
    const { body } = await call(m, `/api/v1/training/status?session_id=${session}`)
    if (body.status === 'failed') assert.fail(`training failed: ${body.error}`)
    return ['completed', 'stopped'].includes(body.status) ? body : undefined
  }, timeoutMs)
}

export async function weightsOf (m: Member, checkpoint: string): Promise<Record<string, Float32Array>> {
  const response = await fetch(`${m.api}/api/v0/cat?arg=${checkpoint}/weights.safetensors`, { method: 'POST' })
  assert.equal(response.status, 200)
  const { tensors } = decodeSafetensors(new Uint8Array(await response.arrayBuffer()))
  return Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, t.data as Float32Array]))
}

export function maxDifference (a: Record<string, Float32Array>, b: Record<string, Float32Array>): number {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort())
  let max = 0
  for (const name of Object.keys(a)) for (let i = 0; i < a[name].length; i++) max = Math.max(max, Math.abs(a[name][i] - b[name][i]))
  return max
}

/** A bare client of the worker WebSocket: the JSON messages it got, the steps (binary frames) it was sent, and how its socket closed. */
export interface WorkerSocket {
  ws: WebSocket
  messages: any[]
  steps: Uint8Array[]
  closed: Promise<[number, string]>
}

export async function workerSocket (url: string, headers: Record<string, string> = {}): Promise<WorkerSocket> {
  const ws = new WebSocket(url, { headers })
  const messages: any[] = []
  const steps: Uint8Array[] = []
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) steps.push(new Uint8Array(data))
    else messages.push(JSON.parse(data.toString()))
  })
  const closed = once(ws, 'close').then(([code, reason]) => [code as number, String(reason)] as [number, string])
  await Promise.race([once(ws, 'open'), closed])
  return { ws, messages, steps, closed }
}
