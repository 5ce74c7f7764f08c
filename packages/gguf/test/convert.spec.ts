import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { assetDir } from '@node-daemon/models'
import { Runtime } from '@node-daemon/runtime'
import { getLlama } from 'node-llama-cpp'
import { convertDecoder, convertEncoder, hfTokenizer, poolingOf, readGguf, summarize } from '../src/index.ts'
import type { Llama, LlamaModel } from 'node-llama-cpp'

const PROMPTS = ['It is a truth universally acknowledged', 'The old man and', '<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n']
const TOKENS = 24

describe('convertDecoder', () => {
  let dir: string
  let path: string
  let llama: Llama
  let model: LlamaModel
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gguf-convert-'))
    path = join(dir, 'tiny-gpt.gguf')
    await convertDecoder(assetDir('tiny-gpt'), path, { name: 'tiny-gpt' })
    llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as any })
    model = await llama.loadModel({ modelPath: path })
  })
  after(async () => {
    await model?.dispose()
    await llama?.dispose()
    await rm(dir, { recursive: true, force: true })
  })

  it('writes llama.cpp gpt2 metadata, the tokenizer and the chat template', async () => {
    const file = await readGguf(path)
    assert.deepEqual({ ...summarize(file), chatTemplate: undefined }, { architecture: 'gpt2', parameters: 2_664_576, quantization: 'F32', contextLength: 512, chatTemplate: undefined })
    assert.match(summarize(file).chatTemplate ?? '', /<\|im_start\|>/)
    const { eosIds, tokenizerConfig } = hfTokenizer(file.metadata)
    assert.deepEqual(eosIds, [0, 2])
    assert.equal(tokenizerConfig.eos_token, '<|endoftext|>')
    // llama.cpp tokenizes as the project's tokenizer does, special tokens included.
    const runtime = new Runtime()
    await runtime.start()
    try {
      const lease = await runtime.acquire({ key: 'onnx', name: 'tiny-gpt', dir: assetDir('tiny-gpt') })
      for (const prompt of PROMPTS) assert.deepEqual([...model.tokenize(prompt, true)], lease.model.codec.encode(prompt), prompt)
      lease.release()
    } finally {
      await runtime.stop()
    }
  })

  it('runs in llama.cpp to the same greedy text as the ONNX model in the runtime', async () => {
    const runtime = new Runtime()
    await runtime.start()
    // One thread: several spin-wait for each other on a small model and a busy machine, 300× slower.
    const context = await model.createContext({ contextSize: 512, sequences: 1, threads: 1 })
    try {
      for (const prompt of PROMPTS) {
        const { events, prompt: ids } = await runtime.generate({ key: 'onnx', name: 'tiny-gpt', dir: assetDir('tiny-gpt') }, { prompt, raw: true }, {
          sampling: { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }, maxTokens: TOKENS, stop: []
        })
        let onnx: number[] = []
        for await (const e of events) if (e.type === 'done') onnx = e.stats.tokens
        const sequence = context.getSequence()
        const greedy: number[] = []
        for await (const token of sequence.evaluate(ids as any, { temperature: 0 })) {
          if (model.isEogToken(token) || greedy.length === TOKENS) break
          greedy.push(token)
        }
        sequence.dispose()
        assert.equal(model.detokenize(greedy as any), model.detokenize(onnx as any), prompt)
        assert.ok(greedy.length > 0)
      }
    } finally {
      await context.dispose()
      await runtime.stop()
    }
  })
})

describe('convertEncoder', () => {
  it('writes llama.cpp bert metadata, q, k and v apart, and the pooling asked for', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gguf-encoder-'))
    try {
      await convertEncoder(assetDir('tiny-embed'), join(dir, 'mean.gguf'))
      await convertEncoder(assetDir('tiny-embed'), join(dir, 'cls.gguf'), { pooling: 'cls' })
      const file = await readGguf(join(dir, 'mean.gguf'))
      assert.deepEqual(summarize(file), { architecture: 'bert', parameters: 724_736, quantization: 'F32', contextLength: 512 })
      assert.equal(poolingOf(file), 'mean')
      assert.equal(poolingOf(await readGguf(join(dir, 'cls.gguf'))), 'cls')
      assert.equal(file.metadata['bert.attention.causal'], false)
      assert.deepEqual(file.tensors.filter(t => t.name.startsWith('blk.0.attn_')).map(t => [t.name, t.dims]), [
        ['blk.0.attn_q.weight', [128, 128]], ['blk.0.attn_q.bias', [128]], ['blk.0.attn_k.weight', [128, 128]], ['blk.0.attn_k.bias', [128]],
        ['blk.0.attn_v.weight', [128, 128]], ['blk.0.attn_v.bias', [128]], ['blk.0.attn_output.weight', [128, 128]], ['blk.0.attn_output.bias', [128]],
        ['blk.0.attn_output_norm.weight', [128]], ['blk.0.attn_output_norm.bias', [128]]
      ])
      // A decoder's file pools nothing: it generates.
      await convertDecoder(assetDir('tiny-gpt'), join(dir, 'gpt.gguf'))
      assert.equal(poolingOf(await readGguf(join(dir, 'gpt.gguf'))), undefined)
      await assert.rejects(convertEncoder(assetDir('tiny-gpt'), join(dir, 'x.gguf')), { name: 'GgufConversionError' })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
