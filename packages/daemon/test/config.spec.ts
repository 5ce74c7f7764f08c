import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from '../src/config.ts'

describe('loadConfig', () => {
  let dir: string
  let repo: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'node-daemon-config-'))
    repo = join(dir, 'repo')
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('has the documented defaults', async () => {
    const config = await loadConfig({ env: { NODE_DAEMON_REPO: repo } })
    assert.deepEqual(config, {
      repo,
      api: { host: '127.0.0.1', port: 8000 },
      swarm: { host: '0.0.0.0', port: 4001, bootstrap: [] },
      log: { level: 'info' }
    })
  })

  it('takes the repo from the env var, then from the flag', async () => {
    assert.equal((await loadConfig({ env: { NODE_DAEMON_REPO: '/tmp/x' } })).repo, '/tmp/x')
    assert.equal((await loadConfig({ env: { NODE_DAEMON_REPO: '/tmp/x' }, flags: { repo: '/tmp/y' } })).repo, '/tmp/y')
  })

  it('layers repo YAML < --config file < env < flags', async () => {
    await rm(repo, { recursive: true, force: true })
    await mkdir(repo, { recursive: true })
    await writeFile(join(repo, 'config.yaml'), 'api:\n  host: 0.0.0.0\n  port: 9001\nswarm:\n  port: 5001\n  bootstrap:\n    - /ip4/10.0.0.1/tcp/4001/p2p/12D3KooWA\nlog:\n  level: debug\n')
    const file = join(dir, 'extra.yaml')
    await writeFile(file, 'api:\n  port: 9002\nswarm:\n  port: 5002\n')
    const config = await loadConfig({
      configFile: file,
      env: { NODE_DAEMON_REPO: repo, NODE_DAEMON_SWARM_PORT: '5003', NODE_DAEMON_BOOTSTRAP: '/ip4/10.0.0.2/tcp/1/p2p/a, /ip4/10.0.0.3/tcp/1/p2p/b' },
      flags: { api: { port: 9004 } }
    })
    assert.equal(config.api.host, '0.0.0.0')
    assert.equal(config.api.port, 9004)
    assert.equal(config.swarm.port, 5003)
    assert.deepEqual(config.swarm.bootstrap, ['/ip4/10.0.0.2/tcp/1/p2p/a', '/ip4/10.0.0.3/tcp/1/p2p/b'])
    assert.equal(config.log.level, 'debug')
  })

  it('rejects bad values with ConfigError', async () => {
    await assert.rejects(loadConfig({ env: { NODE_DAEMON_REPO: repo, NODE_DAEMON_API_PORT: '70000' } }), { name: 'ConfigError' })
    await assert.rejects(loadConfig({ env: { NODE_DAEMON_REPO: repo, NODE_DAEMON_LOG_LEVEL: 'loud' } }), { name: 'ConfigError' })
    const bad = join(dir, 'bad.yaml')
    await writeFile(bad, 'api: [1, 2\n')
    await assert.rejects(loadConfig({ env: { NODE_DAEMON_REPO: repo }, configFile: bad }), { name: 'ConfigError' })
    await writeFile(bad, 'colour: blue\n')
    await assert.rejects(loadConfig({ env: { NODE_DAEMON_REPO: repo }, configFile: bad }), { name: 'ConfigError', message: /unknown setting "colour"/ })
    await assert.rejects(loadConfig({ env: { NODE_DAEMON_REPO: repo }, configFile: join(dir, 'missing.yaml') }), { name: 'ConfigError' })
  })
})
