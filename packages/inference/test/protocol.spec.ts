import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import { introduce, startLibp2p } from '../../../test/helpers/raft.ts'
import { InferenceProtocol } from '../src/protocol.ts'
import type { Job, WorkerEvent } from '../src/protocol.ts'
import type { Libp2p } from '@libp2p/interface'

/** 1,000 embeddings of 768 dimensions, as JSON: about 13 MB, past the 4 MiB a libp2p stream buffers by default. */
const embeddings = Array.from({ length: 1000 }, (_, i) => Array.from({ length: 768 }, (_, j) => Math.sin(i * 768 + j)))

async function collect (events: AsyncIterable<WorkerEvent>): Promise<WorkerEvent[]> {
  const all: WorkerEvent[] = []
  for await (const e of events) all.push(e)
  return all
}

/** A generation's events with every optional part: the start with the echoed prompt, chunks with and without logprobs. */
const GENERATION: WorkerEvent[] = [
  { type: 'start', promptText: 'Once' },
  { type: 'chunk', text: ' upon', logprobs: [{ token: ' upon', bytes: [32, 117, 112, 111, 110], logprob: -0.25, top: [{ token: ' upon', bytes: [32, 117, 112, 111, 110], logprob: -0.25 }, { token: ' a', bytes: [32, 97], logprob: -2 }] }] },
  { type: 'chunk', text: ' a' },
  { type: 'done', result: { text: ' upon a', context: [1, 2, 3] } }
]

describe('the inference protocol', () => {
  let caller: Libp2p
  let worker: Libp2p
  let served: InferenceProtocol
  let calling: InferenceProtocol
  const allowed = new Set<string>()

  before(async () => {
    caller = await startLibp2p()
    worker = await startLibp2p()
    await introduce([caller, worker])
    served = new InferenceProtocol({ libp2p: worker, log: logger('test:inference') }, {
      allow: peer => allowed.has(peer),
      jobTimeoutMs: 30_000,
      // Echoes the inputs' count, so that the request's size is checked too.
      handler: async function * (_from, job) {
        if (job.kind === 'generate') {
          yield * GENERATION
          return
        }
        if (job.kind === 'rerank') {
          yield { type: 'done', result: { kind: job.kind, documents: job.body.documents.length } }
          return
        }
        yield { type: 'chunk', text: 'embedding' }
        yield { type: 'done', result: { inputs: job.body.input.length, embeddings } }
      }
    })
    calling = new InferenceProtocol({ libp2p: caller, log: logger('test:inference') }, { allow: () => false, jobTimeoutMs: 30_000, handler: async function * () {} })
    await served.start()
    await calling.start()
  })

  after(async () => {
    await Promise.allSettled([served?.stop(), calling?.stop()])
    await Promise.allSettled([caller?.stop(), worker?.stop()])
  })

  const job = (input: string[]): Job => ({ kind: 'embed', jobId: 1, modelCid: 'bafy', modelName: 'embed', body: { input } })

  it('carries requests and results larger than a stream buffers by default', async () => {
    allowed.add(caller.peerId.toString())
    const input = Array.from({ length: 50_000 }, (_, i) => `text number ${i} `.repeat(8))
    const events = await collect(calling.call(worker.peerId.toString(), job(input), {}, AbortSignal.timeout(60_000)))
    assert.deepEqual(events[0], { type: 'chunk', text: 'embedding' })
    assert.deepEqual(events[1], { type: 'done', result: { inputs: input.length, embeddings } })
  })

  it('carries a rerank as a rerank, not as the embedding it is answered like', async () => {
    allowed.add(caller.peerId.toString())
    const events = await collect(calling.call(worker.peerId.toString(), { kind: 'rerank', jobId: 0, modelCid: 'bafy', modelName: 'rr', body: { query: 'q', documents: ['a', 'b'] } }, {}, AbortSignal.timeout(30_000)))
    assert.deepEqual(events, [{ type: 'done', result: { kind: 'rerank', documents: 2 } }])
  })

  it("carries a generation's start, and its chunks' log-probabilities when there are some", async () => {
    allowed.add(caller.peerId.toString())
    const events = await collect(calling.call(worker.peerId.toString(), { kind: 'generate', jobId: 2, modelCid: 'bafy', modelName: 'gpt', body: {} }, {}, AbortSignal.timeout(30_000)))
    assert.deepEqual(events, GENERATION)
  })

  it('refuses a caller that is not a member', async () => {
    allowed.clear()
    await assert.rejects(collect(calling.call(worker.peerId.toString(), job(['x']), {}, AbortSignal.timeout(10_000))), { name: 'InferenceProtocolError' })
  })
})
