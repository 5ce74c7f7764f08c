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
})
