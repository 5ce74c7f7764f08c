import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { checkKv } from './sim/linearizability.ts'
import type { KvOperation } from './sim/linearizability.ts'
import { Rng } from './sim/rng.ts'

function put (client: string, key: string, value: string, call: number, ret: number): KvOperation {
  return { client, input: { kind: 'put', key, value }, output: null, call, ret }
}

function get (client: string, key: string, output: string | null, call: number, ret: number): KvOperation {
  return { client, input: { kind: 'get', key }, output, call, ret }
}

describe('linearizability checker', () => {
  it('accepts an empty history', () => {
    assert.deepEqual(checkKv([]), { ok: true })
  })

  it('accepts a sequential history', () => {
    const r = checkKv([
      get('a', 'x', null, 0, 1),
      put('a', 'x', '1', 2, 3),
      get('b', 'x', '1', 4, 5),
      put('b', 'x', '2', 6, 7),
      get('a', 'x', '2', 8, 9)
    ])
    assert.equal(r.ok, true)
  })

  it('accepts either value for a read concurrent with a write', () => {
    for (const seen of ['1', '2']) {
      const r = checkKv([
        put('a', 'x', '1', 0, 1),
        put('a', 'x', '2', 2, 10),
        get('b', 'x', seen, 3, 4)
      ])
      assert.equal(r.ok, true, `read of ${seen}`)
    }
  })

  it('accepts reads that order concurrent writes the same way', () => {
    const r = checkKv([
      put('w1', 'x', '1', 0, 100),
      put('w2', 'x', '2', 0, 100),
      get('a', 'x', '2', 10, 11),
      get('b', 'x', '1', 12, 13),
      get('a', 'x', '1', 14, 15)
    ])
    assert.equal(r.ok, true)
  })

  it('rejects a stale read after a completed write', () => {
    const r = checkKv([
      put('a', 'x', '1', 0, 1),
      put('a', 'x', '2', 2, 3),
      get('b', 'x', '1', 4, 5)
    ])
    assert.equal(r.ok, false)
    assert.equal(r.key, 'x')
    assert.match(r.explanation ?? '', /get\(x\) -> 1/)
  })

  it('rejects a read of nothing after a completed write', () => {
    const r = checkKv([put('a', 'x', '1', 0, 1), get('b', 'x', null, 2, 3)])
    assert.equal(r.ok, false)
  })

  it('rejects reads that see concurrent writes in two different orders', () => {
    const r = checkKv([
      put('w1', 'x', '1', 0, 100),
      put('w2', 'x', '2', 0, 100),
      get('a', 'x', '1', 10, 11),
      get('a', 'x', '2', 12, 13),
      get('b', 'x', '2', 14, 15),
      get('b', 'x', '1', 16, 17)
    ])
    assert.equal(r.ok, false)
  })

  it('rejects a read of a value never written', () => {
    const r = checkKv([put('a', 'x', '1', 0, 1), get('b', 'x', '7', 2, 3)])
    assert.equal(r.ok, false)
  })

  it('rejects a read of a value whose write had not yet been invoked', () => {
    const r = checkKv([get('b', 'x', '1', 0, 1), put('a', 'x', '1', 2, 3)])
    assert.equal(r.ok, false)
  })

  it('lets a write of unknown outcome take effect late', () => {
    const r = checkKv([
      put('a', 'x', '1', 0, Infinity),
      get('b', 'x', null, 5, 6),
      get('b', 'x', '1', 50, 51)
    ])
    assert.equal(r.ok, true)
  })

  it('lets a write of unknown outcome never take effect', () => {
    const r = checkKv([
      put('a', 'x', '1', 0, Infinity),
      put('c', 'x', '2', 1, 2),
      get('b', 'x', '2', 5, 6),
      get('b', 'x', '2', 50, 51)
    ])
    assert.equal(r.ok, true)
  })

  it('does not let a write of unknown outcome be undone', () => {
    const r = checkKv([
      put('a', 'x', '1', 0, Infinity),
      get('b', 'x', '1', 5, 6),
      get('b', 'x', null, 7, 8)
    ])
    assert.equal(r.ok, false)
  })

  it('does not let a write of unknown outcome take effect before its call', () => {
    const r = checkKv([
      get('b', 'x', '1', 0, 1),
      put('a', 'x', '1', 2, Infinity)
    ])
    assert.equal(r.ok, false)
  })

  it('is not slowed down by many writes of unknown outcome that no read saw', () => {
    const ops: KvOperation[] = []
    for (let i = 0; i < 60; i++) ops.push(put(`c${i}`, 'x', `u${i}`, i, Infinity))
    ops.push(put('w', 'x', 'known', 100, 101), get('r', 'x', 'known', 102, 103))
    assert.deepEqual(checkKv(ops, { maxSteps: 1000 }), { ok: true })
    // u3 may take effect late, but only once
    ops.push(get('r', 'x', 'u3', 104, 105))
    assert.equal(checkKv(ops, { maxSteps: 1000 }).ok, true)
    ops.push(put('w', 'x', 'again', 106, 107), get('r', 'x', 'u3', 108, 109))
    assert.equal(checkKv(ops, { maxSteps: 1000 }).ok, false)
  })

  it('names the key whose history is not linearizable', () => {
    const r = checkKv([
      put('a', 'x', '1', 0, 1),
      get('a', 'x', '1', 2, 3),
      put('a', 'y', '1', 4, 5),
      put('a', 'y', '2', 6, 7),
      get('b', 'y', '1', 8, 9)
    ])
    assert.equal(r.ok, false)
    assert.equal(r.key, 'y')
  })

  it('treats an operation returning when another is called as overlapping it', () => {
    const r = checkKv([put('a', 'x', '1', 0, 5), get('b', 'x', null, 5, 6)])
    assert.equal(r.ok, true)
  })

  it('reports a search that runs out of budget as inconclusive, not as a pass or a violation', () => {
    const ops: KvOperation[] = []
    for (let i = 0; i < 12; i++) ops.push(put(`c${i}`, 'x', String(i), 0, 100))
    ops.push(get('r', 'x', 'never', 101, 102))
    const r = checkKv(ops, { maxSteps: 50 })
    assert.equal(r.ok, true)
    assert.equal(r.inconclusive, true)
    // with a budget large enough the same history is refuted
    assert.equal(checkKv(ops).ok, false)
  })

  it('accepts random histories built from a sequential execution, and rejects them with one read corrupted', () => {
    const rng = new Rng(7)
    for (let round = 0; round < 40; round++) {
      // each operation takes effect at a distinct point inside its interval
      const points: Array<{ at: number, op: KvOperation }> = []
      for (let i = 0; i < 60; i++) {
        const at = i * 10 + 5
        const call = at - rng.int(1, 40)
        const ret = rng.chance(0.1) ? Infinity : at + rng.int(1, 40)
        const key = rng.pick(['x', 'y'])
        points.push({ at, op: rng.chance(0.5) ? put(`c${i}`, key, `v${i}`, call, ret) : get(`c${i}`, key, null, call, ret) })
      }
      const state = new Map<string, string>()
      const ops: KvOperation[] = []
      for (const { op } of points) {
        if (op.input.kind === 'put') state.set(op.input.key, op.input.value)
        else if (op.ret !== Infinity) op.output = state.get(op.input.key) ?? null
        // a read of unknown outcome has no result to check
        if (op.input.kind === 'put' || op.ret !== Infinity) ops.push(op)
      }
      const r = checkKv(ops)
      assert.equal(r.ok, true, `round ${round}: ${r.explanation ?? ''}`)
      assert.equal(r.inconclusive, undefined)
      const read = ops.find(op => op.input.kind === 'get')
      if (read !== undefined) {
        read.output = 'corrupt'
        assert.equal(checkKv(ops).ok, false, `round ${round} with a corrupted read`)
      }
    }
  })
})
