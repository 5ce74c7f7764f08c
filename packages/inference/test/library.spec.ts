import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ModelLibrary } from '../src/library.ts'

describe('ModelLibrary', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'model-library-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('sweeps at start the half-unpacked copies a killed daemon left, and keeps the complete ones', async () => {
    const complete = 'QmbcW3WMkooB5BK6CMcqG9NvWQxByEJ4AXn5hC3SpYpf6X'
    await mkdir(join(dir, complete))
    await writeFile(join(dir, complete, '.complete'), complete)
    for (const part of [`${complete}.part-4242-1796530022923`, 'bafkqaaa.part-1-2']) {
      await mkdir(join(dir, part, 'onnx'), { recursive: true })
      await writeFile(join(dir, part, 'onnx', 'model.onnx'), 'half written')
    }
    // Start touches only the directory: the content and cluster it serves models from are not needed.
    const library = new ModelLibrary({ content: undefined as never, cluster: undefined as never }, { dir })
    await library.start()
    assert.deepEqual(await readdir(dir), [complete])
  })

  it('starts on a node that has unpacked no model yet', async () => {
    const library = new ModelLibrary({ content: undefined as never, cluster: undefined as never }, { dir: join(dir, 'absent') })
    await library.start()
  })

  it('shares one unpack among its callers: one that leaves does not end it for the others', async () => {
    const cid = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
    let release = (): void => {}
    const gate = new Promise<void>(resolve => { release = resolve })
    const files = ['config.json', 'tokenizer.json', 'model.onnx']
    let cats = 0
    // The part of the content store an unpack reads: a listing and each file's bytes, the first held at a gate.
    const content = {
      ls: async () => ({ entries: files.map(name => ({ name, type: 'file', cid: { toString: () => `${cid}-${name}` }, size: 2 })) }),
      cat: async function * (path: string) {
        cats++
        await gate
        yield new TextEncoder().encode(path.endsWith('.json') ? '{}' : 'xx')
      }
    }
    const library = new ModelLibrary({ content: content as never, cluster: undefined as never }, { dir: join(dir, 'shared') })
    await library.start()
    const leaving = new AbortController()
    const seen: string[] = []
    const first = library.unpack(cid, { signal: leaving.signal })
    const second = library.unpack(cid, { onProgress: event => { seen.push(event.status) } })
    leaving.abort(new Error('client went away'))
    await assert.rejects(first, { message: 'client went away' })
    release()
    const unpacked = await second
    assert.deepEqual((await readdir(unpacked)).sort(), ['.complete', ...files].sort())
    assert.equal(cats, files.length, 'one unpack for both callers')
    assert.ok(seen.length >= files.length, 'the caller that stayed saw the progress')
    library.stop()
  })

  it('answers a CID it unpacked, or found complete, without reading the disk again', async () => {
    const cid = 'QmbcW3WMkooB5BK6CMcqG9NvWQxByEJ4AXn5hC3SpYpf6X'
    const root = join(dir, 'known')
    await mkdir(join(root, cid), { recursive: true })
    await writeFile(join(root, cid, '.complete'), cid)
    // A content store that fails every read: a second look at the disk that found no marker would unpack again.
    const content = { ls: async () => { throw new Error('read the content store') } }
    const library = new ModelLibrary({ content: content as never, cluster: undefined as never }, { dir: root })
    await library.start()
    assert.equal(await library.unpack(cid), join(root, cid))
    await rm(join(root, cid, '.complete'))
    assert.equal(await library.unpack(cid), join(root, cid))
    library.stop()
  })

  it("reports an unpack as Ollama's layer lines, bytes growing to each file's size, and passes none of the store's own events", async () => {
    const cid = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
    const sizes: Record<string, number> = { 'config.json': 2, 'tokenizer.json': 2, 'model.onnx': 6 }
    // As Helia does, the store calls an onProgress it is given with its block events.
    const helia = (options?: { onProgress?: (event: unknown) => void }): void => { options?.onProgress?.({ type: 'blocks:get:blockstore:get', detail: cid }) }
    const content = {
      ls: async (_path: string, options?: { onProgress?: (event: unknown) => void }) => {
        helia(options)
        return { entries: Object.entries(sizes).map(([name, size]) => ({ name, type: 'file', cid: { toString: () => `${cid}-${name}` }, size })) }
      },
      cat: async function * (path: string, options?: { onProgress?: (event: unknown) => void }) {
        helia(options)
        if (path.endsWith('.json')) yield new TextEncoder().encode('{}')
        else for (let i = 0; i < 3; i++) yield new TextEncoder().encode('xx')
      }
    }
    const library = new ModelLibrary({ content: content as never, cluster: undefined as never }, { dir: join(dir, 'progress') })
    await library.start()
    const events: unknown[] = []
    await library.unpack(cid, { onProgress: event => { events.push(event) } })
    const model = events.filter(e => (e as { digest?: string }).digest === `${cid}-model.onnx`)
    assert.deepEqual(model.map(e => (e as { completed: number }).completed), [2, 4, 6, 6])
    for (const event of events) {
      assert.deepEqual(Object.keys(event as object), ['status', 'digest', 'total', 'completed'], JSON.stringify(event))
      const { status, digest, total } = event as { status: string, digest: string, total: number }
      assert.equal(status, `pulling ${digest}`)
      assert.equal(total, sizes[digest.slice(cid.length + 1)])
    }
    library.stop()
  })
  it('looks a name up as the cluster finds a model, with its tag, and refuses what it does not find or cannot serve', async () => {
    const records = [
      { modelId: 'fresh:latest', modelCID: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', kind: 'model', isActive: true, metadata: {} },
      { modelId: 'off:latest', modelCID: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', kind: 'model', isActive: false, metadata: {} },
      { modelId: 'rows:latest', modelCID: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', kind: 'dataset', isActive: true, metadata: {} }
    ]
    const asked: string[] = []
    const cluster = { findModel: async (id: string) => { asked.push(id); return records.find(r => r.modelId === id) } }
    const library = new ModelLibrary({ content: undefined as never, cluster: cluster as never }, { dir: join(dir, 'resolve') })
    assert.deepEqual(await library.resolve('fresh'), { name: 'fresh:latest', cid: records[0].modelCID, record: records[0], profile: undefined })
    for (const name of ['missing', 'off', 'rows']) await assert.rejects(library.resolve(name), { name: 'ModelNotFoundError' }, name)
    assert.deepEqual(asked, ['fresh:latest', 'missing:latest', 'off:latest', 'rows:latest'])
  })
})
