/**
 * The GraphQL playground in a real browser (Debian's Chromium, headless,
 * driven by playwright-core) against an in-process node that needs a
 * credential: it runs document 000's example query, follows a subscription
 * as content is added, and reads the schema, with every request the page
 * makes going to the node itself.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { COOKIE_FILE } from '@node-daemon/access'
import { launchChromium, skipWithoutChromium as skip } from '../helpers/browser.ts'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { Browser, Page } from 'playwright-core'

describe('the GraphQL playground in a real browser', { skip, timeout: 120_000 }, () => {
  let d: TestDaemon
  let browser: Browser
  let page: Page
  let key: string
  const requested: string[] = []
  const pageErrors: string[] = []

  before(async () => {
    d = await startTestDaemon()
    const admin = { authorization: `Bearer ${(await readFile(join(d.repo, COOKIE_FILE), 'utf8')).trim()}` }
    // Once a key exists the node needs credentials: the page must send the one it is given, by HTTP and WebSocket.
    const made = await fetch(`${d.url}/api/v1/auth/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'playground', permissions: ['content:read', 'content:write', 'pins', 'swarm'] }), signal: AbortSignal.timeout(30_000) })
    key = (await made.json() as { key: string }).key
    browser = await launchChromium()
    page = await browser.newPage()
    page.on('request', request => { requested.push(request.url()) })
    page.on('pageerror', err => { pageErrors.push(err.message) })
    page.on('console', message => { if (/Content Security Policy/.test(message.text())) pageErrors.push(message.text()) })
    await page.goto(`${d.url}/api/v0/graphql/playground`)
    await page.fill('#credential', key)
  })

  after(async () => {
    await browser?.close()
    await d?.cleanup()
  })

  it("runs document 000's example query, which it opens with", async () => {
    assert.match(await page.inputValue('#query'), /pins \{\s+cid\s+type\s+size/)
    await page.click('#run')
    await page.waitForFunction(() => document.getElementById('result')?.textContent?.includes('"node"'), undefined, { timeout: 30_000 })
    const result = JSON.parse(await page.textContent('#result') ?? '')
    assert.equal(result.errors, undefined, JSON.stringify(result.errors))
    assert.equal(result.data.node.id, d.node.peerId)
    assert.ok(Array.isArray(result.data.pins))
  })

  it('follows a subscription as the node adds content, until it is stopped', async () => {
    await page.fill('#query', 'subscription { events(names: ["add"]) { event data } }')
    await page.keyboard.press('Control+Enter')
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'subscribed', undefined, { timeout: 30_000 })
    const added = await rpc(d, 'add', {}, { body: formOf([{ path: 'seen-by-the-playground', content: 'a file the playground sees added' }]), headers: { 'x-api-key': key } })
    assert.equal(added.status, 200)
    const cid = (await added.json() as { Hash: string }).Hash
    await page.waitForFunction((cid) => document.getElementById('result')?.textContent?.includes(cid), cid, { timeout: 30_000 })
    assert.match(await page.textContent('#result') ?? '', /"event": "add"/)
    await page.click('#stop')
    assert.equal(await page.isDisabled('#stop'), true)
  })

  it('reads the schema by introspection', async () => {
    await page.click('#schema')
    await page.waitForFunction(() => document.getElementById('types')?.textContent?.includes('type Query'), undefined, { timeout: 30_000 })
    const types = await page.textContent('#types') ?? ''
    assert.match(types, /^type Query \{/)
    assert.match(types, /datasets: \[AIDataset!\]!/)
    assert.match(types, /trainingProgress\(session_id: String\): TrainingStep!/)
  })

  it('asked nothing of any other host, and broke no rule of its Content-Security-Policy', () => {
    const origin = new URL(d.url)
    assert.deepEqual(requested.filter(url => new URL(url).host !== origin.host), [])
    assert.deepEqual(pageErrors, [])
  })
})
