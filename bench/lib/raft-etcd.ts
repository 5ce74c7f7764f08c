/**
 * The Raft bench's peer: a three-member etcd 3.4 cluster (Debian's
 * etcd-server, installed from apt at bench time when missing) on 127.0.0.1,
 * each member with its data dir in a temp dir and etcd's defaults otherwise
 * (fsync on, heartbeat 100 ms, election timeout 1,000 ms: the driver's own
 * tick and election timeout), written to through etcd's v3 JSON gateway.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { aptInstall, freePort } from './host.ts'
import type { Cleanup } from './cleanup.ts'
import type { Commit } from './raft-load.ts'
import type { ChildProcess } from 'node:child_process'

const ETCD = '/usr/bin/etcd'
const READY_TIMEOUT_MS = 30_000
const EXIT_TIMEOUT_MS = 5_000
const TAIL_CHARS = 8_000

/** etcd-server's binary, installed from apt when missing (the bench's only way to get the peer; never the test suite's). */
export async function ensureEtcd (signal: AbortSignal): Promise<string> {
  if (existsSync(ETCD)) return ETCD
  await aptInstall(['etcd-server'], { signal })
  if (!existsSync(ETCD)) throw new Error(`apt-get installed etcd-server but there is no ${ETCD}`)
  return ETCD
}

export interface EtcdCluster {
  /** Client URLs, one per member. */
  urls: string[]
  pids: number[]
  /** The client URL of the member that leads now. */
  leader (): Promise<string>
  /** One put of `value` to `key` through `url`, over a keep-alive connection; resolves once etcd answered it committed. */
  put (url: string, key: string, value: Uint8Array): Commit
  /** One serializable range of `key` through `url`: what the member answers alone, without Raft, over the same client path. */
  range (url: string, key: string): Commit
  /** Kills the members (also done at cleanup). */
  stop (): Promise<void>
}

interface EtcdStatus { header: { member_id: string }, leader: string }

async function postJson (agent: Agent, url: string, path: string, body: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        if (res.statusCode !== 200) reject(new Error(`etcd ${path} answered ${res.statusCode}: ${text}`))
        else resolve(JSON.parse(text))
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * Starts three etcd members in data dirs under `root` and waits until they
 * agree on a leader; `cleanup` kills them (SIGKILL, then waits for the exits).
 */
export async function startEtcdCluster (etcd: string, root: string, cleanup: Cleanup): Promise<EtcdCluster> {
  const ports = []
  for (let i = 0; i < 3; i++) ports.push({ client: await freePort(), peer: await freePort() })
  const urls = ports.map(p => `http://127.0.0.1:${p.client}`)
  const initialCluster = ports.map((p, i) => `e${i}=http://127.0.0.1:${p.peer}`).join(',')
  const children: ChildProcess[] = []
  const tails: string[] = []
  // One connection per writer and member at most: etcd's clients keep theirs open too.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  const stop = cleanup.defer(async () => {
    agent.destroy()
    await Promise.all(children.map(async (child) => {
      if (child.exitCode != null || child.signalCode != null) return
      const exit = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGKILL')
      await Promise.race([exit, sleep(EXIT_TIMEOUT_MS)])
    }))
  })
  for (const [i, p] of ports.entries()) {
    const dir = await mkdtemp(join(root, `etcd-${i}-`))
    const child = spawn(etcd, [
      '--name', `e${i}`,
      '--data-dir', dir,
      '--listen-client-urls', urls[i],
      '--advertise-client-urls', urls[i],
      '--listen-peer-urls', `http://127.0.0.1:${p.peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `bench-${process.pid}`,
      '--logger', 'zap',
      '--log-level', 'warn'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    // Never outlives the bench, even one that exits without its cleanup.
    process.once('exit', () => { child.kill('SIGKILL') })
    tails.push('')
    const keep = (chunk: Buffer): void => { tails[i] = (tails[i] + chunk.toString('utf8')).slice(-TAIL_CHARS) }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
  }
  const failure = (what: string): Error => new Error(`etcd ${what}\n${tails.map((t, i) => `--- etcd member ${i} ---\n${t}`).join('\n')}`)

  const leader = async (): Promise<string> => {
    const statuses = await Promise.all(urls.map(async url => await postJson(agent, url, '/v3/maintenance/status', '{}') as EtcdStatus))
    const at = statuses.findIndex(s => s.header.member_id === s.leader)
    if (at < 0 || statuses.some(s => s.leader !== statuses[at].leader)) throw new Error('the etcd members do not agree on a leader')
    return urls[at]
  }
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    const died = children.findIndex(c => c.exitCode != null || c.signalCode != null)
    if (died >= 0) throw failure(`member ${died} exited`)
    try {
      await leader()
      break
    } catch (err: any) {
      if (Date.now() > deadline) throw failure(`had no leader within ${READY_TIMEOUT_MS} ms (${err.message})`)
      await sleep(50)
    }
  }
  return {
    urls,
    pids: children.map(c => c.pid ?? -1),
    leader,
    put (url, key, value) {
      const body = JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from(value).toString('base64') })
      return async () => postJson(agent, url, '/v3/kv/put', body)
    },
    range (url, key) {
      const body = JSON.stringify({ key: Buffer.from(key).toString('base64'), serializable: true })
      return async () => postJson(agent, url, '/v3/kv/range', body)
    },
    stop
  }
}
