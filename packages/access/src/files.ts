/**
 * The files the access service keeps in a node's repo. Its own module, with
 * no imports, so that the command line finds the cookie without loading the
 * service.
 */

/** The node's cookie: a secret its own user's command line authenticates with. */
export const COOKIE_FILE = 'api.cookie'
export const JWT_KEY_FILE = 'jwt.key'
