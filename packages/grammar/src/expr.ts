/**
 * The intermediate language every grammar compiles to before it becomes an
 * automaton: regular expressions over bytes (or, inside `str`, over code
 * points), with calls of named rules for recursion and two JSON shapes that
 * would be large as plain expressions.
 */
export type Expr =
  /** UTF-8 text. */
  | { k: 'lit', s: string }
  /** Ranges lo, hi, lo, hi…: of bytes at byte level, of code points inside `str`. */
  | { k: 'cls', r: number[] }
  /** Inside `str`: any JSON string character, raw or escaped. */
  | { k: 'any' }
  | { k: 'seq', xs: Expr[] }
  | { k: 'alt', xs: Expr[] }
  | { k: 'rep', x: Expr, min: number, max: number }
  | { k: 'call', rule: string }
  /** A JSON string whose decoded text matches the code-point expression x and has min..max code points. */
  | { k: 'str', x: Expr, min: number, max: number }
  /** Inside `str`, at the top: text that every operand matches. */
  | { k: 'and', xs: Expr[] }
  /** `{"key":value,…}` with the members in this order; optional ones may be left out. */
  | { k: 'obj', items: ObjItem[] }

export interface ObjItem { key: Expr, value: Expr, required: boolean }

export const EMPTY: Expr = { k: 'seq', xs: [] }
export const NEVER: Expr = { k: 'alt', xs: [] }
export const lit = (s: string): Expr => ({ k: 'lit', s })
export const cls = (...r: number[]): Expr => ({ k: 'cls', r })
export const seq = (...xs: Expr[]): Expr => xs.length === 1 ? xs[0] : { k: 'seq', xs }
export const alt = (...xs: Expr[]): Expr => xs.length === 1 ? xs[0] : { k: 'alt', xs }
export const rep = (x: Expr, min: number, max = Infinity): Expr => ({ k: 'rep', x, min, max })
export const opt = (x: Expr): Expr => rep(x, 0, 1)
export const call = (rule: string): Expr => ({ k: 'call', rule })
export const DIGIT = cls(0x30, 0x39)

/** Language is certainly empty (structurally). */
export function isNever (x: Expr): boolean {
  return x.k === 'alt' && x.xs.every(isNever)
}

/** A rough count of the automaton nodes an expression becomes (capped), to decide when to share it through a rule. */
export function exprSize (x: Expr, cap = 1e6): number {
  switch (x.k) {
    case 'lit': return x.s.length + 1
    case 'cls': case 'call': case 'any': return 2
    case 'seq': case 'alt': case 'and': return Math.min(cap, x.xs.reduce((n, y) => n + exprSize(y, cap), 1))
    case 'rep': return Math.min(cap, exprSize(x.x, cap) * (x.max === Infinity ? x.min + 1 : x.max) + 2)
    case 'str': return Math.min(cap, 12 * exprSize(x.x, cap) * (x.max === Infinity ? x.min + 1 : x.max + 1))
    case 'obj': return Math.min(cap, x.items.reduce((n, i) => n + exprSize(i.key, cap) + exprSize(i.value, cap) + 4, 4))
  }
}
