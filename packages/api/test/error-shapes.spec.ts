import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ContextLengthError, InvalidInferenceRequestError, InvalidModelError, UnsupportedModelError } from '@node-daemon/runtime'
import { ModelNotFoundError, NodeNotFoundError, NoQuorumError } from '@node-daemon/cluster'
import { distributedShape, envelopeShape, farmShape, INVALID_PROMPT, ollamaShape, openaiShape, taskShape } from '../src/error-shapes.ts'
import { classify, UnsupportedParameterError } from '../src/errors.ts'
import type { FastifyError, FastifyRequest } from 'fastify'

const request = { body: { model: 'ghost' }, params: {}, id: 'req-1' } as unknown as FastifyRequest
const validation = Object.assign(new Error('body/temperature must be number'), {
  code: 'FST_ERR_VALIDATION',
  validation: [{ keyword: 'type', instancePath: '/temperature', schemaPath: '', params: {}, message: 'must be number' }]
}) as unknown as FastifyError

describe('error shapes', () => {
  it('maps the inference errors by name to statuses', () => {
    assert.equal(classify(new InvalidInferenceRequestError('x')).status, 400)
    assert.equal(classify(new ContextLengthError('x')).status, 400)
    assert.equal(classify(new InvalidModelError('x')).status, 400)
    assert.deepEqual(classify(new UnsupportedModelError('x')), { status: 400, type: 'UnsupportedModelError', code: 0 })
    assert.deepEqual(classify(new UnsupportedParameterError('n', 'x')), { status: 400, type: 'IPFSValidationError', code: 0 })
  })

  it("keeps document 000's envelope and 422 for schema errors where no family is named", () => {
    assert.equal(envelopeShape(validation, request).status, 422)
  })

  it('shapes Ollama errors as {"error"} with document 002\'s code, timestamp and request_id, schema errors as 400', () => {
    const { body, ...rest } = ollamaShape(new ModelNotFoundError('no model ghost'), request)
    assert.deepEqual(rest, { status: 404, type: 'ModelNotFoundError' })
    const { timestamp, ...fields } = body as { timestamp: string }
    assert.deepEqual(fields, { error: 'model "ghost" not found, try pulling it first', code: 'NOT_FOUND', request_id: 'req-1' })
    assert.ok(!Number.isNaN(Date.parse(timestamp)))
    assert.deepEqual(ollamaShape(validation, request).status, 400)
    assert.equal((ollamaShape(validation, request).body as { code: string }).code, 'INVALID_REQUEST')
    assert.equal((ollamaShape(new TypeError('boom'), request).body as { error: string }).error, 'internal error: boom')
  })

  it('shapes OpenAI errors with type, param and code', () => {
    assert.deepEqual(openaiShape(new ModelNotFoundError('x'), request).body, {
      error: { message: 'The model `ghost` does not exist or you do not have access to it.', type: 'invalid_request_error', param: null, code: 'model_not_found' }
    })
    assert.deepEqual(openaiShape(validation, request).body, { error: { message: 'body/temperature must be number', type: 'invalid_request_error', param: 'temperature', code: null } })
    assert.equal((openaiShape(new ContextLengthError('too long'), request).body as any).error.code, 'context_length_exceeded')
    assert.deepEqual(openaiShape(new NoQuorumError('no leader'), request), { status: 503, type: 'NoQuorumError', body: { error: { message: 'no leader', type: 'server_error', param: null, code: null } } })
  })

  it("shapes document 001's errors with its codes, else document 004's", () => {
    const code = (err: Error, badInput?: typeof INVALID_PROMPT): unknown => (taskShape(badInput)(err, request).body as any).error.code
    assert.equal(code(new ModelNotFoundError('x')), 'E003')
    assert.equal(code(new NoQuorumError('x')), 'E001')
    assert.equal(code(new InvalidInferenceRequestError('x')), 'E005')
    assert.equal(code(validation), 'INVALID_REQUEST')
    assert.equal(code(validation, INVALID_PROMPT), 'E005')
    assert.equal(code(new TypeError('x')), 'INTERNAL_ERROR')
    const body = (taskShape()(new ModelNotFoundError("model 'ghost' is not registered"), request).body as any).error
    assert.equal(body.message, 'Model not found')
    assert.equal(body.details, "model 'ghost' is not registered")
  })

  it("adds document 002's code, timestamp and request id to document 000's envelope, with 400 for schema errors", () => {
    const shaped = distributedShape(new NodeNotFoundError('no node x'), request)
    const body = shaped.body as any
    assert.equal(shaped.status, 404)
    assert.equal(body.error, 'no node x')
    assert.equal(body.code, 'NODE_NOT_FOUND')
    assert.equal(body.Code, 1001)
    assert.equal(body.request_id, 'req-1')
    assert.ok(!Number.isNaN(Date.parse(body.timestamp)))
    const bad = distributedShape(validation, request)
    assert.equal(bad.status, 400)
    assert.equal((bad.body as any).code, 'INVALID_REQUEST')
    assert.equal((bad.body as any).status_code, 400)
  })

  it("gives document 004's errors details as an object", () => {
    assert.deepEqual(farmShape(new NodeNotFoundError('no node x'), request).body, { error: { code: 'NODE_NOT_FOUND', message: 'no node x', details: { type: 'NodeNotFoundError' } } })
    const bad = farmShape(validation, request)
    assert.equal(bad.status, 400)
    assert.deepEqual((bad.body as any).error.details, { type: 'ValidationError', field: 'temperature', reason: 'must be number' })
  })
})
