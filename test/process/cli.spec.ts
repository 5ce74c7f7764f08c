import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { tinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import { runCli, spawnDaemon, stopDaemon } from '../helpers/process.ts'
import type { DaemonProcess } from '../helpers/process.ts'

describe('node-daemon as a process', () => {
  let dir: string
  let repo: string
  let daemon: DaemonProcess | undefined

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'node-daemon-cli-'))
    repo = join(dir, 'repo')
  })

  after(async () => {
    if (daemon != null) await stopDaemon(daemon, 'SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('init creates a repo and prints its peer id', async () => {
    const res = await runCli(['init', '--repo', repo])
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /^initialized .*\npeer id: 12D3KooW\w+\n$/)
    await access(join(repo, 'identity.key'))
    await access(join(repo, 'config.yaml'))
  })

  it('start prints the peer id, swarm addresses and API URL', async () => {
    const init = await runCli(['init', '--repo', repo])
    const peerId = /peer id: (\S+)/.exec(init.stdout)?.[1]
    daemon = await spawnDaemon(repo, ['--no-default-models'])
    assert.equal(daemon.peerId, peerId)
    assert.match(daemon.api, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.ok(daemon.swarm.length > 0)
    assert.ok(daemon.swarm.every(a => a.endsWith(`/p2p/${peerId}`)))
  })

  it('id, add, cat and pin ls are clients of the running daemon', async () => {
    const file = join(dir, 'hello.txt')
    await writeFile(file, 'hello world\n')
    const id = await runCli(['id', '--repo', repo])
    assert.equal(JSON.parse(id.stdout).ID, daemon?.peerId)
    const add = await runCli(['add', file, '--repo', repo])
    assert.equal(add.stdout, 'added QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o hello.txt\n')
    const cat = await runCli(['cat', 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', '--repo', repo])
    assert.equal(cat.stdout, 'hello world\n')
    const pins = await runCli(['pin', 'ls', '--repo', repo, '--type', 'recursive'])
    assert.equal(pins.stdout, 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o recursive\n')
  })

  it('adds a directory recursively, root last', async () => {
    const tree = join(dir, 'tree')
    await mkdir(join(tree, 'sub'), { recursive: true })
    await writeFile(join(tree, 'a.txt'), 'a\n')
    await writeFile(join(tree, 'sub', 'b.txt'), 'b\n')
    const add = await runCli(['add', '-r', tree, '--repo', repo])
    const lines = add.stdout.trim().split('\n')
    assert.deepEqual(lines.map(l => l.split(' ')[2]), ['tree/a.txt', 'tree/sub/b.txt', 'tree/sub', 'tree'])
    const quiet = await runCli(['add', '-r', '-q', tree, '--repo', repo])
    assert.equal(quiet.stdout.trim(), lines[3].split(' ')[1])
  })

  it('auth makes, lists and revokes keys, with the API\'s JSON under --json', async () => {
    const made = await runCli(['auth', 'key', 'create', '--name', 'cli-key', '--permissions', 'content:read', '--repo', repo])
    assert.equal(made.code, 0, made.stderr)
    assert.match(made.stdout, /^nd_\S+\n$/)
    const { keys } = JSON.parse((await runCli(['auth', 'key', 'list', '--json', '--repo', repo])).stdout) as { keys: Array<{ id: string, name: string, permissions: string[] }> }
    const key = keys.find(k => k.name === 'cli-key')
    assert.deepEqual(key?.permissions, ['content:read'])
    assert.match((await runCli(['auth', 'key', 'list', '--repo', repo])).stdout, new RegExp(`^${key?.id as string} .*cli-key .*content:read$`, 'm'))
    const revoked = await runCli(['auth', 'key', 'revoke', key?.id as string, '--json', '--repo', repo])
    assert.equal(JSON.parse(revoked.stdout).revoked.id, key?.id)
  })

  it('start checks --trusted-peer before it starts a node', async () => {
    const res = await runCli(['start', '--repo', join(dir, 'unused'), '--trusted-peer', 'not-a-peer-id'])
    assert.equal(res.code, 1)
    assert.match(res.stderr, /^Error: --trusted-peer: invalid peer id "not-a-peer-id"\n$/)
  })

  it('prints its version', async () => {
    const res = await runCli(['--version'])
    assert.equal(res.stdout, `${JSON.parse(await readFile(new URL('../../packages/daemon/package.json', import.meta.url), 'utf8')).version}\n`)
  })

  it('a client command without a daemon fails with a clear message', async () => {
    const res = await runCli(['id', '--api', 'http://127.0.0.1:9'])
    assert.equal(res.code, 1)
    assert.match(res.stderr, /cannot reach the daemon/)
  })

  it('stops cleanly on SIGTERM and keeps identity, content, pins and keys across a restart', async () => {
    assert.ok(daemon != null)
    const keyRes = await fetch(`${daemon.api}/api/v0/key/gen?arg=persisted`, { method: 'POST' })
    const key = await keyRes.json() as { Id: string }
    const peerId = daemon.peerId
    assert.equal(await stopDaemon(daemon), 0)
    await assert.rejects(access(join(repo, 'api')))
    daemon = await spawnDaemon(repo, ['--no-default-models'])
    assert.equal(daemon.peerId, peerId)
    const cat = await runCli(['cat', 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', '--repo', repo])
    assert.equal(cat.stdout, 'hello world\n')
    const pins = await runCli(['pin', 'ls', '--repo', repo, '--type', 'recursive'])
    assert.match(pins.stdout, /QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o recursive/)
    const keys = await (await fetch(`${daemon.api}/api/v0/key/list`, { method: 'POST' })).json() as { Keys: Array<{ Name: string, Id: string }> }
    assert.ok(keys.Keys.some(k => k.Name === 'persisted' && k.Id === key.Id))
  })

  it('model import adds a model directory and registers it, ready to generate', async () => {
    const models = await tinyModels()
    try {
      const res = await runCli(['model', 'import', models.decoder, '--name', 'cli-model', '--description', 'from the CLI', '--repo', repo])
      assert.equal(res.code, 0, res.stderr)
      const [, name, cid] = /^imported (\S+) (Qm\w{44})\n$/.exec(res.stdout) ?? []
      assert.equal(name, 'cli-model:latest')
      const tags = await (await fetch(`${daemon?.api}/api/tags`)).json() as { models: Array<{ name: string, digest: string }> }
      assert.ok(tags.models.some(m => m.name === name && m.digest === cid))
      const gen = await fetch(`${daemon?.api}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'cli-model', prompt: 'Hi', stream: false, options: { num_predict: 3 } }) })
      assert.equal(gen.status, 200, await gen.text())
      // onnxruntime's telemetry, off by the daemon's default, would have left its log file for the daemon's process.
      await assert.rejects(access(join(tmpdir(), `mat-debug-${daemon?.child.pid}.log`)), { code: 'ENOENT' })
      // The same directory as a tarball with its top directory, and a variant named: the same files, the same CID.
      await promisify(execFile)('tar', ['czf', join(dir, 'decoder.tgz'), '-C', join(models.decoder, '..'), 'decoder'])
      const tarball = await runCli(['model', 'import', join(dir, 'decoder.tgz'), '--name', 'cli-tarball', '--dtype', 'fp32', '--json', '--repo', repo])
      assert.equal(tarball.code, 0, tarball.stderr)
      // --json: the model as registered.
      assert.equal(JSON.parse(tarball.stdout).model.cid, cid)
      const refusedAt = Date.now()
      const variant = await runCli(['model', 'import', models.decoder, '--name', 'cli-q4', '--dtype', 'q4', '--repo', repo])
      assert.notEqual(variant.code, 0)
      assert.match(variant.stderr, /dtype q4: the model has no such variant \(it has fp32\)/)
      const missing = await runCli(['model', 'import', join(dir, 'no-such-dir'), '--name', 'x', '--repo', repo])
      assert.notEqual(missing.code, 0)
      const bad = await runCli(['model', 'import', dir, '--name', 'not a name!', '--repo', repo])
      assert.notEqual(bad.code, 0)
      assert.match(bad.stderr, /name/)
      // Refused before their whole body was sent, the commands end their uploads rather than wait for the daemon to read them (60 s).
      assert.ok(Date.now() - refusedAt < 15_000, `the refused imports took ${Date.now() - refusedAt} ms`)
    } finally {
      await rm(models.root, { recursive: true, force: true })
    }
  })

  it('survives kill -9 in the middle of an add', async () => {
    assert.ok(daemon != null)
    const big = join(dir, 'big.bin')
    await writeFile(big, randomBytes(64 * 1_048_576))
    const adding = runCli(['add', big, '--repo', repo, '--api', daemon.api])
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.equal(await stopDaemon(daemon, 'SIGKILL'), null)
    await adding
    daemon = await spawnDaemon(repo, ['--no-default-models'])
    const cat = await runCli(['cat', 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', '--repo', repo])
    assert.equal(cat.stdout, 'hello world\n')
    const add = await runCli(['add', '-q', big, '--repo', repo])
    assert.equal(add.code, 0, add.stderr)
    assert.match(add.stdout, /^Qm\w{44}\n$/)
    assert.equal(await stopDaemon(daemon), 0)
    daemon = undefined
  })
})
