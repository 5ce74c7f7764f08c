/**
 * Who may use a node: credentials (document 000's API keys, bearer tokens
 * and basic auth, document 003's JWTs, document 002's admin token, the
 * node's cookie for local command-line use), the permissions routes need,
 * the Host and Origin checks that keep browsers and DNS rebinding out, and
 * which rate limit counts a request. The API's hooks apply it; the cluster
 * replicates the credentials made on any node, as hashes.
 */
export * from './errors.ts'
export { PERMISSIONS, expandPermissions, isPermission } from './permissions.ts'
export type { Permission, RoutePermission } from './permissions.ts'
export { newSecret, hashSecret, hashPassword, verifyPassword, isSecretHash } from './secrets.ts'
export { Credentials, StaticDirectory } from './credentials.ts'
export type { CredentialDirectory, CredentialKind, CredentialsInit, Principal, StoredCredential } from './credentials.ts'
export { JwtAuthority } from './jwt.ts'
export type { JwtInit, VerifiedToken } from './jwt.ts'
export { AccessGuard, DEFAULT_LIMITS } from './guard.ts'
export type { GuardComponents, GuardInit, LimitBucket, LimitClass, RequestFacts } from './guard.ts'
export { RateLimiter } from './limiter.ts'
export type { Count, RateLimiterInit } from './limiter.ts'
export { defaultAccessConfig, mergeAccessConfig, parseAccessConfig } from './config.ts'
export { parseDuration } from './duration.ts'
export type { AccessConfig, Limit } from './config.ts'
export { AccessService } from './service.ts'
export { COOKIE_FILE, JWT_KEY_FILE } from './files.ts'
export type { AbortOptions, AccessComponents, AccessServiceInit, CredentialStore, CredentialView } from './service.ts'
