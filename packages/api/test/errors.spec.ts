import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { tmpdir } from 'node:os'
import { classify, closeCodeOf, closeReason, envelope, withoutPaths } from '../src/errors.ts'

describe('error mapping', () => {
  it('maps typed errors by name to document 000 types and statuses', () => {
    assert.deepEqual(classify({ name: 'InvalidCIDError' }), { status: 400, type: 'IPFSValidationError', code: 0 })
    assert.deepEqual(classify({ name: 'NotFoundError' }), { status: 404, type: 'IPFSContentNotFoundError', code: 0 })
    assert.deepEqual(classify({ name: 'LoadBlockFailedError' }), { status: 404, type: 'IPFSContentNotFoundError', code: 0 })
    assert.deepEqual(classify({ name: 'PinError' }), { status: 400, type: 'IPFSPinningError', code: 0 })
    assert.deepEqual(classify({ name: 'DialError' }), { status: 503, type: 'IPFSConnectionError', code: 0 })
    assert.deepEqual(classify({ name: 'ConfigError' }), { status: 500, type: 'IPFSConfigurationError', code: 0 })
  })

  it("maps fastify's own errors by code before names", () => {
    assert.deepEqual(classify({ name: 'FastifyError', code: 'FST_ERR_CTP_BODY_TOO_LARGE' }), { status: 413, type: 'PayloadTooLargeError', code: 0 })
    assert.deepEqual(classify({ name: 'FastifyError', code: 'FST_ERR_VALIDATION' }), { status: 422, type: 'ValidationError', code: 0 })
  })

  it('maps cluster errors, with the numbers of document 003 where it has them', () => {
    assert.deepEqual(classify({ name: 'InvalidClusterRequestError' }), { status: 400, type: 'IPFSValidationError', code: 0 })
    assert.deepEqual(classify({ name: 'NodeNotFoundError' }), { status: 404, type: 'NodeNotFoundError', code: 1001 })
    assert.deepEqual(classify({ name: 'PinNotFoundError' }), { status: 404, type: 'PinNotFoundError', code: 0 })
    assert.deepEqual(classify({ name: 'ModelExistsError' }), { status: 409, type: 'ModelExistsError', code: 0 })
    assert.deepEqual(classify({ name: 'InsufficientPeersError' }), { status: 409, type: 'InsufficientPeersError', code: 0 })
    assert.deepEqual(classify({ name: 'ConsensusRejectedError' }), { status: 409, type: 'ConsensusRejectedError', code: 1003 })
    assert.deepEqual(classify({ name: 'NoQuorumError' }), { status: 503, type: 'NoQuorumError', code: 1005 })
    assert.deepEqual(classify({ name: 'JoinError' }), { status: 503, type: 'JoinError', code: 0 })
    assert.deepEqual(classify({ name: 'ClusterProtocolError' }), { status: 502, type: 'ClusterProtocolError', code: 0 })
    assert.equal(envelope({ name: 'NodeNotFoundError', message: 'no node x' }).Code, 1001)
  })

  it('treats anything unknown as a 500 UnexpectedError', () => {
    assert.deepEqual(classify({ name: 'TypeError' }), { status: 500, type: 'UnexpectedError', code: 0 })
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

  it('maps the inference and training errors a client can cause', () => {
    assert.equal(classify({ name: 'InvalidModelfileError' }).status, 400)
    assert.equal(classify({ name: 'ExternalDataError' }).status, 400)
    assert.equal(classify({ name: 'WorkerConflictError' }).status, 409)
    assert.equal(classify({ name: 'NoWorkerError' }).status, 503)
  })

  it('names no file of the host in any message, and leaves content paths and multiaddrs alone', () => {
    const file = `${tmpdir()}/repo/models/bafkqaaa.part-1/.complete`
    for (const err of [{ name: 'TypeError', message: `ENOENT: no such file or directory, open '${file}'` }, { name: 'InvalidModelError', message: `model.onnx: cannot open file:///usr/lib/x.so (${file})` }]) {
      const { error } = envelope(err)
      assert.doesNotMatch(error, /\/tmp|\/usr/)
      assert.match(error, /<path>/)
    }
    for (const kept of ['/ipfs/QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o/a/b', '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWE2nw', '/api/v0/add', 'a/tmp/b']) {
      assert.equal(withoutPaths(`could not reach ${kept}`), `could not reach ${kept}`)
    }
  })

  it('closes WebSockets with 4000 + the status, and a reason within 123 bytes whatever the message', () => {
    assert.equal(closeCodeOf({ name: 'UnsupportedProtocolError' }), 4404)
    assert.equal(closeCodeOf({ name: 'StreamResetError' }), 4502)
    assert.equal(closeReason('short'), 'short')
    const long = closeReason('é'.repeat(200))
    assert.ok(Buffer.byteLength(long) <= 123 && long.length === 61, `${Buffer.byteLength(long)} bytes`)
  })
})
