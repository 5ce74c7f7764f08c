/** A multiaddr given by a user could not be parsed or has no peer id. */
export class InvalidMultiaddrError extends Error {
  static name = 'InvalidMultiaddrError'
  name = 'InvalidMultiaddrError'
}

/** A peer could not be dialled. */
export class DialError extends Error {
  static name = 'DialError'
  name = 'DialError'
}

/** A peer id given by a user does not parse. */
export class InvalidPeerIdError extends Error {
  static name = 'InvalidPeerIdError'
  name = 'InvalidPeerIdError'
}

/** A peer is neither known nor findable. */
export class PeerNotFoundError extends Error {
  static name = 'PeerNotFoundError'
  name = 'PeerNotFoundError'
}

/** A swarm.key that is not a version 1 pre-shared key of 32 bytes. */
export class InvalidSwarmKeyError extends Error {
  static name = 'InvalidSwarmKeyError'
  name = 'InvalidSwarmKeyError'
}

/**
 * A peer answered, but the connection's handshake failed: the private-network
 * exchange or the encryption after it. Between nodes of a cluster that means
 * the two do not hold the same private-network key (or one holds none).
 */
export class HandshakeFailedError extends DialError {
  static name = 'HandshakeFailedError'
  name = 'HandshakeFailedError'
}

/** A routing request that cannot be made as asked: a lookup of this node itself, a count below one. */
export class InvalidRoutingRequestError extends Error {
  static name = 'InvalidRoutingRequestError'
  name = 'InvalidRoutingRequestError'
}

/** The DHT has no peer to ask: the node is connected to none that speaks it. */
export class NoPeersError extends Error {
  static name = 'NoPeersError'
  name = 'NoPeersError'
}
