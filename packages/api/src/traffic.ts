/**
 * The swarm's traffic from libp2p's byte counters, and rates over the time
 * since a reader's previous reading: Kubo's stats/bw and document 002's
 * network_usage.
 */
import { trafficJson } from './cluster-views.ts'
import type { Node } from '@node-daemon/daemon'

export interface Sample { at: number, in: number, out: number }

/** Bytes in and out so far, over every connection or one protocol. */
export async function transferred (node: Node, proto?: string): Promise<Sample> {
  const values = (await node.metrics.getSingleMetric('libp2p_data_transfer_bytes_total')?.get())?.values ?? []
  const traffic = trafficJson(values)
  const counts = proto == null ? traffic : traffic.protocols[proto] ?? { sent: 0, received: 0 }
  return { at: Date.now(), in: counts.received, out: counts.sent }
}

/** Bytes per second in and out between two samples. */
export function rates (now: Sample, before: Sample): { in: number, out: number } {
  const seconds = Math.max((now.at - before.at) / 1000, 0.001)
  return { in: (now.in - before.in) / seconds, out: (now.out - before.out) / seconds }
}

/** Readings that each give the traffic since the previous one of the same protocol, or since the node started. */
export class TrafficMeter {
  readonly #node: Node
  readonly #last = new Map<string, Sample>()

  constructor (node: Node) {
    this.#node = node
  }

  async read (proto?: string): Promise<{ now: Sample, before: Sample }> {
    const now = await transferred(this.#node, proto)
    const before = this.#last.get(proto ?? '') ?? { at: this.#node.startedAt.getTime(), in: 0, out: 0 }
    // Only protocols that moved bytes are remembered, so that made-up names cannot grow the map.
    if (proto == null || now.in + now.out > 0) this.#last.set(proto ?? '', now)
    return { now, before }
  }
}
