/**
 * Runs the simulation of the real driver and storage (test/sim/simulation.ts)
 * over a bounded range of seeds, every fault kind among them, and requires no
 * safety, exactly-once, durability, linearizability or liveness violation.
 * `npm run sim -- --mode driver --seeds N` runs as many as asked; a failure
 * here names the seed and the command replaying it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { describeDriverScenario, runDriverSeed } from './sim/simulation.ts'
import type { DriverRunOptions, DriverSeedResult } from './sim/simulation.ts'

const SEEDS = 50

async function firstCaught (sabotage: DriverRunOptions['sabotage'], pattern: RegExp, seeds: number): Promise<DriverSeedResult | undefined> {
  for (let seed = 1; seed <= seeds; seed++) {
    const r = await runDriverSeed(seed, { sabotage })
    if (r.violations.some(v => pattern.test(v))) return r
  }
  return undefined
}

describe('driver simulation', () => {
  it(`${SEEDS} seeds of mixed faults: no violation, at most 1% inconclusive`, async () => {
    const results: DriverSeedResult[] = []
    for (let seed = 1; seed <= SEEDS; seed++) results.push(await runDriverSeed(seed))
    const failures = results.flatMap(r => [...r.violations, ...r.liveness].map(v =>
      `seed ${r.seed} (${describeDriverScenario(r.scenario)}): ${v}\n  replay: npm run sim -- --mode driver --seed ${r.seed}`))
    assert.deepEqual(failures, [])
    const inconclusive = results.filter(r => r.inconclusive).map(r => r.seed)
    assert.ok(inconclusive.length <= SEEDS / 100, `inconclusive seeds: ${inconclusive.join(', ')}`)
    // the runs did something worth checking
    const total = (stat: string): number => results.reduce((n, r) => n + r.stats[stat], 0)
    const seen = Object.fromEntries(['ops', 'acked', 'powerLosses', 'tornWrites', 'kills', 'restarts', 'partitions', 'snapshots', 'duplicated', 'confChanges', 'retired'].map(s => [s, total(s)]))
    assert.ok(seen.ops > SEEDS * 150 && seen.acked > SEEDS * 50 && seen.powerLosses > 20 && seen.tornWrites > 0 && seen.kills > 10 &&
      seen.restarts > 0 && seen.partitions > 20 && seen.snapshots > 20 && seen.duplicated > 0 && seen.confChanges > 20 && seen.retired > 0, JSON.stringify(seen))
  })

  it('catches a proposal applied twice, when the network may deliver a MsgProp twice', async () => {
    assert.ok(await firstCaught('duplicate-proposals', /applied operation \S+ twice/, 20) !== undefined, 'no seed applied an operation twice')
  })

  it('catches a save acknowledged before it was synced', async () => {
    assert.ok(await firstCaught('skip-fsync', /synced/, 30) !== undefined, 'no seed lost what a save acknowledged')
  })

  it('catches reads answered without the read barrier', async () => {
    assert.ok(await firstCaught('dirty-read', /not linearizable/, 20) !== undefined, 'no seed produced a stale read')
  })
})
