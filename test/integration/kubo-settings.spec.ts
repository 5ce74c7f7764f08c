import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { create } from 'kubo-rpc-client'
import { TEST_SECRET } from '../helpers/process.ts'
import { rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

const ADMIN_TOKEN = 'an-admin-token-never-shown'
/** The admin token turns credentials on, and these routes need the admin's permission anyway. */
const auth = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }

describe('config, commands and shutdown', { timeout: 120_000 }, () => {
  let d: TestDaemon
  let client: KuboRPCClient

  before(async () => {
    d = await startTestDaemon({ api: { adminToken: ADMIN_TOKEN } })
    client = create({ url: `${d.url}/api/v0`, timeout: 30_000, ...auth })
  })

  after(async () => {
    await d?.cleanup()
  })

  it('shows the settings with every secret redacted', async () => {
    assert.equal((await rpc(d, 'config/show')).status, 401)
    const res = await rpc(d, 'config/show', {}, auth)
    assert.equal(res.status, 200)
    const text = await res.text()
    for (const secret of [ADMIN_TOKEN, TEST_SECRET]) assert.equal(text.includes(secret), false, secret)
    const shown = JSON.parse(text)
    assert.equal(shown.api.adminToken, '<redacted>')
    assert.equal(shown.cluster.secret, '<redacted>')
    assert.equal(shown.content.storageMax, d.node.config.content.storageMax)
  })

  it('gets one setting by its dotted key, and refuses to set one', async () => {
    assert.equal(await client.config.get('content.storageMax'), d.node.config.content.storageMax)
    assert.equal(await client.config.get('api.adminToken'), '<redacted>')
    await assert.rejects(client.config.get('content.nothing'), /no setting/)
    await assert.rejects(client.config.set('content.storageMax', 5), /restart/)
  })

  it('lists the commands it serves, with their options', async () => {
    // kubo-rpc-client types the answer as a list of names; Kubo's is this tree.
    const tree = await client.commands() as any
    const files = tree.Subcommands.find((c: { Name: string }) => c.Name === 'files')
    const write = files?.Subcommands.find((c: { Name: string }) => c.Name === 'write')
    assert.ok(write?.Options.some((o: { Names: string[] }) => o.Names.includes('offset')))
    assert.ok(tree.Subcommands.some((c: { Name: string }) => c.Name === 'shutdown'))
    // Kubo's root holds the global options; timeout is the one every route here takes.
    assert.deepEqual([tree.Name, tree.Options], ['ipfs', [{ Names: ['timeout'] }]])
    const diag = tree.Subcommands.find((c: { Name: string }) => c.Name === 'diag')
    assert.deepEqual(diag?.Subcommands.map((c: { Name: string }) => c.Name).sort(), ['cmds', 'profile', 'sys'])
  })

  it('stops the daemon on shutdown, once it has answered', async () => {
    const res = await rpc(d, 'shutdown', {}, auth)
    assert.equal(res.status, 200)
    await d.stoppedByApi
    await assert.rejects(fetch(`${d.url}/api/v0/version`, { method: 'POST', signal: AbortSignal.timeout(5000) }))
  })
})
