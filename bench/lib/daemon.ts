import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { ChildProcess } from 'node:child_process'

/** The repository root: bench/lib/../.. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

/**
 * The Node binary to run daemons with: the node@24 devDependency, spawned
 * directly so that the pid we sample is the daemon itself and not an npx shim.
 */
export function nodeBinary (): string {
  const local = join(ROOT, 'node_modules', '.bin', 'node')
  return existsSync(local) ? local : process.execPath
}

/** The Node flags on the shebang line of bin/node-daemon.ts: what a user's daemon runs with. */
export function daemonNodeFlags (): string[] {
  const shebang = readFileSync(join(ROOT, 'bin', 'node-daemon.ts'), 'utf8').split('\n')[0]
  return shebang.replace(/^#!\S*env\s+(-S\s+)?node\s*/, '').split(/\s+/).filter(flag => flag.startsWith('--'))
}

/**
 * The compile cache the installed command (bin/node-daemon) points Node at
 * before it starts, so that the entry file too loads type-stripped from the
 * cache: otherwise Node loads its TypeScript stripper for that one file.
 */
export function compileCacheEnv (): { NODE_COMPILE_CACHE: string } {
  return { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'node-compile-cache') }
}

const READY_TIMEOUT_MS = 60_000
const TERM_TIMEOUT_MS = 30_000
const KILL_TIMEOUT_MS = 5_000
/** How much of the daemon's output to keep for error messages. */
const TAIL_CHARS = 8_000

export interface DaemonProcess {
  label: string
  pid: number
  repo: string
  /** Base URL of the HTTP API, as the daemon printed it. */
  url: string
  peerId: string
  /** The daemon's loopback swarm multiaddr, with /p2p/. */
  swarmAddr: string
  /** The last few KB of its stdout and stderr. */
  tail (): string
  exited (): boolean
  /** kill -9, as when a machine dies: resolves once it exited. The repo stays until stop(). */
  kill (): Promise<void>
  /** SIGTERM, then SIGKILL after a timeout; then deletes the repo. Safe to call twice. */
  stop (): Promise<void>
}

export interface SpawnOptions {
  label: string
  /** The repo directory; created, and deleted by stop(). */
  repo: string
  /**
   * Extra NODE_OPTIONS for the daemon only (e.g. `--cpu-prof`), appended to
   * the ones the bench itself was started with.
   */
  nodeOptions?: string
  /** Extra arguments to `start`, e.g. `['--bootstrap', addr]`. */
  args?: string[]
  /** YAML written to `<repo>/config.yaml` before the start, e.g. shorter cluster timings. */
  config?: string
  /** No private network: the swarm open to any libp2p peer (cluster.secret 'off'), as when pnet itself is under suspicion. */
  openSwarm?: boolean
  /** Gives up waiting for the daemon, and stops it, when this aborts. */
  signal?: AbortSignal
}

const BENCH_SECRET = randomBytes(32).toString('hex')

/** Every daemon still running: killed synchronously if the bench exits without stopping them. */
const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL') } catch {}
  }
})

function waitExit (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode != null || child.signalCode != null) return Promise.resolve(true)
  return new Promise(resolve => {
    const timer = setTimeout(() => { child.off('exit', onExit); resolve(false) }, ms)
    const onExit = (): void => { clearTimeout(timer); resolve(true) }
    child.once('exit', onExit)
  })
}

/**
 * Runs `node bin/node-daemon.ts start` as its own process on loopback with
 * ephemeral ports, and waits for the `api:` line it prints when ready.
 */
export async function spawnDaemon (options: SpawnOptions): Promise<DaemonProcess> {
  await mkdir(options.repo, { recursive: true })
  if (options.config != null) await writeFile(join(options.repo, 'config.yaml'), options.config)
  // The bench's daemons share one private network, or each would keep to itself (or none, when asked).
  const env: NodeJS.ProcessEnv = { ...process.env, ...compileCacheEnv(), NODE_DAEMON_SWARM_HOST: '127.0.0.1', NODE_DAEMON_CLUSTER_SECRET: options.openSwarm === true ? 'off' : BENCH_SECRET }
  // Nothing from the caller's environment may point the daemon elsewhere.
  delete env.NODE_DAEMON_BOOTSTRAP
  delete env.NODE_DAEMON_API_HOST
  delete env.NODE_DAEMON_API_PORT
  delete env.NODE_DAEMON_SWARM_PORT
  delete env.NODE_DAEMON_LOG_LEVEL
  delete env.NODE_DAEMON_REPO
  if (options.nodeOptions != null && options.nodeOptions !== '') {
    env.NODE_OPTIONS = [env.NODE_OPTIONS, options.nodeOptions].filter(Boolean).join(' ')
  }
  const child = spawn(nodeBinary(), [
    ...daemonNodeFlags(),
    join(ROOT, 'bin', 'node-daemon.ts'), 'start',
    '--repo', options.repo,
    '--api-host', '127.0.0.1', '--api-port', '0',
    '--swarm-port', '0',
    '--log-level', 'warn',
    ...(options.args ?? [])
  ], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a Ctrl-C reaches only the bench, which then stops the daemon itself.
    detached: true
  })
  live.add(child)

  let tail = ''
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_CHARS)
  }
  // Both pipes are drained for the daemon's whole life, or it would block on a full pipe.
  child.stderr.on('data', keep)
  // A late spawn or kill error goes into the output tail instead of crashing the bench.
  child.on('error', (err) => { keep(Buffer.from(`bench: ${err.message}\n`)) })
  const gone = (): boolean => child.pid == null || child.exitCode != null || child.signalCode != null
  let stdout = ''
  let stopping: Promise<void> | undefined
  const kill = async (): Promise<void> => {
    if (gone()) return
    child.kill('SIGKILL')
    await waitExit(child, KILL_TIMEOUT_MS)
  }
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      if (!gone()) {
        child.kill('SIGTERM')
        if (!await waitExit(child, TERM_TIMEOUT_MS)) {
          process.stderr.write(`bench: ${options.label} did not stop within ${TERM_TIMEOUT_MS} ms of SIGTERM; sending SIGKILL\n`)
          child.kill('SIGKILL')
          await waitExit(child, KILL_TIMEOUT_MS)
        }
      }
      live.delete(child)
      await rm(options.repo, { recursive: true, force: true, maxRetries: 3 })
    })()
    return stopping
  }

  try {
    const ready = await new Promise<{ url: string, peerId: string, swarmAddr: string }>((resolve, reject) => {
      const timer = setTimeout(() => { done(); reject(new Error(`${options.label} was not ready within ${READY_TIMEOUT_MS} ms`)) }, READY_TIMEOUT_MS)
      const onData = (chunk: Buffer): void => {
        keep(chunk)
        if (stdout.length > TAIL_CHARS) return
        stdout += chunk.toString('utf8')
        const api = /^api: (http:\/\/\S+)$/m.exec(stdout)
        if (api == null) return
        const peerId = /^peer id: (\S+)$/m.exec(stdout)?.[1]
        const swarmAddr = [...stdout.matchAll(/^swarm: (\S+)$/gm)].map(m => m[1]).find(a => a.startsWith('/ip4/127.0.0.1/'))
        done()
        if (peerId == null || swarmAddr == null) reject(new Error(`${options.label} printed no peer id or no loopback swarm address`))
        else resolve({ url: api[1], peerId, swarmAddr })
      }
      const onExit = (code: number | null, signal: string | null): void => {
        done()
        reject(new Error(`${options.label} exited before it was ready (code ${code}, signal ${signal})`))
      }
      const onError = (err: Error): void => { done(); reject(err) }
      const onAbort = (): void => { done(); reject(options.signal?.reason ?? new Error('aborted')) }
      const done = (): void => {
        clearTimeout(timer)
        child.off('exit', onExit)
        child.off('error', onError)
        options.signal?.removeEventListener('abort', onAbort)
        child.stdout.off('data', onData)
        child.stdout.on('data', keep)
      }
      child.stdout.on('data', onData)
      child.once('exit', onExit)
      child.once('error', onError)
      if (options.signal?.aborted === true) onAbort()
      else options.signal?.addEventListener('abort', onAbort, { once: true })
    })
    if (child.pid == null) throw new Error(`${options.label} has no pid`)
    return {
      label: options.label,
      pid: child.pid,
      repo: options.repo,
      ...ready,
      tail: () => tail,
      exited: gone,
      kill,
      stop
    }
  } catch (err: any) {
    await stop()
    throw new Error(`${err.message}\n--- ${options.label} output ---\n${tail}`)
  }
}

/** POSTs `body` as JSON to the daemon; a request that gets no answer names the daemon, and its output if it exited. */
export async function postJson (d: DaemonProcess, path: string, body: unknown, signal: AbortSignal): Promise<Response> {
  try {
    return await fetch(`${d.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal })
  } catch (err: any) {
    throw new Error(`${d.label}: ${path} failed: ${err.cause?.message ?? err.message}${d.exited() ? `\n--- ${d.label} output ---\n${d.tail()}` : ''}`)
  }
}

const LIST_POLL_MS = 200

/**
 * Waits until /api/tags lists each of `names`, by name or as `name:<tag>`:
 * a daemon registers its default models once its cluster is ready, and
 * loading them competes with whatever is measured meanwhile.
 */
export async function untilModelsListed (d: DaemonProcess, names: string[], options: { timeoutMs: number, signal: AbortSignal }): Promise<void> {
  const end = performance.now() + options.timeoutMs
  const listed = (tags: Array<{ name: string }>, name: string): boolean => tags.some(m => m.name === name || m.name.startsWith(`${name}:`))
  for (;;) {
    options.signal.throwIfAborted()
    if (d.exited()) throw new Error(`${d.label} exited\n--- ${d.label} output ---\n${d.tail()}`)
    const res = await fetch(`${d.url}/api/tags`, { signal: AbortSignal.any([AbortSignal.timeout(10_000), options.signal]) }).catch(() => undefined)
    const tags = res?.ok === true ? (await res.json() as { models: Array<{ name: string }> }).models : []
    const missing = names.filter(name => !listed(tags, name))
    if (missing.length === 0) return
    if (performance.now() >= end) throw new Error(`${d.label}: ${missing.join(', ')} not listed by /api/tags within ${options.timeoutMs / 1000} s\n--- ${d.label} output ---\n${d.tail()}`)
    await sleep(LIST_POLL_MS, undefined, { signal: options.signal }).catch(() => {})
  }
}

/** Resident set size now (VmRSS) and its peak since start or the last reset (VmHWM), in bytes. */
export async function memoryOf (pid: number): Promise<{ rss: number, hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)
    if (m == null) throw new Error(`/proc/${pid}/status has no ${key}`)
    return Number(m[1]) * 1024
  }
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

/** Resets VmHWM to the current RSS (Linux clear_refs 5); false where the kernel refuses. */
export async function resetPeakRss (pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

const CLOCK_TICKS = 100

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat. */
export async function cpuSecondsOf (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/**
 * Waits until the process uses under `busy` cores over a window of
 * `windowMs` (at most `timeoutMs`): what a phase left running in the
 * background (a job's completion through Raft, say) ends before the next
 * phase is measured, rather than inside it.
 */
export async function untilIdle (pid: number, { busy = 0.15, windowMs = 100, timeoutMs = 3000 } = {}): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    const c0 = await cpuSecondsOf(pid)
    await sleep(windowMs)
    if ((await cpuSecondsOf(pid) - c0) / (windowMs / 1000) < busy) return
  }
}

/**
 * Runs `fn` while sampling the daemon's VmRSS every `everyMs`, and reads VmHWM
 * at the end, so that a peak between two samples still counts. The sampling
 * stops however `fn` ends.
 */
export async function sampleRssDuring<T> (pid: number, fn: () => Promise<T>, everyMs = 50): Promise<{ value: T, peak: number, hwm: number }> {
  let peak = 0
  let pending: Promise<void> = Promise.resolve()
  const sample = (): void => {
    pending = memoryOf(pid).then(m => { peak = Math.max(peak, m.rss) }, () => {})
  }
  sample()
  const timer = setInterval(sample, everyMs)
  timer.unref()
  let value: T
  try {
    value = await fn()
  } finally {
    clearInterval(timer)
    await pending
  }
  const m = await memoryOf(pid)
  return { value, peak: Math.max(peak, m.rss), hwm: m.hwm }
}
