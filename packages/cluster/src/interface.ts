import type { CredentialStore } from '@node-daemon/access'
import type { Allocation, ChunkingPolicy, ClusterEvents, CollectionRecord, Decision, DocumentRecord, MetadataFieldType, JobRecord, JobStatus, ModelKind, ModelRecord, NodeRecord, PinRecord, RegisteredInfo, Resources } from './types.ts'
import type { TrainingChange } from './commands.ts'
import type { JoinRole } from './join-token.ts'
import type { Handler as ServiceHandler, ServiceMethod } from './rpc.ts'
import type { AbortOptions, TypedEventTarget } from '@libp2p/interface'

export interface ReadOptions {
  signal?: AbortSignal
  /** Answer from this node's applied state without a ReadIndex round (may be stale). Default false: linearizable. */
  local?: boolean
}

export interface WriteOptions {
  signal?: AbortSignal
}

/** Status of one pin on one node, with IPFS Cluster's names. */
export type PinStatus = 'pinned' | 'pinning' | 'queued' | 'error' | 'remote' | 'unpinning' | 'unreachable'

export interface PeerPinStatus {
  peer: string
  status: PinStatus
  error?: string
  /** Attempts so far, for queued/pinning/error. */
  attempts?: number
  updatedAt: string
  /** Bytes of the DAG the node has taken in its current or last attempt. */
  bytes?: number
  /** When that attempt began. */
  startedAt?: string
}

export interface PinStatusReport {
  cid: string
  name: string
  /** One entry per cluster node: `remote` for nodes not allocated. */
  peers: PeerPinStatus[]
  /** The weakest of the allocated nodes' statuses. */
  summary: PinStatus
}

export interface PinAddOptions extends WriteOptions {
  name?: string
  /** Both factors at once, as IPFS Cluster's `replication_factor`; -1 is every node. */
  replicationFactor?: number
  replicationFactorMin?: number
  replicationFactorMax?: number
  /** Replaces the pin's metadata (IPFS Cluster's and the Pinning Service API's `meta`). */
  meta?: Record<string, string>
  /** Replaces the pin's origins: multiaddrs ending in /p2p/<peer> that the allocated nodes dial before fetching. */
  origins?: string[]
}

export interface RegisterModelInput extends RegisteredInfo {
  modelId: string
  modelCID: string
  name?: string
  description?: string
  kind?: ModelKind
  metadata?: Record<string, unknown>
  /** Copies of the model's bytes in the cluster. Default 3 (or every node if fewer). */
  replicationFactor?: number
}

export interface UpdateModelOptions extends WriteOptions, RegisteredInfo {
  expectedVersion?: number
  /** Replace the description, the metadata, and the framework and license given; the same CID with any of them new is a new version. */
  description?: string
  metadata?: Record<string, unknown>
}

export interface PutDocumentInput {
  /** What kind of document, e.g. `langchain/chain`. */
  family: string
  name: string
  version: string
  /** The document's content, added already. */
  cid: string
  metadata?: Record<string, unknown>
  /** Copies of the content in the cluster. Default 3 (or every node if fewer). */
  replicationFactor?: number
}

export interface CreateCollectionInput {
  name: string
  embeddingModel: string
  chunking: ChunkingPolicy
  metadataSchema?: Record<string, MetadataFieldType>
  /** Copies of each snapshot. Default 3 (or every node if fewer); -1 is every node. */
  replicationFactor?: number
}

export interface SetCollectionHeadInput {
  headCID: string
  /** The head the new snapshot was made from, '' for the first: the move is rejected if another writer moved it since. */
  expectedHead: string
  chunks: number
  /** The model the snapshot's vectors were embedded with, when it is not the collection's any more: a re-index switches both at once. */
  embeddingModel?: string
}

export interface SubmitJobInput {
  promptCID: string
  /** A registered model id; or give `modelCID` directly (submitPromptWithCID). */
  modelId?: string
  modelCID?: string
  kind?: 'inference' | 'training'
  params?: Record<string, unknown>
}

/** A node as the API shows it: the replicated record plus this node's fresh view from heartbeats. */
export interface NodeView extends NodeRecord {
  /** Latest resources from heartbeats, else the replicated ones. */
  resources?: Resources
  /** When this node last heard a heartbeat from it (ISO), undefined if never. */
  lastSeen?: string
  /** Whether the node is connected to this one on the swarm now. */
  connected: boolean
  /** Pins allocated to it, and how many it reported as not yet pinned. */
  pins: { allocated: number, pending: number }
  /** Raft: the leader's view of its log match index; -1 where unknown. */
  matchIndex: number
  isLeader: boolean
  isSelf: boolean
}

export interface JoinTokenOptions {
  /** How long the token admits nodes. Default an hour, at most 30 days. */
  expiresInMs?: number
  /** `voter` admits a trusted peer, which may become a voter; `learner` (the default) one that may only learn, store and serve. */
  role?: JoinRole
}

/**
 * Why this node has not joined yet, from its last round of asking: a wrong
 * or missing private-network key (`secret`), no member reachable
 * (`unreachable`), the member refused the join token or its absence
 * (`refused`), or anything else (`failed`).
 */
export interface JoinFailure {
  kind: 'secret' | 'unreachable' | 'refused' | 'failed'
  /** The bootstrap address it was about. */
  addr: string
  /** What an operator reads: what failed and what to pass instead. */
  message: string
  /** When this kind of failure was first seen, in milliseconds since the epoch. */
  since: number
}

export interface JoinToken {
  /** The invite: the admission, the members' addresses and the private-network key. A secret. */
  token: string
  role: JoinRole
  /** The member that signed it. */
  issuer: string
  expiresAt: string
  /** The members' multiaddrs it names. */
  addrs: string[]
}

export interface ConsensusStatus {
  /** The leader's peer id, '' when none is known. */
  leader: string
  term: number
  commitIndex: number
  appliedIndex: number
  role: 'leader' | 'follower' | 'candidate' | 'pre-candidate'
  voters: string[]
  learners: string[]
  /** Whether the node knows a leader and has applied what it knew committed at start. */
  ready: boolean
}

/**
 * What keeps a node from its part in the cluster: it is still joining (or
 * catching up to its own admission), it was removed from the cluster, no
 * leader is known, or it has not applied what it knows is committed.
 */
export type ClusterProblem = 'joining' | 'removed' | 'no_quorum' | 'catching_up'

export interface JobQuery {
  /** Only jobs in one of these states. */
  status?: JobStatus | JobStatus[]
  /** Only jobs this node or external worker worked on: ran it, or took a rank of its training. */
  worker?: string
  /** Default 100. */
  limit?: number
}

export interface DiscoveryResult {
  members: number
  /** Members that were not connected. */
  found: number
  connected: Array<{ id: string, addr: string }>
  failed: Array<{ id: string, error: string }>
}

export interface HistoryQuery {
  /** Decisions at or after this Raft index. */
  since?: number
  limit?: number
  op?: string
}

/**
 * The cluster as the daemon and its API use it. Writes go through Raft (sent
 * on to the leader from a follower); reads are linearizable unless `local`.
 */
export interface Cluster extends TypedEventTarget<{ [K in keyof ClusterEvents]: CustomEvent<ClusterEvents[K]> }> {
  readonly id: string
  /** API keys, tokens, users and JWT keys made through any node, as hashes, replicated through Raft. */
  readonly credentials: CredentialStore
  status (): ConsensusStatus
  /** Resolves when this node knows a leader and has caught up; what `/health/ready` waits for. */
  isReady (): boolean
  /** Why this node cannot take its part in the cluster now, for /health; empty when it can. */
  problems (): ClusterProblem[]
  /** Why the last round of asking to join failed, while this node is not a member yet. */
  lastJoinFailure (): JoinFailure | undefined

  nodes (options?: ReadOptions): Promise<NodeView[]>
  node (id: string, options?: ReadOptions): Promise<NodeView>
  /** Takes a node out of the cluster (Raft membership and state); its pins move elsewhere. */
  removeNode (id: string, options?: WriteOptions): Promise<void>
  setDrained (id: string, drained: boolean, options?: WriteOptions): Promise<NodeView>
  /** The most of each resource this node's allocation may give, in percent (cluster.allocation_limits). */
  allocationLimits (): Allocation
  /** Document 001: this node's allowance, as /api/resources POST and registerNode set it, within allocationLimits(). */
  setAllocation (allocation: Partial<Allocation>, options?: WriteOptions): Promise<Allocation>
  registerNode (limits: { maxRAM: number, maxVRAM: number, maxCPUPercent: number }, options?: WriteOptions): Promise<NodeView>
  deregisterNode (options?: WriteOptions): Promise<void>
  /** This node's measured resources now. */
  resources (): Promise<Resources>
  /** Dials the members this node is not connected to, at their known addresses. */
  discover (options?: WriteOptions): Promise<DiscoveryResult>
  /** A join token (an invite) admitted by this node, which must be trusted: `node-daemon start --join` joins with it alone until it expires. */
  createJoinToken (options?: JoinTokenOptions): Promise<JoinToken>

  /**
   * Answers `method` of the cluster protocol for other members with
   * `handler` (undefined stops): how a service beside the cluster (search)
   * serves the others without a protocol of its own.
   */
  serve (method: ServiceMethod, handler: ServiceHandler | undefined): void
  /** Calls `method` on a member; rejects with the member's typed error, or the dial's. */
  ask<T> (peer: string, method: ServiceMethod, body: unknown, options?: AbortOptions): Promise<T>

  pinAdd (cid: string, options?: PinAddOptions): Promise<PinRecord>
  pinRm (cid: string, options?: WriteOptions): Promise<void>
  pins (options?: ReadOptions): Promise<PinRecord[]>
  pin (cid: string, options?: ReadOptions): Promise<PinRecord>
  /** Statuses of all pins (or of one), asked of every node. */
  pinStatus (cid?: string, options?: ReadOptions): Promise<PinStatusReport[]>
  /** Pins this node is allocated, with its local status. */
  localPins (): Array<{ pin: PinRecord, status: PeerPinStatus }>
  /** Recomputes allocations so that load is balanced; returns the pins that moved. */
  rebalance (options?: WriteOptions): Promise<PinRecord[]>
  /** Moves one pin's replica from a node to another. */
  migrate (cid: string, from: string, to: string, options?: WriteOptions): Promise<PinRecord>
  /** Adds a replica of one pin on a node, which then fetches it: a download to that node. */
  allocate (cid: string, to: string, options?: WriteOptions): Promise<PinRecord>
  /** Takes one node's replica of a pin away, which stops its fetch there: a cancelled transfer. */
  deallocate (cid: string, from: string, options?: WriteOptions): Promise<PinRecord>

  registerModel (input: RegisterModelInput, options?: WriteOptions): Promise<ModelRecord>
  /** A new version of the model's CID (or metadata); with `expectedVersion`, rejected unless that is still the current version. */
  updateModel (modelId: string, modelCID: string, options?: UpdateModelOptions): Promise<ModelRecord>
  setModelActive (modelId: string, active: boolean, options?: WriteOptions): Promise<ModelRecord>
  removeModel (modelId: string, options?: WriteOptions): Promise<void>
  getModel (modelId: string, options?: ReadOptions): Promise<ModelRecord>
  /**
   * A registry entry by id as this node has applied it; only when it is not
   * there, read once more through the leader, since it may have been
   * registered at another node a moment ago. Undefined when neither has it,
   * or no leader answers. Every request that names a model or a dataset
   * makes this read, so a known id costs no Raft round.
   */
  findModel (modelId: string, options?: AbortOptions): Promise<ModelRecord | undefined>
  getAllModels (options?: ReadOptions): Promise<ModelRecord[]>
  getActiveModels (options?: ReadOptions): Promise<ModelRecord[]>

  /** Records a new version of a named document, pinned with replication; the same version again with the same CID is no change. */
  putDocument (input: PutDocumentInput, options?: WriteOptions): Promise<DocumentRecord>
  /** A stored document with its versions, oldest first. */
  getDocument (family: string, name: string, options?: ReadOptions): Promise<DocumentRecord>
  /** The stored documents of a family. */
  documents (family: string, options?: ReadOptions): Promise<DocumentRecord[]>
  /** Search collections: their settings and the CID of their current snapshot. */
  createCollection (input: CreateCollectionInput, options?: WriteOptions): Promise<CollectionRecord>
  /** Moves a collection to a new snapshot, pinned with its replication factor; the old one is unpinned. */
  setCollectionHead (name: string, input: SetCollectionHeadInput, options?: WriteOptions): Promise<CollectionRecord>
  removeCollection (name: string, options?: WriteOptions): Promise<CollectionRecord>
  collection (name: string, options?: ReadOptions): Promise<CollectionRecord>
  collections (options?: ReadOptions): Promise<CollectionRecord[]>

  submitJob (input: SubmitJobInput, options?: WriteOptions): Promise<JobRecord>
  /** The calling node takes the job as its worker; again after a worker died, by the one that runs it instead. */
  startJob (jobId: number, options?: WriteOptions): Promise<JobRecord>
  /** Completes the job with the calling node as its worker. */
  submitResponse (jobId: number, responseCID: string, options?: WriteOptions & { metrics?: Record<string, number> }): Promise<JobRecord>
  failJob (jobId: number, error: string, options?: WriteOptions): Promise<JobRecord>
  /** Ends an open inference job whose result no one waits for any more: its client went away, or its controller did. */
  cancelJob (jobId: number, reason: string, options?: WriteOptions): Promise<JobRecord>
  job (jobId: number, options?: ReadOptions): Promise<JobRecord>
  /** Newest first. */
  jobs (query?: JobQuery, options?: ReadOptions): Promise<JobRecord[]>
  /** Takes a finished job out of the job table; the consensus history keeps its decisions. Returns the removed record. */
  removeJob (jobId: number, options?: WriteOptions): Promise<JobRecord>

  /**
   * A change to a training job through the log: submit (a new job, whose
   * record comes back), progress and finish (from its coordinator only),
   * control (pause, resume, stop), handover (a new coordinator, if the
   * named one still is), saved (the model registered from it), and join
   * and leave (external workers, relayed by the node they connect to).
   */
  changeTraining (change: TrainingChange, options?: WriteOptions): Promise<JobRecord>

  history (query?: HistoryQuery, options?: ReadOptions): Promise<Decision[]>
}
