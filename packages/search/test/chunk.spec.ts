import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { assetDir, DEFAULT_MODELS } from '@node-daemon/models'
import { TextCodec } from '@node-daemon/runtime'
import { chunkText } from '../src/chunk.ts'
import type { ChunkTokenizer } from '../src/chunk.ts'

async function codec (): Promise<TextCodec> {
  const dir = assetDir(DEFAULT_MODELS.embed)
  return new TextCodec(JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')))
}

const TEXT = 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. Ünïcödé — “quotes” and more words follow here, again and again. '.repeat(6)

describe('chunkText', () => {
  it('cuts windows of the model\'s tokens that overlap, with exact byte ranges, for a byte-level tokenizer', async () => {
    const tokenizer = await codec()
    const chunks = chunkText(TEXT, tokenizer, { chunkTokens: 40, overlapTokens: 10 })
    const bytes = Buffer.from(TEXT)
    assert.ok(chunks.length > 3)
    for (const c of chunks) {
      assert.equal(bytes.subarray(c.start, c.end).toString(), c.text, 'the range names the chunk\'s bytes')
      assert.ok(c.tokens <= 40)
      assert.ok(tokenizer.encode(c.text).length <= 42, 'a chunk encodes to about its window')
    }
    for (let i = 1; i < chunks.length; i++) assert.ok(chunks[i].start < chunks[i - 1].end, 'each chunk overlaps the one before')
    assert.equal(chunks[0].start, 0)
    assert.equal(chunks[chunks.length - 1].end, bytes.length)
  })

  it('packs words by their token counts when the tokens do not spell out the bytes', () => {
    // A lower-casing word tokenizer, as a WordPiece with a normalizer: its tokens' bytes differ from the text's.
    const words: ChunkTokenizer = { encode: t => t.toLowerCase().split(/\s+/).filter(w => w !== '').map(w => w.length), tokenBytes: () => [0x61] }
    const chunks = chunkText('Alpha Beta Gamma Delta Epsilon Zeta Eta Theta', words, { chunkTokens: 3, overlapTokens: 1 })
    assert.deepEqual(chunks.map(c => c.text.trim()), ['Alpha Beta Gamma', 'Gamma Delta Epsilon', 'Epsilon Zeta Eta', 'Eta Theta'])
  })

  it('gives a text that fits one chunk whole, with its tokens, and no tokens with the chunks of a longer one', async () => {
    const tokenizer = await codec()
    const short = 'Ünïcödé — “quotes”, a truth universally acknowledged.'
    assert.deepEqual(chunkText(short, tokenizer, { chunkTokens: 40, overlapTokens: 10 }), [{ text: short, start: 0, end: Buffer.byteLength(short), tokens: tokenizer.encode(short).length, ids: tokenizer.encode(short) }])
    assert.ok(chunkText(TEXT, tokenizer, { chunkTokens: 40, overlapTokens: 10 }).every(c => c.ids == null))
  })

  it('gives no chunks of blank text', async () => {
    assert.deepEqual(chunkText(' \n\t ', await codec(), { chunkTokens: 16, overlapTokens: 2 }), [])
  })
})
