/**
 * Document 001's estimatedTime, from what workers measured: each completed
 * job records its token count and generation time (its `metrics`), so the
 * job table keeps the throughput of every worker and model, across restarts
 * and on every node alike. Nothing is assumed before a first measurement.
 */
import type { JobRecord } from '@node-daemon/cluster'
import type { TaskEstimate } from './interface.ts'

/** The latest completed jobs of a worker and model that the rate is measured over. */
export const THROUGHPUT_SAMPLES = 20

/**
 * The estimate of a task of `modelCID` on `worker`, from `jobs` (newest
 * first: the worker's completed jobs): the generation rate over the latest
 * THROUGHPUT_SAMPLES of them that measured one, and the time their mean
 * answer length takes at that rate, at most `maxTokens` tokens.
 */
export function estimateTask (jobs: JobRecord[], worker: string, modelCID: string, maxTokens?: number): TaskEstimate {
  const measured = jobs
    .filter(j => j.status === 'completed' && j.worker === worker && j.modelCID === modelCID && (j.metrics?.evalTokens ?? 0) > 0 && (j.metrics?.evalNs ?? 0) > 0)
    .slice(0, THROUGHPUT_SAMPLES)
  if (measured.length === 0) return { worker, tasks: 0, tokensPerSecond: null, tokens: null, seconds: null }
  const tokens = measured.reduce((n, j) => n + (j.metrics?.evalTokens ?? 0), 0)
  const seconds = measured.reduce((n, j) => n + (j.metrics?.evalNs ?? 0), 0) / 1e9
  const tokensPerSecond = tokens / seconds
  const expected = Math.min(tokens / measured.length, maxTokens != null && maxTokens > 0 ? maxTokens : Infinity)
  return { worker, tasks: measured.length, tokensPerSecond, tokens: expected, seconds: expected / tokensPerSecond }
}
