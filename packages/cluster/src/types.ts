/**
 * The records of the replicated cluster state, as every node holds them after
 * applying the Raft log, and the soft state each node adds from heartbeats.
 * Times are ISO strings taken from the proposer's clock, so that applying
 * the log is deterministic.
 */

export type PeerIdString = string

/** How much of its machine a node's user lets the cluster use, in percent (document 001's /api/resources). */
export interface Allocation {
  cpu: number
  memory: number
  gpu: number
  storage: number
}

export interface GpuInfo {
  id: number
  name: string
  /** Bytes. */
  vram: { total: number, used: number }
}

/** What a node measured of its machine. Sizes in bytes, load and usage as fractions of 1. */
export interface Resources {
  cpu: { cores: number, model: string, load1: number, usage: number }
  memory: { total: number, free: number }
  gpus: GpuInfo[]
  disk: { total: number, free: number }
  /** onnxruntime execution providers this node can run, e.g. `cpu`, `cuda`. */
  executionProviders: string[]
  /** The provider this node's runtime uses: CUDA when it can and was not told otherwise, else the CPU. */
  executionProvider?: string
}

/** A node as the replicated state knows it. */
export interface NodeRecord {
  id: PeerIdString
  /** Swarm multiaddrs, without /p2p/. */
  addrs: string[]
  /** The node's HTTP API, when it announced one. */
  apiUrl?: string
  role: 'voter' | 'learner'
  /** Decided by the leader from heartbeats; offline nodes get no new allocations. */
  online: boolean
  joinedAt: string
  /** Last resources the node reported through Raft (coarse: for allocation). */
  resources?: Resources
  /** NodeProfileRegistry: whether the node offered its resources, and how much. */
  registered: boolean
  allocation: Allocation
  /** Drained nodes take no new allocations (document 002). */
  drained: boolean
  /** The role of the join token it was admitted with, if any: `voter` makes it a trusted peer. */
  tokenRole?: 'voter' | 'learner'
}

export interface PinRecord {
  cid: string
  name: string
  /** IPFS Cluster's replication factors; -1 means every node. */
  replicationFactorMin: number
  replicationFactorMax: number
  /** Nodes that must hold the content. */
  allocations: PeerIdString[]
  /** DAG size in bytes when the proposer knew it, else 0. */
  size: number
  /** The model or dataset this pin belongs to, if any. */
  modelId?: string
  /** The Pinning Service API's `meta`: string keys and values kept with the pin, which lists filter on. */
  meta?: Record<string, string>
  /** Multiaddrs (with /p2p/) known to provide the content: the allocated nodes dial them before fetching. */
  origins?: string[]
  /** The search collection whose snapshot this pin is, if any. */
  collection?: string
  createdAt: string
  updatedAt: string
  /** Raft index of the last change. */
  index: number
}

export type ModelKind = 'model' | 'dataset'

export interface ModelVersion {
  version: number
  cid: string
  at: string
  by: PeerIdString
}

/**
 * What whoever registered a model or dataset said of it, kept as given
 * (document 000's metadata). Unset in records made before they were kept.
 */
export interface RegisteredInfo {
  /** The framework it was made with or for, e.g. onnx, pytorch. */
  framework?: string
  /** Its license, as an SPDX id or a name. */
  license?: string
  /** The user account that registered it, the only one (besides admins) whose uploads update it; unset for a node's or an admin's registration. */
  account?: string
}

/** Document 001's ModelInfo, versioned. */
export interface ModelRecord extends RegisteredInfo {
  modelId: string
  kind: ModelKind
  modelCID: string
  name: string
  description: string
  /** Seconds since the epoch of the current version, as the contract's `timestamp`. */
  timestamp: number
  isActive: boolean
  version: number
  versions: ModelVersion[]
  owner: PeerIdString
  /** Bytes, when known. */
  size: number
  metadata: Record<string, unknown>
}

/** One stored version of a named document: its CID, never changed once recorded. */
export interface DocumentVersion {
  /** The name the client gave it, e.g. `1.0.0`. */
  version: string
  cid: string
  at: string
  by: PeerIdString
  metadata: Record<string, unknown>
}

/**
 * A named document kept as content with its versions (document 000's stored
 * LangChain chains and LlamaIndex indexes): the state holds CIDs and names
 * only, the JSON itself is content, pinned with replication.
 */
export interface DocumentRecord {
  /** What kind of document, e.g. `langchain/chain`; names are unique within a family. */
  family: string
  name: string
  /** Oldest first: the last is the latest. */
  versions: DocumentVersion[]
}

export type JobKind = 'inference' | 'training'
export type JobStatus = 'requested' | 'running' | 'paused' | 'completed' | 'failed' | 'cancelled' | 'stopped'

/** Statuses after which a job never changes again. */
export const FINAL_JOB_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled', 'stopped']

/** One node's part in a training job, or an external worker's. */
export interface TrainingWorker {
  /** A node's peer id, or the client id of an external worker process. */
  id: string
  /** An external worker: the node it is connected to, which relays its steps. */
  via?: PeerIdString
  /** Its place in the split of every global batch: rank r takes the r-th slice. */
  rank: number
  /**
   * `dropped`: left out of the rounds after it failed or lagged; it comes
   * back at a checkpoint. `joining`: an external worker that asked for work,
   * which the coordinator brings in at the next checkpoint. `left`: an
   * external worker that disconnected.
   */
  status: 'training' | 'dropped' | 'joining' | 'left'
  /** Why it was dropped last. */
  error?: string
  /** Times it was dropped in this job; a checkpoint brings it back, this count stays. */
  drops?: number
}

/** The latest figures of a training job, as its coordinator reported them. */
export interface TrainingProgress {
  step: number
  totalSteps: number
  epoch: number
  totalEpochs: number
  loss: number
  /** Where the labels allow it. */
  accuracy?: number
  samplesPerSecond: number
  learningRate: number
}

export interface TrainingCheckpoint {
  step: number
  cid: string
  at: string
}

/**
 * What the job table adds for a training job: who coordinates the rounds,
 * who computes gradients, how far it came, and its checkpoints (CIDs of
 * weights and optimizer state, pinned with replication).
 */
export interface TrainingRecord {
  coordinator: PeerIdString
  workers: TrainingWorker[]
  /** What the user asked for last; the coordinator acts on it. */
  desired: 'run' | 'pause' | 'stop'
  progress?: TrainingProgress
  checkpoints: TrainingCheckpoint[]
  /** The registered model saved from it, once there is one. */
  modelId?: string
}

/** Document 001's InferenceCoordinator jobs; the inference and training issues add to it. */
export interface JobRecord {
  jobId: number
  kind: JobKind
  status: JobStatus
  /** The node that submitted it (the contract's `controller`). */
  controller: PeerIdString
  promptCID: string
  modelId: string
  modelCID: string
  params: Record<string, unknown>
  worker?: PeerIdString
  responseCID?: string
  error?: string
  /** What the worker measured, e.g. token counts and durations. */
  metrics?: Record<string, number>
  submittedAt: string
  startedAt?: string
  completedAt?: string
  /** Training jobs only. */
  training?: TrainingRecord
}

/** How a collection cuts text into chunks: windows of the embedding model's tokens, overlapping. */
export interface ChunkingPolicy {
  /** Tokens per chunk, at most the model's context less its special tokens. */
  chunkTokens: number
  /** Tokens each chunk repeats of the one before, fewer than `chunkTokens`. */
  overlapTokens: number
}

/** The type of a metadata field a collection filters on. */
export type MetadataFieldType = 'string' | 'number' | 'boolean'

/**
 * A search collection: documents cut into chunks, embedded with one model,
 * stored as a LanceDB table whose snapshot (a directory DAG) is `headCID`.
 * Each new snapshot is a new version; readers open the head they see.
 */
export interface CollectionRecord {
  name: string
  /** Bumped at each new head. */
  version: number
  /** The registry name of the embedding model, e.g. `tiny-embed:latest`. */
  embeddingModel: string
  chunking: ChunkingPolicy
  /** Metadata fields that filters may name, and their types. */
  metadataSchema: Record<string, MetadataFieldType>
  /** The snapshot of the current version; '' while the collection is empty. */
  headCID: string
  /** Copies of each snapshot in the cluster; -1 is every node. */
  replicationFactor: number
  /** Chunks in the head snapshot. */
  chunks: number
  createdAt: string
  updatedAt: string
  owner: PeerIdString
}

/** A node's public JWT signing key, as a JWK: published so that every node verifies the tokens any node issues. */
export type SigningKey = Record<string, string>

/** One committed decision of the consensus history. */
export interface Decision {
  index: number
  term: number
  at: string
  proposer: PeerIdString
  op: string
  outcome: 'committed' | 'rejected'
  /** A short account of what changed, or why it was rejected. */
  summary: string
}

/** Events the state machine emits as it applies, on every node. */
export interface ClusterEvents {
  InferenceRequested: { jobId: number, controller: string, promptCID: string, modelId: string, modelCID: string }
  JobStarted: { jobId: number, worker: string }
  InferenceCompleted: { jobId: number, worker: string, responseCID: string }
  /** A job ended without a result: it failed, or was cancelled. */
  JobFailed: { jobId: number, error: string }
  /** A training job was submitted, changed status or coordinator, or recorded a checkpoint. */
  TrainingUpdated: { jobId: number, status: JobStatus, coordinator: string, step: number, checkpoint?: string }
  ModelRegistered: { modelId: string, modelCID: string }
  /** `by`: the peer that proposed the new version. */
  ModelUpdated: { modelId: string, modelCID: string, version: number, by: string }
  NodeJoined: { id: string, role: 'voter' | 'learner' }
  NodeLeft: { id: string }
  NodeStatus: { id: string, online: boolean }
  ResourcesUpdated: { id: string, allocation: Allocation }
  PinChanged: { cid: string, allocations: string[] }
  /** A collection was created, moved to a new head, or removed (`headCID` absent). */
  CollectionChanged: { name: string, version: number, headCID?: string }
  PinRemoved: { cid: string }
}
