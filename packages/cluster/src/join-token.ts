/**
 * Join tokens: the credential that lets a node into a cluster when holding
 * the private-network key does not (an open swarm). A token names the
 * cluster, the role it grants and when it expires, carries a random nonce,
 * and is signed with the peer key of the trusted member that made it, so
 * any member that trusts the issuer checks it against the public key inside
 * the issuer's peer id. Nothing secret is shared between members: an HMAC
 * under a cluster secret, as IPFS Cluster uses, would need that secret on
 * every member that admits, and anyone holding it could mint tokens.
 *
 * Form: `ndjt1.<claims>.<signature>`, both base64url; the claims are JSON.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { JoinError } from './errors.ts'
import type { PrivateKey } from '@libp2p/interface'

export type JoinRole = 'voter' | 'learner'

export interface JoinTokenClaims {
  /** The cluster's founder: a token of one cluster is refused by another. */
  cluster: string
  /** Peer id of the member that signed it. */
  issuer: string
  /** `voter` makes the node trusted: it may be promoted to voter and call admin operations. */
  role: JoinRole
  /** Milliseconds since the epoch. */
  expires: number
  nonce: string
}

const PREFIX = 'ndjt1'
/** What the signature covers before the claims, so that it cannot pass for anything else the peer key signs (noise handshakes, pubsub messages, peer records). */
const DOMAIN = new TextEncoder().encode('node-daemon cluster join token v1\n')
/** Far longer than a real token (about 300 characters); longer input is refused before decoding. */
const MAX_TOKEN_LENGTH = 1024
const ROLES: readonly JoinRole[] = ['voter', 'learner']

function signedBytes (claims: Uint8Array): Uint8Array {
  const out = new Uint8Array(DOMAIN.byteLength + claims.byteLength)
  out.set(DOMAIN)
  out.set(claims, DOMAIN.byteLength)
  return out
}

export async function signJoinToken (key: PrivateKey, claims: JoinTokenClaims): Promise<string> {
  const bytes = new TextEncoder().encode(JSON.stringify(claims))
  const signature = await key.sign(signedBytes(bytes))
  return `${PREFIX}.${Buffer.from(bytes).toString('base64url')}.${Buffer.from(signature).toString('base64url')}`
}

/** The claims of a well-formed token, unchecked; JoinError for anything else. */
export function readJoinToken (token: string): { claims: JoinTokenClaims, bytes: Uint8Array, signature: Uint8Array } {
  const parts = token.length > MAX_TOKEN_LENGTH ? [] : token.trim().split('.')
  if (parts.length !== 3 || parts[0] !== PREFIX) throw new JoinError(`not a join token: expected ${PREFIX}.<claims>.<signature>`)
  const bytes = Buffer.from(parts[1], 'base64url')
  let claims: JoinTokenClaims
  try {
    claims = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new JoinError('not a join token: its claims are not JSON')
  }
  if (typeof claims !== 'object' || claims == null || typeof claims.cluster !== 'string' || typeof claims.issuer !== 'string' ||
    !ROLES.includes(claims.role) || !Number.isSafeInteger(claims.expires) || typeof claims.nonce !== 'string') {
    throw new JoinError('not a join token: its claims lack cluster, issuer, role, expires or nonce')
  }
  return { claims, bytes, signature: Buffer.from(parts[2], 'base64url') }
}

export interface JoinTokenCheck {
  /** The cluster the token must name. */
  cluster: string
  now: number
  /** Whether the checking member trusts the issuer. */
  trusts: (issuer: string) => boolean
}

/** The claims of a token that is genuine, of this cluster, from a trusted issuer and not expired; JoinError saying which it is not. */
export async function verifyJoinToken (token: string, check: JoinTokenCheck): Promise<JoinTokenClaims> {
  const { claims, bytes, signature } = readJoinToken(token)
  let genuine = false
  try {
    const key = peerIdFromString(claims.issuer).publicKey
    genuine = key != null && await key.verify(signedBytes(bytes), signature)
  } catch {
    genuine = false
  }
  if (!genuine) throw new JoinError('the join token is forged: its signature is not its issuer\'s')
  if (claims.cluster !== check.cluster) throw new JoinError('the join token is for another cluster')
  if (!check.trusts(claims.issuer)) throw new JoinError(`the join token was made by ${claims.issuer}, which is not a trusted member of this cluster`)
  if (claims.expires <= check.now) throw new JoinError(`the join token expired at ${new Date(claims.expires).toISOString()}`)
  return claims
}
