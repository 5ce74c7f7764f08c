import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { defaultAccessConfig } from '../src/config.ts'
import { hashPassword } from '../src/secrets.ts'
import { AccessService } from '../src/service.ts'
import type { StoredCredential } from '../src/credentials.ts'
import type { CredentialStore } from '../src/service.ts'

/**
 * A cluster's credential store on a node that lags: credentials committed
 * elsewhere arrive only when it is asked to catch up, as a Raft read makes a
 * follower apply what the leader committed.
 */
function laggingStore (committed: StoredCredential[]): CredentialStore & { catchUps: number } {
  const applied = new Map<string, StoredCredential>()
  return {
    catchUps: 0,
    bySecretHash: () => undefined,
    user: (name) => applied.get(name),
    count: () => applied.size,
    list: () => [...applied.values()],
    signingKey: () => undefined,
    putCredential: async () => {},
    removeCredential: async () => {},
    putSigningKey: async () => {},
    async caughtUp () {
      this.catchUps++
      for (const c of committed) applied.set(c.name, c)
    }
  }
}

describe('the login', () => {
  let repo: string
  before(async () => { repo = await mkdtemp(join(tmpdir(), 'access-login-')) })
  after(async () => { await rm(repo, { recursive: true, force: true }) })

  it('takes a user made on another node a moment ago, once this node caught up, and refuses an unknown one after it too', async () => {
    const grace: StoredCredential = { id: 'u1', kind: 'user', name: 'grace', permissions: ['models:read'], hash: await hashPassword('lovelace-engine'), createdAt: new Date().toISOString() }
    const store = laggingStore([grace])
    const access = new AccessService({ store }, { config: defaultAccessConfig(), repo, loopback: true })
    await access.start()
    try {
      const { token, permissions } = await access.login('grace', 'lovelace-engine')
      assert.ok(token.length > 0)
      assert.deepEqual(permissions, ['models:read'])
      assert.equal(store.catchUps, 1)
      await assert.rejects(access.login('nobody', 'lovelace-engine'), { name: 'AuthenticationError' })
      // A known user with a wrong password costs no Raft read.
      await assert.rejects(access.login('grace', 'wrong-password'), { name: 'AuthenticationError' })
      assert.equal(store.catchUps, 2)
    } finally {
      await access.stop()
    }
  })
})
