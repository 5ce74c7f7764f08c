import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Ollama } from 'ollama'
import { FAIL_MIDWAY, fakeLogprobs, startServer, WAIT_FOR_ABORT } from '../helpers/fake-inference.ts'
import type { TestServer } from '../helpers/fake-inference.ts'
import type { GenerateParams } from '@node-daemon/inference'

const DONE_FIELDS = ['done', 'done_reason', 'total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration']

describe('Ollama API', () => {
  let server: TestServer
  let ollama: Ollama
  /** What the API logged as warnings: [fields, message]. */
  const warnings: unknown[][] = []
  const logger: any = { level: 'warn', silent () {}, trace () {}, debug () {}, info () {}, error () {}, fatal () {}, warn (...args: unknown[]) { warnings.push(args) }, child: () => logger }

  const post = async (path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<Response> =>
    await fetch(`${server.url}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) })

  const lastGenerate = (): GenerateParams => server.inference.calls.filter(c => c.method === 'generate').at(-1)?.args[0] as GenerateParams

  before(async () => {
    server = await startServer({}, { logger })
    ollama = new Ollama({ host: server.url })
  })
  after(async () => { await server.app.close() })

  it('generates without streaming: the whole response and the final stats', async () => {
    const res = await ollama.generate({ model: 'tiny-gpt', prompt: 'hello world', stream: false })
    assert.equal(res.model, 'tiny-gpt')
    assert.equal(res.response, 'Echo: hello world')
    assert.equal(res.done, true)
    assert.equal(res.done_reason, 'stop')
    assert.equal(res.total_duration, 5_000_000)
    assert.equal(res.load_duration, 1_000_000)
    assert.equal(res.prompt_eval_count, 2)
    assert.equal(res.prompt_eval_duration, 2_000_000)
    assert.equal(res.eval_count, 3)
    assert.equal(res.eval_duration, 2_000_000)
    assert.ok(!Number.isNaN(Date.parse(String(res.created_at))))
  })

  it('streams NDJSON by default: one line per chunk, then the stats', async () => {
    const parts = []
    for await (const part of await ollama.generate({ model: 'tiny-gpt', prompt: 'hello world', stream: true })) parts.push(part)
    assert.deepEqual(parts.map(p => p.response), ['Echo:', ' hello', ' world', ''])
    assert.deepEqual(parts.map(p => p.done), [false, false, false, true])
    const last = parts.at(-1) as unknown as Record<string, unknown>
    for (const field of DONE_FIELDS) assert.ok(field in last, field)

    const res = await post('/api/generate', { model: 'tiny-gpt', prompt: 'hi' })
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson')
    const lines = (await res.text()).split('\n')
    assert.equal(lines.pop(), '')
    assert.deepEqual(lines.map(line => JSON.parse(line).response), ['Echo:', ' hi', ''])
  })

  it('passes system, template and raw through, and the sampling options; runner and unknown options are ignored with one warning', async () => {
    const sampling = { temperature: 0.5, top_k: 20, top_p: 0.9, min_p: 0.05, typical_p: 0.7, tfs_z: 0.95, seed: 7, num_predict: 2, stop: ['\n'], repeat_penalty: 1.1, repeat_last_n: 32, presence_penalty: 1.5, frequency_penalty: 1, mirostat: 2, mirostat_tau: 4, mirostat_eta: 0.2, num_ctx: 4096, num_keep: 5 }
    const ignored = { num_thread: 2, numa: false, num_batch: 2, num_gpu: 1, main_gpu: 0, use_mmap: true, use_mlock: false, low_vram: false, vocab_only: false, penalize_newline: true, mystery: 'x' }
    warnings.length = 0
    const res = await ollama.generate({ model: 'tiny-gpt', prompt: 'one two three', system: 'be brief', raw: false, stream: false, options: { ...sampling, ...ignored } as any })
    assert.equal(res.response, 'Echo: one')
    assert.equal(res.done_reason, 'length')
    assert.deepEqual(lastGenerate().input, { prompt: 'one two three', system: 'be brief', raw: false })
    assert.deepEqual(lastGenerate().options, sampling)
    assert.equal(warnings.length, 1)
    assert.deepEqual((warnings[0][0] as { ignored: string[] }).ignored, Object.keys(ignored))
    await ollama.chat({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { min_p: 0.1 } })
    assert.deepEqual(lastGenerate().options, { min_p: 0.1 })
    assert.equal(warnings.length, 1, 'no warning without ignored options')
  })

  it("answers logprobs on every streamed line and on the whole answer, as Ollama 0.12's", async () => {
    const json = (text: string, i: number, top: number): object => {
      const l = fakeLogprobs(text, i, top)
      return { token: l.token, logprob: l.logprob, bytes: l.bytes, top_logprobs: l.top.map(t => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })) }
    }
    const whole = await post('/api/generate', { model: 'tiny-gpt', prompt: 'a b', stream: false, logprobs: true, top_logprobs: 2 })
    assert.deepEqual((await whole.json()).logprobs, ['Echo:', ' a', ' b'].map((t, i) => json(t, i, 2)))
    assert.equal(lastGenerate().logprobs, 2)
    const lines = (await (await post('/api/chat', { model: 'tiny-gpt', messages: [{ role: 'user', content: 'a' }], logprobs: true })).text()).trim().split('\n').map(line => JSON.parse(line))
    assert.deepEqual(lines.map(l => l.logprobs), [[json('Echo:', 0, 0)], [json(' a', 1, 0)], undefined])
    const none = await (await post('/api/generate', { model: 'tiny-gpt', prompt: 'a', stream: false })).json()
    assert.equal('logprobs' in none, false)
    assert.equal(lastGenerate().logprobs, undefined)
  })

  it('answers context with the final generate line, and continues from a context given back', async () => {
    const first = await ollama.generate({ model: 'tiny-gpt', prompt: 'a b', stream: false })
    assert.deepEqual(first.context, [1, 2, 100, 101, 102])
    const next = await ollama.generate({ model: 'tiny-gpt', prompt: 'c', stream: false, context: first.context })
    assert.deepEqual(lastGenerate().input, { prompt: 'c', context: first.context })
    assert.deepEqual(next.context, [...first.context, 1, 100, 101])
    const parts = []
    for await (const part of await ollama.generate({ model: 'tiny-gpt', prompt: 'a', stream: true })) parts.push(part)
    assert.deepEqual(parts.map(p => p.context), [undefined, undefined, [1, 100, 101]])
    const chat = await ollama.chat({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'a' }], stream: false })
    assert.equal('context' in chat, false)
    await ollama.generate({ model: 'tiny-gpt', prompt: 'def f(', suffix: 'return x', stream: false })
    assert.deepEqual(lastGenerate().input, { prompt: 'def f(', suffix: 'return x' })
  })

  it("parses keep_alive's forms into keepAliveMs", async () => {
    const cases: Array<[number | string | undefined, number | undefined]> = [['5m', 300_000], ['1h30m', 5_400_000], [30, 30_000], ['0', 0], [0, 0], [-1, -1], ['-5m', -1], [undefined, undefined]]
    for (const [keepAlive, ms] of cases) {
      await ollama.generate({ model: 'tiny-gpt', prompt: 'x', stream: false, keep_alive: keepAlive })
      assert.equal(lastGenerate().keepAliveMs, ms, String(keepAlive))
    }
    const bad = await post('/api/generate', { model: 'tiny-gpt', prompt: 'x', keep_alive: 'soon' })
    assert.equal(bad.status, 400)
    assert.match((await bad.json()).error, /keep_alive/)
  })

  it('chats, streaming and not', async () => {
    const messages = [{ role: 'system', content: 'be kind' }, { role: 'user', content: 'how are you' }]
    const res = await ollama.chat({ model: 'tiny-gpt', messages, stream: false })
    assert.deepEqual(res.message, { role: 'assistant', content: 'Echo: how are you' })
    assert.equal(res.done_reason, 'stop')
    assert.equal(res.eval_count, 4)
    assert.deepEqual(lastGenerate().input, { messages })

    const parts = []
    for await (const part of await ollama.chat({ model: 'tiny-gpt', messages, stream: true })) parts.push(part)
    assert.equal(parts.map(p => p.message.content).join(''), 'Echo: how are you')
    assert.ok(parts.every(p => p.message.role === 'assistant'))
    assert.equal(parts.at(-1)?.done, true)
  })

  it('answers an empty prompt as a load, and keep_alive 0 as an unload', async () => {
    const load = await ollama.generate({ model: 'tiny-gpt', prompt: '', stream: false })
    assert.equal(load.done, true)
    assert.equal(load.done_reason, 'load')
    assert.equal(load.response, '')
    const unload = await ollama.chat({ model: 'tiny-gpt', messages: [], keep_alive: 0, stream: false })
    assert.equal(unload.done_reason, 'unload')
    assert.deepEqual(server.inference.calls.filter(c => c.method === 'load').map(c => c.args), [['tiny-gpt', undefined], ['tiny-gpt', 0]])
    await assert.rejects(ollama.generate({ model: 'nope', prompt: '', stream: false }), { status_code: 404 })
  })

  it("answers an unknown model with 404 and Ollama's message", async () => {
    await assert.rejects(ollama.generate({ model: 'nope', prompt: 'hi', stream: false }), { status_code: 404, error: 'model "nope" not found, try pulling it first' })
    await assert.rejects(ollama.chat({ model: 'nope', messages: [{ role: 'user', content: 'hi' }], stream: true }), { status_code: 404 })
    const res = await post('/api/show', { model: 'nope' })
    assert.equal(res.status, 404)
    const body = await res.json()
    assert.equal(body.error, 'model "nope" not found, try pulling it first')
    // Document 002's error fields beside Ollama's.
    assert.equal(body.code, 'NOT_FOUND')
    assert.equal(body.request_id, res.headers.get('x-request-id'))
    assert.ok(!Number.isNaN(Date.parse(body.timestamp)))
  })

  it('answers malformed JSON and bad parameters with 400 {"error"}', async () => {
    const malformed = await post('/api/generate', '{"model": ')
    assert.equal(malformed.status, 400)
    assert.equal(typeof (await malformed.json()).error, 'string')

    const cases: Array<[object, RegExp]> = [
      [{ prompt: 'hi' }, /model/],
      [{ model: 'tiny-gpt', prompt: 'hi', format: 'yaml' }, /format/],
      [{ model: 'tiny-gpt', prompt: 'hi', images: ['aGk='] }, /images/],
      [{ model: 'tiny-gpt', prompt: 'hi', think: true }, /thinking/],
      [{ model: 'tiny-gpt', prompt: 'hi', context: [1, 5000] }, /token id/],
      [{ model: 'tiny-gpt', prompt: 'hi', logprobs: true, top_logprobs: 21 }, /top_logprobs/],
      [{ model: 'tiny-gpt', prompt: 'hi', options: { top_k: 1.5 } }, /top_k/],
      [{ model: 'tiny-gpt', prompt: 'hi', options: { temperature: 'hot' } }, /temperature/],
      [{ model: 'tiny-gpt', prompt: 'hi', options: { temperature: -1 } }, /temperature/]
    ]
    for (const [body, message] of cases) {
      const res = await post('/api/generate', body)
      assert.equal(res.status, 400, JSON.stringify(body))
      const json = await res.json()
      assert.deepEqual(Object.keys(json), ['error', 'code', 'timestamp', 'request_id'])
      assert.match(json.error, message)
    }
    const tools = await post('/api/chat', { model: 'tiny-gpt', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function' }] })
    assert.equal(tools.status, 400)
    assert.match((await tools.json()).error, /tools/)
  })

  it('reads a body sent as curl -d sends it, whatever its Content-Type', async () => {
    const res = await post('/api/generate', JSON.stringify({ model: 'tiny-gpt', prompt: 'hi', stream: false }), { 'content-type': 'application/x-www-form-urlencoded' })
    assert.equal(res.status, 200)
    assert.equal((await res.json()).response, 'Echo: hi')
    const plain = await post('/api/generate', JSON.stringify({ model: 'tiny-gpt', prompt: 'hi', stream: false }), { 'content-type': 'text/plain;charset=UTF-8' })
    assert.equal((await plain.json()).response, 'Echo: hi', 'as fetch() sends a string body')
  })

  it('ends a stream that fails midway with an {"error"} line', async () => {
    const res = await post('/api/generate', { model: 'tiny-gpt', prompt: FAIL_MIDWAY })
    assert.equal(res.status, 200)
    const lines = (await res.text()).trim().split('\n').map(line => JSON.parse(line))
    assert.equal(lines[0].response, 'Echo:')
    assert.deepEqual(lines.at(-1), { error: 'internal error: the worker went away' })
    await assert.rejects(async () => {
      for await (const _ of await ollama.generate({ model: 'tiny-gpt', prompt: FAIL_MIDWAY, stream: true }));
    }, { message: 'internal error: the worker went away' })
  })

  it('aborts the generation when the client goes away', async () => {
    const aborted = server.inference.nextAbort()
    const stream = await ollama.generate({ model: 'tiny-gpt', prompt: WAIT_FOR_ABORT, stream: true })
    await assert.rejects(async () => {
      for await (const part of stream) {
        assert.equal(part.response, 'Echo:')
        stream.abort()
      }
    }, { name: 'AbortError' })
    assert.match(String(await aborted), /client disconnected/)
  })

  it('embeds one input or many, and the legacy single prompt', async () => {
    const one = await ollama.embed({ model: 'tiny-embed', input: 'the sky is blue', keep_alive: '1m', truncate: false })
    assert.deepEqual(one.embeddings, [[15, 4, 0.5, -0.25]])
    assert.equal(one.model, 'tiny-embed')
    assert.equal(one.total_duration, 3_000_000)
    assert.equal(one.load_duration, 1_000_000)
    assert.equal(one.prompt_eval_count, 4)
    assert.deepEqual(server.inference.calls.at(-1)?.args[0], { model: 'tiny-embed', input: ['the sky is blue'], truncate: false, keepAliveMs: 60_000 })
    const many = await ollama.embed({ model: 'tiny-embed', input: ['a', 'b c'] })
    assert.equal(many.embeddings.length, 2)
    const legacy = await ollama.embeddings({ model: 'tiny-embed', prompt: 'a b' })
    assert.deepEqual(legacy.embedding, [3, 2, 0.5, -0.25])
    const generator = await post('/api/embed', { model: 'tiny-gpt', input: 'x' })
    assert.equal(generator.status, 400)
  })

  it('embeds with dimensions and truncate, document 002\'s prompt, and loads the model for an empty input', async () => {
    const dims = await ollama.embed({ model: 'tiny-embed', input: 'x y', dimensions: 2, truncate: false })
    assert.deepEqual(dims.embeddings, [[3, 2]])
    assert.deepEqual(server.inference.calls.at(-1)?.args[0], { model: 'tiny-embed', input: ['x y'], truncate: false, dimensions: 2 })
    const tooMany = await post('/api/embed', { model: 'tiny-embed', input: 'x', dimensions: 5 })
    assert.equal(tooMany.status, 400)
    assert.match((await tooMany.json()).error, /^dimensions: tiny-embed:latest makes embeddings of 4 dimensions/)

    const long = 'word '.repeat(200)
    const refused = await post('/api/embed', { model: 'tiny-embed', input: ['a', long], truncate: false })
    assert.equal(refused.status, 400)
    assert.equal((await refused.json()).error, 'input exceeds maximum context length')
    assert.equal((await ollama.embed({ model: 'tiny-embed', input: long })).embeddings.length, 1, 'cut by default')

    const prompt = await (await post('/api/embed', { model: 'tiny-embed', prompt: 'The sky is blue' })).json()
    assert.deepEqual(prompt.embeddings, [[15, 4, 0.5, -0.25]])
    for (const body of [{ model: 'tiny-embed' }, { model: 'tiny-embed', input: '' }, { model: 'tiny-embed', input: [] }]) {
      const empty = await (await post('/api/embed', body)).json()
      assert.deepEqual(empty.embeddings, [], JSON.stringify(body))
      assert.deepEqual(server.inference.calls.at(-1)?.args[0], { model: 'tiny-embed', input: [] }, 'the model is loaded all the same')
    }
    assert.deepEqual(await (await post('/api/embeddings', { model: 'tiny-embed', prompt: '' })).json(), { embedding: [] })
    assert.deepEqual(await (await post('/api/embeddings', { model: 'tiny-embed' })).json(), { embedding: [] })
    assert.equal((await post('/api/embeddings', { model: 'nope', prompt: '' })).status, 404)
  })

  it('lists, shows and reports loaded models', async () => {
    const { models } = await ollama.list()
    const gpt = models.find(m => m.name === 'tiny-gpt:latest')
    assert.ok(gpt != null)
    assert.equal(gpt.model, 'tiny-gpt:latest')
    assert.equal(gpt.digest, 'bafytinygpt')
    assert.equal(gpt.size, 1234)
    assert.equal(new Date(gpt.modified_at).toISOString(), '2025-01-01T00:00:00.000Z')
    assert.deepEqual(gpt.details, { parent_model: '', format: 'onnx', family: 'gpt2', families: ['gpt2'], parameter_size: '2.50M', quantization_level: 'F32' })

    const show = await ollama.show({ model: 'tiny-gpt' })
    assert.equal(show.modelfile, 'FROM bafytinygpt')
    assert.equal(show.template, '{{ messages }}')
    assert.match(show.parameters, /^temperature\s+0\.8\nstop\s+"<\/s>"$/)
    assert.deepEqual(show.capabilities, ['completion', 'tools'])
    assert.deepEqual(show.model_info, {
      'general.architecture': 'gpt2',
      'general.parameter_count': 2_500_000,
      'gpt2.context_length': 128,
      'gpt2.embedding_length': 192,
      'gpt2.block_count': 4,
      'gpt2.attention.head_count': 4,
      'gpt2.attention.head_count_kv': 4,
      'gpt2.vocab_size': 2048
    })
    assert.equal(show.license, 'MIT License')
    assert.equal(show.details.quantization_level, 'F32')
    const legacy = await (await post('/api/show', { name: 'tiny-embed' })).json()
    assert.deepEqual(legacy.capabilities, ['embedding'])
    assert.ok(!('license' in legacy), 'no license is no field, as Ollama answers')
    assert.deepEqual(legacy.model_info, { 'general.architecture': 'bert', 'general.parameter_count': 2_500_000, 'bert.context_length': 128, 'bert.embedding_length': 4, 'bert.block_count': 2, 'bert.vocab_size': 2048 })

    const ps = await ollama.ps()
    assert.equal(ps.models[0].name, 'tiny-gpt:latest')
    assert.deepEqual(Object.keys(ps.models[0]).sort(), ['context_length', 'details', 'digest', 'expires_at', 'model', 'name', 'size', 'size_vram'])
    assert.deepEqual(ps.models[0].details, { parent_model: '', format: 'onnx', family: 'gpt2', families: ['gpt2'], parameter_size: '2.50M', quantization_level: 'F32' })
    assert.equal((ps.models[0] as unknown as { context_length: number }).context_length, 128)
    assert.equal(ps.models[0].size_vram, 0)
    assert.equal(new Date(ps.models[0].expires_at).toISOString(), '2025-01-01T00:00:00.000Z')

    const version = await ollama.version()
    assert.equal(version.version, '0.1.0-test')
  })

  it('pulls and pushes with progress lines that end in success, or one success object', async () => {
    const lines = []
    for await (const line of await ollama.pull({ model: 'tiny-gpt', stream: true })) lines.push(line)
    assert.deepEqual(lines.map(l => l.status), ['pulling manifest', 'pulling bafytinygpt', 'pulling bafytinygpt', 'success'])
    assert.deepEqual([lines[1].total, lines[1].completed], [1234, 617])
    assert.deepEqual(await ollama.pull({ model: 'tiny-gpt', stream: false }), { status: 'success' })
    await assert.rejects(ollama.pull({ model: 'nope', stream: true }), { status_code: 404 })

    const pushed = []
    for await (const line of await ollama.push({ model: 'tiny-gpt', stream: true })) pushed.push(line.status)
    assert.deepEqual(pushed, ['replicating', 'success'])
  })

  it('copies and deletes, with empty 200 answers', async () => {
    await ollama.copy({ source: 'tiny-gpt', destination: 'copy-of-gpt:latest' })
    const copied = await post('/api/copy', { source: 'tiny-gpt', destination: 'copy-of-gpt:latest' })
    assert.equal(copied.status, 409)
    const res = await fetch(`${server.url}/api/delete`, { method: 'DELETE', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'copy-of-gpt' }) })
    assert.equal(res.status, 200)
    assert.equal(await res.text(), '')
    await assert.rejects(ollama.delete({ model: 'copy-of-gpt' }), { status_code: 404 })
  })

  it('creates from a Modelfile, or renders the newer fields into one', async () => {
    assert.deepEqual(await ollama.create({ model: 'kind-gpt', from: 'tiny-gpt', system: 'You are kind.\nAlways.', parameters: { temperature: 0.2, stop: ['</s>', 'User:'] }, stream: false }), { status: 'success' })
    assert.deepEqual(server.inference.calls.at(-1)?.args, ['kind-gpt', 'FROM tiny-gpt\nSYSTEM """You are kind.\nAlways."""\nPARAMETER temperature 0.2\nPARAMETER stop "</s>"\nPARAMETER stop "User:"'])

    const res = await post('/api/create', { name: 'plain-gpt', modelfile: 'FROM tiny-gpt\nPARAMETER seed 1' })
    const lines = (await res.text()).trim().split('\n').map(line => JSON.parse(line))
    assert.deepEqual(lines.map(l => l.status), ['reading model metadata', 'success'])
    assert.equal(server.inference.calls.at(-1)?.args[1], 'FROM tiny-gpt\nPARAMETER seed 1')

    for (const body of [{ model: 'x' }, { model: 'x', from: 'tiny-gpt', quantize: 'q4_K_M' }, { model: 'x', files: { 'model.gguf': 'sha256:00' } }]) {
      assert.equal((await post('/api/create', body)).status, 400, JSON.stringify(body))
    }
  })
})
