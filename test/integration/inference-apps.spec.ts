/**
 * What apps built on ollama-js, openai-node, LangChain and the AI SDK need
 * of a node, against one daemon on its embedded defaults: long chats cut as
 * Ollama cuts them, with their prefixes cached.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { waitFor } from '../helpers/cluster.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const GPT = `${DEFAULT_MODELS.generate}:latest`

describe('inference for apps, with the real clients', () => {
  let daemon: TestDaemon
  let ollama: Ollama
  let openai: OpenAI

  before(async () => {
    daemon = await startTestDaemon({ inference: { defaultModels: true } })
    ollama = new Ollama({ host: daemon.url })
    openai = new OpenAI({ baseURL: `${daemon.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    await waitFor('the default models', async () => (await ollama.list()).models.some(m => m.name === GPT), 120_000)
  })
  after(async () => { await daemon?.cleanup() })

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
