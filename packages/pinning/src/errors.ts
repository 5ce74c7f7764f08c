/** No remote pinning service has this name in the node's settings. */
export class RemoteServiceNotFoundError extends Error {
  static name = 'RemoteServiceNotFoundError'
  name = 'RemoteServiceNotFoundError'
}

/** A remote pinning service of this name exists already. */
export class RemoteServiceExistsError extends Error {
  static name = 'RemoteServiceExistsError'
  name = 'RemoteServiceExistsError'
}

/** A remote service's name, endpoint or key, or a query of its pins, that cannot be used. */
export class InvalidRemotePinningError extends Error {
  static name = 'InvalidRemotePinningError'
  name = 'InvalidRemotePinningError'
}

/**
 * The remote service refused the request (a 4xx): a wrong key, a bad CID, a
 * pin it does not know. The message carries its Failure's `reason` and `details`.
 */
export class RemotePinningRefusedError extends Error {
  static name = 'RemotePinningRefusedError'
  name = 'RemotePinningRefusedError'
}

/** The remote service could not be reached, failed (a 5xx), or answered something that is not the API's. */
export class RemotePinningFailedError extends Error {
  static name = 'RemotePinningFailedError'
  name = 'RemotePinningFailedError'
}

/** The remote service reports that it could not pin the content. */
export class RemotePinFailedError extends Error {
  static name = 'RemotePinFailedError'
  name = 'RemotePinFailedError'
}
