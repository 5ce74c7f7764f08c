import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'

const LAUNCHER = fileURLToPath(new URL('../../bin/node-daemon', import.meta.url))
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const run = promisify(execFile)

// What `npm install -g .` makes: a link to the launcher in a bin directory, run with a PATH whose Node (if any) is the system's.
describe('the installed node-daemon command', () => {
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'node-daemon-launcher-'))
    await symlink(LAUNCHER, join(dir, 'node-daemon'))
  })

  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it("runs on the project's own Node through a link, without the project's Node on the PATH", async () => {
    const env = { PATH: '/usr/bin:/bin', HOME: dir }
    const { stdout } = await run(join(dir, 'node-daemon'), ['--version'], { env, cwd: dir, timeout: 60_000 })
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    assert.equal(stdout.trim(), version)
  })

  it('passes the exit code and the message of a failing command through', async () => {
    const env = { PATH: '/usr/bin:/bin', HOME: dir }
    const err = await run(join(dir, 'node-daemon'), ['id', '--api', 'http://127.0.0.1:1'], { env, cwd: dir, timeout: 60_000 }).then(() => undefined, (e: { code: number, stderr: string }) => e)
    assert.equal(err?.code, 1)
    assert.match(err.stderr, /^Error: cannot reach the daemon at http:\/\/127\.0\.0\.1:1/)
    assert.doesNotMatch(err.stderr, /\n\s+at /, 'no stack trace')
  })
})
