import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Ajv } from 'ajv'
import { parseToolCalls } from '../src/tools.ts'
import { withTinyRuntime } from './helpers/tiny-models.ts'
import { collect } from './helpers/collect.ts'
import type { SamplingOptions } from '../src/sampling.ts'

const HOT: SamplingOptions = { temperature: 1, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }
const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, maxItems: 3 }
  },
  required: ['name', 'age'],
  additionalProperties: false
}

const WEATHER = { name: 'weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 20 }, days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city'], additionalProperties: false } }
const TIME = { name: 'time', parameters: {} }

describe('constrained decoding in the runtime', () => {
  const tiny = withTinyRuntime()
  const ref = (): { key: string, name: string, dir: string } => ({ key: 'decoder', name: 'tiny', dir: tiny.models.decoder })

  it('writes JSON that validates against its schema, whatever an untrained model would say, streamed as it goes', async () => {
    const validate = new Ajv({ strict: false }).compile(PERSON)
    for (let seed = 0; seed < 12; seed++) {
      const { streamed, stats } = await collect((await tiny.runtime.generate(ref(), { prompt: 'Who?', raw: true }, { sampling: { ...HOT, seed }, maxTokens: 60, stop: ['}'], format: { type: 'json-schema', schema: PERSON } })).events)
      assert.equal(streamed, stats.text)
      const value = JSON.parse(stats.text)
      assert.ok(validate(value), `${stats.text}: ${JSON.stringify(validate.errors)}`)
    }
    const { stats } = await collect((await tiny.runtime.generate(ref(), { messages: [{ role: 'user', content: 'hi' }] }, { sampling: HOT, maxTokens: 40, stop: [], format: { type: 'json' } })).events)
    JSON.parse(stats.text)
  })

  it('refuses a format that cannot fit the tokens the request allows', async () => {
    const schema = { type: 'array', items: { type: 'integer' }, minItems: 50 }
    await assert.rejects(tiny.runtime.generate(ref(), { prompt: 'x', raw: true }, { sampling: GREEDY, maxTokens: 10, stop: [], format: { type: 'json-schema', schema } }), { name: 'InvalidInferenceRequestError' })
    // No value at all: a 400 for the request, not a failure of the node.
    await assert.rejects(tiny.runtime.generate(ref(), { prompt: 'x', raw: true }, { sampling: GREEDY, maxTokens: 10, stop: [], format: { type: 'json-schema', schema: { type: 'integer', minimum: 5, maximum: 3 } } }), { name: 'InvalidInferenceRequestError', message: /cannot be generated/ })
  })

  it('makes valid calls when a call is required or named, even from a model never trained for tools', async () => {
    const messages = [{ role: 'user', content: 'What is the weather in Bath?' }]
    // A template that names the tools briefly: the tools prompt would not fit this model's context.
    const template = '{% for t in tools %}{{ t.function.name }} {% endfor %}\n{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant: '
    for (let seed = 0; seed < 6; seed++) {
      const { streamed, stats } = await collect((await tiny.runtime.generate(ref(), { messages, tools: [WEATHER, TIME], template }, { sampling: { ...HOT, seed }, maxTokens: 80, stop: [], toolChoice: 'required', parallelToolCalls: false })).events)
      assert.equal(streamed, '', 'calls are not content')
      assert.equal(stats.toolCalls?.length, 1, stats.text)
      const call = stats.toolCalls?.[0]
      assert.ok(call != null && ['weather', 'time'].includes(call.name))
      if (call.name === 'weather') assert.equal(typeof call.arguments.city, 'string')
      else assert.deepEqual(call.arguments, {})
    }
    const named = await collect((await tiny.runtime.generate(ref(), { messages, tools: [WEATHER, TIME], template }, { sampling: HOT, maxTokens: 80, stop: [], toolChoice: { name: 'time' } })).events)
    assert.deepEqual(named.stats.toolCalls?.map(c => [c.name, c.arguments]), [['time', {}]])
    await assert.rejects(tiny.runtime.generate(ref(), { messages, tools: [WEATHER], template }, { sampling: HOT, maxTokens: 80, stop: [], toolChoice: { name: 'nope' } }), { name: 'InvalidInferenceRequestError' })
  })

  it('lets constrained and free sequences share a batch without changing what the free ones get', async () => {
    const prompts = ['Elizabeth walked', 'Mr. Darcy said', 'The morning was']
    const alone = []
    for (const prompt of prompts) alone.push((await collect((await tiny.runtime.generate(ref(), { prompt, raw: true }, { sampling: GREEDY, maxTokens: 16, stop: [] })).events)).stats.tokens)
    const together = await Promise.all([
      ...prompts.map(async prompt => (await collect((await tiny.runtime.generate(ref(), { prompt, raw: true }, { sampling: GREEDY, maxTokens: 16, stop: [] })).events)).stats),
      ...prompts.map(async prompt => (await collect((await tiny.runtime.generate(ref(), { prompt, raw: true }, { sampling: { ...HOT, seed: 3 }, maxTokens: 40, stop: [], format: { type: 'json-schema', schema: PERSON } })).events)).stats)
    ])
    assert.deepEqual(together.slice(0, 3).map(s => s.tokens), alone)
    for (const stats of together.slice(3)) JSON.parse(stats.text)
  })

  it('reads calls back in the Hermes, Mistral and Llama 3.1 syntaxes, and leaves text that is not a call alone', () => {
    const tools = [WEATHER]
    assert.deepEqual(parseToolCalls('Let me see.\n<tool_call>\n{"name":"weather","arguments":{"city":"Bath"}}\n</tool_call>', 'hermes', tools).calls.map(c => [c.name, c.arguments]), [['weather', { city: 'Bath' }]])
    assert.equal(parseToolCalls('Let me see.\n<tool_call>\n{"name":"weather","arguments":{}}\n</tool_call>', 'hermes', tools).content, 'Let me see.')
    assert.deepEqual(parseToolCalls('[TOOL_CALLS][{"name":"weather","arguments":{"city":"York"}}]', 'mistral', tools).calls.map(c => c.arguments), [{ city: 'York' }])
    assert.deepEqual(parseToolCalls('{"name": "weather", "parameters": {"city": "Bath"}}', 'llama3', tools).calls.map(c => c.name), ['weather'])
    assert.deepEqual(parseToolCalls('{"name": "unknown", "parameters": {}}', 'llama3', tools), { content: '{"name": "unknown", "parameters": {}}', calls: [] })
    assert.deepEqual(parseToolCalls('<tool_call>not json</tool_call>', 'hermes', tools).calls, [])
  })
})
