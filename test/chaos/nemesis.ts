/**
 * The nemesis: in rounds, one fault (sometimes a network fault and a process
 * fault at once), held for a while, healed, then a quiet spell in which the
 * cluster may recover. Network faults: partitions into random halves or
 * around the leader (iptables), packet loss (iptables' statistic match),
 * delay with jitter and reordering (NFQUEUE and delay.py: this kernel has no
 * sch_netem). Process faults: kill -9 and restart of one node, the leader or
 * a majority; SIGSTOP and SIGCONT; and a restart under libfaketime with a
 * clock offset and rate, checked against the node's own HTTP Date header.
 */
import type { ChaosCluster, ChaosNode, Skew } from './cluster.ts'
import type { ChaosNet } from './net.ts'

export type FaultKind = 'partition' | 'partition-leader' | 'loss' | 'delay' | 'kill' | 'kill-leader' | 'kill-majority' | 'pause' | 'clock'
export const FAULT_KINDS: FaultKind[] = ['partition', 'partition-leader', 'loss', 'delay', 'kill', 'kill-leader', 'kill-majority', 'pause', 'clock']

const NETWORK: FaultKind[] = ['partition', 'partition-leader', 'loss', 'delay']
const PROCESS: FaultKind[] = ['kill', 'kill-leader', 'kill-majority', 'pause', 'clock']

export interface Fault {
  kind: FaultKind
  detail: string
  /** ms since the run started */
  start: number
  end?: number
}

export interface NemesisOptions {
  /** Clock faults need libfaketime. */
  clock: boolean
  /** How long a fault is held, and the quiet after it, in ms. */
  holdMs?: [number, number]
  quietMs?: [number, number]
  now: () => number
  log: (line: string) => void
}

export class Nemesis {
  readonly faults: Fault[] = []
  private readonly net: ChaosNet
  private readonly cluster: ChaosCluster
  private readonly opts: Required<NemesisOptions>

  constructor (net: ChaosNet, cluster: ChaosCluster, opts: NemesisOptions) {
    this.net = net
    this.cluster = cluster
    this.opts = { holdMs: [6000, 16_000], quietMs: [3000, 8000], ...opts }
  }

  /** Rounds of faults until `signal` aborts; the last is healed before it returns. */
  async run (signal: AbortSignal): Promise<void> {
    const processFaults = PROCESS.filter(k => k !== 'clock' || this.opts.clock)
    // faults are dealt from a shuffled deck, so that a short run still sees each kind
    let deck: FaultKind[] = []
    while (!signal.aborted) {
      if (deck.length === 0) deck = shuffle([...NETWORK, ...processFaults])
      const kinds = [deck.pop() as FaultKind]
      if (Math.random() < 0.3) kinds.push(pick(NETWORK.includes(kinds[0]) ? processFaults : NETWORK))
      const heals: Array<() => Promise<void>> = []
      try {
        for (const kind of kinds) heals.push(await this.inject(kind))
        await sleep(between(this.opts.holdMs), signal)
      } finally {
        for (const heal of heals.reverse()) await heal()
        for (const f of this.faults) f.end ??= this.opts.now()
      }
      await sleep(between(this.opts.quietMs), signal)
    }
  }

  /** Brings back every node and link: what the end of a run starts from. */
  async healAll (): Promise<void> {
    await this.net.heal()
    for (const n of this.cluster.nodes) {
      this.cluster.resume(n)
      if (!n.alive) await this.cluster.restart(n)
    }
  }

  private record (kind: FaultKind, detail: string): void {
    this.faults.push({ kind, detail, start: this.opts.now() })
    this.opts.log(`${(this.opts.now() / 1000).toFixed(1)}s nemesis: ${kind} ${detail}`)
  }

  /** Injects one fault and returns what heals it. */
  private async inject (kind: FaultKind): Promise<() => Promise<void>> {
    const nodes = this.cluster.nodes
    const hosts = this.net.hosts
    const names = (list: Array<{ name: string } | ChaosNode>): string => list.map(x => 'host' in x ? x.host.name : x.name).join(',')
    switch (kind) {
      case 'partition': {
        const shuffled = shuffle([...hosts])
        const cut = 1 + Math.floor(Math.random() * Math.floor(hosts.length / 2))
        const groups = [shuffled.slice(0, cut), shuffled.slice(cut)]
        this.record(kind, groups.map(names).join(' | '))
        await this.net.partition(groups)
        return async () => { await this.net.heal() }
      }
      case 'partition-leader': {
        const leader = await this.cluster.leader()
        if (leader == null) return await this.inject('partition')
        const rest = hosts.filter(h => h !== leader.host)
        this.record(kind, `${leader.host.name} | ${names(rest)}`)
        await this.net.partition([[leader.host], rest])
        return async () => { await this.net.heal() }
      }
      case 'loss': {
        const some = someOf(hosts)
        const p = 0.05 + Math.random() * 0.25
        this.record(kind, `${(p * 100).toFixed(0)}% into ${names(some)}`)
        await this.net.loss(some, p)
        return async () => { await this.net.heal() }
      }
      case 'delay': {
        const some = someOf(hosts)
        const percent = Math.round(Math.random() * 25)
        const spec = { delayMs: Math.round(30 + Math.random() * 270), jitterMs: Math.round(Math.random() * 100), reorder: percent / 100 }
        this.record(kind, `${spec.delayMs}±${spec.jitterMs} ms, ${percent}% reordered, from ${names(some)}`)
        await this.net.delay(some, spec)
        return async () => { await this.net.heal() }
      }
      case 'kill':
      case 'kill-leader':
      case 'kill-majority': {
        let victims: ChaosNode[]
        if (kind === 'kill') victims = [pick(nodes)]
        else if (kind === 'kill-leader') {
          const leader = await this.cluster.leader()
          victims = [leader ?? pick(nodes)]
        } else victims = shuffle([...nodes]).slice(0, Math.floor(nodes.length / 2) + 1)
        this.record(kind, names(victims))
        for (const v of victims) await this.cluster.kill(v)
        return async () => { for (const v of victims) await this.cluster.restart(v) }
      }
      case 'pause': {
        const victims = someOf(nodes).slice(0, Math.max(1, Math.floor(nodes.length / 2)))
        this.record(kind, names(victims))
        for (const v of victims) this.cluster.pause(v)
        return async () => { for (const v of victims) this.cluster.resume(v) }
      }
      case 'clock': {
        const victim = pick(nodes)
        const skew: Skew = { offsetS: Math.round((Math.random() < 0.5 ? -1 : 1) * (20 + Math.random() * 280)), rate: Math.round((0.8 + Math.random() * 0.45) * 100) / 100 }
        const started = Date.now()
        await this.cluster.restart(victim, skew)
        const seen = await this.cluster.clockOffset(victim)
        const expected = skew.offsetS * 1000 + (skew.rate - 1) * (Date.now() - started)
        // the Date header has whole seconds; the rate adds up from the process's start
        if (Math.abs(seen - expected) > 1500 + Math.abs(skew.rate - 1) * (Date.now() - started)) {
          throw new Error(`${victim.host.name} under FAKETIME "${skew.offsetS}s x${skew.rate}" reads a clock ${seen} ms off ours, not about ${expected.toFixed(0)}`)
        }
        this.record(kind, `${victim.host.name} ${skew.offsetS > 0 ? '+' : ''}${skew.offsetS} s x${skew.rate} (its Date header: ${seen > 0 ? '+' : ''}${(seen / 1000).toFixed(0)} s)`)
        return async () => { await this.cluster.restart(victim) }
      }
    }
  }
}

function pick<T> (items: T[]): T {
  return items[Math.floor(Math.random() * items.length)]
}

function shuffle<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j], items[i]]
  }
  return items
}

/** One host, or several, or all. */
function someOf<T> (items: T[]): T[] {
  return shuffle([...items]).slice(0, 1 + Math.floor(Math.random() * items.length))
}

function between ([lo, hi]: [number, number]): number {
  return lo + Math.random() * (hi - lo)
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}
