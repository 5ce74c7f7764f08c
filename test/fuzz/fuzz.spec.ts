/**
 * The fuzz suite at the size `npm test` affords: about 30 bad requests for
 * every route of the daemon's OpenAPI document, each answered with a 4xx in
 * its family's shape within 10 s, none naming the repo's path; then the
 * daemon still answers /health and its memory stayed bounded. The seed
 * changes daily and is printed on failure; `npm run fuzz -- --seed S`
 * replays it, and `--per-route N` runs more.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startFuzzDaemon } from './daemon.ts'
import { describeFailure, fuzz } from './fuzz.ts'
import { fetchOperations } from './openapi.ts'
import type { FuzzDaemon } from './daemon.ts'

const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Date.now() / 86_400_000))

describe('fuzzing every route', { timeout: 300_000 }, () => {
  let daemon: FuzzDaemon
  before(async () => { daemon = await startFuzzDaemon() })
  after(async () => { await daemon?.stop() })

  it('answers bad input with a 4xx in the family\'s shape, in time, naming no path, and stays up', async () => {
    const operations = await fetchOperations(daemon.api)
    assert.ok(operations.length > 100, `the OpenAPI document lists ${operations.length} operations`)
    const idle = (await daemon.memory()).rss
    await daemon.resetPeak()
    const report = await fuzz(daemon.api, operations, { perRoute: 30, seed: SEED, timeoutMs: 10_000, concurrency: 4, secret: daemon.repo, budgetMs: 150_000, ctx: { peerId: daemon.peerId, keys: daemon.keys } })
    for (const status of ['401', '403', '429']) assert.ok(report.statuses.get(status) != null, `no ${status} among the answers`)
    assert.deepEqual(report.failures.map(describeFailure), [], `seed ${SEED}: replay with npm run fuzz -- --seed ${SEED} --per-route 30`)
    assert.ok(report.cases > operations.length * 20, `only ${report.cases} cases ran in the time allowed`)
    assert.equal((await fetch(`${daemon.api}/health`, { signal: AbortSignal.timeout(10_000) })).status, 200)
    const { peak } = await daemon.memory()
    assert.ok(peak - idle < 256, `RSS rose from ${idle.toFixed(0)} to ${peak.toFixed(0)} MB`)
  })
})
