import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { convertDecoder, hfTokenizer, readGguf } from '@node-daemon/gguf'
import { getLlama, LlamaLogLevel } from 'node-llama-cpp'
import { Runtime } from '../src/runtime.ts'
import { TextCodec } from '../src/text.ts'
import { collect } from './helpers/collect.ts'
import { FAMILIES, writeFamilyModel } from './helpers/family-models.ts'
import type { Llama } from 'node-llama-cpp'
import type { SamplingOptions } from '../src/sampling.ts'

const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }
/** Spaces in runs, newlines, accents, scripts and an emoji the vocabulary lacks (byte fallback), special tokens inside text. */
const TEXTS = [
  'It is a truth universally acknowledged',
  '  two  spaces\nand a newline\n\n\tand a tab',
  'Ünïcödé ☃ 日本語 and an emoji 🎉',
  'the thee thy they there then',
  '<s>[INST] hi [/INST] there</s>',
  'Elizabeth Bennet and Mr. Darcy walked to Meryton.'
]
const PROMPTS = ['It is a truth universally acknowledged', 'The old man and', 'Ünïcödé\n🎉']

const llama2 = FAMILIES.find(f => f.name === 'llama2')
const gemma2 = FAMILIES.find(f => f.name === 'gemma2')
if (llama2 == null || gemma2 == null) throw new Error('the llama2 and gemma2 families are gone')
/** Llama 2's SentencePiece tokenizer prepends '▁' to a text; Gemma's, here on a Llama model, does not. */
const CASES = [llama2, { ...llama2, name: 'llama-gemma-tokenizer', tokenizer: gemma2.tokenizer, eos: gemma2.eos, bos: gemma2.bos }]

/** Llama-2-style test models with SentencePiece tokenizers, converted to GGUF: llama.cpp tokenizes and decodes as the ONNX model in the runtime does. */
describe('a SentencePiece GGUF model', () => {
  let dir: string
  let runtime: Runtime
  let llama: Llama
  const ref = (name: string): { key: string, name: string, dir: string } => ({ key: name, name, dir: join(dir, name) })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'runtime-gguf-spm-'))
    for (const family of CASES) {
      await writeFamilyModel(join(dir, family.name), family)
      await mkdir(join(dir, `${family.name}-gguf`))
      await convertDecoder(join(dir, family.name), join(dir, `${family.name}-gguf`, 'model.gguf'))
    }
    runtime = new Runtime()
    await runtime.start()
    llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
  })
  after(async () => {
    await runtime?.stop()
    await llama?.dispose()
    await rm(dir, { recursive: true, force: true })
  })

  for (const family of CASES) {
    it(`${family.name}: writes llama.cpp's SentencePiece tokenizer, which tokenizes as the ONNX model's does, and reads back to one that does too`, async () => {
      const { metadata } = await readGguf(join(dir, `${family.name}-gguf`, 'model.gguf'))
      assert.equal(metadata['tokenizer.ggml.model'], 'llama')
      assert.equal(metadata['tokenizer.ggml.add_space_prefix'], family === llama2)
      assert.equal(metadata['tokenizer.ggml.add_bos_token'], true)
      const types = metadata['tokenizer.ggml.token_type'] as number[]
      const tokens = metadata['tokenizer.ggml.tokens'] as string[]
      assert.equal(types[tokens.indexOf('<0x0A>')], 6, 'a byte token')
      const lease = await runtime.acquire(ref(family.name))
      const onnx = lease.model.codec
      lease.release()
      const { tokenizerJson, tokenizerConfig } = hfTokenizer(metadata)
      const back = new TextCodec(tokenizerJson, tokenizerConfig)
      const model = await llama.loadModel({ modelPath: join(dir, `${family.name}-gguf`, 'model.gguf'), vocabOnly: true })
      try {
        for (const text of TEXTS) {
          const expected = onnx.encode(text)
          assert.deepEqual([...model.tokenize(text, true)], expected, `llama.cpp: ${JSON.stringify(text)}`)
          assert.deepEqual(back.encode(text), expected, `read back: ${JSON.stringify(text)}`)
          assert.equal(back.decode(expected), onnx.decode(expected))
        }
        // The bytes out of the vocabulary did fall back to byte tokens.
        assert.deepEqual(onnx.encode('🎉').slice(-4).map(id => tokens[id]), ['<0xF0>', '<0x9F>', '<0x8E>', '<0x89>'])
        assert.equal(back.bos, onnx.bos)
      } finally {
        await model.dispose()
      }
    })
  }

  it('llama2: generates the ONNX model\'s greedy text', async () => {
    for (const prompt of PROMPTS) {
      const texts = await Promise.all(['llama2', 'llama2-gguf'].map(async name => {
        const { events } = await runtime.generate(ref(name), { prompt, raw: true }, { sampling: GREEDY, maxTokens: 24, stop: [] })
        return (await collect(events)).stats
      }))
      assert.ok(texts[0].tokens.length > 0)
      assert.deepEqual(texts[1].tokens, texts[0].tokens, prompt)
      assert.equal(texts[1].text, texts[0].text)
    }
  })
})
