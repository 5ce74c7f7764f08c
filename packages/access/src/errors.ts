/**
 * Errors of access control, each with a stable `name` that the API maps to
 * 401, 403 or 429 in each API family's shape.
 */

/** No credentials, or credentials that are not valid: 401. */
export class AuthenticationError extends Error {
  static name = 'AuthenticationError'
  name = 'AuthenticationError'
}

/** Valid credentials without the permission the route needs, or a browser origin or Host the node refuses: 403. */
export class AuthorizationError extends Error {
  static name = 'AuthorizationError'
  name = 'AuthorizationError'
}

/** Too many requests for the credential or address in the window: 429, with the seconds until it reopens. */
export class RateLimitError extends Error {
  static name = 'RateLimitError'
  name = 'RateLimitError'
  readonly retryAfterSeconds: number

  constructor (message: string, retryAfterSeconds: number) {
    super(message)
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** An `auth`, `cors` or `rate_limits` setting that cannot be used. */
export class AccessConfigError extends Error {
  static name = 'AccessConfigError'
  name = 'AccessConfigError'
}

/** No credential has that id, or no user that name. */
export class CredentialNotFoundError extends Error {
  static name = 'CredentialNotFoundError'
  name = 'CredentialNotFoundError'
}

/** A credential request (a key, a user, a login) that cannot be carried out as made: 400. */
export class InvalidCredentialError extends Error {
  static name = 'InvalidCredentialError'
  name = 'InvalidCredentialError'
}
