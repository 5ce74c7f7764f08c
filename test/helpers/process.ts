import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { compileCacheEnv, daemonNodeFlags } from '../../bench/lib/daemon.ts'
import type { ChildProcess } from 'node:child_process'

export const BIN = fileURLToPath(new URL('../../bin/node-daemon.ts', import.meta.url))

/**
 * The private-network key that the test daemons of one test file share, so
 * that they can connect to each other; a repo's own random swarm.key would
 * keep each daemon alone.
 */
export const TEST_SECRET = randomBytes(32).toString('hex')

export interface DaemonProcess {
  child: ChildProcess
  peerId: string
  api: string
  swarm: string[]
  stdout(): string
  stderr(): string
}

export interface SpawnOptions {
  /** A command that runs the daemon's command line, e.g. `ip netns exec <ns>`. */
  wrap?: string[]
  /** Variables added to the daemon's environment (they win over the defaults here). */
  env?: Record<string, string>
}

/**
 * Spawns `node-daemon start` as its own process on loopback and waits for its
 * ready lines. It joins the test swarm of TEST_SECRET, unless `--secret` in
 * `extraArgs` says otherwise; later flags in `extraArgs` win over the
 * loopback ones.
 */
export async function spawnDaemon (repo: string, extraArgs: string[] = [], timeoutMs = 60_000, options: SpawnOptions = {}): Promise<DaemonProcess> {
  // With the flags of the bin's shebang, as a user's daemon runs.
  const [command, ...args] = [...options.wrap ?? [], process.execPath, ...daemonNodeFlags(), BIN, 'start', '--repo', repo, '--api-host', '127.0.0.1', '--api-port', '0', '--swarm-port', '0', '--log-level', 'warn', ...extraArgs]
  // The test run turns onnxruntime's telemetry off for its own processes (package.json); a daemon keeps its own default, which a test checks.
  const { ORT_DISABLE_TELEMETRY: _, ...inherited } = process.env
  const child = spawn(command, args, {
    env: { ...inherited, ...compileCacheEnv(), NODE_DAEMON_SWARM_HOST: '127.0.0.1', NODE_DAEMON_CLUSTER_SECRET: TEST_SECRET, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const deadline = Date.now() + timeoutMs
  while (!/^api: /m.test(out)) {
    if (child.exitCode != null) throw new Error(`daemon exited with ${child.exitCode}: ${err}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`daemon not ready after ${timeoutMs} ms: ${out}\n${err}`)
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return {
    child,
    peerId: /^peer id: (\S+)/m.exec(out)?.[1] ?? '',
    api: /^api: (\S+)/m.exec(out)?.[1] ?? '',
    swarm: [...out.matchAll(/^swarm: (\S+)/gm)].map(m => m[1]),
    stdout: () => out,
    stderr: () => err
  }
}

/** Sends a signal and waits for the exit code, killing hard after the timeout. */
export async function stopDaemon (daemon: DaemonProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> {
  if (daemon.child.exitCode != null) return daemon.child.exitCode
  const exited = once(daemon.child, 'exit')
  daemon.child.kill(signal)
  const timer = setTimeout(() => daemon.child.kill('SIGKILL'), timeoutMs)
  const [code] = await exited
  clearTimeout(timer)
  return code as number | null
}

/** Runs a CLI command to completion, bounded in time, with `input` (default none) on its stdin. */
export async function runCli (args: string[], timeoutMs = 60_000, input = ''): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  child.stdin.end(input)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code] = await once(child, 'exit')
  clearTimeout(timer)
  return { code: code as number | null, stdout, stderr }
}
