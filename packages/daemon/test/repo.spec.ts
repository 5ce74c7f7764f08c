import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { initRepo, openRepo } from '../src/repo.ts'

describe('repo', () => {
  let dir: string

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'node-daemon-repo-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('creates an Ed25519 identity once, readable only by its owner, and keeps it', async () => {
    const repo = join(dir, 'a')
    const first = await initRepo(repo)
    assert.equal(first.created, true)
    assert.equal(first.privateKey.type, 'Ed25519')
    assert.equal((await stat(join(repo, 'identity.key'))).mode & 0o777, 0o600)
    const second = await initRepo(repo)
    assert.equal(second.created, false)
    assert.ok(second.privateKey.equals(first.privateKey))
  })

  it('refuses a repo of another version and a corrupt key', async () => {
    const repo = join(dir, 'b')
    await initRepo(repo)
    await writeFile(join(repo, 'version'), '99\n')
    await assert.rejects(initRepo(repo), { name: 'RepoError' })
    await writeFile(join(repo, 'version'), '1\n')
    await writeFile(join(repo, 'identity.key'), 'not a key')
    await assert.rejects(initRepo(repo), { name: 'RepoError' })
  })

  it('is held by one daemon at a time', async () => {
    const repo = join(dir, 'c')
    const open = await openRepo(repo)
    try {
      await assert.rejects(openRepo(repo), { name: 'RepoError', message: /in use/ })
      await open.setApiAddress('http://127.0.0.1:1234')
      assert.equal(await readFile(join(repo, 'api'), 'utf8'), 'http://127.0.0.1:1234\n')
    } finally {
      await open.close()
    }
    await assert.rejects(stat(join(repo, 'api')))
  })
})
