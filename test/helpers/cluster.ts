/**
 * Clusters of real daemons, each its own process on loopback with ephemeral
 * ports and a temporary repo, for the multi-node tests. Timings are shortened
 * through each repo's config.yaml so that failures are noticed in seconds.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnDaemon, stopDaemon } from './process.ts'
import type { DaemonProcess, SpawnOptions } from './process.ts'

export interface ClusterTiming {
  heartbeat_ms: number
  node_timeout_ms: number
  voter_timeout_ms: number
  tick_ms: number
  snapshot_every: number
  voters: number
}

/**
 * Short enough that a dead node is noticed in seconds, long enough that a
 * heartbeat delayed on a loaded 2-core machine (tests run two files at once)
 * does not look like a death.
 */
export const FAST: ClusterTiming = { heartbeat_ms: 250, node_timeout_ms: 4000, voter_timeout_ms: 6000, tick_ms: 100, snapshot_every: 10_000, voters: 3 }

export interface Member {
  repo: string
  proc: DaemonProcess
  /** The daemon's HTTP API, e.g. http://127.0.0.1:41234. */
  readonly api: string
  readonly peerId: string
  readonly swarmAddr: string
  alive: boolean
}

export interface ClusterOptions {
  /** Register the embedded default models, as a real start does; off unless a test needs them, to spare the CPU. */
  defaultModels?: boolean
}

export class ProcessCluster {
  readonly members: Member[] = []
  private readonly timing: ClusterTiming
  private readonly options: ClusterOptions

  constructor (timing: ClusterTiming = FAST, options: ClusterOptions = {}) {
    this.timing = timing
    this.options = options
  }

  /**
   * Starts a daemon: the first founds the cluster, later ones join through
   * `bootstrap` (default the first), unless `join` says it joins by the
   * addresses of its join token alone. `options` adds flags and variables
   * of its own, such as `--secret off` and `--join`.
   */
  async add (bootstrap?: Member, options: SpawnOptions & { args?: string[], join?: 'token' } = {}): Promise<Member> {
    const repo = await mkdtemp(join(tmpdir(), 'node-daemon-cluster-'))
    const t = this.timing
    await writeFile(join(repo, 'config.yaml'), `cluster:\n${Object.entries(t).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\ninference:\n  default_models: ${this.options.defaultModels === true}\n`)
    const via = options.join === 'token' ? undefined : bootstrap ?? this.members[0]
    const proc = await spawnDaemon(repo, [...via == null ? [] : ['--bootstrap', via.swarmAddr], ...options.args ?? []], undefined, options)
    const member = memberOf(repo, proc)
    this.members.push(member)
    return member
  }

  /** kill -9: no goodbye, as when a machine dies. */
  async kill (m: Member): Promise<void> {
    await stopDaemon(m.proc, 'SIGKILL')
    m.alive = false
  }

  /** Starts a stopped member again on its repo (with new ports). */
  async restart (m: Member): Promise<void> {
    m.proc = await spawnDaemon(m.repo)
    m.alive = true
  }

  live (): Member[] {
    return this.members.filter(m => m.alive)
  }

  async stop (): Promise<void> {
    await Promise.all(this.members.map(async m => {
      if (m.alive) {
        m.proc.child.kill('SIGCONT')
        await stopDaemon(m.proc).catch(() => {})
      }
      await rm(m.repo, { recursive: true, force: true })
    }))
  }
}

function memberOf (repo: string, proc: DaemonProcess): Member {
  return {
    repo,
    proc,
    alive: true,
    get api () { return this.proc.api },
    get peerId () { return this.proc.peerId },
    get swarmAddr () { return this.proc.swarm.find(a => a.includes('/127.0.0.1/')) ?? this.proc.swarm[0] }
  }
}

/** Calls the member's API and parses the JSON answer, whatever the status. */
export async function call (m: Pick<Member, 'api'> & { headers?: Record<string, string> }, path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number, body: any }> {
  const { json, headers, ...rest } = init
  // The member's credential, if it needs one, on every call.
  const merged = new Headers(m.headers)
  if (json !== undefined) merged.set('content-type', 'application/json')
  new Headers(headers).forEach((value, name) => { merged.set(name, value) })
  const res = await fetch(`${m.api}${path}`, {
    signal: AbortSignal.timeout(30_000),
    ...(json === undefined ? {} : { method: 'POST', body: JSON.stringify(json) }),
    ...rest,
    headers: merged
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

/**
 * Polls `check` every 200 ms until it returns a value other than undefined,
 * null or false; fails after `timeoutMs`. Null counts as not yet, as a
 * RegExp's exec that has not matched returns it.
 */
export async function waitFor<T> (what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value != null && value !== false) return value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last != null ? `: ${String(last)}` : ''}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

/** The consensus status every listed member reports, once all are ready and agree on one leader (other than `not`). */
export async function agreedLeader (members: Member[], timeoutMs = 30_000, not?: string): Promise<{ leader: string, term: number }> {
  return waitFor('one leader that every member knows', async () => {
    const statuses = await Promise.all(members.map(async m => {
      const ready = await call(m, '/health/ready')
      const status = await call(m, '/api/v1/consensus/status')
      return ready.status === 200 ? status.body : undefined
    }))
    if (statuses.some(s => s == null)) return undefined
    const leaders = new Set(statuses.map(s => s.leader))
    if (leaders.size !== 1 || statuses[0].leader === '' || statuses[0].leader === not) return undefined
    return { leader: statuses[0].leader as string, term: statuses[0].term as number }
  }, timeoutMs)
}

/** Adds bytes on a member (not pinned there) and returns their CID. */
export async function addBytes (m: Member, bytes: Uint8Array | string): Promise<string> {
  const form = new FormData()
  form.append('file', new Blob([bytes as BlobPart]), 'data')
  const res = await fetch(`${m.api}/api/v0/add?pin=false`, { method: 'POST', body: form, signal: AbortSignal.timeout(60_000) })
  const body = await res.json()
  if (res.status !== 200) throw new Error(`add failed: ${JSON.stringify(body)}`)
  return body.Hash
}

/** The pin's status on every node, as IPFS Cluster's peer_map. */
export async function pinStatus (m: Member, cid: string): Promise<{ status: string, peer_map: Record<string, { status: string }> }> {
  const res = await call(m, `/api/v0/cluster/status?arg=${cid}`)
  if (res.status !== 200) throw new Error(`status failed: ${JSON.stringify(res.body)}`)
  return res.body.status[cid]
}

/** Waits until the pin is pinned on exactly `replicas` nodes, and returns them. */
export async function pinnedOn (m: Member, cid: string, replicas: number, timeoutMs = 60_000): Promise<string[]> {
  return waitFor(`${cid} pinned on ${replicas} nodes`, async () => {
    const s = await pinStatus(m, cid)
    const pinned = Object.entries(s.peer_map).filter(([, p]) => p.status === 'pinned').map(([peer]) => peer)
    return s.status === 'pinned' && pinned.length === replicas ? pinned : undefined
  }, timeoutMs)
}

/**
 * How long `probes` requests of /health took, 100 ms apart, and a check
 * that a node whose steps take `stepMs` answered them at once: a loaded
 * machine delays an answer now and then, never by a step.
 */
/** `probes` timed requests to /health, `gapMs` apart. */
export async function healthLatencies (m: Member, probes: number, gapMs = 100): Promise<{ latencies: number[], assertQuick: (limitMs: number) => void }> {
  const latencies: number[] = []
  for (let i = 0; i < probes; i++) {
    const t0 = performance.now()
    const health = await fetch(`${m.api}/health`, { signal: AbortSignal.timeout(30_000) })
    await health.arrayBuffer()
    latencies.push(performance.now() - t0)
    assert.equal(health.status, 200)
    await new Promise(resolve => setTimeout(resolve, gapMs))
  }
  return { latencies, assertQuick: limitMs => { assertQuick(latencies, limitMs) } }
}

/**
 * No probe waited for a step: each took under `limitMs` (a quarter of a
 * step, or less where a shorter block is to be caught), and the median under
 * 50 ms. A loaded machine delays some probes by tens of ms, never by a step.
 */
export function assertQuick (latencies: number[], limitMs: number): void {
  const sorted = [...latencies].sort((a, b) => a - b)
  const median = sorted[sorted.length >> 1]
  assert.ok(median < 50 && sorted[sorted.length - 1] < limitMs, `/health took ${latencies.map(ms => ms.toFixed(0)).join(', ')} ms (median ${median.toFixed(0)}), each to be under ${limitMs.toFixed(0)} ms`)
}

/** Imports the model directory `dir` at `m` under `name` (/api/models/upload), with more form `fields` if given, and returns its CID. */
export async function upload (m: Pick<Member, 'api'>, name: string, dir: string, fields: Record<string, string> = {}): Promise<string> {
  const form = new FormData()
  form.append('modelId', name)
  for (const [field, value] of Object.entries(fields)) form.append(field, value)
  for (const file of await readdir(dir)) form.append('file', new Blob([await readFile(join(dir, file))]), file)
  const { status, body } = await call(m, '/api/models/upload', { method: 'POST', body: form })
  if (status !== 201) throw new Error(`upload of ${name}: ${status} ${JSON.stringify(body)}`)
  return body.model.cid
}

/** The worker of the newest job that `m` knows of. */
export async function lastWorker (m: Member): Promise<string> {
  const { body } = await call(m, '/api/tasks?limit=1')
  return body.tasks[0].worker
}
