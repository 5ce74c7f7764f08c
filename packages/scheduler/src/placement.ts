/**
 * Ranks the nodes that could run one inference job: this node first when it
 * holds the model, then the online nodes that hold it, least loaded first,
 * then this node again, which can pull the model by CID.
 */
import type { NodeView } from '@node-daemon/cluster'

export interface PlacementRequest {
  /** This node's peer id. */
  self: string
  /** Nodes whose replicas of the model are allocated or known to be present. */
  holders: ReadonlySet<string>
  /** Nodes that already failed this job, or are to be avoided. */
  exclude?: ReadonlySet<string>
  /** Bytes the model takes to load: nodes whose gossiped free memory is less come after the others. */
  needBytes?: number
  /** Nodes that have the model loaded already, which need no more memory for it. */
  loaded?: ReadonlySet<string>
  /**
   * Whether this node, when it holds no replica, comes last as the worker of
   * last resort (it pulls the model). Default true; false leaves a job that
   * no holder can run to fail.
   */
  fallback?: boolean
}

/** A node's CPU load per core, from its latest heartbeat; Infinity when unknown, so unknown nodes come last. */
export function loadOf (node: NodeView): number {
  const cpu = node.resources?.cpu
  if (cpu == null || cpu.cores <= 0) return Infinity
  return cpu.load1 / cpu.cores
}

export function rankWorkers (nodes: NodeView[], request: PlacementRequest): string[] {
  const exclude = request.exclude ?? new Set<string>()
  const usable = (n: NodeView): boolean => n.online && !n.drained && !exclude.has(n.id)
  const self = nodes.find(n => n.id === request.self)
  // A drained node takes no new jobs, not even for a model it holds; one not yet in the state (still joining) serves itself.
  const selfUsable = !exclude.has(request.self) && self?.drained !== true
  const order: string[] = []
  if (selfUsable && request.holders.has(request.self)) order.push(request.self)
  const others = nodes
    .filter(n => n.id !== request.self && usable(n) && request.holders.has(n.id) && n.connected)
    .sort((a, b) => loadOf(a) - loadOf(b) || a.pins.pending - b.pins.pending || (a.id < b.id ? -1 : 1))
  order.push(...others.map(n => n.id))
  if (selfUsable && !request.holders.has(request.self) && request.fallback !== false) order.push(request.self)
  const need = request.needBytes
  if (need == null) return order
  const byId = new Map(nodes.map(n => [n.id, n]))
  const fits = (id: string): boolean => request.loaded?.has(id) === true || (byId.get(id)?.resources?.memory.free ?? Infinity) >= need
  return [...order.filter(fits), ...order.filter(id => !fits(id))]
}
