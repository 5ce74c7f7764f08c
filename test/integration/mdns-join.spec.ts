/**
 * mDNS on a LAN: three daemons, each in a network namespace of its own on one
 * bridge (the chaos run's network), where multicast goes between them. A node
 * whose join token names no address that answers (as when the cluster's
 * nodes moved) finds the cluster by mDNS and joins with the token; a node
 * that finds it the same way but holds another secret is kept out, and says
 * the secret is why. Needs root and iproute2; skips, saying why, elsewhere.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ChaosNet, namespaceSupport, sweepStale } from '../chaos/net.ts'
import { call, FAST, waitFor } from '../helpers/cluster.ts'
import { spawnDaemon, stopDaemon } from '../helpers/process.ts'
import type { Host } from '../chaos/net.ts'
import type { Member } from '../helpers/cluster.ts'
import type { DaemonProcess } from '../helpers/process.ts'

const run = promisify(execFile)
const unsupported = await namespaceSupport()

describe('joining through mDNS on a LAN', { skip: unsupported == null ? false : `cannot make network namespaces here: ${unsupported}` }, () => {
  const net = new ChaosNet()
  const procs: DaemonProcess[] = []
  const dirs: string[] = []
  let founder: { proc: DaemonProcess, api: string, host: Host }

  /** A daemon in `host`'s namespace, listening on its address, with --mdns. */
  async function start (host: Host, args: string[], env: Record<string, string> = {}): Promise<DaemonProcess> {
    const repo = await mkdtemp(join(tmpdir(), 'node-daemon-mdns-'))
    dirs.push(repo)
    await writeFile(join(repo, 'config.yaml'), `cluster:\n${Object.entries(FAST).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\ninference:\n  default_models: false\n`)
    const proc = await spawnDaemon(repo, ['--api-host', host.ip, '--api-insecure', '--mdns', ...args], 60_000, { wrap: net.wrap(host), env: { NODE_DAEMON_SWARM_HOST: host.ip, ...env } })
    procs.push(proc)
    return proc
  }

  /** What call() needs of a member: its API. */
  const member = (api: string): Member => ({ api }) as Member

  before(async () => {
    sweepStale()
    await net.create(3)
    // mDNS sends to 224.0.0.251, for which a namespace with one subnet has no route
    for (const h of net.hosts) await run('ip', ['-n', h.ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0'])
    const host = net.hosts[0]
    const proc = await start(host, [])
    founder = { proc, api: proc.api, host }
    await waitFor('the founder ready', async () => (await call(member(founder.api), '/health/ready')).status === 200, 60_000)
  })

  after(async () => {
    await Promise.all(procs.map(async p => stopDaemon(p, 'SIGKILL').catch(() => {})))
    net.destroy()
    await Promise.all(dirs.map(async d => rm(d, { recursive: true, force: true })))
  })

  /**
   * The founder's own join token, with its addresses replaced by that of a
   * member gone since: another peer id, at a port where nothing listens. (A
   * stale address of the founder's own peer id would not do: libp2p dials a
   * peer at every address it knows, mDNS's among them.)
   */
  async function staleToken (): Promise<{ token: string, stale: string }> {
    const made = await call(member(founder.api), '/api/v1/cluster/tokens', { json: {} })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    const [prefix, body] = (made.body.token as string).split('.')
    const invite = JSON.parse(Buffer.from(body, 'base64url').toString())
    const gone = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const stale = `/ip4/${founder.host.ip}/tcp/1/p2p/${gone}`
    return { token: `${prefix}.${Buffer.from(JSON.stringify({ ...invite, addrs: [stale] })).toString('base64url')}`, stale }
  }

  it('finds the cluster by mDNS when the token\'s addresses do not answer, and joins with the token', async () => {
    const { token } = await staleToken()
    const joiner = await start(net.hosts[1], ['--join', token], { NODE_DAEMON_CLUSTER_SECRET: '' })
    await waitFor('the joiner ready', async () => (await call(member(joiner.api), '/health/ready')).status === 200, 90_000)
    const nodes = (await call(member(founder.api), '/api/v1/nodes')).body.nodes.map((n: { id: string }) => n.id)
    assert.ok(nodes.includes(joiner.peerId), JSON.stringify(nodes))
  })

  it('keeps out a node that finds the cluster by mDNS but holds another secret, and it says why', async () => {
    const { stale } = await staleToken()
    const outsider = await start(net.hosts[2], ['--secret', randomBytes(32).toString('hex'), '--bootstrap', stale])
    let last: unknown
    const ready = await waitFor('a secret failure', async () => {
      const res = await call(member(outsider.api), '/health/ready')
      assert.equal(res.status, 503)
      last = res.body
      return res.body.join_failure?.kind === 'secret' ? res.body : undefined
    }, 90_000).catch((err: Error) => { throw new Error(`${err.message}; last: ${JSON.stringify(last)}\n${outsider.stderr().slice(-3000)}`) })
    assert.match(ready.reason, /cluster secret is wrong or missing/)
    assert.notEqual(ready.join_failure.address, stale, 'the failure is of the address mDNS found, not of the bootstrap one')
    const nodes = (await call(member(founder.api), '/api/v1/nodes')).body.nodes.map((n: { id: string }) => n.id)
    assert.ok(!nodes.includes(outsider.peerId))
  })
})
