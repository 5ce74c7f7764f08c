import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import { introduce, startLibp2p } from '../../../test/helpers/raft.ts'
import { ClusterRpc } from '../src/rpc.ts'
import type { Libp2p } from '@libp2p/interface'

/** Pin statuses of 60,000 pins: about 6 MiB of JSON, more than a libp2p stream buffers by default. */
const statuses = Array.from({ length: 60_000 }, (_, i) => ({ cid: `bafy${String(i).padStart(55, '0')}`, status: 'pinned', attempts: 0 }))

describe('the cluster RPC protocol', () => {
  let a: Libp2p
  let b: Libp2p
  let server: ClusterRpc
  let client: ClusterRpc

  before(async () => {
    a = await startLibp2p()
    b = await startLibp2p()
    await introduce([a, b])
    const rpc = (libp2p: Libp2p, allowed: () => boolean): ClusterRpc => new ClusterRpc({ libp2p, log: logger('test:cluster-rpc') }, {
      handlers: { join: async () => { throw new Error('not here') }, 'pin-status': async (_from, body) => body.all === true ? statuses : [] },
      allow: allowed,
      handlerTimeoutMs: 30_000
    })
    server = rpc(b, () => true)
    client = rpc(a, () => false)
    await server.start()
    await client.start()
  })

  after(async () => {
    await Promise.allSettled([server?.stop(), client?.stop()])
    await Promise.allSettled([a?.stop(), b?.stop()])
  })

  it('answers with results larger than a stream buffers by default, and requests as large', async () => {
    assert.ok(JSON.stringify(statuses).length > 4 * 1024 * 1024)
    const result = await client.call<typeof statuses>(b.peerId.toString(), 'pin-status', { all: true, padding: 'x'.repeat(5 * 1024 * 1024) }, AbortSignal.timeout(30_000))
    assert.deepEqual(result, statuses)
  })

  it('refuses a caller that may not call, with a typed error', async () => {
    await assert.rejects(server.call(a.peerId.toString(), 'pin-status', {}, AbortSignal.timeout(10_000)), { name: 'ClusterProtocolError' })
  })
})
