import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Ajv } from 'ajv'
import Fastify from 'fastify'
import { compileOnFirstUse } from '../src/lazy-validators.ts'

describe('validators compiled at first use', () => {
  it('compiles a schema only when its validator is first called, and once', () => {
    const ajv = new Ajv()
    let compiled = 0
    const compile = ajv.compile.bind(ajv)
    ajv.compile = ((schema: object) => { compiled++; return compile(schema) }) as Ajv['compile']
    compileOnFirstUse(ajv)
    const validate = ajv.compile({ type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] })
    assert.equal(compiled, 0)
    assert.equal(validate({ n: 1 }), true)
    assert.equal(validate.errors, null)
    assert.equal(validate({ n: 'x' }), false)
    assert.equal((validate.errors as Array<{ instancePath: string }> | null)?.[0]?.instancePath, '/n')
    assert.equal(compiled, 1)
  })

  it('compiles a schema with an $id at once, so that it can be found by its id', () => {
    const ajv = compileOnFirstUse(new Ajv())
    ajv.compile({ $id: 'https://node-daemon.test/s', type: 'string' })
    assert.equal(ajv.getSchema('https://node-daemon.test/s')?.('a'), true)
  })

  it('keeps fastify validating, coercing and filling in defaults as it did', async (t) => {
    const app = Fastify({ ajv: { customOptions: { coerceTypes: 'array' }, onCreate: compileOnFirstUse } })
    t.after(async () => { await app.close() })
    app.post('/', {
      schema: {
        querystring: { type: 'object', properties: { tag: { type: 'array', items: { type: 'string' } } } },
        body: { type: 'object', properties: { n: { type: 'integer' }, mode: { type: 'string', default: 'fast' } }, required: ['n'] }
      }
    }, async (request) => ({ query: request.query, body: request.body }))
    const ok = await app.inject({ method: 'POST', url: '/?tag=one', payload: { n: '2' } })
    assert.equal(ok.statusCode, 200)
    assert.deepEqual(ok.json(), { query: { tag: ['one'] }, body: { n: 2, mode: 'fast' } })
    const bad = await app.inject({ method: 'POST', url: '/', payload: { n: 'two' } })
    assert.equal(bad.statusCode, 400)
    assert.match(bad.json().message, /body\/n must be integer/)
  })
})
