/**
 * One daemon on its embedded defaults, driven by the real `ollama` and
 * `openai` clients and by document 001's and 000's routes: the default models
 * answer, greedy output is the same every time and equal to a bare
 * onnxruntime loop over the same files, and bad requests get each family's
 * errors.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Tokenizer } from '@huggingface/tokenizers'
import { DEFAULT_MODELS, assetDir } from '@node-daemon/models'
import { createOpenAICompatible } from '@ai-sdk/openai-compatible'
import { OllamaEmbeddings } from '@langchain/ollama'
import { OpenAIEmbeddings } from '@langchain/openai'
import { embedMany } from 'ai'
import { bareGreedy } from '../../packages/runtime/test/helpers/bare-greedy.ts'
import { startWithClients } from '../helpers/clients.ts'
import { waitFor } from '../helpers/cluster.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { Ollama } from 'ollama'
import type OpenAI from 'openai'

const GREEDY = { temperature: 0, repeat_penalty: 1, num_predict: 24 }
const GPT = `${DEFAULT_MODELS.generate}:latest`

/** The text a bare onnxruntime loop writes from the model's files, tokenized with the library directly. */
async function bareGreedyText (dir: string, prompt: string, steps: number): Promise<string> {
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
  const tokenizer = new Tokenizer(JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')))
  const ids = await bareGreedy(dir, tokenizer.encode(prompt, { add_special_tokens: false }).ids, steps, new Set(config.eos_token_id))
  return ids.length === 0 ? '' : tokenizer.decode(ids, { skip_special_tokens: true })
}

describe('inference on one daemon, with the real clients', () => {
  let daemon: TestDaemon
  let ollama: Ollama
  let openai: OpenAI

  before(async () => { ({ daemon, ollama, openai } = await startWithClients()) })
  after(async () => { await daemon?.cleanup() })

  it('lists the default models with their details', async () => {
    const { models } = await ollama.list()
    const gpt = models.find(m => m.name === GPT)
    assert.ok(gpt != null)
    assert.equal(gpt.details.family, 'gpt2')
    assert.match(gpt.digest, /^Qm/)
    const shown = await ollama.show({ model: DEFAULT_MODELS.generate })
    assert.match(shown.modelfile, /^FROM /)
    const listed = await openai.models.list()
    assert.ok(listed.data.some(m => m.id === GPT))
  })

  it('writes the same greedy text every time, equal to a bare onnxruntime loop on the model files', async () => {
    const prompt = 'It was a fine morning, and Elizabeth'
    const first = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt, raw: true, stream: false, options: GREEDY })
    const second = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt, raw: true, stream: false, options: GREEDY })
    assert.equal(second.response, first.response)
    assert.ok((first.response ?? '').length > 0)
    assert.equal(first.response, await bareGreedyText(assetDir(DEFAULT_MODELS.generate), prompt, GREEDY.num_predict))
    for (const field of ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'] as const) {
      assert.ok(typeof first[field] === 'number', field)
    }
    assert.ok(['stop', 'length'].includes(first.done_reason))
  })

  it('streams generate and chat token by token as NDJSON, the last chunk with the stats', async () => {
    const options = { ...GREEDY, num_predict: 16 }
    const chunks: string[] = []
    let last: any
    for await (const part of await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'Tell me of Bath.', stream: true, options })) {
      if (part.done) last = part
      else chunks.push(part.response ?? '')
    }
    assert.ok(chunks.length >= 2, 'several chunks')
    assert.ok(last.done_reason === 'length' ? last.eval_count === 16 : last.eval_count < 16)
    const whole = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'Tell me of Bath.', stream: false, options })
    assert.equal(chunks.join(''), whole.response)
    const chat = await ollama.chat({ model: DEFAULT_MODELS.generate, messages: [{ role: 'user', content: 'Who is Mr. Darcy?' }], stream: false, options: { num_predict: 12, seed: 7 } })
    assert.equal(chat.message.role, 'assistant')
    assert.ok(chat.eval_count > 0)
  })

  it('answers the OpenAI client, streaming with usage and not', async () => {
    const completion = await openai.chat.completions.create({ model: DEFAULT_MODELS.generate, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 0 })
    assert.equal(completion.object, 'chat.completion')
    assert.ok((completion.usage?.completion_tokens ?? 0) > 0)
    const stream = await openai.chat.completions.create({ model: DEFAULT_MODELS.generate, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let usage: OpenAI.CompletionUsage | undefined
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? ''
      if (chunk.usage != null) usage = chunk.usage
    }
    assert.equal(text, completion.choices[0].message.content, 'greedy: the stream says what the whole reply said')
    assert.equal(usage?.completion_tokens, completion.usage?.completion_tokens)
    const embedding = await openai.embeddings.create({ model: DEFAULT_MODELS.embed, input: ['a letter from Kellynch', 'a letter'] })
    assert.equal(embedding.data.length, 2)
    assert.ok(Math.abs(Math.hypot(...embedding.data[0].embedding) - 1) < 1e-4)
  })

  it('answers logprobs to the OpenAI client, streamed and not, of the tokens it wrote', async () => {
    const request = { model: DEFAULT_MODELS.generate, messages: [{ role: 'user' as const, content: 'Hello' }], max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 }
    const whole = await openai.chat.completions.create(request)
    const content = whole.choices[0].logprobs?.content ?? []
    assert.equal(content.length, whole.usage?.completion_tokens)
    assert.equal(Buffer.from(content.flatMap(c => c.bytes ?? [])).toString(), whole.choices[0].message.content, 'the tokens\' bytes make the text')
    for (const c of content) {
      assert.ok(c.logprob <= 0)
      assert.equal(c.top_logprobs.length, 3)
      // Greedy: the token written is the likeliest.
      assert.equal(c.top_logprobs[0].token, c.token)
      assert.ok(c.top_logprobs[1].logprob <= c.top_logprobs[0].logprob)
    }
    assert.match(whole.system_fingerprint ?? '', /^fp_[0-9a-f]{10}$/)
    const streamed: typeof content = []
    for await (const chunk of await openai.chat.completions.create({ ...request, stream: true })) streamed.push(...chunk.choices[0]?.logprobs?.content ?? [])
    assert.deepEqual(streamed, content)
  })

  it('answers n choices at once, sampled with different seeds', async () => {
    const res = await openai.chat.completions.create({ model: DEFAULT_MODELS.generate, messages: [{ role: 'user', content: 'Tell me of Bath.' }], max_tokens: 12, temperature: 1.5, top_p: 1, seed: 3, n: 2 })
    assert.deepEqual(res.choices.map(c => c.index), [0, 1])
    assert.notEqual(res.choices[0].message.content, res.choices[1].message.content, 'two seeds, two answers')
    const again = await openai.chat.completions.create({ model: DEFAULT_MODELS.generate, messages: [{ role: 'user', content: 'Tell me of Bath.' }], max_tokens: 12, temperature: 1.5, top_p: 1, seed: 3, n: 2, stream: true, stream_options: { include_usage: true } })
    const texts = ['', '']
    let usage: OpenAI.CompletionUsage | undefined
    for await (const chunk of again) {
      for (const choice of chunk.choices) texts[choice.index] += choice.delta.content ?? ''
      if (chunk.usage != null) usage = chunk.usage
    }
    assert.deepEqual(texts, res.choices.map(c => c.message.content), 'the same seeds write the same choices, streamed')
    assert.equal(usage?.completion_tokens, res.usage?.completion_tokens)
  })

  it('completes a prompt of token ids as its text, echoing it', async () => {
    const dir = assetDir(DEFAULT_MODELS.generate)
    const tokenizer = new Tokenizer(JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')))
    const prompt = 'It was a fine morning, and Elizabeth'
    const ids = tokenizer.encode(prompt, { add_special_tokens: false }).ids
    const byText = await openai.completions.create({ model: DEFAULT_MODELS.generate, prompt, max_tokens: 10, temperature: 0 })
    const byIds = await openai.completions.create({ model: DEFAULT_MODELS.generate, prompt: ids, max_tokens: 10, temperature: 0, echo: true })
    assert.equal(byIds.choices[0].text, prompt + byText.choices[0].text)
    assert.equal(byIds.usage?.prompt_tokens, ids.length)
    const two = await openai.completions.create({ model: DEFAULT_MODELS.generate, prompt: [ids, ids.slice(0, 3)], max_tokens: 4, temperature: 0 })
    assert.equal(two.choices.length, 2)
    await assert.rejects(openai.completions.create({ model: DEFAULT_MODELS.generate, prompt: [1, 10_000_000], max_tokens: 2 }), (err: any) => err.status === 400 && /vocabulary/.test(err.message))
    await assert.rejects(openai.completions.create({ model: DEFAULT_MODELS.generate, prompt: 'def f(', suffix: 'return x' }), (err: any) => err.status === 400 && /fill-in-the-middle/.test(err.message))
  })

  it("takes Ollama's documented full options example, the older options included", async () => {
    const options = {
      num_keep: 5,
      seed: 42,
      num_predict: 100,
      top_k: 20,
      top_p: 0.9,
      min_p: 0.0,
      typical_p: 0.7,
      repeat_last_n: 33,
      temperature: 0.8,
      repeat_penalty: 1.2,
      presence_penalty: 1.5,
      frequency_penalty: 1.0,
      penalize_newline: true,
      stop: ['\n', 'user:'],
      numa: false,
      num_ctx: 1024,
      num_batch: 2,
      num_gpu: 1,
      main_gpu: 0,
      use_mmap: true,
      num_thread: 8
    }
    const first = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'Why is the sky blue?', stream: false, options })
    const second = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'Why is the sky blue?', stream: false, options })
    assert.ok(first.done && first.eval_count <= 100)
    assert.equal(second.response, first.response, 'seeded')
    assert.ok(!(first.response ?? '').includes('\n'))
    const older = { ...options, tfs_z: 0.5, mirostat: 1, mirostat_tau: 0.8, mirostat_eta: 0.6, low_vram: false, vocab_only: false, use_mlock: false }
    const mirostat = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'Why is the sky blue?', stream: false, options: older })
    assert.ok(mirostat.done)
    assert.equal((await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'Why is the sky blue?', stream: false, options: older })).response, mirostat.response, 'mirostat is seeded too')
  })

  it("answers generate's context and continues from it as from the same tokens", async () => {
    const first = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'It was a fine morning', raw: true, stream: false, options: { temperature: 0, num_predict: 6 } })
    assert.equal(first.context.length, first.prompt_eval_count + first.eval_count)
    const next = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: ' and', raw: true, context: first.context, stream: false, options: { temperature: 0, num_predict: 6 } })
    const and = (await openai.completions.create({ model: DEFAULT_MODELS.generate, prompt: ' and', max_tokens: 1, echo: true })).usage?.prompt_tokens ?? 0
    assert.equal(next.prompt_eval_count, first.context.length + and)
    const same = await openai.completions.create({ model: DEFAULT_MODELS.generate, prompt: next.context.slice(0, next.prompt_eval_count), max_tokens: 6, temperature: 0 })
    assert.equal(next.response, same.choices[0].text)
    const streamed = []
    for await (const part of await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'It was a fine morning', raw: true, stream: true, options: { temperature: 0, num_predict: 6 } })) streamed.push(part)
    assert.deepEqual(streamed.at(-1)?.context, first.context)
  })

  it('embeds with /api/embed and /api/embeddings alike', async () => {
    const { embeddings } = await ollama.embed({ model: DEFAULT_MODELS.embed, input: ['the rain at Uppercross', 'the rain at Uppercross', 'a ball at Netherfield'] })
    assert.deepEqual(embeddings[0], embeddings[1])
    assert.notDeepEqual(embeddings[0], embeddings[2])
    const legacy = await ollama.embeddings({ model: DEFAULT_MODELS.embed, prompt: 'the rain at Uppercross' })
    legacy.embedding.forEach((v, i) => assert.ok(Math.abs(v - embeddings[0][i]) < 1e-5))
    const loaded = await ollama.ps()
    assert.ok(loaded.models.some(m => m.name === `${DEFAULT_MODELS.embed}:latest`))
  })

  it('embeds token ids and shorter embeddings through OpenAI, LangChain and the AI SDK, and refuses what does not fit', async () => {
    const text = 'the rain at Uppercross'
    const tokenizer = new Tokenizer(JSON.parse(await readFile(join(assetDir(DEFAULT_MODELS.embed), 'tokenizer.json'), 'utf8')), JSON.parse(await readFile(join(assetDir(DEFAULT_MODELS.embed), 'tokenizer_config.json'), 'utf8')))
    const ids = tokenizer.encode(text, { add_special_tokens: false }).ids
    const [byText, byIds] = (await openai.embeddings.create({ model: DEFAULT_MODELS.embed, input: [text, text] })).data.map(d => d.embedding)
    const tokens = await openai.embeddings.create({ model: DEFAULT_MODELS.embed, input: ids })
    assert.equal(tokens.data.length, 1, 'one array of ids is one input')
    tokens.data[0].embedding.forEach((v, i) => assert.ok(Math.abs(v - byText[i]) < 1e-5))
    assert.deepEqual(byIds, byText)

    const short = (await openai.embeddings.create({ model: DEFAULT_MODELS.embed, input: text, dimensions: 16 })).data[0].embedding
    assert.equal(short.length, 16)
    assert.ok(Math.abs(Math.hypot(...short) - 1) < 1e-4)
    const { embeddings: [viaOllama] } = await ollama.embed({ model: DEFAULT_MODELS.embed, input: text, dimensions: 16 })
    viaOllama.forEach((v, i) => assert.ok(Math.abs(v - short[i]) < 1e-5))

    const langchain = [
      new OpenAIEmbeddings({ model: DEFAULT_MODELS.embed, dimensions: 16, apiKey: 'unused', configuration: { baseURL: `${daemon.url}/v1` } }),
      new OllamaEmbeddings({ model: DEFAULT_MODELS.embed, dimensions: 16, baseUrl: daemon.url })
    ]
    for (const embeddings of langchain) {
      const [vector] = await embeddings.embedDocuments([text])
      vector.forEach((v, i) => assert.ok(Math.abs(v - short[i]) < 1e-5), embeddings.constructor.name)
    }
    const provider = createOpenAICompatible({ name: 'node', baseURL: `${daemon.url}/v1` })
    const many = await embedMany({ model: provider.embeddingModel(DEFAULT_MODELS.embed), values: [text, 'a ball at Netherfield'], providerOptions: { node: { dimensions: 16 } } })
    assert.equal(many.embeddings.length, 2)
    many.embeddings[0].forEach((v, i) => assert.ok(Math.abs(v - short[i]) < 1e-5))

    await assert.rejects(openai.embeddings.create({ model: DEFAULT_MODELS.embed, input: text, dimensions: 129 }), (err: any) => err.status === 400 && err.param === 'dimensions' && /128 dimensions/.test(err.message))
    await assert.rejects(openai.embeddings.create({ model: DEFAULT_MODELS.embed, input: [1, 999_999] }), (err: any) => err.status === 400 && err.param === 'input')
    await assert.rejects(ollama.embed({ model: DEFAULT_MODELS.embed, input: 'word '.repeat(600), truncate: false }), (err: any) => err.status_code === 400 && /^input exceeds maximum context length/.test(err.error))
    assert.equal((await ollama.embed({ model: DEFAULT_MODELS.embed, input: 'word '.repeat(600) })).embeddings.length, 1)
    assert.deepEqual(await ollama.embeddings({ model: DEFAULT_MODELS.embed, prompt: '' }), { embedding: [] })
  })

  it("shows a model's architecture, its loaded details and pull progress as Ollama does, and answers /v1 errors as OpenAI does", async () => {
    const shown = await ollama.show({ model: DEFAULT_MODELS.generate })
    const info = shown.model_info as unknown as Record<string, unknown>
    assert.equal(info['general.architecture'], 'gpt2')
    assert.deepEqual([info['gpt2.embedding_length'], info['gpt2.block_count'], info['gpt2.attention.head_count'], info['gpt2.attention.head_count_kv'], info['gpt2.vocab_size'], info['gpt2.context_length']], [192, 4, 4, 4, 2048, 512])
    assert.ok(Number(info['general.parameter_count']) > 1_000_000)
    assert.equal(shown.details.quantization_level, 'F32')

    await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'Hi', stream: false, options: { num_predict: 1 } })
    const loaded = (await ollama.ps()).models.find(m => m.name === GPT)
    assert.ok(loaded != null)
    assert.equal(loaded.details.quantization_level, 'F32')
    assert.match(loaded.details.parameter_size, /^\d+(\.\d+)?M$/)
    assert.equal((loaded as unknown as { context_length: number }).context_length, 512)

    const lines = []
    for await (const line of await ollama.pull({ model: DEFAULT_MODELS.generate, stream: true })) lines.push(line)
    assert.equal(lines[0].status, 'pulling manifest')
    assert.deepEqual(lines.slice(-3).map(l => l.status), ['verifying sha256 digest', 'writing manifest', 'success'])
    const layers = lines.filter(l => l.status.startsWith('pulling ') && l.status !== 'pulling manifest')
    assert.ok(layers.length >= 3 && layers.every(l => l.digest != null && l.total != null && l.completed === l.total), JSON.stringify(layers))

    const nope = await fetch(`${daemon.url}/v1/nope`, { method: 'POST' })
    assert.equal(nope.status, 404)
    assert.deepEqual(await nope.json(), { error: { message: 'Invalid URL (POST /v1/nope)', type: 'invalid_request_error', param: null, code: null } })
    await assert.rejects(openai.chat.completions.create({ model: DEFAULT_MODELS.generate } as any), (err: any) => err.status === 400 && err.param === 'messages' && err.code === 'missing_required_parameter' && /Missing required parameter: 'messages'\./.test(err.message))
  })

  it("runs document 001's tasks as jobs whose response CID holds exactly the response, told on the WebSocket", async () => {
    const ws = new WebSocket(`${daemon.url.replace('http', 'ws')}/api/ws`)
    const events: any[] = []
    ws.addEventListener('message', (e) => { events.push(JSON.parse(String(e.data))) })
    await new Promise((resolve, reject) => { ws.addEventListener('open', resolve); ws.addEventListener('error', reject) })
    const submit = await fetch(`${daemon.url}/api/tasks/submit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'What is a barouche?', maxTokens: 10, temperature: 0 }) })
    const { taskId, promptCID } = await submit.json()
    assert.equal(submit.status, 200)
    const task = await waitFor('the task to complete', async () => {
      const t = await (await fetch(`${daemon.url}/api/tasks/${taskId as string}`)).json()
      return t.status === 'completed' ? t : undefined
    })
    assert.equal(task.worker, daemon.node.peerId)
    assert.equal(task.promptCID, promptCID)
    const cat = await fetch(`${daemon.url}/api/v0/cat?arg=${task.responseCID as string}`, { method: 'POST' })
    assert.equal(await cat.text(), task.response)
    const history = await (await fetch(`${daemon.url}/api/v1/consensus/history?limit=50`)).json()
    assert.ok(JSON.stringify(history).includes('job.complete'), 'the completion is a consensus decision')
    const told = await waitFor('both task events', async () => {
      const mine = events.filter(e => e.data?.taskId === taskId)
      return mine.length >= 2 ? mine : undefined
    })
    ws.close()
    assert.deepEqual(told.map(e => e.type), ['task_submitted', 'task_completed'])
    assert.equal(told[0].data.prompt, 'What is a barouche?')
    assert.equal(told[1].data.response, task.response)
    // The job's prompt and response are pinned where they were stored, so GC keeps them.
    const gc = await fetch(`${daemon.url}/api/v0/repo/gc`, { method: 'POST' })
    assert.equal(gc.status, 200, await gc.text())
    for (const cid of [task.promptCID, task.responseCID]) {
      assert.equal((await fetch(`${daemon.url}/api/v0/cat?arg=${cid as string}&offline=true`, { method: 'POST' })).status, 200, `${cid as string} survives repo/gc`)
    }
  })

  it('sends the done line with the last token, and then stores the response and completes the job', async () => {
    const cluster = daemon.node.cluster
    const submit = cluster.submitResponse.bind(cluster)
    let release = (): void => {}
    const held = new Promise<void>(resolve => { release = resolve })
    const submitted: Array<{ jobId: number, cid: string }> = []
    // The job's completion, a Raft commit, is held back until the client has its answer.
    cluster.submitResponse = async (jobId, cid, options) => {
      submitted.push({ jobId, cid })
      await held
      return submit(jobId, cid, options)
    }
    let answer: any
    try {
      const res = await fetch(`${daemon.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: GPT, prompt: 'What is a barouche?', stream: false, options: GREEDY }), signal: AbortSignal.timeout(20_000) })
      answer = await res.json()
      assert.equal(res.status, 200)
      assert.equal(answer.done, true)
      await waitFor('the response to be submitted', async () => submitted.length > 0 ? true : undefined)
      assert.equal((await cluster.job(submitted[0].jobId)).status, 'running', 'answered before the job completed')
    } finally {
      release()
      cluster.submitResponse = submit
    }
    const job = await waitFor('the job to complete', async () => {
      const j = await cluster.job(submitted[0].jobId)
      return j.status === 'completed' ? j : undefined
    })
    assert.equal(job.responseCID, submitted[0].cid)
    assert.equal(await (await fetch(`${daemon.url}/api/v0/cat?arg=${job.responseCID as string}`, { method: 'POST' })).text(), answer.response)
  })

  it('creates, copies and deletes models, and a Modelfile sets parameters and the system prompt', async () => {
    await ollama.create({ model: 'austen', from: DEFAULT_MODELS.generate, system: 'You write as Jane Austen.', parameters: { temperature: 0, num_predict: 5 } })
    const shown = await ollama.show({ model: 'austen' })
    assert.equal(shown.system, 'You write as Jane Austen.')
    assert.match(shown.parameters, /temperature\s+0/)
    const res = await ollama.generate({ model: 'austen', prompt: 'Begin.', stream: false })
    assert.equal(res.eval_count <= 5, true, 'the Modelfile caps the tokens')
    await ollama.copy({ source: 'austen', destination: 'austen-copy' })
    await ollama.delete({ model: 'austen' })
    const names = (await ollama.list()).models.map(m => m.name)
    assert.ok(names.includes('austen-copy:latest') && !names.includes('austen:latest'))
  })

  it('answers bad requests in each family\'s error shape, and goes on serving', async () => {
    await assert.rejects(ollama.generate({ model: 'no-such-model', prompt: 'x', stream: false }), (err: any) => err.status_code === 404 && /not found/.test(err.error))
    await assert.rejects(openai.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }), (err: any) => err.status === 404)
    const malformed = await fetch(`${daemon.url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": ' })
    assert.equal(malformed.status, 400)
    assert.ok(typeof (await malformed.json()).error === 'string')
    await assert.rejects(ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'x', stream: false, options: { temperature: -1 } }), (err: any) => err.status_code === 400)
    const task = await fetch(`${daemon.url}/api/tasks/submit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', modelId: 'no-such-model' }) })
    assert.equal(task.status, 404)
    assert.equal((await task.json()).error.code, 'E003')
    const ok = await ollama.generate({ model: DEFAULT_MODELS.generate, prompt: 'Still here?', stream: false, options: { num_predict: 2 } })
    assert.ok(ok.done)
  })
})
