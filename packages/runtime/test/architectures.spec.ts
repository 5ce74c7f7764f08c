import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { appendedKeyValues } from '@node-daemon/onnx'
import { Runtime } from '../src/runtime.ts'
import { CausalLM } from '../src/model.ts'
import { argmax } from '../src/sampling.ts'
import { bareGreedy } from './helpers/bare-greedy.ts'
import { FAMILIES, writeFamilyModel } from './helpers/family-models.ts'
import { withIdentities } from './helpers/tiny-models.ts'
import type { GenerationEvent, GenerationStats } from '../src/batcher.ts'
import type { SamplingOptions } from '../src/sampling.ts'
import type { ChatMessage } from '../src/text.ts'

const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repeatPenalty: 1, repeatLastN: 0 }

async function stats (events: AsyncIterable<GenerationEvent>): Promise<GenerationStats> {
  for await (const e of events) if (e.type === 'done') return e.stats
  throw new Error('the stream ended without done')
}

const CONVERSATIONS: ChatMessage[][] = [
  [{ role: 'user', content: 'It is a truth universally acknowledged' }],
  [{ role: 'user', content: 'Emma Woodhouse, handsome, clever, and rich?' }, { role: 'assistant', content: 'She was.' }, { role: 'user', content: 'Why?' }],
  [{ role: 'user', content: 'The' }]
]
const PROMPTS = ['It is a truth universally acknowledged', 'Emma Woodhouse, handsome, clever, and rich, with a comfortable home', 'The']

describe('decoder architectures, as their exporters write them', () => {
  let root: string
  let runtime: Runtime
  const dir = (name: string): string => join(root, name)
  const ref = (name: string): { key: string, name: string, dir: string } => ({ key: name, name, dir: dir(name) })

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'architectures-'))
    for (const family of FAMILIES) await writeFamilyModel(dir(family.name), family)
    runtime = new Runtime()
    await runtime.start()
  })
  after(async () => {
    await runtime?.stop()
    await rm(root, { recursive: true, force: true })
  })

  for (const family of FAMILIES) {
    it(`${family.name}, as ${family.mirrors}: greedy tokens with the KV cache, batched, equal a loop that recomputes the whole sequence`, async () => {
      const rewritable = family.transform !== withIdentities && family.config.gqa !== true
      assert.equal(appendedKeyValues(await readFile(join(dir(family.name), 'model.onnx'))) != null, rewritable, 'the in-place cache rewrite applies to the export, unless made not to or its attention is one op')
      const lease = await runtime.acquire(ref(family.name))
      const { codec } = lease.model
      assert.equal(lease.model.info.quantization, family.quantization ?? 'F32')
      const chat = codec.hasChatTemplate
      lease.release()
      // Past 32 tokens a cache with room outgrows it; past 12, Mistral's window slides.
      const runs = await Promise.all((chat ? CONVERSATIONS : PROMPTS).map(async input => {
        const started = await runtime.generate(ref(family.name), typeof input === 'string' ? { prompt: input, raw: true } : { messages: input }, { sampling: GREEDY, maxTokens: 40, stop: [] })
        return { prompt: started.prompt, stats: await stats(started.events) }
      }))
      for (const { prompt, stats } of runs) {
        assert.deepEqual(stats.tokens, await bareGreedy(dir(family.name), prompt, 40, codec.stopIds))
      }
      assert.ok(runs.some(r => r.stats.tokens.length > 20), `some generation runs long: ${runs.map(r => r.stats.tokens.length).join(', ')} tokens`)
      assert.ok(runs.some(r => new Set(r.stats.tokens).size > 3), `the model writes more than a token or two over and over: ${JSON.stringify(runs.map(r => r.stats.tokens))}`)
    })
  }

  it('grows the cache of sliding-window models and of graphs without position_ids in place, not copied at each token, with the reference\'s tokens', async () => {
    for (const name of ['mistral', 'gemma2', 'gemma3', 'no-position-ids']) {
      const lease = await runtime.acquire(ref(name))
      try {
        const model = lease.model
        assert.ok(model instanceof CausalLM)
        const prompt = model.codec.encode(PROMPTS[1])
        let { logits, cache } = await model.forward([prompt])
        const tokens: number[] = []
        let moves = 0
        for (let s = 0; s < 40; s++) {
          const next = argmax(logits[0])
          tokens.push(next)
          const capacity = cache.capacity
          ;({ logits, cache } = await model.forward([[next]], cache))
          // The capacity changes only when the cache moves to larger buffers (withCapacity): once per many tokens.
          if (cache.capacity !== capacity) moves++
        }
        assert.ok(moves <= 3, `${name}: the cache moved ${moves} times in 40 tokens`)
        assert.deepEqual(tokens, await bareGreedy(dir(name), prompt, 40), name)
      } finally {
        lease.release()
      }
    }
  })

  it('gives a batch\'s regrouped cache its room at once, so that the next steps do not copy it again, with each row\'s tokens as alone', async () => {
    const lease = await runtime.acquire(ref('llama3'))
    try {
      const model = lease.model
      assert.ok(model instanceof CausalLM)
      const prompts = [PROMPTS[0], PROMPTS[1]].map(p => model.codec.encode(p))
      const alone: number[][] = []
      const parts = []
      for (const prompt of prompts) {
        let { logits, cache } = await model.forward([prompt])
        parts.push({ cache: model.regroup([{ cache, rows: [0] }]), rows: [0], first: argmax(logits[0]) })
        const tokens = [argmax(logits[0])]
        for (let s = 0; s < 6; s++) {
          ;({ logits, cache } = await model.forward([[tokens[s]]], cache))
          tokens.push(argmax(logits[0]))
        }
        alone.push(tokens)
      }
      let cache = model.regroup(parts, true)
      assert.ok(cache.capacity > cache.length, `room: ${cache.capacity} positions for ${cache.length}`)
      const capacity = cache.capacity
      const together = parts.map(p => [p.first])
      for (let s = 0; s < 6; s++) {
        let logits: Float32Array[]
        ;({ logits, cache } = await model.forward(together.map(t => [t[s]]), cache))
        logits.forEach((row, b) => together[b].push(argmax(row)))
      }
      assert.equal(cache.capacity, capacity, 'the cache did not move to larger buffers')
      assert.deepEqual(together, alone)
    } finally {
      lease.release()
    }
  })

  it('puts the bos token its tokenizer adds before a prompt, once, whether the chat template writes it or not', async () => {
    // Phi-3's post-processor adds <s>, but its tokenizer_config.json's add_bos_token is false.
    const expected: Record<string, string | undefined> = { llama3: '<|begin_of_text|>', llama2: '<s>', mistral: '<s>', gemma2: '<bos>', qwen2: undefined, phi3: undefined, smollm: undefined }
    for (const [name, bos] of Object.entries(expected)) {
      const lease = await runtime.acquire(ref(name))
      const { codec } = lease.model
      lease.release()
      const bosId = bos == null ? undefined : codec.encode(bos)[0]
      assert.equal(codec.bos, bosId, name)
      for (const input of [{ prompt: 'Hello there', raw: true }, ...(codec.hasChatTemplate ? [{ messages: CONVERSATIONS[1] }] : [])]) {
        const { prompt, events } = await runtime.generate(ref(name), input, { sampling: GREEDY, maxTokens: 1, stop: [] })
        await stats(events)
        if (bosId == null) {
          if ('raw' in input) assert.deepEqual(prompt, codec.encode('Hello there'), name)
          continue
        }
        assert.equal(prompt[0], bosId, `${name}: the prompt starts with ${bos}`)
        assert.equal(prompt.filter(id => id === bosId).length, 1, `${name}: one ${bos}`)
      }
    }
  })

  it('stops at any of the end-of-sequence ids of generation_config.json', async () => {
    const name = 'qwen2'
    const { prompt, events } = await runtime.generate(ref(name), { messages: CONVERSATIONS[0] }, { sampling: GREEDY, maxTokens: 40, stop: [] })
    const free = await stats(events)
    assert.ok(free.tokens.length > 6)
    // A token the model writes anyway, made one more end of sequence in a copy of the model.
    const at = free.tokens.findIndex((id, i) => i >= 3 && free.tokens.indexOf(id) === i)
    const copy = join(root, 'qwen2-more-eos')
    await writeFamilyModel(copy, FAMILIES.find(f => f.name === name) as (typeof FAMILIES)[number])
    const generation = JSON.parse(await readFile(join(copy, 'generation_config.json'), 'utf8'))
    await writeFile(join(copy, 'generation_config.json'), JSON.stringify({ ...generation, eos_token_id: [...generation.eos_token_id, free.tokens[at]] }))
    const cut = await runtime.generate({ key: 'qwen2-more-eos', name: 'qwen2-more-eos', dir: copy }, { tokens: prompt }, { sampling: GREEDY, maxTokens: 40, stop: [] })
    const stopped = await stats(cut.events)
    assert.deepEqual(stopped.tokens, free.tokens.slice(0, at))
    assert.equal(stopped.doneReason, 'stop')
  })
})
