/**
 * The web console in a real browser (Debian's Chromium, headless, driven by
 * playwright-core) against three daemons: it shows the nodes and the leader,
 * adds files with the CIDs `add` gives, pins in the cluster until every node
 * has the pin, streams a chat, and charts a training run's falling loss.
 * Screenshots of every page go to a temporary folder, or are kept under
 * $NODE_DAEMON_SCREENSHOTS (see screenshotFolder).
 */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { launchChromium, screenshotFolder, skipWithoutChromium as skip } from '../helpers/browser.ts'
import type { ScreenshotFolder } from '../helpers/browser.ts'
import { addBytes, agreedLeader, FAST, pinStatus, ProcessCluster } from '../helpers/cluster.ts'
import { formOf, startTestDaemon } from '../helpers/daemon.ts'
import { blobs } from '../helpers/training.ts'
import type { Member } from '../helpers/cluster.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { Browser, Page } from 'playwright-core'

/** Bytes of a file of several 256 KiB chunks, so that its CID depends on the chunking and the DAG's layout. */
function fileBytes (size: number): Buffer {
  const bytes = Buffer.alloc(size)
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff
  return bytes
}

describe('the web console in a real browser', { skip, timeout: 300_000 }, () => {
  // The default models: the chat needs one.
  const cluster = new ProcessCluster(FAST, { defaultModels: true })
  let a: Member
  let browser: Browser
  let page: Page
  /** The events page, open from the start in a tab of its own: it shows only what happens while it is open. */
  let events: Page
  let shots: ScreenshotFolder
  const pageErrors: string[] = []
  const shot = async (p: Page, name: string): Promise<void> => { await p.screenshot({ path: join(shots.dir, `${name}.png`), fullPage: true }) }
  const open = async (route: string): Promise<void> => {
    await page.goto(`${a.api}/#/${route}`)
    await page.waitForLoadState('networkidle')
  }

  before(async () => {
    shots = await screenshotFolder('console')
    a = await cluster.add()
    await Promise.all([cluster.add(a), cluster.add(a)])
    await agreedLeader(cluster.members, 60_000)
    browser = await launchChromium()
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    events = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    // Uncaught errors and what the page's Content-Security-Policy refused, on either page.
    for (const p of [page, events]) {
      p.on('pageerror', err => { pageErrors.push(err.message) })
      p.on('console', message => { if (/Content Security Policy/.test(message.text())) pageErrors.push(message.text()) })
    }
    await events.goto(`${a.api}/#/events`)
  })

  after(async () => {
    await browser?.close()
    await cluster.stop()
    if (shots != null) await shots.done()
  })

  it('serves the console at / and /webui without credentials, and answers a missing asset with a 404', async () => {
    const root = await fetch(`${a.api}/`)
    assert.equal(root.status, 200)
    assert.match(await root.text(), /<div id="app">/)
    assert.match(root.headers.get('content-security-policy') ?? '', /default-src 'self'.*frame-ancestors 'none'/)
    const webui = await fetch(`${a.api}/webui`, { redirect: 'manual' })
    assert.equal(webui.status, 302)
    assert.equal(webui.headers.get('location'), '/')
    assert.equal((await fetch(`${a.api}/assets/missing.js`)).status, 404)
    assert.equal((await fetch(`${a.api}/assets/..%2f..%2fpackage.json`)).status, 422)
  })

  it('shows the three nodes, online, and the leader', async () => {
    const { leader } = await agreedLeader(cluster.members)
    await open('cluster')
    await page.waitForFunction(() => document.querySelectorAll('tr[data-node][data-online="true"]').length === 3, undefined, { timeout: 30_000 })
    const roles = await page.$$eval('tr[data-node]', rows => rows.map(r => [r.getAttribute('data-node'), r.getAttribute('data-role')]))
    assert.deepEqual(roles.map(([id]) => id).sort(), cluster.members.map(m => m.peerId).sort())
    assert.deepEqual(roles.filter(([, role]) => role === 'leader').map(([id]) => id), [leader])
    assert.equal(await page.getAttribute('[data-leader]', 'data-leader'), leader)
    assert.equal(await page.locator('[data-topology-node]').count(), 3)
    await shot(page, 'cluster')
  })

  it('adds files, picked and dropped, with the CIDs that add gives on another node; a cluster pin reaches pinned on every node; adds a folder, browses it, downloads a file of it', async () => {
    await open('content')
    const big = fileBytes(700_000)
    await page.setInputFiles('input[name=files]', { name: 'big.bin', mimeType: 'application/octet-stream', buffer: big })
    // A drop, as the user's file manager makes one.
    await page.evaluate(() => {
      const transfer = new DataTransfer()
      transfer.items.add(new File(['hello world\n'], 'hello.txt', { type: 'text/plain' }))
      document.querySelector('[data-dropzone]')?.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }))
    })
    const cidOf = async (name: string): Promise<string | null> => {
      await page.waitForSelector(`tr[data-added="${name}"] [data-cid]`, { timeout: 60_000 })
      return page.getAttribute(`tr[data-added="${name}"] [data-cid]`, 'data-cid')
    }
    const b = cluster.members[1]
    assert.equal(await cidOf('big.bin'), await addBytes(b, big))
    assert.equal(await cidOf('hello.txt'), 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', 'Kubo\'s CID of "hello world\\n"')
    const cid = await cidOf('big.bin') as string

    // Added pinned; unpinned and pinned again from the page.
    const hello = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
    const pinnedHere = async (): Promise<boolean> => Object.keys((await (await fetch(`${a.api}/api/v0/pin/ls?type=recursive`, { method: 'POST' })).json()).Keys).includes(hello)
    assert.equal(await pinnedHere(), true)
    await page.click('tr[data-added="hello.txt"] button:text-is("Unpin")')
    await page.waitForSelector('tr[data-added="hello.txt"] button:text-is("Pin")')
    assert.equal(await pinnedHere(), false)
    await page.click('tr[data-added="hello.txt"] button:text-is("Pin")')
    await page.waitForSelector('tr[data-added="hello.txt"] button:text-is("Unpin")')
    assert.equal(await pinnedHere(), true)

    await page.click('tr[data-added="big.bin"] >> text=Cluster pin…')
    await page.fill('input[name=replication]', '3')
    await page.click('button:has-text("Pin in the cluster")')
    await page.waitForFunction(cid => {
      const row = document.querySelector(`tr[data-cluster-pin="${cid}"]`)
      const peers = Array.from(row?.querySelectorAll('[data-peer-status]') ?? []).filter(td => td.getAttribute('data-peer-status') !== '')
      return row?.getAttribute('data-status') === 'pinned' && peers.length === 3 && peers.every(td => td.getAttribute('data-peer-status') === 'pinned')
    }, cid, { timeout: 90_000, polling: 500 })
    // What the page shows is what every node says.
    for (const m of cluster.members) {
      const status = await pinStatus(m, cid)
      assert.deepEqual(Object.values(status.peer_map).map(p => p.status), ['pinned', 'pinned', 'pinned'])
    }

    // A folder: one directory with the CID add gives it, browsed into, and a file of it downloaded.
    const files = [{ path: 'site/index.html', content: '<h1>hi</h1>\n' }, { path: 'site/sub/b.txt', content: 'bbb\n' }]
    const folder = await mkdtemp(join(tmpdir(), 'console-folder-'))
    try {
      for (const file of files) {
        await mkdir(dirname(join(folder, file.path)), { recursive: true })
        await writeFile(join(folder, file.path), file.content)
      }
      // The browser reads the files when it uploads them: they stay until then.
      await page.setInputFiles('input[name=folder]', join(folder, 'site'))
      const added = (await (await fetch(`${b.api}/api/v0/add?pin=false`, { method: 'POST', body: formOf(files) })).text()).trim().split('\n')
      assert.equal(await cidOf('site'), JSON.parse(added.at(-1) as string).Hash)
    } finally {
      await rm(folder, { recursive: true, force: true })
    }
    await page.click('tr[data-added="site"] >> text=Open')
    await page.click('a:has-text("sub/")')
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('button:has-text("Download")')])
    assert.equal(download.suggestedFilename(), 'b.txt')
    assert.equal(await readFile(await download.path(), 'utf8'), 'bbb\n')
    await shot(page, 'content')
  })

  it('streams a chat answer token by token', async () => {
    await open('chat')
    await page.waitForSelector('select[name=model] option:text-is("tiny-gpt:latest")', { state: 'attached' })
    await page.selectOption('select[name=model]', 'tiny-gpt:latest')
    await page.fill('textarea[name=prompt]', 'Hello, who are you?')
    await page.click('button:has-text("Send")')
    await page.waitForSelector('.chat[data-streaming="false"] .msg[data-role="assistant"]', { timeout: 60_000 })
    const chunks = Number(await page.getAttribute('.chat', 'data-chunks'))
    const answer = await page.textContent('.msg[data-role="assistant"]')
    assert.deepEqual(await page.locator('[role=alert]').allTextContents(), [])
    assert.ok(chunks >= 3, `the answer came in ${chunks} chunks`)
    assert.ok((answer ?? '').length > 0)
    await shot(page, 'chat')
  })

  it('draws the loss of a training run started from the console, and the loss falls', async () => {
    await open('training')
    await page.setInputFiles('input[name=dataset-file]', { name: 'blobs.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(blobs(480, 7)) })
    await page.fill('input[name=dataset-name]', 'blobs')
    await page.click('button:has-text("Add dataset")')
    await page.waitForFunction(() => (document.querySelector('input[name=dataset]') as HTMLInputElement | null)?.value.startsWith('Qm') === true, undefined, { timeout: 30_000 })
    await page.fill('input[name=epochs]', '4')
    await page.fill('input[name=batch_size]', '16')
    await page.fill('input[name=learning_rate]', '0.01')
    await page.click('button:has-text("Start")')
    await page.waitForSelector('[data-shown-session][data-status="completed"]', { timeout: 120_000 })
    // The chart is fed by /api/v1/ws: the steps it drew are in its data-values.
    await page.waitForFunction(() => JSON.parse(document.querySelector('[data-chart="loss"]')?.getAttribute('data-values') ?? '[]').length >= 100, undefined, { timeout: 10_000 })
    const loss = JSON.parse(await page.getAttribute('[data-chart="loss"]', 'data-values') ?? '[]') as number[]
    const quarter = Math.floor(loss.length / 4)
    const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length
    assert.ok(mean(loss.slice(-quarter)) < 0.5 * mean(loss.slice(0, quarter)), `loss from ${mean(loss.slice(0, quarter))} to ${mean(loss.slice(-quarter))}`)
    assert.equal(await page.locator('[data-chart="loss"] canvas').count(), 1)
    await shot(page, 'training')
  })

  it('lists the inference tasks and the training session; the events page saw them live; models import and delete', async () => {
    await open('jobs')
    await page.waitForSelector('tr[data-session][data-status="completed"]')
    // The chat, with the CIDs of its prompt and response.
    await page.waitForSelector('tr[data-task] [data-response-cid^="Qm"]')
    await shot(page, 'jobs')
    await events.waitForSelector('tr[data-event="model_update"]', { timeout: 10_000 })
    await shot(events, 'events')
    // The default models, on every node.
    await open('models')
    await page.waitForSelector('tr[data-model="tiny-gpt:latest"]')
    assert.equal(await page.locator('tr[data-model="tiny-gpt:latest"] [data-holder]').count(), 3)
    // An import of a model directory as a tar (the API hands one out), then its removal.
    const tar = Buffer.from(await (await fetch(`${a.api}/api/v0/ai/model/get?cid=tiny-embed:latest`, { method: 'POST' })).arrayBuffer())
    await page.fill('input[name=model-name]', 'copied-embed:latest')
    await page.setInputFiles('input[name=model-tar]', { name: 'copied-embed.tar', mimeType: 'application/x-tar', buffer: tar })
    await page.click('button:has-text("Import")')
    await page.waitForSelector('tr[data-model="copied-embed:latest"]', { timeout: 30_000 })
    await shot(page, 'models')
    page.once('dialog', dialog => { void dialog.accept() })
    await page.click('tr[data-model="copied-embed:latest"] button:has-text("Delete")')
    await page.waitForSelector('tr[data-model="copied-embed:latest"]', { state: 'detached', timeout: 30_000 })
    await open('keys')
    await shot(page, 'keys')
    assert.deepEqual(pageErrors, [])
    assert.deepEqual(await page.locator('[role=alert]').allTextContents(), [])
  })
})

describe('the web console on a node that needs credentials', { skip, timeout: 120_000 }, () => {
  const ADMIN = 'console-test-admin-token'
  let d: TestDaemon
  let browser: Browser

  before(async () => {
    d = await startTestDaemon({ api: { adminToken: ADMIN } })
    browser = await launchChromium()
  })

  after(async () => {
    await browser?.close()
    await d?.cleanup()
  })

  it('asks for an API key, and works with it; logs a user in, whose JWT opens the event sockets too', async () => {
    const page = await browser.newPage()
    // The console's files need no credential; its first API call is refused, and it asks.
    await page.goto(`${d.url}/#/cluster`)
    await page.waitForSelector('input[name=api-key]')
    assert.equal(await page.locator('tr[data-node]').count(), 0)
    await page.fill('input[name=api-key]', 'not-the-key')
    await page.click('button:has-text("Use key")')
    await page.waitForSelector('input[name=api-key]')
    await page.fill('input[name=api-key]', ADMIN)
    await page.click('button:has-text("Use key")')
    await page.waitForSelector('tr[data-node][data-role="leader"]')
    assert.equal(await page.locator('input[name=api-key]').count(), 0)

    await page.goto(`${d.url}/#/keys`)
    await page.fill('input[name=user-name]', 'ada')
    await page.fill('input[name=user-password]', 'correct horse')
    await page.click('button:has-text("Save user")')
    await page.waitForSelector('text=user ada saved')
    await page.click('button:has-text("Log out")')
    await page.goto(`${d.url}/#/cluster`)
    await page.waitForSelector('input[name=username]')
    await page.fill('input[name=username]', 'ada')
    await page.fill('input[name=password]', 'correct horse')
    await page.click('button:has-text("Log in")')
    await page.waitForSelector('tr[data-node][data-role="leader"]')
    await page.goto(`${d.url}/#/events`)
    await page.waitForSelector('[data-connected="2"]')
    await page.close()
  })
})
