import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encodeTensorDataset } from '../src/dataset.ts'
import { DataLoaders } from '../src/loader.ts'
import { detectFormat, readRecords } from '../src/records.ts'
import type { RecordFormat } from '../src/records.ts'
import type { CatOptions } from '@node-daemon/content'

/** Content's `cat` over bytes in memory, in pieces of `piece` bytes: records cut across chunks at every place. */
function store (files: Record<string, Uint8Array | string>, piece = 7): { cat: (path: string, options?: CatOptions) => AsyncGenerator<Uint8Array>, served: number } {
  const s = {
    served: 0,
    async * cat (path: string, options: CatOptions = {}): AsyncGenerator<Uint8Array> {
      const file = files[path]
      if (file == null) throw Object.assign(new Error(`${path} not found`), { name: 'NotFoundError' })
      const bytes = typeof file === 'string' ? new TextEncoder().encode(file) : file
      const start = options.offset ?? 0
      const end = Math.min(bytes.byteLength, start + (options.length ?? Infinity))
      for (let at = start; at < end; at += piece) {
        options.signal?.throwIfAborted()
        s.served += Math.min(piece, end - at)
        yield bytes.slice(at, Math.min(at + piece, end))
      }
    }
  }
  return s
}

async function all (files: Record<string, Uint8Array | string>, format: RecordFormat, piece = 7): Promise<unknown[]> {
  const out: unknown[] = []
  for await (const record of readRecords(store(files, piece), 'd', format)) out.push(record.value)
  return out
}

function loaders (files: Record<string, Uint8Array | string>, content = store(files)): DataLoaders {
  return new DataLoaders({ content, resolve: async (cid) => { if (files[cid] == null) throw new Error('missing'); return { cid } } })
}

async function pass (l: DataLoaders, id: string, epoch?: number): Promise<unknown[][]> {
  const out: unknown[][] = []
  for await (const batch of l.batches(id, { epoch })) out.push(batch.records)
  return out
}

const JSONL = Array.from({ length: 100 }, (_, i) => JSON.stringify({ text: `record ${i}`, i })).join('\n') + '\n'

describe('dataset records', () => {
  it('reads JSONL values, text lines and CSV rows cut anywhere by chunks', async () => {
    for (const piece of [1, 3, 7, 4096]) {
      assert.deepEqual(await all({ d: '{"a": 1}\r\n\n{"b": "é"}' }, 'jsonl', piece), [{ a: 1 }, { b: 'é' }])
      assert.deepEqual(await all({ d: '\uFEFFone\r\ntwo\n\n  \nthree' }, 'text', piece), ['one', 'two', 'three'])
      const csv = 'name,quote,n\r\nann,"said ""hi"", then left",1\nbob,"two\nlines",2\n\ncy,,3'
      assert.deepEqual(await all({ d: csv }, 'csv', piece), [
        { name: 'ann', quote: 'said "hi", then left', n: '1' },
        { name: 'bob', quote: 'two\nlines', n: '2' },
        { name: 'cy', quote: '', n: '3' }
      ])
    }
  })

  it('reads the rows of a tensor dataset, features beside their labels', async () => {
    const bytes = encodeTensorDataset({ features: Float32Array.from([1, 2, 3, 4, 5, 6]), labels: Int32Array.from([0, 1, 2]), featureCount: 2 })
    assert.deepEqual(await all({ d: bytes }, 'tensors', 5), [{ features: [1, 2], label: 0 }, { features: [3, 4], label: 1 }, { features: [5, 6], label: 2 }])
    assert.equal(await detectFormat(store({ d: bytes }), 'd'), 'tensors')
    assert.equal(await detectFormat(store({ d: ' {"text": "x"}' }), 'd'), 'jsonl')
    assert.equal(await detectFormat(store({ d: 'a,b\n1,2' }), 'd'), 'text')
  })

  it('names the line or row at fault', async () => {
    await assert.rejects(all({ d: '{"a": 1}\n{"a": \n' }, 'jsonl'), { name: 'InvalidDatasetError', message: /^line 2: not JSON/ })
    await assert.rejects(all({ d: 'a,b\n1,2\n3\n' }, 'csv'), { name: 'InvalidDatasetError', message: /row 3 has 1 fields/ })
    await assert.rejects(all({ d: 'a,b\n"1,2\n' }, 'csv'), { name: 'InvalidDatasetError', message: /never closes/ })
    await assert.rejects(all({ d: new Uint8Array([0x7b, 0xff, 0x0a]) }, 'jsonl'), { name: 'InvalidDatasetError', message: /UTF-8/ })
  })
})

describe('DataLoaders', () => {
  it('gives every record once per epoch, in batches, in the order of its seed and epoch', async () => {
    const l = loaders({ d: JSONL })
    const { id, seed } = await l.create('d', { batchSize: 16, seed: 7, shuffleBuffer: 32 })
    assert.equal(seed, 7)
    const first = await pass(l, id)
    assert.deepEqual(first.map(b => b.length), [16, 16, 16, 16, 16, 16, 4])
    const order = first.flat().map(r => (r as { i: number }).i)
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i))
    assert.notDeepEqual(order, Array.from({ length: 100 }, (_, i) => i), 'shuffled')
    const second = (await pass(l, id)).flat()
    assert.notDeepEqual(second, first.flat(), 'the next epoch has another order')
    assert.deepEqual((await pass(l, id, 0)).flat(), first.flat(), 'epoch 0 again is the same')
    const other = loaders({ d: JSONL })
    const same = await other.create('d', { batchSize: 16, seed: 7, shuffleBuffer: 32 })
    assert.deepEqual((await pass(other, same.id)).flat(), first.flat(), 'the same seed on another loader')
    const status = l.status(id)
    assert.deepEqual([status.epochs, status.batches, status.records, status.state, status.dataset.format], [3, 21, 300, 'idle', 'jsonl'])
  })

  it('keeps the order without shuffle, and drops a short last batch when asked', async () => {
    const l = loaders({ d: JSONL })
    const { id } = await l.create('d', { batchSize: 30, shuffle: false, dropLast: true, prefetch: 0 })
    const batches = await pass(l, id)
    assert.deepEqual(batches.map(b => b.length), [30, 30, 30])
    assert.deepEqual(batches.flat().map(r => (r as { i: number }).i), Array.from({ length: 90 }, (_, i) => i))
  })

  it('streams one pass at a time, stops reading when its reader goes, and forgets a loader when it expires', async () => {
    const content = store({ d: JSONL })
    const l = loaders({ d: JSONL }, content)
    const { id } = await l.create('d', { batchSize: 1, shuffle: false, prefetch: 4, ttlMs: 200 })
    const sniffed = content.served
    const stream = l.batches(id)
    await stream.next()
    await assert.rejects(l.batches(id).next(), { name: 'LoaderBusyError' })
    assert.equal(l.status(id).state, 'streaming')
    assert.equal(l.status(id).expiresAt, undefined)
    await stream.return(undefined)
    assert.equal(l.status(id).state, 'idle')
    // The reader took one record; the loader read four ahead, and a chunk more, of the 100.
    const line = JSONL.indexOf('\n') + 1
    assert.ok(content.served - sniffed < 8 * line, `${content.served - sniffed} bytes read of ${JSONL.length}`)
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      try {
        l.status(id)
      } catch (err: any) {
        assert.equal(err.name, 'LoaderNotFoundError')
        return
      }
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    assert.fail('the loader did not expire')
  })

  it('stops the pass of a loader that is closed', async () => {
    const l = loaders({ d: JSONL })
    const { id } = await l.create('d', { batchSize: 1, prefetch: 0 })
    const stream = l.batches(id)
    await stream.next()
    l.close(id)
    await assert.rejects(async () => { for (let i = 0; i < 200; i++) await stream.next() }, { name: 'LoaderNotFoundError' })
    await assert.rejects(l.batches(id).next(), { name: 'LoaderNotFoundError' })
  })

  it('refuses a dataset it cannot find, and a loader it does not have', async () => {
    const l = loaders({ d: JSONL })
    await assert.rejects(l.create('missing'), /missing/)
    await assert.rejects(l.batches('loader_x').next(), { name: 'LoaderNotFoundError' })
    l.stop()
  })
})
