import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { trainBpe } from '@node-daemon/models'
import { IncrementalDecoder, TextCodec } from '../src/text.ts'

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
})
