import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

/** A dial that the other side cannot answer fails by the upgrade timeout (about 6 s), well within this. */
const DIAL_BOUND_MS = 15_000

describe('private network', () => {
  const secret = randomBytes(32).toString('hex')
  const otherSecret = randomBytes(32).toString('hex')
  const daemons: TestDaemon[] = []
  let a: TestDaemon
  let b: TestDaemon
  let stranger: TestDaemon
  let open: TestDaemon

  before(async () => {
    const start = async (secret: string): Promise<TestDaemon> => {
      const d = await startTestDaemon({ cluster: { secret } })
      daemons.push(d)
      return d
    }
    a = await start(secret)
    b = await start(secret)
    stranger = await start(otherSecret)
    open = await start('off')
  })

  after(async () => {
    await Promise.allSettled(daemons.map(async d => d.cleanup()))
  })

  it('writes the secret into each new repo as swarm.key', async () => {
    assert.equal(await readFile(join(a.repo, 'swarm.key'), 'utf8'), `/key/swarm/psk/1.0.0/\n/base16/\n${secret}\n`)
    await assert.rejects(readFile(join(open.repo, 'swarm.key')), { code: 'ENOENT' })
  })

  it('connects daemons that share the secret', async () => {
    const peer = await b.node.connect(a.swarmAddr, { signal: AbortSignal.timeout(DIAL_BOUND_MS) })
    assert.equal(peer, a.node.peerId)
    assert.ok(a.node.peers().some(p => p.peer === b.node.peerId))
  })

  it('refuses, in bounded time, a daemon with another secret and one with none', async () => {
    for (const [outsider, what] of [[stranger, 'another secret'], [open, 'an open swarm']] as const) {
      for (const [from, to] of [[outsider, a], [a, outsider]]) {
        const started = Date.now()
        await assert.rejects(from.node.connect(to.swarmAddr, { signal: AbortSignal.timeout(DIAL_BOUND_MS) }), { name: 'HandshakeFailedError', message: /handshake failed/ }, what)
        assert.ok(Date.now() - started < DIAL_BOUND_MS + 1_000, `${what}: the dial took ${Date.now() - started} ms`)
      }
      assert.ok(!a.node.peers().some(p => p.peer === outsider.node.peerId), `${what} is not a peer`)
    }
  })
})
