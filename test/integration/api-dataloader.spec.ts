/**
 * Document 000's data loader over the HTTP API of a two-node cluster: a
 * dataset added at one node is loaded at the other, its batches streamed as
 * NDJSON and over a WebSocket; a client that goes stops the reading, and an
 * idle loader expires.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { call, waitFor } from '../helpers/cluster.ts'
import { rpc, startTestDaemon } from '../helpers/daemon.ts'
import { ndjson } from '../helpers/streams.ts'
import { addDataset, blobs } from '../helpers/training.ts'
import type { Member } from '../helpers/cluster.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const RECORDS = 500
const JSONL = Array.from({ length: RECORDS }, (_, i) => JSON.stringify({ text: `sample number ${i}`, i })).join('\n') + '\n'

async function json (d: TestDaemon, path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number, body: any }> {
  return call({ api: d.url }, path, init)
}

async function loader (d: TestDaemon, config: object): Promise<string> {
  const { status, body } = await json(d, '/api/v0/ai/dataloader', { json: config })
  assert.equal(status, 200, JSON.stringify(body))
  assert.equal(body.success, true)
  return body.loader_id
}

async function batches (d: TestDaemon, id: string, epoch?: number): Promise<any[]> {
  const res = await fetch(`${d.url}/api/v0/ai/dataloader/batches?loader_id=${id}${epoch == null ? '' : `&epoch=${epoch}`}`, { signal: AbortSignal.timeout(60_000) })
  assert.equal(res.status, 200, await res.clone().text())
  assert.match(res.headers.get('content-type') ?? '', /ndjson/)
  return ndjson(res)
}

async function addFile (d: TestDaemon, text: string): Promise<string> {
  const form = new FormData()
  form.append('file', new Blob([text]))
  return ((await (await rpc(d, 'add', {}, { body: form })).json()) as { Hash: string }).Hash
}

describe('document 000 data loader on two nodes', { timeout: 180_000 }, () => {
  const daemons: TestDaemon[] = []
  let cid: string

  before(async () => {
    daemons.push(await startTestDaemon())
    daemons.push(await startTestDaemon({ swarm: { bootstrap: [daemons[0].swarmAddr] } }))
    await waitFor('two members', async () => (await daemons[0].node.cluster.nodes()).length === 2 && daemons[1].node.cluster.isReady(), 60_000)
    cid = await addDataset({ api: daemons[0].url } as Member, 'samples', new TextEncoder().encode(JSONL))
  })
  after(async () => { await Promise.allSettled(daemons.map(async d => d.cleanup())) })

  it('streams every record of a dataset added at another node once per epoch, in its seed\'s order', async () => {
    const id = await loader(daemons[1], { dataset_name: 'samples', batch_size: 64, seed: 3 })
    const { body: status } = await json(daemons[1], '/api/v0/ai/dataloader', { json: { loader_id: id } })
    assert.equal(status.loader_status.dataset_cid, cid)
    assert.deepEqual([status.loader_status.format, status.loader_status.records, status.loader_status.shuffle, status.loader_status.prefetch, status.loader_status.state], ['jsonl', RECORDS, true, 2, 'idle'])
    const epoch0 = await batches(daemons[1], id)
    assert.deepEqual(epoch0.map(b => b.size), [64, 64, 64, 64, 64, 64, 64, 52])
    assert.deepEqual(epoch0.map(b => b.batch), [0, 1, 2, 3, 4, 5, 6, 7])
    const order = epoch0.flatMap(b => b.records.map((r: any) => r.i))
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: RECORDS }, (_, i) => i))
    const epoch1 = await batches(daemons[1], id)
    assert.ok(epoch1.every(b => b.epoch === 1))
    assert.notDeepEqual(epoch1.flatMap(b => b.records), epoch0.flatMap(b => b.records))
    assert.deepEqual((await batches(daemons[1], id, 0)).flatMap(b => b.records), epoch0.flatMap(b => b.records))
    const { body: after } = await json(daemons[1], '/api/v0/ai/dataloader', { json: { loader_id: id } })
    assert.deepEqual([after.loader_status.epochs, after.loader_status.batches_served, after.loader_status.records_served], [3, 24, 3 * RECORDS])
    assert.ok(after.loader_status.expires_at != null)
  })

  it('finds a dataset named at another node before this node has applied its registration', async () => {
    // Holds back this node's own copy of the registry, as a follower that has not yet heard of the commit: the name is then read through the leader.
    const cluster = daemons[1].node.cluster
    const getModel = cluster.getModel
    cluster.getModel = async (name, options) => {
      if (options?.local === true) throw new Error(`model ${name} is not registered here yet`)
      return getModel.call(cluster, name, options)
    }
    try {
      const id = await loader(daemons[1], { dataset_name: 'samples', shuffle: false })
      assert.equal((await json(daemons[1], '/api/v0/ai/dataloader', { json: { loader_id: id } })).body.loader_status.dataset_cid, cid)
    } finally {
      cluster.getModel = getModel
    }
  })

  it('streams over a WebSocket, a batch per message, ending with done', async () => {
    const id = await loader(daemons[0], { dataset_cid: cid, batch_size: 200, shuffle: false })
    const socket = new WebSocket(`${daemons[0].url.replace('http', 'ws')}/ws/v0/dataloader/${id}`)
    const messages: any[] = []
    socket.on('message', (data) => { messages.push(JSON.parse(data.toString())) })
    const [code] = await once(socket, 'close', { signal: AbortSignal.timeout(60_000) }) as [number]
    assert.equal(code, 1000)
    assert.deepEqual(messages.map(m => m.size ?? m.batches), [200, 200, 100, 3])
    assert.deepEqual(messages.at(-1), { done: true, batches: 3 })
    assert.deepEqual(messages.slice(0, -1).flatMap(m => m.records.map((r: any) => r.i)), Array.from({ length: RECORDS }, (_, i) => i))
  })

  it('reads CSV, text and tensor datasets by CID', async () => {
    const csvCid = await addFile(daemons[0], 'city,note\nOslo,"cold, dark"\nLima,"said ""warm"""\n')
    const csv = await batches(daemons[1], await loader(daemons[1], { dataset_cid: csvCid, format: 'csv', shuffle: false }))
    assert.deepEqual(csv.flatMap(b => b.records), [{ city: 'Oslo', note: 'cold, dark' }, { city: 'Lima', note: 'said "warm"' }])
    const textCid = await addFile(daemons[1], 'first line\nsecond line\n')
    const text = await batches(daemons[0], await loader(daemons[0], { dataset_cid: textCid, shuffle: false }))
    assert.deepEqual(text.flatMap(b => b.records), ['first line', 'second line'])
    const tensorsCid = await addDataset({ api: daemons[0].url } as Member, 'blobs', blobs(30, 1))
    const tensors = await batches(daemons[1], await loader(daemons[1], { dataset_cid: tensorsCid, batch_size: 8 }))
    const rows = tensors.flatMap(b => b.records)
    assert.equal(rows.length, 30)
    assert.ok(rows.every((r: any) => r.features.length === 4 && [0, 1, 2].includes(r.label)), JSON.stringify(rows[0]))
  })

  it('stops reading when the client goes, so the loader streams again at once', async () => {
    // Far more than the sockets between server and client buffer, so that only a loader that stops leaves most of it unread.
    const rows = 32_000
    const big = await addDataset({ api: daemons[0].url } as Member, 'big', new TextEncoder().encode(Array.from({ length: rows }, (_, i) => JSON.stringify({ text: `${i} `.padEnd(1000, 'x') })).join('\n')))
    const id = await loader(daemons[1], { dataset_cid: big, batch_size: 100, prefetch: 1 })
    const controller = new AbortController()
    const res = await fetch(`${daemons[1].url}/api/v0/ai/dataloader/batches?loader_id=${id}`, { signal: controller.signal })
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    controller.abort()
    const status = await waitFor('the pass to end', async () => {
      const { body } = await json(daemons[1], '/api/v0/ai/dataloader', { json: { loader_id: id } })
      return body.loader_status.state === 'idle' ? body.loader_status : undefined
    }, 30_000)
    assert.ok(status.records_served < rows / 2, `${String(status.records_served)} of ${rows} records went to a client that left`)
    const again = await batches(daemons[1], id)
    assert.equal(again.reduce((sum, b) => sum + Number(b.size), 0), rows)
  })

  it('forgets an idle loader when it expires', async () => {
    const id = await loader(daemons[0], { dataset_name: 'samples', ttl_seconds: 1 })
    await waitFor('the loader to expire', async () => (await json(daemons[0], '/api/v0/ai/dataloader', { json: { loader_id: id } })).status === 404, 20_000)
  })

  it("answers bad input in document 000's error shape", async () => {
    const id = await loader(daemons[0], { dataset_cid: cid })
    const closed = await json(daemons[0], '/api/v0/ai/dataloader/close', { json: { loader_id: id } })
    assert.equal(closed.status, 200, JSON.stringify(closed.body))
    for (const [path, init, status] of [
      ['/api/v0/ai/dataloader', { json: { dataset_cid: cid, batch_size: 0 } }, 422],
      ['/api/v0/ai/dataloader', { json: { dataset_cid: cid, shuffle: 'yes' } }, 422],
      ['/api/v0/ai/dataloader', { json: {} }, 400],
      ['/api/v0/ai/dataloader', { json: { dataset_cid: 'not-a-cid' } }, 400],
      ['/api/v0/ai/dataloader', { json: { dataset_name: 'no-such-dataset' } }, 400],
      ['/api/v0/ai/dataloader', { json: { loader_id: id } }, 404],
      ['/api/v0/ai/dataloader', { json: { loader_id: 'x', batch_size: 3 } }, 400],
      [`/api/v0/ai/dataloader/batches?loader_id=${id}`, {}, 404],
      ['/api/v0/ai/dataloader/batches', {}, 400],
      ['/api/v0/ai/dataloader/batches?loader_id=x&epoch=-1', {}, 422]
    ] as const) {
      const res = await json(daemons[0], path, init as RequestInit & { json?: unknown })
      assert.equal(res.status, status, `${path} ${JSON.stringify(init)}: ${JSON.stringify(res.body)}`)
      assert.equal(res.body.success, false)
      assert.equal(res.body.status_code, status)
    }
    // A dataset that is bad past its first batch ends the stream with an error line in the same shape.
    const bad = await addFile(daemons[0], '{"i": 1}\n{"i": 2}\nnot json\n')
    const lines = await batches(daemons[0], await loader(daemons[0], { dataset_cid: bad, batch_size: 1, shuffle: false, prefetch: 0 }))
    assert.deepEqual(lines.at(-1).error_type, 'IPFSValidationError')
    assert.match(lines.at(-1).error, /line 3/)
  })

  it('is reached through GraphQL', async () => {
    const query = async (text: string): Promise<any> => (await json(daemons[1], '/api/v0/graphql', { json: { query: text } })).body
    const made = await query(`mutation { createDataLoader(datasetCid: "${cid}", batchSize: 7, dropLast: true) { loaderId status } }`)
    assert.equal(made.errors, undefined, JSON.stringify(made))
    assert.deepEqual([made.data.createDataLoader.status.batch_size, made.data.createDataLoader.status.drop_last], [7, true])
    const id = made.data.createDataLoader.loaderId
    assert.equal((await query(`{ dataLoader(loaderId: "${id}") { status } }`)).data.dataLoader.status.state, 'idle')
    await query(`mutation { closeDataLoader(loaderId: "${id}") { loaderId } }`)
    const gone = await query(`{ dataLoader(loaderId: "${id}") { status } }`)
    assert.equal(gone.errors[0].extensions.code, 'LoaderNotFoundError')
  })

  it('is reached through the method caller', async () => {
    const { status, body } = await json(daemons[0], '/api/ai_data_loader', { json: { args: [cid], kwargs: { batch_size: 100, shuffle: false } } })
    assert.equal(status, 200, JSON.stringify(body))
    assert.deepEqual([body.loader_status.batch_size, body.loader_status.shuffle], [100, false])
  })
})
