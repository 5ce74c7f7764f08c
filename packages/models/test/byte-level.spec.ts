import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Tokenizer } from '@huggingface/tokenizers'
import { BYTE_ALPHABET, BYTE_TO_UNICODE, preTokenize, toByteLevel } from '../src/tokenizer/byte-level.ts'
import { trainBpe } from '../src/tokenizer/train-bpe.ts'

describe('byte-level', () => {
  it('maps every byte to its own visible character, as GPT-2 does', () => {
    assert.equal(new Set(BYTE_TO_UNICODE).size, 256)
    assert.ok(BYTE_TO_UNICODE.every((symbol) => symbol.length === 1 && !/\s/u.test(symbol)))
    assert.equal(BYTE_TO_UNICODE[0x20], 'Ġ')
    assert.equal(BYTE_TO_UNICODE[0x0a], 'Ċ')
    assert.equal(BYTE_TO_UNICODE[0x41], 'A')
    assert.equal(BYTE_ALPHABET[0], '!')
    assert.equal(BYTE_ALPHABET[255], 'Ń')
  })

  it('splits and maps text exactly as the runtime ByteLevel pre-tokenizer does', () => {
    const { tokenizerJson, tokenizerConfig } = trainBpe('', { vocabSize: 259 })
    const runtime = new Tokenizer(tokenizerJson, tokenizerConfig).pre_tokenizer
    const text = "She said, \"I'll go\"--and went.\n\n  Ça coûte 12,50 €; 日本語 👋🏽\t\r\nend  "
    assert.deepEqual(preTokenize(text).map(toByteLevel), runtime.pre_tokenize_text(text))
  })
})
