/** Shared by the grammar tests: the default model's vocabulary, a seeded random "model" that samples after masking, and ajv. */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { assetDir, DEFAULT_MODELS } from '@node-daemon/models'
import { vocabularyFromTokenizer } from '../src/index.ts'
import type { CompiledGrammar, Vocabulary } from '../src/index.ts'

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020

let defaultVocab: Vocabulary | undefined
/** The default generation model's byte-level BPE vocabulary (2048 tokens), <|endoftext|> and <|im_end|> ending generation. */
export function defaultVocabulary (): Vocabulary {
  if (defaultVocab == null) {
    const json = JSON.parse(readFileSync(join(assetDir(DEFAULT_MODELS.generate), 'tokenizer.json'), 'utf8'))
    defaultVocab = vocabularyFromTokenizer(json, [0, 2])
  }
  return defaultVocab
}

export function newAjv (): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: false })
  addFormats(ajv)
  return ajv
}

/** xorshift32 in [0, 1). */
export function random (seed: number): () => number {
  let x = (seed | 0) || 1
  return () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    return (x >>> 0) / 4294967296
  }
}

export interface Generation { text: string, tokens: number[], complete: boolean, steps: number }

/**
 * Generates with random logits (scale `spread`, sampled at temperature 1
 * after masking) until EOS, `finished`, or the budget is spent; tokens from
 * id `favourFrom` on get a head start.
 */
export function generate (grammar: CompiledGrammar, seed: number, budget: number, spread = 4, favourFrom?: number): Generation {
  const vocab = grammar.vocab
  const rnd = random(seed)
  const m = grammar.matcher()
  const tokens: number[] = []
  const logits = new Float32Array(vocab.tokens.length)
  let steps = 0
  for (let used = 0; used < budget && !m.finished; used++) {
    for (let j = 0; j < logits.length; j++) logits[j] = rnd() * spread + (favourFrom != null && j >= favourFrom ? 5 : 0)
    m.mask(logits, budget - used)
    steps++
    const token = sample(logits, rnd)
    m.accept(token)
    if (vocab.eos.includes(token)) break
    tokens.push(token)
  }
  const text = new TextDecoder().decode(concat(tokens.map(t => vocab.tokens[t])))
  return { text, tokens, complete: m.complete, steps }
}

export function sample (logits: Float32Array, rnd: () => number): number {
  let max = -Infinity
  for (const l of logits) if (l > max) max = l
  if (max === -Infinity) throw new Error('every token is masked')
  let total = 0
  for (const l of logits) if (l > -Infinity) total += Math.exp(l - max)
  let r = rnd() * total
  let last = -1
  for (let j = 0; j < logits.length; j++) {
    if (logits[j] === -Infinity) continue
    last = j
    r -= Math.exp(logits[j] - max)
    if (r <= 0) return j
  }
  return last
}

export function concat (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

let bytes: Vocabulary | undefined
/** One token per byte (ids 0..255) and EOS (256): the automaton's language, byte by byte. */
export function byteVocabulary (): Vocabulary {
  bytes ??= { tokens: [...Array.from({ length: 256 }, (_, i) => Uint8Array.of(i)), new Uint8Array(0)], eos: [256] }
  return bytes
}
