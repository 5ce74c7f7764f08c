import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startDaemon } from '@node-daemon/cli'
import { createLogger, defaults, merge } from '@node-daemon/daemon'
import { TEST_SECRET } from './process.ts'
import type { RunningDaemon } from '@node-daemon/cli'
import type { ConfigLayer } from '@node-daemon/daemon'

export interface TestDaemon extends RunningDaemon {
  repo: string
  /** The first loopback swarm multiaddr, with /p2p/. */
  swarmAddr: string
  /** Stops the daemon and deletes its repo. */
  cleanup(): Promise<void>
}

/**
 * An in-process daemon on 127.0.0.1 with ephemeral ports and a temporary repo,
 * in the private network of TEST_SECRET unless `layer.cluster.secret` names another.
 */
export async function startTestDaemon (layer: ConfigLayer & { repo?: string } = {}): Promise<TestDaemon> {
  const repo = layer.repo ?? await mkdtemp(join(tmpdir(), 'node-daemon-test-'))
  // Default models only where a test asks for them: registering them costs every other test CPU.
  const config = merge(defaults(), { api: { host: '127.0.0.1', port: 0 }, swarm: { host: '127.0.0.1', port: 0 }, cluster: { secret: TEST_SECRET }, inference: { defaultModels: false }, log: { level: 'silent' } }, layer, { repo })
  const daemon = await startDaemon(config, createLogger(config.log.level))
  const swarmAddr = daemon.node.swarm.getMultiaddrs().map(ma => ma.toString()).find(a => a.includes('/127.0.0.1/'))
  if (swarmAddr == null) throw new Error('the test daemon has no loopback address')
  return {
    ...daemon,
    repo,
    swarmAddr,
    cleanup: async () => {
      await daemon.stop()
      if (layer.repo == null) await rm(repo, { recursive: true, force: true })
    }
  }
}

/** POSTs to /api/v0/<path> with query params and returns the response. */
export async function rpc (daemon: { url: string }, path: string, params: Record<string, string | string[]> = {}, init: RequestInit = {}): Promise<Response> {
  const url = new URL(`${daemon.url}/api/v0/${path}`)
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v)
  }
  return fetch(url, { method: 'POST', signal: AbortSignal.timeout(60_000), ...init })
}

/** Sends a request to a daemon, a JSON body as JSON, and reads the answer as JSON where it is JSON, else as text. */
export async function call (d: { url: string }, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<{ status: number, headers: Headers, body: any }> {
  const res = await fetch(`${d.url}${path}`, {
    method,
    headers: body == null ? headers : { 'content-type': 'application/json', ...headers },
    body: body == null ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000)
  })
  const text = await res.text()
  let parsed: unknown = text
  try { parsed = JSON.parse(text) } catch {}
  return { status: res.status, headers: res.headers, body: parsed }
}

/** A multipart body of named files, as curl -F or kubo-rpc-client sends them. */
export function formOf (files: Array<{ path: string, content?: Uint8Array | string }>): FormData {
  const form = new FormData()
  for (const file of files) {
    if (file.content == null) {
      form.append('file', new Blob([], { type: 'application/x-directory' }), encodeURIComponent(file.path))
    } else {
      form.append('file', new Blob([file.content as BlobPart]), encodeURIComponent(file.path))
    }
  }
  return form
}

/** Two test daemons, the second connected to the first. */
export async function startPair (): Promise<[TestDaemon, TestDaemon]> {
  const a = await startTestDaemon()
  const b = await startTestDaemon().catch(async (err) => { await a.cleanup(); throw err })
  await b.node.connect(a.swarmAddr)
  return [a, b]
}
