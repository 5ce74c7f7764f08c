/**
 * Exact digit automata for numbers within bounds. A number is written as an
 * integer part and k = 0..6 fraction digits (no exponent); for each k the
 * value times 10^k is an integer M whose range follows exactly, in BigInt
 * arithmetic, from the bounds as the doubles they are. Since JSON.parse
 * rounds monotonically, a decimal ≥ a double bound parses to a value ≥ it;
 * an exclusive bound b becomes the inclusive bound nextUp(b).
 */
import { alt, cls, DIGIT, EMPTY, lit, NEVER, opt, rep, seq } from './expr.ts'
import type { Expr } from './expr.ts'

export const MAX_FRACTION_DIGITS = 6
/** Integers: the safe range, so that every digit string parses exactly. */
export const MAX_SAFE = (1n << 53n) - 1n
/** Non-integral numbers: at most 15 significant digits. */
const MAX_DECIMAL = 10n ** 15n - 1n

export interface Bound { value: number, exclusive: boolean }

/** The exact rational value of a finite double, as num / den with den a power of two. */
function exact (x: number): { num: bigint, den: bigint } {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, x)
  const bits = view.getBigUint64(0)
  const sign = bits >> 63n ? -1n : 1n
  const exp = Number((bits >> 52n) & 0x7ffn)
  let mant = bits & ((1n << 52n) - 1n)
  let e: number
  if (exp === 0) e = -1074
  else { mant |= 1n << 52n; e = exp - 1075 }
  if (e >= 0) return { num: sign * (mant << BigInt(e)), den: 1n }
  return { num: sign * mant, den: 1n << BigInt(-e) }
}

function floorDiv (a: bigint, b: bigint): bigint {
  const q = a / b
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q
}

function nextUp (x: number): number {
  if (x === 0) return Number.MIN_VALUE
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, x)
  const bits = view.getBigInt64(0)
  view.setBigInt64(0, x > 0 ? bits + 1n : bits - 1n)
  return view.getFloat64(0)
}
const nextDown = (x: number): number => -nextUp(-x)

/** ceil(x · 10^k) for the lower bound, floor(x · 10^k) for the upper, exactly. */
function scaled (x: number, k: number, up: boolean): bigint {
  const { num, den } = exact(x)
  const n = num * 10n ** BigInt(k)
  return up ? -floorDiv(-n, den) : floorDiv(n, den)
}

/** Fixed-length digit strings from x to y (same length, x ≤ y, leading zeros as written). */
function fixed (x: string, y: string): Expr {
  if (x.length === 0) return EMPTY
  const rest = x.length - 1
  if (x[0] === y[0]) return seq(lit(x[0]), fixed(x.slice(1), y.slice(1)))
  const parts: Expr[] = []
  let lo = x.charCodeAt(0)
  let hi = y.charCodeAt(0)
  if (!/^0*$/.test(x.slice(1))) { parts.push(seq(lit(x[0]), fixed(x.slice(1), '9'.repeat(rest)))); lo++ }
  const highPart = !/^9*$/.test(y.slice(1)) ? seq(lit(y[0]), fixed('0'.repeat(rest), y.slice(1))) : null
  if (highPart != null) hi--
  if (lo <= hi) parts.push(seq(cls(lo, hi), rep(DIGIT, rest, rest)))
  if (highPart != null) parts.push(highPart)
  return alt(...parts)
}

/** Non-negative integers from a to b, no leading zeros. */
export function naturals (a: bigint, b: bigint): Expr {
  if (a > b) return NEVER
  const parts: Expr[] = []
  const la = a.toString().length
  const lb = b.toString().length
  // the lengths strictly between a's and b's are full: one expression for all of them
  if (lb - la >= 2) parts.push(seq(cls(0x31, 0x39), rep(DIGIT, la, lb - 2)))
  for (const l of la === lb ? [la] : [la, lb]) {
    const lo = l === la ? a : 10n ** BigInt(l - 1)
    const hi = l === lb ? b : 10n ** BigInt(l) - 1n
    parts.push(fixed(lo.toString(), hi.toString()))
  }
  return alt(...parts)
}

/** Magnitudes m in [a, b] (a ≥ 0) written with exactly k fraction digits: I.F where m = I·10^k + F. */
function magnitudes (a: bigint, b: bigint, k: number): Expr {
  if (a > b) return NEVER
  if (k === 0) return naturals(a, b)
  const p = 10n ** BigInt(k)
  const ia = a / p
  const fa = a % p
  const ib = b / p
  const fb = b % p
  const frac = (x: bigint, y: bigint): Expr => fixed(x.toString().padStart(k, '0'), y.toString().padStart(k, '0'))
  const dot = lit('.')
  if (ia === ib) return seq(naturals(ia, ia), dot, frac(fa, fb))
  const parts: Expr[] = [seq(naturals(ia, ia), dot, frac(fa, p - 1n))]
  if (ia + 1n <= ib - 1n) parts.push(seq(naturals(ia + 1n, ib - 1n), dot, rep(DIGIT, k, k)))
  parts.push(seq(naturals(ib, ib), dot, frac(0n, fb)))
  return alt(...parts)
}

/** Signed integers M in [lo, hi] at scale k. */
function scaledRange (lo: bigint, hi: bigint, k: number): Expr {
  const parts: Expr[] = []
  if (lo <= -1n) {
    const a = hi < -1n ? -hi : 1n
    parts.push(seq(lit('-'), magnitudes(a, -lo, k)))
  }
  if (hi >= 0n) parts.push(magnitudes(lo > 0n ? lo : 0n, hi, k))
  return alt(...parts)
}

/** Unbounded: up to 15 integer digits and 6 fraction digits (the same set as the bounded form, written compactly). */
const FREE_NUMBER: Expr = seq(opt(lit('-')), alt(lit('0'), seq(cls(0x31, 0x39), rep(DIGIT, 0, 14))), opt(seq(lit('.'), rep(DIGIT, 1, MAX_FRACTION_DIGITS))))

export interface NumberRange { lower?: Bound, upper?: Bound }

/** Integers (written without fraction or exponent) within the bounds and the safe range. */
export function integerExpr (range: NumberRange): Expr {
  const [lo, hi] = integerBounds(range)
  return scaledRange(lo, hi, 0)
}

export function integerBounds (range: NumberRange): [bigint, bigint] {
  let lo = -MAX_SAFE
  let hi = MAX_SAFE
  if (range.lower != null) {
    const b = range.lower.exclusive ? nextUp(range.lower.value) : range.lower.value
    if (b > 1e300) return [1n, 0n]
    if (b > -1e300) lo = maxBig(lo, scaled(b, 0, true))
  }
  if (range.upper != null) {
    const b = range.upper.exclusive ? nextDown(range.upper.value) : range.upper.value
    if (b < -1e300) return [1n, 0n]
    if (b < 1e300) hi = minBig(hi, scaled(b, 0, false))
  }
  return [lo, hi]
}

const maxBig = (a: bigint, b: bigint): bigint => a > b ? a : b
const minBig = (a: bigint, b: bigint): bigint => a < b ? a : b

/** Numbers with 0..6 fraction digits within the bounds, at most 15 significant digits. */
export function numberExpr (range: NumberRange): Expr {
  if (range.lower == null && range.upper == null) return FREE_NUMBER
  const parts: Expr[] = []
  for (let k = 0; k <= MAX_FRACTION_DIGITS; k++) {
    let lo = -MAX_DECIMAL
    let hi = MAX_DECIMAL
    if (range.lower != null) {
      const b = range.lower.exclusive ? nextUp(range.lower.value) : range.lower.value
      if (b > 1e300) return NEVER
      if (b > -1e300) lo = maxBig(lo, scaled(b, k, true))
    }
    if (range.upper != null) {
      const b = range.upper.exclusive ? nextDown(range.upper.value) : range.upper.value
      if (b < -1e300) return NEVER
      if (b < 1e300) hi = minBig(hi, scaled(b, k, false))
    }
    if (lo <= hi) parts.push(scaledRange(lo, hi, k))
  }
  return alt(...parts)
}

/**
 * Integers in [lo, hi] that are multiples of m, for an integer m dividing
 * 1000 (2, 4, 5, 8, 10, 20, 25, …): a multiple is any number whose last j
 * digits (10^j a multiple of m) form a multiple of m. Null for other m.
 */
export function multiplesExpr (lo: bigint, hi: bigint, m: number): Expr | null {
  let j = 0
  while (j <= 3 && 10 ** j % m !== 0) j++
  if (j === 0 || j > 3 || !Number.isInteger(m) || m < 1) return null
  const mb = BigInt(m)
  const p = 10n ** BigInt(j)
  const residues = (from: bigint, to: bigint): Expr => {
    const out: Expr[] = []
    for (let r = ((from + mb - 1n) / mb) * mb; r <= to; r += mb) out.push(lit(r.toString().padStart(j, '0')))
    return alt(...out)
  }
  const magnitudes = (a: bigint, b: bigint): Expr => {
    if (a > b) return NEVER
    const parts: Expr[] = []
    for (let v = ((a + mb - 1n) / mb) * mb; v <= b && v < p; v += mb) parts.push(lit(v.toString()))
    const a2 = a > p ? a : p
    if (b >= a2) {
      const qa = a2 / p
      const ra = a2 % p
      const qb = b / p
      const rb = b % p
      if (qa === qb) parts.push(seq(naturals(qa, qa), residues(ra, rb)))
      else {
        parts.push(seq(naturals(qa, qa), residues(ra, p - 1n)))
        if (qa + 1n <= qb - 1n) parts.push(seq(naturals(qa + 1n, qb - 1n), residues(0n, p - 1n)))
        parts.push(seq(naturals(qb, qb), residues(0n, rb)))
      }
    }
    return alt(...parts)
  }
  const parts: Expr[] = []
  if (lo <= -1n) parts.push(seq(lit('-'), magnitudes(hi < -1n ? -hi : 1n, -lo)))
  if (hi >= 0n) parts.push(magnitudes(lo > 0n ? lo : 0n, hi))
  return alt(...parts)
}
