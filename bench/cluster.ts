/**
 * Cluster benchmark (issue 4): real daemons, each its own process on
 * 127.0.0.1, that form one cluster through `--bootstrap`, with the cluster
 * timings shortened in each repo's config.yaml so that a dead node is noticed
 * in seconds. Prints, in the order of the issue:
 *
 * 1. replication: the time from `cluster/pin/add` of a 200 MB file (added on
 *    A without pinning) with replication factor 3 until all three nodes have
 *    pinned it, B and C each fetching and verifying every byte, from A and
 *    from each other, as a rate into each fetching node against the transfer
 *    rate between two of the same daemons measured just before (`cat` on B of
 *    another file of that size added on A), and against single-core SHA-256
 *    of the same bytes (the verification bound);
 * 2. failover: with a fourth node joined as a learner and K pins of factor 2
 *    pinned, the time from kill -9 of a non-leader holding some of them until
 *    every one is pinned on 2 live nodes again, as a ratio to node_timeout_ms,
 *    the silence after which the leader marks a node offline and reallocates;
 * 3. ingestion: N pins of factor 1 sent by C concurrent clients to the three
 *    live nodes' APIs (followers forward to the leader through Raft), in
 *    pins/s against the issue's target; then the time until all are pinned.
 *
 * The phases run on one cluster, the replication last: a daemon that dies
 * moving 200 MB then costs only that figure. The killed node is removed after
 * the failover, so that the ingestion runs on three live members with nothing
 * to reallocate.
 *
 * Env: BENCH_CLUSTER_MB (200) the model's size; BENCH_CLUSTER_PINS (3000) and
 * BENCH_CLUSTER_CLIENTS (64) size the ingestion; BENCH_ONLY=replication,failover,ingest
 * picks phases; BENCH_CLUSTER_DEADLINE_S (600) bounds the whole run: past it
 * the bench prints what was reached and exits with 1; BENCH_CLUSTER_OPEN_SWARM=1
 * runs the daemons without the private network (pnet), to tell its cost or
 * its faults from the rest; BENCH_PROFILE_DIR=<dir>
 * writes a --cpu-prof profile per daemon there; BENCH_DAEMON_NODE_OPTIONS adds
 * Node flags to the daemons only.
 */
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { Agent } from 'node:http'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { withCleanup } from './lib/cleanup.ts'
import { numberFromEnv, onlyFromEnv, profileDirFromEnv, say } from './lib/cli.ts'
import { spawnDaemon } from './lib/daemon.ts'
import { MB, multipartEnd, multipartFile, multipartHead, sha256Baseline, writeRandomFile } from './lib/files.ts'
import { http } from './lib/http.ts'
import { createPhaseLog } from './lib/phases.ts'
import type { Cleanup } from './lib/cleanup.ts'
import type { DaemonProcess } from './lib/daemon.ts'
import type { HttpAnswer } from './lib/http.ts'
import type { PhaseLog } from './lib/phases.ts'

/** Written into every repo's config.yaml: a dead node is marked offline after node_timeout_ms. */
const TIMINGS = { heartbeat_ms: 250, node_timeout_ms: 2000, voter_timeout_ms: 4000 }
const VOTERS = 3
const FAILOVER_PINS = 20
const FAILOVER_FACTOR = 2
/** Issue 23's target. */
const TARGET_PINS_PER_SECOND = 1000
/** Pins sent through each node before the timed ingestion, to take its first calls' one-time work out of the figure. */
const WARMUP_PINS_PER_NODE = 4
/** IPFS Cluster's documented sustained rate in production. */
const IPFS_CLUSTER_PINS_PER_SECOND = 4
const POLL_MS = 100
/** Polls of the whole pinset of an ingestion are costly to the daemon: fewer of them. */
const PINSET_POLL_MS = 500
const REQUEST_TIMEOUT_MS = 30_000
const JOIN_TIMEOUT_MS = 60_000
/** A transfer slower than this is taken as hung. */
const FLOOR_MBPS = 1
const SLACK_MS = 60_000
/** Per pin of an ingestion, on top of SLACK_MS, before its convergence is given up. */
const CONVERGE_MS_PER_PIN = 10
/** Replication's rate into each fetching node against the transfer rate between two daemons. */
const TARGET_REPLICATION = 0.8

const PHASES = ['replication', 'failover', 'ingest'] as const
type Phase = typeof PHASES[number]

interface Settings {
  modelMB: number
  pins: number
  clients: number
  deadlineS: number
  openSwarm: boolean
  only: Set<Phase>
  profileDir?: string
  daemonNodeOptions?: string
}

/** Aborted at the overall deadline or by SIGINT/SIGTERM: every request and wait ends then. */
let halt: AbortSignal = new AbortController().signal

function settingsFromEnv (): Settings {
  return {
    modelMB: numberFromEnv('BENCH_CLUSTER_MB', 200, 65_536),
    pins: Math.round(numberFromEnv('BENCH_CLUSTER_PINS', 3000, 1_000_000)),
    clients: Math.round(numberFromEnv('BENCH_CLUSTER_CLIENTS', 64, 4096)),
    deadlineS: numberFromEnv('BENCH_CLUSTER_DEADLINE_S', 600, 86_400),
    openSwarm: process.env.BENCH_CLUSTER_OPEN_SWARM === '1',
    only: onlyFromEnv(PHASES, 'phase'),
    profileDir: profileDirFromEnv(),
    daemonNodeOptions: process.env.BENCH_DAEMON_NODE_OPTIONS
  }
}

/** What the phases share. */
interface Bench {
  s: Settings
  root: string
  cleanup: Cleanup
  phases: PhaseLog
  /** Every daemon started, so that one cleanup step stops them all at once. */
  spawning: Array<Promise<DaemonProcess>>
  labels: Map<string, string>
  /** Makes this run's content distinct from any other's. */
  runId: string
}

/** `ok`: the target met, or none to meet; `failed`: the phase did not finish. */
interface Result { name: Phase | 'start', ok: boolean, failed?: boolean, figure: string }

const reasonOf = (signal: AbortSignal): string => signal.reason?.message ?? String(signal.reason)
const cores = (n: number): string => n.toFixed(2)

/** Calls a daemon's API; the body is parsed as JSON when it is JSON. A daemon that died says so, with its last output. */
async function api (d: DaemonProcess, method: 'GET' | 'POST' | 'DELETE', path: string, json?: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<{ status: number, body: any }> {
  let res: Response
  let text: string
  try {
    res = await fetch(`${d.url}${path}`, {
      method,
      signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), halt]),
      ...(json === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) })
    })
    text = await res.text()
  } catch (err: any) {
    throw new Error(`${d.label}: ${method} ${path} failed: ${err.cause?.message ?? err.message}${d.exited() ? `\n--- ${d.label} output ---\n${d.tail()}` : ''}`)
  }
  try {
    return { status: res.status, body: JSON.parse(text) }
  } catch {
    return { status: res.status, body: text }
  }
}

/** A pin request of the ingestion, on a kept-alive connection of `agent` (see lib/http.ts for why not fetch). */
async function pinRequest (d: DaemonProcess, agent: Agent, cid: string): Promise<void> {
  let answer: HttpAnswer
  try {
    answer = await http(`${d.url}/api/v0/cluster/pin/add`, { agent, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cid, replication_factor: 1 }), signal: halt, timeoutMs: REQUEST_TIMEOUT_MS })
  } catch (err: any) {
    throw new Error(`${d.label}: pin/add failed: ${err.message}`)
  }
  if (answer.status !== 200) throw new Error(`${d.label}: pin/add answered ${answer.status}: ${answer.text}`)
}

/** As api(), but anything other than 2xx is an error carrying the daemon's answer. */
async function ok (d: DaemonProcess, method: 'GET' | 'POST' | 'DELETE', path: string, json?: unknown, timeoutMs?: number): Promise<any> {
  const res = await api(d, method, path, json, timeoutMs)
  if (res.status < 200 || res.status > 299) throw new Error(`${d.label}: ${method} ${path} answered ${res.status}: ${typeof res.body === 'string' ? res.body : JSON.stringify(res.body)}`)
  return res.body
}

type Poll<T> = { value: T } | { reached: string }

/**
 * Calls `check` every `everyMs` until it yields a value; past `timeoutMs`, at
 * the overall deadline, or as soon as one of `watch` dies, fails saying what
 * was reached. A failing check is retried: a daemon may refuse while the
 * cluster changes.
 */
async function until<T> (what: string, watch: DaemonProcess[], timeoutMs: number, everyMs: number, check: () => Promise<Poll<T>>): Promise<T> {
  const end = performance.now() + timeoutMs
  let reached = 'nothing yet'
  let lastError = ''
  for (;;) {
    if (halt.aborted) throw new Error(`${what}: ${reasonOf(halt)}; reached: ${reached}${lastError}`)
    const dead = watch.find(d => d.exited())
    if (dead != null) throw new Error(`${what}: ${dead.label} exited; reached: ${reached}\n--- ${dead.label} output ---\n${dead.tail()}`)
    try {
      const r = await check()
      if ('value' in r) return r.value
      reached = r.reached
      lastError = ''
    } catch (err: any) {
      if (!halt.aborted) lastError = ` (last check failed: ${err.message})`
    }
    if (performance.now() >= end) throw new Error(`${what}: not within ${(timeoutMs / 1000).toFixed(0)} s; reached: ${reached}${lastError}`)
    await sleep(everyMs, undefined, { signal: halt }).catch(() => {})
  }
}

function clusterYaml (): string {
  return `cluster:\n${Object.entries(TIMINGS).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`
}

async function startNode (b: Bench, label: string, bootstrap?: DaemonProcess): Promise<DaemonProcess> {
  halt.throwIfAborted()
  const extra = [b.s.daemonNodeOptions ?? '']
  if (b.s.profileDir != null) extra.push('--cpu-prof', `--cpu-prof-dir=${b.s.profileDir}`, `--cpu-prof-name=${label}-${process.pid}.cpuprofile`)
  // Over an open swarm a node joins with a token, of role voter so that any of them may take a voter's place.
  const token = bootstrap == null || !b.s.openSwarm ? [] : ['--join', (await ok(bootstrap, 'POST', '/api/v1/cluster/tokens', { role: 'voter' })).token]
  const spawning = spawnDaemon({
    label,
    repo: join(b.root, `repo-${label}`),
    nodeOptions: extra.join(' ').trim(),
    args: bootstrap == null ? [] : ['--bootstrap', bootstrap.swarmAddr, ...token],
    config: clusterYaml(),
    openSwarm: b.s.openSwarm,
    signal: halt
  })
  b.spawning.push(spawning)
  const d = await spawning
  b.labels.set(d.peerId, label)
  return d
}

interface Membership { leader: string, voters: string[], learners: string[] }

/**
 * Waits until every node is ready (`/health/ready`), all name one leader, the
 * members are exactly these nodes and the voters number min(3, nodes).
 */
async function settled (b: Bench, nodes: DaemonProcess[], what: string, timeoutMs = JOIN_TIMEOUT_MS): Promise<Membership> {
  const name = (id: string): string => b.labels.get(id) ?? id.slice(-6)
  return until<Membership>(what, nodes, timeoutMs, POLL_MS, async () => {
    const views = await Promise.all(nodes.map(async d => ({
      ready: (await api(d, 'GET', '/health/ready')).status === 200,
      status: (await ok(d, 'GET', '/api/v1/consensus/status')) as Membership
    })))
    const first = views[0].status
    const members = new Set([...first.voters, ...first.learners])
    const leaders = new Set(views.map(v => v.status.leader))
    const done = views.every(v => v.ready) && leaders.size === 1 && first.leader !== '' &&
      first.voters.length === Math.min(VOTERS, nodes.length) && members.size === nodes.length && nodes.every(d => members.has(d.peerId))
    if (done) return { value: first }
    return { reached: `${views.filter(v => v.ready).length} of ${nodes.length} ready, leaders named: ${[...leaders].map(l => l === '' ? 'none' : name(l)).join(', ')}, voters ${first.voters.map(name).join(',')}, learners ${first.learners.map(name).join(',') || 'none'}` }
  })
}

/** `add?pin=false` of a multipart body with `boundary`; returns the CID of each file by its name. */
async function add (d: DaemonProcess, boundary: string, body: string | AsyncIterable<Uint8Array>, timeoutMs: number): Promise<Map<string, string>> {
  let answer: HttpAnswer
  try {
    answer = await http(`${d.url}/api/v0/add?pin=false`, { headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body, signal: halt, timeoutMs })
  } catch (err: any) {
    throw new Error(`${d.label}: add failed: ${err.cause?.message ?? err.message}${d.exited() ? `\n--- ${d.label} output ---\n${d.tail()}` : ''}`)
  }
  if (answer.status !== 200) throw new Error(`${d.label}: add answered ${answer.status}: ${answer.text}`)
  // NDJSON, one line per file; a late failure is a line with a Message.
  const lines = answer.text.split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as { Name?: string, Hash?: string, Message?: string })
  const failed = lines.find(l => l.Message != null)
  if (failed != null) throw new Error(`${d.label}: add failed: ${failed.Message}`)
  return new Map(lines.filter(l => l.Hash != null && l.Name != null).map(l => [l.Name as string, l.Hash as string]))
}

/** Adds one big file, streamed from disk. */
async function addFile (d: DaemonProcess, path: string, bytes: number): Promise<string> {
  const boundary = `bench-${randomUUID()}`
  const cids = await add(d, boundary, multipartFile(path, 'model.bin', boundary), SLACK_MS + bytes / MB / FLOOR_MBPS * 1000)
  const cid = cids.get('model.bin')
  if (cid == null) throw new Error(`${d.label}: add returned no CID for model.bin`)
  return cid
}

/** Reads a file whole with `cat`, checking its length: on a node that lacks it, a transfer. */
async function catFile (d: DaemonProcess, cid: string, bytes: number): Promise<void> {
  let got = 0
  let answer: HttpAnswer
  try {
    // Ends when the daemon ends the body, or when the request's timeout aborts it.
    answer = await http(`${d.url}/api/v0/cat?arg=${cid}`, { signal: halt, timeoutMs: SLACK_MS + bytes / MB / FLOOR_MBPS * 1000, onData: (chunk) => { got += chunk.byteLength } })
  } catch (err: any) {
    throw new Error(`${d.label}: cat failed: ${err.cause?.message ?? err.message}${d.exited() ? `\n--- ${d.label} output ---\n${d.tail()}` : ''}`)
  }
  if (answer.status !== 200) throw new Error(`${d.label}: cat answered ${answer.status}`)
  if (got !== bytes) throw new Error(`${d.label}: cat returned ${got} bytes, expected ${bytes}`)
}

/** Adds small distinct files in one request: one block each. */
async function addTexts (d: DaemonProcess, texts: string[]): Promise<string[]> {
  const boundary = `bench-${randomUUID()}`
  const body = texts.map((t, i) => `${multipartHead(boundary, `f${i}`)}${t}\r\n`).join('') + multipartEnd(boundary)
  const cids = await add(d, boundary, body, SLACK_MS + texts.length)
  return texts.map((_, i) => {
    const cid = cids.get(`f${i}`)
    if (cid == null) throw new Error(`${d.label}: add returned no CID for file ${i} of ${texts.length}`)
    return cid
  })
}

interface PinStatus { status: string, peer_map: Record<string, { status: string }> }

/** Every pin's status on every node, from one node's `cluster/status`. */
async function statuses (d: DaemonProcess, cid?: string): Promise<Record<string, PinStatus>> {
  return (await ok(d, 'GET', `/api/v0/cluster/status${cid == null ? '' : `?arg=${cid}`}`)).status
}

/**
 * Done when each of `cids` is pinned on at least `replicas` nodes other than
 * `dead`; the value is each pin's holders.
 */
async function replicated (d: DaemonProcess, cids: string[], replicas: number, dead?: string): Promise<Poll<Map<string, string[]>>> {
  const all = await statuses(d)
  const holders = new Map<string, string[]>()
  const counts = new Map<string, number>()
  for (const cid of cids) {
    const s = all[cid]
    const pinned = s == null ? [] : Object.entries(s.peer_map).filter(([peer, p]) => p.status === 'pinned' && peer !== dead).map(([peer]) => peer)
    holders.set(cid, pinned)
    if (pinned.length < replicas) {
      const key = s == null ? 'not in the pinset' : Object.values(s.peer_map).map(p => p.status).filter(st => st !== 'remote').sort().join('+')
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
  }
  const short = [...counts.values()].reduce((a, n) => a + n, 0)
  if (short === 0) return { value: holders }
  return { reached: `${cids.length - short} of ${cids.length} pinned on ${replicas} live nodes; the rest: ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ')}` }
}

async function replication (b: Bench, nodes: DaemonProcess[], results: Result[]): Promise<void> {
  const bytes = Math.round(b.s.modelMB * MB)
  const path = join(b.root, 'model.bin')
  const remove = b.cleanup.defer(async () => rm(path, { force: true }))
  await writeRandomFile(path, bytes)
  const base = await sha256Baseline(path)
  const shaSeconds = bytes / MB / base.mbps
  say(`sha256 baseline: ${base.mbps.toFixed(1)} MB/s (single core, node:crypto, median of 3 runs over the ${b.s.modelMB} MB file): ${shaSeconds.toFixed(2)} s for the model's bytes`)

  const [a, peer] = nodes
  const added = await b.phases.timed('model-add', [a], async () => addFile(a, path, bytes))
  await remove()
  const cid = added.value
  const name = (id: string): string => b.labels.get(id) ?? id

  // The transfer rate between two of these daemons, on other bytes of the same size.
  const other = join(b.root, 'transfer.bin')
  const removeOther = b.cleanup.defer(async () => rm(other, { force: true }))
  await writeRandomFile(other, bytes)
  const otherCid = (await b.phases.timed('transfer-add', [a], async () => addFile(a, other, bytes))).value
  await removeOther()
  const transfer = await b.phases.timed('transfer', [a, peer], async () => catFile(peer, otherCid, bytes))
  const transferMbps = bytes / MB / transfer.seconds
  say(`transfer of ${b.s.modelMB} MB between two daemons (cat on ${peer.label} of a file added on ${a.label}): ${transferMbps.toFixed(1)} MB/s  [${transfer.seconds.toFixed(2)} s, cpu ${a.label} ${cores(transfer.daemonCores[0])} ${peer.label} ${cores(transfer.daemonCores[1])} cores]`)

  const pinned = await b.phases.timed('replication', nodes, async () => {
    const answer = await ok(a, 'POST', '/api/v0/cluster/pin/add', { cid, replication_factor: nodes.length })
    await until(`the model pinned on all ${nodes.length} nodes`, nodes, SLACK_MS + bytes / MB / FLOOR_MBPS * 1000, POLL_MS, async () => {
      const s = (await statuses(a, cid))[cid]
      const peers = Object.entries(s?.peer_map ?? {})
      if (peers.length === nodes.length && peers.every(([, p]) => p.status === 'pinned')) return { value: undefined }
      return { reached: `allocated to ${(answer.peers as string[]).map(name).join(',')}; ${peers.map(([id, p]) => `${name(id)} ${p.status}`).join(', ')}` }
    })
  })
  const ratio = pinned.seconds / shaSeconds
  const mbps = bytes / MB / pinned.seconds
  const toTransfer = mbps / transferMbps
  say(`replication of ${b.s.modelMB} MB to factor ${nodes.length} on ${nodes.length} daemons: ${pinned.seconds.toFixed(2)} s from cluster/pin/add until pinned on all, ${mbps.toFixed(1)} MB/s into each of the ${nodes.length - 1} fetching nodes = ${toTransfer.toFixed(2)} x the transfer rate between two daemons (target >= ${TARGET_REPLICATION}); ${ratio.toFixed(2)} x single-core SHA-256 of the same bytes  [cpu ${nodes.map((d, i) => `${d.label} ${cores(pinned.daemonCores[i])}`).join(' ')} cores, bench ${cores(pinned.benchCores)}; add on ${a.label} (pin=false) took ${added.seconds.toFixed(2)} s = ${(bytes / MB / added.seconds).toFixed(1)} MB/s, ${cid}]`)
  results.push({ name: 'replication', ok: toTransfer >= TARGET_REPLICATION, figure: `replication ${toTransfer.toFixed(2)} x transfer (target >= ${TARGET_REPLICATION})` })
}

/** Returns the nodes still alive and members: the killed node is removed from the cluster. */
async function failover (b: Bench, nodes: DaemonProcess[], results: Result[]): Promise<DaemonProcess[]> {
  const [a] = nodes
  const d = await startNode(b, 'D', a)
  const all = [...nodes, d]
  await settled(b, all, `${d.label} joined as a learner`)
  const cids = await addTexts(a, Array.from({ length: FAILOVER_PINS }, (_, i) => `failover ${b.runId} ${i}\n`))
  // Through every node's API, followers included.
  await Promise.all(cids.map(async (cid, i) => ok(all[i % all.length], 'POST', '/api/v0/cluster/pin/add', { cid, replication_factor: FAILOVER_FACTOR })))
  const holders = await until(`${FAILOVER_PINS} pins of factor ${FAILOVER_FACTOR} pinned`, all, SLACK_MS, POLL_MS, async () => replicated(a, cids, FAILOVER_FACTOR))
  const { leader, voters } = await settled(b, all, 'the cluster before the kill')

  const held = (id: string): number => [...holders.values()].filter(h => h.includes(id)).length
  // Not the leader, whose failover the raft bench measures; not A, which holds every block and serves the API.
  const victim = all.filter(n => n !== a && n.peerId !== leader).sort((x, y) => held(y.peerId) - held(x.peerId))[0]
  if (victim == null || held(victim.peerId) === 0) throw new Error('no node other than the leader and A holds any of the pins')
  const survivors = all.filter(n => n !== victim)
  const watcher = survivors.find(n => n.peerId === leader) ?? a
  let offlineMs: number | undefined

  const converged = await b.phases.timed('failover', survivors, async () => {
    const t0 = performance.now()
    await victim.kill()
    await until(`every pin on ${FAILOVER_FACTOR} live nodes after kill -9 of ${victim.label}`, survivors, TIMINGS.node_timeout_ms + SLACK_MS, POLL_MS, async () => {
      if (offlineMs == null) {
        const view = (await ok(watcher, 'GET', '/api/v1/nodes')).nodes.find((n: { id: string }) => n.id === victim.peerId)
        if (view?.status === 'offline') offlineMs = performance.now() - t0
      }
      return replicated(watcher, cids, FAILOVER_FACTOR, victim.peerId)
    })
  })
  const ms = converged.seconds * 1000
  const ratio = ms / TIMINGS.node_timeout_ms
  say(`convergence after kill -9 of a node: ${ms.toFixed(0)} ms from the kill until all ${FAILOVER_PINS} pins of factor ${FAILOVER_FACTOR} were pinned on ${FAILOVER_FACTOR} live nodes again = ${ratio.toFixed(2)} x node_timeout_ms (the floor: the leader marks a node offline, and reallocates, only after ${TIMINGS.node_timeout_ms} ms of silence)  [killed ${victim.label}, a ${voters.includes(victim.peerId) ? 'voter' : 'learner'} holding ${held(victim.peerId)} of the pins; marked offline after ${offlineMs == null ? '?' : offlineMs.toFixed(0)} ms; heartbeat ${TIMINGS.heartbeat_ms} ms; cpu ${survivors.map((n, i) => `${n.label} ${cores(converged.daemonCores[i])}`).join(' ')} cores]`)
  results.push({ name: 'failover', ok: true, figure: `failover ${ratio.toFixed(2)} x node_timeout_ms` })

  // Removed, so that the ingestion runs on three live members with nothing to reallocate.
  await ok(watcher, 'DELETE', `/api/v1/nodes/${victim.peerId}`)
  const after = await settled(b, survivors, `${victim.label} removed from the cluster`)
  await victim.stop()
  say(`  after removing ${victim.label}: voters ${after.voters.map(id => b.labels.get(id)).join(',')}, leader ${b.labels.get(after.leader)}`)
  return survivors
}

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

async function ingest (b: Bench, nodes: DaemonProcess[], results: Result[]): Promise<void> {
  const [a] = nodes
  const n = b.s.pins
  const put = await b.phases.timed('ingest-put', [a], async () => addTexts(a, Array.from({ length: n + WARMUP_PINS_PER_NODE * nodes.length }, (_, i) => `ingest ${b.runId} ${i}\n`)))
  const cids = put.value.slice(0, n)
  // A daemon compiles a route's validators and loads some modules at its first call (~0.1 s of CPU):
  // a few pins through each node first, so that the figure is the sustained rate, not those.
  const warmup = put.value.slice(n)
  // The warm-up goes through the connections the timed pins take (they close with the daemons should it fail).
  const agent = new Agent({ keepAlive: true })
  await Promise.all(nodes.map(async (d, i) => {
    for (const cid of warmup.slice(i * WARMUP_PINS_PER_NODE, (i + 1) * WARMUP_PINS_PER_NODE)) await pinRequest(d, agent, cid)
  }))
  const { leader } = await settled(b, nodes, 'the cluster before the ingestion')

  // By the node asked: a follower forwards to the leader, which costs a round trip more.
  const byNode = new Map<DaemonProcess, number[]>(nodes.map(d => [d, []]))
  let failed = 0
  let firstError = ''
  let next = 0
  const sent = await b.phases.timed('ingest', nodes, async () => {
    await Promise.all(Array.from({ length: b.s.clients }, async (_, client) => {
      const d = nodes[client % nodes.length]
      while (next < cids.length && !halt.aborted) {
        const cid = cids[next++]
        const t0 = performance.now()
        try {
          await pinRequest(d, agent, cid)
          byNode.get(d)?.push(performance.now() - t0)
        } catch (err: any) {
          failed++
          if (firstError === '') firstError = err.message
        }
      }
    }))
  })
  agent.destroy()
  const sorted = (xs: number[]): number[] => [...xs].sort((x, y) => x - y)
  const latencies = sorted([...byNode.values()].flat())
  const p50p99 = (xs: number[]): string => `${percentile(xs, 0.5).toFixed(0)}/${percentile(xs, 0.99).toFixed(0)}`
  const perSecond = n / sent.seconds
  // On a shared machine the daemons get what the other processes leave: the CPU each pin cost them tells runs apart where pins/s cannot.
  const cpuMsPerPin = 1000 * sent.seconds * sent.daemonCores.reduce((sum, c) => sum + c, 0) / n
  const detail = `${n} pins from ${b.s.clients} clients over ${nodes.map(d => d.label).join(',')} in ${sent.seconds.toFixed(2)} s, after ${WARMUP_PINS_PER_NODE} through each first; ${cpuMsPerPin.toFixed(2)} ms of daemon CPU per pin; latency p50/p99 ${p50p99(latencies)} ms, by node asked ${nodes.map(d => `${d.label}${d.peerId === leader ? ' (leader)' : ''} ${p50p99(sorted(byNode.get(d) ?? []))}`).join(', ')}; cpu ${nodes.map((d, i) => `${d.label} ${cores(sent.daemonCores[i])}`).join(' ')} cores, bench ${cores(sent.benchCores)}; the ${n} blocks were added on ${a.label} in ${put.seconds.toFixed(2)} s`
  if (failed > 0 || latencies.length < n) {
    say(`pin ingestion: FAILED, ${latencies.length} of ${n} pin/adds answered 200${failed > 0 ? `; ${failed} failed, the first with: ${firstError}` : ''}  [${detail}]`)
    results.push({ name: 'ingest', ok: false, failed: true, figure: `ingestion failed (${latencies.length} of ${n} answered 200)` })
    return
  }
  const met = perSecond >= TARGET_PINS_PER_SECOND
  say(`pin ingestion: ${perSecond.toFixed(0)} pins/s = ${(perSecond / TARGET_PINS_PER_SECOND).toFixed(2)} x the target of ${TARGET_PINS_PER_SECOND} pins/s on three local nodes (IPFS Cluster documents ~${IPFS_CLUSTER_PINS_PER_SECOND} pins/s sustained in production)  [${detail}]`)
  results.push({ name: 'ingest', ok: met, figure: `ingestion ${perSecond.toFixed(0)} pins/s (target >= ${TARGET_PINS_PER_SECOND})` })

  const converged = await b.phases.timed('ingest-converge', nodes, async () =>
    until(`all ${n} ingested pins pinned`, nodes, SLACK_MS + n * CONVERGE_MS_PER_PIN, PINSET_POLL_MS, async () => replicated(a, cids, 1)))
  const spread = new Map(nodes.map(d => [d.peerId, 0]))
  for (const h of converged.value.values()) for (const id of h) spread.set(id, (spread.get(id) ?? 0) + 1)
  say(`  then all ${n} pinned ${converged.seconds.toFixed(2)} s after the last pin/add answered (${(sent.seconds + converged.seconds).toFixed(2)} s after the first was sent)  [held ${nodes.map(d => `${d.label} ${spread.get(d.peerId)}`).join(', ')}; cpu ${nodes.map((d, i) => `${d.label} ${cores(converged.daemonCores[i])}`).join(' ')} cores]`)
}

/** Runs a phase on `nodes`, unless the run is over or one of them died: a failure is reported, and the next phase tried. */
async function phase (name: Phase, nodes: DaemonProcess[], results: Result[], fn: () => Promise<void>): Promise<void> {
  const dead = nodes.find(d => d.exited())
  if (halt.aborted || dead != null) {
    say(`${name}: not run: ${dead != null ? `${dead.label} exited` : reasonOf(halt)}`)
    results.push({ name, ok: false, failed: true, figure: `${name} not run` })
    return
  }
  try {
    await fn()
  } catch (err: any) {
    say(`${name}: FAILED: ${err.message}`)
    results.push({ name, ok: false, failed: true, figure: `${name} failed` })
  }
}

export async function main (): Promise<number> {
  const s = settingsFromEnv()
  if (s.profileDir != null) await mkdir(s.profileDir, { recursive: true })
  say(`cluster bench: ${[...s.only].join(', ')}; daemons on 127.0.0.1 with heartbeat ${TIMINGS.heartbeat_ms} ms, node timeout ${TIMINGS.node_timeout_ms} ms, voter timeout ${TIMINGS.voter_timeout_ms} ms; model ${s.modelMB} MB (MB = 2^20 bytes), ${s.pins} pins from ${s.clients} clients; private network ${s.openSwarm ? 'off' : 'on'}; deadline ${s.deadlineS} s; node ${process.version}, ${cpus().length} cpus, load average ${loadavg()[0].toFixed(2)}${s.profileDir != null ? `; cpu profiles in ${s.profileDir}` : ''}`)
  const started = performance.now()
  return withCleanup(async (cleanup) => {
    const deadline = new AbortController()
    const timer = setTimeout(() => { deadline.abort(new Error(`the overall deadline of ${s.deadlineS} s passed`)) }, s.deadlineS * 1000)
    cleanup.defer(async () => { clearTimeout(timer) })
    halt = AbortSignal.any([cleanup.signal, deadline.signal])
    const root = await mkdtemp(join(tmpdir(), 'node-daemon-bench-cluster-'))
    cleanup.defer(async () => rm(root, { recursive: true, force: true, maxRetries: 3 }))
    const b: Bench = { s, root, cleanup, phases: createPhaseLog(), spawning: [], labels: new Map(), runId: randomUUID() }
    // One step for all daemons, so that they stop in parallel, before their directory goes.
    cleanup.defer(async () => { await Promise.all(b.spawning.map(async p => (await p.catch(() => undefined))?.stop())) })
    const results: Result[] = []

    let nodes: DaemonProcess[] = []
    try {
      const t0 = performance.now()
      const a = await startNode(b, 'A')
      nodes = [a, ...await Promise.all(['B', 'C'].map(async label => startNode(b, label, a)))]
      await settled(b, nodes, 'three nodes joined under one leader with three voters')
      say(`cluster of ${nodes.length} ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    } catch (err: any) {
      say(`start: FAILED: ${err.message}`)
      results.push({ name: 'start', ok: false, failed: true, figure: 'the cluster did not form' })
    }

    if (results.length === 0) {
      if (s.only.has('failover')) await phase('failover', nodes, results, async () => { nodes = await failover(b, nodes, results) })
      if (s.only.has('ingest')) await phase('ingest', nodes, results, async () => ingest(b, nodes, results))
      if (s.only.has('replication')) await phase('replication', nodes, results, async () => replication(b, nodes, results))
    }

    if (s.profileDir != null) {
      const file = await b.phases.write(s.profileDir)
      say(`cpu profiles (written as the daemons stop): ${s.profileDir}/<daemon>-${process.pid}.cpuprofile; phases in ${file}; summarise with node bench/cpu-profile.ts <profile> [--phase <name>]`)
    }
    // In the order of the issue, whatever the order they ran in.
    results.sort((x, y) => (PHASES as readonly string[]).indexOf(x.name) - (PHASES as readonly string[]).indexOf(y.name))
    const failed = results.filter(r => r.failed === true)
    const missed = results.filter(r => !r.ok && r.failed !== true)
    say(`summary: ${results.map(r => r.figure).join('; ')}${missed.length > 0 ? `; missed: ${missed.map(r => r.name).join(', ')}` : ''}${failed.length > 0 ? `; FAILED: ${failed.map(r => r.name).join(', ')}` : ''}; ${((performance.now() - started) / 1000).toFixed(0)} s`)
    return failed.length > 0 ? 1 : 0
  })
}
