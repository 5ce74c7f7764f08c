/**
 * What apps built on ollama-js, openai-node, LangChain and the AI SDK need
 * of a node, against one daemon on its embedded defaults: structured output
 * that always validates, tool calls and agent loops, the Responses API, and
 * long chats cut as Ollama cuts them, with their prefixes cached.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createOpenAI } from '@ai-sdk/openai'
import { createOpenAICompatible } from '@ai-sdk/openai-compatible'
import { tool as langchainTool } from '@langchain/core/tools'
import { ChatOllama } from '@langchain/ollama'
import { ChatOpenAI } from '@langchain/openai'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { generateObject, generateText, Output, stepCountIs, tool } from 'ai'
import type { Ollama } from 'ollama'
import { createOllama } from 'ollama-ai-provider-v2'
import OpenAI from 'openai'
import { zodResponseFormat } from 'openai/helpers/zod'
import { z } from 'zod'
import { startWithClients } from '../helpers/clients.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const GPT = `${DEFAULT_MODELS.generate}:latest`

const Person = z.object({ name: z.string().max(24), age: z.number().int().min(0).max(120), friends: z.array(z.string().max(12)).max(2) })
const PERSON_SCHEMA = { type: 'object', properties: { name: { type: 'string', maxLength: 24 }, age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'], additionalProperties: false }

describe('inference for apps, with the real clients', () => {
  let daemon: TestDaemon
  let ollama: Ollama
  let openai: OpenAI

  before(async () => { ({ daemon, ollama, openai } = await startWithClients()) })
  after(async () => { await daemon?.cleanup() })

  it('constrains output to a schema in every form the clients send: Ollama format, response_format, parse with zod', async () => {
    const asked = await ollama.chat({ model: GPT, messages: [{ role: 'user', content: 'Describe Emma.' }], format: PERSON_SCHEMA, stream: false, options: { temperature: 1, seed: 1 } })
    const person = JSON.parse(asked.message.content)
    assert.equal(typeof person.name, 'string')
    assert.ok(Number.isInteger(person.age) && person.age >= 0 && person.age <= 120)
    const json = await ollama.generate({ model: GPT, prompt: 'A list:', format: 'json', stream: false, options: { num_predict: 40 } })
    assert.equal(typeof JSON.parse(String(json.response)), 'object')
    const parsed = await openai.chat.completions.parse({ model: GPT, messages: [{ role: 'user', content: 'Describe Emma.' }], response_format: zodResponseFormat(Person, 'person') })
    assert.ok(Person.safeParse(parsed.choices[0].message.parsed).success)
    const object = await openai.chat.completions.create({ model: GPT, messages: [{ role: 'user', content: 'JSON please' }], response_format: { type: 'json_object' }, max_tokens: 30 })
    assert.equal(typeof JSON.parse(object.choices[0].message.content ?? ''), 'object')
    await assert.rejects(openai.chat.completions.create({ model: GPT, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', patternProperties: { '^a': {} } } } } }), { status: 400, message: /patternProperties/ })
  })

  it('gives LangChain structured output by function calling, JSON mode and JSON schema, on ChatOllama and ChatOpenAI', async () => {
    const models = [
      new ChatOllama({ baseUrl: daemon.url, model: GPT, temperature: 0.7 }),
      new ChatOpenAI({ model: GPT, apiKey: 'unused', configuration: { baseURL: `${daemon.url}/v1` }, maxRetries: 0, temperature: 0.7 })
    ]
    for (const model of models) {
      // Ollama's API has no tool_choice: through it a call is the model's own choice, which an untrained model never makes.
      const methods = model instanceof ChatOllama ? ['jsonMode', 'jsonSchema'] as const : ['functionCalling', 'jsonMode', 'jsonSchema'] as const
      for (const method of methods) {
        // JSON mode promises an object, not the schema: that is what it is held to.
        const schema = method === 'jsonMode' ? z.record(z.string(), z.unknown()) : Person
        const value = await model.withStructuredOutput(schema, { method }).invoke('Describe Emma Woodhouse as JSON.')
        assert.ok(schema.safeParse(value).success, `${model.constructor.name} ${method}: ${JSON.stringify(value)}`)
      }
    }
  })

  it("gives the AI SDK's generateObject and Output.object valid objects through its openai-compatible, openai and ollama providers", async () => {
    const compatible = createOpenAICompatible({ name: 'node', baseURL: `${daemon.url}/v1`, supportsStructuredOutputs: true })
    const openaiProvider = createOpenAI({ baseURL: `${daemon.url}/v1`, apiKey: 'unused' })
    const ollamaProvider = createOllama({ baseURL: `${daemon.url}/api` })
    for (const model of [compatible(GPT), openaiProvider(GPT), openaiProvider.chat(GPT), ollamaProvider(GPT)]) {
      const { object } = await generateObject({ model, schema: Person, prompt: 'Describe Anne Elliot.', maxRetries: 0 })
      assert.ok(Person.safeParse(object).success)
      const { output } = await generateText({ model, output: Output.object({ schema: Person }), prompt: 'Describe Anne Elliot.', maxRetries: 0 })
      assert.ok(Person.safeParse(output).success)
    }
  })

  it('runs agent loops of tool calls: LangChain bindTools, the AI SDK with steps, and openai-node runTools', async () => {
    const cities: string[] = []
    const weather = (city: string): string => {
      cities.push(city)
      return `It rains in ${city}.`
    }
    // LangChain: the model calls the tool, the loop answers it, the model goes on.
    const lcTool = langchainTool(async ({ city }: { city: string }) => weather(city), { name: 'weather', description: 'The weather in a city', schema: z.object({ city: z.string().max(16) }) })
    const chatOpenAI = new ChatOpenAI({ model: GPT, apiKey: 'unused', configuration: { baseURL: `${daemon.url}/v1` }, maxRetries: 0 })
    const messages: any[] = [{ role: 'user', content: 'What is the weather in Bath?' }]
    const first = await chatOpenAI.bindTools([lcTool], { tool_choice: 'any' }).invoke(messages)
    assert.equal(first.tool_calls?.[0]?.name, 'weather')
    messages.push(first)
    for (const call of first.tool_calls ?? []) messages.push(await lcTool.invoke(call))
    assert.equal(cities.length, first.tool_calls?.length)
    // The loop's history, calls and results, goes back through both APIs.
    for (const chat of [chatOpenAI, new ChatOllama({ baseUrl: daemon.url, model: GPT })]) {
      const next = await chat.bindTools([lcTool]).invoke(messages)
      assert.equal(typeof next.content, 'string')
    }
    // The AI SDK: a required call per step, executed between steps, for three steps.
    const compatible = createOpenAICompatible({ name: 'node', baseURL: `${daemon.url}/v1` })
    // Not through the Ollama provider: Ollama's API has no tool_choice to require a call with.
    for (const model of [compatible(GPT), createOpenAI({ baseURL: `${daemon.url}/v1`, apiKey: 'unused' })(GPT)]) {
      const before = cities.length
      const result = await generateText({
        model,
        tools: { weather: tool({ description: 'The weather in a city', inputSchema: z.object({ city: z.string().max(16) }), execute: async ({ city }) => weather(city) }) },
        toolChoice: 'required',
        stopWhen: stepCountIs(3),
        prompt: 'What is the weather in Bath?',
        maxRetries: 0
      })
      assert.equal(result.steps.length, 3)
      assert.ok(result.steps.every(step => step.toolCalls.length > 0 && step.toolCalls.every(call => call.toolName === 'weather')))
      assert.equal(cities.length - before, result.steps.reduce((n, step) => n + step.toolCalls.length, 0), 'every call was executed')
    }
    // openai-node's runner: calls, results, and a last answer once the loop is told to stop calling.
    const before = cities.length
    const runner = openai.chat.completions.runTools({
      model: GPT,
      messages: [{ role: 'user', content: 'What is the weather in Bath?' }],
      tool_choice: 'required',
      tools: [{ type: 'function', function: { name: 'weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 } }, required: ['city'] }, function: ({ city }: { city: string }) => weather(city), parse: JSON.parse } }]
    }, { maxChatCompletions: 2 })
    await runner.done().catch(() => {})
    assert.ok(cities.length - before >= 2, 'the runner called the tool and fed the result back')
  })

  it("answers openai-node's responses with text, a schema and tools, chained and stored", async () => {
    const first = await openai.responses.create({ model: GPT, input: 'Tell me of Bath.', max_output_tokens: 12 })
    assert.ok(first.output_text.length > 0)
    const second = await openai.responses.create({ model: GPT, previous_response_id: first.id, input: 'And of London?', text: { format: { type: 'json_schema', name: 'person', schema: PERSON_SCHEMA, strict: true } } })
    const value = JSON.parse(second.output_text)
    assert.equal(typeof value.name, 'string')
    assert.ok(second.usage != null && second.usage.input_tokens_details.cached_tokens > 0, 'the chained turn reused the first one\'s prefix')
    const called = await openai.responses.create({ model: GPT, input: 'Weather in Bath?', tools: [{ type: 'function', name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 } }, required: ['city'], additionalProperties: false }, strict: true }], tool_choice: 'required' })
    assert.ok(called.output.some(item => item.type === 'function_call' && item.name === 'weather'))
    assert.equal((await openai.responses.retrieve(called.id)).id, called.id)
    await openai.responses.delete(called.id)
    await assert.rejects(openai.responses.retrieve(called.id), { status: 404 })
  })

  it('answers a chat longer than the context by dropping its oldest turns, and refuses only a newest message that cannot fit', async () => {
    const history = Array.from({ length: 40 }, (_, i) => [
      { role: 'user', content: `Tell me about the ball at Netherfield, part ${i}.` },
      { role: 'assistant', content: `It was a fine evening, and Mr. Bingley danced twice with Jane, part ${i}.` }
    ]).flat()
    const messages = [{ role: 'system', content: 'You are a reader of Jane Austen.' }, ...history, { role: 'user', content: 'And then?' }]
    const answer = await ollama.chat({ model: GPT, messages, stream: false, options: { num_predict: 8, temperature: 0 } })
    assert.ok(answer.prompt_eval_count < 512, `${answer.prompt_eval_count} prompt tokens`)
    assert.ok(answer.done)
    const completion = await openai.chat.completions.create({ model: GPT, messages: messages as OpenAI.ChatCompletionMessageParam[], max_tokens: 8, temperature: 0 })
    assert.ok(completion.usage != null && completion.usage.prompt_tokens < 512)
    // A small num_ctx is honoured.
    const small = await ollama.chat({ model: GPT, messages, stream: false, options: { num_predict: 4, num_ctx: 128, temperature: 0 } })
    assert.ok(small.prompt_eval_count <= 124, `${small.prompt_eval_count} prompt tokens in a context of 128`)
    await assert.rejects(openai.chat.completions.create({ model: GPT, messages: [{ role: 'user', content: 'word '.repeat(800) }], max_tokens: 4 }), { status: 400, code: 'context_length_exceeded' })
  })

  it('takes the earlier turns of a chat from the prefix cache, and says how many tokens it took', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'system', content: 'You are Mr. Collins, and you speak at length of Lady Catherine de Bourgh.' }]
    const cached: number[] = []
    for (let turn = 0; turn < 4; turn++) {
      messages.push({ role: 'user', content: `Pray tell me more, turn ${turn}.` })
      const res = await openai.chat.completions.create({ model: GPT, messages, max_tokens: 6, temperature: 0 })
      messages.push({ role: 'assistant', content: res.choices[0].message.content ?? '' })
      cached.push(res.usage?.prompt_tokens_details?.cached_tokens ?? 0)
    }
    assert.ok(cached[3] > cached[0] + 20, `tokens taken from the cache, turn by turn: ${cached.join(', ')}`)
  })
})
