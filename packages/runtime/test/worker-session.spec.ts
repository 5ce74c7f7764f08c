import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { Tensor } from 'onnxruntime-node'
import { loadModel } from '../src/model.ts'
import { GPT, withTinyRuntime, writeSlowDecoder } from './helpers/tiny-models.ts'
import { Batcher } from '../src/batcher.ts'
import { bareGreedy } from './helpers/bare-greedy.ts'
import type { Decoder } from '../src/decoder.ts'
import type { BatchCache, CausalLM } from '../src/model.ts'

/**
 * A step on a cache against the whole sequence run again: the sums differ in
 * order, by a few millionths (4.5e-6 at most over 99 lengths of the tiny
 * decoder). Compared rounded to 3 decimals instead, about one length in four
 * put some logit on either side of a rounding boundary.
 */
function assertSameLogits (actual: Float32Array, expected: Float32Array): void {
  assert.equal(actual.length, expected.length)
  const difference = actual.reduce((max, x, i) => Math.max(max, Math.abs(x - expected[i])), 0)
  assert.ok(difference < 1e-4, `logits differ by up to ${difference}`)
}

describe('a model in a worker thread', () => {
  const tiny = withTinyRuntime()
  const decoder = (): { key: string, name: string, dir: string } => ({ key: 'decoder', name: 'tiny', dir: tiny.models.decoder })

  it('keeps the event loop turning while a step runs', async () => {
    const model = await loadModel(await writeSlowDecoder(tiny.models, join(tiny.models.root, 'slow'), 1024, 8)) as CausalLM
    try {
      let ticks = 0
      const timer = setInterval(() => { ticks++ }, 5)
      const t0 = performance.now()
      await model.forward([[1, 2, 3]])
      const ms = performance.now() - t0
      clearInterval(timer)
      // On the main thread, the step would let no timer fire.
      assert.ok(ticks >= ms / 5 / 4, `${ticks} ticks of 5 ms in a step of ${ms.toFixed(0)} ms`)
    } finally {
      await model.release()
    }
  })

  it('moves the KV cache to the worker and back, and the fresh feeds there, with no copy', async () => {
    const model = await loadModel(tiny.models.decoder) as CausalLM
    try {
      const first = await model.forward([[1, 2, 3]])
      const ids = new BigInt64Array([1n])
      await model.session.run({ input_ids: new Tensor('int64', ids, [1, 1]) }).catch(() => {})
      assert.equal(ids.buffer.detached, true, 'a feed is moved, not copied')
      const kv = first.cache.kv[0].data as Float32Array
      const second = await model.forward([[4]], first.cache)
      assert.equal((kv.buffer as ArrayBuffer).detached, true, 'the cache went to the worker')
      const third = await model.forward([[5]], second.cache)
      assert.equal(third.cache.length, 5)
      // The cache came back from the worker and grew in place: the next step reads what this one wrote.
      const reference = await model.forward([[1, 2, 3, 4, 5]])
      assertSameLogits(third.logits[0], reference.logits[0])
    } finally {
      await model.release()
    }
  })

  it('moves a model whose first steps are short to the main thread, where the cache stays and grows', async () => {
    const model = await loadModel(tiny.models.decoder) as CausalLM
    try {
      let { cache } = await model.forward([[1, 2, 3]])
      let tokens = [1, 2, 3]
      let moved = false
      // Steps are measured in blocks of 8, and a loaded machine makes some blocks slow: sequences of 100 steps, for at most 20 s.
      const deadline = Date.now() + 20_000
      for (let step = 0; step < 3000 && !moved && Date.now() < deadline; step++) {
        if (step % 100 === 99) {
          tokens = [1, 2, 3]
          cache = (await model.forward([tokens])).cache
        }
        const kv = cache.kv[0].data as Float32Array
        tokens.push(4 + step % 50)
        cache = (await model.forward([[tokens.at(-1) as number]], cache)).cache
        moved = !(kv.buffer as ArrayBuffer).detached
      }
      assert.ok(moved, 'the cache was still moving to the worker after 20 s of steps')
      tokens.push(7)
      const last = await model.forward([[7]], cache)
      const reference = await model.forward([tokens])
      assertSameLogits(last.logits[0], reference.logits[0])
    } finally {
      await model.release()
    }
    await assert.rejects(model.forward([[1]]), { name: 'ModelWorkerError', message: /unloaded/ })
  })

  it('streams a step\'s tokens while the next step runs, and gives the tokens it gives without that', async () => {
    const model = await loadModel(tiny.models.decoder) as CausalLM
    try {
      const streamed: number[] = []
      // How many of a row's tokens were streamed when each decoding step began, and when it ended.
      const atStart: number[] = []
      const atEnd: number[] = []
      const watched: Decoder<BatchCache> = {
        kind: model.kind,
        codec: model.codec,
        info: model.info,
        forward: async (rows, cache) => {
          if (cache == null) return model.forward(rows)
          atStart.push(streamed.length)
          const out = await model.forward(rows, cache)
          atEnd.push(streamed.length)
          return out
        },
        regroup: parts => model.regroup(parts),
        cacheBytes: (rows, positions) => model.cacheBytes(rows, positions),
        release: async () => {}
      }
      const prompt = [1, 2, 3]
      const events = new Batcher(watched, { prefixCacheBytes: 0 }).generate({ prompt, sampling: { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }, maxTokens: 12, stop: [] })
      let tokens: number[] = []
      for await (const event of events) {
        if (event.type === 'chunk') streamed.push(event.chunk.token)
        else tokens = event.stats.tokens
      }
      assert.deepEqual(tokens, await bareGreedy(tiny.models.decoder, prompt, 12, model.codec.stopIds))
      // The first token comes from the prefill and feeds the first step; each step's token is streamed only once the next step began, and before it ended.
      assert.deepEqual(atStart, [1, ...Array.from({ length: 10 }, (_, i) => i + 1)])
      atEnd.forEach((n, i) => { assert.ok(n >= i + 1, `${n} tokens streamed by the end of step ${i + 1}`) })
    } finally {
      await model.release()
    }
  })

  it('keeps a model whose steps are long in the worker', async () => {
    const model = await loadModel(await writeSlowDecoder(tiny.models, join(tiny.models.root, 'slowish'), 1024, 1)) as CausalLM
    try {
      let { cache } = await model.forward([[1, 2, 3]])
      for (let step = 0; step < 12; step++) cache = (await model.forward([[4]], cache)).cache
      // Were the model to move, it would have by now (the fast one above moves within a few steps of the 8 measured).
      await new Promise(resolve => setTimeout(resolve, 500))
      const kv = cache.kv[0].data as Float32Array
      await model.forward([[5]], cache)
      assert.equal((kv.buffer as ArrayBuffer).detached, true, 'the cache still goes to the worker')
    } finally {
      await model.release()
    }
  })

  it('rejects a run with onnxruntime\'s error and goes on running', async () => {
    const model = await loadModel(tiny.models.decoder) as CausalLM
    try {
      await assert.rejects(model.session.run({ input_ids: new Tensor('int64', new BigInt64Array(1), [1, 1]) }), /input/i)
      const { logits } = await model.forward([[1, 2]])
      assert.equal(logits[0].length, GPT.vocabSize)
    } finally {
      await model.release()
    }
  })

  it('fails a run in flight when the worker ends, with ModelWorkerError', async () => {
    const model = await loadModel(await writeSlowDecoder(tiny.models, join(tiny.models.root, 'slower'), 1024, 8)) as CausalLM
    const step = assert.rejects(model.forward([[1, 2, 3]]), { name: 'ModelWorkerError', message: /unloaded/ })
    await model.release()
    await step
    await assert.rejects(model.forward([[1]]), { name: 'ModelWorkerError' })
  })

  it('loads a model again after its worker went away', async () => {
    const lease = await tiny.runtime.acquire(decoder())
    await (lease.model as CausalLM).session.release()
    lease.release()
    const again = await tiny.runtime.acquire(decoder())
    try {
      assert.notEqual(again.model, lease.model)
      assert.ok(again.loadNs > 0, 'loaded anew')
      const { logits } = await (again.model as CausalLM).forward([[1, 2]])
      assert.equal(logits[0].length, GPT.vocabSize)
    } finally {
      again.release()
    }
  })

  it('refuses a broken model.onnx in the worker with InvalidModelError', async () => {
    const dir = join(tiny.models.root, 'slower')
    await writeFile(join(dir, 'model.onnx'), 'not a model')
    await assert.rejects(loadModel(dir), { name: 'InvalidModelError', message: /^model\.onnx: / })
  })
})
