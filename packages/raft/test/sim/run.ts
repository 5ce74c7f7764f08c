/**
 * npm run sim -- --seeds N [--from S] [--nodes 3|5|7] [--mode pure|driver|both]   runs seeds S..S+N-1
 * npm run sim -- --seed S [--nodes 3|5|7] [--mode pure|driver]                    replays one seed with a trace on stderr
 *
 * Two simulations, both by default: 'pure' drives the library's RawNodes
 * alone (simulation.ts); 'driver' runs raft-node's driver and storage on a
 * simulated disk and network in virtual time (packages/raft-node/test/sim).
 * Seeds whose linearizability search runs out of budget are inconclusive:
 * counted apart, and the run fails when more than 1% of a mode's seeds are.
 */
import { parseArgs } from 'node:util'
import { describeDriverScenario, runDriverSeed } from '../../../raft-node/test/sim/simulation.ts'
import { describeScenario, runSeed } from './simulation.ts'

const { values } = parseArgs({
  options: {
    seeds: { type: 'string' },
    from: { type: 'string' },
    seed: { type: 'string' },
    nodes: { type: 'string' },
    mode: { type: 'string' }
  }
})

type Mode = 'pure' | 'driver'

const nodes = values.nodes === undefined ? undefined : Number(values.nodes)
if (nodes !== undefined && ![3, 5, 7].includes(nodes)) throw new Error('--nodes must be 3, 5 or 7')
const mode = values.mode ?? (values.seed === undefined ? 'both' : 'pure')
if (!['pure', 'driver', 'both'].includes(mode) || (values.seed !== undefined && mode === 'both')) {
  throw new Error('--mode must be pure, driver or (for a range of seeds) both')
}
const modes: Mode[] = mode === 'both' ? ['pure', 'driver'] : [mode as Mode]
/** The share of seeds allowed to be inconclusive. */
const MAX_INCONCLUSIVE = 0.01

export function replayCommand (m: Mode, seed: number, n?: number): string {
  return `npm run sim -- --mode ${m} --seed ${seed}${n === undefined ? '' : ` --nodes ${n}`}`
}

interface Outcome {
  seed: number
  scenario: string
  violations: string[]
  liveness: string[]
  inconclusive: boolean
  stats: Record<string, number>
}

async function runOne (m: Mode, seed: number, trace?: (line: string) => void): Promise<Outcome> {
  if (m === 'pure') {
    const r = runSeed(seed, { nodes, trace })
    return { ...r, scenario: describeScenario(r.scenario) }
  }
  const r = await runDriverSeed(seed, { nodes, trace })
  return { ...r, scenario: describeDriverScenario(r.scenario) }
}

function report (m: Mode, r: Outcome): void {
  for (const v of r.violations) console.log(`${m} seed ${r.seed} (${r.scenario}): VIOLATION ${v}\n  replay: ${replayCommand(m, r.seed, nodes)}`)
  for (const v of r.liveness) console.log(`${m} seed ${r.seed} (${r.scenario}): LIVENESS ${v}\n  replay: ${replayCommand(m, r.seed, nodes)}`)
}

let failed = false
for (const m of modes) {
  const started = performance.now()
  const seeds = values.seed !== undefined ? [Number(values.seed)] : []
  if (values.seed === undefined) {
    const from = Number(values.from ?? '1')
    for (let s = from; s < from + Number(values.seeds ?? '100'); s++) seeds.push(s)
  }
  let violations = 0
  let liveness = 0
  const inconclusive: number[] = []
  for (const seed of seeds) {
    const trace = values.seed === undefined ? undefined : (line: string): void => { process.stderr.write(line + '\n') }
    const r = await runOne(m, seed, trace)
    if (trace !== undefined) {
      console.error(`scenario: ${r.scenario}`)
      console.error(`stats: ${JSON.stringify(r.stats)}`)
    }
    report(m, r)
    if (r.violations.length > 0) violations++
    if (r.liveness.length > 0) liveness++
    if (r.inconclusive) inconclusive.push(r.seed)
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  const tooMany = inconclusive.length > MAX_INCONCLUSIVE * seeds.length
  console.log(`${m}: ${seeds.length} histories checked in ${seconds} s: ${violations} violations, ${liveness} liveness violations, ` +
    `${inconclusive.length} inconclusive${inconclusive.length > 0 ? ` (seeds ${inconclusive.join(', ')})` : ''}${tooMany ? `, more than ${MAX_INCONCLUSIVE * 100}%` : ''}`)
  if (violations > 0 || liveness > 0 || tooMany) failed = true
}
if (failed) process.exitCode = 1
