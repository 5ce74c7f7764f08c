import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { compileFilters } from '../src/filters.ts'
import { reciprocalRankFusion } from '../src/fusion.ts'

const schema = { year: 'number', author: 'string', draft: 'boolean' } as const

describe('compileFilters', () => {
  it('compiles equality, ranges and `in` over typed columns, quoting strings', () => {
    assert.equal(compileFilters({ author: "O'Brien", year: { $gte: 1800, lt: 1900 }, path: { $in: ['a.txt', 'b.txt'] }, draft: false }, schema),
      "(m_author = 'O''Brien') AND (m_year >= 1800) AND (m_year < 1900) AND (path IN ('a.txt', 'b.txt')) AND (m_draft = false)")
    assert.equal(compileFilters(undefined, schema), undefined)
  })

  it('refuses unknown fields, operators and values of the wrong type', () => {
    assert.throws(() => compileFilters({ colour: 'red' }, schema), { name: 'InvalidSearchRequestError' })
    assert.throws(() => compileFilters({ year: { $like: 1 } }, schema), { name: 'InvalidSearchRequestError' })
    assert.throws(() => compileFilters({ year: '1800; DROP TABLE chunks' }, schema), { name: 'InvalidSearchRequestError' })
    assert.throws(() => compileFilters({ year: { $in: [] } }, schema), { name: 'InvalidSearchRequestError' })
    assert.throws(() => compileFilters({ draft: { $gt: true } }, schema), { name: 'InvalidSearchRequestError' })
  })
})

describe('reciprocalRankFusion', () => {
  it('ranks first what both lists rank high, and records each item\'s ranks', () => {
    const fused = reciprocalRankFusion({ vector: ['a', 'b', 'c'], bm25: ['c', 'b', 'd'] }, x => x)
    // c: 1/63 + 1/61 edges out b: 2/62; both beat what one list alone has.
    assert.deepEqual(fused.map(f => f.item), ['c', 'b', 'a', 'd'])
    assert.deepEqual(fused[1].ranks, { vector: 2, bm25: 2 })
    assert.ok(Math.abs(fused[1].score - 2 / 62) < 1e-12)
  })
})
