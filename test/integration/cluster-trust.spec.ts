/**
 * Who may join a cluster over an open swarm (`--secret off`), and what a
 * member may do: daemons, each its own process, founded by one with the
 * default models, joined by a node with a voter token (trusted) and one with
 * a learner token (not), next to a stranger with none; and a bare libp2p
 * node that speaks the cluster and Raft protocols by hand, as an attacker
 * would.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { pbStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { CLUSTER_PROTOCOL, readInvite } from '@node-daemon/cluster'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { encodeMessage, encodeProposal, RAFT_PROTOCOL } from '@node-daemon/raft-node'
import * as varint from 'uint8-varint'
import { ClusterRequest, ClusterResponse } from '../../protocols/cluster.js'
import { addBytes, agreedLeader, call, FAST, pinnedOn, ProcessCluster, waitFor } from '../helpers/cluster.ts'
import { runCli } from '../helpers/process.ts'
import { startLibp2p } from '../helpers/raft.ts'
import type { Member } from '../helpers/cluster.ts'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { Message } from '@node-daemon/raft'

const OPEN = ['--secret', 'off']
const MODEL = `${DEFAULT_MODELS.generate}:latest`

/** A join token made over HTTP, as `node-daemon cluster invite` asks for one. */
async function token (m: Member, body: object): Promise<{ status: number, body: any }> {
  return call(m, '/api/v1/cluster/tokens', { json: body })
}

/** The signed admission inside a join token, which a joining node presents. */
async function admission (m: Member, body: object): Promise<string> {
  return readInvite((await token(m, body)).body.token).admission
}

/** One request on the cluster protocol, written by hand; the typed error's name and message when it fails. */
async function clusterCall (raw: Libp2p, to: Member, method: ClusterRequest.Method, body: unknown): Promise<{ ok: boolean, body: any, error: string }> {
  const stream = await raw.dialProtocol(multiaddr(to.swarmAddr), CLUSTER_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  const pb = pbStream(stream)
  await pb.write({ method, body: new TextEncoder().encode(JSON.stringify(body)) }, ClusterRequest)
  const res = await pb.read(ClusterResponse, { signal: AbortSignal.timeout(30_000) })
  await stream.close().catch(() => {})
  return { ok: res.ok, body: res.ok ? JSON.parse(new TextDecoder().decode(res.body)) : undefined, error: `${res.errorName}: ${res.errorMessage}` }
}

/** Raft messages written by hand on a stream of the Raft protocol, as a member's transport writes them. */
function send (stream: Stream, messages: Message[]): void {
  for (const m of messages) {
    const bytes = encodeMessage(m)
    stream.send(varint.encode(bytes.byteLength))
    stream.send(bytes)
  }
}

function raftMessage (over: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return { term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...over }
}

/** A MsgProp of cluster commands as a follower forwards it: each a JSON command in the driver's framing. */
function proposal (from: string, to: string, commands: object[]): Message {
  return raftMessage({
    type: 'MsgProp',
    from,
    to,
    entries: commands.map(c => ({ term: 0, index: 0, type: 'normal' as const, data: encodeProposal({ id: randomBytes(16), command: new TextEncoder().encode(JSON.stringify({ at: Date.now(), by: from, ...c })) }) }))
  })
}

async function consensus (m: Member): Promise<{ leader: string, term: number, voters: string[], learners: string[] }> {
  return (await call(m, '/api/v1/consensus/status')).body
}

async function models (m: Member): Promise<string[]> {
  return (await call(m, '/api/tags')).body.models.map((x: { name: string }) => x.name)
}

async function pinned (m: Member, cid: string): Promise<boolean> {
  return (await call(m, '/api/v0/cluster/pins')).body.pins.some((p: { cid: string }) => p.cid === cid)
}

describe('who may join a cluster over an open swarm, and what a member may do', () => {
  const cluster = new ProcessCluster(FAST)
  let a: Member
  let trusted: Member
  let learner: Member
  let stranger: Member
  let raw: Libp2p

  before(async () => {
    a = await cluster.add(undefined, { args: OPEN, env: { NODE_DAEMON_DEFAULT_MODELS: 'true' } })
    await waitFor('the default models', async () => (await models(a)).includes(MODEL), 120_000)
    for (const name of ['victim-1', 'victim-2', 'victim-3']) {
      const copied = await call(a, '/api/copy', { json: { source: MODEL, destination: name } })
      assert.equal(copied.status, 200, JSON.stringify(copied.body))
    }
    // The voter token through the command line, the learner token over HTTP.
    const cli = await runCli(['cluster', 'invite', '--api', a.api, '--voter', '--expires', '30m'])
    assert.equal(cli.code, 0, cli.stderr)
    assert.match(cli.stderr, /a join token for a voter, valid until/)
    trusted = await cluster.add(a, { args: [...OPEN, '--join', cli.stdout.trim()] })
    const learnerToken = await token(a, { role: 'learner' })
    assert.equal(learnerToken.status, 201, JSON.stringify(learnerToken.body))
    learner = await cluster.add(a, { args: OPEN, env: { NODE_DAEMON_JOIN_TOKEN: learnerToken.body.token } })
    stranger = await cluster.add(a, { args: OPEN })
    raw = await startLibp2p()
    await raw.dial(multiaddr(a.swarmAddr))
  })

  after(async () => {
    await raw?.stop()
    await cluster.stop()
  })

  it('admits a node with a voter token as a trusted peer, which becomes a voter', async () => {
    await agreedLeader([a, trusted, learner])
    const status = await waitFor('the trusted node votes', async () => {
      const s = await consensus(a)
      return s.voters.includes(trusted.peerId) ? s : undefined
    })
    assert.deepEqual([...status.voters].sort(), [a.peerId, trusted.peerId].sort())
    const history = (await call(a, '/api/v1/consensus/history?op=membership')).body.decisions.map((d: { summary: string }) => d.summary).join('\n')
    assert.match(history, new RegExp(`learner ${trusted.peerId} \\(voter token of ${a.peerId}\\)`))
    assert.match(history, new RegExp(`learner ${learner.peerId} \\(learner token of ${a.peerId}\\)`))
  })

  it('keeps out a stranger without a token: it is not a member, and learns nothing of the cluster', async () => {
    // the stranger is on the swarm, and has had time to ask
    await waitFor('the stranger on the swarm', async () => (await call(a, '/api/v0/swarm/peers', { method: 'POST' })).body.Peers?.some((p: { Peer: string }) => p.Peer === stranger.peerId))
    await new Promise(resolve => setTimeout(resolve, 3_000))
    const nodes = (await call(a, '/api/v1/nodes')).body.nodes.map((n: { id: string }) => n.id)
    assert.ok(!nodes.includes(stranger.peerId), 'not in the state')
    assert.equal((await call(stranger, '/health/ready')).status, 503)
    assert.equal((await consensus(stranger)).leader, '')
    const removal = await call(stranger, `/api/v1/nodes/${a.peerId}`, { method: 'DELETE' })
    assert.equal(removal.status, 503, 'it can decide nothing')
    assert.equal(removal.body.error_type, 'NoQuorumError')
  })

  it('refuses a join without a token, or with a forged, an untrusted or an expired one', async () => {
    const ask = async (tokenOf?: string): Promise<string> => {
      const res = await clusterCall(raw, a, ClusterRequest.Method.JOIN, { addrs: [], token: tokenOf })
      assert.equal(res.ok, false)
      return res.error
    }
    assert.match(await ask(), /^JoinError: joining a cluster over an open swarm takes a join token/)
    const good = await admission(a, { role: 'voter' })
    const [prefix, claims] = good.split('.')
    // the claims of a real token with the signature of another
    const other = await admission(a, { role: 'learner' })
    assert.match(await ask(`${prefix}.${claims}.${other.split('.')[2]}`), /^JoinError: the join token is forged/)
    // a learner token turned into a voter one
    const upgraded = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(other.split('.')[1], 'base64url').toString()), role: 'voter' })).toString('base64url')
    assert.match(await ask(`${prefix}.${upgraded}.${other.split('.')[2]}`), /^JoinError: the join token is forged/)
    // genuine, but signed by the learner, whom the cluster does not trust
    const byLearner = await token(learner, { role: 'voter' })
    assert.equal(byLearner.status, 403)
    assert.equal(byLearner.body.error_type, 'NotTrustedError')
    assert.equal((await token(stranger, { role: 'voter' })).status, 503, 'nor by the stranger, which is in no cluster')
    const shortLived = await admission(a, { role: 'voter', expires: '1ms' })
    await new Promise(resolve => setTimeout(resolve, 10))
    assert.match(await ask(shortLived), /^JoinError: the join token expired at/)
    assert.equal((await clusterCall(raw, a, ClusterRequest.Method.PIN_STATUS, {})).error.split(':')[0], 'ClusterProtocolError', 'a non-member asks nothing else')
  })

  it('lets an untrusted learner store and serve content, and nothing more: it stays a learner and its admin requests get 403', async () => {
    const cid = await addBytes(a, randomBytes(50_000))
    const pin = await call(a, '/api/v0/cluster/pin/add', { json: { cid, replication_factor: -1 } })
    assert.equal(pin.status, 200, JSON.stringify(pin.body))
    const holders = await pinnedOn(a, cid, 3)
    assert.ok(holders.includes(learner.peerId))
    const cat = await fetch(`${learner.api}/api/v0/cat?arg=${cid}&offline=true`, { method: 'POST', signal: AbortSignal.timeout(30_000) })
    assert.equal(cat.status, 200)
    assert.equal((await cat.arrayBuffer()).byteLength, 50_000)
    // its own workload still goes through
    const own = await call(learner, '/api/v0/cluster/pin/add', { json: { cid: await addBytes(learner, randomBytes(1000)) } })
    assert.equal(own.status, 200, JSON.stringify(own.body))

    for (const [path, init] of [
      ['/api/delete', { method: 'DELETE', json: { model: 'victim-1' } }],
      [`/api/v1/nodes/${a.peerId}`, { method: 'DELETE' }],
      [`/api/v1/nodes/${trusted.peerId}/drain`, { method: 'POST' }],
      [`/api/v0/cluster/pin/rm?arg=${cid}`, { method: 'POST' }],
      ['/api/v1/consensus/vote', { json: { model_id: 'victim-1', model_cid: cid } }],
      ['/api/v1/cluster/tokens', { json: {} }]
    ] as const) {
      const res = await call(learner, path, init)
      assert.equal(res.status, 403, `${path}: ${JSON.stringify(res.body)}`)
    }
    assert.ok((await models(a)).includes('victim-1:latest'))
    assert.ok(await pinned(a, cid))
    const status = await consensus(a)
    assert.ok(status.learners.includes(learner.peerId) && !status.voters.includes(learner.peerId), 'two voters of the three wanted, and still it is not promoted')
  })

  it('takes from a member it does not trust, speaking Raft by hand, only what a learner may propose', async () => {
    const { leader } = await agreedLeader([a, trusted])
    const rawId = raw.peerId.toString()
    const terms = async (): Promise<number[]> => Promise.all([a, trusted].map(async m => (await consensus(m)).term))
    const before = Math.max(...await terms())
    /** Everything a takeover needs, against every voter: votes and appends of a far later term, a leadership handover, and proposals to remove a model and the founder. */
    const attack = (to: string): Message[] => [
      raftMessage({ type: 'MsgVote', from: rawId, to, term: before + 100, index: 1_000_000, logTerm: before + 100 }),
      raftMessage({ type: 'MsgApp', from: rawId, to, term: before + 100, commit: 1_000_000 }),
      raftMessage({ type: 'MsgTimeoutNow', from: rawId, to, term: before }),
      proposal(rawId, to, [{ op: 'model.remove', modelId: 'victim-2:latest' }]),
      proposal(rawId, to, [{ op: 'model.remove', modelId: 'victim-2:latest', by: a.peerId }]),
      proposal(rawId, to, [{ op: 'node.drain', id: a.peerId, drained: true }])
    ]
    const sentinel = (n: number): Promise<string> => addBytes(a, `sentinel ${n} ${Math.random()}`)
    const streams = async (): Promise<Map<string, Stream>> => new Map(await Promise.all([a, trusted].map(async m =>
      [m.peerId, await raw.dialProtocol(multiaddr(m.swarmAddr), RAFT_PROTOCOL, { signal: AbortSignal.timeout(10_000) })] as const)))

    // A stranger's streams are reset, whatever it says (the writes may fail already).
    const early = await sentinel(0)
    const refused = await streams()
    for (const [to, stream] of refused) {
      try {
        send(stream, [...attack(to), proposal(rawId, to, [{ op: 'pin.add', cid: early, name: 'early', rmin: 1, rmax: 1, size: 0 }])])
      } catch (err: any) {
        assert.equal(err.name, 'StreamStateError')
      }
    }
    await waitFor('the stranger\'s streams reset', async () => [...refused.values()].every(s => s.status !== 'open'), 10_000)
    assert.equal(await pinned(a, early), false)

    // A member now, by a learner token, over the protocol by hand.
    const admitted = await clusterCall(raw, a, ClusterRequest.Method.JOIN, { addrs: [], token: await admission(a, { role: 'learner' }) })
    assert.equal(admitted.ok, true, admitted.error)
    assert.ok(admitted.body.members.some((m: { id: string, trusted: boolean }) => m.id === a.peerId && m.trusted))
    const open = await streams()
    for (const [to, stream] of open) send(stream, attack(to))
    // What it may propose goes through on the same stream, after the rest: once that is applied, the rest was dropped.
    const late = await sentinel(1)
    send(open.get(leader) as Stream, [proposal(rawId, leader, [{ op: 'pin.add', cid: late, name: 'late', rmin: 1, rmax: 1, size: 0 }])])
    await waitFor('the learner\'s own pin', async () => pinned(a, late))
    assert.ok([...open.values()].every(s => s.status === 'open'), 'a member\'s stream stays open')
    assert.ok((await models(a)).includes('victim-2:latest'), 'the model is still registered')
    const status = await consensus(a)
    assert.ok(status.voters.includes(a.peerId), 'the founder still votes')
    assert.ok(Math.max(...await terms()) < before + 100, 'no node took the forged term')
    assert.equal((await call(a, `/api/v1/nodes/${a.peerId}`)).body.status, 'active', 'the founder is not drained')
  })

  it('lets a node joined with a voter token remove a model and a node', async () => {
    const removed = await call(trusted, '/api/delete', { method: 'DELETE', json: { model: 'victim-3' } })
    assert.equal(removed.status, 200, JSON.stringify(removed.body))
    assert.ok(!(await models(a)).includes('victim-3:latest'))
    const rawId = raw.peerId.toString()
    const gone = await call(trusted, `/api/v1/nodes/${rawId}`, { method: 'DELETE' })
    assert.equal(gone.status, 200, JSON.stringify(gone.body))
    await waitFor('the crafted member removed', async () => !(await call(a, '/api/v1/nodes')).body.nodes.some((n: { id: string }) => n.id === rawId))
    assert.equal((await token(trusted, { role: 'learner', expires: '10m' })).status, 201, 'and make join tokens')
  })
})
