/**
 * API benchmark (issue 17): requests/s of two cheap routes, Ollama's
 * `GET /api/tags` and Kubo's `POST /api/v0/id`, driven by autocannon from this
 * process, in three settings measured in one run:
 *
 * - no auth: a daemon with no credential, on loopback, as a user's first start;
 * - API key: a second daemon that requires credentials, each request with an
 *   `X-API-Key` (target ≥ 0.9× no auth);
 * - JWT: the same daemon, each request with `Authorization: Bearer <JWT>` from
 *   document 003's login (target ≥ 0.8×; verified tokens are cached).
 *
 * The daemon with credentials keeps its rate limits on, set above what the
 * bench can reach, so that their bookkeeping is in the figure but no request
 * is refused. Every response must be a 2xx: a run with any other answer or a
 * socket error fails rather than count refusals as throughput. The settings
 * take turns, round after round, and each figure is the median of its rounds,
 * so that noise from the shared machine falls on all three alike.
 *
 * Env: BENCH_API_SECONDS (5) per measurement; BENCH_API_ROUNDS (5);
 * BENCH_API_CONNECTIONS (16) autocannon connections; BENCH_ONLY=tags,id picks
 * routes; BENCH_PROFILE_DIR=<dir> writes a --cpu-prof profile per daemon there.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { COOKIE_FILE } from '../packages/access/src/index.ts'
import { withCleanup } from './lib/cleanup.ts'
import { numberFromEnv, onlyFromEnv, profileDirFromEnv, say } from './lib/cli.ts'
import { spawnDaemon } from './lib/daemon.ts'
import { createPhaseLog } from './lib/phases.ts'
import type { Cleanup } from './lib/cleanup.ts'
import type { DaemonProcess } from './lib/daemon.ts'

const TARGET_KEY = 0.9
const TARGET_JWT = 0.8
const WARMUP_SECONDS = 2
/** Far above what one autocannon process reaches in a minute on any route, so the limiter counts but never refuses. */
const UNREACHED_LIMIT = 1_000_000_000
const REQUEST_TIMEOUT_MS = 30_000

const ROUTES = {
  tags: { method: 'GET', path: '/api/tags' },
  id: { method: 'POST', path: '/api/v0/id' }
} as const
type RouteName = keyof typeof ROUTES
const MODES = ['none', 'key', 'jwt'] as const
type Mode = typeof MODES[number]
const MODE_LABEL: Record<Mode, string> = { none: 'no auth', key: 'API key', jwt: 'JWT' }

interface Settings {
  seconds: number
  rounds: number
  connections: number
  only: Set<RouteName>
  profileDir?: string
}

function settingsFromEnv (): Settings {
  return {
    seconds: numberFromEnv('BENCH_API_SECONDS', 5, 600),
    rounds: numberFromEnv('BENCH_API_ROUNDS', 5, 100, { whole: true }),
    connections: numberFromEnv('BENCH_API_CONNECTIONS', 16, 1000, { whole: true }),
    only: onlyFromEnv(Object.keys(ROUTES) as RouteName[], 'route'),
    profileDir: profileDirFromEnv()
  }
}

interface Target {
  daemon: DaemonProcess
  headers: Record<string, string>
}

interface Run {
  rps: number
  p99Ms: number
  daemonCores: number
  benchCores: number
}

async function request (d: DaemonProcess, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number, json: any }> {
  const res = await fetch(`${d.url}${path}`, {
    method,
    headers: { ...headers, ...(body != null ? { 'content-type': 'application/json' } : {}) },
    body: body != null ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  const text = await res.text()
  let json: any
  try { json = JSON.parse(text) } catch { json = text }
  return { status: res.status, json }
}

async function expectOk (d: DaemonProcess, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<any> {
  const res = await request(d, method, path, headers, body)
  if (res.status < 200 || res.status >= 300) throw new Error(`${method} ${path} on ${d.label}: ${res.status} ${JSON.stringify(res.json).slice(0, 300)}`)
  return res.json
}

function daemonOptions (s: Settings, label: string, root: string, config?: string): Parameters<typeof spawnDaemon>[0] {
  const nodeOptions = s.profileDir != null ? `--cpu-prof --cpu-prof-dir=${s.profileDir} --cpu-prof-name=${label}-${process.pid}.cpuprofile` : undefined
  return { label, repo: join(root, label), config, nodeOptions }
}

/**
 * The daemon that requires credentials, with an API key and a JWT from its
 * own login, both made by an admin with the repo's cookie as the command line
 * does; and a check that a request with none is refused, so that the figures
 * below are of requests that were authenticated.
 */
async function securedTargets (d: DaemonProcess): Promise<Record<'key' | 'jwt', Target>> {
  const cookie = (await readFile(join(d.repo, COOKIE_FILE), 'utf8')).trim()
  const admin = { authorization: `Bearer ${cookie}` }
  const permissions = ['models:read', 'swarm']
  const { key } = await expectOk(d, 'POST', '/api/v1/auth/keys', admin, { name: 'bench', permissions })
  const password = `bench-${process.pid}-password`
  await expectOk(d, 'POST', '/api/v1/auth/users', admin, { username: 'bench', password, permissions })
  const { token } = await expectOk(d, 'POST', '/api/v1/auth/login', {}, { username: 'bench', password })
  for (const name of Object.keys(ROUTES) as RouteName[]) {
    const { method, path } = ROUTES[name]
    const refused = await request(d, method, path, {})
    if (refused.status !== 401) throw new Error(`${method} ${path} without credentials answered ${refused.status}, not 401: the secured daemon does not require them`)
  }
  return { key: { daemon: d, headers: { 'x-api-key': key } }, jwt: { daemon: d, headers: { authorization: `Bearer ${token}` } } }
}

async function cannon (target: Target, route: RouteName, seconds: number, connections: number, signal: AbortSignal): Promise<autocannon.Result> {
  const { method, path } = ROUTES[route]
  let instance: autocannon.Instance | undefined
  const onAbort = (): void => { instance?.stop() }
  try {
    return await new Promise<autocannon.Result>((resolve, reject) => {
      instance = autocannon({ url: `${target.daemon.url}${path}`, method, headers: target.headers, connections, duration: seconds }, (err, result) => {
        if (err != null) reject(err)
        else resolve(result)
      })
      signal.addEventListener('abort', onAbort, { once: true })
    })
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

async function measure (cleanup: Cleanup, s: Settings, phases: ReturnType<typeof createPhaseLog>, target: Target, route: RouteName, mode: Mode, round: number): Promise<Run> {
  const timed = await phases.timed(`${route}-${mode}-${round}`, [target.daemon], async () => cannon(target, route, s.seconds, s.connections, cleanup.signal))
  const r = timed.value
  if (cleanup.signal.aborted) throw cleanup.signal.reason
  if (r.non2xx > 0 || r.errors > 0) {
    throw new Error(`${route} with ${MODE_LABEL[mode]}: ${r.non2xx} non-2xx answers (4xx ${r['4xx']}, 5xx ${r['5xx']}) and ${r.errors} socket errors of ${r.requests.total}; the figures would count refusals`)
  }
  return { rps: r['2xx'] / r.duration, p99Ms: r.latency.p99, daemonCores: timed.daemonCores[0], benchCores: timed.benchCores }
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export async function main (): Promise<number> {
  const s = settingsFromEnv()
  if (s.profileDir != null) await mkdir(s.profileDir, { recursive: true })
  say(`api bench: ${[...s.only].join(', ')}; ${s.rounds} rounds of ${s.seconds} s per setting, ${s.connections} connections; node ${process.version}, ${cpus().length} cpus${s.profileDir != null ? `; cpu profiles in ${s.profileDir}` : ''}`)
  return withCleanup(async (cleanup) => {
    const root = await mkdtemp(join(tmpdir(), 'node-daemon-bench-api-'))
    cleanup.defer(async () => rm(root, { recursive: true, force: true, maxRetries: 3 }))
    const phases = createPhaseLog()

    const open = await spawnDaemon({ ...daemonOptions(s, 'open', root), signal: cleanup.signal })
    cleanup.defer(open.stop)
    const secured = await spawnDaemon({
      ...daemonOptions(s, 'secured', root, `auth:\n  enabled: true\nrate_limits:\n  enabled: true\n  default:\n    requests: ${UNREACHED_LIMIT}\n    period: 60s\n`),
      signal: cleanup.signal
    })
    cleanup.defer(secured.stop)
    const targets: Record<Mode, Target> = { none: { daemon: open, headers: {} }, ...await securedTargets(secured) }

    const missed: string[] = []
    for (const route of s.only) {
      const { method, path } = ROUTES[route]
      for (const mode of MODES) await cannon(targets[mode], route, WARMUP_SECONDS, s.connections, cleanup.signal)
      const runs: Record<Mode, Run[]> = { none: [], key: [], jwt: [] }
      for (let round = 0; round < s.rounds; round++) {
        // Each round starts with another setting, so that none is always measured right after a warm-up or a rest.
        for (let i = 0; i < MODES.length; i++) {
          const mode = MODES[(round + i) % MODES.length]
          runs[mode].push(await measure(cleanup, s, phases, targets[mode], route, mode, round))
        }
      }
      const rps = (mode: Mode): number => median(runs[mode].map(r => r.rps))
      say(`${method} ${path}:`)
      for (const mode of MODES) {
        const ratio = rps(mode) / rps('none')
        const target = mode === 'key' ? TARGET_KEY : mode === 'jwt' ? TARGET_JWT : undefined
        const verdict = target == null ? '' : `  ${ratio.toFixed(2)}× no auth (target ≥ ${target}×) ${ratio >= target ? 'ok' : 'MISSED'}`
        if (target != null && ratio < target) missed.push(`${path} ${MODE_LABEL[mode]}`)
        const rounds = runs[mode].map(r => r.rps.toFixed(0)).join(', ')
        say(`  ${MODE_LABEL[mode].padEnd(8)} ${rps(mode).toFixed(0).padStart(7)} req/s (rounds ${rounds}), p99 ${median(runs[mode].map(r => r.p99Ms)).toFixed(1)} ms, daemon ${median(runs[mode].map(r => r.daemonCores)).toFixed(2)} cores, autocannon ${median(runs[mode].map(r => r.benchCores)).toFixed(2)}${verdict}`)
      }
    }
    if (s.profileDir != null) {
      const file = await phases.write(s.profileDir)
      say(`cpu profiles: ${s.profileDir}/<daemon>-${process.pid}.cpuprofile; phases in ${file}; summarise with node bench/cpu-profile.ts <profile> [--phase <name>]`)
    }
    say(`summary: ${missed.length === 0 ? 'all targets met' : `missed: ${missed.join(', ')}`}`)
    return 0
  })
}
