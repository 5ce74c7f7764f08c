/**
 * A GGUF model as a user brings one: the default decoder converted to GGUF,
 * uploaded as a single .gguf file to a real daemon, then driven by the real
 * ollama and openai clients. Its answers equal the ONNX default model's,
 * the same weights in the other engine. Then the same file as the CLI
 * imports it, alone and from a fake Ollama installation; and the default
 * embedding model converted to GGUF, embedding as its ONNX form does.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Ajv } from 'ajv'
import { program } from '@node-daemon/cli'
import { convertDecoder, convertEncoder } from '@node-daemon/gguf'
import { DEFAULT_MODELS, assetDir } from '@node-daemon/models'
import { writeOllamaTree } from '../../packages/cli/test/helpers/ollama-tree.ts'
import { MIN_COSINE, cosine } from '../../packages/runtime/test/helpers/embeddings.ts'
import { startWithClients } from '../helpers/clients.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { Ollama } from 'ollama'
import type OpenAI from 'openai'

const GREEDY = { temperature: 0, repeat_penalty: 1, num_predict: 24 }
const GGUF = 'tiny-gguf:f32'
const GGUF_EMBED = 'tiny-embed-gguf:f32'

describe('a GGUF model in a daemon', () => {
  let daemon: TestDaemon
  let ollama: Ollama
  let openai: OpenAI
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'inference-gguf-'))
    await convertDecoder(assetDir('tiny-gpt'), join(dir, 'tiny-gpt.F32.gguf'))
    await convertEncoder(assetDir(DEFAULT_MODELS.embed), join(dir, 'tiny-embed.F32.gguf'))
    ;({ daemon, ollama, openai } = await startWithClients())
  })
  after(async () => {
    await daemon?.cleanup()
    await rm(dir, { recursive: true, force: true })
  })

  /** Imports one .gguf file of `dir` under `name`, as /api/models/upload takes a file. */
  const uploadFile = async (name: string, file: string): Promise<void> => {
    const form = new FormData()
    form.append('modelId', name)
    form.append('file', new Blob([await readFile(join(dir, file))]), file)
    const res = await fetch(`${daemon.url}/api/models/upload`, { method: 'POST', body: form, signal: AbortSignal.timeout(120_000) })
    assert.equal(res.status, 201, await res.clone().text())
  }

  it('imports a .gguf file by upload, registered with what its header says', async () => {
    await uploadFile(GGUF, 'tiny-gpt.F32.gguf')
    const listed = (await ollama.list()).models.find(m => m.name === GGUF)
    assert.deepEqual(listed && { format: listed.details.format, family: listed.details.family, quantization: listed.details.quantization_level }, { format: 'gguf', family: 'gpt2', quantization: 'F32' })
    const shown = await ollama.show({ model: GGUF })
    assert.match(shown.template, /<\|im_start\|>/, 'the template is the file\'s')
    assert.equal((shown.model_info as unknown as Record<string, unknown>)['gpt2.context_length'], 512)
  })

  it('generates the ONNX model\'s greedy text, streamed and not, and shows in /api/ps', async () => {
    const prompt = 'It was a fine morning, and Elizabeth'
    const onnx = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt, raw: true, stream: false, options: GREEDY })
    const whole = await ollama.generate({ model: GGUF, prompt, raw: true, stream: false, options: GREEDY })
    assert.equal(whole.response, onnx.response)
    assert.ok(whole.eval_count > 0)
    let streamed = ''
    for await (const part of await ollama.generate({ model: GGUF, prompt, raw: true, stream: true, options: GREEDY })) streamed += part.response
    assert.equal(streamed, onnx.response)
    const ps = (await ollama.ps()).models.find(m => m.name === GGUF)
    assert.ok(ps != null, 'the model is loaded')
  })

  it('answers /v1/chat/completions with the file\'s chat template, streamed and not', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me about the weather.' }]
    const ask = { messages, temperature: 0, max_tokens: 16 }
    const onnx = await openai.chat.completions.create({ ...ask, model: DEFAULT_MODELS.generate })
    const whole = await openai.chat.completions.create({ ...ask, model: GGUF })
    assert.equal(whole.choices[0].message.content, onnx.choices[0].message.content)
    let streamed = ''
    for await (const chunk of await openai.chat.completions.create({ ...ask, model: GGUF, stream: true })) streamed += chunk.choices[0]?.delta.content ?? ''
    assert.equal(streamed, whole.choices[0].message.content)
  })

  it('keeps structured output to the format\'s schema', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city', 'days'], additionalProperties: false }
    const res = await ollama.chat({ model: GGUF, messages: [{ role: 'user', content: 'The forecast?' }], format: schema, stream: false, options: { temperature: 1, seed: 5, num_predict: 80 } })
    assert.ok(new Ajv().validate(schema, JSON.parse(res.message.content)), res.message.content)
  })

  it('embeds with a GGUF embedding model as the ONNX encoder of the same weights does, on /api/embed, /api/embeddings and /v1/embeddings', async () => {
    await uploadFile(GGUF_EMBED, 'tiny-embed.F32.gguf')
    const texts = ['The old man and the sea', 'It is a truth universally acknowledged, that a single man in possession of a good fortune', 'x', 'Ünïcödé and\nnewlines']
    const onnx = await ollama.embed({ model: DEFAULT_MODELS.embed, input: texts })
    const gguf = await ollama.embed({ model: GGUF_EMBED, input: texts })
    assert.equal(gguf.embeddings.length, texts.length)
    assert.equal(gguf.prompt_eval_count, onnx.prompt_eval_count, 'the same tokens')
    gguf.embeddings.forEach((e, i) => {
      assert.equal(e.length, onnx.embeddings[i].length)
      assert.ok(Math.abs(Math.hypot(...e) - 1) < 1e-5, 'normalized')
      assert.ok(cosine(e, onnx.embeddings[i]) >= MIN_COSINE, `${texts[i]}: cosine ${cosine(e, onnx.embeddings[i])}`)
    })
    // Different texts stay apart: the agreement is not that of constant vectors.
    assert.ok(cosine(gguf.embeddings[0], gguf.embeddings[1]) < MIN_COSINE)
    const legacy = await ollama.embeddings({ model: GGUF_EMBED, prompt: texts[0] })
    assert.ok(cosine(legacy.embedding, onnx.embeddings[0]) >= MIN_COSINE)
    const v1 = await openai.embeddings.create({ model: GGUF_EMBED, input: texts.slice(0, 2), dimensions: 64 })
    const shortened = await openai.embeddings.create({ model: DEFAULT_MODELS.embed, input: texts.slice(0, 2), dimensions: 64 })
    v1.data.forEach((d, i) => {
      assert.equal(d.embedding.length, 64)
      assert.ok(cosine(d.embedding, shortened.data[i].embedding) >= MIN_COSINE)
    })
    const shown = await ollama.show({ model: GGUF_EMBED })
    assert.equal(shown.details.family, 'bert')
    const generate = await fetch(`${daemon.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: GGUF_EMBED, prompt: 'hi' }) })
    assert.equal(generate.status, 400, 'an embedding model does not generate')
  })

  /** Runs a `node-daemon model …` command against the daemon, in this process. */
  const cli = async (...args: string[]): Promise<void> => {
    await program().exitOverride().parseAsync(['model', ...args, '--api', daemon.url, '--no-progress'], { from: 'user' })
  }

  it('imports a .gguf file with `model import`', async () => {
    await cli('import', join(dir, 'tiny-gpt.F32.gguf'), '--name', 'cli-gguf')
    const res = await ollama.generate({ model: 'cli-gguf', prompt: 'Call me', raw: true, stream: false, options: GREEDY })
    const onnx = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'Call me', raw: true, stream: false, options: GREEDY })
    assert.equal(res.response, onnx.response)
  })

  it('imports an Ollama installation under its names, with template, system prompt, parameters and license', async () => {
    const modelsDir = join(dir, 'ollama', 'models')
    const template = '{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n'
    await writeOllamaTree(modelsDir, [{
      name: 'tinyllama',
      tag: 'f32',
      layers: {
        model: await readFile(join(dir, 'tiny-gpt.F32.gguf')),
        template,
        system: 'You are terse.',
        params: JSON.stringify({ temperature: 0, repeat_penalty: 1, stop: ['<|im_end|>'] }),
        license: 'The tiny licence.'
      }
    }])
    await cli('import-ollama', '--models-dir', modelsDir)
    const shown = await ollama.show({ model: 'tinyllama:f32' })
    assert.equal(shown.system, 'You are terse.')
    assert.equal(shown.template, template)
    assert.equal(shown.license, 'The tiny licence.')
    assert.match(shown.parameters, /temperature\s+0/)
    // The system prompt, the template and the greedy parameters all apply: the answer is the ONNX model's on the prompt they render.
    const res = await ollama.generate({ model: 'tinyllama:f32', prompt: 'Who are you?', stream: false, options: { num_predict: 12 } })
    const rendered = '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n'
    const onnx = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: rendered, raw: true, stream: false, options: { ...GREEDY, num_predict: 12, stop: ['<|im_end|>'] } })
    assert.ok((onnx.response ?? '').length > 0)
    assert.equal(res.response, onnx.response)
  })
})
