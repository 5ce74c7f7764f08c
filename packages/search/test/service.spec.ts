/**
 * The search service over a real node's content, cluster and inference (an
 * in-process daemon with the default models), built here with settings a
 * test can reach: small batches, and snapshots far apart.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import { waitFor } from '../../../test/helpers/cluster.ts'
import { startTestDaemon } from '../../../test/helpers/daemon.ts'
import { createSearch } from '../src/service.ts'
import type { SearchInit, SearchService } from '../src/service.ts'
import type { TestDaemon } from '../../../test/helpers/daemon.ts'

const MODEL = 'tiny-embed:latest'
const WORDS = ['harbour', 'lantern', 'orchard', 'quarry', 'meadow', 'ferry', 'granary', 'belfry', 'cistern', 'pasture']

/** Short documents of one chunk each, every one with a word of its own. */
const documents = (n: number, prefix: string): Array<{ text: string, id: string }> =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, text: `The ${WORDS[i % WORDS.length]} of ${prefix}${i} lies past the mill.` }))

describe('search service', { timeout: 240_000 }, () => {
  let daemon: TestDaemon
  let dir: string
  const services: SearchService[] = []

  async function service (init: Partial<SearchInit>): Promise<SearchService> {
    const s = createSearch({ content: daemon.node.content, cluster: daemon.node.cluster, inference: daemon.node.inference, log: logger('test:search') }, { dir: join(dir, String(services.length)), defaultModel: MODEL, ...init })
    await s.start()
    services.push(s)
    return s
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'search-service-'))
    daemon = await startTestDaemon({ inference: { defaultModels: true } })
    await waitFor('the default embedding model', async () => (await daemon.node.cluster.getAllModels()).some(m => m.modelId === MODEL), 120_000)
  })
  after(async () => {
    await Promise.allSettled(services.map(async s => s.stop()))
    await daemon?.cleanup()
    await rm(dir, { recursive: true, force: true })
  })

  it('moves the head by time, not per batch, and once at the end with the indexes up to date', async () => {
    const search = await service({ batchChunks: 8, snapshotMs: 600_000 })
    await search.createCollection({ name: 'cadence', chunkTokens: 32, replicationFactor: 1 })
    const started = await search.index('cadence', { documents: documents(40, 'doc') })
    const job = await search.wait(started.id)
    assert.equal(job.status, 'completed', job.error)
    assert.equal(job.chunks, 40)
    assert.equal(job.batches, 5)
    assert.equal(job.snapshots, 1, 'no snapshot mid-job: the cadence is longer than the job')
    const collection = await search.collection('cadence')
    assert.deepEqual([collection.version, collection.headCID, collection.chunks], [1, job.headCID, 40])
    const [top] = await search.search({ collection: 'cadence', queryText: 'doc37', topK: 1, hopCount: 0 })
    assert.equal(top.doc_id, 'doc37')
    assert.equal(top.ranks?.bm25, 1)

    // A cadence of 0 moves the head after every batch, and again at the end once the indexes are up to date.
    const often = await service({ batchChunks: 8, snapshotMs: 0 })
    const second = await often.wait((await often.index('cadence', { documents: documents(16, 'more') })).id)
    assert.equal(second.status, 'completed', second.error)
    assert.deepEqual([second.batches, second.snapshots, second.version], [2, 3, 4])
    const [found] = await often.search({ collection: 'cadence', queryText: 'more15', topK: 1, hopCount: 0 })
    assert.equal(found.doc_id, 'more15')
  })
})
