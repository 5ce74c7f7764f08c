/**
 * Grammar specs compiled against a vocabulary, and the per-sequence matcher
 * that masks logits. Allowed tokens are computed per automaton state by
 * walking the vocabulary's trie through the DFA, once; after that a step is a
 * lookup plus applying the mask.
 */
import { Dfa, Nfa } from './automaton.ts'
import { alt, EMPTY, lit, opt, rep, seq } from './expr.ts'
import type { Expr } from './expr.ts'
import { UnsatisfiableGrammarError } from './errors.ts'
import { addJsonRules, JSON_RULE, OBJECT_RULE } from './json.ts'
import { SchemaCompiler } from './schema.ts'
import { tokenTrie } from './vocabulary.ts'
import type { TokenTrie, Vocabulary } from './vocabulary.ts'

export type GrammarSpec =
  /** Any JSON value (Ollama's format: "json"). */
  | { type: 'json' }
  /** Any JSON object (OpenAI's json_object). */
  | { type: 'json-object' }
  | { type: 'json-schema', schema: object }
  | { type: 'literal', text: string }
  | { type: 'sequence', parts: GrammarSpec[] }
  | { type: 'choice', options: GrammarSpec[] }
  | { type: 'repeat', item: GrammarSpec, separator?: string, min: number, max?: number }

/** The tokens allowed in one automaton state; cached, so the same state gives the same object. */
export class TokenMask {
  /** Allowed token ids, ascending, end-of-sequence tokens not included. */
  readonly allowed: Int32Array
  /** For each allowed token, the upper bound on tokens still needed after it. */
  readonly after: Float64Array
  readonly maxAfter: number
  readonly minAfter: number
  /** Whether end-of-sequence tokens are allowed: the output is complete. */
  readonly eos: boolean
  /** When fewer than the allowed: the ids to set to -Infinity (below the vocabulary size). */
  readonly denied: Int32Array | null
  /** Allow-lists under a tight budget, by threshold. */
  readonly tight = new Map<number, Int32Array>()

  constructor (allowed: Int32Array, after: Float64Array, eos: boolean, denied: Int32Array | null) {
    this.allowed = allowed
    this.after = after
    this.eos = eos
    this.denied = denied
    let max = 0
    let min = Infinity
    for (const a of after) { if (a > max) max = a; if (a < min) min = a }
    this.maxAfter = max
    this.minAfter = min
  }

  has (token: number): boolean {
    const a = this.allowed
    let lo = 0
    let hi = a.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (a[mid] === token) return true
      if (a[mid] < token) lo = mid + 1
      else hi = mid - 1
    }
    return false
  }
}

export class CompiledGrammar {
  readonly spec: GrammarSpec
  readonly vocab: Vocabulary
  /** Tokens needed at least, as an upper bound on the shortest output (every byte a single-byte token); Infinity when this vocabulary lacks the single-byte tokens for it. */
  readonly minTokens: number
  readonly dfa: Dfa
  private readonly trie: TokenTrie
  private readonly masks: Array<TokenMask | undefined> = []
  private readonly eosIds: Int32Array
  private readonly isEos: Uint8Array
  private readonly flags: Uint8Array
  private readonly ubs: Float64Array
  private scratch: Float32Array

  constructor (spec: GrammarSpec, vocab: Vocabulary) {
    this.spec = spec
    this.vocab = vocab
    const rules = new Map<string, Expr>()
    addJsonRules(rules)
    const expr = specExpr(spec, rules, { n: 0 })
    this.trie = tokenTrie(vocab)
    this.dfa = new Dfa(new Nfa(expr, rules), this.trie.singleByte)
    if (this.dfa.start < 0) throw new UnsatisfiableGrammarError('the grammar admits no output (within nesting depth 32)')
    this.minTokens = this.dfa.ub[this.dfa.start]
    const size = vocab.tokens.length
    this.eosIds = Int32Array.from(vocab.eos.filter(id => id >= 0 && id < size))
    this.isEos = new Uint8Array(size)
    for (const id of this.eosIds) this.isEos[id] = 1
    this.flags = new Uint8Array(size)
    this.ubs = new Float64Array(size)
    this.scratch = new Float32Array(64)
  }

  /** A matcher for one generated sequence, at the start. */
  matcher (): Matcher { return new Matcher(this) }

  /** Automaton states built so far. */
  get states (): number { return this.dfa.states }

  /** The allowed tokens in DFA state s (computed once per state). */
  maskOf (s: number): TokenMask {
    let mask = this.masks[s]
    if (mask == null) { mask = this.computeMask(s); this.masks[s] = mask }
    return mask
  }

  private computeMask (s: number): TokenMask {
    const { byte, depth, end, first, ids, size } = this.trie
    const dfa = this.dfa
    const st = new Int32Array(this.trie.maxDepth + 1)
    st[0] = s
    const flags = this.flags
    const ubs = this.ubs
    let count = 0
    for (let j = 1; j < size;) {
      const d = depth[j]
      const from = st[d - 1]
      let t = dfa.trans[from][byte[j]]
      if (t === -2) t = dfa.step(from, byte[j])
      if (t < 0) { j = end[j]; continue }
      st[d] = t
      for (let x = first[j]; x < first[j + 1]; x++) { flags[ids[x]] = 1; ubs[ids[x]] = dfa.ub[t]; count++ }
      j++
    }
    const allowed = new Int32Array(count)
    const after = new Float64Array(count)
    const vocabSize = flags.length
    let n = 0
    for (let id = 0; id < vocabSize; id++) {
      if (flags[id] === 1) { allowed[n] = id; after[n] = ubs[id]; n++ }
    }
    const eos = dfa.accept[s]
    let denied: Int32Array | null = null
    if (count > vocabSize / 2) {
      denied = new Int32Array(vocabSize - count - (eos ? this.eosIds.length : 0))
      let k = 0
      for (let id = 0; id < vocabSize; id++) if (flags[id] === 0 && !(eos && this.isEos[id] === 1)) denied[k++] = id
      denied = denied.subarray(0, k)
    }
    for (let i = 0; i < count; i++) flags[allowed[i]] = 0
    return new TokenMask(allowed, after, eos, denied)
  }

  /** Sets -Infinity on every logit whose token is not in the mask (or, under a tight budget, would not leave enough tokens to finish). */
  applyMask (logits: Float32Array, mask: TokenMask, budget?: number): void {
    if (mask.allowed.length === 0 && !mask.eos) throw new UnsatisfiableGrammarError('no token of this vocabulary can continue the output')
    if (budget != null && mask.maxAfter > budget - 1 && mask.allowed.length > 0) {
      let threshold = Math.max(budget - 1, 0)
      if (!mask.eos && mask.minAfter > threshold) threshold = mask.minAfter // the budget is already too small: head for the end anyway
      let list = mask.tight.get(threshold)
      if (list == null) {
        const out: number[] = []
        for (let i = 0; i < mask.allowed.length; i++) if (mask.after[i] <= threshold) out.push(mask.allowed[i])
        list = Int32Array.from(out)
        if (mask.tight.size < 64) mask.tight.set(threshold, list)
      }
      this.allowOnly(logits, list, mask.eos)
      return
    }
    if (mask.denied != null) {
      const denied = mask.denied
      for (let i = 0; i < denied.length; i++) logits[denied[i]] = -Infinity
      if (logits.length > this.flags.length) logits.fill(-Infinity, this.flags.length)
      return
    }
    this.allowOnly(logits, mask.allowed, mask.eos)
  }

  private allowOnly (logits: Float32Array, allowed: Int32Array, eos: boolean): void {
    const need = allowed.length + this.eosIds.length
    if (this.scratch.length < need) this.scratch = new Float32Array(need)
    const keep = this.scratch
    for (let i = 0; i < allowed.length; i++) keep[i] = logits[allowed[i]]
    const eosIds = this.eosIds
    if (eos) for (let i = 0; i < eosIds.length; i++) keep[allowed.length + i] = logits[eosIds[i]]
    logits.fill(-Infinity)
    for (let i = 0; i < allowed.length; i++) logits[allowed[i]] = keep[i]
    if (eos) for (let i = 0; i < eosIds.length; i++) logits[eosIds[i]] = keep[allowed.length + i]
  }
}

/** Follows one generated sequence: masks logits and advances on each sampled token. */
export class Matcher {
  readonly grammar: CompiledGrammar
  #state: number
  #ended = false

  constructor (grammar: CompiledGrammar) {
    this.grammar = grammar
    this.#state = grammar.dfa.start
  }

  /** The automaton state (ids are shared by all matchers of the grammar). */
  get state (): number { return this.#state }

  /** The output so far is a complete valid value (though it may still continue, e.g. a number). */
  get complete (): boolean { return this.#ended || this.grammar.dfa.accept[this.#state] }

  /** Complete, and nothing more may follow: generation must stop. */
  get finished (): boolean {
    if (this.#ended) return true
    if (!this.grammar.dfa.accept[this.#state]) return false
    return !this.grammar.dfa.canContinue(this.#state) || this.grammar.maskOf(this.#state).allowed.length === 0
  }

  /** The cached allowed-token set of the current state. */
  tokenMask (): TokenMask { return this.grammar.maskOf(this.#state) }

  /**
   * Sets -Infinity on every token not allowed now; end-of-sequence tokens only
   * where the output is complete. With `budget` (tokens still allowed), only
   * tokens after which the output can still be completed within it.
   */
  mask (logits: Float32Array, budget?: number): void {
    if (this.#ended) {
      const eos = this.grammar.vocab.eos
      const keep = eos.map(id => logits[id])
      logits.fill(-Infinity)
      eos.forEach((id, i) => { logits[id] = keep[i] })
      return
    }
    this.grammar.applyMask(logits, this.grammar.maskOf(this.#state), budget)
  }

  /** Advances by one token; throws if the token is not allowed here. */
  accept (token: number): void {
    const vocab = this.grammar.vocab
    if (this.#ended) throw new Error('the output has ended')
    if (vocab.eos.includes(token)) {
      if (!this.grammar.dfa.accept[this.#state]) throw new Error(`end of sequence (token ${token}) before the output is complete`)
      this.#ended = true
      return
    }
    const bytes = vocab.tokens[token]
    if (bytes == null || bytes.length === 0) throw new Error(`token ${token} is not allowed here`)
    const dfa = this.grammar.dfa
    let s = this.#state
    for (const b of bytes) {
      s = dfa.step(s, b)
      if (s < 0) throw new Error(`token ${token} is not allowed here`)
    }
    this.#state = s
  }
}

function specExpr (spec: GrammarSpec, rules: Map<string, Expr>, counter: { n: number }): Expr {
  switch (spec?.type) {
    case 'json': return { k: 'call', rule: JSON_RULE }
    case 'json-object': return { k: 'call', rule: OBJECT_RULE }
    case 'json-schema': return new SchemaCompiler(spec.schema, rules, `s${counter.n++}`).compileRoot()
    case 'literal': return lit(spec.text)
    case 'sequence': return seq(...spec.parts.map(p => specExpr(p, rules, counter)))
    case 'choice': return alt(...spec.options.map(p => specExpr(p, rules, counter)))
    case 'repeat': {
      const max = spec.max ?? Infinity
      if (!(spec.min >= 0) || !(max >= spec.min)) throw new RangeError('repeat: need 0 ≤ min ≤ max')
      if (max === 0) return EMPTY
      const item = specExpr(spec.item, rules, counter)
      const sep = spec.separator != null && spec.separator !== '' ? lit(spec.separator) : EMPTY
      const all = seq(item, rep(seq(sep, item), Math.max(0, spec.min - 1), max - 1))
      return spec.min === 0 ? opt(all) : all
    }
    default: throw new TypeError(`unknown grammar spec type ${JSON.stringify((spec as { type?: unknown })?.type)}`)
  }
}

/** JSON with sorted keys, except under "properties", whose order is the output's order. */
function canonical (x: unknown, keepOrder = false): string {
  if (Array.isArray(x)) return `[${x.map(y => canonical(y)).join(',')}]`
  if (x != null && typeof x === 'object') {
    const keys = keepOrder ? Object.keys(x) : Object.keys(x).sort()
    return `{${keys.map(k => `${JSON.stringify(k)}:${canonical((x as Record<string, unknown>)[k], k === 'properties')}`).join(',')}}`
  }
  return JSON.stringify(x) ?? 'null'
}

const CACHE_SIZE = 64
const cache = new WeakMap<Vocabulary, Map<string, CompiledGrammar>>()

/** Compiles a grammar for a vocabulary; the same spec (by canonical JSON) and the same Vocabulary object give the same CompiledGrammar (a bounded LRU per vocabulary). */
export function compileGrammar (spec: GrammarSpec, vocab: Vocabulary): CompiledGrammar {
  let byKey = cache.get(vocab)
  if (byKey == null) { byKey = new Map(); cache.set(vocab, byKey) }
  const key = canonical(spec)
  let compiled = byKey.get(key)
  if (compiled != null) {
    byKey.delete(key)
    byKey.set(key, compiled)
    return compiled
  }
  compiled = new CompiledGrammar(spec, vocab)
  byKey.set(key, compiled)
  if (byKey.size > CACHE_SIZE) byKey.delete(byKey.keys().next().value as string)
  return compiled
}
