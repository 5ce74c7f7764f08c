import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Inflights, ProgressTracker, jointCommitted, jointVote } from '../src/tracker.ts'
import { Changer, decodeConfChange, encodeConfChange, restoreConfig } from '../src/confchange.ts'
import type { TrackerConfig } from '../src/tracker.ts'

const config = (incoming: string[], outgoing: string[] = []): TrackerConfig =>
  ({ voters: [new Set(incoming), new Set(outgoing)], learners: new Set(), learnersNext: new Set(), autoLeave: false })

describe('quorum', () => {
  it('commits what a majority of each half of a joint config has', () => {
    const match: Record<string, number> = { a: 10, b: 8, c: 3, d: 9, e: 1 }
    assert.equal(jointCommitted(config(['a', 'b', 'c']), id => match[id]), 8)
    assert.equal(jointCommitted(config(['a', 'b', 'c', 'd']), id => match[id]), 8)
    // outgoing {c, d, e} has only reached 3
    assert.equal(jointCommitted(config(['a', 'b', 'c'], ['c', 'd', 'e']), id => match[id]), 3)
    assert.equal(jointCommitted(config([]), id => match[id]), 0)
  })

  it('wins a vote only with a majority on both sides', () => {
    const votes = new Map([['a', true], ['b', true], ['c', false]])
    assert.equal(jointVote(config(['a', 'b', 'c']), votes), 'won')
    assert.equal(jointVote(config(['a', 'b', 'c'], ['c', 'd', 'e']), votes), 'pending')
    votes.set('d', false)
    assert.equal(jointVote(config(['a', 'b', 'c'], ['c', 'd', 'e']), votes), 'lost')
  })
})

describe('inflights', () => {
  it('fills by count or bytes and frees in order', () => {
    const inf = new Inflights(3, 100)
    inf.add(1, 10)
    inf.add(2, 10)
    assert.equal(inf.full(), false)
    inf.add(3, 10)
    assert.equal(inf.full(), true)
    inf.freeLE(2)
    assert.equal(inf.count, 1)
    inf.add(4, 95)
    assert.equal(inf.full(), true, 'full by bytes')
    inf.freeFirstOne()
    assert.equal(inf.bytes, 95)
  })
})

describe('conf changes', () => {
  const tracker = (): ProgressTracker => {
    const t = new ProgressTracker(8, 0)
    const r = restoreConfig(t, { voters: ['1', '2', '3'], learners: ['4'], votersOutgoing: [], learnersNext: [], autoLeave: false }, 5)
    t.config = r.config
    t.progress = r.progress
    return t
  }

  it('demotes an outgoing voter through learnersNext and keeps its progress until leaving', () => {
    const t = tracker()
    const joint = new Changer(t, 5).enterJoint(false, [{ type: 'add-learner-node', nodeId: '3' }, { type: 'add-node', nodeId: '4' }])
    assert.deepEqual([...joint.config.learnersNext], ['3'])
    assert.ok(joint.progress.has('3'))
    t.config = joint.config
    t.progress = joint.progress
    const left = new Changer(t, 5).leaveJoint()
    assert.deepEqual([...left.config.learners], ['3'])
    assert.deepEqual([...left.config.voters[0]].sort(), ['1', '2', '4'])
    assert.equal(left.progress.get('3')?.isLearner, true)
  })

  it('refuses two voter changes without a joint config and leaves the tracker untouched', () => {
    const t = tracker()
    assert.throws(() => new Changer(t, 5).simple([{ type: 'add-node', nodeId: '4' }, { type: 'remove-node', nodeId: '1' }]), { name: 'ConfChangeError' })
    assert.deepEqual([...t.config.voters[0]].sort(), ['1', '2', '3'])
    assert.equal(t.progress.get('4')?.isLearner, true)
  })

  it('round-trips through the entry encoding and rejects garbage', () => {
    const cc = { changes: [{ type: 'add-learner-node' as const, nodeId: 'peer' }], transition: 'explicit' as const, context: new Uint8Array([1, 2]) }
    assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc)
    assert.throws(() => decodeConfChange(new TextEncoder().encode('{"changes":[{"type":"nuke"}],"transition":"auto"}')), { name: 'ConfChangeError' })
  })
})

describe('a node without the genesis config', () => {
  it('refuses to build a config from conf changes alone', () => {
    const t = new ProgressTracker(8, 0)
    assert.throws(() => new Changer(t, 0).change({ changes: [{ type: 'add-node', nodeId: 'd' }] }), /genesis/)
  })
})
