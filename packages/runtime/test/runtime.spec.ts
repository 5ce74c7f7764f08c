import assert from 'node:assert/strict'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { appendedKeyValues } from '@node-daemon/onnx'
import { fitPrompt, Runtime } from '../src/runtime.ts'
import { TextCodec } from '../src/text.ts'
import { bareGreedy } from './helpers/bare-greedy.ts'
import { tinyModels } from './helpers/tiny-models.ts'
import type { GenerationEvent, GenerationStats } from '../src/batcher.ts'
import type { SamplingOptions } from '../src/sampling.ts'
import type { TinyModels } from './helpers/tiny-models.ts'

const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }

async function collect (events: AsyncIterable<GenerationEvent>): Promise<{ chunks: string[], stats: GenerationStats }> {
  const chunks: string[] = []
  let stats: GenerationStats | undefined
  for await (const e of events) {
    if (e.type === 'chunk') chunks.push(e.chunk.text)
    else stats = e.stats
  }
  assert.ok(stats != null, 'the stream ends with done')
  return { chunks, stats }
}

describe('Runtime', () => {
  let models: TinyModels
  let runtime: Runtime
  const decoder = (): { key: string, name: string, dir: string } => ({ key: 'decoder', name: 'tiny', dir: models.decoder })

  before(async () => {
    models = await tinyModels()
    runtime = new Runtime()
    await runtime.start()
  })
  after(async () => {
    await runtime.stop()
    await rm(models.root, { recursive: true, force: true })
  })

  it('decodes greedily with its KV cache exactly as a plain onnxruntime loop does', async () => {
    const prompt = 'It is a truth universally acknowledged'
    // Past 64 tokens, the cache outgrows the room it is given twice.
    const { events } = await runtime.generate(decoder(), { prompt, raw: true }, { sampling: GREEDY, maxTokens: 80, stop: [] })
    const { chunks, stats } = await collect(events)
    assert.ok(stats.tokens.length > 64, `${stats.tokens.length} tokens`)
    const lease = await runtime.acquire(decoder())
    const ids = lease.model.codec.encode(prompt)
    lease.release()
    const expected = await bareGreedy(models.decoder, ids, stats.tokens.length)
    assert.deepEqual(stats.tokens, expected.slice(0, stats.tokens.length))
    assert.equal(stats.promptTokens, ids.length)
    assert.equal(chunks.join(''), stats.text, 'the streamed chunks add up to the text')
  })

  for (const variant of ['external', 'unrewritten'] as const) {
    const what = variant === 'external' ? 'whose weights are external data' : 'whose graph the cache rewrite does not apply to'
    it(`decodes a model ${what} as the plain loop does, alone and in a batch`, async () => {
      const ref = { key: variant, name: variant, dir: models[variant] }
      assert.equal(appendedKeyValues(await readFile(join(ref.dir, 'model.onnx'))) != null, variant === 'external')
      const prompts = ['It is a truth universally acknowledged', 'Emma Woodhouse, handsome, clever, and rich']
      const results = await Promise.all(prompts.map(async prompt => (await collect((await runtime.generate(ref, { prompt, raw: true }, { sampling: GREEDY, maxTokens: 12, stop: [] })).events)).stats))
      const lease = await runtime.acquire(ref)
      const ids = prompts.map(p => lease.model.codec.encode(p))
      lease.release()
      for (const [i, stats] of results.entries()) {
        assert.ok(stats.tokens.length > 0)
        assert.deepEqual(stats.tokens, (await bareGreedy(models[variant], ids[i], stats.tokens.length)).slice(0, stats.tokens.length))
      }
    })
  }

  it('gives every request of a batch what it would get alone', async () => {
    const prompts = ['Elizabeth', 'Mr. Darcy was', 'The morning', 'Anne Elliot had been a very']
    const alone: number[][] = []
    for (const prompt of prompts) {
      const { events } = await runtime.generate(decoder(), { prompt, raw: true }, { sampling: GREEDY, maxTokens: 12, stop: [] })
      alone.push((await collect(events)).stats.tokens)
    }
    const together = await Promise.all(prompts.map(async prompt => {
      const { events } = await runtime.generate(decoder(), { prompt, raw: true }, { sampling: GREEDY, maxTokens: 12, stop: [] })
      return (await collect(events)).stats.tokens
    }))
    assert.deepEqual(together, alone)
  })

  it('lets requests join and leave a batch mid-way without changing what any of them gets', async () => {
    const jobs = [{ prompt: 'Anne', maxTokens: 70 }, { prompt: 'Captain Wentworth and the Musgroves', maxTokens: 9 }, { prompt: 'Lady Russell said that', maxTokens: 25 }]
    const alone: number[][] = []
    for (const job of jobs) {
      const { events } = await runtime.generate(decoder(), { prompt: job.prompt, raw: true }, { sampling: GREEDY, maxTokens: job.maxTokens, stop: [] })
      alone.push((await collect(events)).stats.tokens)
    }
    const first = await runtime.generate(decoder(), { prompt: jobs[0].prompt, raw: true }, { sampling: GREEDY, maxTokens: jobs[0].maxTokens, stop: [] })
    const tokens: number[] = []
    const others: Array<Promise<number[]>> = []
    for await (const e of first.events) {
      if (e.type !== 'chunk') continue
      tokens.push(e.chunk.token)
      // The others join while the first decodes, and leave before it ends.
      if (tokens.length === 5) {
        for (const job of jobs.slice(1)) {
          const { events } = await runtime.generate(decoder(), { prompt: job.prompt, raw: true }, { sampling: GREEDY, maxTokens: job.maxTokens, stop: [] })
          others.push(collect(events).then(r => r.stats.tokens))
        }
      }
    }
    assert.deepEqual([tokens, ...await Promise.all(others)], alone)
  })

  it('stops at max tokens with done reason length, and at a stop string without returning it', async () => {
    const { events } = await runtime.generate(decoder(), { prompt: 'She said', raw: true }, { sampling: GREEDY, maxTokens: 30, stop: [] })
    const full = (await collect(events)).stats
    assert.equal(full.doneReason, 'length')
    assert.equal(full.tokens.length, 30)
    // A stop string taken from the middle of what the model writes anyway.
    const stop = full.text.slice(Math.floor(full.text.length / 2), Math.floor(full.text.length / 2) + 2)
    const cut = await runtime.generate(decoder(), { prompt: 'She said', raw: true }, { sampling: GREEDY, maxTokens: 30, stop: [stop] })
    const { chunks, stats } = await collect(cut.events)
    assert.equal(stats.doneReason, 'stop')
    assert.equal(stats.text, full.text.slice(0, full.text.indexOf(stop)))
    assert.equal(chunks.join(''), stats.text)
  })

  it('samples reproducibly with a seed', async () => {
    const run = async (seed: number): Promise<number[]> => {
      const { events } = await runtime.generate(decoder(), { prompt: 'Once', raw: true }, { sampling: { temperature: 1.2, topK: 50, topP: 0.95, repeatPenalty: 1.1, repeatLastN: 64, seed }, maxTokens: 16, stop: [] })
      return (await collect(events)).stats.tokens
    }
    const a = await run(1)
    assert.deepEqual(await run(1), a)
    assert.notDeepEqual(await run(2), a)
  })

  it('drops a sequence whose signal aborts, and goes on with the others', async () => {
    const controller = new AbortController()
    const { events } = await runtime.generate(decoder(), { prompt: 'It', raw: true }, { sampling: GREEDY, maxTokens: 100, stop: [] }, { signal: controller.signal })
    const other = await runtime.generate(decoder(), { prompt: 'The', raw: true }, { sampling: GREEDY, maxTokens: 20, stop: [] })
    let seen = 0
    await assert.rejects(async () => {
      for await (const e of events) {
        if (e.type === 'chunk' && ++seen === 3) controller.abort(new Error('client went away'))
      }
    }, /client went away/)
    assert.ok(seen < 10)
    assert.equal((await collect(other.events)).stats.tokens.length, 20)
  })

  it('keeps a model for its keep-alive, and unloads at once with 0', async () => {
    const ref = { key: 'kept', name: 'kept', dir: models.decoder }
    const { events, loadNs } = await runtime.generate(ref, { prompt: 'A', raw: true }, { sampling: GREEDY, maxTokens: 2, stop: [] }, { keepAliveMs: 60_000 })
    await collect(events)
    assert.ok(loadNs > 0, 'the request that loaded the model reports the load')
    const entry = runtime.loaded().find(m => m.key === 'kept')
    assert.ok(entry?.expiresAt != null && entry.expiresAt.getTime() > Date.now() + 50_000)
    assert.equal(entry.info.kind, 'causal-lm')
    const again = await runtime.generate(ref, { prompt: 'A', raw: true }, { sampling: GREEDY, maxTokens: 2, stop: [] }, { keepAliveMs: 0 })
    assert.equal(again.loadNs, 0, 'a loaded model is not loaded again')
    await collect(again.events)
    for (let i = 0; i < 50 && runtime.loaded().some(m => m.key === 'kept'); i++) await new Promise(resolve => setTimeout(resolve, 10))
    assert.ok(!runtime.loaded().some(m => m.key === 'kept'))
  })

  it('takes the prompt as token ids, after an earlier context, and checks them against the vocabulary', async () => {
    const text = await runtime.generate(decoder(), { prompt: 'She said', raw: true }, { sampling: GREEDY, maxTokens: 6, stop: [] })
    const expected = (await collect(text.events)).stats
    const ids = await runtime.generate(decoder(), { tokens: text.prompt }, { sampling: GREEDY, maxTokens: 6, stop: [] })
    assert.deepEqual(ids.prompt, text.prompt)
    assert.deepEqual((await collect(ids.events)).stats.tokens, expected.tokens)
    // The context of 'She' followed by the prompt ' said' is the same prompt.
    const she = text.codec.encode('She')
    const continued = await runtime.generate(decoder(), { prompt: text.codec.decode(text.prompt.slice(she.length)), raw: true, context: she }, { sampling: GREEDY, maxTokens: 6, stop: [] })
    assert.deepEqual(continued.prompt, text.prompt)
    assert.deepEqual((await collect(continued.events)).stats.tokens, expected.tokens)
    for (const input of [{ tokens: [1, 1e6] }, { tokens: [-1] }, { tokens: [0.5] }, { prompt: 'x', raw: true, context: [1e6] }]) {
      await assert.rejects(runtime.generate(decoder(), input, { sampling: GREEDY, maxTokens: 1, stop: [] }), { name: 'InvalidInferenceRequestError', message: /not in the vocabulary/ })
    }
    await assert.rejects(runtime.generate(decoder(), { prompt: 'x', raw: true }, { sampling: { ...GREEDY, logitBias: { 1000000: 1 } }, maxTokens: 1, stop: [] }), { name: 'InvalidInferenceRequestError', message: /logit_bias/ })
    await assert.rejects(runtime.generate(decoder(), { prompt: 'x', suffix: 'y' }, { sampling: GREEDY, maxTokens: 1, stop: [] }), { name: 'InvalidInferenceRequestError', message: /fill-in-the-middle/ })
    await assert.rejects(runtime.generate(decoder(), { prompt: 'x', raw: true }, { sampling: GREEDY, maxTokens: 1, stop: [], logprobs: 21 }), { name: 'InvalidInferenceRequestError', message: /top_logprobs/ })
  })

  it("reports each drawn token's log-probability and alternatives when asked, and biases logits", async () => {
    const { events } = await runtime.generate(decoder(), { prompt: 'She said', raw: true }, { sampling: GREEDY, maxTokens: 6, stop: [], logprobs: 3 })
    const chunks = []
    for await (const e of events) if (e.type === 'chunk') chunks.push(e.chunk)
    assert.equal(chunks.length, 6)
    for (const c of chunks) {
      assert.equal(c.top?.length, 3)
      // Greedy: the drawn token is the likeliest, so first among the alternatives.
      assert.equal(c.top?.[0].token, c.token)
      assert.equal(c.top?.[0].logprob, c.logprob)
      assert.ok((c.logprob as number) < 0 && (c.top as any)[2].logprob <= (c.top as any)[1].logprob)
    }
    const banned = chunks[0].token
    const { events: biased } = await runtime.generate(decoder(), { prompt: 'She said', raw: true }, { sampling: { ...GREEDY, logitBias: { [banned]: -100 } }, maxTokens: 1, stop: [] })
    assert.notEqual((await collect(biased)).stats.tokens[0], banned)
  })

  it('cuts a prompt longer than the context as Ollama does, and refuses embeddings from a decoder', async () => {
    const lease = await runtime.acquire(decoder())
    const ids = lease.model.codec.encode('word '.repeat(700))
    lease.release()
    const { stats } = await collect((await runtime.generate(decoder(), { prompt: 'word '.repeat(700), raw: true }, { sampling: GREEDY, maxTokens: 2, stop: [], numKeep: 4 })).events)
    // 512 tokens of context less the 2 asked for.
    assert.equal(stats.promptTokens, 510)
    assert.ok(ids.length > 510)
    const small = await collect((await runtime.generate(decoder(), { prompt: 'word '.repeat(700), raw: true }, { sampling: GREEDY, maxTokens: 8, stop: [], numCtx: 64 })).events)
    assert.equal(small.stats.promptTokens, 56, 'num_ctx bounds the context')
    assert.ok(small.stats.promptTokens + small.stats.tokens.length <= 64)
    await assert.rejects(runtime.embed(decoder(), ['x']), { name: 'UnsupportedModelError' })
  })

  it('drops the oldest turns of a long chat, keeping the system prompt, and refuses only a newest message that cannot fit', async () => {
    const lease = await runtime.acquire(decoder())
    const model = lease.model
    lease.release()
    assert.equal(model.kind, 'causal-lm')
    if (model.kind !== 'causal-lm') return
    const turn = (i: number): Array<{ role: string, content: string }> => [{ role: 'user', content: `question ${i} ${'about the weather in Bath '.repeat(3)}` }, { role: 'assistant', content: `answer ${i} ${'it rained again '.repeat(3)}` }]
    const messages = [{ role: 'system', content: 'You are Jane.' }, ...Array.from({ length: 30 }, (_, i) => turn(i)).flat(), { role: 'user', content: 'and today?' }]
    const whole = model.codec.encode(model.codec.chat(messages))
    assert.ok(whole.length > 512)
    const fitted = fitPrompt(model, { messages }, { contextLength: 512, maxTokens: 32 })
    assert.ok(fitted.length <= 480, `${fitted.length} tokens`)
    const text = model.codec.decode(fitted)
    assert.match(text, /You are Jane\./)
    assert.match(text, /and today\?/)
    assert.doesNotMatch(text, /question 0 /, 'the oldest turn went first')
    assert.match(text, /answer 29 /)
    // Cut by half the room at most past what had to go: it keeps more than a quarter of the context.
    assert.ok(fitted.length > 512 / 4, `${fitted.length} tokens`)
    // The next turn loses the same first turns, so its prompt begins as this one: the prefix cache serves it.
    const next = fitPrompt(model, { messages: [...messages, { role: 'assistant', content: 'it rained' }, { role: 'user', content: 'and tomorrow?' }] }, { contextLength: 512, maxTokens: 32 })
    assert.ok(model.codec.decode(next).startsWith(text), `${model.codec.decode(next)} does not begin with ${text}`)
    assert.throws(() => fitPrompt(model, { messages: [{ role: 'system', content: 'hi' }, { role: 'user', content: 'word '.repeat(600) }] }, { contextLength: 512, maxTokens: 32 }), { name: 'ContextLengthError' })
  })

  for (const variant of ['decoder', 'unrewritten'] as const) {
    it(`prefills only past the longest cached prefix (${variant}), and decodes as without the cache`, async () => {
      const ref = { key: `prefix-${variant}`, name: variant, dir: models[variant] }
      const first = 'It is a truth universally acknowledged, that a single man in possession of a good fortune'
      const one = await collect((await runtime.generate(ref, { prompt: first, raw: true }, { sampling: GREEDY, maxTokens: 6, stop: [] })).events)
      assert.equal(one.stats.cachedTokens, 0)
      const second = `${first}${one.stats.text}, must be in want of a wife.`
      const two = await collect((await runtime.generate(ref, { prompt: second, raw: true }, { sampling: GREEDY, maxTokens: 12, stop: [] })).events)
      const lease = await runtime.acquire(ref)
      const ids = lease.model.codec.encode(second)
      lease.release()
      assert.ok(two.stats.cachedTokens >= lease.model.codec.encode(first).length - 1, `${two.stats.cachedTokens} cached`)
      assert.ok(two.stats.cachedTokens < ids.length)
      assert.deepEqual(two.stats.tokens, (await bareGreedy(models[variant], ids, two.stats.tokens.length)).slice(0, two.stats.tokens.length))
      // Two at once from the same cached prefix, each in its own copy.
      const both = await Promise.all([second, `${first}, and so on`].map(async prompt => (await collect((await runtime.generate(ref, { prompt, raw: true }, { sampling: GREEDY, maxTokens: 8, stop: [] })).events)).stats))
      for (const [i, prompt] of [second, `${first}, and so on`].entries()) {
        assert.ok(both[i].cachedTokens > 0)
        const l = await runtime.acquire(ref)
        const p = l.model.codec.encode(prompt)
        l.release()
        assert.deepEqual(both[i].tokens, (await bareGreedy(models[variant], p, both[i].tokens.length)).slice(0, both[i].tokens.length))
      }
    })
  }

  it('refuses to load a model that does not fit the memory left, with the figures, and loads it where it fits', async () => {
    const short = new Runtime({ availableMemory: () => 64 * 1024 })
    await short.start()
    try {
      await assert.rejects(short.acquire(decoder()), { name: 'InsufficientMemoryError', message: /tiny needs about .* GiB \(.* of weights and .* of keys and values for 512 tokens\), and this node has 0\.00 GiB free/ })
      assert.deepEqual(short.loaded(), [], 'nothing half loaded stays')
    } finally {
      await short.stop()
    }
    const roomy = new Runtime({ availableMemory: () => 2 ** 40 })
    await roomy.start()
    try {
      const lease = await roomy.acquire(decoder())
      lease.release()
    } finally {
      await roomy.stop()
    }
  })

  it('embeds: unit vectors, the same for the same text alone or in a batch', async () => {
    const ref = { key: 'encoder', name: 'embed', dir: models.encoder }
    const { embeddings, promptTokens } = await runtime.embed(ref, ['The rain fell', 'on the old house at Kellynch', 'The rain fell'])
    assert.equal(embeddings.length, 3)
    assert.ok(promptTokens > 6)
    for (const v of embeddings) assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5)
    const [alone] = (await runtime.embed(ref, ['The rain fell'])).embeddings
    for (let i = 0; i < alone.length; i++) {
      assert.ok(Math.abs(alone[i] - embeddings[0][i]) < 1e-5)
      assert.ok(Math.abs(embeddings[2][i] - embeddings[0][i]) < 1e-6)
    }
    assert.notDeepEqual(embeddings[0], embeddings[1])
    await assert.rejects(runtime.generate(ref, { prompt: 'x', raw: true }, { sampling: GREEDY, maxTokens: 1, stop: [] }), { name: 'UnsupportedModelError' })
  })

  it('embeds token ids as the text they encode, and keeps the first dimensions of each embedding, normalized', async () => {
    const ref = { key: 'encoder', name: 'embed', dir: models.encoder }
    const dir = models.encoder
    const codec = new TextCodec(JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')))
    const ids = codec.encode('The rain fell')
    const [text, tokens] = (await runtime.embed(ref, ['The rain fell', ids])).embeddings
    assert.deepEqual(tokens, text)

    const full = (await runtime.embed(ref, ['The rain fell'])).embeddings[0]
    const short = await runtime.embed(ref, ['The rain fell'], { dimensions: 8 })
    assert.equal(short.embeddings[0].length, 8)
    assert.ok(Math.abs(Math.hypot(...short.embeddings[0]) - 1) < 1e-5)
    const norm = Math.hypot(...full.subarray(0, 8))
    short.embeddings[0].forEach((v, i) => assert.ok(Math.abs(v - full[i] / norm) < 1e-5))
    assert.equal((await runtime.embed(ref, ['x'], { dimensions: 32 })).embeddings[0].length, 32)

    await assert.rejects(runtime.embed(ref, ['x'], { dimensions: 33 }), { name: 'InvalidInferenceRequestError', message: /^dimensions: embed makes embeddings of 32 dimensions/ })
    await assert.rejects(runtime.embed(ref, ['x'], { dimensions: 0 }), { name: 'InvalidInferenceRequestError', message: /^dimensions:/ })
    await assert.rejects(runtime.embed(ref, [[1, 384]]), { name: 'InvalidInferenceRequestError', message: /^input: token 384 is not in the model's vocabulary of 384 tokens/ })
    await assert.rejects(runtime.embed(ref, [[-1]]), { name: 'InvalidInferenceRequestError' })
  })

  it('cuts an input longer than the context, or refuses it when told not to', async () => {
    const ref = { key: 'encoder', name: 'embed', dir: models.encoder }
    const long = Array.from({ length: 100 }, () => 5)
    const cut = await runtime.embed(ref, [long, 'word '.repeat(200)])
    assert.equal(cut.promptTokens, 128, 'each cut to the 64 tokens of the context')
    await assert.rejects(runtime.embed(ref, [long], { truncate: false }), { name: 'ContextLengthError', message: /^input exceeds maximum context length: 100 tokens, and the model takes 64/ })
  })
})
