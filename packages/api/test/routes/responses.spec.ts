import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { CALL_A_TOOL, startServer } from '../helpers/fake-inference.ts'
import type { TestServer } from '../helpers/fake-inference.ts'
import type { GenerateParams } from '@node-daemon/inference'

const WEATHER = { type: 'function' as const, function: { name: 'weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }

describe('tool calls, structured output and the Responses API', () => {
  let server: TestServer
  let openai: OpenAI

  const lastGenerate = (): GenerateParams => server.inference.calls.filter(c => c.method === 'generate').at(-1)?.args[0] as GenerateParams

  before(async () => {
    server = await startServer()
    openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  })
  after(async () => { await server.app.close() })

  it('passes OpenAI tools, tool_choice, response_format and the history of calls down, and answers calls as OpenAI does', async () => {
    const res = await openai.chat.completions.create({
      model: 'tiny-gpt',
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Bath"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'rain' },
        { role: 'user', content: 'and tomorrow?' }
      ],
      tools: [WEATHER],
      tool_choice: 'required',
      parallel_tool_calls: false
    })
    assert.equal(res.choices[0].finish_reason, 'tool_calls')
    assert.equal(res.choices[0].message.content, null)
    assert.deepEqual(res.choices[0].message.tool_calls, [{ id: 'call_fake', type: 'function', function: { name: 'weather', arguments: '{"city":"Bath"}' } }])
    const params = lastGenerate()
    assert.deepEqual(params.input.tools, [{ name: 'weather', description: 'The weather in a city', parameters: WEATHER.function.parameters }])
    assert.equal(params.toolChoice, 'required')
    assert.equal(params.parallelToolCalls, false)
    assert.deepEqual(params.input.messages?.[1], { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', name: 'weather', arguments: { city: 'Bath' } }] })
    assert.deepEqual(params.input.messages?.[2], { role: 'tool', content: 'rain', tool_call_id: 'call_1' })

    await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' }, strict: true } } })
    assert.deepEqual(lastGenerate().format, { type: 'json-schema', schema: { type: 'object' } })
    await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_object' }, tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'weather' } } })
    assert.deepEqual(lastGenerate().format, { type: 'json-object' })
    assert.deepEqual(lastGenerate().toolChoice, { name: 'weather' })

    await assert.rejects(openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'assistant', content: '', tool_calls: [{ id: 'c', type: 'function', function: { name: 'weather', arguments: '{oops' } }] }] }), { status: 400, message: /arguments: not valid JSON/ })
  })

  it('streams calls as tool_calls deltas with finish_reason tool_calls', async () => {
    const stream = await openai.chat.completions.create({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'weather?' }], tools: [WEATHER], tool_choice: 'required', stream: true })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    const calls = chunks.flatMap(c => c.choices[0]?.delta.tool_calls ?? [])
    assert.deepEqual(calls, [{ index: 0, id: 'call_fake', type: 'function', function: { name: 'weather', arguments: '{"city":"Bath"}' } }])
    assert.equal(chunks.at(-1)?.choices[0].finish_reason, 'tool_calls')
  })

  it('passes Ollama format and tools down, and answers tool_calls as Ollama does', async () => {
    const ollama = new Ollama({ host: server.url })
    await ollama.generate({ model: 'tiny-gpt', prompt: 'hi', format: 'json', stream: false })
    assert.deepEqual(lastGenerate().format, { type: 'json-object' })
    await ollama.chat({ model: 'tiny-gpt', messages: [{ role: 'user', content: 'hi' }], format: { type: 'object', properties: { a: { type: 'integer' } } }, stream: false })
    assert.deepEqual(lastGenerate().format, { type: 'json-schema', schema: { type: 'object', properties: { a: { type: 'integer' } } } })
    const history = [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'weather', arguments: { city: 'Bath' } } }] },
      { role: 'tool', content: 'rain', tool_name: 'weather' }
    ]
    const res = await ollama.chat({ model: 'tiny-gpt', messages: history, tools: [WEATHER], stream: false })
    assert.equal(res.message.tool_calls, undefined, 'auto: this model chose to answer in text')
    assert.deepEqual(lastGenerate().input.messages, [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: '', tool_calls: [{ name: 'weather', arguments: { city: 'Bath' } }] },
      { role: 'tool', content: 'rain', name: 'weather' }
    ])
    // A model that chooses to call: the calls come in a line of their own before the last, streamed or not.
    const asked = [{ role: 'user', content: CALL_A_TOOL }]
    const whole = await ollama.chat({ model: 'tiny-gpt', messages: asked, tools: [WEATHER], stream: false })
    assert.deepEqual(whole.message.tool_calls, [{ function: { name: 'weather', arguments: { city: 'Bath' } } }])
    const lines = []
    for await (const part of await ollama.chat({ model: 'tiny-gpt', messages: asked, tools: [WEATHER], stream: true })) lines.push(part)
    assert.deepEqual(lines.map(l => [l.done, l.message.tool_calls?.map(c => c.function.name)]), [[false, ['weather']], [true, undefined]])
  })

  it('answers the Responses API: text, stored, chained by previous_response_id, read and deleted', async () => {
    const first = await openai.responses.create({ model: 'tiny-gpt', instructions: 'be brief', input: 'hello there' })
    assert.match(first.id, /^resp_/)
    assert.equal(first.status, 'completed')
    assert.equal(first.output_text, 'Echo: hello there')
    assert.deepEqual(first.usage?.input_tokens_details, { cached_tokens: 0 })
    assert.deepEqual(lastGenerate().input.messages, [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there' }])

    const second = await openai.responses.create({ model: 'tiny-gpt', previous_response_id: first.id, input: [{ role: 'user', content: [{ type: 'input_text', text: 'again' }] }] })
    assert.equal(second.previous_response_id, first.id)
    // Instructions apply to their own response only.
    assert.deepEqual(lastGenerate().input.messages, [{ role: 'user', content: 'hello there' }, { role: 'assistant', content: 'Echo: hello there' }, { role: 'user', content: 'again' }])

    const read = await openai.responses.retrieve(first.id)
    assert.equal(read.id, first.id)
    assert.equal(read.output_text, 'Echo: hello there')
    await openai.responses.delete(first.id)
    await assert.rejects(openai.responses.retrieve(first.id), { status: 404 })
    await assert.rejects(openai.responses.create({ model: 'tiny-gpt', previous_response_id: first.id, input: 'x' }), { status: 404 })

    const unstored = await openai.responses.create({ model: 'tiny-gpt', input: 'not kept', store: false })
    await assert.rejects(openai.responses.retrieve(unstored.id), { status: 404 })
  })

  it('streams the Responses API events in order, and turns calls into function_call items and back', async () => {
    const stream = await openai.responses.create({ model: 'tiny-gpt', input: 'hi there', stream: true })
    const types: string[] = []
    let text = ''
    let completed: OpenAI.Responses.Response | undefined
    for await (const event of stream) {
      types.push(event.type)
      if (event.type === 'response.output_text.delta') text += event.delta
      if (event.type === 'response.completed') completed = event.response
    }
    assert.deepEqual(types.filter((t, i) => t !== types[i - 1]), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added', 'response.output_text.delta', 'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed'])
    assert.equal(text, 'Echo: hi there')
    assert.deepEqual(completed?.output.map(item => item.type === 'message' ? item.content.map(part => part.type === 'output_text' ? part.text : '') : []), [['Echo: hi there']])

    const called = await openai.responses.create({ model: 'tiny-gpt', input: 'weather?', tools: [{ type: 'function', name: 'weather', parameters: WEATHER.function.parameters, strict: true }], tool_choice: 'required' })
    const call = called.output.find(item => item.type === 'function_call')
    assert.equal(call?.type === 'function_call' ? call.name : undefined, 'weather')
    assert.equal(call?.type === 'function_call' ? call.arguments : undefined, '{"city":"Bath"}')
    await openai.responses.create({
      model: 'tiny-gpt',
      previous_response_id: called.id,
      input: [{ type: 'function_call_output', call_id: call?.type === 'function_call' ? call.call_id : '', output: 'rain' }]
    })
    assert.deepEqual(lastGenerate().input.messages?.slice(-2), [{ role: 'assistant', content: '', tool_calls: [{ id: 'call_fake', name: 'weather', arguments: { city: 'Bath' } }] }, { role: 'tool', content: 'rain', tool_call_id: 'call_fake' }])
    await assert.rejects(openai.responses.create({ model: 'tiny-gpt', input: 'x', tools: [{ type: 'web_search' } as any] }), { status: 400, message: /web_search/ })
  })
})
