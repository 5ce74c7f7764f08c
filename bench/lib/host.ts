/**
 * What the benches ask of the machine they run on: a free port on loopback
 * for a peer to listen on, and a peer's Debian packages, installed from apt
 * when missing (at bench time only, never by the test suite).
 */
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { promisify } from 'node:util'

const INSTALL_TIMEOUT_MS = 15 * 60_000

/** A port on 127.0.0.1 that nothing listens on now. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve) })
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  return port
}

/** Installs Debian packages, waiting for another apt that holds the lock rather than failing. */
export async function aptInstall (packages: string[], options: { signal?: AbortSignal } = {}): Promise<void> {
  await promisify(execFile)('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', ...packages], { signal: options.signal, timeout: INSTALL_TIMEOUT_MS, maxBuffer: 64 * 1_048_576 })
}
