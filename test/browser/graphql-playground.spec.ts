/**
 * GraphiQL at /api/v0/graphql/playground in a real browser (Debian's
 * Chromium, headless, driven by playwright-core) against an in-process node
 * that needs a credential, given in GraphiQL's header editor: it runs
 * document 000's example query, follows a subscription as content is added,
 * and shows the schema, with every request the page makes going to the node
 * itself and nothing refused by its Content-Security-Policy.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { COOKIE_FILE } from '@node-daemon/access'
import { launchChromium, skipWithoutChromium as skip } from '../helpers/browser.ts'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { Browser, Page } from 'playwright-core'

/** What the CodeMirror editor under `selector` holds, or, given `value`, sets it as typing would. */
async function editor (page: Page, selector: string, value?: string): Promise<string> {
  return page.evaluate(([selector, value]) => {
    const cm = (document.querySelector(`${selector} .CodeMirror`) as unknown as { CodeMirror: { getValue: () => string, setValue: (v: string) => void } }).CodeMirror
    if (value != null) cm.setValue(value)
    return cm.getValue()
  }, [selector, value] as const)
}

const QUERY = '.graphiql-query-editor'
const RESPONSE = '.graphiql-response'

describe('GraphiQL in a real browser', { skip, timeout: 180_000 }, () => {
  let d: TestDaemon
  let browser: Browser
  let page: Page
  let key: string
  const requested: string[] = []
  const sockets: string[] = []
  let socketsClosed = 0
  const problems: string[] = []

  before(async () => {
    d = await startTestDaemon()
    const admin = { authorization: `Bearer ${(await readFile(join(d.repo, COOKIE_FILE), 'utf8')).trim()}` }
    // Once a key exists the node needs credentials: the page must send the one it is given, by HTTP and WebSocket.
    const made = await fetch(`${d.url}/api/v1/auth/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'playground', permissions: ['content:read', 'content:write', 'pins', 'swarm'] }), signal: AbortSignal.timeout(30_000) })
    key = (await made.json() as { key: string }).key
    browser = await launchChromium()
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    page.on('request', request => { requested.push(request.url()) })
    page.on('websocket', ws => {
      sockets.push(ws.url())
      ws.on('close', () => { socketsClosed++ })
    })
    page.on('requestfailed', request => { problems.push(`${request.url()} failed: ${request.failure()?.errorText ?? ''}`) })
    page.on('response', response => { if (response.status() >= 400) problems.push(`${response.url()}: HTTP ${response.status()}`) })
    page.on('pageerror', err => { problems.push(err.message) })
    page.on('console', message => { if (/Content Security Policy|CSP/.test(message.text())) problems.push(message.text().slice(0, 200)) })
    // Each violation of the page's policy, whether or not Chromium also logs it.
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', e => { console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`) })
    })
    await page.goto(`${d.url}/api/v0/graphql/playground`)
    await page.waitForSelector(`${QUERY} .CodeMirror`, { timeout: 60_000 })
    // The credential goes where GraphiQL takes headers.
    await page.click('.graphiql-editor-tools button[data-name="headers"]')
    await editor(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)', JSON.stringify({ Authorization: `Bearer ${key}` }))
  })

  after(async () => {
    await browser?.close()
    await d?.cleanup()
  })

  it("runs document 000's example query, which it opens with", async () => {
    assert.match(await editor(page, QUERY), /pins \{\s+cid\s+type\s+size/)
    await page.click('.graphiql-execute-button')
    await page.waitForFunction((sel) => (document.querySelector(`${sel} .CodeMirror`) as any)?.CodeMirror.getValue().includes('"node"'), RESPONSE, { timeout: 30_000 })
    const result = JSON.parse(await editor(page, RESPONSE))
    assert.equal(result.errors, undefined, JSON.stringify(result.errors))
    assert.equal(result.data.node.id, d.node.peerId)
    assert.ok(Array.isArray(result.data.pins))
  })

  it('follows a subscription as the node adds content, over a WebSocket that carries the key, until it is stopped', async () => {
    await editor(page, QUERY, 'subscription { events(names: ["add"]) { event data } }')
    // GraphiQL parses the query 100 ms after an edit; run before that and it sends the old operation's kind.
    await page.waitForFunction((sel) => (document.querySelector(`${sel} .CodeMirror`) as any)?.CodeMirror.documentAST?.definitions[0].operation === 'subscription', QUERY, { timeout: 30_000 })
    await page.click('.graphiql-execute-button')
    await page.waitForSelector('.graphiql-execute-button[aria-label^="Stop"]', { timeout: 30_000 })
    let response = ''
    // The subscription may not have reached the node yet: add until the page shows an add it was told of, or the subscription ends.
    const cids: string[] = []
    const running = async (): Promise<boolean> => await page.$('.graphiql-execute-button[aria-label^="Stop"]') != null
    for (let i = 0; i < 30 && await running() && !cids.some(cid => response.includes(cid)); i++) {
      const added = await rpc(d, 'add', {}, { body: formOf([{ path: `seen-by-graphiql-${i}`, content: `a file GraphiQL sees added (${i})` }]), headers: { 'x-api-key': key } })
      assert.equal(added.status, 200)
      cids.push((await added.json() as { Hash: string }).Hash)
      await sleep(1000)
      response = await editor(page, RESPONSE)
    }
    response = await editor(page, RESPONSE)
    const event = JSON.parse(response)
    assert.equal(event.data?.events.event, 'add', response)
    assert.ok(cids.includes(event.data.events.data.cid), response)
    assert.deepEqual(sockets.map(url => new URL(url).searchParams.get('api_key')), [key])
    await page.click('.graphiql-execute-button')
    await page.waitForSelector('.graphiql-execute-button[aria-label^="Execute"]', { timeout: 30_000 })
    // Stopping ends the subscription, and its socket with it.
    for (let i = 0; i < 100 && socketsClosed === 0; i++) await sleep(100)
    assert.equal(socketsClosed, 1)
  })

  it('shows the schema in its documentation explorer', async () => {
    await page.click('button[aria-label="Show Documentation Explorer"]')
    await page.click('a.graphiql-doc-explorer-type-name:text-is("Query")', { timeout: 30_000 })
    await page.waitForSelector('.graphiql-doc-explorer-field-name:text-is("datasets")', { timeout: 30_000 })
  })

  it('asked nothing of any other host, and nothing failed or broke a rule of its Content-Security-Policy', () => {
    const origin = new URL(d.url)
    assert.deepEqual([...requested, ...sockets].filter(url => new URL(url).host !== origin.host), [])
    assert.ok(requested.some(url => /\/playground\/graphiql-\w+\.js$/.test(url)), 'GraphiQL came from the node')
    assert.deepEqual(problems, [])
  })
})
