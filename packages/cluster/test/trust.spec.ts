import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encodeConfChange } from '@node-daemon/raft'
import { encodeCommand, encodeJoinContext } from '../src/commands.ts'
import { untrustedMay, untrustedMayPropose } from '../src/trust.ts'
import type { Command, CommandBody } from '../src/commands.ts'
import type { ConfChange } from '@node-daemon/raft'

const me = '12D3KooWLearner'
const other = '12D3KooWOther'
const cid = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const resources = { cpu: { cores: 1, model: '', load1: 0, usage: 0 }, memory: { total: 1, free: 1 }, gpus: [], disk: { total: 1, free: 1 }, executionProviders: ['cpu'] }
const by = (body: CommandBody, from = me): Command => ({ ...body, at: 0, by: from } as Command)
const normal = (c: Command): Parameters<typeof untrustedMayPropose>[1] => ({ type: 'normal', id: new Uint8Array(16), command: encodeCommand(c) })
const confChange = (cc: ConfChange, context: Uint8Array): Parameters<typeof untrustedMayPropose>[1] => ({ type: 'conf-change', confChange: cc, context })

describe('what a member the cluster does not trust may propose', () => {
  it('its own records, pins it adds and the work of jobs and training', () => {
    const allowed: CommandBody[] = [
      { op: 'node.report', id: me, addrs: [], resources, pinQueue: 0 },
      { op: 'node.allocation', id: me, allocation: { cpu: 50 }, registered: true },
      { op: 'pin.add', cid, name: '', rmin: 1, rmax: 1, size: 0 },
      { op: 'job.submit', kind: 'inference', promptCID: cid, modelId: 'm', params: {} },
      { op: 'job.start', jobId: 1 },
      { op: 'job.complete', jobId: 1, responseCID: cid },
      { op: 'training.progress', jobId: 1, status: 'running', workers: [] }
    ]
    for (const body of allowed) {
      assert.equal(untrustedMay(me, by(body)), true, body.op)
      assert.equal(untrustedMayPropose(me, normal(by(body))), true, body.op)
    }
  })

  it('nothing that changes the registry, others\' records, membership or the pinset beyond adding, nor anything under another\'s name or unknown', () => {
    const refused: CommandBody[] = [
      { op: 'model.remove', modelId: 'm' },
      { op: 'model.register', modelId: 'm', modelCID: cid, name: 'm', description: '', kind: 'model', metadata: {}, size: 0, replicationFactor: 1 },
      { op: 'model.update', modelId: 'm', modelCID: cid, size: 0 },
      { op: 'model.active', modelId: 'm', active: false },
      { op: 'pin.rm', cid },
      { op: 'pin.rebalance' },
      { op: 'pin.migrate', cid, from: other, to: me },
      { op: 'node.drain', id: other, drained: true },
      { op: 'node.status', id: other, online: false },
      { op: 'node.report', id: other, addrs: [], resources, pinQueue: 0 },
      { op: 'node.allocation', id: other, allocation: {} },
      { op: 'credential.add' } as unknown as CommandBody
    ]
    for (const body of refused) {
      assert.equal(untrustedMay(me, by(body)), false, body.op)
      assert.equal(untrustedMayPropose(me, normal(by(body))), false, body.op)
    }
    assert.equal(untrustedMay(me, by({ op: 'job.start', jobId: 1 }, other)), false, 'under another\'s name')
    assert.equal(untrustedMayPropose(me, { type: 'normal', id: new Uint8Array(0), command: new TextEncoder().encode('{not json') }), false)
  })

  it('a batch only of commands it may propose, all under its own name', () => {
    const pin = by({ op: 'pin.add', cid, name: '', rmin: 1, rmax: 1, size: 0 })
    const batch = (commands: Command[], from = me): Command => by({ op: 'batch', commands }, from)
    assert.equal(untrustedMayPropose(me, normal(batch([pin, by({ op: 'job.start', jobId: 1 })]))), true)
    assert.equal(untrustedMay(me, batch([pin, by({ op: 'pin.rm', cid })])), false, 'with a removal')
    assert.equal(untrustedMay(me, batch([pin, by({ op: 'pin.add', cid, name: '', rmin: 1, rmax: 1, size: 0 }, other)])), false, 'with another\'s command')
    assert.equal(untrustedMay(me, batch([pin], other)), false, 'under another\'s name')
    assert.equal(untrustedMay(me, batch([batch([pin])])), false, 'a batch inside')
  })

  it('of membership changes, only recording itself as a learner, without a token', () => {
    const context = (token?: object): Uint8Array => encodeJoinContext({ addrs: [], at: 0, by: me, ...(token == null ? {} : { token }) } as any)
    assert.equal(untrustedMayPropose(me, confChange({ changes: [{ type: 'add-learner-node', nodeId: me }] }, context())), true)
    for (const [cc, ctx, what] of [
      [{ changes: [{ type: 'add-node', nodeId: me }] }, context(), 'promote itself'],
      [{ changes: [{ type: 'add-learner-node', nodeId: other }] }, context(), 'admit another'],
      [{ changes: [{ type: 'remove-node', nodeId: other }] }, context(), 'remove another'],
      [{ changes: [{ type: 'add-learner-node', nodeId: me }, { type: 'remove-node', nodeId: other }] }, context(), 'and more'],
      [{ changes: [{ type: 'add-learner-node', nodeId: me }] }, context({ issuer: other, role: 'voter', nonce: 'n' }), 'claim a voter token'],
      [{ changes: [] }, context(), 'leave a joint configuration']
    ] as Array<[ConfChange, Uint8Array, string]>) {
      assert.equal(untrustedMayPropose(me, confChange(cc, ctx)), false, what)
    }
    assert.equal(untrustedMayPropose(me, confChange({ changes: [{ type: 'add-learner-node', nodeId: me }] }, encodeConfChange({ changes: [] }))), false, 'a context that is not a join')
  })
})
