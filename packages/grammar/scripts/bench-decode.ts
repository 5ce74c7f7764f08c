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

async function run (spec?: GrammarSpec): Promise<{ tps: number, text: string, valid: boolean }> {
  const matcher = spec == null ? null : compileGrammar(spec, vocab).matcher()
  let { logits, cache } = await model.forward([[1, 300, 301]])
  const ids: number[] = []
  const t = performance.now()
  for (let i = 0; i < STEPS; i++) {
    const l = logits[0]
    matcher?.mask(l, STEPS - i)
    const token = sample(l)
    matcher?.accept(token)
    if (vocab.eos.includes(token) && matcher != null) break
    ids.push(token)
    if (matcher?.finished === true) break
    ;({ logits, cache } = await model.forward([[token]], cache))
  }
  const tps = ids.length / ((performance.now() - t) / 1000)
  const text = new TextDecoder().decode(Buffer.concat(ids.map(id => vocab.tokens[id])))
  let valid = true
  if (spec != null) { try { JSON.parse(text) } catch { valid = false } }
  return { tps, text, valid }
}

const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 }, tags: { type: 'array', items: { type: 'string' } } }, required: ['name', 'age', 'tags'] }
for (let round = 0; round < 2; round++) {
  const free = await run()
  const constrained = await run({ type: 'json-schema', schema })
  const json = await run({ type: 'json' })
  console.log(`round ${round}: unconstrained ${free.tps.toFixed(0)} tok/s; schema ${constrained.tps.toFixed(0)} tok/s (${(constrained.tps / free.tps).toFixed(2)}x, valid ${constrained.valid}); json ${json.tps.toFixed(0)} tok/s (${(json.tps / free.tps).toFixed(2)}x, valid ${json.valid})`)
  if (round === 1) console.log(constrained.text.slice(0, 200))
}
