import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import { MembershipManager } from '../src/membership.ts'
import type { MembershipView } from '../src/membership.ts'
import type { NodeRecord } from '../src/types.ts'
import type { ConfChangeSingle } from '@node-daemon/raft'

const settings = { voters: 3, nodeTimeoutMs: 10_000, voterTimeoutMs: 30_000 }
const now = 1_000_000

function node (id: string, role: 'voter' | 'learner'): NodeRecord {
  return { id, addrs: [], role, online: true, joinedAt: '', registered: true, allocation: { cpu: 100, memory: 100, gpu: 100, storage: 100 }, drained: false }
}

/** A leader `a` with the given voters and learners, all heard just now and caught up. */
function view (voters: string[], learners: string[], trusted: (id: string) => boolean, silent: string[] = []): { view: MembershipView, proposed: ConfChangeSingle[][] } {
  const proposed: ConfChangeSingle[][] = []
  const progress = Object.fromEntries([...voters, ...learners].map(id => [id, { match: 10, next: 11, state: 'replicate' as const }]))
  return {
    proposed,
    view: {
      self: 'a',
      now,
      leaderSince: 0,
      status: {
        id: 'a',
        hardState: { term: 1, vote: 'a', commit: 10 },
        softState: { lead: 'a', raftState: 'leader' },
        applied: 10,
        leadTransferee: '',
        config: { voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false },
        progress
      },
      nodes: new Map([...voters.map(id => node(id, 'voter')), ...learners.map(id => node(id, 'learner'))].map(n => [n.id, n])),
      lastHeard: (id) => silent.includes(id) ? 0 : now,
      trusted,
      proposeConfChange: async (changes) => { proposed.push(changes) },
      setOnline: async () => {},
      log: logger('test:membership')
    }
  }
}

describe('the leader\'s membership duties', () => {
  it('promotes caught-up learners to the voter count, trusted ones only', async () => {
    const trustedOnly = view(['a'], ['b', 'c'], id => id !== 'b')
    await new MembershipManager(settings).run(trustedOnly.view)
    assert.deepEqual(trustedOnly.proposed, [[{ type: 'add-node', nodeId: 'c' }]], 'c, not the untrusted b that sorts first')
    const none = view(['a'], ['b', 'c'], id => id === 'a')
    await new MembershipManager(settings).run(none.view)
    assert.deepEqual(none.proposed, [], 'no trusted learner: the cluster stays short of voters')
  })

  it('replaces a silent voter with a trusted learner only', async () => {
    const untrusted = view(['a', 'b', 'c'], ['d'], id => id !== 'd', ['c'])
    await new MembershipManager({ ...settings, nodeTimeoutMs: 100_000_000 }).run(untrusted.view)
    assert.deepEqual(untrusted.proposed, [])
    const trusted = view(['a', 'b', 'c'], ['d'], () => true, ['c'])
    await new MembershipManager({ ...settings, nodeTimeoutMs: 100_000_000 }).run(trusted.view)
    assert.deepEqual(trusted.proposed, [[{ type: 'add-node', nodeId: 'd' }, { type: 'add-learner-node', nodeId: 'c' }]])
  })
})
