/**
 * What a member the cluster does not trust may propose. Trusted members
 * (IPFS Cluster's trusted peers) may become voters and propose anything; the
 * others are learners that store and serve content and run the cluster's
 * work. They may propose their own node records, pins they add, the
 * records of jobs and training runs, new versions of stored documents
 * (which never replace a version) and new heads of search collections; never a change to the model registry,
 * to another node, to membership or to credentials, nor a pin's removal, rebalance
 * or migration. An op not listed here, one added later too, needs trust.
 */
import { decodeCommand, decodeJoinContext } from './commands.ts'
import type { Command, Op } from './commands.ts'
import type { Proposed } from '@node-daemon/raft-node'

/** Workload anyone in the cluster may propose. */
const WORK: ReadonlySet<Op> = new Set<Op>([
  'pin.add', 'document.put',
  // Indexing is work: any node that embeds a collection's documents moves its head.
  'collection.head',
  'job.submit', 'job.start', 'job.complete', 'job.fail', 'job.cancel', 'job.remove',
  'training.submit', 'training.progress', 'training.control', 'training.finish', 'training.handover', 'training.saved', 'training.join', 'training.leave'
])

/** Whether a member that is not trusted may propose `c`, under its own name. */
export function untrustedMay (from: string, c: Command): boolean {
  if (c.by !== from) return false
  if (c.op === 'batch') return c.commands.every(inner => inner.op !== 'batch' && untrustedMay(from, inner))
  if (c.op === 'node.report' || c.op === 'node.allocation') return c.id === from
  return WORK.has(c.op)
}

/**
 * The same for what arrives in a Raft proposal: a command, or a membership
 * change, of which an untrusted member may propose one only: recording
 * itself as the learner it is, with no token in the context.
 */
export function untrustedMayPropose (from: string, p: Proposed): boolean {
  try {
    if (p.type === 'normal') return untrustedMay(from, decodeCommand(p.command))
    const join = decodeJoinContext(p.context)
    const [change, ...more] = p.confChange.changes
    return more.length === 0 && change?.type === 'add-learner-node' && change.nodeId === from && join?.by === from && join.token == null
  } catch {
    return false
  }
}
