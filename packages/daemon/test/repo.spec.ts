import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { formatSwarmKey, initRepo, openRepo, parseSwarmKey, saveRemoteServices } from '../src/repo.ts'

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

  it('saves the remote pinning services into config.yaml, keeping its other settings and comments, readable by its owner only', async () => {
    const repo = join(dir, 'pinning')
    await initRepo(repo)
    await writeFile(join(repo, 'config.yaml'), '# my settings\napi:\n  port: 9000 # not the default\n', { mode: 0o644 })
    await saveRemoteServices(repo, { a: { endpoint: 'https://pins.example', key: 'secret' } })
    const saved = await readFile(join(repo, 'config.yaml'), 'utf8')
    assert.match(saved, /^# my settings\napi:\n {2}port: 9000 # not the default\n/)
    assert.match(saved, /pinning:\n {2}remote_services:\n {4}a:\n {6}endpoint: https:\/\/pins.example\n {6}key: secret\n/)
    assert.equal((await stat(join(repo, 'config.yaml'))).mode & 0o777, 0o600)
    await saveRemoteServices(repo, {})
    assert.doesNotMatch(await readFile(join(repo, 'config.yaml'), 'utf8'), /remote_services|secret/)
    for (const text of ['api: { port: 9000 }\n', 'pinning:\n', '', '# only a comment\n']) {
      await writeFile(join(repo, 'config.yaml'), text)
      await saveRemoteServices(repo, {})
      await saveRemoteServices(repo, { b: { endpoint: 'https://b.example', key: 'k' } })
      assert.match(await readFile(join(repo, 'config.yaml'), 'utf8'), /pinning:\n {2}remote_services:\n {4}b:/)
    }
    await writeFile(join(repo, 'config.yaml'), 'api: [\n')
    await assert.rejects(saveRemoteServices(repo, {}), { name: 'ConfigError' })
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

  it('creates a random swarm key in Kubo\'s format once, readable only by its owner, and keeps it', async () => {
    const repo = join(dir, 'keys-random')
    const first = await initRepo(repo)
    assert.equal(first.swarmKeyCreated, true)
    const file = await readFile(join(repo, 'swarm.key'), 'utf8')
    assert.match(file, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    assert.equal((await stat(join(repo, 'swarm.key'))).mode & 0o777, 0o600)
    assert.deepEqual(first.swarmKey, new TextEncoder().encode(file))
    const second = await initRepo(repo)
    assert.equal(second.swarmKeyCreated, false)
    assert.deepEqual(second.swarmKey, first.swarmKey)
    assert.equal(await readFile(join(repo, 'swarm.key'), 'utf8'), file)
  })

  it('writes a given secret, never over an existing key, and lets the secret win', async () => {
    const secret = 'AB'.repeat(32)
    const repo = join(dir, 'keys-secret')
    const first = await initRepo(repo, { secret })
    assert.equal(first.swarmKeyCreated, true)
    assert.equal(await readFile(join(repo, 'swarm.key'), 'utf8'), `/key/swarm/psk/1.0.0/\n/base16/\n${secret.toLowerCase()}\n`)
    assert.deepEqual(first.swarmKey, formatSwarmKey(secret))

    const other = 'cd'.repeat(32)
    const second = await initRepo(repo, { secret: other })
    assert.equal(second.swarmKeyCreated, false)
    assert.deepEqual(second.swarmKey, formatSwarmKey(other), 'the configured secret is the one used')
    assert.equal(parseSwarmKey(await readFile(join(repo, 'swarm.key'))), secret.toLowerCase(), 'the file is kept')
    assert.deepEqual((await initRepo(repo)).swarmKey, formatSwarmKey(secret), 'without a secret the file is used')
  })

  it("has no swarm key with secret 'off'", async () => {
    const repo = join(dir, 'keys-off')
    const res = await initRepo(repo, { secret: 'off' })
    assert.equal(res.swarmKey, undefined)
    assert.equal(res.swarmKeyCreated, false)
    await assert.rejects(stat(join(repo, 'swarm.key')), { code: 'ENOENT' })
    // An open repo's swarm.key, if any, is ignored too.
    await initRepo(repo)
    assert.equal((await initRepo(repo, { secret: 'off' })).swarmKey, undefined)
  })

  it('parses swarm.key files in base16 and base64 and refuses others', async () => {
    const hex = '0f'.repeat(32)
    assert.equal(parseSwarmKey(formatSwarmKey(hex)), hex)
    assert.equal(parseSwarmKey(`/key/swarm/psk/1.0.0/\r\n/base64/\r\n${Buffer.from(hex, 'hex').toString('base64')}\r\n`), hex)
    assert.throws(() => parseSwarmKey('/key/swarm/psk/1.0.0/\n/base16/\nabcd\n'), { name: 'RepoError' })
    assert.throws(() => parseSwarmKey(`/key/swarm/psk/2.0.0/\n/base16/\n${hex}\n`), { name: 'RepoError' })
    assert.throws(() => parseSwarmKey(`/key/swarm/psk/1.0.0/\n/bin/\n${hex}\n`), { name: 'RepoError' })
    assert.throws(() => formatSwarmKey('off'), { name: 'ConfigError' })
    assert.throws(() => formatSwarmKey('xyz'), { name: 'ConfigError' })
    const repo = join(dir, 'keys-corrupt')
    await initRepo(repo)
    await writeFile(join(repo, 'swarm.key'), 'not a key')
    await assert.rejects(initRepo(repo), { name: 'RepoError', message: /swarm\.key/ })
  })

  it('is held by one daemon at a time', async () => {
    const repo = join(dir, 'c')
    const secret = '12'.repeat(32)
    const open = await openRepo(repo, { secret })
    try {
      assert.deepEqual(open.swarmKey, formatSwarmKey(secret))
      await assert.rejects(openRepo(repo), { name: 'RepoError', message: /in use/ })
      await open.setApiAddress('http://127.0.0.1:1234')
      assert.equal(await readFile(join(repo, 'api'), 'utf8'), 'http://127.0.0.1:1234\n')
    } finally {
      await open.close()
    }
    await assert.rejects(stat(join(repo, 'api')))
  })
})
