/**
 * What the nemesis does alike in both simulations (the pure library's and
 * raft-node's driver): network faults, partitions, and the operator's
 * membership changes.
 */
import type { ConfChange, ConfChangeSingle, ConfState } from '../../src/index.ts'
import type { Rng } from './rng.ts'

/** The network part of a scenario's description; `delay` says how long a message takes in the simulation's own unit. */
export function describeNetworkFaults (s: { loss: number, duplicate: number, partitions: boolean, asymmetric: boolean }, delay: string): string[] {
  const parts: string[] = []
  if (s.loss > 0) parts.push(`loss ${s.loss}`)
  if (s.duplicate > 0) parts.push(`dup ${s.duplicate}`)
  parts.push(delay)
  if (s.partitions) parts.push('partitions')
  if (s.asymmetric) parts.push('asymmetric partitions')
  return parts
}

export interface Partition {
  side: Set<string>
  /** The directed links cut, as "from>to". */
  links: string[]
  asymmetric: boolean
  /** Asymmetric only: the side cannot send (true) or cannot receive (false). */
  outbound: boolean
}

/**
 * A side of at most half the nodes, the leader in it half the time
 * (isolating the leader is the interesting case), cut from the rest both ways
 * or, when asymmetric, one way only.
 */
export function drawPartition (f: Rng, ids: string[], leader: string | undefined, kinds: { partitions: boolean, asymmetric: boolean }): Partition {
  const side = new Set<string>(leader !== undefined && f.chance(0.5) ? [leader] : [])
  const size = f.int(1, Math.max(1, Math.floor(ids.length / 2)))
  for (let i = 0; i < 100 && side.size < size; i++) side.add(f.pick(ids))
  const asymmetric = kinds.asymmetric && (!kinds.partitions || f.chance(0.5))
  const outbound = f.chance(0.5)
  const links: string[] = []
  for (const a of side) {
    for (const b of ids) {
      if (side.has(b)) continue
      if (!asymmetric || outbound) links.push(`${a}>${b}`)
      if (!asymmetric || !outbound) links.push(`${b}>${a}`)
    }
  }
  return { side, links, asymmetric, outbound }
}

export function describePartition (p: Partition): string {
  return `${p.asymmetric ? ` (asymmetric, ${p.outbound ? 'outbound' : 'inbound'})` : ''}: {${[...p.side].join(',')}} | rest`
}

/**
 * The next membership change on `cfg`: leave a joint configuration by hand,
 * or (with chance `joint`) enter one, promote a learner, demote or remove a
 * voter, or add a learner, never leaving fewer than three voters. `fresh`
 * brings up a new node and names it; undefined when no node may join.
 */
export function chooseConfChange (r: Rng, cfg: ConfState, joint: number, fresh: (() => string) | undefined): ConfChange | undefined {
  if (cfg.votersOutgoing.length > 0) return cfg.autoLeave ? undefined : { changes: [] }
  const removable = cfg.voters.length > 3 ? cfg.voters : []
  if (joint > 0 && r.chance(joint)) {
    const changes: ConfChangeSingle[] = []
    const incoming = cfg.learners.length > 0 ? r.pick(cfg.learners) : fresh?.()
    if (incoming !== undefined) changes.push({ type: 'add-node', nodeId: incoming })
    const outgoing = r.pick(cfg.voters.filter(id => id !== incoming))
    // demote or remove a voter; neither may leave fewer than three voters
    if (cfg.voters.length + changes.length > 3) changes.push({ type: r.chance(0.5) ? 'remove-node' : 'add-learner-node', nodeId: outgoing })
    if (changes.length === 0) return undefined
    return { changes, transition: r.chance(0.75) ? 'explicit' : 'auto' }
  }
  if (cfg.learners.length > 0 && r.chance(0.6)) return { changes: [{ type: 'add-node', nodeId: r.pick(cfg.learners) }] }
  if (removable.length > 0 && (fresh === undefined || r.chance(0.4))) {
    return { changes: [{ type: r.chance(0.7) ? 'remove-node' : 'add-learner-node', nodeId: r.pick(removable) }] }
  }
  if (fresh !== undefined) return { changes: [{ type: 'add-learner-node', nodeId: fresh() }] }
  return undefined
}
