/**
 * Pure mappings from the records of the cluster and the swarm to the shapes
 * the API documents give them. Routes fetch, these shape; nothing here
 * decides anything.
 */
import { createHash } from 'node:crypto'
import { usageOf } from '@node-daemon/cluster'
import { humanSize } from './size.ts'
import type { ConsensusStatus, Decision, JobRecord, ModelRecord, NodeView, PinRecord, PinStatusReport, Resources } from '@node-daemon/cluster'
import type { PeerConnection } from '@node-daemon/swarm'
import type { ExternalWorkerView } from '@node-daemon/training'

const MIB = 1024 * 1024

export function uptimeSeconds (startedAt: Date): number {
  return Math.round((Date.now() - startedAt.getTime()) / 1000)
}

/** A fraction of 1 as a percentage with one decimal, as documents 001 and 004 show usage. */
export function percent (fraction: number): number {
  return Math.round(fraction * 1000) / 10
}

/** What a machine uses, as fractions of 1: the cluster's measure, which the API documents show. */
export { usageOf as usage } from '@node-daemon/cluster'

/** Document 001's `resources`/`usage`: percent, with `storage` for the disk. */
export function usagePercent (r: Resources): { cpu: number, memory: number, gpu: number | null, storage: number } {
  const u = usageOf(r)
  return { cpu: percent(u.cpu), memory: percent(u.memory), gpu: u.gpu == null ? null : percent(u.gpu), storage: percent(u.disk) }
}

export type NodeStatus = 'active' | 'drained' | 'offline'

export function nodeStatus (v: NodeView): NodeStatus {
  if (!v.online) return 'offline'
  return v.drained ? 'drained' : 'active'
}

/** Documents 002 and 003 give a node's address as the host:port of its HTTP API. */
function apiAddress (v: NodeView): string | null {
  return v.apiUrl == null ? null : new URL(v.apiUrl).host
}

/** Peers with at least one connection (a peer may have several). */
export function peerCount (peers: PeerConnection[]): number {
  return new Set(peers.map(p => p.peer)).size
}

/** The lowest round-trip time of each connected peer, in ms. */
export function latencies (peers: PeerConnection[]): Map<string, number> {
  const rtt = new Map<string, number>()
  for (const p of peers) {
    if (p.latencyMs == null) continue
    rtt.set(p.peer, Math.min(p.latencyMs, rtt.get(p.peer) ?? Infinity))
  }
  return rtt
}

/**
 * Ids of the registered models whose content is allocated to a node. By the
 * registry, not the pins' `modelId`: a pin names one of the models that share
 * its CID (a copy, a default) and outlives a deleted one that shared it.
 * Datasets share the registry, but are no models a node can serve.
 */
export function modelsOn (models: ModelRecord[], pins: PinRecord[], nodeId: string): string[] {
  const held = new Set(pins.filter(p => p.allocations.includes(nodeId)).map(p => p.cid))
  return models.filter(m => m.kind === 'model' && held.has(m.modelCID)).map(m => m.modelId)
}

/** A cluster member as IPFS Cluster lists its peers (document 000's `/cluster/peers`). */
export function peerJson (v: NodeView): object {
  return {
    id: v.id,
    addresses: v.addrs.map(a => `${a}/p2p/${v.id}`),
    api_url: v.apiUrl ?? null,
    role: v.role,
    online: v.online,
    connected: v.connected,
    drained: v.drained,
    is_leader: v.isLeader,
    is_self: v.isSelf,
    last_seen: v.lastSeen ?? null
  }
}

/** What a node is training, for document 003's node: the weights it holds and its samples per second. */
export interface NodeTraining {
  /** The session's latest checkpoint, else the model it started from. */
  modelHash: string
  /** Its share of the session's rate: each training rank takes an equal slice of every batch. */
  samplesPerSecond: number | null
}

/** The running training session in which the node takes a rank, if any. */
export function trainingOn (jobs: JobRecord[], nodeId: string): NodeTraining | undefined {
  for (const job of jobs) {
    if (job.kind !== 'training' || job.status !== 'running' || job.training == null) continue
    const ranks = job.training.workers.filter(w => w.status === 'training')
    if (!ranks.some(w => w.id === nodeId)) continue
    const rate = job.training.progress?.samplesPerSecond
    return { modelHash: job.training.checkpoints.at(-1)?.cid ?? job.modelCID, samplesPerSecond: rate == null ? null : rate / ranks.length }
  }
  return undefined
}

/**
 * A node with the fields of document 002 (`status`, `address`, `models`,
 * `resources` as fractions) and of document 003 (`last_seen`, `performance`,
 * and while it trains `model_hash` and `training_speed` in samples per second).
 */
export function nodeJson (v: NodeView, extra: { models: string[], latencyMs?: number, training?: NodeTraining }): object {
  const u = v.resources == null ? undefined : usageOf(v.resources)
  return {
    ...peerJson(v),
    status: nodeStatus(v),
    address: apiAddress(v),
    models: extra.models,
    model_hash: extra.training?.modelHash ?? null,
    resources: u == null ? null : { cpu: u.cpu, memory: u.memory, disk: u.disk, gpu: u.gpu },
    performance: { training_speed: extra.training?.samplesPerSecond ?? null, memory_usage: u?.memory ?? null, network_latency: extra.latencyMs ?? null },
    registered: v.registered,
    allocation: v.allocation,
    pins: v.pins,
    match_index: v.matchIndex,
    joined_at: v.joinedAt,
    hardware: v.resources ?? null
  }
}

/** One connection of each connected peer that is not a cluster member. */
function strangers (memberIds: Set<string>, peers: PeerConnection[]): PeerConnection[] {
  return [...new Map(peers.filter(p => !memberIds.has(p.peer)).map(p => [p.peer, p])).values()]
}

/**
 * Document 001's peers: the other members, connected or not, with when this
 * node last heard from them, and the connected peers outside the cluster.
 */
export function peersJson (members: NodeView[], peers: PeerConnection[]): object[] {
  const addrOf = new Map(peers.map(p => [p.peer, p.addr]))
  return [
    ...members.filter(m => !m.isSelf).map(m => ({
      id: m.id,
      address: addrOf.get(m.id) ?? (m.addrs.length > 0 ? `${m.addrs[0]}/p2p/${m.id}` : null),
      connected: m.connected,
      lastSeen: m.lastSeen ?? null,
      member: true,
      role: m.role
    })),
    ...strangers(new Set(members.map(m => m.id)), peers).map(p => ({ id: p.peer, address: p.addr, connected: true, lastSeen: null, member: false }))
  ]
}

/**
 * Document 003's topology as this node sees it: every member and every
 * connected peer, and this node's own swarm connections (the only edges it knows).
 */
export function topologyJson (self: string, members: NodeView[], peers: PeerConnection[]): object {
  const memberIds = new Set(members.map(m => m.id))
  return {
    node_id: self,
    nodes: [
      ...members.map(m => ({ ...peerJson(m), status: nodeStatus(m), member: true })),
      ...strangers(memberIds, peers).map(p => ({ id: p.peer, connected: true, member: false }))
    ],
    connections: peers.map(p => ({
      from: self,
      to: p.peer,
      addr: p.addr,
      direction: p.direction,
      latency_ms: p.latencyMs ?? null,
      member: memberIds.has(p.peer)
    }))
  }
}

export interface Traffic { sent: number, received: number }

/**
 * Bytes moved, from libp2p's `libp2p_data_transfer_bytes_total`, whose
 * `protocol` label is "<protocol> sent" or "<protocol> received"; "global" counts every connection.
 */
export function trafficJson (values: Array<{ labels: Record<string, string | number | undefined>, value: number }>): Traffic & { protocols: Record<string, Traffic> } {
  const protocols: Record<string, Traffic> = {}
  for (const { labels, value } of values) {
    const label = String(labels.protocol ?? '')
    const space = label.lastIndexOf(' ')
    const direction = label.slice(space + 1)
    if (space < 0 || (direction !== 'sent' && direction !== 'received')) continue
    const name = label.slice(0, space)
    protocols[name] ??= { sent: 0, received: 0 }
    protocols[name][direction] += value
  }
  const { global = { sent: 0, received: 0 }, ...rest } = protocols
  return { ...global, protocols: rest }
}

/** Document 000's pin fields with IPFS Cluster's names. */
export function pinJson (p: PinRecord): object {
  return {
    cid: p.cid,
    name: p.name,
    allocations: p.allocations,
    replication_factor_min: p.replicationFactorMin,
    replication_factor_max: p.replicationFactorMax,
    size: p.size,
    model_id: p.modelId ?? null,
    timestamp: p.createdAt,
    updated_at: p.updatedAt,
    index: p.index
  }
}

/** IPFS Cluster's GlobalPinInfo: the pin's status on every node, in `peer_map`. */
export function pinStatusJson (r: PinStatusReport): object {
  return {
    cid: r.cid,
    name: r.name,
    status: r.summary,
    peer_map: Object.fromEntries(r.peers.map(p => [p.peer, {
      status: p.status,
      error: p.error ?? '',
      attempt_count: p.attempts ?? 0,
      timestamp: p.updatedAt
    }]))
  }
}

export type ReplicationState = 'ready' | 'replicating' | 'degraded' | 'error' | 'unallocated'

/** Document 002's model `status`: ready once every allocated node pinned it. */
export function replicationState (report?: PinStatusReport): ReplicationState {
  switch (report?.summary) {
    case undefined: return 'unallocated'
    case 'pinned': return 'ready'
    case 'error': return 'error'
    case 'unreachable': return 'degraded'
    default: return 'replicating'
  }
}

/** A registered model as document 002 lists it: replicas are the allocations of its CID's pin. */
export function modelJson (m: ModelRecord, pin?: PinRecord, report?: PinStatusReport): object {
  const size = m.size > 0 ? m.size : pin?.size ?? 0
  return {
    name: m.modelId,
    model_id: m.modelId,
    kind: m.kind,
    cid: m.modelCID,
    version: m.version,
    active: m.isActive,
    replicas: pin?.allocations.length ?? 0,
    nodes: pin?.allocations ?? [],
    replication_factor_min: pin?.replicationFactorMin ?? null,
    replication_factor_max: pin?.replicationFactorMax ?? null,
    size,
    total_size: humanSize(size),
    status: replicationState(report)
  }
}

/** A model's replicas, one per allocated node with its pin status. */
export function replicasJson (m: ModelRecord, pin?: PinRecord, report?: PinStatusReport): object {
  const byPeer = new Map(report?.peers.map(p => [p.peer, p]))
  return {
    ...modelJson(m, pin, report),
    replica_status: (pin?.allocations ?? []).map(id => {
      const s = byPeer.get(id)
      return { node: id, status: s?.status ?? null, error: s?.error ?? null, attempts: s?.attempts ?? 0, updated_at: s?.updatedAt ?? null }
    })
  }
}

export function jobJson (j: JobRecord): object {
  return {
    id: j.jobId,
    job_id: j.jobId,
    kind: j.kind,
    status: j.status,
    model: j.modelId,
    model_cid: j.modelCID,
    prompt_cid: j.promptCID,
    response_cid: j.responseCID ?? null,
    controller: j.controller,
    worker: j.worker ?? null,
    error: j.error ?? null,
    submitted_at: j.submittedAt,
    started_at: j.startedAt ?? null,
    completed_at: j.completedAt ?? null
  }
}

export function decisionJson (d: Decision): object {
  return { index: d.index, term: d.term, timestamp: d.at, proposer: d.proposer, op: d.op, outcome: d.outcome, summary: d.summary }
}

export function consensusJson (s: ConsensusStatus): object {
  return {
    leader: s.leader,
    term: s.term,
    commit_index: s.commitIndex,
    applied_index: s.appliedIndex,
    role: s.role,
    voters: s.voters,
    learners: s.learners,
    ready: s.ready
  }
}

function mib (bytes: number): number {
  return Math.round(bytes / MIB)
}

/** A node as document 004 shows a client: CPU usage in percent, memory in MiB. */
export function clientJson (v: NodeView): object {
  const r = v.resources
  return {
    id: v.id,
    status: nodeStatus(v),
    resources: {
      cpu: r == null ? {} : { cores: r.cpu.cores, usage: percent(r.cpu.usage) },
      ram: r == null ? {} : { total: mib(r.memory.total), used: mib(r.memory.total - r.memory.free) },
      gpu: r?.gpus.map(g => ({ id: g.id, name: g.name, memory: { total: mib(g.vram.total), used: mib(g.vram.used) } })) ?? []
    },
    last_seen: v.lastSeen ?? null
  }
}

/**
 * An external worker process as document 004 shows a client: the figures of
 * its last heartbeat (percent), and `via`, the node it is connected to.
 */
export function externalClientJson (w: ExternalWorkerView, via: string): object {
  const info = w.systemInfo ?? {}
  return {
    id: w.id,
    status: 'active',
    external: true,
    via,
    resources: {
      cpu: info.cpu_usage == null ? {} : { usage: info.cpu_usage },
      ram: info.ram_usage == null ? {} : { usage: info.ram_usage },
      gpu: info.gpu_usage == null ? [] : [{ id: 0, usage: info.gpu_usage }]
    },
    connected_at: w.connectedAt,
    last_seen: w.lastSeen,
    job_id: w.jobId ?? null,
    steps: w.steps
  }
}

/** Statuses of a replica that is still to arrive: the node is fetching it, will, or will try again. */
const IN_TRANSFER = new Set(['queued', 'pinning', 'error'])

/** A transfer's id, short enough for a path segment: a digest of the pin and the node fetching it. */
export function transferId (cid: string, peer: string): string {
  return createHash('sha256').update(`${cid}/${peer}`).digest('hex').slice(0, 20)
}

/**
 * Document 002's transfers: each replica of a pin that its node is fetching,
 * with the bytes taken so far out of the pin's size, the rate since the
 * attempt began, and the time left at that rate.
 */
export function transfersJson (pins: PinRecord[], reports: PinStatusReport[], models: ModelRecord[], now = Date.now()): object[] {
  const pinOf = new Map(pins.map(p => [p.cid, p]))
  const modelOf = new Map(models.map(m => [m.modelCID, m.modelId]))
  return reports.flatMap(r => r.peers.filter(p => IN_TRANSFER.has(p.status)).map(p => {
    const total = pinOf.get(r.cid)?.size ?? 0
    const done = p.bytes ?? 0
    const seconds = p.startedAt == null ? 0 : (now - Date.parse(p.startedAt)) / 1000
    const rate = p.status === 'pinning' && seconds > 0 ? done / seconds : 0
    return {
      id: transferId(r.cid, p.peer),
      cid: r.cid,
      name: r.name,
      model: modelOf.get(r.cid) ?? null,
      node: p.peer,
      status: p.status,
      bytes_done: done,
      bytes_total: total > 0 ? total : null,
      progress: total > 0 ? Math.min(1, done / total) : null,
      rate,
      eta_seconds: rate > 0 && total > 0 ? Math.max(0, (total - done) / rate) : null,
      started_at: p.startedAt ?? null,
      attempts: p.attempts ?? 0,
      error: p.error ?? null
    }
  }))
}
