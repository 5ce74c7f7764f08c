/**
 * Errors of the cluster, each with a stable `name` that the API maps to an
 * HTTP status (and, where document 003 has one, its numeric code).
 */

/** A command or argument is malformed: bad CID, bad replication factor, unknown field. */
export class InvalidClusterRequestError extends Error {
  static name = 'InvalidClusterRequestError'
  name = 'InvalidClusterRequestError'
}

/** No such node in the cluster (document 003's 1001 NODE_NOT_FOUND). */
export class NodeNotFoundError extends Error {
  static name = 'NodeNotFoundError'
  name = 'NodeNotFoundError'
}

/** The cluster pinset has no pin for this CID. */
export class PinNotFoundError extends Error {
  static name = 'PinNotFoundError'
  name = 'PinNotFoundError'
}

/** No model or dataset registered under this id (document 001's E003). */
export class ModelNotFoundError extends Error {
  static name = 'ModelNotFoundError'
  name = 'ModelNotFoundError'
}

/** A model id is taken already. */
export class ModelExistsError extends Error {
  static name = 'ModelExistsError'
  name = 'ModelExistsError'
}

/** No stored document (a LangChain chain, a LlamaIndex index) has this name, or this version. */
export class DocumentNotFoundError extends Error {
  static name = 'DocumentNotFoundError'
  name = 'DocumentNotFoundError'
}

/** A document's version is recorded already with other content: versions never change. */
export class DocumentVersionExistsError extends Error {
  static name = 'DocumentVersionExistsError'
  name = 'DocumentVersionExistsError'
}

/** No search collection of this name. */
export class CollectionNotFoundError extends Error {
  static name = 'CollectionNotFoundError'
  name = 'CollectionNotFoundError'
}

/** A collection name is taken already. */
export class CollectionExistsError extends Error {
  static name = 'CollectionExistsError'
  name = 'CollectionExistsError'
}

export class JobNotFoundError extends Error {
  static name = 'JobNotFoundError'
  name = 'JobNotFoundError'
}

/** The job is finished already, so it cannot take a response or fail. */
export class JobStateError extends Error {
  static name = 'JobStateError'
  name = 'JobStateError'
}

/** Fewer eligible nodes than the pin's minimum replication factor. */
export class InsufficientPeersError extends Error {
  static name = 'InsufficientPeersError'
  name = 'InsufficientPeersError'
}

/**
 * The cluster rejected a proposal it committed: a model update whose
 * expected version is no longer current (document 003's 1003 CONSENSUS_FAILED).
 */
export class ConsensusRejectedError extends Error {
  static name = 'ConsensusRejectedError'
  name = 'ConsensusRejectedError'
}

/**
 * No leader can be reached, so nothing can be decided now: the node is cut
 * off from a quorum (document 003's 1005 NETWORK_PARTITION). Retrying later is safe.
 */
export class NoQuorumError extends Error {
  static name = 'NoQuorumError'
  name = 'NoQuorumError'
}

/** Joining failed: no bootstrap peer answered, or the member asked refused (no join token where one is needed, or one that is forged, expired or from an issuer it does not trust). */
export class JoinError extends Error {
  static name = 'JoinError'
  name = 'JoinError'
}

/** A peer broke the cluster RPC protocol. */
export class ClusterProtocolError extends Error {
  static name = 'ClusterProtocolError'
  name = 'ClusterProtocolError'
}

/**
 * The node, or the peer a request came from, is a member the cluster does
 * not trust (cluster.trusted_peers): it may not vote, admit nodes, make join
 * tokens or propose what changes others' records.
 */
export class NotTrustedError extends Error {
  static name = 'NotTrustedError'
  name = 'NotTrustedError'
}
