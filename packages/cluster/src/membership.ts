/**
 * The leader's duties toward membership, run once a heartbeat: mark nodes
 * offline or online from what it heard, keep the voter count at its target
 * by promoting caught-up trusted learners, and replace a voter that has been
 * silent too long. A learner the cluster does not trust is never promoted. One change at a time: a new one waits for the last to apply.
 * Every decision is proposed through Raft, never applied directly.
 */
import type { NodeRecord } from './types.ts'
import type { Logger } from '@libp2p/interface'
import type { ConfChangeSingle, Status } from '@node-daemon/raft'

export interface MembershipView {
  self: string
  now: number
  /** When this node became leader: silence is judged from then at the earliest. */
  leaderSince: number
  status: Status
  nodes: ReadonlyMap<string, NodeRecord>
  /** When a heartbeat of the node last arrived, if ever. */
  lastHeard: (id: string) => number | undefined
  /** Whether the node is a trusted peer, which alone may vote. */
  trusted: (id: string) => boolean
  proposeConfChange: (changes: ConfChangeSingle[]) => Promise<void>
  setOnline: (id: string, online: boolean) => Promise<void>
  log: Logger
}

export interface MembershipSettings {
  voters: number
  nodeTimeoutMs: number
  voterTimeoutMs: number
}

/** A learner this far behind the leader's log is not promoted yet. */
const CAUGHT_UP_ENTRIES = 100

export class MembershipManager {
  private readonly settings: MembershipSettings
  /** A change was proposed and has not applied yet. */
  private changing = false

  constructor (settings: MembershipSettings) {
    this.settings = settings
  }

  async run (v: MembershipView): Promise<void> {
    const settings = this.settings
    const silence = (id: string): number => id === v.self ? 0 : v.now - Math.max(v.lastHeard(id) ?? 0, v.leaderSince)

    for (const node of v.nodes.values()) {
      const quiet = silence(node.id)
      if (node.online && quiet > settings.nodeTimeoutMs) {
        v.log('%s unheard for %d ms: marking it offline', node.id, quiet)
        await v.setOnline(node.id, false)
      } else if (!node.online && quiet < settings.nodeTimeoutMs) {
        await v.setOnline(node.id, true)
      }
    }

    const cs = v.status.config
    // A joint configuration, or a change still on its way, is left to finish first.
    if (this.changing || cs.votersOutgoing.length > 0) return
    const progress = v.status.progress ?? {}
    const lastIndex = Math.max(0, ...Object.values(progress).map(p => p.match))
    const healthy = cs.learners
      .filter(id => v.trusted(id) && v.nodes.get(id)?.online === true && silence(id) < settings.nodeTimeoutMs)
      .filter(id => (progress[id]?.match ?? 0) + CAUGHT_UP_ENTRIES >= lastIndex)
      .sort()
    if (healthy.length === 0) return
    const dead = cs.voters.filter(id => silence(id) > settings.voterTimeoutMs).sort()
    let changes: ConfChangeSingle[] | undefined
    if (cs.voters.length < settings.voters) {
      changes = [{ type: 'add-node', nodeId: healthy[0] }]
    } else if (dead.length > 0) {
      // Promote and demote in one joint change, so the voter count never dips.
      changes = [{ type: 'add-node', nodeId: healthy[0] }, { type: 'add-learner-node', nodeId: dead[0] }]
    }
    if (changes == null) return
    v.log('membership change: %o', changes)
    this.changing = true
    try {
      await v.proposeConfChange(changes)
    } finally {
      this.changing = false
    }
  }
}
