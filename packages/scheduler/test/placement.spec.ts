import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { rankWorkers } from '../src/placement.ts'
import type { NodeView } from '@node-daemon/cluster'

function node (id: string, load1: number, extra: Partial<NodeView> = {}): NodeView {
  return {
    id,
    addrs: [],
    role: 'learner',
    online: true,
    joinedAt: '2026-01-01T00:00:00.000Z',
    registered: false,
    allocation: { cpu: 100, memory: 100, gpu: 100, storage: 100 },
    drained: false,
    resources: { cpu: { cores: 2, model: 'x', load1, usage: 0 }, memory: { total: 1, free: 1 }, gpus: [], disk: { total: 1, free: 1 }, executionProviders: ['cpu'] },
    connected: true,
    pins: { allocated: 0, pending: 0 },
    matchIndex: 0,
    isLeader: false,
    isSelf: false,
    ...extra
  }
}

describe('rankWorkers', () => {
  const nodes = [node('a', 1.5), node('b', 0.2), node('c', 0.8), node('d', 0.1)]

  it('runs locally first when this node holds the model', () => {
    assert.deepEqual(rankWorkers(nodes, { self: 'a', holders: new Set(['a', 'b', 'c']) }), ['a', 'b', 'c'])
  })

  it('prefers the least loaded holder, and falls back to pulling the model here', () => {
    assert.deepEqual(rankWorkers(nodes, { self: 'd', holders: new Set(['a', 'b', 'c']) }), ['b', 'c', 'a', 'd'])
  })

  it('leaves this node out, when it holds no replica, without fallback', () => {
    assert.deepEqual(rankWorkers(nodes, { self: 'd', holders: new Set(['a', 'b', 'c']), fallback: false }), ['b', 'c', 'a'])
    assert.deepEqual(rankWorkers(nodes, { self: 'a', holders: new Set(['a', 'b']), fallback: false }), ['a', 'b'])
  })

  it('skips offline, drained, unreachable and excluded holders', () => {
    const view = [node('a', 0), node('b', 0, { online: false }), node('c', 0, { drained: true }), node('e', 0, { connected: false }), node('f', 0.5), node('g', 0.1)]
    assert.deepEqual(rankWorkers(view, { self: 'a', holders: new Set(['b', 'c', 'e', 'f', 'g']), exclude: new Set(['g']) }), ['f', 'a'])
  })

  it('offers a drained self nothing, not even a model it holds', () => {
    const view = [node('a', 0, { drained: true }), node('b', 0.5)]
    assert.deepEqual(rankWorkers(view, { self: 'a', holders: new Set(['a', 'b']) }), ['b'])
    assert.deepEqual(rankWorkers(view, { self: 'a', holders: new Set() }), [])
  })

  it('never offers an excluded self', () => {
    assert.deepEqual(rankWorkers(nodes, { self: 'a', holders: new Set(['a', 'b']), exclude: new Set(['a']) }), ['b'])
  })

  it('puts the nodes without the free memory a model needs last, unless they have it loaded already', () => {
    const withFree = (id: string, load1: number, free: number): NodeView => {
      const n = node(id, load1)
      return { ...n, resources: { ...n.resources as NonNullable<NodeView['resources']>, memory: { total: 16e9, free } } }
    }
    const cluster = [withFree('a', 0.1, 1e9), withFree('b', 0.9, 8e9), withFree('c', 0.5, 2e9)]
    const holders = new Set(['a', 'b', 'c'])
    assert.deepEqual(rankWorkers(cluster, { self: 'a', holders }), ['a', 'c', 'b'], 'without a need, by load')
    assert.deepEqual(rankWorkers(cluster, { self: 'a', holders, needBytes: 4e9 }), ['b', 'a', 'c'])
    assert.deepEqual(rankWorkers(cluster, { self: 'a', holders, needBytes: 4e9, loaded: new Set(['a']) }), ['a', 'b', 'c'])
  })
})
