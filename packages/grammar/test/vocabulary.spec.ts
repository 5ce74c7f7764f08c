import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Tokenizer } from '@huggingface/tokenizers'
import { readCorpus, trainBpe } from '@node-daemon/models'
import { compileGrammar, vocabularyFromTokenizer } from '../src/index.ts'
import { concat, generate, newAjv } from './helpers.ts'

/** What is used here of @huggingface/tokenizers' Tokenizer, whose published types do not resolve under NodeNext. */
interface HfTokenizer {
  encode: (text: string, options?: { add_special_tokens?: boolean }) => { ids: number[] }
  decode: (ids: number[], options?: { skip_special_tokens?: boolean }) => string
}

const decoder = new TextDecoder('utf-8', { fatal: true })

describe('vocabularyFromTokenizer', () => {
  it('reads a trained byte-level BPE: every token decodes as the tokenizer decodes it, specials are empty', async () => {
    const corpus = (await readCorpus()).map(book => book.slice(0, 50_000))
    const { tokenizerJson, tokenizerConfig } = trainBpe(corpus, { vocabSize: 512 })
    const vocab = vocabularyFromTokenizer(tokenizerJson, [0])
    const hf = new Tokenizer(tokenizerJson, tokenizerConfig) as unknown as HfTokenizer
    assert.equal(vocab.tokens.length, 512)
    assert.deepEqual(vocab.eos, [0])
    for (let id = 0; id < 3; id++) assert.equal(vocab.tokens[id].length, 0, `special ${id}`)
    let compared = 0
    for (let id = 3; id < vocab.tokens.length; id++) {
      let text: string
      try { text = decoder.decode(vocab.tokens[id]) } catch { continue } // a partial UTF-8 sequence
      assert.equal(text, hf.decode([id]), `token ${id}`)
      compared++
    }
    assert.ok(compared > 300, `${compared}`)
    // all 256 bytes are single tokens, and a text's token bytes concatenate to the text
    const seen = new Set(vocab.tokens.filter(t => t.length === 1).map(t => t[0]))
    assert.equal(seen.size, 256)
    const text = 'It was the best of times, {"a": [1, 2]} — ünïcödé'
    const ids = hf.encode(text, { add_special_tokens: false }).ids
    assert.equal(decoder.decode(concat(ids.map(id => vocab.tokens[id]))), text)
  })

  it('reads a SentencePiece-style tokenizer.json: ▁ for a space, <0xNN> byte fallback, special added tokens empty', () => {
    const pieces: Array<[string, number]> = [['<unk>', 0], ['<s>', 0], ['</s>', 0]]
    for (let b = 0; b < 256; b++) pieces.push([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0])
    for (const p of ['▁the', '▁{', '{"', '":', '"}', '▁"', 'é', '▁', 'a', 'b']) pieces.push([p, -1])
    const json = {
      added_tokens: [{ id: 0, content: '<unk>', special: true }, { id: 1, content: '<s>', special: true }, { id: 2, content: '</s>', special: true }],
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
      pre_tokenizer: null,
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
      model: { type: 'Unigram', unk_id: 0, vocab: pieces, byte_fallback: true }
    }
    const vocab = vocabularyFromTokenizer(json, [2])
    const text = (id: number): string => new TextDecoder().decode(vocab.tokens[id])
    assert.equal(vocab.tokens.length, pieces.length)
    for (const id of [0, 1, 2]) assert.equal(vocab.tokens[id].length, 0)
    assert.deepEqual([...vocab.tokens[3 + 0x41]], [0x41])
    assert.deepEqual([...vocab.tokens[3 + 0xc3]], [0xc3])
    assert.equal(text(259), ' the')
    assert.equal(text(260), ' {')
    assert.equal(text(261), '{"')
    assert.equal(text(266), ' ')
    // and it drives a grammar: byte fallback spells what the pieces cannot
    const schema = { type: 'object', properties: { a: { type: 'string', maxLength: 3 } }, required: ['a'] }
    const g = compileGrammar({ type: 'json-schema', schema }, vocab)
    const ajv = newAjv()
    for (let seed = 1; seed <= 10; seed++) {
      const out = generate(g, seed, 40)
      assert.ok(out.complete, out.text)
      assert.ok(ajv.validate(schema, JSON.parse(out.text)), out.text)
    }
  })

  it('reads WordPiece as best effort: ## continuation pieces lose their prefix', () => {
    const vocab = vocabularyFromTokenizer({ model: { type: 'WordPiece', vocab: { '[CLS]': 0, hello: 1, '##lo': 2, '{': 3 } }, added_tokens: [{ id: 0, content: '[CLS]', special: true }] }, [])
    assert.deepEqual(vocab.tokens.map(t => new TextDecoder().decode(t)), ['', 'hello', 'lo', '{'])
  })
})
