/**
 * `npm run chaos -- --minutes N [--nodes 3..5] [--clients C] [--rate OPS_PER_S] [--out DIR]`:
 * real daemons in network namespaces under a nemesis (see harness.ts), as
 * root. Prints the summary and exits 1 on any violation or lost
 * acknowledged write, 2 when the run itself could not be made. Ctrl-C stops
 * the run and cleans up; a second Ctrl-C cleans up at once and exits.
 */
import { parseArgs } from 'node:util'
import { failed, formatSummary, runChaos } from './harness.ts'
import { namespaceSupport } from './net.ts'

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '5' },
    clients: { type: 'string' },
    rate: { type: 'string' },
    out: { type: 'string' }
  }
})
const minutes = Number(values.minutes)
const nodes = Number(values.nodes)
if (!(minutes > 0) || !Number.isInteger(nodes) || nodes < 3 || nodes > 5) {
  console.error('usage: npm run chaos -- --minutes N [--nodes 3..5] [--clients C] [--rate OPS_PER_S] [--out DIR]')
  process.exit(2)
}
const unsupported = await namespaceSupport()
if (unsupported != null) {
  console.error(`chaos: cannot run here: ${unsupported}`)
  process.exit(2)
}

const interrupt = new AbortController()
let interrupts = 0
const onSignal = (): void => {
  // the first stops the run, which cleans up; the second leaves at once, and the exit handler cleans up
  if (interrupts++ > 0) process.exit(130)
  console.error('chaos: stopping and cleaning up (again to leave at once)')
  interrupt.abort(new Error('interrupted'))
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

const started = Date.now()
try {
  const summary = await runChaos({
    seconds: minutes * 60,
    nodes,
    clients: values.clients == null ? undefined : Number(values.clients),
    rate: values.rate == null ? undefined : Number(values.rate),
    out: values.out,
    log: line => console.log(`[${((Date.now() - started) / 1000).toFixed(0)}s] ${line}`)
  }, interrupt.signal)
  console.log(formatSummary(summary))
  console.log(`wall time ${((Date.now() - started) / 1000).toFixed(0)} s`)
  process.exitCode = failed(summary) ? 1 : 0
} catch (err: any) {
  console.error(`chaos: ${interrupt.signal.aborted ? 'interrupted' : `the run failed: ${err.stack ?? err.message}`}`)
  process.exitCode = interrupt.signal.aborted ? 130 : 2
}
