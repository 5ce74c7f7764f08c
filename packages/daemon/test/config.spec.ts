import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { defaultAccessConfig, hashSecret } from '@node-daemon/access'
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
      api: { host: '127.0.0.1', port: 8000, insecure: false, initAdminKey: false },
      access: defaultAccessConfig(),
      swarm: { host: '0.0.0.0', port: 4001, bootstrap: [], mdns: false },
      cluster: { voters: 3, heartbeatMs: 1000, nodeTimeoutMs: 10_000, voterTimeoutMs: 30_000, tickMs: 100, snapshotEvery: 10_000, allocationLimits: { cpu: 100, memory: 100, gpu: 100, storage: 100 } },
      inference: { keepAliveMs: 300_000, executionProvider: 'auto', defaultModels: true },
      content: { timeoutMs: 120_000, autoGc: false, storageMax: 10_000_000_000, storageGcWatermark: 90, gcPeriodMs: 3_600_000 },
      pinning: { remoteServices: {} },
      log: { level: 'info' }
    })
  })

  it('reads the access settings from YAML and the environment, and rejects bad ones as ConfigError', async () => {
    await rm(repo, { recursive: true, force: true })
    await mkdir(repo, { recursive: true })
    await writeFile(join(repo, 'config.yaml'), [
      'auth:',
      '  methods:',
      '    - type: api_key',
      '      keys: [{ key: plain-key, name: ci, permissions: [cat, ls] }]',
      'cors: { origins: [http://ui.example] }',
      'rate_limits: { endpoints: { /api/v0/add: { requests: 20, period: 60 } }, failed_auth: { requests: 10, period: 5m } }',
      'api: { insecure: true }',
      ''
    ].join('\n'))
    const config = await loadConfig({ env: { NODE_DAEMON_REPO: repo, NODE_DAEMON_ADMIN_TOKEN: 'admin-secret', NODE_DAEMON_INIT_ADMIN_KEY: 'true' } })
    assert.deepEqual(config.access.credentials.map(c => [c.name, c.hash]), [['ci', hashSecret('plain-key')]])
    assert.deepEqual(config.access.cors.origins, ['http://ui.example'])
    assert.deepEqual(config.access.rateLimits.endpoints['/api/v0/add'], { requests: 20, periodMs: 60_000 })
    assert.deepEqual(config.access.rateLimits.failedAuth, { requests: 10, periodMs: 300_000 })
    assert.deepEqual([config.api.insecure, config.api.adminToken, config.api.initAdminKey], [true, 'admin-secret', true])
    await writeFile(join(repo, 'config.yaml'), 'auth:\n  methods:\n    - type: api_key\n      keys: [{ key: k, permissions: [fly] }]\n')
    await assert.rejects(loadConfig({ env: { NODE_DAEMON_REPO: repo } }), { name: 'ConfigError', message: /"fly" is not a permission/ })
  })

  it('reads the content settings from YAML, env and flags, and rejects bad ones', async () => {
    await rm(repo, { recursive: true, force: true })
    await mkdir(repo, { recursive: true })
    await writeFile(join(repo, 'config.yaml'), 'content:\n  timeout_ms: 5000\n  auto_gc: true\n  storage_max: 1.5GiB\n  storage_gc_watermark: 80\n  gc_period_ms: 60000\n')
    const env = { NODE_DAEMON_REPO: repo }
    assert.deepEqual((await loadConfig({ env })).content, { timeoutMs: 5000, autoGc: true, storageMax: 1_610_612_736, storageGcWatermark: 80, gcPeriodMs: 60_000 })
    const fromEnv = await loadConfig({ env: { ...env, NODE_DAEMON_ENABLE_GC: 'false', NODE_DAEMON_STORAGE_MAX: '500MB', NODE_DAEMON_CONTENT_TIMEOUT_MS: '1000' } })
    assert.deepEqual(fromEnv.content, { timeoutMs: 1000, autoGc: false, storageMax: 500_000_000, storageGcWatermark: 80, gcPeriodMs: 60_000 })
    assert.equal((await loadConfig({ env: { ...env, NODE_DAEMON_ENABLE_GC: 'false' }, flags: { content: { autoGc: true } } })).content.autoGc, true)
    assert.equal((await loadConfig({ env: { ...env, NODE_DAEMON_STORAGE_MAX: '2048' } })).content.storageMax, 2048)
    await assert.rejects(loadConfig({ env: { ...env, NODE_DAEMON_STORAGE_MAX: 'lots' } }), { name: 'ConfigError', message: /10GB/ })
    await writeFile(join(repo, 'config.yaml'), 'content:\n  storage_gc_watermark: 150\n')
    await assert.rejects(loadConfig({ env }), { name: 'ConfigError', message: /percentage/ })
    await writeFile(join(repo, 'config.yaml'), 'content:\n  gc: true\n')
    await assert.rejects(loadConfig({ env }), { name: 'ConfigError', message: /unknown setting "content.gc"/ })
  })

  it('reads the allocation limits from YAML, 100 where unset, and rejects bad ones', async () => {
    await rm(repo, { recursive: true, force: true })
    await mkdir(repo, { recursive: true })
    const env = { NODE_DAEMON_REPO: repo }
    assert.deepEqual((await loadConfig({ env })).cluster.allocationLimits, { cpu: 100, memory: 100, gpu: 100, storage: 100 })
    await writeFile(join(repo, 'config.yaml'), 'cluster:\n  allocation_limits:\n    cpu: 90\n    gpu: 0\n')
    assert.deepEqual((await loadConfig({ env })).cluster.allocationLimits, { cpu: 90, memory: 100, gpu: 0, storage: 100 })
    for (const [yaml, message] of [['cpu: 101', /percentage from 0 to 100/], ['ram: 5', /unknown resource "ram"/], ['cpu: lots', /percentage/]] as const) {
      await writeFile(join(repo, 'config.yaml'), `cluster:\n  allocation_limits:\n    ${yaml}\n`)
      await assert.rejects(loadConfig({ env }), { name: 'ConfigError', message })
    }
  })

  it('reads the remote pinning services from the repo\'s YAML and a --config file, and rejects bad ones', async () => {
    await rm(repo, { recursive: true, force: true })
    await mkdir(repo, { recursive: true })
    await writeFile(join(repo, 'config.yaml'), 'pinning:\n  remote_services:\n    a: { endpoint: "https://pins.example/api", key: k1 }\n    b: { endpoint: "https://b.example", key: k2 }\n')
    const explicit = join(dir, 'explicit.yaml')
    await writeFile(explicit, 'pinning:\n  remote_services:\n    b: { endpoint: "https://other.example", key: k3 }\n')
    const env = { NODE_DAEMON_REPO: repo }
    assert.deepEqual((await loadConfig({ env, configFile: explicit })).pinning.remoteServices, {
      a: { endpoint: 'https://pins.example/api', key: 'k1' },
      b: { endpoint: 'https://other.example', key: 'k3' }
    })
    await writeFile(join(repo, 'config.yaml'), 'pinning:\n  remote_services:\n    a: { endpoint: "https://pins.example" }\n')
    await assert.rejects(loadConfig({ env }), { name: 'ConfigError', message: /needs an endpoint and a key/ })
    await writeFile(join(repo, 'config.yaml'), 'pinning:\n  remote_services:\n    a: { endpoint: "https://pins.example", key: k, policy: x }\n')
    await assert.rejects(loadConfig({ env }), { name: 'ConfigError', message: /unknown setting "a.policy"/ })
    await writeFile(join(repo, 'config.yaml'), 'pinning:\n  remote_services: [a]\n')
    await assert.rejects(loadConfig({ env }), { name: 'ConfigError', message: /mapping of service names/ })
  })

  it('reads the inference settings from YAML, env and flags, and rejects bad ones', async () => {
    await rm(repo, { recursive: true, force: true })
    await mkdir(repo, { recursive: true })
    await writeFile(join(repo, 'config.yaml'), 'inference:\n  keep_alive_ms: 60000\n  execution_provider: cpu\n  threads: 2\n  default_models: false\n  prefix_cache: 64MiB\n')
    const env = { NODE_DAEMON_REPO: repo }
    assert.deepEqual((await loadConfig({ env })).inference, { keepAliveMs: 60_000, executionProvider: 'cpu', threads: 2, defaultModels: false, prefixCacheBytes: 64 * 2 ** 20 })
    await writeFile(join(repo, 'config.yaml'), 'inference:\n  prefix_cache: 0\n')
    assert.equal((await loadConfig({ env })).inference.prefixCacheBytes, 0)
    await writeFile(join(repo, 'config.yaml'), 'inference:\n  prefix_cache: lots\n')
    await assert.rejects(loadConfig({ env }), { name: 'ConfigError', message: /inference.prefix_cache/ })
    await writeFile(join(repo, 'config.yaml'), 'inference:\n  keep_alive_ms: 60000\n  execution_provider: cpu\n  threads: 2\n  default_models: false\n')
    const fromEnv = await loadConfig({ env: { ...env, NODE_DAEMON_EXECUTION_PROVIDER: 'cuda', NODE_DAEMON_DEFAULT_MODELS: 'true' } })
    assert.equal(fromEnv.inference.executionProvider, 'cuda')
    assert.equal(fromEnv.inference.defaultModels, true)
    assert.equal((await loadConfig({ env: { ...env, NODE_DAEMON_DEFAULT_MODELS: 'true' }, flags: { inference: { defaultModels: false } } })).inference.defaultModels, false)
    await assert.rejects(loadConfig({ env: { ...env, NODE_DAEMON_EXECUTION_PROVIDER: 'tpu' } }), { name: 'ConfigError', message: /auto, cpu, cuda/ })
    await writeFile(join(repo, 'config.yaml'), 'inference:\n  keepalive: 5\n')
    await assert.rejects(loadConfig({ env }), { name: 'ConfigError', message: /unknown setting "inference.keepalive"/ })
  })

  it('takes the repo from the env var, then from the flag', async () => {
    // Paths of this test's own: a /tmp/x left by anything else (a file, a bad config.yaml) failed it.
    const [fromEnv, fromFlag] = [join(dir, 'env-repo'), join(dir, 'flag-repo')]
    assert.equal((await loadConfig({ env: { NODE_DAEMON_REPO: fromEnv } })).repo, fromEnv)
    assert.equal((await loadConfig({ env: { NODE_DAEMON_REPO: fromEnv }, flags: { repo: fromFlag } })).repo, fromFlag)
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

  it('reads swarm.mdns and the cluster settings from YAML, env and flags', async () => {
    await rm(repo, { recursive: true, force: true })
    await mkdir(repo, { recursive: true })
    const yamlSecret = 'ab'.repeat(32)
    await writeFile(join(repo, 'config.yaml'), `swarm:\n  mdns: true\ncluster:\n  secret: ${yamlSecret}\n  voters: 5\n  heartbeat_ms: 500\n  node_timeout_ms: 4000\n  voter_timeout_ms: 20000\n  tick_ms: 50\n  snapshot_every: 500\n`)
    const fromYaml = await loadConfig({ env: { NODE_DAEMON_REPO: repo } })
    assert.equal(fromYaml.swarm.mdns, true)
    assert.deepEqual(fromYaml.cluster, { secret: yamlSecret, voters: 5, heartbeatMs: 500, nodeTimeoutMs: 4000, voterTimeoutMs: 20_000, tickMs: 50, snapshotEvery: 500, allocationLimits: { cpu: 100, memory: 100, gpu: 100, storage: 100 } })

    const envSecret = 'CD'.repeat(32)
    const fromEnv = await loadConfig({ env: { NODE_DAEMON_REPO: repo, NODE_DAEMON_MDNS: '0', NODE_DAEMON_CLUSTER_SECRET: envSecret, NODE_DAEMON_CLUSTER_VOTERS: '1' } })
    assert.equal(fromEnv.swarm.mdns, false)
    assert.equal(fromEnv.cluster.secret, envSecret.toLowerCase(), 'hex is lower-cased')
    assert.equal(fromEnv.cluster.voters, 1)
    assert.equal(fromEnv.cluster.tickMs, 50, 'a setting the env does not name keeps its YAML value')

    const fromFlags = await loadConfig({ env: { NODE_DAEMON_REPO: repo, NODE_DAEMON_CLUSTER_SECRET: envSecret }, flags: { cluster: { secret: 'off' }, swarm: { mdns: false } } })
    assert.equal(fromFlags.cluster.secret, 'off')
    assert.equal(fromFlags.swarm.mdns, false)
    assert.equal((await loadConfig({ env: { NODE_DAEMON_REPO: repo, NODE_DAEMON_MDNS: 'true' } })).swarm.mdns, true)
  })

  it('reads the trusted peers and the join token from YAML, env and flags, and refuses what is not a peer id', async () => {
    await rm(repo, { recursive: true, force: true })
    await mkdir(repo, { recursive: true })
    const [p1, p2] = await Promise.all([1, 2].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    await writeFile(join(repo, 'config.yaml'), `cluster:\n  trusted_peers:\n    - ${p1}\n    - ${p2}\n  join_token: ndjt1.yaml.token\n`)
    const fromYaml = await loadConfig({ env: { NODE_DAEMON_REPO: repo } })
    assert.deepEqual(fromYaml.cluster.trustedPeers, [p1, p2])
    assert.equal(fromYaml.cluster.joinToken, 'ndjt1.yaml.token')
    const fromEnv = await loadConfig({ env: { NODE_DAEMON_REPO: repo, NODE_DAEMON_CLUSTER_TRUSTED_PEERS: `${p2}, *`, NODE_DAEMON_JOIN_TOKEN: 'ndjt1.env.token' } })
    assert.deepEqual(fromEnv.cluster.trustedPeers, [p2, '*'])
    assert.equal(fromEnv.cluster.joinToken, 'ndjt1.env.token')
    const fromFlags = await loadConfig({ env: { NODE_DAEMON_REPO: repo }, flags: { cluster: { trustedPeers: ['*'], joinToken: 'ndjt1.flag.token' } } })
    assert.deepEqual(fromFlags.cluster.trustedPeers, ['*'])
    assert.equal(fromFlags.cluster.joinToken, 'ndjt1.flag.token')
    await rm(join(repo, 'config.yaml'))
    assert.equal((await loadConfig({ env: { NODE_DAEMON_REPO: repo } })).cluster.trustedPeers, undefined, 'unset, the network decides')
    for (const bad of ['not-a-peer', `${p1},QmNope`]) {
      await assert.rejects(loadConfig({ env: { NODE_DAEMON_REPO: repo, NODE_DAEMON_CLUSTER_TRUSTED_PEERS: bad } }), { name: 'ConfigError', message: /NODE_DAEMON_CLUSTER_TRUSTED_PEERS: invalid peer id/ }, bad)
    }
  })

  it('rejects bad cluster settings with ConfigError', async () => {
    await rm(repo, { recursive: true, force: true })
    const env = (extra: Record<string, string>): NodeJS.ProcessEnv => ({ NODE_DAEMON_REPO: repo, ...extra })
    for (const secret of ['abc', 'zz'.repeat(32), 'ab'.repeat(33)]) {
      await assert.rejects(loadConfig({ env: env({ NODE_DAEMON_CLUSTER_SECRET: secret }) }), { name: 'ConfigError', message: /64 hex digits/ })
    }
    for (const voters of ['0', '2', '9', '-1', '3.5', 'three']) {
      await assert.rejects(loadConfig({ env: env({ NODE_DAEMON_CLUSTER_VOTERS: voters }) }), { name: 'ConfigError' }, voters)
    }
    await assert.rejects(loadConfig({ env: env({ NODE_DAEMON_MDNS: 'maybe' }) }), { name: 'ConfigError' })
    const bad = join(dir, 'bad-cluster.yaml')
    const rejects = async (yaml: string, message: RegExp): Promise<void> => {
      await writeFile(bad, yaml)
      await assert.rejects(loadConfig({ env: env({}), configFile: bad }), { name: 'ConfigError', message }, yaml)
    }
    await rejects('cluster:\n  heartbeat_ms: 0\n', /heartbeat_ms.*positive integer/)
    await rejects('cluster:\n  tick_ms: 1.5\n', /tick_ms.*positive integer/)
    await rejects('cluster:\n  heartbeatMs: 500\n', /unknown setting "cluster.heartbeatMs"/)
    await rejects('cluster: 3\n', /cluster: expected a mapping/)
    await rejects('swarm:\n  mdns: sometimes\n', /swarm.mdns/)
    await rejects('cluster:\n  heartbeat_ms: 5000\n  node_timeout_ms: 5000\n', /node_timeout_ms .* longer than/)
    await rejects('cluster:\n  voter_timeout_ms: 5000\n', /voter_timeout_ms .* not be shorter/)
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
