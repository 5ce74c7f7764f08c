import assert from 'node:assert/strict'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { appendedKeyValues } from '@node-daemon/onnx'
import { Runtime } from '../src/runtime.ts'
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

  it('refuses a prompt longer than the context, and embeddings from a decoder', async () => {
    await assert.rejects(runtime.generate(decoder(), { prompt: 'word '.repeat(700), raw: true }, { sampling: GREEDY, maxTokens: 2, stop: [] }), { name: 'ContextLengthError' })
    await assert.rejects(runtime.embed(decoder(), ['x']), { name: 'UnsupportedModelError' })
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
})
