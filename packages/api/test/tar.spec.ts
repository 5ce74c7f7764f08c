import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { readTar, tarDirectory } from '../src/tar.ts'

const run = promisify(execFile)
const LONG = `weights/${'a'.repeat(60)}/${'b'.repeat(60)}/model.onnx_data`

/** The files of an archive, each read whole, in order; `take` bytes of each at most when given, to check that the rest is skipped. */
async function files (archive: Uint8Array, take?: number): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = []
  // In two chunks that cut a header, as a network delivers it.
  for await (const entry of readTar((async function * () { yield archive.subarray(0, 700); yield archive.subarray(700) })())) {
    if (entry.type === 'directory') continue
    const chunks: Buffer[] = []
    for await (const chunk of entry.content) {
      chunks.push(Buffer.from(chunk))
      if (take != null && Buffer.concat(chunks).byteLength >= take) break
    }
    out.push([entry.path, Buffer.concat(chunks).toString('utf8').slice(0, take)])
  }
  return out
}

describe('readTar', () => {
  let dir: string
  const model: Record<string, string> = { 'config.json': '{"model_type":"bert"}', 'onnx/model.onnx': 'x'.repeat(1500), [LONG]: 'weights' }
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'read-tar-'))
    for (const [path, text] of Object.entries(model)) {
      await mkdir(join(dir, 'my-model', path, '..'), { recursive: true })
      await writeFile(join(dir, 'my-model', path), text)
    }
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  const sorted = (entries: Array<[string, string]>): Array<[string, string]> => entries.sort(([a], [b]) => a.localeCompare(b))
  const expected = (): Array<[string, string]> => sorted(Object.entries(model))

  for (const [name, args] of [['GNU, gzipped, of the top directory', ['czf', 'm.tgz', 'my-model']], ['pax, of the directory\'s contents', ['--format=pax', '-cf', 'm.tgz', '-C', 'my-model', '.']]] as const) {
    it(`reads the files of an archive tar writes: ${name}`, async () => {
      await run('tar', [...args], { cwd: dir })
      assert.deepEqual(sorted(await files(await readFile(join(dir, 'm.tgz')))), expected())
      assert.deepEqual(sorted(await files(await readFile(join(dir, 'm.tgz')), 10)), expected().map(([path, text]) => [path, text.slice(0, 10)]))
    })
  }

  it('reads what tarDirectory writes', async () => {
    const entries = Object.entries(model).map(([path, text]) => ({ name: path, bytes: Buffer.from(text) }))
    // A flat directory of content, as tarDirectory lists it.
    const content = {
      ls: async () => ({ entries: entries.map(e => ({ name: e.name, type: 'file', size: e.bytes.byteLength })) }),
      cat: async function * (path: string) { yield (entries.find(e => path.endsWith(`/${e.name}`)) as { bytes: Buffer }).bytes }
    }
    const chunks: Uint8Array[] = []
    for await (const chunk of tarDirectory(content as never, 'bafy')) chunks.push(chunk)
    assert.deepEqual(sorted(await files(Buffer.concat(chunks))), expected())
  })

  it('refuses links, a cut archive and broken gzip with a 400', async () => {
    await run('ln', ['-s', '/etc/passwd', join(dir, 'my-model', 'link')])
    await run('tar', ['cf', 'links.tar', 'my-model'], { cwd: dir })
    await assert.rejects(files(await readFile(join(dir, 'links.tar'))), { name: 'BadRequestError', message: /link or a device/ })
    await rm(join(dir, 'my-model', 'link'))
    await run('tar', ['cf', 'whole.tar', 'my-model'], { cwd: dir })
    const whole = await readFile(join(dir, 'whole.tar'))
    await assert.rejects(files(whole.subarray(0, 2000)), { name: 'BadRequestError', message: /ends inside an entry/ })
    await assert.rejects(files(Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8])), { name: 'BadRequestError', message: /not valid gzip/ })
  })
})
