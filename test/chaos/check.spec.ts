/**
 * The chaos checker on histories written by hand: it passes what a correct
 * cluster may do, with writes of unknown outcome, and catches stale reads,
 * a version granted twice, ids out of order, lost and duplicated writes.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { checkHistory } from './check.ts'
import type { CheckInput, FinalState } from './check.ts'
import type { Op, OpResult } from './workload.ts'

const PIN = 'bafkqaaa'
const MODEL = 'm:latest'
const BASE = 'QmBase'

let index = 0
function op (kind: Op['kind'], call: number, ret: number, type: Op['type'], result?: OpResult, rest: Partial<Op> = {}): Op {
  return { index: index++, process: index, node: 'n1', kind, call, ret: type === 'info' ? Infinity : ret, type, result, ...rest }
}

function final (over: Partial<FinalState> = {}): FinalState {
  return { node: 'n1', pins: [], models: {}, jobs: [], jobTable: over.jobs?.length ?? 0, ...over }
}

function check (history: Op[], finals: FinalState[] = [final()], promptCIDs = new Map<string, string>()): ReturnType<typeof checkHistory> {
  const input: CheckInput = { history, pinKeys: [PIN], modelIds: [MODEL], registerCID: BASE, firstJobId: 1, promptCIDs, finals }
  return checkHistory(input)
}

describe('the chaos checker', () => {
  it('passes a history a correct cluster can give, with a write of unknown outcome', () => {
    const r = check([
      op('pin.add', 0, 10, 'ok', { kind: 'pin.add', rejected: false }, { key: PIN }),
      op('pin.read', 20, 30, 'ok', { kind: 'pin.read', pins: [PIN] }),
      op('pin.rm', 40, 50, 'info', undefined, { key: PIN }),
      op('pin.read', 60, 70, 'ok', { kind: 'pin.read', pins: [PIN] }),
      op('pin.read', 80, 90, 'ok', { kind: 'pin.read', pins: [] })
    ])
    assert.deepEqual(r.violations, [])
    assert.deepEqual(r.lost, [])
  })

  it('catches a stale read of the pinset', () => {
    const r = check([
      op('pin.add', 0, 10, 'ok', { kind: 'pin.add', rejected: false }, { key: PIN }),
      op('pin.read', 20, 30, 'ok', { kind: 'pin.read', pins: [] })
    ], [final({ pins: [PIN] })])
    assert.match(r.violations[0]?.what ?? '', /pin bafkqaaa is not linearizable/)
  })

  it('catches a version granted twice, and an acknowledged version missing at the end', () => {
    const models = { [MODEL]: { version: 2, cid: 'QmA', versions: [{ version: 1, cid: BASE }, { version: 2, cid: 'QmA' }] } }
    const history = [
      op('model.register', 0, 10, 'ok', { kind: 'model.register', outcome: 'ok' }, { key: MODEL }),
      op('model.vote', 20, 30, 'ok', { kind: 'model.vote', outcome: 'ok', version: 2 }, { key: MODEL, args: { expected: 1, cid: 'QmA' } }),
      op('model.vote', 40, 50, 'ok', { kind: 'model.vote', outcome: 'ok', version: 2 }, { key: MODEL, args: { expected: 1, cid: 'QmB' } })
    ]
    const r = check(history, [final({ models })])
    assert.match(r.violations[0]?.what ?? '', /model m:latest is not linearizable/)
    assert.equal(r.lost.length, 1)
    assert.match(r.lost[0].what, /version 2 \(op \d+\) is missing on n1/)
  })

  it('catches job ids out of real-time order, and a submission that became two jobs', () => {
    const history = [
      op('job.submit', 0, 10, 'ok', { kind: 'job.submit', jobId: 2, promptCID: 'QmP1' }, { args: { prompt: 'p1' } }),
      op('job.submit', 20, 30, 'ok', { kind: 'job.submit', jobId: 1, promptCID: 'QmP2' }, { args: { prompt: 'p2' } })
    ]
    const jobs = [{ jobId: 1, promptCID: 'QmP2' }, { jobId: 2, promptCID: 'QmP1' }, { jobId: 3, promptCID: 'QmP1' }]
    const r = check(history, [final({ jobs })], new Map([['p1', 'QmP1'], ['p2', 'QmP2']]))
    assert.ok(r.violations.some(v => /the job table is not linearizable/.test(v.what)), JSON.stringify(r.violations))
    assert.ok(r.violations.some(v => /one submission became jobs 2, 3/.test(v.what)), JSON.stringify(r.violations))
  })

  it('places a submission of unknown outcome where the final state says it went', () => {
    const history = [
      op('job.submit', 0, 10, 'info', undefined, { args: { prompt: 'p1' } }),
      op('job.read', 20, 30, 'ok', { kind: 'job.read', exists: true }, { args: { jobId: 1 } }),
      op('job.submit', 40, 50, 'ok', { kind: 'job.submit', jobId: 2, promptCID: 'QmP2' }, { args: { prompt: 'p2' } })
    ]
    const jobs = [{ jobId: 1, promptCID: 'QmP1' }, { jobId: 2, promptCID: 'QmP2' }]
    const promptCIDs = new Map([['p1', 'QmP1'], ['p2', 'QmP2']])
    assert.deepEqual(check(history, [final({ jobs })], promptCIDs).violations, [])
    // without the job it made, the read of job 1 and the id 2 have no explanation
    assert.match(check(history, [final({ jobs: jobs.slice(1) })], promptCIDs).violations[0]?.what ?? '', /the job table is not linearizable/)
  })

  it('counts an acknowledged pin missing at the end as lost, and nodes that disagree', () => {
    const history = [op('pin.add', 0, 10, 'ok', { kind: 'pin.add', rejected: false }, { key: PIN })]
    const r = check(history, [final({ pins: [PIN] }), final({ node: 'n2' })])
    assert.equal(r.lost.length, 1)
    assert.match(r.lost[0].what, /pin bafkqaaa added \(op \d+\) is missing on n2/)
    assert.match(r.violations[0]?.what ?? '', /n2 and n1 hold different pins/)
  })
})
