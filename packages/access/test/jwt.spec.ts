import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { JwtAuthority } from '../src/jwt.ts'
import type { JWK } from 'jose'

const ISSUER = 'node-daemon'
const AUDIENCE = 'node-daemon'

describe('JWTs', () => {
  let dir: string
  let authority: JwtAuthority
  const none = (): undefined => undefined

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jwt-'))
    authority = await JwtAuthority.open({ keyFile: join(dir, 'jwt.key'), issuer: ISSUER, audience: AUDIENCE, expirySeconds: 3600 })
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('issues RS256 tokens that verify, with a key kept in the repo for its owner only', async () => {
    const { token, expiresAt } = await authority.issue('alice', ['models:read'])
    const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString())
    assert.deepEqual([header.alg, header.kid], ['RS256', authority.kid])
    assert.ok(expiresAt > Date.now() / 1000 + 3500)
    const verified = await authority.verify(token, none)
    assert.deepEqual([verified.subject, verified.permissions, verified.kid], ['alice', ['models:read'], authority.kid])
    assert.equal((await stat(join(dir, 'jwt.key'))).mode & 0o777, 0o600)
    const again = await JwtAuthority.open({ keyFile: join(dir, 'jwt.key'), issuer: ISSUER, audience: AUDIENCE, expirySeconds: 3600 })
    assert.equal(again.kid, authority.kid, 'the same key after a restart')
  })

  it("verifies another cluster node's token by the public key the cluster published", async () => {
    const other = await JwtAuthority.open({ keyFile: join(dir, 'other.key'), issuer: ISSUER, audience: AUDIENCE, expirySeconds: 60 })
    const { token } = await other.issue('bob', ['*'])
    await assert.rejects(authority.verify(token, none), { name: 'AuthenticationError', message: /no key known here/ })
    const verified = await authority.verify(token, kid => kid === other.kid ? other.publicJwk : undefined)
    assert.equal(verified.subject, 'bob')
  })

  it('refuses alg none, HS256 keyed with the public key, a changed payload, expired tokens and wrong audiences or issuers', async () => {
    const claims = { sub: 'mallory', permissions: ['*'], iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600 }
    const unsigned = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url.encode(JSON.stringify(claims))}.`
    await assert.rejects(authority.verify(unsigned, none), { name: 'AuthenticationError' })
    // Algorithm confusion: an HMAC whose secret is the verifier's public key.
    const confused = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: authority.kid }).sign(new TextEncoder().encode(JSON.stringify(authority.publicJwk)))
    await assert.rejects(authority.verify(confused, none), { name: 'AuthenticationError', message: /algorithm/ })
    const { token } = await authority.issue('alice', ['models:read'])
    const [head, , signature] = token.split('.')
    const forged = `${head}.${base64url.encode(JSON.stringify({ ...claims, sub: 'alice' }))}.${signature}`
    await assert.rejects(authority.verify(forged, none), { name: 'AuthenticationError', message: /signature/ })
    const shortLived = await JwtAuthority.open({ keyFile: join(dir, 'jwt.key'), issuer: ISSUER, audience: AUDIENCE, expirySeconds: -10 })
    await assert.rejects(authority.verify((await shortLived.issue('alice', [])).token, none), { name: 'AuthenticationError', message: /expired/ })
    for (const [issuer, audience] of [['someone-else', AUDIENCE], [ISSUER, 'another-service']]) {
      const foreign = await JwtAuthority.open({ keyFile: join(dir, 'jwt.key'), issuer, audience, expirySeconds: 60 })
      await assert.rejects(authority.verify((await foreign.issue('alice', [])).token, none), { name: 'AuthenticationError', message: /claim is not accepted/ })
    }
  })

  it('verifies tokens issued elsewhere against configured PEM keys and JWKS, with their scopes', async () => {
    const pemIssuer = await generateKeyPair('RS256', { extractable: true })
    const jwksIssuer = await generateKeyPair('ES256', { extractable: true })
    const jwk: JWK = { ...await exportJWK(jwksIssuer.publicKey), kid: 'idp-1', alg: 'ES256' }
    const verifier = await JwtAuthority.open({
      keyFile: join(dir, 'jwt.key'),
      issuer: ISSUER,
      audience: AUDIENCE,
      expirySeconds: 60,
      pems: [await exportSPKI(pemIssuer.publicKey)],
      jwks: [{ keys: [jwk] }]
    })
    const sign = async (alg: string, key: CryptoKey, payload: object, kid?: string): Promise<string> => new SignJWT(payload as any)
      .setProtectedHeader({ alg, kid }).setSubject('ci').setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').sign(key)
    const fromPem = await verifier.verify(await sign('RS256', pemIssuer.privateKey, { scope: 'models:read inference' }), none)
    assert.deepEqual(fromPem.permissions, ['models:read', 'inference'])
    const fromJwks = await verifier.verify(await sign('ES256', jwksIssuer.privateKey, { permissions: ['tasks'] }, 'idp-1'), none)
    assert.deepEqual(fromJwks.permissions, ['tasks'])
    const stranger = await generateKeyPair('RS256')
    await assert.rejects(verifier.verify(await sign('RS256', stranger.privateKey, {}), none), { name: 'AuthenticationError' })
  })
})
