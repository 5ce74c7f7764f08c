import assert from 'node:assert/strict'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { assetDir, trainBpe } from '@node-daemon/models'
import { TextCodec } from '@node-daemon/runtime'
import { getLlama, LlamaLogLevel } from 'node-llama-cpp'
import { convertDecoder, ggufTokenizer, hfTokenizer, readGguf } from '../src/index.ts'
import type { GgufValue } from '../src/reader.ts'

const CORPUS = 'The year 2024 had 366 days; the years 12345 and 678 did not. It\'s what we\'ll SAY\'S: don\'t.\n\nNumbers like 1234567 split.'
/** Text on which GPT-2's and Llama 3's splits differ: digits in threes, case-blind contractions, a letter after punctuation. */
const TEXTS = ['In 2024, 1234567 people', 'WE\'LL SAY IT\'S "fine"', 'x(y) = 12345;\n\n  next']

/** Llama 3's tokenizer.json pre-tokenizer, as its file writes it. */
const LLAMA_3_PRE = {
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }
  ]
}

/** The GGUF metadata values as a reader gives them back. */
function values (metadata: ReturnType<typeof ggufTokenizer>): Record<string, GgufValue> {
  return Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, v.value as GgufValue]))
}

describe('the tokenizer in GGUF metadata', () => {
  it('keeps Llama 3\'s pre-tokenizer both ways, as llama.cpp\'s llama-bpe, tokenizing as before', () => {
    const { tokenizerJson, tokenizerConfig } = trainBpe(CORPUS, { vocabSize: 300, specialTokens: ['<|begin_of_text|>', '<|eot_id|>'] })
    const llama3 = { ...tokenizerJson, pre_tokenizer: LLAMA_3_PRE }
    const metadata = values(ggufTokenizer(llama3, 300, { eos: tokenizerJson.model.vocab['<|eot_id|>'] }))
    assert.equal(metadata['tokenizer.ggml.pre'], 'llama-bpe')
    const back = hfTokenizer(metadata)
    assert.deepEqual(back.tokenizerJson.pre_tokenizer, LLAMA_3_PRE)
    const before = new TextCodec(llama3, { ...tokenizerConfig })
    const after = new TextCodec(back.tokenizerJson, back.tokenizerConfig)
    const gpt2 = new TextCodec(tokenizerJson, { ...tokenizerConfig })
    for (const text of TEXTS) {
      assert.deepEqual(after.encode(text), before.encode(text), text)
      assert.equal(after.decode(after.encode(text)), text)
    }
    // The texts do tell the two splits apart.
    assert.ok(TEXTS.some(text => gpt2.encode(text).join() !== before.encode(text).join()))
  })

  it('keeps GPT-2\'s, and refuses a pre-tokenizer llama.cpp would split otherwise', () => {
    const { tokenizerJson } = trainBpe(CORPUS, { vocabSize: 300 })
    const metadata = values(ggufTokenizer(tokenizerJson, 300, {}))
    assert.equal(metadata['tokenizer.ggml.pre'], 'gpt-2')
    assert.deepEqual(hfTokenizer(metadata).tokenizerJson.pre_tokenizer, tokenizerJson.pre_tokenizer)
    assert.throws(() => ggufTokenizer({ ...tokenizerJson, pre_tokenizer: { type: 'Metaspace', replacement: '▁' } }, 300, {}), { name: 'GgufConversionError' })
    assert.throws(() => hfTokenizer({ ...metadata, 'tokenizer.ggml.pre': 'qwen2' }), { name: 'GgufConversionError' })
  })

  it('splits as llama.cpp does with llama-bpe, in a converted model', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gguf-llama-bpe-'))
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
    try {
      await cp(assetDir('tiny-gpt'), join(dir, 'onnx'), { recursive: true })
      // A vocabulary with merges across what the two splits cut apart, padded into the model's embedding.
      const { tokenizerJson: trained } = trainBpe(CORPUS, { vocabSize: 300 })
      await writeFile(join(dir, 'onnx', 'tokenizer.json'), JSON.stringify({ ...trained, pre_tokenizer: LLAMA_3_PRE }))
      await convertDecoder(join(dir, 'onnx'), join(dir, 'model.gguf'))
      const { tokenizerJson, tokenizerConfig } = hfTokenizer((await readGguf(join(dir, 'model.gguf'))).metadata)
      const codec = new TextCodec(tokenizerJson, tokenizerConfig)
      const model = await llama.loadModel({ modelPath: join(dir, 'model.gguf'), vocabOnly: true })
      try {
        for (const text of TEXTS) assert.deepEqual([...model.tokenize(text, true)], codec.encode(text), text)
      } finally {
        await model.dispose()
      }
    } finally {
      await llama.dispose()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('reads a BERT GGUF\'s WordPiece tokenizer as convert_hf_to_gguf.py writes it: phantom spaces, [CLS] as its cls token', () => {
    const tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '\u2581hello', '\u2581world', 'ing', '\u2581,', '\u2581sing']
    const { tokenizerJson, tokenizerConfig } = hfTokenizer({
      'tokenizer.ggml.model': 'bert',
      'tokenizer.ggml.tokens': tokens,
      'tokenizer.ggml.token_type': [3, 3, 3, 3, 3, 1, 1, 1, 1, 1],
      'tokenizer.ggml.cls_token_id': 2,
      'tokenizer.ggml.seperator_token_id': 3,
      'tokenizer.ggml.unknown_token_id': 1,
      'tokenizer.ggml.padding_token_id': 0
    })
    const codec = new TextCodec(tokenizerJson, tokenizerConfig)
    assert.deepEqual(codec.encodeForModel('Hello, WORLD singing zzz'), [2, 5, 8, 6, 9, 7, 1, 3])
    assert.equal(codec.decode([5, 8, 6, 9, 7]), 'hello, world singing')
  })
})
