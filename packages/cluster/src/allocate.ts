/**
 * Where a pin's replicas go. Deterministic: it reads only the replicated
 * state, so every node computes the same allocations while applying the log.
 * Balanced as IPFS Cluster's default allocator is: by free space first (in
 * coarse buckets counted down from the most any candidate has, so that nodes
 * sharing a disk count as equal), then by the length of the node's pin
 * queue, then by id.
 */
import { InsufficientPeersError } from './errors.ts'
import type { NodeRecord } from './types.ts'

/** Free space differing by less than this does not decide between nodes. */
export const FREE_SPACE_BUCKET = 1 << 30

/** What the allocator knows of a node beyond its record. */
export interface Candidate {
  node: NodeRecord
  /** Bytes of pins allocated to it since it last reported its free space. */
  queuedBytes: number
  /** Its pin queue: pins not yet pinned at its last report, plus those allocated since. */
  queue: number
}

/** Free bytes the node may still fill, as the user's storage allowance permits. */
export function freeSpace (c: Candidate): number {
  const disk = c.node.resources?.disk
  if (disk == null) return 0
  const budget = disk.total * c.node.allocation.storage / 100
  const used = disk.total - disk.free
  return Math.max(0, Math.min(disk.free, budget - used) - c.queuedBytes)
}

export function eligible (node: NodeRecord): boolean {
  return node.online && !node.drained && node.registered
}

/**
 * Best first. Buckets are counted from the most free space, not from zero:
 * two nodes whose free space differs by a few MB but straddles a multiple
 * of the bucket would otherwise fall in different buckets, and one of them
 * take every pin.
 */
export function rank (candidates: Candidate[]): Candidate[] {
  const free = new Map(candidates.map(c => [c, freeSpace(c)]))
  const most = Math.max(0, ...free.values())
  const bucket = (c: Candidate): number => Math.floor((most - (free.get(c) ?? 0)) / FREE_SPACE_BUCKET)
  return [...candidates].sort((a, b) =>
    bucket(a) - bucket(b) ||
    a.queue - b.queue ||
    (a.node.id < b.node.id ? -1 : a.node.id > b.node.id ? 1 : 0))
}

export interface AllocationRequest {
  rmin: number
  rmax: number
  size: number
  /** Current allocations, kept where still eligible so that replicas do not move needlessly. */
  current: string[]
}

/**
 * Picks the nodes for a pin among `candidates` (eligible nodes). Keeps the
 * current eligible allocations and adds the best others up to `rmax` (-1:
 * all). Throws InsufficientPeersError when fewer than `rmin` are possible.
 */
export function allocate (request: AllocationRequest, candidates: Candidate[]): string[] {
  const wanted = request.rmax === -1 ? candidates.length : request.rmax
  const needed = request.rmin === -1 ? Math.max(1, candidates.length) : request.rmin
  const byId = new Map(candidates.map(c => [c.node.id, c]))
  const chosen = request.current.filter(id => byId.has(id)).slice(0, wanted)
  for (const c of rank(candidates)) {
    if (chosen.length >= wanted) break
    if (!chosen.includes(c.node.id)) chosen.push(c.node.id)
  }
  if (chosen.length < needed) {
    throw new InsufficientPeersError(`not enough peers to allocate: needed at least ${needed}, wanted at most ${wanted}, ${candidates.length} available`)
  }
  return chosen
}
