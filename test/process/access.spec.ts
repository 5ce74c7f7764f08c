/**
 * Starting beyond loopback: refused without credentials, with words that say
 * how to make one; with NODE_DAEMON_INIT_ADMIN_KEY (the Docker image's way)
 * an admin key is made and printed once; --api-insecure serves without.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { spawnDaemon, stopDaemon } from '../helpers/process.ts'
import type { DaemonProcess } from '../helpers/process.ts'

describe('the API beyond loopback', { timeout: 180_000 }, () => {
  const repos: string[] = []
  const daemons: DaemonProcess[] = []
  const repo = async (): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'node-daemon-access-'))
    repos.push(dir)
    return dir
  }
  after(async () => {
    await Promise.all(daemons.map(async d => stopDaemon(d).catch(() => {})))
    await Promise.all(repos.map(async r => rm(r, { recursive: true, force: true })))
  })

  it('refuses to start without a credential, saying how to make one', async () => {
    await assert.rejects(spawnDaemon(await repo(), ['--api-host', '0.0.0.0', '--no-default-models']), (err: Error) => /auth key create/.test(err.message) && /--api-insecure/.test(err.message))
  })

  it('makes an admin key on the first start when asked, prints it once, and requires it', async () => {
    const dir = await repo()
    const first = await spawnDaemon(dir, ['--api-host', '0.0.0.0', '--no-default-models'], 60_000, { env: { NODE_DAEMON_INIT_ADMIN_KEY: 'true' } })
    daemons.push(first)
    const key = /^admin key: (nd_\S+)$/m.exec(first.stdout())?.[1]
    assert.ok(key != null, first.stdout())
    assert.equal((await fetch(`${first.api}/api/tags`)).status, 401)
    assert.equal((await fetch(`${first.api}/api/tags`, { headers: { 'x-api-key': key } })).status, 200)
    await stopDaemon(first)
    const again = await spawnDaemon(dir, ['--api-host', '0.0.0.0', '--no-default-models'], 60_000, { env: { NODE_DAEMON_INIT_ADMIN_KEY: 'true' } })
    daemons.push(again)
    assert.doesNotMatch(again.stdout(), /admin key/, 'a key exists: none is made again')
    assert.equal((await fetch(`${again.api}/api/tags`, { headers: { 'x-api-key': key } })).status, 200)
  })

  it('serves without credentials when told --api-insecure, and warns', async () => {
    const open = await spawnDaemon(await repo(), ['--api-host', '0.0.0.0', '--api-insecure', '--no-default-models', '--log-level', 'warn'])
    daemons.push(open)
    assert.equal((await fetch(`${open.api}/api/tags`)).status, 200)
    assert.match(open.stderr(), /without credentials/)
  })
})
