/**
 * In a real browser (Debian's Chromium, headless, driven by playwright-core):
 * a page of another origin cannot drive a node's loopback API with fetch, a
 * form POST, a text/plain POST or a WebSocket; a page of a configured origin
 * can; and a DNS-rebinding Host is refused.
 */
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { launchChromium, skipWithoutChromium as skip } from '../helpers/browser.ts'
import { startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { Server } from 'node:http'
import type { Browser } from 'playwright-core'

/** Serves one HTML page on loopback: the site of another origin. */
async function site (html: (api: string) => string, api: string): Promise<{ server: Server, url: string }> {
  const server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end(html(api)) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address() as { port: number }
  return { server, url: `http://127.0.0.1:${address.port}/` }
}

const ATTACKS = (api: string): string => `<!doctype html><body><script>
  window.results = {}
  const wait = (ms) => new Promise(resolve => setTimeout(resolve, ms))
  window.run = async () => {
    try { await fetch('${api}/api/v0/key/gen?arg=by-fetch', { method: 'POST' }); window.results.fetch = 'sent' } catch (e) { window.results.fetch = 'blocked' }
    try { await fetch('${api}/api/v0/stream/upload', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'planted by a page' }); window.results.text = 'sent' } catch (e) { window.results.text = 'blocked' }
    window.results.ws = await new Promise(resolve => {
      const ws = new WebSocket('${api.replace('http', 'ws')}/ws/v0/stream/media')
      ws.onopen = () => { ws.close(); resolve('open') }
      ws.onerror = () => resolve('refused')
    })
    const frame = document.createElement('iframe')
    frame.name = 'sink'
    document.body.appendChild(frame)
    const form = document.createElement('form')
    form.method = 'POST'
    form.enctype = 'text/plain'
    form.target = 'sink'
    form.action = '${api}/api/v0/key/gen?arg=by-form'
    document.body.appendChild(form)
    form.submit()
    await wait(1500)
    return window.results
  }
</script></body>`

const READER = (api: string): string => `<!doctype html><body><script>
  window.run = async () => {
    const res = await fetch('${api}/api/v0/key/list', { method: 'POST' })
    return { status: res.status, keys: (await res.json()).Keys.map(k => k.Name), requestId: res.headers.get('x-request-id') }
  }
</script></body>`

describe('the API in a real browser', { skip, timeout: 180_000 }, () => {
  let d: TestDaemon
  let browser: Browser
  const servers: Server[] = []
  let allowed: { server: Server, url: string }

  before(async () => {
    // The allowed site's origin is only known once it listens: it is served first, and the daemon told of it.
    allowed = await site(api => READER(api), 'http://placeholder')
    servers.push(allowed.server)
    const origin = allowed.url.replace(/\/$/, '')
    d = await startTestDaemon({ access: { cors: { origins: [origin], methods: ['GET', 'POST'], headers: ['Content-Type'] } } })
    allowed.server.removeAllListeners('request')
    allowed.server.on('request', (_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end(READER(d.url)) })
    browser = await launchChromium(['--host-resolver-rules=MAP rebind.test 127.0.0.1'])
  })

  after(async () => {
    await browser?.close()
    for (const server of servers) {
      server.closeAllConnections()
      server.close()
    }
    await d?.cleanup()
  })

  const keys = async (): Promise<string[]> => ((await (await fetch(`${d.url}/api/v0/key/list`, { method: 'POST' })).json()) as { Keys: Array<{ Name: string }> }).Keys.map(k => k.Name)

  it('refuses a page of another origin: fetch, a text/plain POST, a form POST and a WebSocket', async () => {
    const evil = await site(ATTACKS, d.url)
    servers.push(evil.server)
    const page = await browser.newPage()
    await page.goto(evil.url)
    const results = await page.evaluate(async () => (window as any).run())
    assert.equal(results.ws, 'refused')
    const names = await keys()
    assert.ok(!names.includes('by-fetch') && !names.includes('by-form'), `keys made by the page: ${names.join(', ')}`)
    const pins = await (await fetch(`${d.url}/api/v0/pin/ls`, { method: 'POST' })).json() as { Keys: Record<string, unknown> }
    assert.deepEqual(Object.keys(pins.Keys), [], 'nothing the page uploaded was pinned')
    await page.close()
  })

  it('lets a configured origin use the API and read its answers', async () => {
    const page = await browser.newPage()
    await page.goto(allowed.url)
    const answer = await page.evaluate(async () => (window as any).run())
    assert.equal(answer.status, 200)
    assert.ok(answer.keys.includes('self'))
    assert.match(answer.requestId, /^[0-9a-f-]{36}$/, 'exposed headers are readable')
    await page.close()
  })

  it('refuses a DNS-rebinding Host', async () => {
    const page = await browser.newPage()
    const port = new URL(d.url).port
    const res = await page.goto(`http://rebind.test:${port}/api/tags`)
    assert.equal(res?.status(), 403)
    assert.match(await page.content(), /not a loopback name/)
    await page.close()
  })
})
