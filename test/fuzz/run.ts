/**
 * npm run fuzz -- [--per-route N] [--seed S] [--route REGEX] [--concurrency C] [--models] [--local]
 *
 * Starts a daemon, sends N fuzzed requests to every route of its OpenAPI
 * document, and prints the answers by status class, per route and in all,
 * and every request that failed: a 5xx, no answer within 10 s, an answer in
 * no family's error shape, or one naming the repo's path. The daemon requires
 * credentials, and the requests carry good, narrow, missing and broken ones
 * (`--local` runs it as a node without credentials). Then checks that
 * the daemon still answers /health and how far its memory rose. Exits 1 on
 * any failure.
 */
import { parseArgs } from 'node:util'
import { startFuzzDaemon } from './daemon.ts'
import { describeFailure, fuzz } from './fuzz.ts'
import { fetchOperations } from './openapi.ts'

const { values } = parseArgs({
  options: {
    'per-route': { type: 'string', default: '300' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    route: { type: 'string' },
    concurrency: { type: 'string', default: '4' },
    models: { type: 'boolean', default: false },
    local: { type: 'boolean', default: false }
  }
})

const perRoute = Number(values['per-route'])
const seed = Number(values.seed)
const daemon = await startFuzzDaemon({ defaultModels: values.models, auth: !values.local })
let failed = false
try {
  const filter = values.route == null ? undefined : new RegExp(values.route)
  const operations = (await fetchOperations(daemon.api)).filter(op => filter == null || filter.test(`${op.method} ${op.path}`))
  const idle = (await daemon.memory()).rss
  await daemon.resetPeak()
  console.log(`fuzzing ${operations.length} operations, ${perRoute} cases each, seed ${seed}`)
  const started = Date.now()
  const report = await fuzz(daemon.api, operations, { perRoute, seed, timeoutMs: 10_000, concurrency: Number(values.concurrency), secret: daemon.repo, ctx: { peerId: daemon.peerId, keys: daemon.keys } })
  for (const [name, counts] of report.byOperation) {
    console.log(`${name.padEnd(52)} ${Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ')}`)
  }
  for (const failure of report.failures) console.log(`FAIL ${failure.operation}: ${describeFailure(failure)}`)
  const health = await fetch(`${daemon.api}/health`, { signal: AbortSignal.timeout(10_000) }).then(res => res.status, () => 0)
  const { peak } = await daemon.memory()
  console.log(`${report.cases} cases in ${((Date.now() - started) / 1000).toFixed(0)} s: ${Object.entries(report.byOutcome).map(([k, n]) => `${k} ${n}`).join(', ')}`)
  console.log(`by status: ${[...report.statuses].sort().map(([s, n]) => `${s} ${n}`).join(', ')}`)
  console.log(`${report.failures.length} failures; /health ${health}; RSS ${idle.toFixed(0)} MB idle, ${peak.toFixed(0)} MB at most (+${(peak - idle).toFixed(0)} MB)`)
  failed = report.failures.length > 0 || health !== 200
} finally {
  await daemon.stop()
}
if (failed) process.exitCode = 1
