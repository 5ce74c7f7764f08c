/**
 * Measures compile and mask costs on the default model's 2048-token
 * vocabulary and on a synthetic 100k-token one (substrings of the corpus,
 * with and without a leading space, plus the 256 bytes).
 * Run: node packages/grammar/scripts/measure.ts
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { assetDir, DEFAULT_MODELS, readCorpus } from '@node-daemon/models'
import { compileGrammar, vocabularyFromTokenizer } from '../src/index.ts'
import type { GrammarSpec, Vocabulary } from '../src/index.ts'

const enc = new TextEncoder()

async function synthetic (size: number): Promise<Vocabulary> {
  const text = (await readCorpus()).join('\n').slice(0, 5_000_000)
  const seen = new Set<string>()
  const tokens: Uint8Array[] = Array.from({ length: 256 }, (_, i) => Uint8Array.of(i))
  let x = 12345
  const rnd = (): number => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 4294967296 }
  while (tokens.length < size - 1) {
    const at = Math.floor(rnd() * (text.length - 12))
    const s = text.slice(at, at + 2 + Math.floor(rnd() * 9))
    if (seen.has(s)) continue
    seen.add(s)
    tokens.push(enc.encode(s))
  }
  tokens.push(new Uint8Array(0))
  return { tokens, eos: [tokens.length - 1] }
}

const SCHEMA = { type: 'object', properties: { name: { type: 'string', maxLength: 40 }, age: { type: 'integer', minimum: 0, maximum: 150 }, email: { type: 'string', format: 'email' }, tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, maxItems: 5 }, address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'string', pattern: '^[0-9]{5}$' } }, required: ['city'] } }, required: ['name', 'age'] }

function measure (label: string, vocab: Vocabulary): void {
  const results: string[] = []
  let t0 = performance.now()
  compileGrammar({ type: 'literal', text: 'x' }, vocab)
  results.push(`${label}: first compile on this vocabulary, building its token trie: ${(performance.now() - t0).toFixed(1)} ms`)
  for (const [name, spec] of [['schema', { type: 'json-schema', schema: SCHEMA }], ['json', { type: 'json' }]] as Array<[string, GrammarSpec]>) {
    let t = performance.now()
    const g = compileGrammar(spec, vocab)
    const compile = performance.now() - t
    const m = g.matcher()
    t = performance.now()
    m.tokenMask()
    const startMask = performance.now() - t
    // into a string: the state where nearly every token is allowed
    const bytes = name === 'schema' ? '{"name":"' : '{"k":"'
    for (const b of enc.encode(bytes)) m.accept(vocab.tokens.findIndex(tk => tk.length === 1 && tk[0] === b))
    t = performance.now()
    const mask = m.tokenMask()
    const stringMask = performance.now() - t
    const logits = new Float32Array(vocab.tokens.length)
    const n = 200
    t = performance.now()
    for (let i = 0; i < n; i++) { logits.fill(1); m.mask(logits) }
    const apply = (performance.now() - t) / n
    t = performance.now()
    for (let i = 0; i < n; i++) logits.fill(1)
    const fill = (performance.now() - t) / n
    results.push(`${label} ${name}: compile ${compile.toFixed(1)} ms (first token trie walk incl.: start-state mask ${startMask.toFixed(1)} ms), in-string mask ${stringMask.toFixed(1)} ms (${mask.count} allowed), cached mask applied ${(apply - fill).toFixed(3)} ms/step, states ${g.states}`)
  }
  // per-step overhead of the grammar (mask + accept) over whole generations, warm-up included
  const g = compileGrammar({ type: 'json-schema', schema: { ...SCHEMA, description: label } }, vocab)
  let x = 7
  const rnd = (): number => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 4294967296 }
  const logits = new Float32Array(vocab.tokens.length)
  let grammarTime = 0
  let tokens = 0
  for (let seq = 0; seq < 20; seq++) {
    const m = g.matcher()
    for (let used = 0; used < 150 && !m.finished; used++) {
      for (let j = 0; j < logits.length; j++) logits[j] = rnd() * 4
      t0 = performance.now()
      m.mask(logits, 150 - used)
      grammarTime += performance.now() - t0
      let best = 0
      for (let j = 1; j < logits.length; j++) if (logits[j] + rnd() * 2 > logits[best]) best = j
      t0 = performance.now()
      m.accept(best)
      grammarTime += performance.now() - t0
      tokens++
      if (vocab.eos.includes(best)) break
    }
  }
  results.push(`${label}: grammar overhead over 20 generations (${tokens} tokens, cold cache): ${(grammarTime / tokens).toFixed(3)} ms/token, ${g.states} states`)
  console.log(results.join('\n'))
}

const json = JSON.parse(readFileSync(join(assetDir(DEFAULT_MODELS.generate), 'tokenizer.json'), 'utf8'))
measure('2048-token default vocabulary', vocabularyFromTokenizer(json, [0, 2]))
const t = performance.now()
const big = await synthetic(100_000)
console.log(`(synthetic vocabulary built in ${(performance.now() - t).toFixed(0)} ms)`)
measure('100k-token synthetic vocabulary', big)
