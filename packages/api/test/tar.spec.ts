import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { archiveOf, readTar, tarDirectory } from '../src/tar.ts'

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

  it('archiveOf archives a file or a directory under its name, as Kubo\'s get, and counts the bytes of its files', async () => {
    // A directory bafydir holding a.txt and sub/b.txt, as the content's ls, stat and cat see it.
    const files: Record<string, string> = { 'bafydir/a.txt': 'a\n', 'bafydir/sub/b.txt': 'bb\n' }
    const dirs = new Set(['bafydir', 'bafydir/sub'])
    const bare = (path: string): string => path.replace(/^\/ipfs\//, '')
    const content = {
      stat: async (ipfsPath: string) => {
        const path = bare(ipfsPath)
        if (dirs.has(path)) throw Object.assign(new Error(`${path} is a directory, not a file`), { name: 'WrongContentTypeError' })
        if (files[path] == null) throw Object.assign(new Error(`no ${path}`), { name: 'NotFoundError' })
        return { size: files[path].length }
      },
      ls: async (ipfsPath: string) => {
        const path = bare(ipfsPath)
        return {
          directory: dirs.has(path),
          entries: [...Object.keys(files), ...dirs].filter(p => p.startsWith(`${path}/`) && !p.slice(path.length + 1).includes('/')).sort()
            .map(p => ({ name: p.slice(path.length + 1), type: dirs.has(p) ? 'directory' : 'file', size: files[p]?.length ?? 0 }))
        }
      },
      cat: async function * (path: string) { yield Buffer.from(files[bare(path)]) }
    }
    const unpack = async (path: string): Promise<{ size: number, entries: Array<[string, string]> }> => {
      const { size, tar } = await archiveOf(content as never, path)
      const chunks: Uint8Array[] = []
      for await (const chunk of tar) chunks.push(chunk)
      await writeFile(join(dir, 'get.tar'), Buffer.concat(chunks))
      // The system's tar reads it as it reads Kubo's.
      const listed = (await run('tar', ['tf', 'get.tar'], { cwd: dir })).stdout.trim().split('\n')
      const entries: Array<[string, string]> = []
      for await (const entry of readTar((async function * () { yield * chunks })(), { keepTop: true })) {
        const bytes: Buffer[] = []
        for await (const chunk of entry.content) bytes.push(Buffer.from(chunk))
        entries.push([entry.path, entry.type === 'directory' ? '<dir>' : Buffer.concat(bytes).toString()])
      }
      // As in Kubo's (Go's archive/tar), a directory's name has no trailing slash: kubo-rpc-client's get tests match the names.
      assert.deepEqual(listed, entries.map(([p]) => p))
      return { size, entries }
    }
    assert.deepEqual(await unpack('/ipfs/bafydir'), { size: 5, entries: [['bafydir', '<dir>'], ['bafydir/a.txt', 'a\n'], ['bafydir/sub', '<dir>'], ['bafydir/sub/b.txt', 'bb\n']] })
    assert.deepEqual(await unpack('bafydir/sub/b.txt'), { size: 3, entries: [['b.txt', 'bb\n']] })
    await assert.rejects(archiveOf(content as never, 'bafydir/none'), { name: 'NotFoundError' })
  })
})
