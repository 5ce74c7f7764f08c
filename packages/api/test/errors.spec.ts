import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { classify, envelope } from '../src/errors.ts'

describe('error mapping', () => {
  it('maps typed errors by name to document 000 types and statuses', () => {
    assert.deepEqual(classify({ name: 'InvalidCIDError' }), { status: 400, type: 'IPFSValidationError' })
    assert.deepEqual(classify({ name: 'NotFoundError' }), { status: 404, type: 'IPFSContentNotFoundError' })
    assert.deepEqual(classify({ name: 'PinError' }), { status: 400, type: 'IPFSPinningError' })
    assert.deepEqual(classify({ name: 'DialError' }), { status: 503, type: 'IPFSConnectionError' })
    assert.deepEqual(classify({ name: 'ConfigError' }), { status: 500, type: 'IPFSConfigurationError' })
  })

  it("maps fastify's own errors by code before names", () => {
    assert.deepEqual(classify({ name: 'FastifyError', code: 'FST_ERR_CTP_BODY_TOO_LARGE' }), { status: 413, type: 'PayloadTooLargeError' })
    assert.deepEqual(classify({ name: 'FastifyError', code: 'FST_ERR_VALIDATION' }), { status: 422, type: 'ValidationError' })
  })

  it('treats anything unknown as a 500 UnexpectedError', () => {
    assert.deepEqual(classify({ name: 'TypeError' }), { status: 500, type: 'UnexpectedError' })
  })

  it("builds the envelope with Kubo's fields beside document 000's", () => {
    assert.deepEqual(envelope({ name: 'InvalidCIDError', message: 'invalid CID "x"' }), {
      success: false,
      error: 'invalid CID "x"',
      error_type: 'IPFSValidationError',
      status_code: 400,
      Message: 'invalid CID "x"',
      Code: 0,
      Type: 'error'
    })
    assert.match(envelope({ name: 'TypeError', message: 'boom' }).error, /^internal error: boom$/)
  })
})
