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
 *
 * An invite is what `node-daemon cluster invite` prints and `start --join`
 * takes: such a token (the admission), where the cluster's members listen,
 * and the private-network key, without which a node cannot even complete a
 * handshake with them. It is a secret: it holds that key. Form:
 * `ndji1.<base64url of JSON { addrs, admission, key? }>`; no key is an open
 * swarm. It needs no signature of its own: the admission is signed, and
 * forging the rest gains nothing the holder of the key did not have.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
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

export interface Invite {
  /** Multiaddrs with /p2p/ of members that can admit, the inviting one first. */
  addrs: string[]
  /** The signed join token presented to them. */
  admission: string
  /** The private-network key as 64 hex digits; none for an open swarm. */
  key?: string
}

const INVITE_PREFIX = 'ndji1'
/** Room for the admission and a few members' addresses; longer input is refused before decoding. */
const MAX_INVITE_LENGTH = 8192

export function encodeInvite (invite: Invite): string {
  return `${INVITE_PREFIX}.${Buffer.from(JSON.stringify(invite)).toString('base64url')}`
}

/** The invite and its admission's claims, checked for form only (members check the admission); JoinError for anything else. */
export function readInvite (token: string): Invite & { claims: JoinTokenClaims } {
  const parts = token.length > MAX_INVITE_LENGTH ? [] : token.trim().split('.')
  if (parts.length !== 2 || parts[0] !== INVITE_PREFIX) throw new JoinError(`not a join token: expected ${INVITE_PREFIX}.<…>, as \`node-daemon cluster invite\` prints`)
  let invite: Invite
  try {
    invite = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
  } catch {
    throw new JoinError('not a join token: it does not decode')
  }
  if (typeof invite !== 'object' || invite == null || !Array.isArray(invite.addrs) || invite.addrs.length === 0 || typeof invite.admission !== 'string' ||
    (invite.key !== undefined && (typeof invite.key !== 'string' || !/^[0-9a-f]{64}$/.test(invite.key)))) {
    throw new JoinError('not a join token: it lacks the addresses, the admission or a well-formed key')
  }
  for (const addr of invite.addrs) {
    try {
      if (typeof addr !== 'string' || multiaddr(addr).getComponents().at(-1)?.name !== 'p2p') throw new Error('no /p2p/ peer id at its end')
    } catch (err: any) {
      throw new JoinError(`not a join token: ${JSON.stringify(addr)} is not a member's multiaddr (${err.message})`)
    }
  }
  const { claims } = readJoinToken(invite.admission)
  return { addrs: invite.addrs, admission: invite.admission, key: invite.key, claims }
}
