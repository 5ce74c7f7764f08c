import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { z } from 'zod'
import { checkSchema, compileGrammar, UnsatisfiableGrammarError, UnsupportedSchemaError } from '../src/index.ts'
import { byteVocabulary, defaultVocabulary, generate, newAjv } from './helpers.ts'

const ajv = newAjv()

/** Whether the grammar of the schema admits exactly this text. */
function accepts (schema: unknown, text: string): boolean {
  const m = compileGrammar({ type: 'json-schema', schema: schema as object }, byteVocabulary()).matcher()
  for (const b of new TextEncoder().encode(text)) {
    if (!m.tokenMask().has(b)) return false
    m.accept(b)
  }
  return m.complete
}

/** Outputs of the random model on the default vocabulary; each validates. */
function outputs (schema: object, n = 20, budget = 120): unknown[] {
  const g = compileGrammar({ type: 'json-schema', schema }, defaultVocabulary())
  const validate = ajv.compile(schema)
  return Array.from({ length: n }, (_, seed) => {
    const out = generate(g, seed + 1, Math.max(budget, g.minTokens))
    assert.ok(out.complete, out.text)
    const value = JSON.parse(out.text)
    assert.ok(validate(value), `${out.text}: ${ajv.errorsText(validate.errors)}`)
    return value
  })
}

function refuses (schema: object, keyword: string, path?: string): void {
  for (const f of [() => checkSchema(schema), () => compileGrammar({ type: 'json-schema', schema }, byteVocabulary())]) {
    assert.throws(f, (err: unknown) => {
      assert.ok(err instanceof UnsupportedSchemaError)
      assert.equal(err.name, 'UnsupportedSchemaError')
      assert.equal(err.keyword, keyword)
      assert.ok(err.message.startsWith(`unsupported JSON Schema keyword "${keyword}" at `), err.message)
      if (path != null) assert.equal(err.path, path)
      return true
    })
  }
}

describe('schema: types', () => {
  it('generates each type, type arrays, and any value for {} and true', () => {
    for (const type of ['string', 'number', 'integer', 'boolean', 'null', 'object', 'array']) {
      for (const v of outputs({ type }, 5)) assert.ok(ajv.validate({ type }, v))
    }
    const kinds = new Set(outputs({ type: ['string', 'null'] }, 30).map(v => v === null ? 'null' : typeof v))
    assert.deepEqual([...kinds].sort(), ['null', 'string'])
    outputs({}, 10)
    assert.ok(accepts(true, '{"a":[1,"x",null]}'))
    assert.ok(!accepts(true, '{"a" : 1}'), 'compact: no whitespace')
  })

  it('writes compact JSON strings with escapes, and refuses raw control characters', () => {
    assert.ok(accepts({ type: 'string' }, '"a\\"b\\\\c\\n\\u00e9\\/"'))
    assert.ok(accepts({ type: 'string' }, '"héllo 😀"'))
    assert.ok(!accepts({ type: 'string' }, '"a\nb"'))
    assert.ok(!accepts({ type: 'string' }, '"\\ud800"'), 'no lone surrogate escapes')
    assert.ok(!accepts({ type: 'string' }, '"\\x"'))
  })
})

describe('schema: objects', () => {
  const schema = { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' }, tag: { type: 'string' } }, required: ['id', 'tag'], additionalProperties: false }

  it('keeps declaration order, requires required properties, may omit optional ones', () => {
    assert.ok(accepts(schema, '{"id":1,"name":"x","tag":"t"}'))
    assert.ok(accepts(schema, '{"id":1,"tag":"t"}'))
    assert.ok(!accepts(schema, '{"tag":"t","id":1}'))
    assert.ok(!accepts(schema, '{"id":1}'))
    assert.ok(!accepts(schema, '{"id":1,"tag":"t","other":1}'))
    const seen = new Set(outputs(schema, 40).map(v => Object.keys(v as object).join(',')))
    assert.ok(seen.has('id,tag') && seen.has('id,name,tag'), [...seen].join(' '))
  })

  it('generates only declared properties when additionalProperties is not false; free-form or a map when none are declared', () => {
    assert.ok(!accepts({ type: 'object', properties: { a: { type: 'null' } } }, '{"a":null,"b":1}'))
    assert.ok(accepts({ type: 'object' }, '{"b":1,"c":[]}'))
    const map = { type: 'object', additionalProperties: { type: 'integer' } }
    assert.ok(accepts(map, '{"x":1,"y":2}'))
    assert.ok(!accepts(map, '{"x":"1"}'))
    outputs(map, 10)
  })

  it('propertyNames constrains the keys of maps and filters declared properties', () => {
    const map = { type: 'object', propertyNames: { pattern: '^[a-z]{1,3}$' }, additionalProperties: { type: 'integer' } }
    assert.ok(accepts(map, '{"ab":1,"c":2}'))
    assert.ok(!accepts(map, '{"AB":1}'))
    outputs(map, 10)
    outputs({ type: 'object', propertyNames: { type: 'string' }, additionalProperties: { type: 'number' } }, 5)
    outputs({ type: 'object', propertyNames: { enum: ['x', 'y'] } }, 10)
    const declared = { type: 'object', properties: { ok: { type: 'null' }, NO: { type: 'null' } }, propertyNames: { pattern: '^[a-z]+$' } }
    assert.ok(!accepts(declared, '{"ok":null,"NO":null}'))
    assert.ok(accepts(declared, '{"ok":null}'))
  })

  it('escapes property names', () => {
    const s = { type: 'object', properties: { 'a"b': { const: 1 }, 'ü\\': { const: 2 } }, required: ['a"b', 'ü\\'] }
    assert.deepEqual(outputs(s, 2), [{ 'a"b': 1, 'ü\\': 2 }, { 'a"b': 1, 'ü\\': 2 }])
  })
})

describe('schema: arrays', () => {
  it('items, minItems, maxItems', () => {
    const s = { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 2, maxItems: 3 }
    assert.ok(accepts(s, '[1,2]'))
    assert.ok(accepts(s, '[1,2,3]'))
    assert.ok(!accepts(s, '[1]'))
    assert.ok(!accepts(s, '[1,2,3,4]'))
    assert.ok(!accepts(s, '[10,2]'))
    outputs(s)
  })

  it('prefixItems, with or without further items; items as an array is a tuple', () => {
    const tuple = { type: 'array', prefixItems: [{ type: 'string' }, { type: 'boolean' }], items: false, minItems: 1 }
    assert.ok(accepts(tuple, '["a"]'))
    assert.ok(accepts(tuple, '["a",true]'))
    assert.ok(!accepts(tuple, '["a",true,1]'))
    assert.ok(!accepts(tuple, '[]'))
    const open = { type: 'array', prefixItems: [{ const: 'x' }], items: { type: 'null' } }
    assert.ok(accepts(open, '["x",null,null]'))
    assert.ok(accepts({ type: 'array', items: [{ type: 'integer' }] }, '[1]'))
    outputs(tuple)
    outputs(open)
  })
})

describe('schema: enum, const, composition', () => {
  it('enum and const of any JSON value', () => {
    const values = [1, 'a', null, { x: [true] }, [1, 2]]
    const got = new Set(outputs({ enum: values }, 40).map(v => JSON.stringify(v)))
    for (const v of got) assert.ok(values.some(w => JSON.stringify(w) === v))
    assert.ok(got.size >= 3)
    assert.deepEqual(outputs({ const: { a: [1, { b: null }] } }, 2), [{ a: [1, { b: null }] }, { a: [1, { b: null }] }])
    assert.ok(!accepts({ type: 'string', enum: ['a', 1] }, '1'), 'type filters enum values')
    assert.ok(!accepts({ enum: ['ab', 'abcdef'], maxLength: 3 }, '"abcdef"'), 'other keywords filter enum values')
  })

  it('anyOf, oneOf with disjoint branches, allOf merges', () => {
    outputs({ anyOf: [{ type: 'integer' }, { type: 'string', maxLength: 2 }] })
    outputs({ oneOf: [{ type: 'string' }, { type: 'number' }, { type: 'null' }] })
    const union = {
      oneOf: [
        { type: 'object', properties: { kind: { const: 'circle' }, r: { type: 'number' } }, required: ['kind', 'r'] },
        { type: 'object', properties: { kind: { const: 'square' }, side: { type: 'number' } }, required: ['kind', 'side'] }
      ]
    }
    outputs(union)
    outputs({ oneOf: [{ const: 'a', description: 'the first' }, { const: 'b' }, { enum: [1, [2]] }] })
    refuses({ oneOf: [{ const: 'a' }, { enum: ['b', 'a'] }] }, 'oneOf')
    const merged = { allOf: [{ type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] }, { properties: { b: { type: 'string' } }, required: ['b'] }] }
    assert.ok(accepts(merged, '{"a":1,"b":"x"}'))
    assert.ok(!accepts(merged, '{"a":1}'))
    outputs(merged)
    assert.ok(accepts({ allOf: [{ type: 'integer', minimum: 2 }, { maximum: 5 }] }, '5'))
    assert.ok(!accepts({ allOf: [{ type: 'integer', minimum: 2 }, { maximum: 5 }] }, '6'))
  })

  it('refuses oneOf branches that may overlap', () => {
    refuses({ oneOf: [{ type: 'string' }, { type: 'string', maxLength: 2 }] }, 'oneOf')
    refuses({ oneOf: [{ type: 'integer' }, { type: 'number' }] }, 'oneOf')
    refuses({ oneOf: [{ type: 'object' }, {}] }, 'oneOf')
  })

  it('$ref to $defs and definitions, recursive within the depth bound', () => {
    const s = { $defs: { p: { type: 'object', properties: { x: { type: 'integer' } }, required: ['x'] } }, definitions: { q: { type: 'boolean' } }, type: 'array', items: { anyOf: [{ $ref: '#/$defs/p' }, { $ref: '#/definitions/q' }] } }
    assert.ok(accepts(s, '[{"x":1},true]'))
    outputs(s)
    const tree = { type: 'object', properties: { kids: { type: 'array', items: { $ref: '#' } } }, required: ['kids'] }
    assert.ok(accepts(tree, '{"kids":[{"kids":[]},{"kids":[{"kids":[]}]}]}'))
    outputs(tree, 20, 60)
    assert.throws(() => compileGrammar({ type: 'json-schema', schema: { type: 'object', properties: { self: { $ref: '#' } }, required: ['self'] } }, byteVocabulary()), UnsatisfiableGrammarError)
  })
})

describe('schema: numbers', () => {
  it('integer ranges are exact, including exclusive and fractional bounds', () => {
    const cases = [[0, 120], [-15, 7], [95, 1005], [-1000, -990], [3, 3]]
    for (const [lo, hi] of cases) {
      const s = { type: 'integer', minimum: lo, maximum: hi }
      for (let n = lo - 25; n <= hi + 25; n++) assert.equal(accepts(s, String(n)), n >= lo && n <= hi, `${n} in [${lo}, ${hi}]`)
    }
    const ex = { type: 'integer', exclusiveMinimum: 2.5, exclusiveMaximum: 7 }
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].filter(n => accepts(ex, String(n))), [3, 4, 5, 6])
    assert.ok(!accepts({ type: 'integer' }, '01'))
    assert.ok(!accepts({ type: 'integer' }, '-0'))
    assert.ok(!accepts({ type: 'integer' }, '1.0'))
    assert.ok(!accepts({ type: 'integer' }, '99999999999999999'), 'beyond the safe range')
  })

  it('number bounds are exact on the doubles, with up to 6 fraction digits', () => {
    const s = { type: 'number', minimum: 0.1, exclusiveMaximum: 0.3 }
    const check = (t: string): boolean => Number(t) >= 0.1 && Number(t) < 0.3
    for (const t of ['0.1', '0.10', '0.2', '0.299999', '0.3', '0.30', '0.09', '0', '1', '-0.2', '0.25', '0.1000001']) {
      if (accepts(s, t)) assert.ok(check(t), t)
    }
    assert.ok(accepts(s, '0.2') && accepts(s, '0.299999') && !accepts(s, '0.3') && !accepts(s, '0.09'))
    assert.ok(accepts({ type: 'number', exclusiveMinimum: -1, maximum: -0.5 }, '-0.75'))
    assert.ok(!accepts({ type: 'number', exclusiveMinimum: -1, maximum: -0.5 }, '-1'))
    outputs({ type: 'number', minimum: -2.5, maximum: 1e-3 })
  })

  it('multipleOf: 1, or enumerable within bounds; otherwise refused', () => {
    assert.ok(accepts({ type: 'number', multipleOf: 1 }, '12'))
    assert.ok(!accepts({ type: 'number', multipleOf: 1 }, '1.5'))
    const s = { type: 'number', minimum: 0, maximum: 1, multipleOf: 0.25 }
    assert.ok(accepts(s, '0.75'))
    assert.ok(!accepts(s, '0.5000001'))
    outputs(s)
    outputs({ type: 'integer', minimum: -20, maximum: 40, multipleOf: 7 })
    refuses({ type: 'integer', multipleOf: 3 }, 'multipleOf')
    // unbounded, for divisors of 1000: the last digits decide
    const fives = { type: 'number', minimum: -7, multipleOf: 5 }
    for (let n = -30; n <= 2000; n++) assert.equal(accepts(fives, String(n)), n >= -7 && n % 5 === 0, String(n))
    const eights = { type: 'integer', minimum: 12345, maximum: 99999, multipleOf: 8 }
    for (let n = 12000; n <= 13000; n++) assert.equal(accepts(eights, String(n)), n >= 12345 && n % 8 === 0, String(n))
    assert.ok(accepts(eights, '99992') && !accepts(eights, '100000'))
    outputs({ type: 'integer', multipleOf: 25 })
  })
})

describe('schema: strings', () => {
  it('minLength and maxLength count code points', () => {
    const s = { type: 'string', minLength: 2, maxLength: 3 }
    assert.ok(accepts(s, '"ab"'))
    assert.ok(accepts(s, '"😀é"'))
    assert.ok(accepts(s, '"\\n\\u0041x"'))
    assert.ok(!accepts(s, '"a"'))
    assert.ok(!accepts(s, '"abcd"'))
    outputs(s)
  })

  it('formats pass ajv-formats', () => {
    for (const format of ['date', 'time', 'date-time', 'email', 'uuid', 'ipv4', 'ipv6', 'uri', 'hostname']) outputs({ type: 'string', format }, 15, 200)
    assert.ok(!accepts({ type: 'string', format: 'date' }, '"2023-02-30"'))
    outputs({ type: 'string', format: 'hostname', maxLength: 8 }, 10)
  })

  it('patterns: classes, quantifiers, groups, alternation, anchors; unanchored means anywhere', () => {
    const s = { type: 'string', pattern: '^(?:[A-Z]{2}|x+)-\\d{1,3}$' }
    assert.ok(accepts(s, '"AB-12"'))
    assert.ok(accepts(s, '"xxx-1"'))
    assert.ok(!accepts(s, '"AB-1234"'))
    assert.ok(!accepts(s, '"ab-1"'))
    assert.ok(accepts({ type: 'string', pattern: 'needle' }, '"hay needle hay"'))
    assert.ok(accepts({ type: 'string', pattern: '^[^a-z]*$' }, '"A\\"\\\\"'), 'escaped quote and backslash in a class')
    for (const pattern of ['^[a-f0-9]{4,8}$', '^(foo|bar)baz?$', '^\\w+\\s\\w+$', '^.{2}$', '^[\\u0100-\\u017f]+$']) outputs({ type: 'string', pattern }, 10)
  })

  it('a format and patterns together (as zod writes them, and allOf merges them) match all of them', () => {
    const s = { type: 'string', format: 'date', allOf: [{ pattern: '^2024-' }, { pattern: '-1[0-9]$' }] }
    for (const v of outputs(s, 15)) assert.match(v as string, /^2024-\d\d-1\d$/)
    assert.ok(!accepts(s, '"2024-02-30"'))
    outputs({ type: 'string', format: 'email', maxLength: 30, pattern: "^(?:[A-Za-z0-9_'+\\-]+\\.)*[A-Za-z0-9_'+\\-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$" }, 10)
    outputs({ type: 'string', format: 'ends_with', allOf: [{ pattern: '^ab.*' }, { pattern: '.*z$' }] }, 10)
  })

  it('refuses backreferences, lookaround, unknown formats', () => {
    refuses({ type: 'string', pattern: '(a)\\1' }, 'pattern')
    refuses({ type: 'string', pattern: '(?=a)a' }, 'pattern')
    refuses({ type: 'string', pattern: 'a\\bb' }, 'pattern')
    refuses({ type: 'string', format: 'iri' }, 'format')
  })
})

describe('schema: refusals name the keyword', () => {
  it('unknown or unsupported keywords', () => {
    refuses({ type: 'object', properties: { a: { type: 'object', patternProperties: { x: {} } } } }, 'patternProperties', '/properties/a')
    refuses({ type: 'object', minProperties: 1 }, 'minProperties')
    refuses({ type: 'array', contains: { type: 'integer' } }, 'contains')
    refuses({ type: 'array', uniqueItems: true }, 'uniqueItems')
    refuses({ not: { type: 'string' } }, 'not')
    refuses({ if: {}, then: {} }, 'if')
    refuses({ $ref: 'http://example.com/s.json' }, '$ref')
    refuses({ allOf: [{ type: 'string', format: 'date' }, { format: 'email' }] }, 'format')
    assert.throws(() => checkSchema({ type: 'object', properties: { a: { nullable: true } } }), /unsupported JSON Schema keyword "nullable" at \/properties\/a/)
  })

  it('ignores annotations', () => {
    checkSchema({ $schema: 'https://json-schema.org/draft/2020-12/schema', $id: 'x', title: 't', description: 'd', default: 1, examples: [1], type: 'integer' })
  })
})

describe('schema: as zod 4 writes them', () => {
  it('objects with formats, patterns, unions, records, tuples and recursion', () => {
    const shape = z.object({
      email: z.email(),
      url: z.url(),
      id: z.uuid(),
      when: z.iso.datetime(),
      day: z.iso.date(),
      time: z.iso.time(),
      ip: z.ipv4(),
      ip6: z.ipv6(),
      n: z.number().int().positive(),
      f: z.number().min(0).max(1),
      tags: z.array(z.string()).max(3),
      maybe: z.string().nullable().optional(),
      kind: z.enum(['a', 'b']),
      union: z.union([z.object({ t: z.literal('x') }), z.object({ t: z.literal('y') })]),
      tagged: z.discriminatedUnion('k', [z.object({ k: z.literal('p'), v: z.number() }), z.object({ k: z.literal('q') })]),
      record: z.record(z.string(), z.number()),
      tuple: z.tuple([z.string(), z.number()]),
      short: z.string().min(2).max(5).regex(/^[a-z]+$/),
      affixed: z.string().startsWith('ab').endsWith('z'),
      five: z.literal(5)
    })
    const schema = z.toJSONSchema(shape) as object
    checkSchema(schema)
    for (const v of outputs(schema, 10, 600)) assert.deepEqual(shape.safeParse(v).success, true, JSON.stringify(v))
    const node: z.ZodType = z.lazy(() => z.object({ name: z.string().max(4), kids: z.array(node).max(2) }))
    outputs(z.toJSONSchema(node) as object, 10, 200)
  })
})
