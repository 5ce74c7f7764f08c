import { ConfChangeError } from './errors.ts'
import { cloneTrackerConfig } from './tracker.ts'
import type { Progress, ProgressTracker, TrackerConfig } from './tracker.ts'
import type { ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfState, NodeId } from './types.ts'

/**
 * Membership changes as in etcd's confchange package: a change is computed on
 * copies of the config and progress map, checked, and only then swapped in, so
 * a refused change leaves the tracker untouched.
 */
export interface ConfChangeResult {
  config: TrackerConfig
  progress: Map<NodeId, Progress>
}

/** An empty change (no changes, auto transition) leaves a joint config, whatever its context: as in etcd, where a driver carries request ids there. */
export function isLeaveJoint (cc: ConfChange): boolean {
  return cc.changes.length === 0 && (cc.transition ?? 'auto') === 'auto'
}

/** Whether the change goes through a joint config, and whether that config is left automatically. */
export function entersJoint (cc: ConfChange): { joint: boolean, autoLeave: boolean } {
  const transition = cc.transition ?? 'auto'
  if (transition !== 'auto' || cc.changes.length > 1) return { joint: true, autoLeave: transition !== 'explicit' }
  return { joint: false, autoLeave: false }
}

export class Changer {
  private readonly tracker: ProgressTracker
  private readonly lastIndex: number

  constructor (tracker: ProgressTracker, lastIndex: number) {
    this.tracker = tracker
    this.lastIndex = lastIndex
  }

  /** Applies any change: leaves, enters a joint config, or makes a simple one. */
  change (cc: ConfChange): ConfChangeResult {
    // a node that started without the genesis config would build a different one from the log
    if (this.tracker.config.voters[0].size === 0 && this.tracker.config.voters[1].size === 0) {
      throw new ConfChangeError('no configuration to change: every node, joining ones too, must start from the cluster\'s genesis ConfState (see MemoryStorage)')
    }
    if (isLeaveJoint(cc)) return this.leaveJoint()
    const { joint, autoLeave } = entersJoint(cc)
    return joint ? this.enterJoint(autoLeave, cc.changes) : this.simple(cc.changes)
  }

  enterJoint (autoLeave: boolean, ccs: ConfChangeSingle[]): ConfChangeResult {
    const r = this.copy()
    if (r.config.voters[1].size > 0) throw new ConfChangeError('config is already joint')
    if (r.config.voters[0].size === 0) throw new ConfChangeError("can't make a zero-voter config joint")
    r.config.voters[1] = new Set(r.config.voters[0])
    this.apply(r, ccs)
    r.config.autoLeave = autoLeave
    return check(r)
  }

  leaveJoint (): ConfChangeResult {
    const r = this.copy()
    if (r.config.voters[1].size === 0) throw new ConfChangeError("can't leave a non-joint config")
    for (const id of r.config.learnersNext) {
      r.config.learners.add(id)
      const pr = r.progress.get(id)
      if (pr != null) pr.isLearner = true
    }
    r.config.learnersNext.clear()
    for (const id of r.config.voters[1]) {
      if (!r.config.voters[0].has(id) && !r.config.learners.has(id)) r.progress.delete(id)
    }
    r.config.voters[1] = new Set()
    r.config.autoLeave = false
    return check(r)
  }

  /** At most one voter added or removed, without a joint config. */
  simple (ccs: ConfChangeSingle[]): ConfChangeResult {
    const r = this.copy()
    if (r.config.voters[1].size > 0) throw new ConfChangeError("can't apply simple config change in joint config")
    const before = new Set(r.config.voters[0])
    this.apply(r, ccs)
    const after = r.config.voters[0]
    let diff = 0
    for (const id of before) if (!after.has(id)) diff++
    for (const id of after) if (!before.has(id)) diff++
    if (diff > 1) throw new ConfChangeError('more than one voter changed without entering joint config')
    return check(r)
  }

  private copy (): ConfChangeResult {
    const progress = new Map<NodeId, Progress>()
    for (const [id, pr] of this.tracker.progress) progress.set(id, pr.clone())
    return { config: cloneTrackerConfig(this.tracker.config), progress }
  }

  private apply (r: ConfChangeResult, ccs: ConfChangeSingle[]): void {
    for (const cc of ccs) {
      if (cc.nodeId === '') continue
      if (cc.type === 'add-node') this.makeVoter(r, cc.nodeId)
      else if (cc.type === 'add-learner-node') this.makeLearner(r, cc.nodeId)
      else this.remove(r, cc.nodeId)
    }
    if (r.config.voters[0].size === 0) throw new ConfChangeError('removed all voters')
  }

  private makeVoter (r: ConfChangeResult, id: NodeId): void {
    const pr = r.progress.get(id)
    if (pr == null) {
      this.initProgress(r, id, false)
      return
    }
    pr.isLearner = false
    r.config.learners.delete(id)
    r.config.learnersNext.delete(id)
    r.config.voters[0].add(id)
  }

  /**
   * A voter of the outgoing config cannot become a learner until the joint
   * config is left, so it waits in learnersNext.
   */
  private makeLearner (r: ConfChangeResult, id: NodeId): void {
    const pr = r.progress.get(id)
    if (pr == null) {
      this.initProgress(r, id, true)
      return
    }
    if (pr.isLearner) return
    this.remove(r, id)
    r.progress.set(id, pr)
    if (r.config.voters[1].has(id)) {
      r.config.learnersNext.add(id)
    } else {
      pr.isLearner = true
      r.config.learners.add(id)
    }
  }

  private remove (r: ConfChangeResult, id: NodeId): void {
    if (!r.progress.has(id)) return
    r.config.voters[0].delete(id)
    r.config.learners.delete(id)
    r.config.learnersNext.delete(id)
    // still a voter of the outgoing config: keep its progress until the joint config is left
    if (!r.config.voters[1].has(id)) r.progress.delete(id)
  }

  private initProgress (r: ConfChangeResult, id: NodeId, isLearner: boolean): void {
    if (isLearner) r.config.learners.add(id)
    else r.config.voters[0].add(id)
    // probe from the end of the log: a new node usually needs a snapshot, found on the first rejection
    const pr = this.tracker.newProgress(Math.max(this.lastIndex, 1), isLearner)
    // a new node counts as active, or check-quorum could depose the leader at once
    pr.recentActive = true
    r.progress.set(id, pr)
  }
}

function check (r: ConfChangeResult): ConfChangeResult {
  const { config, progress } = r
  for (const ids of [config.voters[0], config.voters[1], config.learners, config.learnersNext]) {
    for (const id of ids) {
      if (!progress.has(id)) throw new ConfChangeError(`no progress for ${id}`)
    }
  }
  for (const id of config.learnersNext) {
    if (!config.voters[1].has(id)) throw new ConfChangeError(`${id} is in learnersNext, but not in the outgoing voters`)
    if (progress.get(id)?.isLearner === true) throw new ConfChangeError(`${id} is in learnersNext, but is already marked as learner`)
  }
  for (const id of config.learners) {
    if (config.voters[0].has(id) || config.voters[1].has(id)) throw new ConfChangeError(`${id} is in learners and voters`)
    if (progress.get(id)?.isLearner !== true) throw new ConfChangeError(`${id} is in learners, but is not marked as learner`)
  }
  if (config.voters[1].size === 0 && (config.learnersNext.size > 0 || config.autoLeave)) {
    throw new ConfChangeError('a non-joint config has learnersNext or autoLeave')
  }
  return r
}

/** The tracker state that a ConfState describes (at restart, or from a snapshot). */
export function restoreConfig (tracker: ProgressTracker, cs: ConfState, lastIndex: number): ConfChangeResult {
  const config: TrackerConfig = {
    voters: [new Set(cs.voters), new Set(cs.votersOutgoing)],
    learners: new Set(cs.learners),
    learnersNext: new Set(cs.learnersNext),
    autoLeave: cs.autoLeave
  }
  const progress = new Map<NodeId, Progress>()
  for (const id of [...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]) {
    if (progress.has(id)) continue
    const pr = tracker.newProgress(Math.max(lastIndex, 1), config.learners.has(id))
    pr.recentActive = true
    progress.set(id, pr)
  }
  return check({ config, progress })
}

const TYPES: readonly ConfChangeType[] = ['add-node', 'remove-node', 'add-learner-node']
const TRANSITIONS: readonly ConfChangeTransition[] = ['auto', 'implicit', 'explicit']

/**
 * The payload of a conf-change entry. JSON keeps the library free of
 * dependencies; conf changes are rare and tiny.
 */
export function encodeConfChange (cc: ConfChange): Uint8Array {
  const ctx = cc.context == null || cc.context.byteLength === 0 ? undefined : Array.from(cc.context)
  return new TextEncoder().encode(JSON.stringify({
    changes: cc.changes.map(c => ({ type: c.type, nodeId: c.nodeId })),
    transition: cc.transition ?? 'auto',
    context: ctx
  }))
}

export function decodeConfChange (data: Uint8Array): ConfChange {
  let raw: any
  try {
    raw = JSON.parse(new TextDecoder().decode(data))
  } catch {
    throw new ConfChangeError('conf change entry is not valid JSON')
  }
  if (raw == null || !Array.isArray(raw.changes) || !TRANSITIONS.includes(raw.transition)) {
    throw new ConfChangeError('malformed conf change entry')
  }
  const changes: ConfChangeSingle[] = raw.changes.map((c: any) => {
    if (!TYPES.includes(c?.type) || typeof c.nodeId !== 'string') throw new ConfChangeError('malformed change in conf change entry')
    return { type: c.type, nodeId: c.nodeId }
  })
  const cc: ConfChange = { changes, transition: raw.transition }
  if (Array.isArray(raw.context)) cc.context = Uint8Array.from(raw.context)
  return cc
}
