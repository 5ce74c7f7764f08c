import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { defaults, merge } from '../src/config.ts'
import { joinSettings } from '../src/join.ts'
import { formatSwarmKey } from '../src/repo.ts'
import type { Config, ConfigLayer } from '../src/config.ts'

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

describe('joinSettings', () => {
  let dir: string
  let member: string
  let n = 0
  const key = randomBytes(32).toString('hex')

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'node-daemon-join-'))
    member = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  /** A join token's form (members check its admission's signature; the joining node only reads it). */
  const token = (networkKey?: string): string => {
    const admission = `ndjt1.${b64({ cluster: member, issuer: member, role: 'learner', expires: Date.now() + 60_000, nonce: 'n' })}.AA`
    return `ndji1.${b64({ addrs: [`/ip4/192.168.1.10/tcp/4001/p2p/${member}`], admission, key: networkKey })}`
  }
  const config = (layer: ConfigLayer): Config => merge(defaults({}), { repo: join(dir, `repo-${n++}`) }, layer)

  it('takes the key and the members of a join token, besides the bootstrap peers given', async () => {
    const settings = await joinSettings(config({ swarm: { bootstrap: [`/ip4/10.0.0.1/tcp/4001/p2p/${member}`] }, cluster: { joinToken: token(key) } }))
    assert.deepEqual(settings, { secret: key, bootstrap: [`/ip4/10.0.0.1/tcp/4001/p2p/${member}`, `/ip4/192.168.1.10/tcp/4001/p2p/${member}`] })
  })

  it('runs an open swarm\'s token open, and writes that down for the starts without it', async () => {
    const c = config({ cluster: { joinToken: token() } })
    assert.equal((await joinSettings(c)).secret, 'off')
    assert.match(await readFile(join(c.repo, 'config.yaml'), 'utf8'), /secret: off/)
  })

  it('refuses a token beside another secret, or into a repo holding another key', async () => {
    await assert.rejects(joinSettings(config({ cluster: { joinToken: token(key), secret: 'off' } })), { name: 'ConfigError', message: /names another/ })
    const c = config({ cluster: { joinToken: token(key) } })
    await mkdir(c.repo, { recursive: true })
    await writeFile(join(c.repo, 'swarm.key'), formatSwarmKey(randomBytes(32).toString('hex')))
    await assert.rejects(joinSettings(c), { name: 'ConfigError', message: /fresh repo/ })
    await assert.rejects(joinSettings(config({ cluster: { joinToken: 'ndjt1.a.b' } })), { name: 'JoinError', message: /not a join token/ })
  })

  it('stops --bootstrap on a repo with neither a key nor a secret, and lets a repo with its key or a given secret through', async () => {
    const bootstrap = [`/ip4/10.0.0.1/tcp/4001/p2p/${member}`]
    await assert.rejects(joinSettings(config({ swarm: { bootstrap } })), { name: 'ConfigError', message: /--join <token>.*--secret/ })
    assert.deepEqual(await joinSettings(config({ swarm: { bootstrap }, cluster: { secret: key } })), { secret: key, bootstrap })
    assert.deepEqual(await joinSettings(config({})), { secret: undefined, bootstrap: [] }, 'no bootstrap: it founds a cluster')
  })
})
