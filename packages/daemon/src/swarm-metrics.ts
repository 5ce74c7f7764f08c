/**
 * Document 003's Prometheus metrics, under its swarm_* names: the cluster's
 * own figures, read from this node's replica of the cluster state when
 * Prometheus scrapes, and the round trips to the connected peers, measured
 * by pinging them then. A figure the node has no measure of has no sample.
 */
import { Counter, Gauge, Histogram } from 'prom-client'
import type { Cluster } from '@node-daemon/cluster'
import type { Registry } from 'prom-client'

export interface SwarmMetricsComponents {
  cluster: Pick<Cluster, 'nodes' | 'jobs' | 'addEventListener'>
  /** Round trips to the connected peers, in milliseconds; null for a peer that did not answer. */
  pingPeers: (options: { timeoutMs: number }) => Promise<Array<{ latencyMs: number | null }>>
}

/** How long a scrape waits for a peer's ping. */
const PING_TIMEOUT_MS = 2000

export function registerSwarmMetrics (registry: Registry, { cluster, pingPeers }: SwarmMetricsComponents): void {
  const local = { local: true }
  registry.registerMetric(new Gauge({
    name: 'swarm_nodes_total',
    help: 'Nodes in the cluster',
    registers: [],
    async collect () { this.set((await cluster.nodes(local)).length) }
  }))
  registry.registerMetric(new Gauge({
    name: 'swarm_nodes_active',
    help: 'Nodes online and not drained',
    registers: [],
    async collect () { this.set((await cluster.nodes(local)).filter(n => n.online && !n.drained).length) }
  }))
  registry.registerMetric(new Gauge({
    name: 'swarm_training_loss',
    help: 'Loss at the latest step of each training session not finished',
    labelNames: ['session'],
    registers: [],
    async collect () {
      this.reset()
      for (const job of await cluster.jobs({ status: ['running', 'paused'], limit: Infinity }, local)) {
        const loss = job.training?.progress?.loss
        if (job.kind === 'training' && loss != null) this.set({ session: `training_${job.jobId}` }, loss)
      }
    }
  }))
  registry.registerMetric(new Histogram({
    name: 'swarm_network_latency',
    help: 'Round-trip time to the connected peers in seconds, by a ping at each scrape',
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
    registers: [],
    async collect () {
      for (const { latencyMs } of await pingPeers({ timeoutMs: PING_TIMEOUT_MS })) if (latencyMs != null) this.observe(latencyMs / 1000)
    }
  }))
  // A committed model version is a vote the cluster accepted, as /api/v1/ws's consensus_vote says.
  const votes = new Counter({ name: 'swarm_consensus_votes', help: 'Model versions the cluster committed since this node started', registers: [registry] })
  cluster.addEventListener('ModelUpdated', () => { votes.inc() })
}
