import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encodeInvite, readInvite, readJoinToken, signJoinToken, verifyJoinToken } from '../src/join-token.ts'
import type { JoinTokenCheck, JoinTokenClaims } from '../src/join-token.ts'
import type { PrivateKey } from '@libp2p/interface'

describe('join tokens', () => {
  let founder: PrivateKey
  let stranger: PrivateKey
  let founderId: string
  let claims: JoinTokenClaims
  let check: JoinTokenCheck
  const now = Date.UTC(2025, 0, 1)

  before(async () => {
    founder = await generateKeyPair('Ed25519')
    stranger = await generateKeyPair('Ed25519')
    founderId = peerIdFromPrivateKey(founder).toString()
    claims = { cluster: founderId, issuer: founderId, role: 'voter', expires: now + 60_000, nonce: 'n0' }
    check = { cluster: founderId, now, trusts: id => id === founderId }
  })

  /** The token with its claims part replaced, the signature kept. */
  const withClaims = (token: string, changed: object): string => {
    const [prefix, , signature] = token.split('.')
    return [prefix, Buffer.from(JSON.stringify(changed)).toString('base64url'), signature].join('.')
  }

  it('verifies a token of this cluster from a trusted issuer until it expires', async () => {
    const token = await signJoinToken(founder, claims)
    assert.match(token, /^ndjt1\.[\w-]+\.[\w-]+$/)
    assert.deepEqual(await verifyJoinToken(token, check), claims)
    assert.deepEqual(readJoinToken(token).claims, claims)
    await assert.rejects(verifyJoinToken(token, { ...check, now: claims.expires }), { name: 'JoinError', message: /expired at 2025-01-01T00:01:00.000Z/ })
  })

  it('refuses a token signed by another key than its issuer\'s, or with claims changed after signing', async () => {
    const forged = await signJoinToken(stranger, claims)
    await assert.rejects(verifyJoinToken(forged, check), { name: 'JoinError', message: /forged/ })
    const learner = await signJoinToken(founder, { ...claims, role: 'learner' })
    await assert.rejects(verifyJoinToken(withClaims(learner, { ...claims, role: 'voter' }), check), { name: 'JoinError', message: /forged/ }, 'a learner token made a voter one')
    await assert.rejects(verifyJoinToken(withClaims(learner, { ...claims, role: 'learner', expires: claims.expires + 3_600_000 }), check), { name: 'JoinError', message: /forged/ }, 'an expiry moved')
    const strangerId = peerIdFromPrivateKey(stranger).toString()
    // a genuine signature, but of a peer the cluster does not trust
    const selfMade = await signJoinToken(stranger, { ...claims, issuer: strangerId })
    await assert.rejects(verifyJoinToken(selfMade, check), { name: 'JoinError', message: new RegExp(`made by ${strangerId}, which is not a trusted member`) })
  })

  it('refuses a token of another cluster', async () => {
    const token = await signJoinToken(founder, { ...claims, cluster: peerIdFromPrivateKey(stranger).toString() })
    await assert.rejects(verifyJoinToken(token, check), { name: 'JoinError', message: /another cluster/ })
  })

  it('refuses what is not a token', async () => {
    const token = await signJoinToken(founder, claims)
    for (const bad of ['', 'ndjt1', 'ndjt1..', `ndjt2${token.slice(5)}`, `${token}.x`, withClaims(token, { ...claims, role: 'admin' }), withClaims(token, { ...claims, expires: 'soon' }),
      `ndjt1.${Buffer.from('not json').toString('base64url')}.AA`, `ndjt1.${'A'.repeat(2000)}.AA`, withClaims(token, { ...claims, issuer: 'not-a-peer-id' })]) {
      await assert.rejects(verifyJoinToken(bad, check), { name: 'JoinError' }, bad.slice(0, 40))
    }
  })

  it('reads an invite: the members\' addresses, the key and the admission with its claims; anything else is a JoinError', async () => {
    const admission = await signJoinToken(founder, claims)
    const addrs = [`/ip4/192.168.1.10/tcp/4001/p2p/${founderId}`, `/ip4/127.0.0.1/tcp/4001/p2p/${founderId}`]
    const key = 'ab'.repeat(32)
    const invite = encodeInvite({ addrs, admission, key })
    assert.match(invite, /^ndji1\.[\w-]+$/)
    assert.deepEqual(readInvite(invite), { addrs, admission, key, claims })
    assert.equal(readInvite(encodeInvite({ addrs, admission })).key, undefined, 'an open swarm has no key')
    const encode = (value: unknown): string => `ndji1.${Buffer.from(JSON.stringify(value)).toString('base64url')}`
    for (const bad of ['', admission, 'ndji1', `ndji1.${Buffer.from('not json').toString('base64url')}`, `${invite}.x`, `ndji1.${'A'.repeat(9000)}`,
      encode({ addrs: [], admission, key }), encode({ addrs, key }), encode({ addrs, admission, key: 'short' }), encode({ addrs, admission, key: 'AB'.repeat(32) }),
      encode({ addrs: ['/ip4/1.2.3.4/tcp/1'], admission }), encode({ addrs: ['not a multiaddr'], admission }), encode({ addrs: [42], admission }),
      encode({ addrs, admission: 'ndjt1.x.y' })]) {
      assert.throws(() => readInvite(bad), { name: 'JoinError', message: /^not a join token/ }, bad.slice(0, 60))
    }
  })
})
