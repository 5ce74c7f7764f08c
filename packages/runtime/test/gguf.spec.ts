import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Ajv } from 'ajv'
import { convertDecoder } from '@node-daemon/gguf'
import { assetDir } from '@node-daemon/models'
import { Batcher } from '../src/batcher.ts'
import { ggufContextOptions, loadGguf, readGgufHeader } from '../src/gguf.ts'
import { AHEAD_MAX, AHEAD_MIN, HOLD_MS } from '../src/llama-thread.ts'
import { SMALL_MODEL_BYTES } from '../src/model.ts'
import { Runtime } from '../src/runtime.ts'
import { argmax } from '../src/sampling.ts'
import { collect } from './helpers/collect.ts'
import { mappedBytes } from './helpers/mapped.ts'
import type { GenerateRequest, GenerationStats } from '../src/batcher.ts'
import type { Decoder } from '../src/decoder.ts'
import type { GgufCache, GgufLM } from '../src/gguf.ts'
import type { SamplingOptions } from '../src/sampling.ts'

const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }
const PROMPTS = ['It is a truth universally acknowledged', 'The old man and', 'Call me']

/** The llama.cpp this process mapped (Linux): node-llama-cpp keeps the builds it makes for this machine under `localBuilds`. */
async function mappedLlamaEngine (): Promise<string> {
  const lib = (await readFile('/proc/self/maps', 'utf8')).split('\n').find(line => /\/libllama[^/]*\.so/.test(line))
  assert.ok(lib != null, 'no libllama mapped')
  return lib.includes('/localBuilds/') ? 'llama.cpp (built here)' : 'llama.cpp (prebuilt)'
}

/** The default decoder run by the runtime as ONNX and, converted, as GGUF through llama.cpp. */
describe('a GGUF model in the runtime', () => {
  let dir: string
  let runtime: Runtime
  const notes: Array<{ fields: Record<string, unknown>, message: string }> = []
  const onnx = { key: 'onnx', name: 'tiny-gpt', dir: assetDir('tiny-gpt') }
  const gguf = (): { key: string, name: string, dir: string } => ({ key: 'gguf', name: 'tiny-gpt-gguf', dir })
  const greedy = async (ref: { key: string, name: string, dir: string }, prompt: string, maxTokens = 24): Promise<GenerationStats> => {
    const { events } = await runtime.generate(ref, { prompt, raw: true }, { sampling: GREEDY, maxTokens, stop: [] })
    return (await collect(events)).stats
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'runtime-gguf-'))
    await convertDecoder(assetDir('tiny-gpt'), join(dir, 'model.gguf'))
    runtime = new Runtime({ logger: { info: (fields, message) => { notes.push({ fields, message }) } } })
    await runtime.start()
  })
  after(async () => {
    await runtime.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('decodes greedily to the ONNX model\'s text, streaming it, and shows in the loaded models with what the file says', async () => {
    for (const prompt of PROMPTS) {
      const { events } = await runtime.generate(gguf(), { prompt, raw: true }, { sampling: GREEDY, maxTokens: 24, stop: [] })
      const { streamed, stats } = await collect(events)
      assert.equal(streamed, stats.text)
      assert.equal(stats.text, (await greedy(onnx, prompt)).text, prompt)
    }
    const loaded = runtime.loaded().find(m => m.key === 'gguf')
    assert.deepEqual(loaded && { family: loaded.info.family, quantization: loaded.info.quantization, parameters: loaded.info.parameters, contextLength: loaded.info.contextLength }, { family: 'gpt2', quantization: 'F32', parameters: 2_664_576, contextLength: 512 })
    // Which binaries run it, as a user who built llama.cpp for the machine would check.
    const engine = await mappedLlamaEngine()
    assert.equal(loaded?.info.engine, engine)
    assert.equal(runtime.loaded().find(m => m.key === 'onnx')?.info.engine, 'onnxruntime')
    // The operator is told once, and how to build llama.cpp for the machine when it runs the prebuilt binaries.
    assert.deepEqual(notes.map(n => n.fields), [{ engine }])
    assert.equal(notes[0].message.includes('npx --no node-llama-cpp source download --gpu false'), engine === 'llama.cpp (prebuilt)', notes[0].message)
  })

  it('decodes concurrent requests together to the text each has alone, reusing what an earlier prompt left in a sequence', async () => {
    const alone = await Promise.all(PROMPTS.map(async p => greedy(onnx, p + ' and so', 40)))
    for (let round = 0; round < 2; round++) {
      const together = await Promise.all(PROMPTS.map(async p => greedy(gguf(), p + ' and so', 40)))
      assert.deepEqual(together.map(s => s.text), alone.map(s => s.text))
    }
  })

  it('renders the chat template the file carries', async () => {
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Who are you?' }]
    const a = await runtime.generate(gguf(), { messages }, { sampling: GREEDY, maxTokens: 8, stop: [] })
    const b = await runtime.generate(onnx, { messages }, { sampling: GREEDY, maxTokens: 8, stop: [] })
    assert.deepEqual(a.prompt, b.prompt)
    assert.equal((await collect(a.events)).stats.text, (await collect(b.events)).stats.text)
  })

  it('samples with the runtime\'s sampler: a seed gives the same text again', async () => {
    const sampling: SamplingOptions = { temperature: 0.9, topK: 40, topP: 0.9, repeatPenalty: 1.1, repeatLastN: 64, seed: 7 }
    const run = async (): Promise<string> => (await collect((await runtime.generate(gguf(), { prompt: 'Once upon a time', raw: true }, { sampling, maxTokens: 30, stop: [] })).events)).stats.text
    const first = await run()
    assert.equal(await run(), first)
    assert.notEqual(first, (await greedy(gguf(), 'Once upon a time', 30)).text)
  })

  it('keeps structured output to its schema', async () => {
    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 10 }, age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'], additionalProperties: false }
    const { events } = await runtime.generate(gguf(), { prompt: 'A person:', raw: true }, { sampling: { ...GREEDY, temperature: 1, seed: 3 }, maxTokens: 60, stop: [], format: { type: 'json-schema', schema } })
    const { stats } = await collect(events)
    assert.equal(stats.doneReason, 'stop')
    assert.ok(new Ajv().validate(schema, JSON.parse(stats.text)), stats.text)
  })

  it('ends a request whose signal aborts, and serves the next', async () => {
    const controller = new AbortController()
    const { events } = await runtime.generate(gguf(), { prompt: 'The old man and', raw: true }, { sampling: GREEDY, maxTokens: 400, stop: [] }, { signal: controller.signal })
    let chunks = 0
    await assert.rejects(async () => {
      for await (const e of events) if (e.type === 'chunk' && ++chunks === 3) controller.abort()
    })
    assert.equal(chunks, 3)
    assert.equal((await greedy(gguf(), 'The old man and')).text, (await greedy(onnx, 'The old man and')).text)
  })

  it('picks a greedy row\'s token in llama.cpp as the argmax of the logits it would hand over, rows with logits beside it', async () => {
    const lm = await loadGguf(dir, { sequences: 2 * PROMPTS.length })
    try {
      const prompts = PROMPTS.map(p => lm.codec.encode(p))
      const a = await lm.forward(prompts)
      const b = await lm.forwardGreedy(prompts, [true, false, true])
      let [viaLogits, viaEngine] = [a, { logits: b.next, cache: b.cache }]
      for (let step = 0; step < 12; step++) {
        const picked = viaLogits.logits.map(argmax)
        assert.deepEqual(viaEngine.logits.map(row => typeof row === 'number' ? row : argmax(row)), picked, `step ${step}`)
        assert.equal(typeof viaEngine.logits[1], 'object')
        viaLogits = await lm.forward(picked.map(t => [t]), viaLogits.cache)
        const next = await lm.forwardGreedy(picked.map(t => [t]), [true, false, true], viaEngine.cache)
        viaEngine = { logits: next.next, cache: next.cache }
      }
    } finally {
      await lm.release()
    }
  })

  it('splits rows longer together than the context\'s batch size over several decodes, each row\'s answer as it would be alone', async () => {
    // Two models: one that saw a prompt alone would answer the others from its cache of it.
    const [lm, alone] = await Promise.all([loadGguf(dir, { sequences: 4 }), loadGguf(dir, { sequences: 1 })])
    try {
      // Three prompts of 200 tokens: more than a batch, so that rows end in each of two decodes and one row spans both.
      const text = 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '.repeat(12)
      const prompts = [0, 10, 20].map(cut => alone.codec.encode(text).slice(cut, cut + 200))
      const expected = []
      for (const prompt of prompts) {
        const one = await alone.forward([prompt])
        expected.push(argmax(one.logits[0]))
        alone.free(one.cache)
      }
      const together = await lm.forwardGreedy(prompts, [true, false, true])
      assert.ok(prompts.reduce((n, p) => n + p.length, 0) > lm.context.batchSize, 'the rows outgrow one batch')
      assert.deepEqual(together.next.map(row => typeof row), ['number', 'object', 'number'])
      assert.deepEqual(together.next.map(row => typeof row === 'number' ? row : argmax(row)), expected)
      lm.free(together.cache)
    } finally {
      await Promise.all([lm.release(), alone.release()])
    }
  })

  it('computes a greedy row\'s tokens ahead of the steps that ask for them, no further than the lead it was given, and takes them back when the row goes on with logits', async () => {
    const lm = await loadGguf(dir, { sequences: 2 })
    try {
      const prompt = lm.codec.encode(PROMPTS[1])
      let ref = await lm.forward([prompt])
      const expected: number[] = []
      for (let step = 0; step < 8; step++) {
        expected.push(argmax(ref.logits[0]))
        ref = await lm.forward([[expected[step]]], ref.cache)
      }
      lm.free(ref.cache)

      let greedy = await lm.forwardGreedy([prompt], [true])
      const tokens = [greedy.next[0] as number]
      const sequence = greedy.cache.rows[0]
      const known = greedy.cache.length
      const lead = sequence.until - known
      assert.ok(lead >= AHEAD_MIN && lead <= AHEAD_MAX, `lead ${lead}`)
      // Computed ahead while the caller is busy with the token, bounded in time.
      for (const deadline = Date.now() + 10_000; lm.context.cells(sequence) < known + lead && Date.now() < deadline;) await new Promise(resolve => setTimeout(resolve, 5))
      assert.equal(lm.context.cells(sequence), known + lead)
      // And no further until a step asks.
      await new Promise(resolve => setTimeout(resolve, 50))
      assert.equal(lm.context.cells(sequence), known + lead)
      assert.equal(greedy.cache.length, known, 'the cache counts only the tokens the caller gave')
      for (let step = 1; step < 4; step++) {
        greedy = await lm.forwardGreedy([[tokens[step - 1]]], [true], greedy.cache)
        tokens.push(greedy.next[0] as number)
      }
      let withLogits = await lm.forward([[tokens[3]]], greedy.cache)
      for (let step = 4; step < 8; step++) {
        tokens.push(argmax(withLogits.logits[0]))
        withLogits = await lm.forward([[tokens[step]]], withLogits.cache)
      }
      assert.deepEqual(tokens, expected)
      assert.equal(lm.context.cells(sequence), prompt.length + 8)
      lm.free(withLogits.cache)
    } finally {
      await lm.release()
    }
  })

  it('computes the tokens of every greedy row ahead together: one llama.cpp batch a step', async () => {
    const lm = await loadGguf(dir, { sequences: 8 })
    try {
      const prompts = [...PROMPTS, 'Once upon a time'].map(p => lm.codec.encode(p))
      const before = lm.context.evaluated()
      let step = await lm.forwardGreedy(prompts, prompts.map(() => true))
      for (let n = 1; n <= 6; n++) step = await lm.forwardGreedy(step.next.map(token => [token as number]), prompts.map(() => true), step.cache)
      // Every row asked in a step is let run as far ahead, so that they stay in the same batches.
      const leads = step.cache.rows.map(s => s.until - s.tokens.length)
      assert.ok(leads.every(lead => lead === leads[0] && lead >= AHEAD_MIN && lead <= AHEAD_MAX), `leads ${leads.join(' ')}`)
      const lead = leads[0]
      // What the last step let it compute ahead, bounded in time.
      const prompted = prompts.reduce((n, p) => n + p.length, 0)
      for (const deadline = Date.now() + 10_000; lm.context.evaluated().decodes - before.decodes < 1 + 6 + lead && Date.now() < deadline;) await new Promise(resolve => setTimeout(resolve, 5))
      const after = lm.context.evaluated()
      assert.equal(after.decodes - before.decodes, 1 + 6 + lead, 'the prompts, then one batch a token')
      assert.equal(after.tokens - before.tokens, prompted + prompts.length * (6 + lead), 'every batch held every row')
      lm.free(step.cache)
    } finally {
      await lm.release()
    }
  })

  it('does not compute ahead past the token that ends a request at its length', async () => {
    const lm = await loadGguf(dir, { sequences: 2 })
    try {
      const warm = await lm.forward([lm.codec.encode('Warm up')])
      lm.free(warm.cache)
      const before = lm.context.evaluated().decodes
      const batcher = new Batcher(lm, { prefixCacheBytes: 0 })
      const { stats } = await collect(batcher.generate({ prompt: lm.codec.encode(PROMPTS[1]), sampling: GREEDY, maxTokens: 8, stop: [] }))
      assert.equal(stats.tokens.length, 8)
      // Anything computed ahead would show within a few decodes' time.
      await new Promise(resolve => setTimeout(resolve, 50))
      // The prompt, then each token but the last.
      assert.equal(lm.context.evaluated().decodes - before, 8)
    } finally {
      await lm.release()
    }
  })

  /**
   * Runs `requests` together on a fresh model of `sequences`, twice: the
   * first run tells the thread how long its steps take; the second's
   * decodes, messages of tokens computed ahead, and tokens are counted.
   */
  async function twice (sequences: number, requests: (lm: GgufLM) => GenerateRequest[]): Promise<{ steps: number, sends: number, tokens: number, stepUs: number }> {
    const lm = await loadGguf(dir, { sequences })
    try {
      const batcher = new Batcher(lm, { prefixCacheBytes: 0 })
      const all = requests(lm)
      await Promise.all(all.map(async r => collect(batcher.generate(r))))
      const before = lm.context.evaluated()
      const done = await Promise.all(all.map(async r => collect(batcher.generate(r))))
      const after = lm.context.evaluated()
      return { steps: after.decodes - before.decodes, sends: after.sends - before.sends, tokens: done.reduce((n, d) => n + d.stats.tokens.length, 0), stepUs: after.stepUs }
    } finally {
      await lm.release()
    }
  }

  it('sends the tokens a fast model computes ahead several to a message', async (t) => {
    const { sends, tokens, stepUs } = await twice(2, lm => [{ prompt: lm.codec.encode(PROMPTS[0]), sampling: GREEDY, maxTokens: 48, stop: [] }])
    // The first token answers the prompt's decode; the others were computed ahead.
    assert.ok(sends >= 1 && sends <= tokens - 1, `${sends} sends`)
    // Two steps or more in HOLD_MS: two tokens or more a message. A machine too loaded for that sends each token as it comes, rightly.
    if (stepUs * 2 >= HOLD_MS * 1000) t.diagnostic(`steps of ${stepUs} us: holding not checked`)
    else assert.ok(sends * 2 <= tokens - 1, `${sends} sends for ${tokens - 1} tokens at ${stepUs} us a step`)
  })

  it('sends each step\'s tokens at once when a step takes as long as the thread would hold them', async (t) => {
    // Sixteen rows a step: steps of several ms on the default model, as a large model's step of one row.
    const { steps, sends, stepUs } = await twice(16, lm => Array.from({ length: 16 }, (_, i) => ({ prompt: lm.codec.encode(`${PROMPTS[i % PROMPTS.length]} ${i}`), sampling: GREEDY, maxTokens: 24, stop: [] })))
    if (stepUs < HOLD_MS * 1000) t.diagnostic(`steps of ${stepUs} us: not long enough to check`)
    // Every step past the prompts' computes ahead; a message of its own for each, give or take one the rows joined late.
    else assert.ok(sends >= steps - 3, `${sends} sends for ${steps} decodes at ${stepUs} us a step`)
  })

  it('fails the rows of a batch llama.cpp refuses, and then serves their sequences again from empty', async () => {
    const lm = await loadGguf(dir, { sequences: 2 })
    try {
      const [t0, t1] = lm.codec.encode(PROMPTS[1])
      const alone = await lm.forwardGreedy([[t0]], [true])
      lm.free(alone.cache)
      // A token past the vocabulary: llama.cpp refuses the batch, the row that reused the first sequence's cells with it.
      await assert.rejects(lm.forwardGreedy([[t0, t1], [t1, lm.context.vocabSize + 5]], [true, false]), { name: 'LlamaThreadError' })
      // Both sequences lost what they held: the first serves its prompt again, from empty.
      const again = await lm.forwardGreedy([[t0]], [true])
      assert.deepEqual(again.next, alone.next)
      lm.free(again.cache)
    } finally {
      await lm.release()
    }
  })

  it('stops loading when the load\'s signal aborts', async () => {
    const header = await readGgufHeader(dir)
    // Loaded once, so that llama.cpp is found: the next load goes to its thread at once, which the abort then meets.
    await (await loadGguf(dir, { sequences: 1 }, header)).release()
    const controller = new AbortController()
    const loading = loadGguf(dir, { sequences: 2, signal: controller.signal }, header)
    setImmediate(() => { controller.abort(new Error('no longer wanted')) })
    // Loaded all the same, it is released, so that the failure leaves no thread behind.
    await assert.rejects(loading.then(async lm => { await lm.release() }), { message: 'no longer wanted' })
  })

  it('sends nothing to llama.cpp\'s thread once its model is released: a row freed after does not touch the freed context', async () => {
    const lm = await loadGguf(dir, { sequences: 2 })
    const step = await lm.forwardGreedy([lm.codec.encode(PROMPTS[1])], [true])
    const released = lm.release()
    // The row, computed ahead, would be erased: after the release, in a freed context.
    lm.free(step.cache)
    await released
    // The thread is gone and the process still here.
    await assert.rejects(lm.forward([[1]]), { name: 'LlamaThreadError' })
  })

  it('lets llama.cpp pick the tokens of plain greedy requests, and not of those that ask for logprobs', async () => {
    const lm = await loadGguf(dir, { sequences: 4 })
    const calls = { forward: 0, forwardGreedy: 0 }
    const counted: Decoder<GgufCache> = {
      kind: lm.kind,
      codec: lm.codec,
      info: lm.info,
      forward: async (...args) => { calls.forward++; return lm.forward(...args) },
      forwardGreedy: async (...args) => { calls.forwardGreedy++; return lm.forwardGreedy(...args) },
      regroup: parts => lm.regroup(parts),
      cacheBytes: () => lm.cacheBytes(),
      free: cache => { lm.free(cache) },
      release: async () => {}
    }
    try {
      const batcher = new Batcher(counted, { prefixCacheBytes: 0 })
      const prompt = lm.codec.encode(PROMPTS[0])
      const plain = await collect(batcher.generate({ prompt, sampling: GREEDY, maxTokens: 16, stop: [] }))
      assert.deepEqual(calls, { forward: 1, forwardGreedy: plain.stats.tokens.length - 1 })
      const withLogprobs = await collect(batcher.generate({ prompt, sampling: GREEDY, maxTokens: 16, stop: [], logprobs: 0 }))
      assert.equal(calls.forwardGreedy, plain.stats.tokens.length - 1)
      assert.equal(calls.forward, 1 + withLogprobs.stats.tokens.length)
      assert.equal(withLogprobs.stats.text, plain.stats.text)
      assert.equal(plain.stats.text, (await greedy(onnx, PROMPTS[0], 16)).text)
    } finally {
      await lm.release()
    }
  })

  it('maps the file\'s weights in place rather than reading them into the heap', async () => {
    await greedy(gguf(), 'Call me', 1)
    const file = join(dir, 'model.gguf')
    // llama.cpp unmaps what lies before the first tensor and after the last: the metadata, here the tokenizer's tens of kB.
    const { size } = await stat(file)
    assert.ok(await mappedBytes(file) >= size * 0.9, `${await mappedBytes(file)} bytes of the ${size} of model.gguf mapped`)
  })

  it('unloads at the end of its keep-alive', async () => {
    const { events } = await runtime.generate(gguf(), { prompt: 'Call me', raw: true }, { sampling: GREEDY, maxTokens: 2, stop: [] }, { keepAliveMs: 0 })
    await collect(events)
    const deadline = Date.now() + 5000
    while (runtime.loaded().some(m => m.key === 'gguf') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(runtime.loaded().some(m => m.key === 'gguf'), false)
  })
})

describe('a GGUF model\'s llama.cpp threads', () => {
  it('leaves a core to the event loop for a large model, takes one for a small one, and any number asked for', () => {
    const large = SMALL_MODEL_BYTES + 1
    assert.equal(ggufContextOptions(large, 4096, { mathCores: 64 }).threads, Math.max(1, availableParallelism() - 1))
    assert.equal(ggufContextOptions(large, 4096, { mathCores: 1 }).threads, 1)
    assert.equal(ggufContextOptions(SMALL_MODEL_BYTES - 1, 4096, { mathCores: 64 }).threads, 1)
    assert.equal(ggufContextOptions(large, 4096, { mathCores: 64, threads: 3 }).threads, 3)
  })
})
