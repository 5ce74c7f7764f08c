/**
 * JSON Schema to expression. Every output the expression admits validates
 * against the schema (as ajv with ajv-formats checks it); where that cannot
 * be guaranteed the keyword is refused with UnsupportedSchemaError.
 *
 * Choices: output is compact JSON; object members come in declaration order
 * and only declared properties are generated, whether or not
 * additionalProperties is false (still valid, and what OpenAI's strict mode
 * asks for anyway); an object with no declared properties and
 * additionalProperties absent or true is free-form, and with an
 * additionalProperties schema a map of that schema. `{}` / `true` is any
 * JSON value.
 */
import { alt, call, EMPTY, exprSize, lit, NEVER, opt, rep, seq } from './expr.ts'
import type { Expr, ObjItem } from './expr.ts'
import { Dfa, Nfa } from './automaton.ts'
import { UnsupportedSchemaError } from './errors.ts'
import { addJsonRules, JSON_RULE, mapOf, OBJECT_RULE } from './json.ts'
import { integerBounds, integerExpr, multiplesExpr, numberExpr } from './numbers.ts'
import type { Bound, NumberRange } from './numbers.ts'
import { compileRegex, RegexError } from './regex.ts'

type Schema = boolean | Record<string, unknown>
type Obj = Record<string, unknown>

const ANNOTATIONS = new Set(['description', 'title', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly', '$defs', 'definitions'])
const OBJECT_KEYWORDS = ['properties', 'required', 'additionalProperties', 'propertyNames']
const ARRAY_KEYWORDS = ['items', 'prefixItems', 'minItems', 'maxItems', 'uniqueItems']
const STRING_KEYWORDS = ['minLength', 'maxLength', 'format', 'pattern']
const NUMBER_KEYWORDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf']
const SUPPORTED = new Set(['type', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref', ...OBJECT_KEYWORDS, ...ARRAY_KEYWORDS, ...STRING_KEYWORDS, ...NUMBER_KEYWORDS])
const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']
const KINDS = ['object', 'array', 'string', 'number', 'boolean', 'null']

/** Formats as patterns whose every match passes ajv-formats (full mode): subsets of what it accepts. */
const DATE = '[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)'
const TIME = '(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])'
export const FORMATS: Record<string, string> = {
  date: `^${DATE}$`,
  time: `^${TIME}$`,
  'date-time': `^${DATE}T${TIME}$`,
  email: '^[a-z0-9]+(?:\\.[a-z0-9]+)*@[a-z0-9]+(?:\\.[a-z0-9]+)*\\.[a-z]+$',
  uuid: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
  ipv4: '^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$',
  ipv6: '^[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){7}$',
  uri: '^https?://[a-z0-9]+(?:\\.[a-z0-9]+)*(?:/[a-z0-9._~-]*)*$',
  hostname: '^[a-z0-9]{1,60}(?:\\.[a-z0-9]{1,60}){0,3}$'
}

const ALL_BYTES = new Uint8Array(256).fill(1)

function accepts (dfa: Dfa, text: string): boolean {
  let s = dfa.start
  for (const b of new TextEncoder().encode(text)) {
    if (s < 0) return false
    s = dfa.step(s, b)
  }
  return s >= 0 && dfa.accept[s]
}

/**
 * Format names that validate nothing: ajv-formats accepts anything for
 * password and binary, and the names zod writes beside the pattern that does
 * the work (starts_with, ends_with, includes, regex) are unknown to ajv,
 * which ignores them when not strict.
 */
const NON_VALIDATING_FORMATS = new Set(['password', 'binary', 'starts_with', 'ends_with', 'includes', 'regex'])

const isObj = (x: unknown): x is Obj => x != null && typeof x === 'object' && !Array.isArray(x)

function kindOf (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

function hasType (v: unknown, type: string): boolean {
  switch (type) {
    case 'integer': return typeof v === 'number' && Number.isInteger(v)
    case 'number': return typeof v === 'number' && Number.isFinite(v)
    default: return kindOf(v) === type
  }
}

function constraints (s: Obj): string[] {
  return Object.keys(s).filter(k => !ANNOTATIONS.has(k))
}

function unescapePointer (part: string): string {
  return decodeURIComponent(part).replaceAll('~1', '/').replaceAll('~0', '~')
}

/** The compiler of one schema document; `$ref` targets become rules named with `prefix`. */
export class SchemaCompiler {
  root: Schema
  rules: Map<string, Expr>
  prefix: string

  constructor (root: unknown, rules: Map<string, Expr>, prefix = 's') {
    if (typeof root !== 'boolean' && !isObj(root)) throw new UnsupportedSchemaError('type', '', 'a schema is an object or a boolean')
    this.root = root
    this.rules = rules
    if (!rules.has(JSON_RULE)) addJsonRules(rules)
    this.prefix = prefix
  }

  compileRoot (): Expr { return this.compile(this.root, '') }

  resolve (ref: string, path: string): Schema {
    if (!ref.startsWith('#')) throw new UnsupportedSchemaError('$ref', path, `only local references (#/…) are supported, not ${ref}`)
    let target: unknown = this.root
    const pointer = ref.slice(1)
    if (pointer !== '') {
      if (!pointer.startsWith('/')) throw new UnsupportedSchemaError('$ref', path, `cannot resolve ${ref}`)
      for (const part of pointer.slice(1).split('/').map(unescapePointer)) {
        target = target != null && typeof target === 'object' ? (target as Record<string, unknown>)[part] : undefined
      }
    }
    if (typeof target !== 'boolean' && !isObj(target)) throw new UnsupportedSchemaError('$ref', path, `cannot resolve ${ref}`)
    return target
  }

  compile (schema: unknown, path: string): Expr {
    if (schema === true) return call(JSON_RULE)
    if (schema === false) return NEVER
    if (!isObj(schema)) throw new UnsupportedSchemaError('type', path, 'a schema is an object or a boolean')
    for (const key of Object.keys(schema)) {
      if (!ANNOTATIONS.has(key) && !SUPPORTED.has(key)) throw new UnsupportedSchemaError(key, path)
    }
    const keys = constraints(schema)
    if (keys.length === 0) return call(JSON_RULE)
    if (typeof schema.$ref === 'string') {
      if (keys.length === 1) return this.ref(schema.$ref, path)
      const { $ref, ...rest } = schema
      return this.compile(this.merge([{ $ref }, rest], path), path)
    } else if (schema.$ref !== undefined) {
      throw new UnsupportedSchemaError('$ref', path, 'not a string')
    }
    if (schema.allOf !== undefined) {
      if (!Array.isArray(schema.allOf)) throw new UnsupportedSchemaError('allOf', path, 'not an array')
      const { allOf, ...rest } = schema
      return this.compile(this.merge([rest, ...allOf], `${path}/allOf`), path)
    }
    for (const key of ['anyOf', 'oneOf']) {
      if (schema[key] === undefined) continue
      const list = schema[key]
      if (!Array.isArray(list) || list.length === 0) throw new UnsupportedSchemaError(key, path, 'not a non-empty array')
      const { [key]: _list, ...rest } = schema
      const branches: Schema[] = constraints(rest).length === 0 ? list as Schema[] : (list as Schema[]).map((b, i) => this.merge([rest, b], `${path}/${key}/${i}`))
      if (key === 'oneOf') {
        for (let i = 0; i < branches.length; i++) {
          for (let j = i + 1; j < branches.length; j++) {
            // disjoint as written, or once the sibling keywords are merged in
            if (!this.disjoint(list[i] as Schema, list[j] as Schema, path) && !this.disjoint(branches[i], branches[j], path)) throw new UnsupportedSchemaError('oneOf', `${path}/oneOf/${j}`, `cannot guarantee that an output matches only one branch (branches ${i} and ${j} may overlap); use anyOf, or distinct types, or a required property with distinct const values`)
          }
        }
      }
      return alt(...branches.map((b, i) => this.compile(b, `${path}/${key}/${i}`)))
    }
    const types = this.types(schema, path)
    if (schema.enum !== undefined || schema.const !== undefined) return this.values(schema, types, path)
    if (types == null) return call(JSON_RULE)
    return alt(...types.map(t => this.typed(schema, t, path)))
  }

  private ref (ref: string, path: string): Expr {
    const name = `${this.prefix}:${ref}`
    if (!this.rules.has(name)) {
      this.rules.set(name, NEVER)
      this.rules.set(name, this.compile(this.resolve(ref, path), ref.slice(1)))
    }
    return call(name)
  }

  /** Declared or implied types; null for "anything". */
  private types (schema: Obj, path: string): string[] | null {
    if (schema.type !== undefined) {
      const list = Array.isArray(schema.type) ? schema.type : [schema.type]
      for (const t of list) if (typeof t !== 'string' || !TYPES.includes(t)) throw new UnsupportedSchemaError('type', path, `unknown type ${JSON.stringify(t)}`)
      let types = [...new Set(list as string[])]
      if (types.includes('number')) types = types.filter(t => t !== 'integer')
      return types
    }
    if (schema.enum !== undefined || schema.const !== undefined) return null
    const implied: string[] = []
    if (OBJECT_KEYWORDS.some(k => k in schema)) implied.push('object')
    if (ARRAY_KEYWORDS.some(k => k in schema)) implied.push('array')
    if (STRING_KEYWORDS.some(k => k in schema)) implied.push('string')
    if (NUMBER_KEYWORDS.some(k => k in schema)) implied.push('number')
    return implied.length === 0 ? null : implied
  }

  private values (schema: Obj, types: string[] | null, path: string): Expr {
    let values: unknown[]
    if (schema.enum !== undefined) {
      if (!Array.isArray(schema.enum)) throw new UnsupportedSchemaError('enum', path, 'not an array')
      values = schema.enum
      if (schema.const !== undefined) values = values.filter(v => JSON.stringify(v) === JSON.stringify(schema.const))
    } else {
      values = [schema.const]
    }
    if (types != null) values = values.filter(v => types.some(t => hasType(v, t) || (t === 'number' && hasType(v, 'integer'))))
    let texts = [...new Set(values.map(v => JSON.stringify(v)))].filter(t => t !== undefined)
    const { enum: _e, const: _c, type: _t, ...rest } = schema
    if (constraints(rest).length > 0) {
      // keep the values that the rest of the schema, as compiled here, would generate itself: valid, then
      const dfa = new Dfa(new Nfa(this.compile(rest, path), this.rules), ALL_BYTES)
      texts = texts.filter(t => accepts(dfa, t))
    }
    return alt(...texts.map(lit))
  }

  private typed (schema: Obj, type: string, path: string): Expr {
    switch (type) {
      case 'null': return lit('null')
      case 'boolean': return alt(lit('true'), lit('false'))
      case 'string': return this.string(schema, path)
      case 'integer': return this.number(schema, true, path)
      case 'number': return this.number(schema, false, path)
      case 'array': return this.array(schema, path)
      default: return this.object(schema, path)
    }
  }

  private count (schema: Obj, key: string, path: string): number | undefined {
    const v = schema[key]
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new UnsupportedSchemaError(key, path, 'not a non-negative integer')
    return v
  }

  private string (schema: Obj, path: string): Expr {
    const min = this.count(schema, 'minLength', path) ?? 0
    const max = this.count(schema, 'maxLength', path) ?? Infinity
    if (min > 100_000) throw new UnsupportedSchemaError('minLength', path, 'too large')
    let x: Expr = rep({ k: 'any' }, 0)
    // several patterns (allOf merges them into a list) and a format: the string matches them all
    const parts: Expr[] = []
    if (schema.pattern !== undefined) {
      const patterns = Array.isArray(schema.pattern) ? schema.pattern : [schema.pattern]
      for (const p of patterns) {
        if (typeof p !== 'string') throw new UnsupportedSchemaError('pattern', path, 'not a string')
        parts.push(this.regex(p, 'pattern', path))
      }
    }
    if (schema.format !== undefined) {
      const format = schema.format as string
      const re = FORMATS[format]
      if (re != null) parts.push(this.regex(re, 'format', path))
      else if (!NON_VALIDATING_FORMATS.has(format)) throw new UnsupportedSchemaError('format', path, `format ${JSON.stringify(format)} is not supported`)
    }
    if (parts.length === 1) x = parts[0]
    else if (parts.length > 1) x = { k: 'and', xs: parts }
    if (min > max) return NEVER
    if (x.k === 'rep' && max !== Infinity && max > 100_000) throw new UnsupportedSchemaError('maxLength', path, 'too large')
    return { k: 'str', x, min, max }
  }

  private regex (pattern: string, keyword: string, path: string): Expr {
    try {
      return compileRegex(pattern)
    } catch (err) {
      if (err instanceof RegexError) throw new UnsupportedSchemaError(keyword, path, err.message)
      throw err
    }
  }

  private number (schema: Obj, integer: boolean, path: string): Expr {
    const range: NumberRange = {}
    const bound = (key: string, exclusive: boolean): Bound | undefined => {
      const v = schema[key]
      if (v === undefined) return undefined
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new UnsupportedSchemaError(key, path, 'not a finite number')
      return { value: v, exclusive }
    }
    const lowers = [bound('minimum', false), bound('exclusiveMinimum', true)].filter(b => b != null)
    const uppers = [bound('maximum', false), bound('exclusiveMaximum', true)].filter(b => b != null)
    range.lower = lowers.sort((a, b) => b.value - a.value || Number(b.exclusive) - Number(a.exclusive))[0]
    range.upper = uppers.sort((a, b) => a.value - b.value || Number(b.exclusive) - Number(a.exclusive))[0]
    const m = schema.multipleOf
    if (m === undefined) return integer ? integerExpr(range) : numberExpr(range)
    if (typeof m !== 'number' || !(m > 0) || !Number.isFinite(m)) throw new UnsupportedSchemaError('multipleOf', path, 'not a positive number')
    // 1, or for integers 1/2^k: every (safe) integer passes ajv's check, v / m being exact
    if (m === 1 || (integer && m < 1 && Number.isInteger(Math.log2(m)))) return integerExpr(range)
    // enumerate the multiples in range, each checked the way ajv checks it
    const ok = (v: number): boolean => {
      const r = v / m
      return r === parseInt(String(r)) && (!integer || Number.isInteger(v))
    }
    const inRange = (v: number): boolean =>
      (range.lower == null || (range.lower.exclusive ? v > range.lower.value : v >= range.lower.value)) &&
      (range.upper == null || (range.upper.exclusive ? v < range.upper.value : v <= range.upper.value))
    let lo: number
    let hi: number
    if (integer || Number.isInteger(m)) {
      const [a, b] = integerBounds(range)
      lo = Number(a); hi = Number(b)
    } else {
      lo = range.lower?.value ?? -Infinity
      hi = range.upper?.value ?? Infinity
    }
    const first = Math.ceil(lo / m)
    const last = Math.floor(hi / m)
    if (!(last - first <= 5000) && (integer || Number.isInteger(m))) {
      const [a, b] = integerBounds(range)
      const multiples = multiplesExpr(a, b, m)
      if (multiples != null) return multiples
    }
    if (!(last - first <= 5000)) throw new UnsupportedSchemaError('multipleOf', path, 'only an integer dividing 1000, 1/2^k for integers, or with minimum and maximum that leave at most 5000 multiples')
    const texts: string[] = []
    for (let q = first; q <= last; q++) {
      const v = q * m
      if (Number.isFinite(v) && inRange(v) && ok(v)) texts.push(JSON.stringify(Object.is(v, -0) ? 0 : v))
    }
    return alt(...texts.map(lit))
  }

  private array (schema: Obj, path: string): Expr {
    const min = this.count(schema, 'minItems', path) ?? 0
    const max = this.count(schema, 'maxItems', path) ?? Infinity
    if (schema.uniqueItems === true && max > 1) throw new UnsupportedSchemaError('uniqueItems', path, 'unique items cannot be guaranteed')
    if (min > 10_000) throw new UnsupportedSchemaError('minItems', path, 'too large')
    let prefix: unknown[] = []
    let items: unknown = schema.items
    if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems)) throw new UnsupportedSchemaError('prefixItems', path, 'not an array')
      prefix = schema.prefixItems
    }
    if (Array.isArray(items)) {
      if (schema.prefixItems !== undefined) throw new UnsupportedSchemaError('items', path, 'an array of items together with prefixItems')
      prefix = items
      items = false // generate only the tuple: valid whether or not additional items are allowed
    }
    if (min > max) return NEVER
    const prefixExprs = prefix.slice(0, max === Infinity ? prefix.length : max).map((s, i) => this.compile(s, `${path}/prefixItems/${i}`))
    let rest = items === false ? null : this.compile(items === undefined ? true : items, `${path}/items`)
    const copies = max === Infinity ? min + 1 : max
    if (rest != null && copies > 4 && exprSize(rest) * copies > 20_000) {
      // many copies of a large item: one shared rule, called from each position
      const name = `${this.prefix}:items#${this.rules.size}`
      this.rules.set(name, rest)
      rest = call(name)
    }
    return seq(lit('['), list(prefixExprs, rest, min, max), lit(']'))
  }

  private object (schema: Obj, path: string): Expr {
    const props = schema.properties ?? {}
    if (!isObj(props)) throw new UnsupportedSchemaError('properties', path, 'not an object')
    const required = schema.required ?? []
    if (!Array.isArray(required) || required.some(r => typeof r !== 'string')) throw new UnsupportedSchemaError('required', path, 'not an array of strings')
    const ap = schema.additionalProperties
    let names = Object.keys(props)
    // propertyNames: every key is a string that matches it
    let keyOk = (_name: string): boolean => true
    let keyExpr: Expr | null = null
    if (schema.propertyNames !== undefined) {
      const keys = this.merge([{ type: 'string' }, schema.propertyNames], `${path}/propertyNames`)
      keyExpr = this.compile(keys, `${path}/propertyNames`)
      const dfa = new Dfa(new Nfa(keyExpr, this.rules), ALL_BYTES)
      keyOk = name => accepts(dfa, JSON.stringify(name))
      if ((required as string[]).some(r => !keyOk(r))) return NEVER
      names = names.filter(keyOk)
    }
    if (names.length === 0 && required.length === 0 && ap !== false) {
      if ((ap === undefined || ap === true) && keyExpr == null) return call(OBJECT_RULE)
      return mapOf(ap === undefined ? call(JSON_RULE) : this.compile(ap, `${path}/additionalProperties`), keyExpr ?? undefined)
    }
    const items: ObjItem[] = []
    for (const name of names) {
      const req = required.includes(name)
      const value = props[name]
      if (value === false && !req) continue
      items.push({ key: lit(JSON.stringify(name)), value: this.compile(value, `${path}/properties/${name}`), required: req })
    }
    for (const name of new Set(required as string[])) {
      if (name in props) continue
      if (ap === false) return NEVER
      const value = ap === undefined ? true : ap
      items.push({ key: lit(JSON.stringify(name)), value: this.compile(value, `${path}/additionalProperties`), required: true })
    }
    return { k: 'obj', items }
  }

  // ---- allOf: simple merges ----

  /** Merges schemas that must all hold into one, or refuses the keyword it cannot merge. */
  merge (parts: unknown[], path: string, seen: Set<string> = new Set()): Schema {
    const flat: Obj[] = []
    const add = (s: unknown, seenRefs: Set<string>): boolean => {
      if (s === true) return true
      if (s === false) return false
      if (!isObj(s)) throw new UnsupportedSchemaError('allOf', path, 'a subschema is not a schema')
      for (const key of Object.keys(s)) if (!ANNOTATIONS.has(key) && !SUPPORTED.has(key)) throw new UnsupportedSchemaError(key, path)
      const { $ref, allOf, ...rest } = { ...s }
      if ($ref !== undefined) {
        if (typeof $ref !== 'string') throw new UnsupportedSchemaError('$ref', path, 'not a string')
        if (seenRefs.has($ref)) throw new UnsupportedSchemaError('$ref', path, `recursive ${$ref} inside allOf or beside other keywords`)
        if (!add(this.resolve($ref, path), new Set([...seenRefs, $ref]))) return false
      }
      if (allOf !== undefined) {
        if (!Array.isArray(allOf)) throw new UnsupportedSchemaError('allOf', path, 'not an array')
        for (const a of allOf) if (!add(a, seenRefs)) return false
      }
      if (Array.isArray(rest.oneOf) && flat.some(f => f.oneOf !== undefined)) {
        // a second oneOf: with pairwise disjoint branches it is an anyOf, which merges
        const branches = rest.oneOf
        if (branches.every((b, i) => branches.every((c, j) => j <= i || this.disjoint(b as Schema, c as Schema, path)))) {
          delete rest.oneOf
          flat.push({ anyOf: branches })
        }
      }
      flat.push(rest)
      return true
    }
    for (const p of parts) if (!add(p, seen)) return false
    // arrays: each part constrains position i by its prefixItems[i], else its items; so does the merge
    const arrays = flat.filter(f => f.items !== undefined || f.prefixItems !== undefined)
    if (arrays.length > 1) {
      const shape = arrays.map(f => {
        if (Array.isArray(f.items)) return { prefix: f.items as unknown[], items: true as unknown }
        return { prefix: Array.isArray(f.prefixItems) ? f.prefixItems : [], items: f.items ?? true }
      })
      const length = Math.max(...shape.map(a => a.prefix.length))
      const at = (a: { prefix: unknown[], items: unknown }, i: number): unknown => i < a.prefix.length ? a.prefix[i] : a.items
      const prefixItems = Array.from({ length }, (_, i) => ({ allOf: shape.map(a => at(a, i)) }))
      const items = { allOf: shape.map(a => a.items) }
      for (const f of arrays) { delete f.items; delete f.prefixItems }
      flat.push(length > 0 ? { prefixItems, items } : { items })
    }
    const out: Obj = {}
    const closed: Obj[] = []
    for (const s of flat) {
      for (const [key, value] of Object.entries(s)) {
        if (ANNOTATIONS.has(key)) continue
        if (!(key in out)) { out[key] = value; if (key === 'additionalProperties' && value === false) closed.push(s); continue }
        const cur = out[key]
        switch (key) {
          case 'type': {
            const a = new Set(Array.isArray(cur) ? cur : [cur])
            const b = new Set(Array.isArray(value) ? value : [value])
            const both = [...a].filter(t => b.has(t) || (t === 'integer' && b.has('number')))
            for (const t of b) if (t === 'integer' && a.has('number') && !both.includes('integer')) both.push('integer')
            if (both.length === 0) return false
            out.type = both
            break
          }
          case 'properties': {
            const merged: Obj = { ...(cur as Obj) }
            for (const [name, sub] of Object.entries(value as Obj)) merged[name] = name in merged ? { allOf: [merged[name], sub] } : sub
            out.properties = merged
            break
          }
          case 'required': out.required = [...new Set([...(cur as string[]), ...(value as string[])])]; break
          case 'minimum': case 'exclusiveMinimum': case 'minLength': case 'minItems':
            out[key] = Math.max(cur as number, value as number); break
          case 'maximum': case 'exclusiveMaximum': case 'maxLength': case 'maxItems':
            out[key] = Math.min(cur as number, value as number); break
          case 'enum': out.enum = (cur as unknown[]).filter(v => (value as unknown[]).some(w => JSON.stringify(w) === JSON.stringify(v))); break
          case 'items': out.items = { allOf: [cur, value] }; break
          case 'const': if (JSON.stringify(cur) !== JSON.stringify(value)) return false; break
          case 'pattern': out.pattern = [...new Set([cur, value].flat())]; break
          case 'anyOf': {
            // (a1 ∨ a2) ∧ (b1 ∨ b2) = (a1 ∧ b1) ∨ (a1 ∧ b2) ∨ …
            const a = cur as unknown[]
            const b = value as unknown[]
            if (!Array.isArray(a) || !Array.isArray(b) || a.length * b.length > 64) throw new UnsupportedSchemaError('anyOf', path, 'too many combinations of anyOf in allOf')
            out.anyOf = a.flatMap(x => b.map(y => ({ allOf: [x, y] })))
            break
          }
          case 'additionalProperties':
            if (value === false) closed.push(s)
            if (cur === false || value === false) { out.additionalProperties = false; break }
            if (JSON.stringify(cur) !== JSON.stringify(value)) out.additionalProperties = { allOf: [cur, value] }
            break
          default:
            if (JSON.stringify(cur) !== JSON.stringify(value)) throw new UnsupportedSchemaError(key, path, 'differing values in allOf that cannot be merged')
        }
      }
    }
    if (closed.length > 0) {
      // each subschema with additionalProperties false admits only its own properties
      const allowed = closed.map(s => new Set(Object.keys((s.properties ?? {}) as Obj)))
      const props = (out.properties ?? {}) as Obj
      out.properties = Object.fromEntries(Object.entries(props).filter(([name]) => allowed.every(a => a.has(name))))
      if (((out.required ?? []) as string[]).some(r => !allowed.every(a => a.has(r)))) return false
      if (flat.some(s => s.additionalProperties !== undefined && s.additionalProperties !== false)) throw new UnsupportedSchemaError('additionalProperties', path, 'a schema and false in allOf')
    }
    return out
  }

  // ---- oneOf: disjointness ----

  /** The JSON kinds (integer counted as number) a schema can accept, as ajv sees it. */
  private kinds (schema: unknown, path: string, depth = 0): Set<string> {
    if (schema === false) return new Set()
    if (!isObj(schema) || depth > 16) return new Set(KINDS)
    let set = new Set(KINDS)
    const restrict = (other: Set<string>): void => { set = new Set([...set].filter(k => other.has(k))) }
    if (typeof schema.$ref === 'string') restrict(this.kinds(this.resolve(schema.$ref, path), path, depth + 1))
    if (schema.type !== undefined) restrict(new Set((Array.isArray(schema.type) ? schema.type : [schema.type]).map(t => t === 'integer' ? 'number' : String(t))))
    if (schema.const !== undefined) restrict(new Set([kindOf(schema.const)]))
    if (Array.isArray(schema.enum)) restrict(new Set(schema.enum.map(kindOf)))
    for (const key of ['anyOf', 'oneOf']) {
      if (Array.isArray(schema[key])) {
        const union = new Set<string>()
        for (const b of schema[key] as unknown[]) for (const k of this.kinds(b, path, depth + 1)) union.add(k)
        restrict(union)
      }
    }
    if (Array.isArray(schema.allOf)) for (const b of schema.allOf) restrict(this.kinds(b, path, depth + 1))
    return set
  }

  private constValues (schema: unknown, path: string): string[] | null {
    if (!isObj(schema)) return null
    if (typeof schema.$ref === 'string' && constraints(schema).length === 1) return this.constValues(this.resolve(schema.$ref, path), path)
    if (schema.const !== undefined) return [JSON.stringify(schema.const)]
    if (Array.isArray(schema.enum)) return schema.enum.map(v => JSON.stringify(v))
    return null
  }

  /** Whether no value can validate against both (conservatively: distinct kinds, or a required property with distinct constants). */
  private disjoint (a: Schema, b: Schema, path: string): boolean {
    const ka = this.kinds(a, path)
    const kb = this.kinds(b, path)
    if (![...ka].some(k => kb.has(k))) return true
    if (!isObj(a) || !isObj(b)) return false
    const ca = this.constValues(a, path)
    const cb = this.constValues(b, path)
    if (ca != null && cb != null && constraints(a).every(k => ['const', 'enum', 'type', '$ref'].includes(k)) && constraints(b).every(k => ['const', 'enum', 'type', '$ref'].includes(k))) {
      // constants: ajv compares deeply, JSON texts of distinct values differ unless key order does
      return !ca.some(v => cb.includes(v)) && [...ca, ...cb].every(v => !v.startsWith('{'))
    }
    if ([...ka, ...kb].some(k => k !== 'object')) return false
    const ra = (a.required ?? []) as string[]
    const rb = (b.required ?? []) as string[]
    for (const p of ra) {
      if (!rb.includes(p)) continue
      const va = this.constValues((a.properties as Obj | undefined)?.[p], path)
      const vb = this.constValues((b.properties as Obj | undefined)?.[p], path)
      if (va != null && vb != null && !va.some(v => vb.includes(v))) return true
    }
    return false
  }
}

/** Elements separated by commas: prefix[i] at position i, then rest; min..max of them in all. */
export function list (prefix: Expr[], rest: Expr | null, min: number, max: number): Expr {
  const p = Math.min(prefix.length, max)
  if (rest == null && min > p) return NEVER
  if (max === 0) return EMPTY
  const comma = lit(',')
  const tail = (i: number): Expr => {
    if (i >= p) return rest == null ? EMPTY : rep(seq(comma, rest), Math.max(0, min - i), max - i)
    const x = seq(comma, prefix[i], tail(i + 1))
    return i >= min ? opt(x) : x
  }
  const first = p > 0 ? seq(prefix[0], tail(1)) : rest == null ? NEVER : seq(rest, tail(1))
  return min === 0 ? opt(first) : first
}

/** Throws UnsupportedSchemaError, naming the keyword, if the schema cannot be enforced exactly; needs no vocabulary. */
export function checkSchema (schema: object): void {
  const rules = new Map<string, Expr>()
  new SchemaCompiler(schema, rules).compileRoot()
}
