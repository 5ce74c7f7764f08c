import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadModel } from '../src/model.ts'
import { PrefixCache } from '../src/prefix-cache.ts'
import { Runtime } from '../src/runtime.ts'
import { collect } from './helpers/collect.ts'
import { FAMILIES, writeFamilyModel } from './helpers/family-models.ts'
import { tinyModels } from './helpers/tiny-models.ts'
import type { CausalLM } from '../src/model.ts'
import type { ChatMessage } from '../src/text.ts'
import type { TinyModels } from './helpers/tiny-models.ts'

describe('PrefixCache', () => {
  let models: TinyModels
  let model: CausalLM

  before(async () => {
    models = await tinyModels()
    model = await loadModel(models.decoder) as CausalLM
  })
  after(async () => {
    await model.release()
    await rm(models.root, { recursive: true, force: true })
  })

  const sequence = (start: number, length: number): number[] => Array.from({ length }, (_, i) => (start + i * 7) % 300)

  it('finds the longest shared prefix, leaves the last prompt token to run, and hands out copies', async () => {
    const prefixes = new PrefixCache(model, 1 << 30)
    const tokens = sequence(1, 20)
    const { cache } = await model.forward([tokens])
    prefixes.store(tokens, cache, 0)
    assert.equal(prefixes.take(sequence(2, 20)), undefined, 'nothing shared')
    assert.equal(prefixes.take(tokens.slice(0, 5)), undefined, 'shorter than worth copying')
    const same = prefixes.take(tokens)
    assert.equal(same?.length, 19, 'the last token still runs')
    const longer = prefixes.take([...tokens.slice(0, 12), 299, 298])
    assert.equal(longer?.length, 12)
    assert.equal(longer?.cache.length, 12)
    assert.notEqual(longer?.cache.kv[0], cache.kv[0])
  })

  it('runs a prompt\'s rest on a cache whose room reaches the end of the context, to the logits of the whole prompt run at once', async () => {
    const tokens = sequence(3, 509)
    const first = await model.forward([tokens.slice(0, 505)])
    const { cache } = await model.forward([[tokens[505]]], first.cache)
    // The room fed with three more tokens would outrun the context: the cache moves to buffers without room first.
    assert.ok(cache.capacity + 3 > model.info.contextLength, `capacity ${cache.capacity} of ${model.info.contextLength}`)
    const rest = await model.forward([tokens.slice(506)], cache)
    const whole = await model.forward([tokens])
    assert.equal(rest.cache.length, 509)
    const want = whole.logits[0]
    rest.logits[0].forEach((x, i) => { assert.ok(Math.abs(x - want[i]) < 1e-4, `logit ${i}: ${x} against ${want[i]}`) })
  })

  it('keeps its bytes under the bound, dropping the least recently used, and one entry per line of a chat', async () => {
    const rows = [sequence(1, 30), sequence(50, 30), sequence(100, 30)]
    const { cache } = await model.forward(rows)
    const one = model.cacheBytes(1, 30)
    const prefixes = new PrefixCache(model, 2 * one)
    prefixes.store(rows[0], cache, 0)
    prefixes.store(rows[1], cache, 1)
    assert.ok(prefixes.take(rows[0]) != null, 'the first is now the most recently used')
    prefixes.store(rows[2], cache, 2)
    assert.equal(prefixes.bytes, 2 * one)
    assert.ok(prefixes.take(rows[0]) != null)
    assert.equal(prefixes.take(rows[1]), undefined, 'the least recently used went')
    assert.ok(prefixes.take(rows[2]) != null)
    // A later turn supersedes the entry it extends, rather than sitting beside it.
    const extended = [...rows[2], 5, 6, 7, 8]
    const { cache: grown } = await model.forward([extended])
    prefixes.store(extended, grown, 0)
    assert.equal(prefixes.take(extended)?.length, 33)
    assert.equal(prefixes.bytes, model.cacheBytes(1, 34), 'the longer entry pushed out the older one to stay under the bound')
    assert.equal(prefixes.take(rows[0]), undefined)
  })
})

describe('the prefix cache in a chat longer than the context', () => {
  let root: string
  let runtime: Runtime

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'prefix-chat-'))
    await writeFamilyModel(join(root, 'llama3'), FAMILIES.find(f => f.name === 'llama3') as (typeof FAMILIES)[number])
    runtime = new Runtime()
    await runtime.start()
  })
  after(async () => {
    await runtime?.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('serves each turn of a Llama chat from the last, also once its oldest turns are dropped to fit', async () => {
    const ref = { key: 'llama3', name: 'llama3', dir: join(root, 'llama3') }
    const messages: ChatMessage[] = [{ role: 'system', content: 'You are Elizabeth Bennet, and you answer as she would, with wit.' }]
    const GREEDY = { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }
    const turns: Array<{ prompt: number[], cached: number, cut: boolean }> = []
    for (let t = 1; t <= 12; t++) {
      messages.push({ role: 'user', content: `Pray, what do you think of Mr. Darcy now, on day ${t} at Netherfield?` })
      const started = await runtime.generate(ref, { messages }, { sampling: GREEDY, maxTokens: 8, stop: [], numCtx: 256 })
      const { stats } = await collect(started.events)
      const before = turns.at(-1)
      turns.push({ prompt: started.prompt, cached: stats.cachedTokens, cut: before != null && started.prompt.length < before.prompt.length })
      messages.push({ role: 'assistant', content: stats.text })
    }
    const cuts = turns.filter(t => t.cut).length
    assert.ok(cuts >= 1, `the chat outgrew the context of 256: ${turns.map(t => t.prompt.length).join(', ')} prompt tokens`)
    // Every turn but those that lose more of the oldest takes the whole previous prompt from the cache.
    const missed = turns.slice(1).filter((t, i) => t.cached < turns[i].prompt.length)
    assert.ok(missed.length <= cuts, `${missed.length} turns missed, ${cuts} cut: prompts ${turns.map(t => t.prompt.length).join(', ')}, cached ${turns.map(t => t.cached).join(', ')}`)
    assert.ok(cuts < turns.length - turns.findIndex(t => t.cut), `every turn past the context cut more: ${turns.map(t => t.prompt.length).join(', ')} prompt tokens`)
  })
})
