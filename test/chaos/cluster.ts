/**
 * Daemons of the chaos run, each a `node-daemon start` process in its own
 * network namespace, on a fixed address and ports, so that a restarted node
 * comes back where its peers expect it. A node can be killed (-9), paused
 * (SIGSTOP) and restarted on its repo, with libfaketime skewing the clock it
 * reads.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { agreedLeader, call, waitFor } from '../helpers/cluster.ts'
import { spawnDaemon, stopDaemon } from '../helpers/process.ts'
import type { ClusterTiming, Member } from '../helpers/cluster.ts'
import type { DaemonProcess } from '../helpers/process.ts'
import type { ChaosNet, Host } from './net.ts'

const API_PORT = 8000
const SWARM_PORT = 4001
const START_TIMEOUT_MS = 120_000

/** What libfaketime makes a restarted daemon's clocks read: `offsetS` ahead (or behind), running `rate` times as fast. */
export interface Skew {
  offsetS: number
  rate: number
}

export interface ChaosNode extends Member {
  host: Host
  paused: boolean
  skew?: Skew
  /** The stderr of the node's earlier processes, for a report. */
  past: string[]
}

export class ChaosCluster {
  readonly nodes: ChaosNode[] = []
  private readonly net: ChaosNet
  private readonly timing: ClusterTiming
  private readonly dir: string
  private readonly faketime?: string

  constructor (net: ChaosNet, timing: ClusterTiming, dir: string, faketime?: string) {
    this.net = net
    this.timing = timing
    this.dir = dir
    this.faketime = faketime
  }

  /** Starts one daemon per host: the first founds the cluster, the others join through it. */
  async start (): Promise<void> {
    for (const host of this.net.hosts) {
      const repo = join(this.dir, host.name)
      await mkdir(repo, { recursive: true })
      await writeFile(join(repo, 'config.yaml'), `cluster:\n${Object.entries(this.timing).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`)
      const node: ChaosNode = {
        host,
        repo,
        proc: undefined as unknown as DaemonProcess,
        alive: false,
        paused: false,
        past: [],
        get api () { return this.proc.api },
        get peerId () { return this.proc.peerId },
        get swarmAddr () { return this.proc.swarm.find(a => a.includes(`/${host.ip}/`)) ?? this.proc.swarm[0] }
      }
      this.nodes.push(node)
      await this.spawn(node)
    }
    await agreedLeader(this.nodes, 120_000)
    await waitFor('every node in the replicated state', async () => {
      const peers = await call(this.nodes[0], '/api/v0/cluster/peers')
      return peers.body?.count === this.nodes.length
    }, 120_000)
  }

  private async spawn (node: ChaosNode, skew?: Skew): Promise<void> {
    const founder = this.nodes[0]
    const bootstrap = node === founder ? [] : ['--bootstrap', founder.swarmAddr]
    const env: Record<string, string> = { NODE_DAEMON_SWARM_HOST: node.host.ip }
    if (skew != null) {
      if (this.faketime == null) throw new Error('clock skew needs libfaketime')
      env.LD_PRELOAD = this.faketime
      env.FAKETIME = `${skew.offsetS >= 0 ? '+' : ''}${skew.offsetS}s x${skew.rate}`
    }
    // The APIs listen on the namespaces' own addresses, which only the harness reaches: without credentials, as
    // the run is about consensus; access control has tests of its own.
    const args = ['--api-host', node.host.ip, '--api-insecure', '--api-port', String(API_PORT), '--swarm-port', String(SWARM_PORT), ...bootstrap]
    node.proc = await spawnDaemon(node.repo, args, START_TIMEOUT_MS, { wrap: this.net.wrap(node.host), env })
    node.alive = true
    node.paused = false
    node.skew = skew
  }

  /** kill -9: no goodbye, as when a machine dies. */
  async kill (node: ChaosNode): Promise<void> {
    if (!node.alive) return
    await stopDaemon(node.proc, 'SIGKILL')
    node.alive = false
    node.paused = false
    node.past.push(node.proc.stderr())
  }

  /** Starts a killed node again on its repo; with `skew`, under libfaketime. */
  async restart (node: ChaosNode, skew?: Skew): Promise<void> {
    if (node.alive) await this.kill(node)
    await this.spawn(node, skew)
  }

  pause (node: ChaosNode): void {
    if (!node.alive || node.paused) return
    node.proc.child.kill('SIGSTOP')
    node.paused = true
  }

  resume (node: ChaosNode): void {
    if (!node.alive || !node.paused) return
    node.proc.child.kill('SIGCONT')
    node.paused = false
  }

  /**
   * How far the node's clock is from ours, in ms, as its HTTP Date header
   * says (whole seconds, rounded down: +500 ms centres it).
   */
  async clockOffset (node: ChaosNode): Promise<number> {
    const res = await fetch(`${node.api}/health/live`, { signal: AbortSignal.timeout(10_000) })
    await res.arrayBuffer()
    const date = res.headers.get('date')
    if (date == null) throw new Error(`${node.host.name} sent no Date header`)
    return Date.parse(date) + 500 - Date.now()
  }

  /** The leader most live nodes name, if any. */
  async leader (): Promise<ChaosNode | undefined> {
    const votes = new Map<string, number>()
    await Promise.all(this.nodes.filter(n => n.alive && !n.paused).map(async n => {
      const s = await call(n, '/api/v1/consensus/status', { signal: AbortSignal.timeout(3000) }).catch(() => undefined)
      const leader = s?.body?.leader
      if (typeof leader === 'string' && leader !== '') votes.set(leader, (votes.get(leader) ?? 0) + 1)
    }))
    const [best] = [...votes].sort((a, b) => b[1] - a[1])
    return best == null ? undefined : this.nodes.find(n => n.alive && n.peerId === best[0])
  }

  /** Stops every daemon, gently, then hard after the timeout. */
  async stop (): Promise<void> {
    await Promise.all(this.nodes.map(async n => {
      if (!n.alive) return
      this.resume(n)
      await stopDaemon(n.proc, 'SIGTERM', 10_000).catch(() => {})
      n.alive = false
      n.past.push(n.proc.stderr())
    }))
  }

  /** Kills every daemon at once; synchronous, for the way out of a dying process. */
  killAll (): void {
    for (const n of this.nodes) {
      if (!n.alive) continue
      try { n.proc.child.kill('SIGKILL') } catch {}
      n.alive = false
    }
  }
}
