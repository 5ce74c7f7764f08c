/**
 * Free-form JSON in compact form (no whitespace): the rules `$json` (any
 * value) and `$object` (any object), recursive through calls, so nesting is
 * bounded by the automaton's MAX_DEPTH.
 */
import { alt, call, cls, DIGIT, lit, opt, rep, seq } from './expr.ts'
import type { Expr } from './expr.ts'

export const JSON_RULE = '$json'
export const OBJECT_RULE = '$object'

/** Any JSON string. */
export const STRING: Expr = { k: 'str', x: rep({ k: 'any' }, 0), min: 0, max: Infinity }
/** Free-form numbers: up to 15 integer digits and 6 fraction digits, no exponent, so that every one is finite. */
export const NUMBER: Expr = seq(opt(lit('-')), alt(lit('0'), seq(cls(0x31, 0x39), rep(DIGIT, 0, 14))), opt(seq(lit('.'), rep(DIGIT, 1, 6))))

/** `{` (key `:` value (`,` key `:` value)*)? `}` with the given value expression. */
export function mapOf (value: Expr, key: Expr = STRING): Expr {
  const member = seq(key, lit(':'), value)
  return seq(lit('{'), opt(seq(member, rep(seq(lit(','), member), 0))), lit('}'))
}

export function listOf (value: Expr): Expr {
  return seq(lit('['), opt(seq(value, rep(seq(lit(','), value), 0))), lit(']'))
}

export function addJsonRules (rules: Map<string, Expr>): void {
  const value = call(JSON_RULE)
  rules.set(JSON_RULE, alt(mapOf(value), listOf(value), STRING, NUMBER, lit('true'), lit('false'), lit('null')))
  rules.set(OBJECT_RULE, mapOf(value))
}
