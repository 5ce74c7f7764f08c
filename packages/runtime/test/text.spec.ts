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
})
