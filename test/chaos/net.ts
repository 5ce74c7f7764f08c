/**
 * The chaos run's network: one network namespace per daemon, each with a
 * veth onto a bridge in a hub namespace of the run's own, and one veth from
 * the hub to this namespace, so that the harness reaches every daemon's API
 * at its own address. Faults live inside the daemons' namespaces: iptables
 * rules in the chains CHAOS-IN and CHAOS-OUT (partitions, loss) and delayer
 * processes behind NFQUEUE rules (delay, reordering; see delay.py).
 *
 * Everything is named after the harness's pid (ndc<pid>), so that a run that
 * died without cleaning up is recognised and swept by the next one.
 */
import { execFile, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { ChildProcess } from 'node:child_process'

const run = promisify(execFile)
const DELAYER = fileURLToPath(new URL('./delay.py', import.meta.url))
const PREFIX = 'ndc'
const DAEMON_QUEUE = '0'

export interface Host {
  /** n1, n2, ... */
  name: string
  ns: string
  ip: string
}

export interface DelaySpec {
  delayMs: number
  jitterMs: number
  /** Share of packets sent at once, ahead of the held ones. */
  reorder: number
}

/** Why namespaces cannot be made here, or undefined when they can. */
export async function namespaceSupport (): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  for (const [tool, flag, pkg] of [['ip', '-V', 'iproute2'], ['iptables', '--version', 'iptables'], ['python3', '--version', 'python3']]) {
    try {
      await run(tool, [flag])
    } catch {
      return `${tool} is missing (Debian package ${pkg})`
    }
  }
  const probe = `${PREFIX}${process.pid}-probe`
  try {
    await run('ip', ['netns', 'add', probe])
  } catch (err: any) {
    return `ip netns add failed: ${String(err.stderr ?? err.message).trim()}`
  }
  try {
    await run('ip', ['netns', 'exec', probe, 'iptables', '-w', '5', '-S'])
  } catch (err: any) {
    return `iptables does not work in a namespace: ${String(err.stderr ?? err.message).trim()}`
  } finally {
    await run('ip', ['netns', 'del', probe]).catch(() => {})
  }
  return undefined
}

/** libfaketime's preload library (Debian package libfaketime), or undefined. */
export function faketimeLibrary (): string | undefined {
  const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64'
  const lib = `/usr/lib/${arch}-linux-gnu/faketime/libfaketimeMT.so.1`
  return existsSync(lib) ? lib : undefined
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    return err.code === 'EPERM'
  }
}

/** Kills what runs in a namespace and deletes it; synchronous, so that it can run on the way out of a dying process. */
function dropNamespaceSync (ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(p => p !== '')
    for (const pid of pids) {
      try { process.kill(Number(pid), 'SIGKILL') } catch {}
    }
  } catch {}
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {}
}

/** Removes the namespaces (and with them the veths and bridges) of runs whose harness is gone. */
export function sweepStale (): string[] {
  let list = ''
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  } catch {
    return []
  }
  const swept: string[] = []
  for (const line of list.split('\n')) {
    const ns = line.split(' ')[0]
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(ns)
    if (m == null || alive(Number(m[1]))) continue
    dropNamespaceSync(ns)
    swept.push(ns)
  }
  return swept
}

async function ip (...args: string[]): Promise<void> {
  try {
    await run('ip', args)
  } catch (err: any) {
    throw new Error(`ip ${args.join(' ')}: ${String(err.stderr ?? err.message).trim()}`)
  }
}

/** A /24 of 10.213.0.0/16 that no interface or route here uses yet. */
async function freeSubnet (): Promise<string> {
  const { stdout } = await run('ip', ['-4', 'route', 'show', 'table', 'all'])
  for (let i = 0; i < 250; i++) {
    const subnet = `10.213.${(process.pid + i) % 250}`
    if (!stdout.includes(`${subnet}.`)) return subnet
  }
  throw new Error('no free /24 in 10.213.0.0/16')
}

export class ChaosNet {
  readonly id = `${PREFIX}${process.pid}`
  readonly hub = `${this.id}-hub`
  readonly hosts: Host[] = []
  subnet = ''
  /** The harness's address on the bridge. */
  gateway = ''
  private readonly delayers = new Map<string, ChildProcess>()
  private made = false

  /** Builds the bridge and `n` hosts on it. */
  async create (n: number): Promise<void> {
    this.subnet = await freeSubnet()
    this.gateway = `${this.subnet}.1`
    this.made = true
    await ip('netns', 'add', this.hub)
    await ip('-n', this.hub, 'link', 'set', 'lo', 'up')
    await ip('-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge')
    await ip('-n', this.hub, 'link', 'set', 'br0', 'up')
    // this namespace's leg, named after the run since names here are shared
    await ip('link', 'add', `${this.id}h`, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', this.hub)
    await ip('-n', this.hub, 'link', 'set', 'uplink', 'master', 'br0', 'up')
    await ip('addr', 'add', `${this.gateway}/24`, 'dev', `${this.id}h`)
    await ip('link', 'set', `${this.id}h`, 'up')
    for (let i = 1; i <= n; i++) {
      const host: Host = { name: `n${i}`, ns: `${this.id}-n${i}`, ip: `${this.subnet}.${10 + i}` }
      await ip('netns', 'add', host.ns)
      this.hosts.push(host)
      await ip('-n', host.ns, 'link', 'set', 'lo', 'up')
      await ip('-n', this.hub, 'link', 'add', host.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns)
      await ip('-n', this.hub, 'link', 'set', host.name, 'master', 'br0', 'up')
      await ip('-n', host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0')
      await ip('-n', host.ns, 'link', 'set', 'eth0', 'up')
      // the harness's own traffic never meets a fault
      for (const [chain, hook, dir] of [['CHAOS-IN', 'INPUT', '-s'], ['CHAOS-OUT', 'OUTPUT', '-d']]) {
        await this.iptables(host, '-N', chain)
        await this.iptables(host, '-A', hook, '!', dir, this.gateway, '-j', chain)
      }
    }
  }

  /** The command that runs a program inside the host's namespace. */
  wrap (host: Host): string[] {
    return ['ip', 'netns', 'exec', host.ns]
  }

  private async iptables (host: Host, ...args: string[]): Promise<void> {
    // -w: the xtables lock is shared by every namespace
    try {
      await run('ip', ['netns', 'exec', host.ns, 'iptables', '-w', '10', ...args])
    } catch (err: any) {
      throw new Error(`iptables ${args.join(' ')} in ${host.name}: ${String(err.stderr ?? err.message).trim()}`)
    }
  }

  /** Cuts every link between hosts of different groups, in both directions; hosts in no group keep their links. */
  async partition (groups: Host[][]): Promise<void> {
    const groupOf = new Map<Host, number>()
    groups.forEach((g, i) => { for (const h of g) groupOf.set(h, i) })
    for (const h of this.hosts) {
      const mine = groupOf.get(h)
      if (mine === undefined) continue
      for (const o of this.hosts) {
        const theirs = groupOf.get(o)
        if (theirs === undefined || theirs === mine) continue
        await this.iptables(h, '-A', 'CHAOS-IN', '-s', o.ip, '-j', 'DROP')
        await this.iptables(h, '-A', 'CHAOS-OUT', '-d', o.ip, '-j', 'DROP')
      }
    }
  }

  /** Drops a share of the packets that reach each host from the other hosts. */
  async loss (hosts: Host[], probability: number): Promise<void> {
    for (const h of hosts) {
      await this.iptables(h, '-A', 'CHAOS-IN', '-s', `${this.subnet}.0/24`, '-m', 'statistic', '--mode', 'random', '--probability', probability.toFixed(3), '-j', 'DROP')
    }
  }

  /** Holds the packets each host sends to the other hosts, as netem's delay with jitter and reordering. */
  async delay (hosts: Host[], spec: DelaySpec): Promise<void> {
    for (const h of hosts) {
      if (this.delayers.has(h.ns)) continue
      const child = spawn('ip', ['netns', 'exec', h.ns, 'python3', DELAYER, DAEMON_QUEUE, String(spec.delayMs), String(spec.jitterMs), String(spec.reorder)], { stdio: ['ignore', 'pipe', 'pipe'] })
      this.delayers.set(h.ns, child)
      let err = ''
      child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
      const bound = await Promise.race([
        once(child.stdout as NodeJS.ReadableStream, 'data').then(() => true),
        once(child, 'exit').then(() => false)
      ])
      if (!bound) throw new Error(`the delayer in ${h.name} did not start: ${err}`)
      // --queue-bypass: should the delayer die, packets pass rather than stop
      await this.iptables(h, '-A', 'CHAOS-OUT', '-d', `${this.subnet}.0/24`, '-j', 'NFQUEUE', '--queue-num', DAEMON_QUEUE, '--queue-bypass')
    }
  }

  /** Removes every fault: rules first, then the delayers, which let go of what they hold. */
  async heal (): Promise<void> {
    for (const h of this.hosts) {
      for (const chain of ['CHAOS-IN', 'CHAOS-OUT']) await this.iptables(h, '-F', chain)
    }
    await Promise.all([...this.delayers.values()].map(async child => {
      if (child.exitCode != null) return
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }))
    this.delayers.clear()
  }

  /** Kills what still runs in the run's namespaces and deletes them, which takes their veths and the bridge along. */
  destroy (): void {
    if (!this.made) return
    this.made = false
    for (const child of this.delayers.values()) {
      try { child.kill('SIGKILL') } catch {}
    }
    this.delayers.clear()
    for (const h of this.hosts) dropNamespaceSync(h.ns)
    dropNamespaceSync(this.hub)
    try { execFileSync('ip', ['link', 'del', `${this.id}h`], { stdio: 'ignore' }) } catch {}
  }
}
