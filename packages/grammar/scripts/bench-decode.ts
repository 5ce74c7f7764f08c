/**
 * Tokens/s of the default tiny model decoding unconstrained and constrained
 * (a JSON Schema and free-form JSON), sampling at temperature 1, one
 * sequence. Run: node packages/grammar/scripts/bench-decode.ts
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { assetDir, DEFAULT_MODELS } from '@node-daemon/models'
import { CausalLM, loadModel } from '@node-daemon/runtime'
import { compileGrammar, vocabularyFromTokenizer } from '../src/index.ts'
import type { GrammarSpec } from '../src/index.ts'

const dir = assetDir(DEFAULT_MODELS.generate)
const loaded = await loadModel(dir)
if (!(loaded instanceof CausalLM)) throw new Error('not a causal LM')
const model: CausalLM = loaded
const vocab = vocabularyFromTokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), [0, 2])
const STEPS = 120

let x = 99
const rnd = (): number => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 4294967296 }
function sample (logits: Float32Array): number {
  let max = -Infinity
  for (const l of logits) if (l > max) max = l
  let total = 0
  for (const l of logits) total += Math.exp(l - max)
  let r = rnd() * total
  for (let j = 0; j < logits.length; j++) { r -= Math.exp(logits[j] - max); if (r <= 0) return j }
  return logits.length - 1
}

/** Decodes up to `steps` tokens (constrained: until the output is finished); returns the tokens and the time spent. */
async function run (steps: number, spec?: GrammarSpec): Promise<{ tokens: number, ms: number, text: string, valid: boolean }> {
  const matcher = spec == null ? null : compileGrammar(spec, vocab).matcher()
  let { logits, cache } = await model.forward([[1, 300, 301]])
  const ids: number[] = []
  const t = performance.now()
  for (let i = 0; i < steps; i++) {
    const l = logits[0]
    matcher?.mask(l, steps - i)
    const token = sample(l)
    matcher?.accept(token)
    if (vocab.eos.includes(token) && matcher != null) break
    ids.push(token)
    if (matcher?.finished === true) break
    ;({ logits, cache } = await model.forward([[token]], cache))
  }
  const ms = performance.now() - t
  const text = new TextDecoder().decode(Buffer.concat(ids.map(id => vocab.tokens[id])))
  let valid = true
  if (spec != null) { try { JSON.parse(text) } catch { valid = false } }
  return { tokens: ids.length, ms, text, valid }
}

const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 }, tags: { type: 'array', items: { type: 'string' } } }, required: ['name', 'age', 'tags'] }
// each constrained run against an unconstrained run of the same length (a forward pass costs more as the sequence grows)
for (const [label, spec] of [['schema', { type: 'json-schema', schema }], ['json', { type: 'json' }]] as Array<[string, GrammarSpec]>) {
  let c = { tokens: 0, ms: 0 }
  let u = { tokens: 0, ms: 0 }
  let valid = true
  for (let round = 0; round < 8; round++) {
    const constrained = await run(STEPS, spec)
    const free = await run(constrained.tokens)
    valid &&= constrained.valid
    c = { tokens: c.tokens + constrained.tokens, ms: c.ms + constrained.ms }
    u = { tokens: u.tokens + free.tokens, ms: u.ms + free.ms }
  }
  const ct = c.tokens / c.ms * 1000
  const ut = u.tokens / u.ms * 1000
  console.log(`${label}: constrained ${ct.toFixed(0)} tok/s, unconstrained ${ut.toFixed(0)} tok/s over the same lengths (${c.tokens} tokens): ${(ct / ut).toFixed(2)}x; all outputs parse: ${valid}`)
}
