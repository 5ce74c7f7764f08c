import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startContent } from '../../content/test/fixtures/node.ts'
import { snapshotDirectory, writeReplica } from '../src/snapshot.ts'
import { ChunkTable } from '../src/store.ts'
import type { SnapshotCache } from '../src/snapshot.ts'
import type { ChunkRow } from '../src/store.ts'
import type { Content } from '@node-daemon/content'

function row (i: number): ChunkRow {
  return { id: `c${i}`, text: `words of row ${i}`, vector: [Math.cos(i), Math.sin(i), 1], doc_id: `d${i}`, source_cid: 'cid', root_cid: 'root', path: `f${i}.txt`, format: 'text', byte_start: 0, byte_end: 10, chunk_index: 0, metadata: '{}' }
}

/** The files under `dir`: path to size, and an identity that changes when the file is written again. */
async function filesUnder (dir: string): Promise<Map<string, { size: number, written: string }>> {
  const files = new Map<string, { size: number, written: string }>()
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const { size, mtimeMs, ino } = await stat(join(entry.parentPath, entry.name))
    files.set(join(entry.parentPath, entry.name), { size, written: `${ino}:${mtimeMs}` })
  }
  return files
}

const sum = (xs: Iterable<{ size: number }>): number => [...xs].reduce((n, x) => n + x.size, 0)

describe('snapshotDirectory', () => {
  let content: Content
  let dir: string
  before(async () => {
    content = await startContent()
    dir = await mkdtemp(join(tmpdir(), 'search-snapshot-'))
  })
  after(async () => {
    await content?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('reads only the files written since the last snapshot, and gives the CID a snapshot from scratch gives', async () => {
    const work = join(dir, 'work')
    const table = await ChunkTable.open(work, {})
    let read = 0
    // Counts the bytes of every file the snapshot adds, by wrapping the content it is given.
    const counting: Pick<Content, 'addAll' | 'linkDirectory' | 'blockStat'> = {
      addAll: async function * (source, options) {
        const counted = async function * () {
          for await (const candidate of source as AsyncIterable<{ content: AsyncIterable<Uint8Array> }>) {
            yield { ...candidate, content: (async function * () { for await (const b of candidate.content) { read += b.byteLength; yield b } })() }
          }
        }
        yield * content.addAll(counted(), options)
      },
      linkDirectory: async (entries, options) => content.linkDirectory(entries, options),
      blockStat: async (path, options) => content.blockStat(path, options)
    }
    try {
      const cache: SnapshotCache = new Map()
      await table.add(Array.from({ length: 200 }, (_, i) => row(i)))
      await table.checkpoint()
      await snapshotDirectory(counting, work, { cache })
      const first = await filesUnder(work)
      assert.equal(read, sum(first.values()), 'the first snapshot reads every file')
      read = 0
      await table.add(Array.from({ length: 20 }, (_, i) => row(200 + i)))
      const second = await snapshotDirectory(counting, work, { cache })
      // The add writes a data file, a manifest and a transaction, and rewrites LanceDB's small version hint.
      const written = [...(await filesUnder(work))].filter(([path, file]) => first.get(path)?.written !== file.written)
      assert.ok(written.length >= 3 && written.length < first.size, `${written.length} files written of ${first.size}`)
      assert.equal(read, sum(written.map(([, file]) => file)), 'the second reads what the add wrote, no more')
      assert.equal(second, await snapshotDirectory(content, work), 'linked unread, the directory is the one a full add makes')
      // A file whose blocks went (a GC) is read and added again, not linked to blocks no longer here.
      const gone = [...cache.values()][0].cid
      for await (const _ of content.blockRm([gone.toString()], { force: true })) ;
      read = 0
      assert.equal(await snapshotDirectory(counting, work, { cache }), second)
      assert.ok(read > 0, 'the file was read again')
      await content.blockStat(gone.toString(), { offline: true })
      // And it is a table LanceDB opens, with every row.
      const replica = join(dir, 'replica')
      await writeReplica(content, second, replica)
      const copy = await ChunkTable.open(replica, {})
      assert.equal(await copy.count(), 220)
      copy.close()
    } finally {
      table.close()
    }
  })
})
