/**
 * Secrets as the node keeps them: API keys and bearer tokens are long random
 * strings stored as SHA-256 hashes (a key's entropy makes a slow hash
 * pointless), passwords as bcrypt. Comparisons are constant-time.
 */
import { hash as digest, randomBytes, timingSafeEqual } from 'node:crypto'
import { hash, verify } from '@node-rs/bcrypt'

const HASH_PREFIX = 'sha256:'
/** bcrypt's work factor for new passwords: about 50 ms here, slow for a guesser, quick for a login. */
const BCRYPT_COST = 10

/** A new secret: `nd_` and 32 random bytes, base64url. */
export function newSecret (): string {
  return `nd_${randomBytes(32).toString('base64url')}`
}

/** The stored form of a key or token; hashed on every request that presents one, hence the one-shot hash. */
export function hashSecret (secret: string): string {
  return HASH_PREFIX + digest('sha256', secret, 'hex')
}

export function isSecretHash (value: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(value)
}

/** Whether two stored hashes are the same, in time that does not depend on where they differ. */
export function sameHash (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}

export async function hashPassword (password: string): Promise<string> {
  return hash(password, { cost: BCRYPT_COST })
}

export async function verifyPassword (password: string, passwordHash: string): Promise<boolean> {
  return verify(password, passwordHash).catch(() => false)
}

export function isPasswordHash (value: string): boolean {
  return /^\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}$/.test(value)
}
