import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { readCorpus } from '@node-daemon/models'
import { compileFilters } from '../src/filters.ts'
import { ChunkTable } from '../src/store.ts'
import type { ChunkRow } from '../src/store.ts'

const schema = { year: 'number' } as const

function row (i: number): ChunkRow {
  return {
    id: `c${i}`,
    text: i % 10 === 0 ? `a whale of a tale number ${i}` : `ordinary words in row ${i}`,
    vector: [Math.cos(i), Math.sin(i), 1],
    doc_id: `d${i}`,
    source_cid: `cid${i}`,
    root_cid: 'root',
    path: `f${i}.txt`,
    format: 'text',
    byte_start: 0,
    byte_end: 10,
    chunk_index: 0,
    metadata: JSON.stringify({ year: 1800 + i }),
    m_year: 1800 + i
  }
}

describe('ChunkTable', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'search-store-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('finds rows by vector and by BM25, both under a metadata filter, and keeps one version when sealed', async () => {
    const table = await ChunkTable.open(dir, schema)
    assert.equal(await table.dimensions(), undefined)
    await table.add(Array.from({ length: 50 }, (_, i) => row(i)))
    await table.add(Array.from({ length: 50 }, (_, i) => row(i + 50)))
    await table.seal()
    assert.equal(await table.count(), 100)
    assert.equal(await table.dimensions(), 3)
    const nearest = await table.nearest(row(7).vector, 3)
    assert.equal(nearest[0].id, 'c7')
    assert.equal('vector' in nearest[0], false, 'hits leave the vector out')
    const whales = await table.matching('whale', 20)
    assert.deepEqual(whales.map(h => h.id).sort(), ['c0', 'c10', 'c20', 'c30', 'c40', 'c50', 'c60', 'c70', 'c80', 'c90'].sort())
    const where = compileFilters({ year: { $gte: 1830, $lt: 1870 } }, schema)
    assert.deepEqual((await table.matching('whale', 20, where)).map(h => h.id).sort(), ['c30', 'c40', 'c50', 'c60'])
    assert.ok((await table.nearest(row(7).vector, 5, where)).every(h => h.m_year as number >= 1830 && (h.m_year as number) < 1870))
    table.close()
    const versions = await readdir(join(dir, 'chunks.lance', '_versions'))
    assert.equal(versions.filter(v => v.endsWith('.manifest')).length, 1, 'older versions are gone before a snapshot')
    const reopened = await ChunkTable.open(dir, schema)
    assert.equal(await reopened.count(), 100)
    reopened.close()
  })

  it('stores every column as given, a metadata field without a value as null, and refuses a vector of another size than the table\'s', async () => {
    const at = join(dir, 'columns')
    const table = await ChunkTable.open(at, { year: 'number', place: 'string', draft: 'boolean' })
    const given: ChunkRow[] = [
      { ...row(1), m_place: 'Bath', m_draft: true },
      { ...row(2), m_year: null, m_place: null, m_draft: false },
      { ...row(3), vector: [0.1, 0.2, 0.3] }
    ]
    await table.add(given)
    const stored = (await table.rows('true', 10)).sort((a, b) => a.chunk_index - b.chunk_index || a.id.localeCompare(b.id))
    assert.deepEqual(stored.map(h => ({ ...h })), given.map(({ vector, ...rest }) => ({ m_place: null, m_draft: null, ...rest })))
    const [hit] = await table.nearest([0.1, 0.2, 0.3], 1)
    assert.equal(hit.id, 'c3')
    assert.equal(hit._distance != null && hit._distance < 1e-6, true, 'the vector is stored as given, in float32')
    await assert.rejects(table.add([{ ...row(4), vector: [1, 2] }]), /vector of 2 dimensions for a table of 3/)
    assert.equal(await table.count(), 3)
    table.close()
  })

  it('finds rows added after a checkpoint by a scan of their own, and seals at a job\'s end only once they are a share of the table', async () => {
    const at = await mkdtemp(join(tmpdir(), 'search-store-settle-'))
    try {
      const table = await ChunkTable.open(at, schema)
      await table.add(Array.from({ length: 100 }, (_, i) => row(i)))
      await table.checkpoint()
      await table.add([{ ...row(100), text: 'a narwhal beyond the index' }])
      assert.equal((await table.matching('narwhal', 5))[0]?.id, 'c100', 'an unindexed row is found by BM25')
      assert.equal((await table.nearest(row(100).vector, 1))[0]?.id, 'c100')
      // One row of 101 unindexed: left as it is.
      await table.settle()
      assert.equal(await table.unindexed(), 1, 'not sealed')
      await table.add(Array.from({ length: 40 }, (_, i) => row(101 + i)))
      await table.settle()
      assert.equal(await table.unindexed(), 0, 'sealed once 41 of 141 rows were unindexed')
      assert.equal((await table.matching('narwhal', 5))[0]?.id, 'c100')
      table.close()
    } finally {
      await rm(at, { recursive: true, force: true })
    }
  })

  it('builds the full-text index of a table past 90,000 rows, where LanceDB\'s default pool on two cores stalls', { timeout: 120_000 }, async () => {
    const big = await mkdtemp(join(tmpdir(), 'search-store-big-'))
    try {
      const table = await ChunkTable.open(big, schema)
      // Paragraphs of the novels, as many chunks hold: the stall needs postings of that volume.
      const paragraphs = (await readCorpus()).flatMap(novel => novel.split(/\n\s*\n/).filter(p => p.length > 80 && p.length < 400))
      for (let start = 0; start < 100_000; start += 20_000) {
        await table.add(Array.from({ length: 20_000 }, (_, k) => ({ ...row(start + k), text: `${paragraphs[(start + k) % paragraphs.length]} row${start + k}`, vector: [1, 0, 0] })))
      }
      await table.seal()
      assert.equal((await table.matching('row99999', 1))[0]?.id, 'c99999')
      table.close()
    } finally {
      await rm(big, { recursive: true, force: true })
    }
  })
})
