import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { cat, ls, stat } from '../src/read.ts'
import { goRandomBytes, testDataTree } from './fixtures/go-random.ts'
import { added, bytes, collect, concat, decoder, rootOf, startContent } from './fixtures/node.ts'
import type { Content } from '../src/content.ts'

// Expected CIDs, sizes and bytes come from Kubo's sharness tests:
//  [t0040] ipfs/kubo test/sharness/t0040-add-and-cat.sh (cat --offset/--length on "Hello Worlds!\n")
//  [t0045] ipfs/kubo test/sharness/t0045-ls.sh (ls of testData; ls of a two-chunk file)
//  [t0053] ipfs/kubo test/sharness/t0053-dag.sh (cat through a dag-cbor node)

const HELLO = 'QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH' // "Hello Worlds!\n" [t0040]
const TEST_DATA = 'QmfNy183bXiRVyrhyWtq3TwHn79yHEkiAGFr18P7YNzESj' // [t0045]
const D1 = 'QmSix55yz8CzWXf5ZVM9vgEvijnEeeXiTSarVtsqiiCJss'
const D2 = 'QmR3jhV4XpxxPjPT3Y8vNnWvWNvakdcT3H6vqpRBsX1MLy'

describe('read', () => {
  let content: Content
  let bigfile: Uint8Array
  let bigfileCid: string

  before(async () => {
    content = await startContent()
    await added(content.addAll([{ path: 'hello.txt', content: bytes('Hello Worlds!\n') }]))
    await added(content.addAll(testDataTree()))
    // t0040's 5 MB file: 20 leaves of 256 KiB, for reads across leaf boundaries.
    bigfile = goRandomBytes(5_242_880, 41)
    bigfileCid = await rootOf(content, [{ path: 'bigfile', content: bigfile }])
  })

  after(async () => {
    await content?.stop()
  })

  async function catText (path: string, options?: Parameters<Content['cat']>[1]): Promise<string> {
    return decoder.decode(concat(await collect(content.cat(path, options))))
  }

  describe('cat', () => {
    it('reads a whole file, by CID and by /ipfs/ path [t0040]', async () => {
      assert.equal(await catText(HELLO), 'Hello Worlds!\n')
      assert.equal(await catText(`/ipfs/${HELLO}`), 'Hello Worlds!\n')
    })

    it('reads from an offset [t0040 "cat --offset 10"]', async () => {
      assert.equal(await catText(HELLO, { offset: 10 }), 'ds!\n')
    })

    it('reads a length [t0040 "cat --length 8"]', async () => {
      assert.equal(await catText(HELLO, { length: 8 }), 'Hello Wo')
    })

    it('reads a length from an offset', async () => {
      assert.equal(await catText(HELLO, { offset: 5, length: 6 }), ' World')
    })

    it('reads nothing for length 0, all for the exact or an oversized length [t0040]', async () => {
      assert.equal(await catText(HELLO, { length: 0 }), '')
      assert.equal(await catText(HELLO, { length: 14 }), 'Hello Worlds!\n')
      assert.equal(await catText(HELLO, { length: 100 }), 'Hello Worlds!\n')
    })

    it('reads nothing from an offset at or past the end', async () => {
      assert.deepEqual(await collect(content.cat(HELLO, { offset: 14 })), [])
      assert.deepEqual(await collect(content.cat(HELLO, { offset: 1000 })), [])
    })

    it('reads a multi-leaf file whole and in ranges that cross leaves', async () => {
      assert.equal(bigfileCid, 'QmSr7FqYkxYWGoSfy8ZiaMWQ5vosb18DQGCzjwEQnVHkTb') // [t0040]
      assert.deepEqual(concat(await collect(content.cat(bigfileCid))), bigfile)
      for (const [offset, length] of [[262_140, 10], [262_144, 262_144], [1_000_000, 1_500_000], [5_242_870, 100]]) {
        const got = concat(await collect(content.cat(bigfileCid, { offset, length })))
        assert.deepEqual(got, bigfile.subarray(offset, offset + length), `offset ${offset} length ${length}`)
      }
    })

    it('reads a file inside a directory by path', async () => {
      assert.equal(await catText(`${TEST_DATA}/d2/a`), 'world\n')
      assert.equal(await catText(`/ipfs/${TEST_DATA}/f1`), 'test\n')
    })

    it('refuses a directory with WrongContentTypeError', async () => {
      await assert.rejects(collect(content.cat(TEST_DATA)), { name: 'WrongContentTypeError' })
      await assert.rejects(collect(content.cat(`${TEST_DATA}/d1`)), { name: 'WrongContentTypeError' })
    })

    it('fails on a missing link with NotFoundError', async () => {
      await assert.rejects(collect(content.cat(`${TEST_DATA}/nope`)), { name: 'NotFoundError' })
      await assert.rejects(collect(content.cat(`${TEST_DATA}/f1/deeper`)), { name: 'NotFoundError' })
    })

    it('fails on a bad CID or path with InvalidCIDError', async () => {
      await assert.rejects(collect(content.cat('not-a-cid')), { name: 'InvalidCIDError' })
      await assert.rejects(collect(content.cat('/ipns/whatever')), { name: 'InvalidCIDError' })
      await assert.rejects(collect(content.cat('')), { name: 'InvalidCIDError' })
    })

    it('reads a raw block as a file', async () => {
      const cid = await content.blockPut(bytes('raw bytes\n'))
      assert.equal(await catText(cid.toString()), 'raw bytes\n')
      assert.equal(await catText(cid.toString(), { offset: 4 }), 'bytes\n')
    })

    it('follows links of dag-cbor nodes to files [t0053 "various path traversals work"]', async () => {
      const [foo, bar, baz] = await Promise.all(['foo\n', 'bar\n', 'baz\n'].map(async text => rootOf(content, [{ content: bytes(text) }], { pin: false })))
      const cid = await content.dagPut(bytes(`{"hello":"world","cats":[{"/":"${foo}"},{"water":{"/":"${bar}"}}],"magic":{"/":"${baz}"},"sub":{"dict":"ionary","beep":[0,"bop"]}}`))
      assert.equal(cid.toString(), 'bafyreiblwimnjbqcdoeafiobk6q27jcw64ew7n2fmmhdpldd63edmjecde')
      assert.equal(await catText(`${cid}/cats/0`), 'foo\n')
      assert.equal(await catText(`${cid}/cats/1/water`), 'bar\n')
      assert.equal(await catText(`${cid}/magic`), 'baz\n')
    })

    it('refuses a dag-cbor node itself with WrongContentTypeError', async () => {
      const cid = await content.dagPut(bytes('{"not":"a file"}'))
      await assert.rejects(collect(content.cat(cid.toString())), { name: 'WrongContentTypeError' })
    })
  })

  describe('stat', () => {
    it('gives the size and CID of a file, and the name of the last segment', async () => {
      const s = await content.stat(`${TEST_DATA}/d2/1024`)
      assert.deepEqual([s.cid.toString(), s.size, s.name], ['QmbQBUSRL9raZtNXfpTDeaxQapibJEG6qEY8WqAN22aUzd', 1024, '1024'])
      const big = await content.stat(bigfileCid)
      assert.deepEqual([big.cid.toString(), big.size], [bigfileCid, 5_242_880])
    })

    it('refuses a directory with WrongContentTypeError', async () => {
      await assert.rejects(content.stat(D1), { name: 'WrongContentTypeError' })
    })
  })

  describe('ls', () => {
    it('lists a directory as Kubo does: files with their sizes, directories with none [t0045]', async () => {
      const listing = await content.ls(TEST_DATA)
      assert.equal(listing.cid.toString(), TEST_DATA)
      assert.deepEqual(listing.entries.map(e => [e.cid.toString(), e.size, e.name, e.type]), [
        [D1, 0, 'd1', 'directory'],
        [D2, 0, 'd2', 'directory'],
        ['QmeomffUNfmQy76CQGy9NdmqEnnHU9soCexBnGU3ezPHVH', 5, 'f1', 'file'],
        ['QmNtocSs7MoDkJMc1RkyisCSKvLadujPsfJfSdJ3e1eA1M', 5, 'f2', 'file']
      ])
    })

    it('lists subdirectories by CID and by path [t0045]', async () => {
      const byCid = await content.ls(D2)
      assert.deepEqual(byCid.entries.map(e => [e.cid.toString(), e.size, e.name]), [
        ['QmbQBUSRL9raZtNXfpTDeaxQapibJEG6qEY8WqAN22aUzd', 1024, '1024'],
        ['QmaRGe7bVmVaLmxbrMiVNXqW4pRNNp3xq7hFtyRKA3mtJL', 6, 'a']
      ])
      const byPath = await content.ls(`/ipfs/${TEST_DATA}/d1`)
      assert.equal(byPath.cid.toString(), D1)
      assert.equal(byPath.directory, true)
      assert.deepEqual(byPath.entries.map(e => [e.cid.toString(), e.size, e.name]), [
        ['QmQNd6ubRXaNG6Prov8o6vk3bn6eWsj9FxLGrAVDUAGkGe', 128, '128'],
        ['QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN', 6, 'a']
      ])
    })

    it('lists the chunks of a multi-block file, unnamed [t0045 test_ls_object, `random 500000 2`]', async () => {
      const cid = await rootOf(content, [{ path: 'somefile', content: goRandomBytes(500_000, 2) }])
      const listing = await content.ls(cid)
      assert.deepEqual(listing.entries.map(e => [e.cid.toString(), e.size, e.name, e.type]), [
        ['QmPrM8S5T7Q3M8DQvQMS7m41m3Aq4jBjzAzvky5fH3xfr4', 262_144, '', 'file'],
        ['QmdaAntAzQqqVMo4B8V69nkQd5d918YjHXUe2oF6hr72ri', 237_856, '', 'file']
      ])
    })

    it('lists a one-block file as nothing', async () => {
      assert.deepEqual(await content.ls(HELLO), { cid: CID.parse(HELLO), directory: false, entries: [] })
    })

    it('fails on a missing link with NotFoundError', async () => {
      await assert.rejects(content.ls(`${TEST_DATA}/d3`), { name: 'NotFoundError' })
    })
  })

  describe('with a stub blockstore of only get', () => {
    it('reads through exactly the ReadableStorage shape', async () => {
      const blocks = new Map<string, Uint8Array>()
      const source = content.helia.blockstore
      const wanted: string[] = []
      const stub = {
        get: async function * (cid: CID) {
          wanted.push(cid.toString())
          const cached = blocks.get(cid.toString())
          if (cached != null) {
            yield cached
            return
          }
          for await (const chunk of source.get(cid)) yield chunk
        }
      }
      assert.equal(decoder.decode(concat(await collect(cat(stub, `${TEST_DATA}/f2`)))), 'data\n')
      assert.deepEqual(wanted, [TEST_DATA, 'QmNtocSs7MoDkJMc1RkyisCSKvLadujPsfJfSdJ3e1eA1M'])
      assert.equal((await stat(stub, `${TEST_DATA}/f2`)).size, 5)
      assert.deepEqual((await ls(stub, D2)).entries.map(e => e.name), ['1024', 'a'])
    })
  })
})
