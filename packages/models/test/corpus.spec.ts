import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CORPUS_FILES, readCorpus } from '../src/corpus.ts'

describe('corpus', () => {
  it('is three novels of plain prose, about 2 MB in all', async () => {
    const novels = await readCorpus()
    assert.equal(novels.length, CORPUS_FILES.length)
    const bytes = novels.reduce((sum, text) => sum + Buffer.byteLength(text), 0)
    assert.ok(bytes > 1_500_000 && bytes <= 2_100_000, `${bytes} bytes`)
    assert.deepEqual(novels.map((text) => text.slice(0, text.indexOf('\n'))), ['PRIDE AND PREJUDICE', 'SENSE AND SENSIBILITY', 'Persuasion'])
    for (const text of novels) {
      assert.ok(!/Gutenberg|\r|_|\n{3}| {2}|\[/.test(text), 'no licence text, carriage returns, italics marks, extra blank lines, double spaces or notes')
      assert.ok(text.includes('\n\nChapter 1\n\n') || text.includes('\n\nCHAPTER 1\n\n'))
      assert.ok(text.endsWith('\n'))
    }
  })
})
