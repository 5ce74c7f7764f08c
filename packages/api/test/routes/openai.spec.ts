import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import OpenAI from 'openai'
import { FAIL_MIDWAY, fakeLogprobs, startServer, tokensText, WAIT_FOR_ABORT } from '../helpers/fake-inference.ts'
import type { TestServer } from '../helpers/fake-inference.ts'
import type { GenerateParams } from '@node-daemon/inference'

/** OpenAI's usage with the details the node has nothing to put in yet. */
const usageOf = (prompt: number, completion: number): object => ({
  prompt_tokens: prompt,
  completion_tokens: completion,
  total_tokens: prompt + completion,
  prompt_tokens_details: { cached_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 }
})

describe('OpenAI API', () => {
  let server: TestServer
  let openai: OpenAI

  const post = async (path: string, body: unknown): Promise<Response> =>
    await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })

  const lastGenerate = (): GenerateParams => server.inference.calls.filter(c => c.method === 'generate').at(-1)?.args[0] as GenerateParams

  /** The JSON events of an SSE body, and whether it ended with [DONE]. */
  const events = (text: string): { data: any[], done: boolean } => {
    const frames = text.split('\n\n').filter(frame => frame !== '')
    assert.ok(frames.every(frame => frame.startsWith('data: ')), text)
    const done = frames.at(-1) === 'data: [DONE]'
    return { data: frames.slice(0, done ? -1 : undefined).map(frame => JSON.parse(frame.slice(6))), done }
  }

  before(async () => {
    server = await startServer()
    openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  })
  after(async () => { await server.app.close() })

  it('lists models and gets one, with 404 model_not_found for an unknown one', async () => {
    const page = await openai.models.list()
    assert.deepEqual(page.data.map(m => m.id), ['tiny-gpt:latest', 'tiny-embed:latest'])
    assert.deepEqual(page.data[0], { id: 'tiny-gpt:latest', object: 'model', created: 1735689600, owned_by: 'library' })
    assert.equal((await openai.models.retrieve('tiny-embed')).id, 'tiny-embed:latest')
    await assert.rejects(openai.models.retrieve('library/nope'), { status: 404, code: 'model_not_found', message: /model `library\/nope` does not exist/ })
  })

  it('completes a chat with usage, mapping the sampling fields to options', async () => {
    const res = await openai.chat.completions.create({
      model: 'tiny-gpt',
      messages: [{ role: 'developer', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'how are' }, { type: 'text', text: ' you' }] }],
      max_tokens: 10,
      temperature: 0.3,
      top_p: 0.9,
      seed: 42,
      stop: 'END',
      frequency_penalty: 0.5,
      presence_penalty: -0.25,
      logit_bias: { 50256: -100, 7: 2.5 },
      n: 1
    })
    assert.equal(res.object, 'chat.completion')
    assert.match(res.id, /^chatcmpl-/)
    assert.equal(res.model, 'tiny-gpt')
    assert.deepEqual(res.choices, [{ index: 0, message: { role: 'assistant', content: 'Echo: how are you', refusal: null }, logprobs: null, finish_reason: 'stop' }])
    assert.deepEqual(res.usage, usageOf(3, 4))
    assert.match(res.system_fingerprint ?? '', /^fp_[0-9a-f]{10}$/)
    assert.deepEqual(lastGenerate().input, { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'how are you' }] })
    assert.deepEqual(lastGenerate().options, { num_predict: 10, temperature: 0.3, top_p: 0.9, seed: 42, stop: ['END'], frequency_penalty: 0.5, presence_penalty: -0.25, logit_bias: { 50256: -100, 7: 2.5 } })
    assert.equal(lastGenerate().logprobs, undefined)

    const cut = await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'a b c' }], max_completion_tokens: 2, stop: ['x', 'y'] })
    assert.equal(cut.choices[0].finish_reason, 'length')
    assert.deepEqual(lastGenerate().options, { num_predict: 2, stop: ['x', 'y'] })

    const onePart = await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: [{ type: 'text', text: 'one part' }] }] })
    assert.equal(onePart.choices[0].message.content, 'Echo: one part')
  })

  it('streams chat chunks: the role first, the deltas, the finish reason, the usage, then [DONE]', async () => {
    const stream = await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'hi there' }], stream: true, stream_options: { include_usage: true } })
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
    for await (const chunk of stream) chunks.push(chunk)
    assert.ok(chunks.every(c => c.object === 'chat.completion.chunk' && c.id === chunks[0].id))
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' })
    assert.equal(chunks.slice(1, -2).map(c => c.choices[0].delta.content).join(''), 'Echo: hi there')
    assert.deepEqual(chunks.at(-2)?.choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }])
    assert.deepEqual(chunks.at(-1)?.choices, [])
    assert.deepEqual(chunks.at(-1)?.usage, usageOf(2, 3))
    assert.ok(chunks.every(c => c.system_fingerprint === chunks[0].system_fingerprint && /^fp_/.test(c.system_fingerprint ?? '')))
    assert.ok(chunks.slice(0, -1).every(c => c.usage === null))

    const res = await post('/v1/chat/completions', { model: 'tiny-gpt', messages: [{ role: 'user', content: 'hi' }], stream: true })
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    const { data, done } = events(await res.text())
    assert.ok(done)
    assert.ok(data.every(chunk => !('usage' in chunk)))
    assert.equal(data.at(-1).choices[0].finish_reason, 'stop')
  })

  it('completes text raw, streaming and not', async () => {
    const res = await openai.completions.create({ model: 'tiny-gpt', prompt: 'once upon', max_tokens: 5 })
    assert.equal(res.object, 'text_completion')
    assert.match(res.id, /^cmpl-/)
    assert.deepEqual(res.choices, [{ index: 0, text: 'Echo: once upon', logprobs: null, finish_reason: 'stop' }])
    assert.deepEqual(res.usage, usageOf(2, 3))
    assert.deepEqual(lastGenerate().input, { prompt: 'once upon', raw: true })

    const chunks = []
    for await (const chunk of await openai.completions.create({ model: 'tiny-gpt', prompt: ['a b'], stream: true, stream_options: { include_usage: true } })) chunks.push(chunk)
    assert.equal(chunks.slice(0, -2).map(c => c.choices[0].text).join(''), 'Echo: a b')
    assert.equal(chunks.at(-2)?.choices[0].finish_reason, 'stop')
    assert.equal(chunks.at(-1)?.usage?.total_tokens, 5)
  })

  it('embeds, as floats or as base64 float32', async () => {
    const floats = await openai.embeddings.create({ model: 'tiny-embed', input: ['the sky', 'is blue'], encoding_format: 'float' })
    assert.deepEqual(floats.data, [{ object: 'embedding', embedding: [7, 2, 0.5, -0.25], index: 0 }, { object: 'embedding', embedding: [7, 2, 0.5, -0.25], index: 1 }])
    assert.deepEqual(floats.usage, { prompt_tokens: 4, total_tokens: 4 })
    assert.equal(floats.model, 'tiny-embed')
    // The SDK asks for base64 when not told, and decodes it.
    const decoded = await openai.embeddings.create({ model: 'tiny-embed', input: 'the sky' })
    assert.deepEqual(decoded.data[0].embedding, [7, 2, 0.5, -0.25])
    const raw = await (await post('/v1/embeddings', { model: 'tiny-embed', input: 'ab', encoding_format: 'base64' })).json()
    assert.equal(raw.data[0].embedding, Buffer.from(new Float32Array([2, 1, 0.5, -0.25]).buffer).toString('base64'))
  })

  it('embeds token ids, one array as one input, and keeps the dimensions asked for', async () => {
    const one = await openai.embeddings.create({ model: 'tiny-embed', input: [5, 6, 7], encoding_format: 'float' })
    assert.deepEqual(one.data.map(d => d.embedding), [[3, 5, 0.5, -0.25]])
    assert.deepEqual(server.inference.calls.at(-1)?.args[0], { model: 'tiny-embed', input: [[5, 6, 7]], truncate: false })
    const many = await openai.embeddings.create({ model: 'tiny-embed', input: [[5], [1, 2]], encoding_format: 'float' })
    assert.deepEqual(many.data.map(d => d.embedding), [[1, 5, 0.5, -0.25], [2, 1, 0.5, -0.25]])
    const texts = await openai.embeddings.create({ model: 'tiny-embed', input: ['1', '2'], encoding_format: 'float' })
    assert.deepEqual(texts.data.map(d => d.embedding), [[1, 1, 0.5, -0.25], [1, 1, 0.5, -0.25]], 'digits in strings stay texts')

    const short = await openai.embeddings.create({ model: 'tiny-embed', input: 'a b', dimensions: 2 })
    assert.deepEqual(short.data[0].embedding, [3, 2])
    await assert.rejects(openai.embeddings.create({ model: 'tiny-embed', input: 'a', dimensions: 5 }), (err: any) => {
      assert.equal(err.status, 400)
      assert.equal(err.param, 'dimensions')
      assert.match(err.message, /tiny-embed:latest makes embeddings of 4 dimensions/)
      return true
    })
    await assert.rejects(openai.embeddings.create({ model: 'tiny-embed', input: 'a', dimensions: 0 }), { status: 400, param: 'dimensions' })
    await assert.rejects(openai.embeddings.create({ model: 'tiny-embed', input: 'word '.repeat(200) }), { status: 400, code: 'context_length_exceeded' })
    const refused: Array<[unknown, string, string]> = [
      [[[]], 'input.0', "Invalid 'input.0': empty array. Expected an array with minimum length 1, but got an empty array instead."],
      [[-1], 'input.0', "Invalid 'input.0': integer below minimum value. Expected a value >= 0, but got -1 instead."],
      [[1.5], 'input.0', "Invalid type for 'input.0': expected one of a string, an integer or an array, but got a decimal instead."],
      [7, 'input', "Invalid type for 'input': expected one of a string or an array, but got an integer instead."]
    ]
    for (const [input, param, message] of refused) {
      const res = await post('/v1/embeddings', { model: 'tiny-embed', input })
      assert.equal(res.status, 400, JSON.stringify(input))
      assert.deepEqual((await res.json()).error, { message, type: 'invalid_request_error', param, code: message.startsWith('Invalid type') ? 'invalid_type' : message.includes('empty array') ? 'empty_array' : 'integer_below_min_value' })
    }
  })

  it("answers bad requests with 400 in OpenAI's shape, naming the field", async () => {
    const chat = { model: 'tiny-gpt', messages: [{ role: 'user', content: 'hi' }] }
    const cases: Array<[object, string | null, string | null]> = [
      [{ ...chat, n: 17 }, 'n', 'integer_above_max_value'],
      [{ ...chat, n: 0 }, 'n', 'integer_below_min_value'],
      [{ ...chat, frequency_penalty: 2.5 }, 'frequency_penalty', 'decimal_above_max_value'],
      [{ ...chat, logit_bias: { 5: -101 } }, 'logit_bias.5', 'integer_below_min_value'],
      [{ ...chat, logprobs: true, top_logprobs: 21 }, 'top_logprobs', 'integer_above_max_value'],
      [{ ...chat, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages.0.content.0', 'unsupported_parameter'],
      [{ ...chat, temperature: 'hot' }, 'temperature', 'invalid_type'],
      [{ ...chat, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', 'array_above_max_length'],
      [{ messages: chat.messages }, 'model', 'missing_required_parameter'],
      [{ ...chat, temperature: -1 }, null, null]
    ]
    for (const [body, param, code] of cases) {
      const res = await post('/v1/chat/completions', body)
      assert.equal(res.status, 400, JSON.stringify(body))
      const { error } = await res.json()
      assert.equal(error.type, 'invalid_request_error')
      assert.equal(error.param, param, JSON.stringify(body))
      assert.equal(error.code, code)
      assert.equal(typeof error.message, 'string')
    }
    await assert.rejects(openai.chat.completions.create({ ...chat, model: 'tiny-gpt', n: 30 } as any), { status: 400, param: 'n' })
    const completion = { model: 'tiny-gpt', prompt: 'x' }
    for (const [body, param] of [
      [{ ...completion, best_of: 2 }, 'best_of'],
      [{ ...completion, prompt: ['a', 'b', 'c', 'd', 'e'], n: 4 }, 'n'],
      [{ ...completion, prompt: [1, 2], suffix: 'y' }, 'suffix'],
      [{ ...completion, prompt: [1, 'a'] }, null],
      [{ ...completion, prompt: [] }, null],
      [{ ...completion, prompt: [[1], []] }, null],
      [{ ...completion, prompt: { text: 'x' } }, null],
      [{ model: 'tiny-gpt' }, 'prompt'],
      [{ ...completion, prompt: [1, 5000] }, null],
      [{ ...completion, logprobs: 21 }, 'logprobs']
    ] as Array<[object, string | null]>) {
      const res = await post('/v1/completions', body)
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.equal((await res.json()).error.param, param, JSON.stringify(body))
    }

    // In OpenAI's words, not the validator's, and with no coercion: "10" is a string.
    const worded: Array<[string, object, string, string, string]> = [
      ['/v1/chat/completions', { model: 'tiny-gpt' }, 'messages', 'missing_required_parameter', "Missing required parameter: 'messages'."],
      ['/v1/chat/completions', { ...chat, max_tokens: '10' }, 'max_tokens', 'invalid_type', "Invalid type for 'max_tokens': expected an integer, but got a string instead."],
      ['/v1/chat/completions', { ...chat, max_tokens: 0 }, 'max_tokens', 'integer_below_min_value', "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead."],
      ['/v1/chat/completions', { ...chat, messages: [] }, 'messages', 'empty_array', "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."],
      ['/v1/chat/completions', { ...chat, stop: 5 }, 'stop', 'invalid_type', "Invalid type for 'stop': expected one of an array or a string, but got an integer instead."],
      ['/v1/embeddings', { model: 'tiny-embed', input: 'x', encoding_format: 'xyz' }, 'encoding_format', 'invalid_value', "Invalid value: 'xyz'. Supported values are: 'float' and 'base64'."],
      ['/v1/completions', { model: 'tiny-gpt' }, 'prompt', 'missing_required_parameter', "Missing required parameter: 'prompt'."]
    ]
    for (const [path, body, param, code, message] of worded) {
      const res = await post(path, body)
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.deepEqual((await res.json()).error, { message, type: 'invalid_request_error', param, code })
    }
    await assert.rejects(openai.chat.completions.create({ model: 'tiny-gpt', max_tokens: 'ten' } as any), (err: any) => {
      assert.equal(err.status, 400)
      assert.equal(err.type, 'invalid_request_error')
      assert.equal(err.code, 'missing_required_parameter')
      assert.equal(err.param, 'messages')
      assert.match(err.message, /^400 Missing required parameter: 'messages'\.$/)
      return true
    })

    const malformed = await post('/v1/completions', '{"model"')
    assert.equal(malformed.status, 400)
    assert.equal((await malformed.json()).error.type, 'invalid_request_error')
  })

  it("answers an unknown path and a wrong method under /v1 in OpenAI's shape", async () => {
    const nope = await post('/v1/nope?x=1', {})
    assert.equal(nope.status, 404)
    assert.deepEqual(await nope.json(), { error: { message: 'Invalid URL (POST /v1/nope)', type: 'invalid_request_error', param: null, code: null } })
    const method = await fetch(`${server.url}/v1/chat/completions`)
    assert.equal(method.status, 405)
    assert.equal(method.headers.get('allow'), 'POST')
    const { error } = await method.json()
    assert.deepEqual(Object.keys(error), ['message', 'type', 'param', 'code'])
    assert.equal(error.type, 'invalid_request_error')
    await assert.rejects(openai.post('/nope', { body: {} }), { status: 404, type: 'invalid_request_error', message: /Invalid URL/ })
    const elsewhere = await post('/api/v0/nope', {})
    assert.equal((await elsewhere.json()).error_type, 'RouteNotFoundError', 'other paths keep document 000\'s envelope')
  })

  it('answers logprobs on chat, with top alternatives, whole and streamed', async () => {
    const res = await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'a b' }], logprobs: true, top_logprobs: 2 })
    assert.equal(lastGenerate().logprobs, 2)
    const expected = ['Echo:', ' a', ' b'].map((text, i) => {
      const l = fakeLogprobs(text, i, 2)
      return { token: l.token, logprob: l.logprob, bytes: l.bytes, top_logprobs: l.top.map(t => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })) }
    })
    assert.deepEqual(res.choices[0].logprobs, { content: expected, refusal: null })
    const plain = await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'a' }], logprobs: true })
    assert.equal(lastGenerate().logprobs, 0)
    assert.deepEqual(plain.choices[0].logprobs?.content?.map(c => c.top_logprobs), [[], []])
    await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'a' }], logprobs: false, top_logprobs: 3 })
    assert.equal(lastGenerate().logprobs, undefined)

    const chunks = []
    for await (const chunk of await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'a b' }], logprobs: true, top_logprobs: 2, stream: true })) chunks.push(chunk)
    const deltas = chunks.filter(c => c.choices[0]?.delta.content != null && c.choices[0].delta.content !== '')
    assert.deepEqual(deltas.map(c => c.choices[0].logprobs?.content), expected.map(e => [e]))
    assert.equal(chunks[0].choices[0].logprobs, null)
  })

  it('answers n choices of one chat, each with its own seed, streamed with their index', async () => {
    const before = server.inference.calls.length
    const res = await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'a b' }], n: 3, seed: 10 })
    const runs = server.inference.calls.slice(before).filter(c => c.method === 'generate').map(c => c.args[0] as GenerateParams)
    assert.deepEqual(runs.map(r => r.options?.seed), [10, 11, 12])
    assert.deepEqual(res.choices.map(c => c.index), [0, 1, 2])
    assert.ok(res.choices.every(c => c.message.content === 'Echo: a b'))
    // The prompt counts once, the completions of every choice.
    assert.deepEqual(res.usage, usageOf(2, 9))
    const unseeded = server.inference.calls.length
    await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'a' }], n: 2 })
    assert.ok(server.inference.calls.slice(unseeded).every(c => (c.args[0] as GenerateParams).options?.seed == null), 'the service seeds each run itself')

    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
    for await (const chunk of await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'a b' }], n: 2, stream: true, stream_options: { include_usage: true } })) chunks.push(chunk)
    for (const index of [0, 1]) {
      const mine = chunks.flatMap(c => c.choices.filter(choice => choice.index === index))
      assert.deepEqual(mine[0].delta, { role: 'assistant', content: '' })
      assert.equal(mine.map(c => c.delta.content ?? '').join(''), 'Echo: a b')
      assert.equal(mine.at(-1)?.finish_reason, 'stop')
    }
    assert.deepEqual(chunks.at(-1)?.usage, usageOf(2, 6))
  })

  it('completes prompts given as token ids, as several strings, with echo, logprobs and suffix', async () => {
    const ids = await openai.completions.create({ model: 'tiny-gpt', prompt: [10, 20, 30] })
    assert.deepEqual(lastGenerate().input, { tokens: [10, 20, 30] })
    assert.equal(ids.choices[0].text, `Echo: ${tokensText([10, 20, 30])}`)
    const batch = await openai.completions.create({ model: 'tiny-gpt', prompt: [[1, 2], [3]], n: 2, seed: 1 })
    assert.deepEqual(batch.choices.map(c => [c.index, c.text]), [[0, `Echo: ${tokensText([1, 2])}`], [1, `Echo: ${tokensText([1, 2])}`], [2, `Echo: ${tokensText([3])}`], [3, `Echo: ${tokensText([3])}`]])
    assert.equal(batch.usage?.prompt_tokens, 2 * tokensText([1]).split(' ').length + 1)
    const strings = await openai.completions.create({ model: 'tiny-gpt', prompt: ['a', 'b c'] })
    assert.deepEqual(strings.choices.map(c => c.text), ['Echo: a', 'Echo: b c'])

    const echoed = await openai.completions.create({ model: 'tiny-gpt', prompt: 'once upon', echo: true, logprobs: 1, best_of: 1 })
    assert.equal(lastGenerate().echo, true)
    assert.equal(echoed.choices[0].text, 'once uponEcho: once upon')
    assert.deepEqual(echoed.choices[0].logprobs, {
      tokens: ['Echo:', ' once', ' upon'],
      token_logprobs: [-0.1, -0.2, -0.3],
      top_logprobs: [{ 'Echo:': -0.1 }, { ' once': -0.2 }, { ' upon': -0.3 }],
      text_offset: [9, 14, 19]
    })
    const echoedIds = await openai.completions.create({ model: 'tiny-gpt', prompt: [7, 8], echo: true })
    assert.equal(echoedIds.choices[0].text, `${tokensText([7, 8])}Echo: ${tokensText([7, 8])}`)

    const chunks = []
    for await (const chunk of await openai.completions.create({ model: 'tiny-gpt', prompt: 'a b', echo: true, logprobs: 0, stream: true })) chunks.push(chunk)
    assert.equal(chunks.map(c => c.choices[0].text).join(''), 'a bEcho: a b')
    assert.deepEqual(chunks.flatMap(c => c.choices[0].logprobs?.text_offset ?? []), [3, 8, 10])

    await openai.completions.create({ model: 'tiny-gpt', prompt: 'def f(', suffix: '\n  return x' })
    assert.deepEqual(lastGenerate().input, { prompt: 'def f(', suffix: '\n  return x' })
  })

  it('takes null as unset, as the SDKs send it', async () => {
    const res = await post('/v1/chat/completions', { model: 'tiny-gpt', messages: [{ role: 'user', content: 'hi' }], max_tokens: null, temperature: null, stop: null, n: null, stream: null })
    assert.equal(res.status, 200)
    assert.deepEqual(lastGenerate().options, {})
  })

  it('answers an unknown model with 404 model_not_found, streaming or not', async () => {
    for (const stream of [false, true]) {
      await assert.rejects(openai.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }], stream }), (err: any) => {
        assert.equal(err.status, 404)
        assert.equal(err.code, 'model_not_found')
        assert.equal(err.type, 'invalid_request_error')
        return true
      })
    }
  })

  it('ends a stream that fails midway with an error event, without [DONE]', async () => {
    const res = await post('/v1/chat/completions', { model: 'tiny-gpt', messages: [{ role: 'user', content: FAIL_MIDWAY }], stream: true })
    assert.equal(res.status, 200)
    const { data, done } = events(await res.text())
    assert.ok(!done)
    assert.deepEqual(data.at(-1), { error: { message: 'internal error: the worker went away', type: 'server_error', param: null, code: null } })
    await assert.rejects(async () => {
      for await (const _ of await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: FAIL_MIDWAY }], stream: true }));
    }, { message: /the worker went away/ })
  })

  it('aborts the generation when the client goes away', async () => {
    const aborted = server.inference.nextAbort()
    const stream = await openai.completions.create({ model: 'tiny-gpt', prompt: WAIT_FOR_ABORT, stream: true })
    for await (const chunk of stream) {
      assert.equal(chunk.choices[0].text, 'Echo:')
      stream.controller.abort()
    }
    assert.match(String(await aborted), /client disconnected/)
  })
})
