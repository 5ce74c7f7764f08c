/** A CID or an /ipfs/ path given by a user does not parse. */
export class InvalidCIDError extends Error {
  static name = 'InvalidCIDError'
  name = 'InvalidCIDError'
}

/** An option has a value that cannot be used (a bad chunker, codec, topic...). */
export class InvalidParameterError extends Error {
  static name = 'InvalidParameterError'
  name = 'InvalidParameterError'
}

/** A block, a path inside a DAG, an IPNS name or a key does not exist. */
export class NotFoundError extends Error {
  static name = 'NotFoundError'
  name = 'NotFoundError'
}

/** The content exists but is of the wrong kind for the operation (cat of a directory...). */
export class WrongContentTypeError extends Error {
  static name = 'WrongContentTypeError'
  name = 'WrongContentTypeError'
}

/** A pin operation cannot be done (unpinning what is not pinned, or pinned only indirectly). */
export class PinError extends Error {
  static name = 'PinError'
  name = 'PinError'
}

/** A pin exists already under the CID being pinned (Helia's error of that name, which pinAdd tells apart). */
export class AlreadyPinnedError extends Error {
  static name = 'AlreadyPinnedError'
  name = 'AlreadyPinnedError'
}

/** A named key already exists. */
export class KeyExistsError extends Error {
  static name = 'KeyExistsError'
  name = 'KeyExistsError'
}

/** A lookup over the network gave up before it found anything. */
export class TimeoutError extends Error {
  static name = 'TimeoutError'
  name = 'TimeoutError'
}

/** A garbage collection ran to its end but could not remove some blocks. */
export class GcError extends Error {
  static name = 'GcError'
  name = 'GcError'
}

/** An MFS path is already taken. */
export class FileExistsError extends Error {
  static name = 'FileExistsError'
  name = 'FileExistsError'
}
