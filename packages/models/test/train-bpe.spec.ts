import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Template } from '@huggingface/jinja'
import { Tokenizer } from '@huggingface/tokenizers'
import { readCorpus } from '../src/corpus.ts'
import { preTokenize } from '../src/tokenizer/byte-level.ts'
import { END_OF_TEXT, IM_END, IM_START, trainBpe } from '../src/tokenizer/train-bpe.ts'

const corpus = await readCorpus()
const trained = trainBpe(corpus, { vocabSize: 1024 })
// Through JSON, as the runtime reads the files.
const tokenizerJson = JSON.parse(JSON.stringify(trained.tokenizerJson))
const tokenizerConfig = JSON.parse(JSON.stringify(trained.tokenizerConfig))
const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig)

function roundTrip (text: string): void {
  const { ids } = tokenizer.encode(text)
  assert.equal(tokenizer.decode(ids), text)
}

/** Seeded random text over ASCII, Latin, Greek, Cyrillic, combining marks, CJK, emoji and odd whitespace. */
function randomText (seed: number, length: number): string {
  const ranges = [[0x20, 0x7e], [0x0, 0x1f], [0xa0, 0x17f], [0x370, 0x3ff], [0x400, 0x4ff], [0x300, 0x36f], [0x4e00, 0x9fff], [0x3040, 0x30ff], [0x1f300, 0x1faff], [0x2000, 0x206f], [0xac00, 0xd7a3], [0xfe00, 0xfeff]]
  let state = seed
  const next = (n: number): number => {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    return state % n
  }
  let text = ''
  for (let i = 0; i < length; i++) {
    const [low, high] = ranges[next(ranges.length)]
    text += String.fromCodePoint(low + next(high - low + 1))
  }
  return text
}

describe('trainBpe', () => {
  it('is deterministic', () => {
    const again = trainBpe(corpus, { vocabSize: 1024 })
    assert.equal(JSON.stringify(again), JSON.stringify(trained))
  })

  it('makes a vocabulary of the size asked, ids 0 to size - 1', () => {
    for (const [vocabSize, result] of [[1024, trained], [2048, trainBpe(corpus, { vocabSize: 2048 })]] as const) {
      const { vocab, merges } = result.tokenizerJson.model
      const ids = Object.values(vocab).sort((a, b) => a - b)
      assert.deepEqual(ids, Array.from({ length: vocabSize }, (_, id) => id))
      assert.equal(merges.length, vocabSize - 3 - 256)
      assert.equal(new Tokenizer(result.tokenizerJson, result.tokenizerConfig).get_vocab().size, vocabSize)
    }
  })

  it('writes GPT-2 style byte-level files with ChatML special tokens', () => {
    assert.deepEqual(tokenizerJson.pre_tokenizer, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true })
    assert.equal(tokenizerJson.decoder.type, 'ByteLevel')
    assert.equal(tokenizerJson.model.type, 'BPE')
    assert.deepEqual(tokenizerJson.added_tokens.map(({ id, content, special }: { id: number, content: string, special: boolean }) => [id, content, special]),
      [[0, END_OF_TEXT, true], [1, IM_START, true], [2, IM_END, true]])
    assert.equal(tokenizerConfig.bos_token, END_OF_TEXT)
    assert.equal(tokenizerConfig.eos_token, END_OF_TEXT)
    assert.equal(tokenizerConfig.pad_token, END_OF_TEXT)
    assert.equal(tokenizerConfig.clean_up_tokenization_spaces, false)
    assert.equal(tokenizerConfig.model_max_length, 1024)
    assert.equal(trainBpe('a b', { vocabSize: 260, modelMaxLength: 256 }).tokenizerConfig.model_max_length, 256)
  })

  it('round-trips any Unicode text through @huggingface/tokenizers', () => {
    for (const text of [
      'Hello, world!', ' leading and trailing spaces  ', 'Crème brûlée à la façon de Zoë — naïve café', 'e\u0301 vs \u00e9',
      '日本語のテキストと中文字符', '👋🏽 👨‍👩‍👧 🇫🇷 ✓', 'line one\nline two\r\n\n\ttabbed\u00a0nbsp\u2028sep', '\u0000\u0007\ufeffcontrol',
      "She's here, isn't she? \"Yes.\" 1,234.56 -- ...", `${IM_START}user\nHi${IM_END}\n${END_OF_TEXT}`
    ]) roundTrip(text)
    for (let seed = 1; seed <= 50; seed++) roundTrip(randomText(seed, 200))
    roundTrip(corpus[2].slice(0, 20_000))
  })

  it('encodes each special token as one id, also inside text', () => {
    for (const [id, special] of [END_OF_TEXT, IM_START, IM_END].entries()) {
      assert.deepEqual(tokenizer.encode(special).ids, [id])
    }
    const { ids } = tokenizer.encode(`${IM_START}user\nWell?${IM_END}${END_OF_TEXT}`)
    assert.equal(ids[0], 1)
    assert.deepEqual(ids.slice(-2), [2, 0])
    assert.equal(tokenizer.decode(ids, { skip_special_tokens: true }), 'user\nWell?')
  })

  it('makes the most common words of the corpus single tokens', () => {
    const counts = new Map<string, number>()
    for (const text of corpus) for (const piece of preTokenize(text)) counts.set(piece, (counts.get(piece) ?? 0) + 1)
    const common = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 100).map(([word]) => word)
    assert.ok(common.includes(' the') && common.includes(' Elizabeth'))
    for (const word of common) assert.equal(tokenizer.encode(word).ids.length, 1, JSON.stringify(word))
  })

  it('renders the ChatML template with @huggingface/jinja', () => {
    const template = new Template(tokenizerConfig.chat_template)
    const messages = [{ role: 'user', content: 'Who is Mr. Darcy?' }, { role: 'assistant', content: 'A proud man.' }]
    const prompt = template.render({ messages, add_generation_prompt: true, bos_token: tokenizerConfig.bos_token, eos_token: tokenizerConfig.eos_token })
    assert.equal(prompt, `${IM_START}user\nWho is Mr. Darcy?${IM_END}\n${IM_START}assistant\nA proud man.${IM_END}\n${IM_START}assistant\n`)
    assert.equal(template.render({ messages }), `${IM_START}user\nWho is Mr. Darcy?${IM_END}\n${IM_START}assistant\nA proud man.${IM_END}\n`)
    const { ids } = tokenizer.encode(prompt)
    assert.equal(ids.filter((id: number) => id === 1).length, 3)
    assert.equal(tokenizer.decode(ids), prompt)
  })

  it('cuts special tokens out of the text before counting pairs', () => {
    const { tokenizerJson: json } = trainBpe([`ab ab${END_OF_TEXT}`.repeat(20), 'x<|pad|>y'.repeat(20)], { vocabSize: 300, specialTokens: ['<|pad|>'] })
    assert.equal(json.added_tokens[3].content, '<|pad|>')
    assert.equal(json.model.vocab['<|pad|>'], 3)
    assert.ok(json.model.merges.every(([first, second]) => !/[<|>]/.test(first + second)), JSON.stringify(json.model.merges))
  })

  it('stops early when the text has no pairs left', () => {
    assert.equal(Object.keys(trainBpe('ab', { vocabSize: 1000 }).tokenizerJson.model.vocab).length, 3 + 256 + 1)
  })

  it('refuses a vocabulary smaller than the specials and bytes, or repeated specials', () => {
    assert.throws(() => trainBpe('ab', { vocabSize: 258 }), { name: 'RangeError' })
    assert.throws(() => trainBpe('ab', { vocabSize: 512, specialTokens: [IM_END] }), { name: 'RangeError' })
  })
})
