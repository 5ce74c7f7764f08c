import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { listUpload, multipartBody } from '../src/upload.ts'

describe('add uploads', () => {
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'node-daemon-upload-'))
    await mkdir(join(dir, 'tree', 'sub'), { recursive: true })
    await writeFile(join(dir, 'tree', 'b.txt'), 'bee\n')
    await writeFile(join(dir, 'tree', 'a.txt'), 'a\n')
    await writeFile(join(dir, 'tree', 'sub', 'c file.txt'), 'sea\n')
  })

  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('lists a directory depth first, sorted, directories without a file', async () => {
    const entries = await listUpload(join(dir, 'tree'), true)
    assert.deepEqual(entries.map(e => [e.path, e.file != null, e.size]), [
      ['tree', false, 0],
      ['tree/a.txt', true, 2],
      ['tree/b.txt', true, 4],
      ['tree/sub', false, 0],
      ['tree/sub/c file.txt', true, 4]
    ])
  })

  it('refuses a directory without -r', async () => {
    await assert.rejects(listUpload(join(dir, 'tree'), false), /use -r/)
  })

  it("streams a multipart body in Kubo's layout, of the length it says, counting file bytes", async () => {
    const entries = await listUpload(join(dir, 'tree'), true)
    let counted = 0
    const body = multipartBody(entries, (n) => { counted += n }, { name: 'x' })
    const bytes = Buffer.concat(await body.stream.toArray())
    assert.equal(bytes.byteLength, body.length)
    const form = await new Response(bytes, { headers: { 'content-type': body.type } }).formData()
    assert.equal(form.get('name'), 'x')
    const parts = form.getAll('file') as File[]
    assert.deepEqual(parts.map(p => decodeURIComponent(p.name)), entries.map(e => e.path))
    assert.deepEqual(parts.map(p => p.type), ['application/x-directory', 'application/octet-stream', 'application/octet-stream', 'application/x-directory', 'application/octet-stream'])
    assert.equal(await parts[4].text(), 'sea\n')
    assert.equal(counted, 10)
  })
})
