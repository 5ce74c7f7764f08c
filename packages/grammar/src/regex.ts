/**
 * A subset of ECMAScript regular expressions (as ajv runs `pattern`, with the
 * `u` flag) compiled to a code-point expression: literals, escapes, classes,
 * `.`, quantifiers, groups, alternation, and `^` / `$` at the ends of the
 * pattern or of its top-level alternatives. Backreferences, lookaround, word
 * boundaries and anchors elsewhere are refused.
 */
import { alt, cls, EMPTY, rep, seq } from './expr.ts'
import type { Expr } from './expr.ts'
import { complementRanges, normalizeRanges } from './automaton.ts'

export class RegexError extends Error {}

const DIGITS = [0x30, 0x39]
const WORD = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a]
const SPACE = [9, 13, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff]
const LINE_TERMINATORS = [10, 10, 13, 13, 0x2028, 0x2029]
export const ANY_CHAR = [0, 0x10ffff]

type Node = Expr | { k: 'bol' } | { k: 'eol' }

/** The language of strings the pattern matches (anywhere, unless anchored), as a code-point expression. */
export function compileRegex (pattern: string): Expr {
  try {
    // eslint-disable-next-line no-new
    new RegExp(pattern, 'u')
  } catch (err) {
    throw new RegexError(`invalid pattern: ${(err as Error).message}`)
  }
  const chars = [...pattern].map(c => c.codePointAt(0) as number)
  let i = 0
  const peek = (): number => chars[i]
  const eat = (c: string): boolean => {
    if (chars[i] === c.codePointAt(0)) { i++; return true }
    return false
  }

  function parseAlt (): Node[][] {
    const branches: Node[][] = [parseSeq()]
    while (eat('|')) branches.push(parseSeq())
    return branches
  }

  function parseSeq (): Node[] {
    const items: Node[] = []
    while (i < chars.length && peek() !== 0x7c && peek() !== 0x29) {
      const atom = parseAtom()
      if (atom.k === 'bol' || atom.k === 'eol') { items.push(atom); continue }
      items.push(parseQuantifier(atom))
    }
    return items
  }

  function parseQuantifier (atom: Expr): Expr {
    let min: number
    let max: number
    if (eat('*')) { min = 0; max = Infinity } else if (eat('+')) { min = 1; max = Infinity } else if (eat('?')) { min = 0; max = 1 } else if (peek() === 0x7b) {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(String.fromCodePoint(...chars.slice(i, i + 24)))
      if (m == null) return atom
      i += m[0].length
      min = Number(m[1])
      max = m[2] == null ? min : m[3] === '' ? Infinity : Number(m[3])
      if (min > 1000 || (max !== Infinity && max > 1000)) throw new RegexError('a quantifier above 1000')
    } else {
      return atom
    }
    eat('?') // lazy: the same language
    return parseQuantifier(rep(atom, min, max))
  }

  function parseAtom (): Node {
    const c = chars[i++]
    switch (c) {
      case 0x5e: return { k: 'bol' }
      case 0x24: return { k: 'eol' }
      case 0x2e: return cls(...complementRanges(LINE_TERMINATORS))
      case 0x28: {
        if (eat('?')) {
          if (eat(':')) { /* non-capturing */ } else if (peek() === 0x3c && chars[i + 1] !== 0x3d && chars[i + 1] !== 0x21) {
            while (i < chars.length && chars[i] !== 0x3e) i++
            i++
          } else {
            throw new RegexError('lookaround is not supported')
          }
        }
        const inner = parseAlt()
        if (!eat(')')) throw new RegexError('unbalanced parenthesis')
        if (inner.some(b => b.some(n => n.k === 'bol' || n.k === 'eol'))) throw new RegexError('anchors inside a group are not supported')
        return alt(...inner.map(b => seq(...b as Expr[])))
      }
      case 0x5b: return parseClass()
      case 0x5c: {
        const r = parseEscape(false)
        return cls(...r)
      }
      default:
        return cls(c, c)
    }
  }

  function parseEscape (inClass: boolean): number[] {
    const c = chars[i++]
    const ch = String.fromCodePoint(c)
    switch (ch) {
      case 'd': return DIGITS
      case 'D': return complementRanges(DIGITS)
      case 'w': return WORD
      case 'W': return complementRanges(WORD)
      case 's': return SPACE
      case 'S': return complementRanges(SPACE)
      case 'n': return [10, 10]
      case 't': return [9, 9]
      case 'r': return [13, 13]
      case 'f': return [12, 12]
      case 'v': return [11, 11]
      case '0': return [0, 0]
      case 'b':
        if (inClass) return [8, 8]
        throw new RegexError('word boundaries are not supported')
      case 'B': throw new RegexError('word boundaries are not supported')
      case 'x': {
        const h = String.fromCodePoint(...chars.slice(i, i + 2))
        i += 2
        const v = parseInt(h, 16)
        return [v, v]
      }
      case 'u': {
        if (chars[i] === 0x7b) {
          const close = chars.indexOf(0x7d, i)
          const v = parseInt(String.fromCodePoint(...chars.slice(i + 1, close)), 16)
          i = close + 1
          return [v, v]
        }
        const v = parseInt(String.fromCodePoint(...chars.slice(i, i + 4)), 16)
        i += 4
        return [v, v]
      }
      case 'c': case 'p': case 'P': case 'k':
        throw new RegexError(`\\${ch} is not supported`)
      default:
        if (c >= 0x31 && c <= 0x39) throw new RegexError('backreferences are not supported')
        return [c, c]
    }
  }

  function parseClass (): Expr {
    const negate = eat('^')
    const ranges: number[] = []
    while (i < chars.length && peek() !== 0x5d) {
      let lo: number[]
      if (eat('\\')) lo = parseEscape(true)
      else { const c = chars[i++]; lo = [c, c] }
      if (peek() === 0x2d && chars[i + 1] !== 0x5d && i + 1 < chars.length && lo[0] === lo[1] && lo.length === 2) {
        i++
        let hi: number[]
        if (eat('\\')) hi = parseEscape(true)
        else { const c = chars[i++]; hi = [c, c] }
        ranges.push(lo[0], hi[1])
      } else {
        ranges.push(...lo)
      }
    }
    if (!eat(']')) throw new RegexError('unterminated class')
    const r = normalizeRanges(ranges)
    return cls(...(negate ? complementRanges(r) : r))
  }

  const branches = parseAlt()
  if (i < chars.length) throw new RegexError('unbalanced parenthesis')
  const anyRun = rep(cls(...ANY_CHAR), 0)
  return alt(...branches.map(branch => {
    let items = branch
    const anchoredStart = items[0]?.k === 'bol'
    if (anchoredStart) items = items.slice(1)
    const anchoredEnd = items[items.length - 1]?.k === 'eol'
    if (anchoredEnd) items = items.slice(0, -1)
    if (items.some(n => n.k === 'bol' || n.k === 'eol')) throw new RegexError('anchors in the middle of a pattern are not supported')
    return seq(anchoredStart ? EMPTY : anyRun, ...items as Expr[], anchoredEnd ? EMPTY : anyRun)
  }))
}
