/**
 * No single request raises the daemon's memory by more than 256 MB, with its
 * default models loaded: large embedding batches, large
 * dataset uploads (good and bad), and large adds and reads all stream or run
 * in bounded pieces. Peaks are read from the kernel (VmHWM, reset before each
 * request), not sampled.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { waitFor } from '../helpers/cluster.ts'
import { spawnDaemon, stopDaemon } from '../helpers/process.ts'
import type { DaemonProcess } from '../helpers/process.ts'

const BUDGET_MB = 256

async function status (pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]) / 1024
}

/**
 * A JSONL body of `lines` texts of `width` characters, optionally with a bad
 * last line. Lines go into the Blob a thousand at a time: fetch sent a Blob of
 * one part a line at a tenth of the speed the daemon takes it.
 */
function jsonl (lines: number, width: number, badLast: boolean): Blob {
  const line = `{"text":"${'a'.repeat(width)}"}\n`
  const block = line.repeat(1000)
  const parts: string[] = Array.from({ length: Math.floor(lines / 1000) }, () => block)
  parts.push(line.repeat(lines % 1000))
  if (badLast) parts.push('{"text": oops}\n')
  return new Blob(parts)
}

describe('memory per request', { timeout: 300_000 }, () => {
  let repo: string
  let daemon: DaemonProcess
  let pid: number

  const post = async (path: string, init: RequestInit): Promise<Response> => fetch(`${daemon.api}${path}`, { method: 'POST', signal: AbortSignal.timeout(120_000), ...init })
  const json = (body: unknown): RequestInit => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  /**
   * The most the daemon's RSS rose while `request` ran, above what it was
   * just before: V8 collects the garbage of earlier requests when it likes,
   * so the idle figure of the start drifts up between them.
   */
  async function rise (request: () => Promise<void>): Promise<number> {
    const before = await status(pid, 'VmRSS')
    await writeFile(`/proc/${pid}/clear_refs`, '5')
    await request()
    return await status(pid, 'VmHWM') - before
  }

  before(async () => {
    repo = await mkdtemp(join(tmpdir(), 'node-daemon-memory-'))
    await writeFile(join(repo, 'config.yaml'), 'inference:\n  default_models: true\n')
    daemon = await spawnDaemon(repo)
    pid = daemon.child.pid as number
    await waitFor('the default models', async () => {
      const { models } = await (await fetch(`${daemon.api}/api/tags`)).json() as { models: Array<{ name: string }> }
      return models.length >= 2
    }, 120_000)
    // Idle with both models loaded, as a daemon that served one request of each is.
    assert.equal((await post('/api/embed', json({ model: DEFAULT_MODELS.embed, input: 'warm' }))).status, 200)
    assert.equal((await post('/api/generate', json({ model: DEFAULT_MODELS.generate, prompt: 'It is', stream: false, options: { num_predict: 4 } }))).status, 200)
  })

  after(async () => {
    if (daemon != null) await stopDaemon(daemon)
    await rm(repo, { recursive: true, force: true })
  })

  it('embeds 300 inputs of 2,500 characters in bounded runs', async () => {
    const mb = await rise(async () => {
      const res = await post('/api/embed', json({ model: DEFAULT_MODELS.embed, input: Array.from({ length: 300 }, (_, i) => `${i} ${'word '.repeat(500)}`) }))
      assert.equal(res.status, 200)
      assert.equal(((await res.json()) as { embeddings: number[][] }).embeddings.length, 300)
    })
    assert.ok(mb < BUDGET_MB, `RSS rose ${mb.toFixed(0)} MB`)
  })

  it('embeds 10,000 short inputs without holding their tensors', async () => {
    const mb = await rise(async () => {
      const res = await post('/api/embed', json({ model: DEFAULT_MODELS.embed, input: Array.from({ length: 10_000 }, (_, i) => `short text ${i}`) }))
      assert.equal(res.status, 200)
      await res.arrayBuffer()
    })
    assert.ok(mb < BUDGET_MB, `RSS rose ${mb.toFixed(0)} MB`)
  })

  it('streams a 300 MB dataset upload that turns out bad, and one that is good, and serves it back', async (t) => {
    const bad = await rise(async () => {
      const form = new FormData()
      form.append('file', jsonl(300_000, 1000, true), 'bad.jsonl')
      const res = await post('/api/v0/ai/dataset/add', { body: form })
      assert.equal(res.status, 400)
      assert.match(((await res.json()) as { error: string }).error, /^line 300001: not JSON/)
    })
    assert.ok(bad < BUDGET_MB, `RSS rose ${bad.toFixed(0)} MB for the bad upload`)
    let cid = ''
    const good = await rise(async () => {
      const form = new FormData()
      form.append('name', 'big')
      form.append('file', jsonl(300_000, 1000, false), 'good.jsonl')
      const res = await post('/api/v0/ai/dataset/add', { body: form })
      assert.equal(res.status, 200)
      cid = ((await res.json()) as { cid: string }).cid
    })
    assert.ok(good < BUDGET_MB, `RSS rose ${good.toFixed(0)} MB for the good upload`)
    const served = await rise(async () => {
      const res = await fetch(`${daemon.api}/api/v0/ai/dataset/get?cid=big`)
      assert.equal(res.headers.get('x-dataset-cid'), cid)
      let bytes = 0
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.byteLength
      assert.equal(bytes, 300_000 * 1012)
    })
    t.diagnostic(`RSS rose ${bad.toFixed(0)}, ${good.toFixed(0)} and ${served.toFixed(0)} MB`)
    assert.ok(served < BUDGET_MB, `RSS rose ${served.toFixed(0)} MB serving it`)
  })

  it('still answers /health afterwards', async () => {
    assert.equal((await fetch(`${daemon.api}/health`)).status, 200)
  })
})
