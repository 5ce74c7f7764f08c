import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { compileGrammar, MAX_DEPTH, UnsatisfiableGrammarError } from '../src/index.ts'
import type { GrammarSpec, Vocabulary } from '../src/index.ts'
import { byteVocabulary, defaultVocabulary, generate, newAjv, random, sample } from './helpers.ts'

const enc = new TextEncoder()

/** Single bytes (ids 0..255), some multi-byte tokens that span JSON punctuation, and EOS. */
function spanningVocabulary (): Vocabulary {
  const extra = ['":"', '"},{"', '{"', '"}', '"}]', '[{"', '","', 'name', 'true}', '1,', ':"', '"', '\\u00', 'ab"c']
  const tokens = [...Array.from({ length: 256 }, (_, i) => Uint8Array.of(i)), ...extra.map(t => enc.encode(t)), new Uint8Array(0)]
  return { tokens, eos: [tokens.length - 1] }
}

function text (vocab: Vocabulary, ids: number[]): string {
  return new TextDecoder().decode(Buffer.concat(ids.map(id => vocab.tokens[id])))
}

describe('matcher', () => {
  it('masks to -Infinity, allows EOS only when complete, and refuses disallowed tokens', () => {
    const vocab = byteVocabulary()
    const m = compileGrammar({ type: 'literal', text: 'ok' }, vocab).matcher()
    const logits = new Float32Array(300).fill(1)
    m.mask(logits)
    assert.deepEqual([...logits.keys()].filter(i => logits[i] > -Infinity), [0x6f])
    assert.throws(() => m.accept(0x78), /not allowed/)
    assert.throws(() => m.accept(256), /before the output is complete/)
    m.accept(0x6f)
    assert.equal(m.complete, false)
    m.accept(0x6b)
    assert.equal(m.complete, true)
    assert.equal(m.finished, true)
    const after = new Float32Array(257).fill(1)
    m.mask(after)
    assert.deepEqual([...after.keys()].filter(i => after[i] > -Infinity), [256])
  })

  it('a number is complete but not finished: it may continue', () => {
    const m = compileGrammar({ type: 'json-schema', schema: { type: 'integer' } }, byteVocabulary()).matcher()
    m.accept(0x37)
    assert.equal(m.complete, true)
    assert.equal(m.finished, false)
    assert.ok(m.tokenMask().eos)
    assert.ok(m.tokenMask().has(0x30))
  })

  it('lets a token through only if all its bytes are accepted in sequence, across JSON punctuation', () => {
    const vocab = spanningVocabulary()
    const schema = { type: 'array', items: { type: 'object', properties: { name: { type: 'string', maxLength: 4 }, ok: { type: 'boolean' } }, required: ['name', 'ok'] }, minItems: 2, maxItems: 3 }
    const g = compileGrammar({ type: 'json-schema', schema }, vocab)
    const id = (t: string): number => vocab.tokens.findIndex((x, i) => i >= 256 && Buffer.from(x).toString() === t)
    const m = g.matcher()
    assert.ok(m.tokenMask().has(id('[{"')))
    assert.ok(!m.tokenMask().has(id('{"')))
    for (const t of ['[{"', 'name', '":"']) m.accept(id(t))
    assert.ok(m.tokenMask().has(id('ab"c')) === false, 'a token whose bytes leave the string into a wrong place')
    assert.ok(m.tokenMask().has(id('"')))
    assert.ok(!m.tokenMask().has(id('"},{"')), 'ok is required first')
    // a model that loves the long tokens still writes valid output
    const ajv = newAjv()
    const rnd = random(5)
    let used = 0
    for (let seed = 0; seed < 30; seed++) {
      const mm = g.matcher()
      const ids: number[] = []
      const logits = new Float32Array(vocab.tokens.length)
      for (let step = 0; step < 200 && !mm.finished; step++) {
        for (let j = 0; j < logits.length; j++) logits[j] = rnd() * 2 + (j >= 256 ? 6 : 0)
        mm.mask(logits, 200 - step)
        const t = sample(logits, rnd)
        mm.accept(t)
        if (vocab.eos.includes(t)) break
        ids.push(t)
        if (t >= 256) used++
      }
      assert.ok(mm.complete)
      assert.ok(ajv.validate(schema, JSON.parse(text(vocab, ids))), text(vocab, ids))
    }
    assert.ok(used > 30, `long tokens used ${used} times`)
  })

  it('caches: the same spec and vocabulary give the same compiled grammar, the same state the same mask object', () => {
    const vocab = defaultVocabulary()
    const spec: GrammarSpec = { type: 'json-schema', schema: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'string' } } } }
    const g = compileGrammar(spec, vocab)
    assert.equal(compileGrammar({ schema: { properties: { a: { type: 'integer' }, b: { type: 'string' } }, type: 'object' }, type: 'json-schema' } as GrammarSpec, vocab), g, 'key order does not matter…')
    assert.notEqual(compileGrammar({ type: 'json-schema', schema: { type: 'object', properties: { b: { type: 'string' }, a: { type: 'integer' } } } }, vocab), g, '…except the order of properties, which is the output order')
    assert.equal(compileGrammar({ ...spec }, vocab), g)
    assert.notEqual(compileGrammar(spec, { ...vocab }), g, 'another Vocabulary object')
    const m1 = g.matcher()
    const m2 = g.matcher()
    assert.equal(m1.state, m2.state)
    assert.equal(m1.tokenMask(), m2.tokenMask())
    const brace = vocab.tokens.findIndex(t => t.length === 1 && t[0] === 0x7b)
    m1.accept(brace)
    m2.accept(brace)
    assert.equal(m1.tokenMask(), m2.tokenMask())
    const states = g.states
    generate(g, 1, 60)
    const grown = g.states
    generate(g, 1, 60)
    assert.equal(g.states, grown, 'the same walk builds no new state')
    assert.ok(grown >= states)
  })
})

describe('nesting', () => {
  it('bounds free-form JSON and recursive $ref nesting at MAX_DEPTH', () => {
    for (const spec of [{ type: 'json' }, { type: 'json-schema', schema: { type: 'array', items: { $ref: '#' } } }] as GrammarSpec[]) {
      const m = compileGrammar(spec, byteVocabulary()).matcher()
      let depth = 0
      while (m.tokenMask().has(0x5b)) { m.accept(0x5b); depth++ }
      assert.ok(depth >= MAX_DEPTH && depth <= MAX_DEPTH + 1, `${depth}`)
      for (let i = 0; i < depth; i++) m.accept(0x5d)
      assert.ok(m.finished)
    }
  })
})

describe('budget', () => {
  it('completes within any budget ≥ minTokens, on a model that never wants to stop', () => {
    const vocab = defaultVocabulary()
    const ajv = newAjv()
    const schemas = [
      { type: 'array', items: { type: 'string' } },
      { type: 'object', properties: { a: { type: 'array', items: { type: 'array', items: { type: 'number' } } }, b: { type: 'string', minLength: 5 } }, required: ['a', 'b'] },
      { type: 'string', format: 'date-time' }
    ]
    for (const schema of schemas) {
      const g = compileGrammar({ type: 'json-schema', schema }, vocab)
      for (const extra of [0, 1, 3, 10, 40]) {
        for (let seed = 1; seed <= 5; seed++) {
          const m = g.matcher()
          const rnd = random(seed)
          const logits = new Float32Array(vocab.tokens.length)
          const budget = g.minTokens + extra
          const ids: number[] = []
          for (let used = 0; used < budget && !m.finished; used++) {
            for (let j = 0; j < logits.length; j++) logits[j] = rnd() * 4
            for (const e of vocab.eos) logits[e] = -50 // never wants to stop
            m.mask(logits, budget - used)
            const t = sample(logits, rnd)
            m.accept(t)
            if (vocab.eos.includes(t)) break
            ids.push(t)
          }
          assert.ok(m.complete, `budget ${budget}: ${text(vocab, ids)}`)
          assert.ok(ids.length <= budget)
          assert.ok(ajv.validate(schema, JSON.parse(text(vocab, ids))))
        }
      }
    }
  })

  it('exposes minTokens so that a caller can refuse up front', () => {
    const vocab = byteVocabulary()
    const g = compileGrammar({ type: 'json-schema', schema: { type: 'array', items: { type: 'integer' }, minItems: 300 } }, vocab)
    assert.equal(g.minTokens, 2 + 300 + 299)
    assert.equal(compileGrammar({ type: 'literal', text: 'abc' }, vocab).minTokens, 3)
    const noBytes: Vocabulary = { tokens: [enc.encode('ab'), enc.encode('c'), new Uint8Array(0)], eos: [2] }
    assert.equal(compileGrammar({ type: 'literal', text: 'abc' }, noBytes).minTokens, Infinity, 'no single-byte tokens: no guarantee')
    assert.throws(() => compileGrammar({ type: 'choice', options: [] }, vocab), UnsatisfiableGrammarError)
  })
})

describe('composition specs', () => {
  it('literal, sequence, choice and repeat, with schemas inside', () => {
    const vocab = byteVocabulary()
    const spec: GrammarSpec = {
      type: 'sequence',
      parts: [
        { type: 'literal', text: 'Answer: ' },
        { type: 'choice', options: [{ type: 'literal', text: 'yes' }, { type: 'literal', text: 'no' }] },
        { type: 'literal', text: '\n' },
        { type: 'repeat', item: { type: 'json-schema', schema: { type: 'integer', minimum: 0, maximum: 9 } }, separator: ', ', min: 1, max: 3 }
      ]
    }
    const g = compileGrammar(spec, vocab)
    const re = /^Answer: (yes|no)\n[0-9](, [0-9]){0,2}$/
    for (let seed = 1; seed <= 30; seed++) {
      const out = generate(g, seed, 100)
      assert.ok(out.complete)
      assert.match(out.text, re)
    }
    const two: GrammarSpec = { type: 'sequence', parts: [{ type: 'json-schema', schema: { $defs: { x: { const: 1 } }, $ref: '#/$defs/x' } }, { type: 'literal', text: ' ' }, { type: 'json-schema', schema: { $defs: { x: { const: 2 } }, $ref: '#/$defs/x' } }] }
    assert.equal(generate(compileGrammar(two, vocab), 1, 10).text, '1 2', 'each schema resolves its own $defs')
  })
})
