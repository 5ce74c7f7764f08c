/**
 * The console's Search page in a real browser (Debian's Chromium, headless,
 * driven by playwright-core) against a daemon with the default embedding
 * model: it creates collections, indexes uploaded LangChain documents with
 * the job's progress arriving over the event socket, indexes a CID and
 * uploaded files, shows the results of hybrid queries as the API gives them
 * (filters, hops and entity types), and deletes a collection. Screenshots
 * go to a temporary folder, or are kept under $NODE_DAEMON_SCREENSHOTS (see
 * screenshotFolder).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { readCorpus } from '@node-daemon/models'
import { launchChromium, screenshotFolder, skipWithoutChromium as skip } from '../helpers/browser.ts'
import type { ScreenshotFolder } from '../helpers/browser.ts'
import { waitFor } from '../helpers/cluster.ts'
import { formOf, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { Browser, Page } from 'playwright-core'

const BOOKS = ['pride', 'sense', 'persuasion']

/** LangChain documents of two paragraphs each, the first 80 of each novel: more chunks than one batch of the search service (512). */
async function novelDocuments (): Promise<Array<{ page_content: string, metadata: { book: string, part: number } }>> {
  return (await readCorpus()).flatMap((novel, b) => {
    const paragraphs = novel.split(/\n\s*\n/).map(p => p.trim()).filter(p => p.length > 200)
    return Array.from({ length: 80 }, (_, part) => ({ page_content: paragraphs.slice(part * 2, part * 2 + 2).join('\n\n'), metadata: { book: BOOKS[b], part } }))
  })
}

async function api (d: TestDaemon, path: string, body: unknown): Promise<any> {
  const res = await fetch(`${d.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
  const answer = await res.json()
  assert.equal(res.status, 200, JSON.stringify(answer))
  return answer
}

/** The results the page shows: type and id of each row, in order. */
async function shownResults (page: Page): Promise<Array<[string, string]>> {
  return page.$$eval('tr[data-result]', rows => rows.map(r => [r.getAttribute('data-result') ?? '', r.getAttribute('data-id') ?? ''] as [string, string]))
}

describe('the console\'s search page in a real browser', { skip, timeout: 300_000 }, () => {
  let d: TestDaemon
  let browser: Browser
  let page: Page
  const pageErrors: string[] = []
  let shots: ScreenshotFolder
  const shot = async (name: string): Promise<void> => { await page.screenshot({ path: join(shots.dir, `${name}.png`), fullPage: true }) }

  before(async () => {
    shots = await screenshotFolder('console-search')
    d = await startTestDaemon({ inference: { defaultModels: true } })
    await waitFor('the default embedding model', async () => (await d.node.cluster.getAllModels()).some(m => m.modelId === 'tiny-embed:latest'), 120_000)
    browser = await launchChromium()
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    page.on('pageerror', err => { pageErrors.push(err.message) })
    page.on('console', message => { if (/Content Security Policy/.test(message.text())) pageErrors.push(message.text()) })
    await page.goto(`${d.url}/#/search`)
    await page.waitForLoadState('networkidle')
  })

  after(async () => {
    await browser?.close()
    await d?.cleanup()
    if (shots != null) await shots.done()
  })

  it('creates a collection and indexes uploaded LangChain documents, the job\'s batches shown as the event socket brings them', async () => {
    await page.fill('input[name=collection-name]', 'novels')
    await page.fill('input[name=collection-chunk_tokens]', '64')
    await page.fill('input[name=collection-overlap_tokens]', '8')
    await page.fill('input[name=collection-replication_factor]', '1')
    await page.fill('input[name=collection-metadata_schema]', '{"book": "string", "part": "number"}')
    await page.click('button:has-text("Create collection")')
    await page.waitForSelector('tr[data-collection="novels"][data-version="0"]')

    // Every state a job's row goes through, recorded in the page as it changes.
    await page.evaluate(() => {
      const seen: string[] = []
      Object.assign(window, { jobStates: seen })
      new MutationObserver(() => {
        for (const row of Array.from(document.querySelectorAll('tr[data-job]'))) seen.push(`${row.getAttribute('data-status')}:${row.getAttribute('data-chunks')}`)
      }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status', 'data-chunks'] })
    })
    const docs = await novelDocuments()
    await page.selectOption('select[name=index-collection]', 'novels')
    await page.setInputFiles('input[name=index-files]', { name: 'novels.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(docs)) })
    await page.click('button:has-text("Index documents")')
    await page.waitForSelector('tr[data-job][data-status="completed"]', { timeout: 180_000 })

    const id = await page.getAttribute('tr[data-job]', 'data-job') as string
    const { job } = await api(d, `/api/v0/search/index/status?id=${id}`, {})
    assert.equal(job.status, 'completed')
    assert.ok(job.batches >= 2, `${job.chunks} chunks in ${job.batches} batches`)
    // The page never polls a job: its final state and the batches before it came over /ws/v0/events.
    assert.equal(Number(await page.getAttribute(`tr[data-job="${id}"]`, 'data-chunks')), job.chunks)
    assert.equal(Number(await page.getAttribute(`tr[data-job="${id}"]`, 'data-batches')), job.batches)
    const states = await page.evaluate(() => (window as unknown as { jobStates: string[] }).jobStates)
    const partial = states.filter(s => s.startsWith('running:')).map(s => Number(s.split(':')[1])).filter(n => n > 0 && n < job.chunks)
    assert.ok(partial.length > 0, `the row showed a batch before the end: ${states.join(' ')}`)
    assert.match(await page.textContent(`tr[data-job="${id}"]`) ?? '', new RegExp(`${docs.length} of ${docs.length}`))

    // The collections table follows the head's move (collection_changed, or its poll).
    const { collections } = await api(d, '/api/v0/search/collection/list', {})
    const novels = collections.find((c: { name: string }) => c.name === 'novels')
    await page.waitForSelector(`tr[data-collection="novels"][data-chunks="${job.chunks}"][data-head="${job.head_cid}"]`, { timeout: 10_000 })
    assert.equal(novels.head_cid, job.head_cid)
    assert.equal(await page.textContent('tr[data-collection="novels"] td:nth-child(3)'), 'tiny-embed:latest')
    await shot('indexed')
  })

  it('indexes a CID and uploaded files into a second collection', async () => {
    await page.fill('input[name=collection-name]', 'library')
    await page.fill('input[name=collection-metadata_schema]', '')
    await page.click('button:has-text("Create collection")')
    await page.waitForSelector('tr[data-collection="library"]')
    await page.selectOption('select[name=index-collection]', 'library')

    const added = (await (await fetch(`${d.url}/api/v0/add?pin=true`, { method: 'POST', body: formOf([{ path: 'tides.md', content: '# Tides\n\nSpring tides follow the new moon at the harbour.' }]) })).text()).trim()
    const cid = JSON.parse(added).Hash as string
    await page.fill('input[name=index-cid]', cid)
    await page.click('button:has-text("Index CID")')
    await page.waitForFunction(() => document.querySelectorAll('tr[data-job][data-status="completed"]').length === 2, undefined, { timeout: 60_000 })

    await page.setInputFiles('input[name=index-files]', [
      { name: 'bees.html', mimeType: 'text/html', buffer: Buffer.from('<html><body><p>Honeybees dance to tell the hive where the clover grows.</p></body></html>') },
      { name: 'lamp.txt', mimeType: 'text/plain', buffer: Buffer.from('The lamp of the lighthouse is trimmed at dusk by the keeper.') }
    ])
    await page.click('button:has-text("Index documents")')
    await page.waitForFunction(() => document.querySelectorAll('tr[data-job][data-status="completed"]').length === 3, undefined, { timeout: 60_000 })
    const library = (await api(d, '/api/v0/search/collection/list', {})).collections.find((c: { name: string }) => c.name === 'library')
    assert.equal(library.version, 2, 'a head move per job')
    await page.waitForSelector(`tr[data-collection="library"][data-version="2"][data-chunks="${library.chunks}"]`, { timeout: 10_000 })
  })

  it('shows the results of hybrid queries as the API answers them: scores, text, sources, metadata, filters, hops and entity types', async () => {
    const query = async (fields: Record<string, string>, collection: string): Promise<void> => {
      for (const [name, value] of Object.entries(fields)) await page.fill(`input[name=${name}]`, value)
      await page.selectOption('select[name=query-collection]', collection)
      await page.click('button:has-text("Search")')
      await page.waitForLoadState('networkidle')
    }

    // Chunks only, with a filter: every row of Pride and Prejudice, in the API's order, with its text and metadata.
    for (const type of ['file', 'directory', 'model', 'dataset', 'training_job', 'checkpoint']) await page.uncheck(`input[name=entity-${type}]`)
    await query({ query_text: 'Mr. Darcy', top_k: '5', hop_count: '0', metadata_filters: '{"book": "pride"}' }, 'novels')
    const filtered = await api(d, '/api/v0/search/hybrid', { collection: 'novels', query_text: 'Mr. Darcy', top_k: 5, hop_count: 0, entity_types: ['chunk'], metadata_filters: { book: 'pride' } })
    await page.waitForSelector(`[data-results="${filtered.count}"]`)
    assert.equal(filtered.count, 5)
    assert.deepEqual(await shownResults(page), filtered.results.map((r: { id: string }) => ['chunk', r.id]))
    const first = page.locator('tr[data-result]').first()
    assert.equal(await first.locator('td.text').textContent(), filtered.results[0].text)
    assert.match(await first.locator('td').nth(0).textContent() ?? '', new RegExp(`^${filtered.results[0].score.toFixed(4)}$`))
    assert.match(await first.textContent() ?? '', /"book":"pride"/)
    assert.match(filtered.results[0].text, /Darcy/)
    await shot('chunks')

    // Hops to files: each file row carries the hop path from the chunk that led to it.
    await page.check('input[name=entity-file]')
    await page.uncheck('input[name=entity-chunk]')
    await query({ query_text: 'honeybees clover hive', top_k: '3', hop_count: '1', metadata_filters: '' }, 'library')
    const hopped = await api(d, '/api/v0/search/hybrid', { collection: 'library', query_text: 'honeybees clover hive', top_k: 3, hop_count: 1, entity_types: ['file'] })
    await page.waitForSelector(`[data-results="${hopped.count}"]`)
    assert.ok(hopped.count > 0)
    assert.deepEqual(await shownResults(page), hopped.results.map((r: { id: string }) => ['file', r.id]))
    assert.equal(Number(await page.getAttribute('tr[data-result] td[data-hops]', 'data-hops')), hopped.results[0].hop_path.length)
    assert.match(await page.textContent('tr[data-result] td[data-hops]') ?? '', /part_of/)
    assert.equal(await page.getAttribute('tr[data-result] [data-path]', 'data-path'), hopped.results[0].path)
    await shot('hops')

    // A bad filter is the API's 400, shown on the page.
    await query({ metadata_filters: '{"nonexistent": 1}' }, 'library')
    await page.waitForSelector('[role=alert]')
    assert.match(await page.textContent('[role=alert]') ?? '', /nonexistent/)
  })

  it('deletes a collection', async () => {
    page.once('dialog', dialog => { void dialog.accept() })
    await page.click('tr[data-collection="library"] button:has-text("Delete")')
    await page.waitForSelector('tr[data-collection="library"]', { state: 'detached', timeout: 30_000 })
    assert.deepEqual((await api(d, '/api/v0/search/collection/list', {})).collections.map((c: { name: string }) => c.name), ['novels'])
    assert.deepEqual(pageErrors, [])
  })
})
