import assert from 'node:assert/strict'
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { convertEncoder, hfTokenizer, readGguf } from '@node-daemon/gguf'
import { assetDir } from '@node-daemon/models'
import { getLlama, LlamaLogLevel } from 'node-llama-cpp'
import { Runtime } from '../src/runtime.ts'
import { DEFAULT_SAMPLING } from '../src/sampling.ts'
import { TextCodec } from '../src/text.ts'
import { MIN_COSINE, cosine } from './helpers/embeddings.ts'

const TEXTS = ['The old man and the sea', 'It is a truth universally acknowledged, that a single man in possession of a good fortune', 'x']

const WORDPIECE_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']

/**
 * An uncased WordPiece tokenizer.json as BERT's (normalizer, pre-tokenizer,
 * [CLS] … [SEP] template) over the words of the default embedding model's
 * byte-level vocabulary, so that its weights serve a BERT tokenizer of the
 * same size: the kind of tokenizer BERT, MiniLM, BGE and E5 have.
 */
function wordPieceTokenizer (bpe: { model: { vocab: Record<string, number> } }, size: number): Record<string, unknown> {
  const pieces = new Set<string>(WORDPIECE_SPECIALS)
  for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789') pieces.add(c).add(`##${c}`)
  for (const c of '.,;:!?\'"()-') pieces.add(c)
  for (const piece of Object.keys(bpe.model.vocab)) {
    const word = piece.startsWith('Ġ') ? piece.slice(1).toLowerCase() : piece.toLowerCase()
    if (/^[a-z0-9]+$/.test(word) && pieces.size < size) pieces.add(piece.startsWith('Ġ') ? word : `##${word}`)
  }
  const vocab = Object.fromEntries([...pieces].map((p, id) => [p, id]))
  const special = (t: string): object => ({ [t]: { id: t, ids: [vocab[t]], tokens: [t] } })
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: WORDPIECE_SPECIALS.map(content => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: { ...special('[CLS]'), ...special('[SEP]') }
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab }
  }
}

/** The default embedding model converted to GGUF, embedding in llama.cpp as onnxruntime embeds its ONNX form. */
describe('a GGUF embedding model in the runtime', () => {
  let dir: string
  let runtime: Runtime
  const ref = (name: string): { key: string, name: string, dir: string } => ({ key: name, name, dir: join(dir, name) })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'runtime-gguf-encoder-'))
    await mkdir(join(dir, 'mean'))
    await convertEncoder(assetDir('tiny-embed'), join(dir, 'mean', 'model.gguf'))
    await mkdir(join(dir, 'cls'))
    await convertEncoder(assetDir('tiny-embed'), join(dir, 'cls', 'model.gguf'), { pooling: 'cls' })
    // The ONNX model pooled by its first token, as a sentence-transformers directory says it.
    await cp(assetDir('tiny-embed'), join(dir, 'onnx-cls'), { recursive: true })
    await writeFile(join(dir, 'onnx-cls', 'modules.json'), JSON.stringify([{ idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' }, { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' }, { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' }]))
    await mkdir(join(dir, 'onnx-cls', '1_Pooling'))
    await writeFile(join(dir, 'onnx-cls', '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 128, pooling_mode_cls_token: true, pooling_mode_mean_tokens: false }))
    // The same weights with a BERT tokenizer, and its GGUF.
    await cp(assetDir('tiny-embed'), join(dir, 'onnx-wordpiece'), { recursive: true })
    const bpe = JSON.parse(await readFile(join(dir, 'onnx-wordpiece', 'tokenizer.json'), 'utf8'))
    await writeFile(join(dir, 'onnx-wordpiece', 'tokenizer.json'), JSON.stringify(wordPieceTokenizer(bpe, 2048)))
    await writeFile(join(dir, 'onnx-wordpiece', 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'BertTokenizer', do_lower_case: true, cls_token: '[CLS]', sep_token: '[SEP]', unk_token: '[UNK]', pad_token: '[PAD]', mask_token: '[MASK]', model_max_length: 512 }))
    await mkdir(join(dir, 'wordpiece'))
    await convertEncoder(join(dir, 'onnx-wordpiece'), join(dir, 'wordpiece', 'model.gguf'))
    runtime = new Runtime()
    await runtime.start()
  })
  after(async () => {
    await runtime.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('embeds as the ONNX encoder does, pooled as the file says, normalized', async () => {
    const onnx = await runtime.embed({ key: 'onnx', name: 'tiny-embed', dir: assetDir('tiny-embed') }, TEXTS)
    const onnxCls = await runtime.embed(ref('onnx-cls'), TEXTS)
    const mean = await runtime.embed(ref('mean'), TEXTS)
    const cls = await runtime.embed(ref('cls'), TEXTS)
    assert.equal(mean.promptTokens, onnx.promptTokens)
    TEXTS.forEach((text, i) => {
      assert.ok(Math.abs(Math.hypot(...mean.embeddings[i]) - 1) < 1e-5)
      assert.ok(cosine(mean.embeddings[i], onnx.embeddings[i]) >= MIN_COSINE, `${text}: mean ${cosine(mean.embeddings[i], onnx.embeddings[i])}`)
      assert.ok(cosine(cls.embeddings[i], onnxCls.embeddings[i]) >= MIN_COSINE, `${text}: cls ${cosine(cls.embeddings[i], onnxCls.embeddings[i])}`)
    })
    // The two poolings differ where a text has more than one token: the file's pooling is the one applied.
    assert.ok(cosine(mean.embeddings[1], cls.embeddings[1]) < MIN_COSINE)
    const loaded = runtime.loaded().find(m => m.key === 'mean')
    assert.deepEqual(loaded && { kind: loaded.info.kind, family: loaded.info.family, contextLength: loaded.info.contextLength }, { kind: 'encoder', family: 'bert', contextLength: 511 })
  })

  it('writes a WordPiece tokenizer as llama.cpp\'s bert one, which tokenizes as BERT\'s does, and embeds with it as the ONNX encoder does', async () => {
    const texts = [...TEXTS, 'Hello, World! It\'s 2024 (again).', 'zzzqqq unknownish words', '']
    const { metadata } = await readGguf(join(dir, 'wordpiece', 'model.gguf'))
    assert.equal(metadata['tokenizer.ggml.model'], 'bert')
    const lease = await runtime.acquire(ref('onnx-wordpiece'))
    const onnx = lease.model.codec
    lease.release()
    const { tokenizerJson, tokenizerConfig } = hfTokenizer(metadata)
    const back = new TextCodec(tokenizerJson, tokenizerConfig)
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
    const model = await llama.loadModel({ modelPath: join(dir, 'wordpiece', 'model.gguf'), vocabOnly: true })
    try {
      for (const text of texts) {
        const ids = onnx.encodeForModel(text)
        assert.deepEqual(back.encodeForModel(text), ids, `read back: ${JSON.stringify(text)}`)
        assert.deepEqual([...model.tokenize(text, true)], onnx.encode(text), `llama.cpp: ${JSON.stringify(text)}`)
      }
      assert.equal(onnx.encodeForModel('Hello')[0], 2, 'the [CLS] first')
    } finally {
      await model.dispose()
      await llama.dispose()
    }
    const expected = await runtime.embed(ref('onnx-wordpiece'), TEXTS)
    const got = await runtime.embed(ref('wordpiece'), TEXTS)
    assert.equal(got.promptTokens, expected.promptTokens)
    TEXTS.forEach((text, i) => assert.ok(cosine(got.embeddings[i], expected.embeddings[i]) >= MIN_COSINE, `${text}: ${cosine(got.embeddings[i], expected.embeddings[i])}`))
  })

  it('takes token ids, truncates to the context or refuses, and refuses to generate', async () => {
    const lease = await runtime.acquire(ref('mean'))
    const tokens = lease.model.codec.encode(TEXTS[0])
    lease.release()
    const byText = await runtime.embed(ref('mean'), [TEXTS[0]])
    const byIds = await runtime.embed(ref('mean'), [tokens])
    assert.deepEqual(byIds.embeddings, byText.embeddings)
    const long = 'and so it went on '.repeat(200)
    const cut = await runtime.embed(ref('mean'), [long])
    assert.equal(cut.promptTokens, 511)
    await assert.rejects(runtime.embed(ref('mean'), [long], { truncate: false }), { name: 'ContextLengthError' })
    await assert.rejects(runtime.generate(ref('mean'), { prompt: 'hi', raw: true }, { sampling: DEFAULT_SAMPLING, maxTokens: 4, stop: [] }), { name: 'UnsupportedModelError' })
  })
})
