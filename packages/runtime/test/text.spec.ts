import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { trainBpe } from '@node-daemon/models'
import { IncrementalDecoder, TextCodec, WordCache } from '../src/text.ts'

describe('TextCodec', () => {
  let codec: TextCodec

  before(() => {
    const { tokenizerJson, tokenizerConfig } = trainBpe('It is a truth universally acknowledged, that a single man in possession of a good fortune. '.repeat(20), { vocabSize: 300 })
    codec = new TextCodec(tokenizerJson, { ...tokenizerConfig })
  })

  it('renders the chat template, or an Ollama Go template given instead', () => {
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }]
    assert.equal(codec.chat(messages), '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n')
    assert.equal(codec.chat(messages, '{{ if .System }}[{{ .System }}] {{ end }}Q: {{ .Prompt }} A:'), '[Be brief.] Q: Hello A:')
    assert.equal(codec.chat([{ role: 'user', content: 'Hi' }], '{{ if .System }}[{{ .System }}] {{ end }}Q: {{ .Prompt }} A:'), 'Q: Hi A:')
  })

  it('stops at the end-of-text and end-of-turn tokens', () => {
    assert.deepEqual([...codec.stopIds].sort(), [codec.encode('<|endoftext|>')[0], codec.encode('<|im_end|>')[0]].sort())
  })

  it('decodes incrementally without splitting a character', () => {
    const text = 'café — 東京 🎉 done'
    const decoder = new IncrementalDecoder(codec)
    const deltas = codec.encode(text).map(id => decoder.push(id))
    assert.equal(deltas.join(''), text)
    assert.ok(deltas.every(d => !d.includes('\uFFFD')))
  })

  it('finds the special tokens a post-processor puts around a sequence, as BERT\'s [CLS] and [SEP]', () => {
    assert.deepEqual(codec.wrapping, { prefix: [], suffix: [] }, 'a byte-level post-processor adds none')
    const { tokenizerJson, tokenizerConfig } = trainBpe('It is a truth universally acknowledged. '.repeat(20), { vocabSize: 300 })
    const [start, end] = ['<|im_start|>', '<|im_end|>'].map(token => codec.encode(token)[0])
    const special = (token: string, id: number): object => ({ id: token, ids: [id], tokens: [token] })
    const bert = new TextCodec({
      ...tokenizerJson,
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|im_end|>', type_id: 0 } }],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|im_start|>': special('<|im_start|>', start), '<|im_end|>': special('<|im_end|>', end) }
      }
    }, { ...tokenizerConfig })
    assert.deepEqual(bert.wrapping, { prefix: [start], suffix: [end] })
    assert.deepEqual(bert.encodeForModel('a truth'), [start, ...bert.encode('a truth'), end])
    assert.ok(bert.hasToken(start) && !bert.hasToken(300) && !bert.hasToken(-1) && !bert.hasToken(1.5))
  })

  it('tells the bytes of a token, a piece of a character included', () => {
    const text = 'café 東京 🎉'
    const ids = codec.encode(text)
    const bytes = ids.flatMap(id => codec.tokenBytes(id))
    assert.deepEqual(Buffer.from(bytes), Buffer.from(text))
    assert.ok(ids.some(id => Buffer.from(codec.tokenBytes(id)).toString().includes('\uFFFD')), 'some token holds part of a character')
    const eos = codec.encode('<|endoftext|>')[0]
    assert.deepEqual(Buffer.from(codec.tokenBytes(eos)).toString(), '<|endoftext|>')
    assert.equal(codec.vocabSize >= 300, true)
  })

  it('finds fill-in-the-middle tokens where the tokenizer has them', () => {
    assert.equal(codec.fim, undefined)
    const { tokenizerJson, tokenizerConfig } = trainBpe('def f(x): return x. '.repeat(20), { vocabSize: 280 })
    const added = tokenizerJson.added_tokens
    const next = Math.max(...added.map(t => t.id), ...Object.values((tokenizerJson as any).model.vocab as Record<string, number>)) + 1
    const fim = ['<fim_prefix>', '<fim_suffix>', '<fim_middle>'].map((content, i) => ({ id: next + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
    const withFim = new TextCodec({ ...tokenizerJson, added_tokens: [...added, ...fim] }, { ...tokenizerConfig })
    assert.deepEqual(withFim.fim, { prefix: next, suffix: next + 1, middle: next + 2 })
  })

  it('encodes words met before without writing to the tokenizer\'s cache of words', (t) => {
    const text = 'It is a truth universally acknowledged, that a single man in possession of a good fortune.'
    const ids = codec.encode(text)
    // Every Map write while the same text is encoded again: tokenizers.js's own LRU deleted and set each word it found.
    const set = t.mock.method(Map.prototype, 'set')
    const remove = t.mock.method(Map.prototype, 'delete')
    const again = codec.encode(text)
    const writes = set.mock.callCount() + remove.mock.callCount()
    t.mock.restoreAll()
    assert.deepEqual(again, ids)
    assert.equal(writes, 0)
  })
})

describe('WordCache', () => {
  it('keeps at most two generations of words, and a word used in the older one into the next', () => {
    const cache = new WordCache<number>(3)
    for (const [i, word] of ['a', 'b', 'c', 'd', 'e'].entries()) cache.put(word, i)
    assert.equal(cache.size, 5, 'a, b and c are the old generation, d and e the young one')
    assert.equal(cache.get('a'), 0, 'found in the old generation, and moved to the young one, which is then full and becomes the old one')
    cache.put('f', 5)
    assert.equal(cache.size, 4)
    assert.deepEqual(['b', 'c'].map(w => cache.get(w)), [undefined, undefined], 'dropped: not used since a, b and c became the old generation')
    assert.deepEqual(['f', 'a', 'd'].map(w => cache.get(w)), [5, 0, 3], 'a and d move to the young generation, which is then full again')
    assert.equal(cache.get('e'), undefined, 'e was not used since')
    for (let i = 0; i < 100; i++) cache.put(`w${i}`, i)
    assert.ok(cache.size <= 6, `${cache.size} words kept`)
    cache.clear()
    assert.equal(cache.size, 0)
  })
})
