import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { repoBlockBytes } from '@node-daemon/daemon'
import { spawnDaemon, stopDaemon } from '../helpers/process.ts'
import type { DaemonProcess } from '../helpers/process.ts'

describe('GC after a crash', { timeout: 180_000 }, () => {
  let dir: string
  let repo: string
  let daemon: DaemonProcess | undefined

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'node-daemon-gc-'))
    repo = join(dir, 'repo')
  })

  after(async () => {
    if (daemon != null) await stopDaemon(daemon, 'SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('removes the blocks of an add that a kill -9 cut short', async () => {
    daemon = await spawnDaemon(repo, ['--no-default-models'])
    const blocks = join(repo, 'blocks')
    const baseline = await repoBlockBytes(blocks)

    // An upload that sends 8 MiB and then nothing more: its blocks are written, never pinned.
    const upload = request(`${daemon.api}/api/v0/stream/upload`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' } })
    upload.on('error', () => {})
    upload.write(randomBytes(8 * 1_048_576))
    let written = 0
    for (let i = 0; i < 400 && written < 6 * 1_048_576; i++) {
      await new Promise(resolve => setTimeout(resolve, 50))
      written = await repoBlockBytes(blocks) - baseline
    }
    assert.ok(written >= 6 * 1_048_576, `only ${written} bytes were written`)
    assert.equal(await stopDaemon(daemon, 'SIGKILL'), null)
    upload.destroy()

    daemon = await spawnDaemon(repo, ['--no-default-models'])
    const res = await fetch(`${daemon.api}/api/v0/repo/gc`, { method: 'POST', signal: AbortSignal.timeout(60_000) })
    assert.equal(res.status, 200)
    const removed = (await res.text()).trim().split('\n').filter(line => line !== '').map(line => JSON.parse(line) as { Key: { '/': string } })
    assert.ok(removed.length >= 24, `${removed.length} blocks removed`)
    assert.ok(await repoBlockBytes(blocks) <= baseline, 'the orphaned blocks are gone')
  })
})
