/**
 * The automaton: an expression (with named rules) becomes a recursive
 * transition network over bytes — one NFA per rule, with call edges between
 * them — and that network is run as a lazily built DFA whose states are sets
 * of threads (NFA node + interned return stack). Transitions are memoized per
 * state and byte, so after warm-up a step is an array lookup.
 *
 * Nesting through calls (free-form JSON, $ref) is bounded at MAX_DEPTH
 * frames. For every node the minimal number of bytes to a complete output is
 * computed per remaining depth, once counting every byte and once counting
 * only bytes that the vocabulary has a single-byte token for: the first
 * prunes threads that could never finish, the second is the upper bound on
 * tokens that budgeted masking relies on.
 */
import type { Expr } from './expr.ts'

/** How deep calls may nest: free-form JSON nesting and recursive $ref. */
export const MAX_DEPTH = 32
const STACK_SHIFT = 67108864 // 2^26: thread key = node * 2^26 + stack

/** Code points a JSON string may hold unescaped: not controls, `"` or `\`, nor surrogates (which UTF-8 cannot carry). */
const RAW = [0x20, 0x21, 0x23, 0x5b, 0x5d, 0xd7ff, 0xe000, 0x10ffff]
const SHORT_ESCAPES = new Map<number, string>([[0x22, '\\"'], [0x5c, '\\\\'], [8, '\\b'], [9, '\\t'], [10, '\\n'], [12, '\\f'], [13, '\\r']])
const HEX = [0x30, 0x39, 0x41, 0x46, 0x61, 0x66]
const textEncoder = new TextEncoder()

export function intersectRanges (a: number[], b: number[]): number[] {
  const out: number[] = []
  for (let i = 0; i < a.length; i += 2) {
    for (let j = 0; j < b.length; j += 2) {
      const lo = Math.max(a[i], b[j])
      const hi = Math.min(a[i + 1], b[j + 1])
      if (lo <= hi) out.push(lo, hi)
    }
  }
  return normalizeRanges(out)
}

export function normalizeRanges (r: number[]): number[] {
  const pairs: Array<[number, number]> = []
  for (let i = 0; i < r.length; i += 2) pairs.push([r[i], r[i + 1]])
  pairs.sort((x, y) => x[0] - y[0])
  const out: number[] = []
  for (const [lo, hi] of pairs) {
    if (out.length > 0 && lo <= out[out.length - 1] + 1) out[out.length - 1] = Math.max(out[out.length - 1], hi)
    else out.push(lo, hi)
  }
  return out
}

export function complementRanges (r: number[], max = 0x10ffff): number[] {
  const n = normalizeRanges(r)
  const out: number[] = []
  let next = 0
  for (let i = 0; i < n.length; i += 2) {
    if (n[i] > next) out.push(next, n[i] - 1)
    next = n[i + 1] + 1
  }
  if (next <= max) out.push(next, max)
  return out
}

function utf8 (cp: number): number[] {
  if (cp < 0x80) return [cp]
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 63)]
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)]
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)]
}

/** A code point range as sequences of byte ranges (the usual UTF-8 range splitting). */
function utf8Sequences (lo: number, hi: number, out: number[][]): void {
  for (const [a, b] of [[0, 0x7f], [0x80, 0x7ff], [0x800, 0xffff], [0x10000, 0x10ffff]]) {
    const x = Math.max(lo, a)
    const y = Math.min(hi, b)
    if (x <= y) split(x, y)
  }
  function split (x: number, y: number): void {
    const n = utf8(x).length
    for (let i = 1; i < n; i++) {
      const m = (1 << (6 * i)) - 1
      if ((x & ~m) !== (y & ~m)) {
        if ((x & m) !== 0) { split(x, x | m); split((x | m) + 1, y); return }
        if ((y & m) !== m) { split(x, (y & ~m) - 1); split(y & ~m, y); return }
      }
    }
    const bx = utf8(x)
    const by = utf8(y)
    const s: number[] = []
    for (let i = 0; i < n; i++) s.push(bx[i], by[i])
    out.push(s)
  }
}

const sequenceCache = new Map<string, number[][]>()
function rawSequences (r: number[]): number[][] {
  const key = r.join(',')
  let seqs = sequenceCache.get(key)
  if (seqs == null) {
    seqs = []
    const raw = intersectRanges(r, RAW)
    for (let i = 0; i < raw.length; i += 2) utf8Sequences(raw[i], raw[i + 1], seqs)
    if (sequenceCache.size < 4096) sequenceCache.set(key, seqs)
  }
  return seqs
}

interface Builder {
  node: () => number
  eps: (a: number, b: number) => void
  atom: (x: Expr, a: number, b: number) => void
}

/** Thompson construction of seq / alt / rep between nodes a and b; atoms are the builder's. Loops only ever go through fresh nodes. */
function thompson (bd: Builder, x: Expr, a: number, b: number): void {
  switch (x.k) {
    case 'seq': {
      if (x.xs.length === 0) { bd.eps(a, b); return }
      let from = a
      x.xs.forEach((y, i) => {
        const to = i === x.xs.length - 1 ? b : bd.node()
        thompson(bd, y, from, to)
        from = to
      })
      return
    }
    case 'alt':
      for (const y of x.xs) thompson(bd, y, a, b)
      return
    case 'rep': {
      let from = a
      for (let i = 0; i < x.min; i++) {
        const to = bd.node()
        thompson(bd, x.x, from, to)
        from = to
      }
      if (x.max === Infinity) {
        const loop = bd.node()
        bd.eps(from, loop)
        thompson(bd, x.x, loop, loop)
        bd.eps(loop, b)
      } else {
        for (let i = x.min; i < x.max; i++) {
          const to = bd.node()
          bd.eps(from, b)
          thompson(bd, x.x, from, to)
          from = to
        }
        bd.eps(from, b)
      }
      return
    }
    default:
      bd.atom(x, a, b)
  }
}

/** A code-point level NFA, the inside of a JSON string before it is counted and encoded. */
class CharNfa {
  eps: number[][] = []
  edges: Array<Array<[Expr, number]>> = []
  node (): number { this.eps.push([]); this.edges.push([]); return this.eps.length - 1 }
  build (x: Expr): [number, number] {
    const s = this.node()
    const f = this.node()
    const bd: Builder = {
      node: () => this.node(),
      eps: (a, b) => { this.eps[a].push(b) },
      atom: (y, a, b) => {
        if (y.k === 'lit') {
          const cps = [...y.s].map(c => c.codePointAt(0) as number)
          if (cps.length === 0) { this.eps[a].push(b); return }
          let from = a
          cps.forEach((cp, i) => {
            const to = i === cps.length - 1 ? b : this.node()
            this.edges[from].push([{ k: 'cls', r: [cp, cp] }, to])
            from = to
          })
        } else if (y.k === 'cls' || y.k === 'any') {
          this.edges[a].push([y, b])
        } else {
          throw new Error(`${y.k} inside a string`)
        }
      }
    }
    thompson(bd, x, s, f)
    return [s, f]
  }
}

/** The code-point NFA of x; an `and` at the top is the product of its operands' NFAs (patterns and formats together). */
function charNfa (x: Expr): [CharNfa, number, number] {
  if (x.k !== 'and') {
    const cn = new CharNfa()
    const [s, f] = cn.build(x)
    return [cn, s, f]
  }
  let acc = charNfa(x.xs[0])
  for (const y of x.xs.slice(1)) acc = intersect(acc, charNfa(y))
  return acc
}

const ALL_CODE_POINTS = [0, 0x10ffff]

function closureOf (cn: CharNfa, n: number): number[] {
  const out = [n]
  const seen = new Set(out)
  for (let i = 0; i < out.length; i++) {
    for (const t of cn.eps[out[i]]) if (!seen.has(t)) { seen.add(t); out.push(t) }
  }
  return out
}

/** The product automaton: strings both accept. */
function intersect ([a, as, af]: [CharNfa, number, number], [b, bs, bf]: [CharNfa, number, number]): [CharNfa, number, number] {
  const out = new CharNfa()
  const final = out.node()
  const ids = new Map<number, number>()
  const queue: Array<[number, number]> = []
  const width = b.eps.length
  const get = (p: number, q: number): number => {
    let id = ids.get(p * width + q)
    if (id == null) { id = out.node(); ids.set(p * width + q, id); queue.push([p, q]) }
    return id
  }
  const start = get(as, bs)
  for (let i = 0; i < queue.length; i++) {
    const [p, q] = queue[i]
    const u = get(p, q)
    const cp = closureOf(a, p)
    const cq = closureOf(b, q)
    if (cp.includes(af) && cq.includes(bf)) out.eps[u].push(final)
    for (const p2 of cp) {
      for (const [x, t1] of a.edges[p2]) {
        for (const q2 of cq) {
          for (const [y, t2] of b.edges[q2]) {
            if (x.k === 'any' && y.k === 'any') { out.edges[u].push([x, get(t1, t2)]); continue }
            const r = intersectRanges(x.k === 'cls' ? x.r : ALL_CODE_POINTS, y.k === 'cls' ? y.r : ALL_CODE_POINTS)
            if (r.length > 0) out.edges[u].push([{ k: 'cls', r }, get(t1, t2)])
          }
        }
      }
    }
    if (out.eps.length > 200_000) throw new RangeError('the intersection of string constraints is too large')
  }
  return [out, start, final]
}

export class Nfa {
  /** Per node: lo, hi, target, … */
  edges: number[][] = []
  eps: number[][] = []
  /** Per node: machine, return node, … */
  calls: number[][] = []
  machineOf: number[] = []
  starts: number[] = []
  finals: number[] = []
  rules: Map<string, Expr>
  ruleIds = new Map<string, number>()
  private pending: Array<[string, number]> = []

  constructor (root: Expr, rules: Map<string, Expr>, maxNodes = 2_000_000) {
    this.rules = rules
    const m = this.machine()
    this.compile(root, this.starts[m], this.finals[m], m)
    while (this.pending.length > 0) {
      const [name, id] = this.pending.pop() as [string, number]
      const x = rules.get(name)
      if (x == null) throw new Error(`no rule ${name}`)
      this.compile(x, this.starts[id], this.finals[id], id)
      if (this.edges.length > maxNodes) throw new RangeError(`the grammar's automaton has more than ${maxNodes} nodes`)
    }
    if (this.edges.length > maxNodes) throw new RangeError(`the grammar's automaton has more than ${maxNodes} nodes`)
  }

  get size (): number { return this.edges.length }

  private machine (): number {
    const id = this.starts.length
    this.starts.push(-1)
    this.finals.push(-1)
    this.starts[id] = this.node(id)
    this.finals[id] = this.node(id)
    return id
  }

  private ruleMachine (name: string): number {
    let id = this.ruleIds.get(name)
    if (id == null) {
      id = this.machine()
      this.ruleIds.set(name, id)
      this.pending.push([name, id])
    }
    return id
  }

  private node (m: number): number {
    this.edges.push([])
    this.eps.push([])
    this.calls.push([])
    this.machineOf.push(m)
    return this.edges.length - 1
  }

  private edge (a: number, lo: number, hi: number, b: number): void { this.edges[a].push(lo, hi, b) }

  private bytes (a: number, bytes: ArrayLike<number>, b: number, m: number): void {
    if (bytes.length === 0) { this.eps[a].push(b); return }
    let from = a
    for (let i = 0; i < bytes.length; i++) {
      const to = i === bytes.length - 1 ? b : this.node(m)
      this.edge(from, bytes[i], bytes[i], to)
      from = to
    }
  }

  private compile (x: Expr, a: number, b: number, m: number): void {
    const bd: Builder = {
      node: () => this.node(m),
      eps: (p, q) => { this.eps[p].push(q) },
      atom: (y, p, q) => this.atom(y, p, q, m)
    }
    thompson(bd, x, a, b)
  }

  private atom (x: Expr, a: number, b: number, m: number): void {
    switch (x.k) {
      case 'lit': this.bytes(a, textEncoder.encode(x.s), b, m); return
      case 'cls': for (let i = 0; i < x.r.length; i += 2) this.edge(a, x.r[i], x.r[i + 1], b); return
      case 'call': this.calls[a].push(this.ruleMachine(x.rule), b); return
      case 'str': this.str(x.x, x.min, x.max, a, b, m); return
      case 'obj': {
        // p: no member written yet (-1: impossible, a required one came); q: after a member, a comma comes first
        const open = this.node(m)
        this.bytes(a, [0x7b], open, m)
        const close = this.node(m)
        this.bytes(close, [0x7d], b, m)
        let p = open
        let q = -1
        for (const item of x.items) {
          const member = this.node(m)
          if (p >= 0) this.eps[p].push(member)
          if (q >= 0) this.bytes(q, [0x2c], member, m)
          const colon = this.node(m)
          this.compile(item.key, member, colon, m)
          const value = this.node(m)
          this.bytes(colon, [0x3a], value, m)
          const after = this.node(m)
          this.compile(item.value, value, after, m)
          if (item.required) p = -1
          else if (q >= 0) this.eps[q].push(after) // leaving the member out after an earlier one
          q = after
        }
        if (p >= 0) this.eps[p].push(close)
        if (q >= 0) this.eps[q].push(close)
        return
      }
      default: throw new Error(`unexpected ${x.k}`)
    }
  }

  /** A JSON string: the code-point NFA times a counter of code points, each code point encoded raw in UTF-8 or escaped. */
  private str (x: Expr, min: number, max: number, a: number, b: number, m: number): void {
    const [cn, cs, cf] = charNfa(x)
    const cap = max === Infinity ? min : max
    const ids = new Map<number, number>()
    const queue: number[] = []
    const get = (n: number, c: number): number => {
      const key = n * (cap + 1) + c
      let id = ids.get(key)
      if (id == null) { id = this.node(m); ids.set(key, id); queue.push(n, c) }
      return id
    }
    const open = this.node(m)
    this.bytes(a, [0x22], open, m)
    const close = this.node(m)
    this.bytes(close, [0x22], b, m)
    this.eps[open].push(get(cs, 0))
    for (let i = 0; i < queue.length; i += 2) {
      const n = queue[i]
      const c = queue[i + 1]
      const u = get(n, c)
      if (n === cf && c >= min) this.eps[u].push(close)
      for (const t of cn.eps[n]) this.eps[u].push(get(t, c))
      for (const [y, t] of cn.edges[n]) {
        let c2 = c + 1
        if (c2 > cap) { if (max !== Infinity) continue; c2 = cap }
        this.char(y, u, get(t, c2), m)
      }
      if (this.edges.length > 2_000_000) throw new RangeError('a string constraint needs too large an automaton')
    }
  }

  /** One code point of class y, from a to b: raw UTF-8 where JSON allows it, escaped otherwise. */
  private char (y: Expr, a: number, b: number, m: number): void {
    const ranges = y.k === 'any' ? [0, 0x10ffff] : (y as { r: number[] }).r
    // sequences share their common suffixes (continuation bytes), so a code point class costs few nodes
    const suffixes = new Map<string, number>()
    const suffixNode = (s: number[], i: number): number => {
      if (i === s.length) return b
      const key = s.slice(i).join(',')
      let node = suffixes.get(key)
      if (node == null) {
        node = this.node(m)
        suffixes.set(key, node)
        this.edge(node, s[i], s[i + 1], suffixNode(s, i + 2))
      }
      return node
    }
    for (const s of rawSequences(ranges)) this.edge(a, s[0], s[1], suffixNode(s, 2))
    const backslash = this.node(m)
    let used = false
    if (y.k === 'any') {
      for (const c of '"\\/bfnrt') this.edge(backslash, c.charCodeAt(0), c.charCodeAt(0), b)
      // \uXXXX, never a surrogate, so that every escape is one code point
      const u = this.node(m)
      this.edge(backslash, 0x75, 0x75, u)
      const h1 = this.node(m)
      const h2 = this.node(m)
      const h3 = this.node(m)
      for (const [lo, hi] of [[0x30, 0x39], [0x41, 0x43], [0x45, 0x46], [0x61, 0x63], [0x65, 0x66]]) this.edge(u, lo, hi, h1)
      const d = this.node(m)
      this.edge(u, 0x44, 0x44, d)
      this.edge(u, 0x64, 0x64, d)
      this.edge(d, 0x30, 0x37, h2)
      for (let i = 0; i < HEX.length; i += 2) {
        this.edge(h1, HEX[i], HEX[i + 1], h2)
        this.edge(h2, HEX[i], HEX[i + 1], h3)
        this.edge(h3, HEX[i], HEX[i + 1], b)
      }
      used = true
    } else {
      const special = intersectRanges(ranges, [0, 0x1f, 0x22, 0x22, 0x5c, 0x5c])
      for (let i = 0; i < special.length; i += 2) {
        for (let cp = special[i]; cp <= special[i + 1]; cp++) {
          const short = SHORT_ESCAPES.get(cp)
          if (short != null) this.bytes(backslash, textEncoder.encode(short.slice(1)), b, m)
          if (cp < 0x20) this.bytes(backslash, textEncoder.encode('u' + cp.toString(16).padStart(4, '0')), b, m)
          used = true
        }
      }
    }
    if (used) this.edge(a, 0x5c, 0x5c, backslash)
  }
}

class Heap {
  d: number[] = []
  n: number[] = []
  get size (): number { return this.d.length }
  push (d: number, n: number): void {
    let i = this.d.length
    this.d.push(d); this.n.push(n)
    while (i > 0) {
      const p = (i - 1) >> 1
      if (this.d[p] <= d) break
      this.d[i] = this.d[p]; this.n[i] = this.n[p]
      i = p
    }
    this.d[i] = d; this.n[i] = n
  }

  pop (): [number, number] {
    const top: [number, number] = [this.d[0], this.n[0]]
    const d = this.d.pop() as number
    const n = this.n.pop() as number
    const size = this.d.length
    if (size > 0) {
      let i = 0
      for (;;) {
        let c = 2 * i + 1
        if (c >= size) break
        if (c + 1 < size && this.d[c + 1] < this.d[c]) c++
        if (this.d[c] >= d) break
        this.d[i] = this.d[c]; this.n[i] = this.n[c]
        i = c
      }
      this.d[i] = d; this.n[i] = n
    }
    return top
  }
}

/**
 * Minimal cost from every node to its machine's final node, for each number
 * of further calls still allowed (0..MAX_DEPTH). Layers stop once they no
 * longer change; `layer(r)` gives the one for r.
 */
export class Distances {
  layers: Float64Array[] = []
  constructor (nfa: Nfa, byteCost: (lo: number, hi: number) => number) {
    const size = nfa.size
    // reverse adjacency: for node v, the nodes u with an edge u→v and that edge's kind
    const revFrom: number[][] = Array.from({ length: size }, () => [])
    const revW: number[][] = Array.from({ length: size }, () => []) // ≥ 0: fixed cost; < 0: call of machine -w-1
    for (let u = 0; u < size; u++) {
      const e = nfa.edges[u]
      for (let i = 0; i < e.length; i += 3) { revFrom[e[i + 2]].push(u); revW[e[i + 2]].push(byteCost(e[i], e[i + 1])) }
      for (const v of nfa.eps[u]) { revFrom[v].push(u); revW[v].push(0) }
      const c = nfa.calls[u]
      for (let i = 0; i < c.length; i += 2) { revFrom[c[i + 1]].push(u); revW[c[i + 1]].push(-c[i] - 1) }
    }
    const machines = nfa.starts.length
    let prevMin = new Float64Array(machines).fill(Infinity)
    for (let r = 0; r <= MAX_DEPTH; r++) {
      const dist = new Float64Array(size).fill(Infinity)
      const heap = new Heap()
      for (const f of nfa.finals) { dist[f] = 0; heap.push(0, f) }
      while (heap.size > 0) {
        const [d, v] = heap.pop()
        if (d > dist[v]) continue
        const from = revFrom[v]
        const w = revW[v]
        for (let i = 0; i < from.length; i++) {
          const cost = w[i] >= 0 ? w[i] : prevMin[-w[i] - 1]
          const nd = d + cost
          if (nd < dist[from[i]]) { dist[from[i]] = nd; heap.push(nd, from[i]) }
        }
      }
      const prev = this.layers[this.layers.length - 1]
      if (prev != null && prev.every((x, i) => x === dist[i])) break
      this.layers.push(dist)
      prevMin = Float64Array.from(nfa.starts, s => dist[s])
    }
  }

  layer (r: number): Float64Array { return this.layers[Math.min(r, this.layers.length - 1)] }
}

/**
 * The lazily determinized automaton. State ids are dense from 0; -1 is the
 * dead state. `ub[s]` is an upper bound on the tokens needed to complete from
 * s (every byte of a shortest completion being a single-byte token).
 */
export class Dfa {
  nfa: Nfa
  private viable: Distances
  private bound: Distances
  // interned return stacks; 0 is the empty stack
  private stackRet: number[] = [-1]
  private stackParent: number[] = [-1]
  private stackDepth: number[] = [0]
  private stackViable: number[] = [0]
  private stackBound: number[] = [0]
  private stackIds = new Map<number, number>()
  threads: Int32Array[] = []
  accept: boolean[] = []
  ub: number[] = []
  trans: Int32Array[] = []
  private stateIds = new Map<string, number>()
  start: number

  constructor (nfa: Nfa, singleByte: Uint8Array) {
    this.nfa = nfa
    this.viable = new Distances(nfa, () => 1)
    this.bound = new Distances(nfa, (lo, hi) => {
      for (let b = lo; b <= hi; b++) if (singleByte[b] === 1) return 1
      return Infinity
    })
    const threads: number[] = []
    const acc = { accept: false }
    this.closure(nfa.starts[0], 0, new Set(), threads, acc)
    this.start = threads.length === 0 && !acc.accept ? -1 : this.intern(threads, acc.accept)
  }

  get states (): number { return this.threads.length }

  private push (ret: number, parent: number): number {
    const key = ret * STACK_SHIFT + parent
    let id = this.stackIds.get(key)
    if (id == null) {
      id = this.stackRet.length
      const depth = this.stackDepth[parent] + 1
      if (id >= STACK_SHIFT) throw new RangeError('too many return stacks')
      this.stackRet.push(ret)
      this.stackParent.push(parent)
      this.stackDepth.push(depth)
      // the frame's return node runs at depth - 1
      this.stackViable.push(this.viable.layer(MAX_DEPTH - depth + 1)[ret] + this.stackViable[parent])
      this.stackBound.push(this.bound.layer(MAX_DEPTH - depth + 1)[ret] + this.stackBound[parent])
      this.stackIds.set(key, id)
    }
    return id
  }

  private closure (node0: number, stack0: number, seen: Set<number>, threads: number[], acc: { accept: boolean }): void {
    const nfa = this.nfa
    const work = [node0, stack0]
    while (work.length > 0) {
      const stack = work.pop() as number
      const node = work.pop() as number
      const key = node * STACK_SHIFT + stack
      if (seen.has(key)) continue
      seen.add(key)
      const depth = this.stackDepth[stack]
      if (!(this.viable.layer(MAX_DEPTH - depth)[node] + this.stackViable[stack] < Infinity)) continue
      if (node === nfa.finals[nfa.machineOf[node]]) {
        if (stack === 0) acc.accept = true
        else work.push(this.stackRet[stack], this.stackParent[stack])
      }
      for (const t of nfa.eps[node]) work.push(t, stack)
      const c = nfa.calls[node]
      if (depth < MAX_DEPTH) for (let i = 0; i < c.length; i += 2) work.push(nfa.starts[c[i]], this.push(c[i + 1], stack))
      if (nfa.edges[node].length > 0) threads.push(node, stack)
    }
  }

  private intern (threads: number[], accept: boolean): number {
    const keys: number[] = []
    for (let i = 0; i < threads.length; i += 2) keys.push(threads[i] * STACK_SHIFT + threads[i + 1])
    keys.sort((a, b) => a - b)
    const key = keys.join(',') + (accept ? '!' : '')
    let id = this.stateIds.get(key)
    if (id == null) {
      id = this.threads.length
      const th = new Int32Array(keys.length * 2)
      let ub = accept ? 0 : Infinity
      keys.forEach((k, i) => {
        const node = Math.floor(k / STACK_SHIFT)
        const stack = k - node * STACK_SHIFT
        th[2 * i] = node
        th[2 * i + 1] = stack
        ub = Math.min(ub, this.bound.layer(MAX_DEPTH - this.stackDepth[stack])[node] + this.stackBound[stack])
      })
      this.threads.push(th)
      this.accept.push(accept)
      this.ub.push(ub)
      this.trans.push(new Int32Array(256).fill(-2))
      this.stateIds.set(key, id)
    }
    return id
  }

  /** The state after byte b from state s, or -1. */
  step (s: number, b: number): number {
    const t = this.trans[s][b]
    if (t !== -2) return t
    const th = this.threads[s]
    const seen = new Set<number>()
    const threads: number[] = []
    const acc = { accept: false }
    for (let i = 0; i < th.length; i += 2) {
      const e = this.nfa.edges[th[i]]
      for (let j = 0; j < e.length; j += 3) {
        if (e[j] <= b && b <= e[j + 1]) this.closure(e[j + 2], th[i + 1], seen, threads, acc)
      }
    }
    const next = threads.length === 0 && !acc.accept ? -1 : this.intern(threads, acc.accept)
    this.trans[s][b] = next
    return next
  }

  /** Whether any byte could follow in state s. */
  canContinue (s: number): boolean { return this.threads[s].length > 0 }
}
