/**
 * npm run sim -- --seeds N [--from S] [--nodes 3|5|7]   runs seeds S..S+N-1
 * npm run sim -- --seed S [--nodes 3|5|7]               replays one seed with a trace on stderr
 */
import { parseArgs } from 'node:util'
import { describeScenario, runSeed } from './simulation.ts'
import type { SeedResult } from './simulation.ts'

const { values } = parseArgs({
  options: {
    seeds: { type: 'string' },
    from: { type: 'string' },
    seed: { type: 'string' },
    nodes: { type: 'string' }
  }
})

const nodes = values.nodes === undefined ? undefined : Number(values.nodes)
if (nodes !== undefined && ![3, 5, 7].includes(nodes)) throw new Error('--nodes must be 3, 5 or 7')

export function replayCommand (seed: number, n?: number): string {
  return `npm run sim -- --seed ${seed}${n === undefined ? '' : ` --nodes ${n}`}`
}

function report (r: SeedResult): void {
  for (const v of r.violations) console.log(`seed ${r.seed} (${describeScenario(r.scenario)}): VIOLATION ${v}\n  replay: ${replayCommand(r.seed, nodes)}`)
  for (const v of r.liveness) console.log(`seed ${r.seed} (${describeScenario(r.scenario)}): LIVENESS ${v}\n  replay: ${replayCommand(r.seed, nodes)}`)
  if (r.inconclusive) console.log(`seed ${r.seed}: linearizability search ran out of budget (not counted)`)
}

let checked = 0
let violations = 0
let liveness = 0
const started = performance.now()
if (values.seed !== undefined) {
  const r = runSeed(Number(values.seed), { nodes, trace: line => process.stderr.write(line + '\n') })
  console.error(`scenario: ${describeScenario(r.scenario)}`)
  console.error(`stats: ${JSON.stringify(r.stats)}`)
  report(r)
  checked = 1
  violations = r.violations.length > 0 ? 1 : 0
  liveness = r.liveness.length > 0 ? 1 : 0
} else {
  const count = Number(values.seeds ?? '100')
  const from = Number(values.from ?? '1')
  for (let seed = from; seed < from + count; seed++) {
    const r = runSeed(seed, { nodes })
    report(r)
    checked++
    if (r.violations.length > 0) violations++
    if (r.liveness.length > 0) liveness++
  }
}
console.log(`${liveness} liveness violations (${((performance.now() - started) / 1000).toFixed(1)} s)`)
console.log(`${checked} histories checked, ${violations} violations`)
if (violations > 0 || liveness > 0) process.exitCode = 1
