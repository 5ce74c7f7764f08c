/**
 * The simulated network between driver processes, in place of the libp2p
 * transport: every message goes through the wire codec, then may be lost,
 * delayed (so overtaken), duplicated, or cut by a partition. The sender hears
 * what the real transport would tell it: a peer it cannot reach, the fate of
 * a snapshot, and the closing of a connection when a peer's process dies or a
 * partition outlasts a keepalive.
 *
 * The real transport never sends a message twice (one stream per peer, no
 * resend), so a duplicate here stands for what Raft itself may repeat, and
 * MsgProp is never duplicated: Raft does not deduplicate proposals, and a
 * proposal delivered twice is committed twice. `duplicateProposals` lets it
 * through, to show that the simulation catches the double application.
 */
import { TypedEventEmitter } from '@libp2p/interface'
import { decodeMessage, encodeMessage } from '../../src/codec.ts'
import type { RaftTransport, RaftTransportEvents } from '../../src/transport.ts'
import type { Rng } from '../../../raft/test/sim/rng.ts'
import type { Process, Scheduler } from './scheduler.ts'
import type { Message } from '@node-daemon/raft'

export interface NetworkFaults {
  /** Probability that a message is lost. */
  loss: number
  /** Probability that a message is delivered twice. */
  duplicate: number
  /** Milliseconds a message takes, at most. */
  maxDelay: number
  duplicateProposals: boolean
}

export interface NetworkStats {
  sent: number
  delivered: number
  lost: number
  duplicated: number
  /** MsgSnap sent: followers caught up from a snapshot. */
  snapshots: number
}

export class SimTransport extends TypedEventEmitter<RaftTransportEvents> implements RaftTransport {
  readonly id: string
  readonly proc: Process
  private readonly net: SimNetwork

  constructor (net: SimNetwork, id: string, proc: Process) {
    super()
    this.net = net
    this.id = id
    this.proc = proc
  }

  send (messages: Message[]): void {
    for (const m of messages) this.net.send(this, m)
  }

  /** Connections follow the messages; there is nothing to keep per peer. */
  setPeers (): void {}
}

export class SimNetwork {
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, snapshots: 0 }
  /** Cut directed links, as "from>to". */
  readonly blocked = new Set<string>()
  faults: NetworkFaults
  /** Sees every message a live process sends, before the network does anything with it. */
  inspect?: (m: Message) => void
  private readonly endpoints = new Map<string, SimTransport>()
  private readonly sched: Scheduler
  private readonly rng: Rng
  private readonly world: Process
  private readonly trace: ((line: () => string) => void) | undefined

  constructor (sched: Scheduler, rng: Rng, faults: NetworkFaults, world: Process, trace?: (line: () => string) => void) {
    this.sched = sched
    this.rng = rng
    this.faults = faults
    this.world = world
    this.trace = trace
  }

  /** The transport of `id`'s new process. */
  attach (id: string, proc: Process): SimTransport {
    const t = new SimTransport(this, id, proc)
    this.endpoints.set(id, t)
    return t
  }

  /** `id`'s process died: the others see its connections close a moment later. */
  died (id: string): void {
    for (const other of this.endpoints.values()) {
      if (other.id === id || !other.proc.alive) continue
      this.sched.after(this.rng.next() * 5, () => { other.safeDispatchEvent('disconnect', { detail: id }) }, other.proc)
    }
  }

  /** A partition cut the link "a>b": if it lasts past a keepalive, the connection closes on both sides. */
  cut (link: string): void {
    const [a, b] = link.split('>')
    this.blocked.add(link)
    if (!this.rng.chance(0.5)) return
    this.sched.after(100 + this.rng.next() * 900, () => {
      if (!this.blocked.has(link)) return
      for (const [side, peer] of [[a, b], [b, a]]) {
        const t = this.endpoints.get(side)
        if (t?.proc.alive === true) t.safeDispatchEvent('disconnect', { detail: peer })
      }
    }, this.world)
  }

  send (from: SimTransport, m: Message): void {
    if (!from.proc.alive) return
    this.inspect?.(m)
    this.stats.sent++
    const bytes = encodeMessage(m)
    const to = this.endpoints.get(m.to)
    const snapshot = m.type === 'MsgSnap'
    if (snapshot) this.stats.snapshots++
    if (to === undefined || !to.proc.alive || this.blocked.has(`${m.from}>${m.to}`)) {
      this.stats.lost++
      this.trace?.(() => `lost ${m.type} ${m.from}->${m.to} (unreachable)`)
      // a failed dial is reported; a partition the sender may not notice
      if (to?.proc.alive !== true || this.rng.chance(0.3)) this.report(from, 'unreachable', m.to)
      if (snapshot) this.report(from, 'snapshot-status', { to: m.to, failure: true })
      return
    }
    // written to the stream: the real transport reports a snapshot as sent now
    if (snapshot) this.report(from, 'snapshot-status', { to: m.to, failure: false })
    if (this.rng.chance(this.faults.loss)) {
      this.stats.lost++
      this.trace?.(() => `lost ${m.type} ${m.from}->${m.to}`)
      return
    }
    const copies = this.rng.chance(this.faults.duplicate) && (m.type !== 'MsgProp' || this.faults.duplicateProposals) ? 2 : 1
    if (copies === 2) this.stats.duplicated++
    for (let i = 0; i < copies; i++) {
      this.sched.after(0.05 + this.rng.next() * this.faults.maxDelay, () => {
        // a connection does not outlive the receiving process, and a partition catches what is in flight
        if (!to.proc.alive || this.endpoints.get(to.id) !== to || this.blocked.has(`${m.from}>${m.to}`)) {
          this.stats.lost++
          return
        }
        this.stats.delivered++
        to.safeDispatchEvent('message', { detail: decodeMessage(bytes) })
      }, this.world)
    }
  }

  /** The real transport tells some things at once, inside send(), and others after a dial fails: both, at random. */
  private report<K extends 'unreachable' | 'snapshot-status'> (to: SimTransport, type: K, detail: RaftTransportEvents[K]['detail']): void {
    const fire = (): void => { to.safeDispatchEvent(type, { detail } as any) }
    if (this.rng.chance(0.5)) fire()
    else this.sched.after(this.rng.next() * 5, fire, to.proc)
  }
}
