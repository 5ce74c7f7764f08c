/**
 * A short chaos run in `npm test`: three daemons in network namespaces under
 * the nemesis for 60 s, at a faster pace than `npm run chaos` (faults held 4-9 s,
 * 2-4 s apart: about six in a run), then its checks. It needs root
 * and iproute2, iptables and python3 (CI installs them, see .ci/run), and
 * skips, saying why, where namespaces cannot be made.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { describe, it } from 'node:test'
import { formatSummary, runChaos } from './harness.ts'
import { namespaceSupport } from './net.ts'

const unsupported = await namespaceSupport()

describe('three daemons under a nemesis', () => {
  it('keep every acknowledged write, read each other\'s content once healed, and every history they give is linearizable', { skip: unsupported == null ? false : `cannot make network namespaces here: ${unsupported}`, timeout: 290_000 }, async (t) => {
    const summary = await runChaos({ seconds: 60, nodes: 3, pace: { holdMs: [4000, 9000], quietMs: [2000, 4000] }, log: line => t.diagnostic(line) })
    const text = formatSummary(summary)
    for (const line of text.split('\n')) t.diagnostic(line)
    assert.deepEqual(summary.report.violations, [], text)
    assert.deepEqual(summary.report.lost, [], text)
    assert.deepEqual(summary.unreadable, [], text)
    // not a run where nothing happened
    assert.ok(summary.faults.length >= 3, text)
    for (const kind of ['pin.add', 'model.vote', 'job.submit'] as const) assert.ok(summary.ops[kind].ok > 0, `no ${kind} was acknowledged\n${text}`)
    // nothing left behind
    assert.doesNotMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), new RegExp(`ndc${process.pid}-`))
  })
})
