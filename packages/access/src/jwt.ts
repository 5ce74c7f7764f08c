/**
 * Document 003's JWTs: RS256 tokens that a node signs with a key pair kept
 * in its repo (published to the cluster, so any node verifies them), and
 * tokens issued elsewhere, verified against configured public keys (PEM) or
 * key sets (JWKS). Only asymmetric algorithms are taken, so `alg: none` and
 * HS256 signed with a public key are refused; so are expired tokens and
 * tokens for another audience or from another issuer.
 */
import { chmod, readFile, rename, writeFile } from 'node:fs/promises'
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, exportPKCS8, generateKeyPair, importJWK, importPKCS8, importSPKI, jwtVerify, SignJWT } from 'jose'
import { AccessConfigError, AuthenticationError } from './errors.ts'
import type { CryptoKey, JSONWebKeySet, JWK, JWTPayload, JWTVerifyGetKey } from 'jose'

export interface JwtInit {
  /** This node's signing key, PKCS#8 PEM; made on first use, readable by its owner only. */
  keyFile: string
  issuer: string
  audience: string
  /** How long a token issued here is valid. */
  expirySeconds: number
  /** Public keys of other issuers, as SPKI PEM texts. */
  pems?: string[]
  /** Key sets of other issuers, as JWKS documents. */
  jwks?: JSONWebKeySet[]
}

export interface VerifiedToken {
  subject: string
  /** From the `permissions` claim, or a space-separated `scope`. */
  permissions: string[]
  /** The key that signed it, when the token names one. */
  kid?: string
  /** Seconds since the epoch. */
  expiresAt: number
}

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA']
/** Verified tokens are remembered, so that a client sending one per request does not pay a signature check each time. */
const CACHE_SIZE = 1000

export class JwtAuthority {
  readonly kid: string
  /** The public half of this node's key, with its kid: what the cluster publishes. */
  readonly publicJwk: JWK
  readonly #private: CryptoKey
  readonly #public: CryptoKey
  readonly #init: JwtInit
  readonly #pems: CryptoKey[]
  readonly #jwks: JWTVerifyGetKey[]
  readonly #cache = new Map<string, VerifiedToken>()

  private constructor (init: JwtInit, keys: { private: CryptoKey, public: CryptoKey, jwk: JWK, kid: string }, pems: CryptoKey[]) {
    this.#init = init
    this.#private = keys.private
    this.#public = keys.public
    this.publicJwk = keys.jwk
    this.kid = keys.kid
    this.#pems = pems
    this.#jwks = (init.jwks ?? []).map(set => createLocalJWKSet(set))
  }

  static async open (init: JwtInit): Promise<JwtAuthority> {
    let privateKey: CryptoKey
    try {
      privateKey = await importPKCS8(await readFile(init.keyFile, 'utf8'), 'RS256', { extractable: true })
    } catch (err: any) {
      if (err.code !== 'ENOENT') throw new AccessConfigError(`the JWT signing key cannot be read: ${err.message}`)
      privateKey = (await generateKeyPair('RS256', { modulusLength: 2048, extractable: true })).privateKey
      const tmp = `${init.keyFile}.tmp`
      await writeFile(tmp, await exportPKCS8(privateKey), { mode: 0o600 })
      await chmod(tmp, 0o600)
      await rename(tmp, init.keyFile)
    }
    const full = await exportJWK(privateKey)
    const jwk: JWK = { kty: full.kty, n: full.n, e: full.e, alg: 'RS256', use: 'sig' }
    jwk.kid = await calculateJwkThumbprint(jwk)
    const publicKey = await importJWK(jwk, 'RS256') as CryptoKey
    const pems = await Promise.all((init.pems ?? []).map(async (pem, i) => {
      try {
        return await importSPKI(pem, 'RS256')
      } catch (err: any) {
        throw new AccessConfigError(`auth.jwt.public_keys[${i}] is not an RSA public key in PEM: ${err.message}`)
      }
    }))
    return new JwtAuthority(init, { private: privateKey, public: publicKey, jwk, kid: jwk.kid }, pems)
  }

  /** A token for `subject` with `permissions`, signed by this node. */
  async issue (subject: string, permissions: string[]): Promise<{ token: string, expiresAt: number }> {
    const now = Math.floor(Date.now() / 1000)
    const expiresAt = now + this.#init.expirySeconds
    const token = await new SignJWT({ permissions })
      .setProtectedHeader({ alg: 'RS256', kid: this.kid, typ: 'JWT' })
      .setSubject(subject)
      .setIssuer(this.#init.issuer)
      .setAudience(this.#init.audience)
      .setIssuedAt(now)
      .setExpirationTime(expiresAt)
      .sign(this.#private)
    return { token, expiresAt }
  }

  /**
   * Checks a token's signature, algorithm, expiry, audience and issuer.
   * `clusterKey` finds the public key of another node of the cluster by kid.
   */
  async verify (token: string, clusterKey: (kid: string) => JWK | undefined): Promise<VerifiedToken> {
    const cached = this.#cache.get(token)
    if (cached != null && cached.expiresAt > Date.now() / 1000) return cached
    const options = { algorithms: ALGORITHMS, issuer: this.#init.issuer, audience: this.#init.audience }
    let payload: JWTPayload | undefined
    let kid: string | undefined
    let lastError: unknown
    for (const key of this.#keysFor(clusterKey)) {
      try {
        const verified = await jwtVerify(token, key as JWTVerifyGetKey, options)
        payload = verified.payload
        kid = verified.protectedHeader.kid
        break
      } catch (err: any) {
        lastError = err
        // A token that is expired, or for someone else, is that whatever key checks it.
        if (err.code === 'ERR_JWT_EXPIRED' || err.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' || err.code === 'ERR_JOSE_ALG_NOT_ALLOWED' || err.code === 'ERR_JWS_INVALID' || err.code === 'ERR_JWT_INVALID') break
      }
    }
    if (payload == null) throw new AuthenticationError(`invalid token: ${tokenProblem(lastError)}`)
    if (typeof payload.sub !== 'string' || payload.sub === '' || typeof payload.exp !== 'number') throw new AuthenticationError('invalid token: it names no subject or no expiry')
    const verified: VerifiedToken = { subject: payload.sub, permissions: permissionsOf(payload), kid, expiresAt: payload.exp }
    if (this.#cache.size >= CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value as string)
    this.#cache.set(token, verified)
    return verified
  }

  /** The keys to try: this node's and the cluster's by kid, then the configured ones. */
  * #keysFor (clusterKey: (kid: string) => JWK | undefined): Iterable<JWTVerifyGetKey | CryptoKey> {
    yield async (header) => {
      if (header.kid === this.kid) return this.#public
      const jwk = header.kid == null ? undefined : clusterKey(header.kid)
      if (jwk == null) throw Object.assign(new Error('no key of this cluster has that kid'), { code: 'ERR_JWKS_NO_MATCHING_KEY' })
      return importJWK(jwk, header.alg) as Promise<CryptoKey>
    }
    yield * this.#jwks
    yield * this.#pems
  }
}

function permissionsOf (payload: JWTPayload): string[] {
  if (Array.isArray(payload.permissions) && payload.permissions.every(p => typeof p === 'string')) return payload.permissions
  if (typeof payload.scope === 'string') return payload.scope.split(' ').filter(Boolean)
  return []
}

/** What was wrong with a token, in words a client can act on and that leak nothing of the keys. */
function tokenProblem (err: any): string {
  switch (err?.code) {
    case 'ERR_JWT_EXPIRED': return 'it has expired'
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': return `its ${String(err.claim)} claim is not accepted here`
    case 'ERR_JOSE_ALG_NOT_ALLOWED': return 'its algorithm is not accepted (only asymmetric signatures are)'
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED': return 'its signature does not verify'
    case 'ERR_JWKS_NO_MATCHING_KEY': return 'no key known here signed it'
    default: return 'it is not a JWT this node can read'
  }
}
