/**
 * Load generators of the Raft bench, over any `commit` that resolves once
 * one write committed: the daemon's run inside the member process that
 * takes the proposals, as the daemon's own services propose; etcd's in the
 * bench's process, as etcd's clients (bench/lib/raft-etcd.ts).
 */
import { NotLeaderError, ProposalLostError, ProposalTimeoutError } from '@node-daemon/raft-node'
import type { RaftNode } from '@node-daemon/raft-node'

export function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

/** Commits and latencies (ms) of one load run. */
export interface LoadResult {
  count: number
  /** Commits per second over the run, the wait for the last proposals included. */
  perSecond: number
  p50: number
  p99: number
}

function summarise (latencies: number[], t0: number): LoadResult {
  latencies.sort((a, b) => a - b)
  return {
    count: latencies.length,
    perSecond: latencies.length / ((performance.now() - t0) / 1000),
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99)
  }
}

/** Resolves once one write committed. */
export type Commit = () => Promise<unknown>

/** `concurrency` writers, each writing once its last write committed, for `seconds`. */
export async function closedLoop (commit: Commit, concurrency: number, seconds: number): Promise<LoadResult> {
  const latencies: number[] = []
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const start = performance.now()
      await commit()
      latencies.push(performance.now() - start)
    }
  }))
  return summarise(latencies, t0)
}

/** Writes issued on a fixed schedule, whether or not earlier ones committed; latency counts from the scheduled time. */
export async function openLoop (commit: Commit, perSecond: number, seconds: number): Promise<LoadResult> {
  const latencies: number[] = []
  const total = Math.round(perSecond * seconds)
  const t0 = performance.now()
  const inflight: Array<Promise<void>> = []
  for (let issued = 0; issued < total;) {
    const due = Math.min(total, Math.floor((performance.now() - t0) * perSecond / 1000) + 1)
    for (; issued < due; issued++) {
      const scheduled = t0 + issued * 1000 / perSecond
      inflight.push(commit().then(() => { latencies.push(performance.now() - scheduled) }))
    }
    await new Promise(resolve => setTimeout(resolve, 1))
  }
  await Promise.all(inflight)
  return summarise(latencies, t0)
}

/** What a client retries on during a failover: no leader yet, its entry overwritten, or no answer in time. */
function retriable (err: any): boolean {
  return err instanceof NotLeaderError || err instanceof ProposalLostError || err instanceof ProposalTimeoutError || err?.name === 'TimeoutError'
}

/**
 * Proposes `command` until one proposal commits, giving each up after
 * `retryMs` (the command is idempotent here, so a late duplicate is harmless).
 */
export async function proposeUntilCommitted (node: RaftNode, command: Uint8Array, retryMs: number, deadlineMs: number): Promise<void> {
  const deadline = performance.now() + deadlineMs
  while (performance.now() < deadline) {
    try {
      await node.propose(command, { signal: AbortSignal.timeout(retryMs) })
      return
    } catch (err: any) {
      if (!retriable(err)) throw err
      // Rejected at once when no leader is known: do not spin.
      await new Promise(resolve => setTimeout(resolve, 5))
    }
  }
  throw new Error(`no proposal committed within ${deadlineMs} ms`)
}
