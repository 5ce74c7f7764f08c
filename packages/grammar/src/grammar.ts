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

/**
 * The tokens allowed in one automaton state, as a bitset over token ids
 * (end-of-sequence tokens apart); cached, so the same state gives the same
 * object. 150k tokens take 19 KB.
 */
export class TokenMask {
  readonly bits: Uint32Array
  /** How many tokens are allowed (end-of-sequence tokens not counted). */
  readonly count: number
  /** Whether end-of-sequence tokens are allowed: the output is complete. */
  readonly eos: boolean
  /** Over the allowed tokens, the least and greatest upper bound on tokens still needed after one. */
  readonly minAfter: number
  readonly maxAfter: number
  /** The bound most allowed tokens share, and the tokens (with their bounds) that differ from it, for masking under a tight budget. */
  readonly base: number
  readonly exceptions: Int32Array
  readonly exceptionAfter: Float64Array
  /** The allowed ids, kept when they are few. */
  sparse: Int32Array | null = null

  constructor (bits: Uint32Array, count: number, eos: boolean, base: number, exceptions: Int32Array, exceptionAfter: Float64Array) {
    this.bits = bits
    this.count = count
    this.eos = eos
    this.base = base
    this.exceptions = exceptions
    this.exceptionAfter = exceptionAfter
    let min = count > exceptions.length ? base : Infinity
    let max = count > exceptions.length ? base : 0
    for (const a of exceptionAfter) { if (a < min) min = a; if (a > max) max = a }
    this.minAfter = min
    this.maxAfter = max
  }

  has (token: number): boolean {
    return token >= 0 && ((this.bits[token >>> 5] >>> (token & 31)) & 1) === 1
  }

  /** The allowed token ids, ascending (made on demand). */
  get allowed (): Int32Array {
    const out = new Int32Array(this.count)
    let n = 0
    for (let w = 0; w < this.bits.length; w++) {
      let word = this.bits[w]
      while (word !== 0) {
        const bit = 31 - Math.clz32(word & -word)
        out[n++] = w * 32 + bit
        word &= word - 1
      }
    }
    return out
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
  private readonly size: number
  private eosKeep: Float32Array
  private readonly scratchIds: Int32Array
  private readonly scratchAfter: Float64Array

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
    this.size = vocab.tokens.length
    this.eosIds = Int32Array.from(vocab.eos.filter(id => id >= 0 && id < this.size))
    this.eosKeep = new Float32Array(this.eosIds.length)
    this.scratchIds = new Int32Array(this.size)
    this.scratchAfter = new Float64Array(this.size)
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

  /** Walks the vocabulary's trie through the automaton from state s: every token whose bytes are all accepted, with the bound on tokens needed after it. */
  private walk (s: number, onToken: (id: number, after: number) => void): void {
    const { byte, depth, end, first, ids, size } = this.trie
    const dfa = this.dfa
    const st = new Int32Array(this.trie.maxDepth + 1)
    st[0] = s
    for (let j = 1; j < size;) {
      const d = depth[j]
      const from = st[d - 1]
      let t = dfa.trans[from][byte[j]]
      if (t === -2) t = dfa.step(from, byte[j])
      if (t < 0) { j = end[j]; continue }
      st[d] = t
      for (let x = first[j]; x < first[j + 1]; x++) onToken(ids[x], dfa.ub[t])
      j++
    }
  }

  private computeMask (s: number): TokenMask {
    const bits = new Uint32Array((this.size + 31) >>> 5)
    const ids = this.scratchIds
    const afters = this.scratchAfter
    let n = 0
    // the most common bound, counted by runs (neighbours in the trie mostly share it)
    const freq = new Map<number, number>()
    let run = NaN
    let runLength = 0
    this.walk(s, (id, after) => {
      bits[id >>> 5] |= 1 << (id & 31)
      ids[n] = id
      afters[n] = after
      n++
      if (after === run) { runLength++; return }
      if (runLength > 0) freq.set(run, (freq.get(run) ?? 0) + runLength)
      run = after
      runLength = 1
    })
    if (runLength > 0) freq.set(run, (freq.get(run) ?? 0) + runLength)
    let base = 0
    let best = -1
    for (const [after, k] of freq) if (k > best) { best = k; base = after }
    let e = 0
    for (let i = 0; i < n; i++) if (afters[i] !== base) e++
    const exceptions = new Int32Array(e)
    const exceptionAfter = new Float64Array(e)
    e = 0
    for (let i = 0; i < n; i++) if (afters[i] !== base) { exceptions[e] = ids[i]; exceptionAfter[e] = afters[i]; e++ }
    const mask = new TokenMask(bits, n, this.dfa.accept[s], base, exceptions, exceptionAfter)
    if (n <= this.size / 8) mask.sparse = ids.slice(0, n).sort()
    return mask
  }

  /** Sets -Infinity on every logit whose token is not in the mask (or, under a tight budget, would not leave enough tokens to finish). */
  applyMask (logits: Float32Array, s: number, budget?: number): void {
    const mask = this.maskOf(s)
    if (mask.count === 0 && !mask.eos) throw new UnsatisfiableGrammarError('no token of this vocabulary can continue the output')
    const eosIds = this.eosIds
    const keep = this.eosKeep
    for (let i = 0; i < eosIds.length; i++) keep[i] = logits[eosIds[i]]
    const tight = budget != null && mask.count > 0 && mask.maxAfter > budget - 1
    let threshold = Infinity
    if (tight) {
      threshold = Math.max(budget - 1, 0)
      if (!mask.eos && mask.minAfter > threshold) threshold = mask.minAfter // the budget is already too small: head for the end anyway
    }
    const ex = mask.exceptions
    const exAfter = mask.exceptionAfter
    if (mask.base > threshold) {
      // only some exceptions remain
      const kept: number[] = []
      for (let i = 0; i < ex.length; i++) if (exAfter[i] <= threshold) kept.push(ex[i], logits[ex[i]])
      logits.fill(-Infinity)
      for (let i = 0; i < kept.length; i += 2) logits[kept[i]] = kept[i + 1]
    } else {
      const list = mask.sparse
      if (list != null) {
        // few allowed: keep them, clear everything
        const values = this.scratchAfter
        for (let i = 0; i < list.length; i++) values[i] = logits[list[i]]
        logits.fill(-Infinity)
        for (let i = 0; i < list.length; i++) logits[list[i]] = values[i]
      } else {
        // many allowed: clear the zero bits
        const bits = mask.bits
        const size = this.size
        for (let w = 0; w < bits.length; w++) {
          let zeros = ~bits[w]
          const base = w * 32
          while (zeros !== 0) {
            const low = zeros & -zeros
            const id = base + 31 - Math.clz32(low)
            if (id >= size) break
            logits[id] = -Infinity
            zeros ^= low
          }
        }
        if (logits.length > size) logits.fill(-Infinity, size)
      }
      if (tight) for (let i = 0; i < ex.length; i++) if (exAfter[i] > threshold) logits[ex[i]] = -Infinity
    }
    for (let i = 0; i < eosIds.length; i++) logits[eosIds[i]] = mask.eos ? keep[i] : -Infinity
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
    return !this.grammar.dfa.canContinue(this.#state) || this.grammar.maskOf(this.#state).count === 0
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
    this.grammar.applyMask(logits, this.#state, budget)
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
const MAX_CACHED_STATES = 5000
const cache = new WeakMap<Vocabulary, Map<string, CompiledGrammar>>()

/** Compiles a grammar for a vocabulary; the same spec (by canonical JSON) and the same Vocabulary object give the same CompiledGrammar (a bounded LRU per vocabulary). */
export function compileGrammar (spec: GrammarSpec, vocab: Vocabulary): CompiledGrammar {
  let byKey = cache.get(vocab)
  if (byKey == null) { byKey = new Map(); cache.set(vocab, byKey) }
  const key = canonical(spec)
  let compiled = byKey.get(key)
  // a grammar's automaton only grows (free-form JSON meets new nesting paths): past a bound (5000 states, ~70 MB of masks on a 100k vocabulary), later requests start afresh
  if (compiled != null && compiled.states > MAX_CACHED_STATES) { byKey.delete(key); compiled = undefined }
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
