/**
 * Joining with a token alone, and joins that cannot happen saying why: real
 * daemons, each its own process on loopback. A node started with the token of
 * `node-daemon cluster invite` and nothing else (no secret in its
 * environment, no bootstrap flag) becomes a member with the role the token
 * grants; one with a wrong or missing secret, an unreachable bootstrap
 * address or an expired token says so in its log, again and again, and in
 * /health/ready; `start --bootstrap` on a fresh repo without a secret stops.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { addBytes, call, FAST, pinnedOn, ProcessCluster, waitFor } from '../helpers/cluster.ts'
import { runCli, TEST_SECRET } from '../helpers/process.ts'
import type { Member } from '../helpers/cluster.ts'

/** No secret from the test environment: the node has what its token or its flags give it. */
const NO_SECRET = { NODE_DAEMON_CLUSTER_SECRET: '' }

async function invite (m: Member, args: string[] = []): Promise<string> {
  const cli = await runCli(['cluster', 'invite', '--api', m.api, ...args])
  assert.equal(cli.code, 0, cli.stderr)
  assert.match(cli.stderr, /It is a secret/)
  return cli.stdout.trim()
}

async function consensus (m: Member): Promise<{ voters: string[], learners: string[] }> {
  return (await call(m, '/api/v1/consensus/status')).body
}

async function ready (m: Member): Promise<boolean> {
  return (await call(m, '/health/ready')).status === 200
}

/** The warn lines the daemon logged about not joining (pino JSON on stderr). */
function joinWarnings (m: Member): Array<{ reason: string, msg: string }> {
  return m.proc.stderr().split('\n').filter(l => l.includes('cannot join the cluster')).map(l => JSON.parse(l))
}

/**
 * Waits until /health/ready names a join failure of `kind` and the log has
 * said it twice, a few seconds apart; returns the reason.
 */
async function failsToJoin (m: Member, kind: string, timeoutMs = 45_000): Promise<string> {
  const reason = await waitFor(`/health/ready to name a ${kind} failure`, async () => {
    const res = await call(m, '/health/ready')
    assert.equal(res.status, 503)
    return res.body.join_failure?.kind === kind ? res.body.reason as string : undefined
  }, timeoutMs)
  const warned = await waitFor('the log to say it again', async () => {
    const lines = joinWarnings(m).filter(l => l.reason === kind)
    return lines.length >= 2 ? lines : undefined
  }, timeoutMs)
  assert.ok(warned[0].msg.includes(reason.slice(0, 40)), `the log says what /health/ready says: ${warned[0].msg}`)
  return reason
}

describe('joining with a token alone', () => {
  const open = new ProcessCluster(FAST)
  let a: Member
  let learner: Member
  let voter: Member

  before(async () => {
    a = await open.add(undefined, { args: ['--secret', 'off'] })
    learner = await open.add(undefined, { join: 'token', args: ['--join', await invite(a)], env: NO_SECRET })
    voter = await open.add(undefined, { join: 'token', env: { ...NO_SECRET, NODE_DAEMON_JOIN_TOKEN: await invite(a, ['--voter', '--expires', '10m']) } })
  })

  after(async () => { await open.stop() })

  it('makes the new nodes members of an open swarm: a learner, or a voter with --voter, and replicates to them', async () => {
    await waitFor('both joined nodes ready', async () => await ready(learner) && await ready(voter))
    const status = await waitFor('the voter-token node votes', async () => {
      const s = await consensus(a)
      return s.voters.includes(voter.peerId) ? s : undefined
    })
    assert.ok(status.learners.includes(learner.peerId) && !status.voters.includes(learner.peerId), JSON.stringify(status))
    const cid = await addBytes(a, randomBytes(20_000))
    const pin = await call(a, '/api/v0/cluster/pin/add', { json: { cid, replication_factor: -1 } })
    assert.equal(pin.status, 200, JSON.stringify(pin.body))
    const holders = await pinnedOn(a, cid, 3)
    assert.deepEqual([...holders].sort(), [a.peerId, learner.peerId, voter.peerId].sort())
    // An open swarm's token writes no key, and says so in config.yaml for the starts without it.
    await assert.rejects(stat(join(learner.repo, 'swarm.key')), { code: 'ENOENT' })
  })
})

describe('joining a private network with a token alone, and joins that fail loudly', () => {
  const cluster = new ProcessCluster(FAST)
  const dirs: string[] = []
  let p: Member

  before(async () => {
    p = await cluster.add()
  })

  after(async () => {
    await cluster.stop()
    await Promise.all(dirs.map(async d => rm(d, { recursive: true, force: true })))
  })

  it('writes the cluster\'s key into the fresh repo and joins', async () => {
    const token = await invite(p)
    const q = await cluster.add(undefined, { join: 'token', args: ['--join', token], env: NO_SECRET })
    await waitFor('the joined node ready', async () => ready(q))
    assert.ok((await call(p, '/api/v1/nodes')).body.nodes.some((n: { id: string }) => n.id === q.peerId))
    assert.equal((await readFile(join(q.repo, 'swarm.key'), 'utf8')).trim().split('\n').at(-1), TEST_SECRET)
    await cluster.kill(q)
  })

  it('says a wrong or a missing cluster secret is why it cannot join', async () => {
    const [wrong, missing] = await Promise.all([
      cluster.add(p, { args: ['--secret', randomBytes(32).toString('hex')] }),
      cluster.add(p, { args: ['--secret', 'off'] })
    ])
    for (const m of [wrong, missing]) {
      const reason = await failsToJoin(m, 'secret')
      assert.match(reason, /cluster secret is wrong or missing/)
      assert.match(reason, /--join <token>/)
      await cluster.kill(m)
    }
  })

  it('says an unreachable bootstrap address is why', async () => {
    // a port nothing listens on: the founder's own peer id, at a closed port
    const closed = p.swarmAddr.replace(/\/tcp\/\d+\//, '/tcp/1/')
    const m = await cluster.add(undefined, { args: ['--bootstrap', closed], join: 'token' })
    const reason = await failsToJoin(m, 'unreachable')
    assert.match(reason, /unreachable/)
    assert.match(reason, /ECONNREFUSED/)
    await cluster.kill(m)
  })

  it('says a refused, expired token is why', async () => {
    const made = await call(p, '/api/v1/cluster/tokens', { json: { expires: '1ms' } })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    await new Promise(resolve => setTimeout(resolve, 10))
    const m = await cluster.add(undefined, { join: 'token', args: ['--join', made.body.token], env: NO_SECRET })
    const reason = await failsToJoin(m, 'refused')
    assert.match(reason, /the join token expired at/)
    assert.match(reason, /node-daemon cluster invite/)
    await cluster.kill(m)
  })

  it('stops `start --bootstrap` on a fresh repo without a secret or a token, saying what to pass, and leaves no key behind', async () => {
    const repo = await mkdtemp(join(tmpdir(), 'node-daemon-fresh-'))
    dirs.push(repo)
    const cli = await runCli(['start', '--repo', repo, '--api-port', '0', '--swarm-port', '0', '--bootstrap', p.swarmAddr])
    assert.equal(cli.code, 1, cli.stdout)
    assert.match(cli.stderr, /^Error: .*--join <token>.*node-daemon cluster invite.*--secret/m)
    assert.doesNotMatch(cli.stderr, /\n\s+at /, 'no stack')
    await assert.rejects(stat(join(repo, 'swarm.key')), { code: 'ENOENT' })
  })
})
