/**
 * The daemon a fuzz run attacks: its own process on loopback with a
 * temporary repo, so that a crash shows as a dead process and its memory is
 * its own.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newSecret, PERMISSIONS } from '@node-daemon/access'
import { stringify } from 'yaml'
import { spawnDaemon, stopDaemon } from '../helpers/process.ts'
import type { DaemonProcess } from '../helpers/process.ts'

export interface FuzzDaemon {
  api: string
  /** Its API keys, where it requires credentials. */
  keys?: { all: string, only: Record<string, string> }
  repo: string
  peerId: string
  process: DaemonProcess
  /** Resident and peak memory in MB; the peak since the last reset. */
  memory(): Promise<{ rss: number, peak: number }>
  resetPeak(): Promise<void>
  stop(): Promise<void>
}

export async function startFuzzDaemon (options: { defaultModels?: boolean, auth?: boolean } = {}): Promise<FuzzDaemon> {
  const repo = await mkdtemp(join(tmpdir(), 'node-daemon-fuzz-'))
  const keys = options.auth === false ? undefined : { all: newSecret(), only: Object.fromEntries(PERMISSIONS.map(p => [p, newSecret()])) }
  const config = {
    inference: { default_models: options.defaultModels === true },
    // Content that no node has waits out a short deadline: a 504 that shows the route read what it should not.
    content: { timeout_ms: 5000 },
    ...keys == null
      ? {}
      : {
          auth: { methods: [{ type: 'api_key', keys: [{ key: keys.all, name: 'admin', permissions: ['*'] }, ...Object.entries(keys.only).map(([p, key]) => ({ key, name: `only-${p.replace(':', '-')}`, permissions: [p] }))] }] },
          // Requests with credentials are not held back; those without meet the documented 100 a minute.
          rate_limits: { default: { requests: 1_000_000, period: 60 } }
        }
  }
  await writeFile(join(repo, 'config.yaml'), stringify(config))
  const proc = await spawnDaemon(repo)
  const pid = proc.child.pid as number
  // The CIDs the requests name are local or no CIDs at all: one that no node has waits out the content deadline.
  const form = new FormData()
  form.append('file', new Blob(['hello world\n']), 'hello.txt')
  const added = await fetch(`${proc.api}/api/v0/add`, { method: 'POST', body: form, headers: keys == null ? {} : { 'x-api-key': keys.all } })
  if (!added.ok) throw new Error(`adding the fuzz content answered ${added.status}`)
  const field = async (name: string): Promise<number> => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    return Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) / 1024
  }
  return {
    api: proc.api,
    keys,
    repo,
    peerId: proc.peerId,
    process: proc,
    memory: async () => ({ rss: await field('VmRSS'), peak: await field('VmHWM') }),
    resetPeak: async () => { await writeFile(`/proc/${pid}/clear_refs`, '5') },
    stop: async () => {
      await stopDaemon(proc)
      await rm(repo, { recursive: true, force: true })
    }
  }
}
