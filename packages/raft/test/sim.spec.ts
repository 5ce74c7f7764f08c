/**
 * Runs the deterministic simulation over many seeds (3, 5 and 7 nodes, every
 * fault kind: see scenarioFor) and requires no safety, linearizability or
 * liveness violation. A failure names the seed and the command replaying it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { describeScenario, runSeed } from './sim/simulation.ts'
import type { RunOptions, SeedResult } from './sim/simulation.ts'

function runSeeds (from: number, count: number, opts: RunOptions = {}): SeedResult[] {
  const results: SeedResult[] = []
  for (let seed = from; seed < from + count; seed++) results.push(runSeed(seed, opts))
  return results
}

function failures (results: SeedResult[], nodes?: number): string[] {
  const replay = (seed: number): string => `npm run sim -- --seed ${seed}${nodes === undefined ? '' : ` --nodes ${nodes}`}`
  return results.flatMap(r => [...r.violations, ...r.liveness].map(v =>
    `seed ${r.seed} (${describeScenario(r.scenario)}): ${v}\n  replay: ${replay(r.seed)}`))
}

describe('simulation', () => {
  it('800 seeds of mixed clusters and faults: no violation', () => {
    const results = runSeeds(1, 800)
    assert.deepEqual(failures(results), [])
    // the runs did something worth checking
    const ops = results.reduce((n, r) => n + r.stats.ops, 0)
    const snaps = results.reduce((n, r) => n + r.stats.snapshotsApplied, 0)
    const confs = results.reduce((n, r) => n + r.stats.confChanges, 0)
    assert.ok(ops > 800 * 50 && snaps > 100 && confs > 100, `ops ${ops}, snapshots ${snaps}, conf changes ${confs}`)
  })

  it('150 seeds of 7-node clusters: no violation', () => {
    assert.deepEqual(failures(runSeeds(10_001, 150, { nodes: 7 }), 7), [])
  })

  it('catches a node that forgets its vote across a crash', () => {
    const results = runSeeds(1, 40, { sabotage: 'forget-vote' })
    assert.ok(results.some(r => r.violations.length > 0), 'no seed noticed the lost hard state')
  })

  it('catches reads answered before the read index is applied', () => {
    let caught: SeedResult | undefined
    for (let seed = 1; seed <= 300 && caught === undefined; seed++) {
      const r = runSeed(seed, { sabotage: 'early-read' })
      if (r.violations.some(v => v.includes('not linearizable'))) caught = r
    }
    assert.ok(caught !== undefined, 'no seed produced a stale read')
  })
})
