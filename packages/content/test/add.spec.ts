import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { addAll, parseChunker } from '../src/add.ts'
import { hashers } from '../src/codecs.ts'
import { encodeFileLeaf } from '../src/leaf-importer.ts'
import { BlockGuard } from '../src/gc.ts'
import { deterministicRandom, KiB, MiB } from './fixtures/deterministic-random.ts'
import { goRandom, goRandomBytes, testDataTree } from './fixtures/go-random.ts'
import { added, bytes, collect, decoder, rootOf, startContent } from './fixtures/node.ts'
import type { AddEvent } from '../src/add.ts'
import type { Content } from '../src/content.ts'

// Where the expected CIDs come from (all printed by go-ipfs/Kubo, none by this code):
//  [t0040] ipfs/kubo test/sharness/t0040-add-and-cat.sh
//  [t0045] ipfs/kubo test/sharness/t0045-ls.sh
//  [go-ipfs README] "Basic proof of 'ipfs working' locally": echo "hello world" > hello; ipfs add hello
//  [add_test] ipfs/kubo test/cli/add_test.go (TestAdd), whose files come from
//          DeterministicRandomReader (test/cli/testutils/random_deterministic.go)
//  [web3coach] Lukas Lukac (Web3Coach), "A Technical Guide to IPFS – the Decentralized
//          Storage of Web3", freeCodeCamp, June 2021,
//          https://www.freecodecamp.org/news/technical-guide-to-ipfs-decentralized-storage-of-web3/
//          : go-ipfs 0.8 output of `ipfs add` and `ipfs add --chunker=size-64` on a
//          131-byte file, with `ipfs object get` of its root and three leaves

/** Passes chunks through while hashing them with SHA-1, as t0040's `multihash -a=sha1` does. */
function * sha1Tee (source: Iterable<Uint8Array>, hash: ReturnType<typeof createHash>): Generator<Uint8Array> {
  for (const chunk of source) {
    hash.update(chunk)
    yield chunk
  }
}

describe('add', () => {
  let content: Content

  before(async () => {
    content = await startContent()
  })

  after(async () => {
    await content?.stop()
  })

  describe('CIDs equal to Kubo\'s', () => {
    it('of the empty file [t0040]', async () => {
      assert.equal(await rootOf(content, [{ path: 'zero-length-file', content: new Uint8Array(0) }]), 'QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH')
    })

    it('of the empty file with raw leaves [t0040 test_add_cat_raw]', async () => {
      assert.equal(await rootOf(content, [{ path: 'zero-length-file', content: new Uint8Array(0) }], { rawLeaves: true }), 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')
    })

    it('of "hello world\\n" [go-ipfs README]', async () => {
      assert.equal(await rootOf(content, [{ path: 'hello', content: bytes('hello world\n') }]), 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o')
    })

    it('of "hello world" as CIDv0, as CIDv1 with a raw leaf and as CIDv1 with a dag-pb leaf [add_test]', async () => {
      const hw = (): Array<{ content: Uint8Array }> => [{ content: bytes('hello world') }]
      assert.equal(await rootOf(content, hw()), 'Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD')
      assert.equal(await rootOf(content, hw(), { cidVersion: 1 }), 'bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e')
      assert.equal(await rootOf(content, hw(), { cidVersion: 1, rawLeaves: false }), 'bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa')
    })

    it('of "Hello Worlds!\\n", with the default chunker and with size-64 [t0040]', async () => {
      const file = (): Array<{ path: string, content: Uint8Array }> => [{ path: 'hello.txt', content: bytes('Hello Worlds!\n') }]
      assert.deepEqual(await added(content.addAll(file())), [['QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH', 'hello.txt']])
      assert.deepEqual(await added(content.addAll(file(), { chunker: 'size-64' })), [['QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH', 'hello.txt']])
    })

    it('of a 131-byte file cut by --chunker=size-64 into three leaves [web3coach]', async () => {
      const text = 'hello IPFS world by Web3Coach. Testing DAGs\n'.repeat(3).slice(0, -1)
      assert.equal(text.length, 131)
      assert.equal(await rootOf(content, [{ path: 'hello_world.txt', content: bytes(text) }]), 'QmNtQtxeavDXTjCiWAAaxnhKK3LBYfFfpXUXjdMDYXwKtH')
      assert.equal(await rootOf(content, [{ path: 'hello_world.txt', content: bytes(text) }], { chunker: 'size-64' }), 'QmTwtTQgrTaait2qWXYjTsEZiF4sT7CD4U87VqQ27Wnsn8')
      const { entries } = await content.ls('QmTwtTQgrTaait2qWXYjTsEZiF4sT7CD4U87VqQ27Wnsn8')
      assert.deepEqual(entries.map(e => [e.cid.toString(), e.size]), [
        ['QmTbsuUYzy3nT6NApb5t7VUq3iQKZXrJJJY2j1miMVgaJU', 64],
        ['QmNy9iFF8uU1Cn7trxpSgqxMsjmi4zQ7xgyEgsWff5rnfH', 64],
        ['QmdEitCfYgBNxLhxTNvdLaDmTypSAWkGErjw33VZxUbWK3', 3]
      ])
    })

    it('reproduces go-random, the generator of Kubo\'s big test files [t0040 sha1 of `random 5242880 41`]', () => {
      assert.equal(createHash('sha1').update(goRandomBytes(5_242_880, 41)).digest('hex'), '5620fb92eb5a49c9986b5c6844efda37e471660e')
    })

    it('of a 5 MB file of 20 leaves, with the flags of t0040\'s test_add_cat_5MB [t0040]', async () => {
      const data = goRandomBytes(5_242_880, 41)
      const file = (): Array<{ path: string, content: Uint8Array }> => [{ path: 'bigfile', content: data }]
      assert.equal(await rootOf(content, file(), { onlyHash: true }), 'QmSr7FqYkxYWGoSfy8ZiaMWQ5vosb18DQGCzjwEQnVHkTb')
      assert.equal(await rootOf(content, file(), { onlyHash: true, rawLeaves: true }), 'QmbdLHCmdi48eM8T7D67oXjA1S2Puo8eMfngdHhdPukFd6')
      assert.equal(await rootOf(content, file(), { onlyHash: true, cidVersion: 1 }), 'bafybeigfnx3tka2rf5ovv2slb7ymrt4zbwa3ryeqibe6fipyt5vgsrli3u')
      assert.equal(await rootOf(content, file(), { onlyHash: true, cidVersion: 1, rawLeaves: false }), 'bafybeieyifrgpjn3yengthr7qaj72ozm2aq3wm53srgeprc43w67qpvfqa')
    })

    it('of 174 leaves in one level and of 175 leaves in two levels [add_test legacy-cid-v0, seed "v0-seed"]', async () => {
      const oneLevel = await rootOf(content, [{ content: deterministicRandom(44544 * KiB, 'v0-seed') }], { onlyHash: true })
      assert.equal(oneLevel, 'QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2')
      // 44800 KiB > 174 × 256 KiB: the balanced DAG grows a second level.
      const twoLevels = await rootOf(content, [{ content: deterministicRandom(44800 * KiB, 'v0-seed') }], { onlyHash: true })
      assert.equal(twoLevels, 'QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf')
    })

    it('of a 100 MB file of 400 leaves in two levels, CIDv0 and CIDv1 [t0040 test_add_cat_expensive]', async () => {
      const sha1 = createHash('sha1')
      const v0 = await rootOf(content, [{ path: 'bigfile', content: sha1Tee(goRandom(104_857_600, 42), sha1) }], { onlyHash: true })
      assert.equal(sha1.digest('hex'), '885b197b01e0f7ff584458dc236cb9477d2e736d')
      assert.equal(v0, 'QmU9SWAPPmNEKZB8umYMmjYvN7VyHqABNvdA6GUi4MMEz3')
      const v1 = await rootOf(content, [{ path: 'bigfile', content: goRandom(104_857_600, 42) }], { onlyHash: true, cidVersion: 1 })
      assert.equal(v1, 'bafybeidkj5ecbhrqmzrcee2rw7qwsx24z3364qya3fnp2ktkg2tnsrewhi')
    })

    it('with chunker=size-1048576 and CIDv1 raw leaves, one and two levels [add_test test-cid-v1, seed "v1-seed"]', async () => {
      // The test-cid-v1 profile: CIDv1, raw leaves, Import.UnixFSChunker=size-1048576, 174 links.
      const options = { onlyHash: true, cidVersion: 1 as const, chunker: 'size-1048576' }
      assert.equal(await rootOf(content, [{ content: deterministicRandom(174 * MiB, 'v1-seed') }], options), 'bafybeigwduxcf2aawppv3isnfeshnimkyplvw3hthxjhr2bdeje4tdaicu')
      assert.equal(await rootOf(content, [{ content: deterministicRandom(175 * MiB, 'v1-seed') }], options), 'bafybeidhd7lo2n2v7lta5yamob3xwhbxcczmmtmhquwhjesi35jntf7mpu')
    })
  })

  describe('many files and directories', () => {
    it('adds several files as separate roots, each pinned [t0040 "add with multiple files"]', async () => {
      const lines = await added(content.addAll([
        { path: 'hello.txt', content: bytes('Hello Worlds!\n') },
        { path: 'hello2.txt', content: bytes('Helloo Worlds!\n') }
      ]))
      assert.deepEqual(lines, [
        ['QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH', 'hello.txt'],
        ['Qmf35k66MZNW2GijohUmXQEWKZU4cCGTCwK6idfnt152wJ', 'hello2.txt']
      ])
      const pins = await collect(content.pinLs('recursive', lines.map(([cid]) => cid)))
      assert.deepEqual(pins.map(p => [p.cid.toString(), p.type]), lines.map(([cid]) => [cid, 'recursive']))
    })

    it('names a nameless file by its CID, as Kubo names stdin, and pins it [t0040 "Hello Neptune"]', async () => {
      assert.deepEqual(await added(content.addAll([{ content: bytes('Hello Neptune!\nHello Pluton!') }])), [
        ['QmZDhWpi8NvKrekaYYhxKCdNVGWsFFe1CREnAjP1QbPaB3', 'QmZDhWpi8NvKrekaYYhxKCdNVGWsFFe1CREnAjP1QbPaB3']
      ])
      const pins = await collect(content.pinLs('all', ['QmZDhWpi8NvKrekaYYhxKCdNVGWsFFe1CREnAjP1QbPaB3']))
      assert.deepEqual(pins.map(p => p.type), ['recursive'])
    })

    it('links a nameless file into a wrapping directory under its CID, as Kubo\'s adder does', async () => {
      const lines = await added(content.addAll([
        { content: bytes('Hello Neptune!\nHello Pluton!') },
        { path: 'mars.txt', content: bytes('Hello Mars!\n') }
      ], { wrapWithDirectory: true, pin: false }))
      const neptune = 'QmZDhWpi8NvKrekaYYhxKCdNVGWsFFe1CREnAjP1QbPaB3'
      assert.deepEqual(lines.slice(0, 2), [[neptune, neptune], ['QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN', 'mars.txt']])
      const root = lines[2][0]
      assert.deepEqual((await content.ls(root)).entries.map(e => [e.name, e.cid.toString()]), [[neptune, neptune], ['mars.txt', 'QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN']])
    })

    const planets = (): Array<{ path: string, content: Uint8Array }> => [
      { path: 'planets/mars.txt', content: bytes('Hello Mars!\n') },
      { path: 'planets/venus.txt', content: bytes('Hello Venus!\n') }
    ]

    it('adds a directory, files first and the directory last [t0040 add_directory]', async () => {
      assert.deepEqual(await added(content.addAll(planets())), [
        ['QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN', 'planets/mars.txt'],
        ['QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4', 'planets/venus.txt'],
        ['QmWSgS32xQEcXMeqd3YPJLrNBLSdsfYCep2U7CFkyrjXwY', 'planets']
      ])
    })

    it('adds a directory with raw leaves [t0040 add_directory --raw-leaves]', async () => {
      assert.deepEqual(await added(content.addAll(planets(), { rawLeaves: true })), [
        ['bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4', 'planets/mars.txt'],
        ['bafkreihfsphazrk2ilejpekyltjeh5k4yvwgjuwg26ueafohqioeo3sdca', 'planets/venus.txt'],
        ['QmfWfQfKCY5Ukv9peBbxM5vqWM9BzmqUSXvdCgjT2wsiBT', 'planets']
      ])
    })

    it('adds a directory as CIDv1, which implies raw leaves [t0040 add_directory --cid-version=1]', async () => {
      assert.deepEqual(await added(content.addAll(planets(), { cidVersion: 1 })), [
        ['bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4', 'planets/mars.txt'],
        ['bafkreihfsphazrk2ilejpekyltjeh5k4yvwgjuwg26ueafohqioeo3sdca', 'planets/venus.txt'],
        ['bafybeih7e5dmkyk25up5vxug4q3hrg2fxbzf23dfrac2fns5h7z4aa7ioi', 'planets']
      ])
    })

    it('adds a directory as CIDv1 without raw leaves [t0040 add_directory --cid-version=1 --raw-leaves=false]', async () => {
      assert.deepEqual(await added(content.addAll(planets(), { cidVersion: 1, rawLeaves: false })), [
        ['bafybeiawta2ntdmsy24aro35w3homzl4ak7svr3si7l7gesvq4erglyye4', 'planets/mars.txt'],
        ['bafybeicvkvhs2fr75ynebtdjqpgm4g2fc63abqbmysupwpmcjl4gx7mzrm', 'planets/venus.txt'],
        ['bafybeif5tuep5ap2d7zyhbktucey75aoacxufgt6i3v4gebmixyipnyp7y', 'planets']
      ])
    })

    it('adds nested directories, inner directories before outer ones [t0040 "ipfs add -rn"]', async () => {
      const lines = await added(content.addAll([
        { path: 'moons/jupiter/europa.txt', content: bytes('Hello Europa!\n') },
        { path: 'moons/mercury.txt', content: bytes('hey youre no moon!\n') },
        { path: 'moons/saturn/titan.txt', content: bytes('Hello Titan!\n') }
      ], { onlyHash: true }))
      assert.deepEqual(lines, [
        ['Qmbjg7zWdqdMaK2BucPncJQDxiALExph5k3NkQv5RHpccu', 'moons/jupiter/europa.txt'],
        ['QmUJjVtnN8YEeYcS8VmUeWffTWhnMQAkk5DzZdKnPhqUdK', 'moons/mercury.txt'],
        ['QmZzppb9WHn552rmRqpPfgU5FEiHH6gDwi3MrB9cTdPwdb', 'moons/saturn/titan.txt'],
        ['QmS5mZddhFPLWFX3w6FzAy9QxyYkaxvUpsWCtZ3r7jub9J', 'moons/jupiter'],
        ['QmaMagZT4rTE7Nonw8KGSK4oe1bh533yhZrCo1HihSG8FK', 'moons/saturn'],
        ['QmVKvomp91nMih5j6hYBA8KjbiaYvEetU2Q7KvtZkLe9nQ', 'moons']
      ])
    })

    it('adds t0045\'s testData tree, go-random files included [t0045]', async () => {
      const lines = await added(content.addAll(testDataTree()))
      assert.deepEqual(lines, [
        ['QmQNd6ubRXaNG6Prov8o6vk3bn6eWsj9FxLGrAVDUAGkGe', 'testData/d1/128'],
        ['QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN', 'testData/d1/a'],
        ['QmbQBUSRL9raZtNXfpTDeaxQapibJEG6qEY8WqAN22aUzd', 'testData/d2/1024'],
        ['QmaRGe7bVmVaLmxbrMiVNXqW4pRNNp3xq7hFtyRKA3mtJL', 'testData/d2/a'],
        ['QmeomffUNfmQy76CQGy9NdmqEnnHU9soCexBnGU3ezPHVH', 'testData/f1'],
        ['QmNtocSs7MoDkJMc1RkyisCSKvLadujPsfJfSdJ3e1eA1M', 'testData/f2'],
        ['QmSix55yz8CzWXf5ZVM9vgEvijnEeeXiTSarVtsqiiCJss', 'testData/d1'],
        ['QmR3jhV4XpxxPjPT3Y8vNnWvWNvakdcT3H6vqpRBsX1MLy', 'testData/d2'],
        ['QmfNy183bXiRVyrhyWtq3TwHn79yHEkiAGFr18P7YNzESj', 'testData']
      ])
    })

    it('wraps files in a directory that comes last, unnamed', async () => {
      // The wrapper of mars.txt and venus.txt is the same DAG as t0040's planets directory.
      const lines = await added(content.addAll([
        { path: 'mars.txt', content: bytes('Hello Mars!\n') },
        { path: 'venus.txt', content: bytes('Hello Venus!\n') }
      ], { wrapWithDirectory: true, pin: false }))
      assert.deepEqual(lines, [
        ['QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN', 'mars.txt'],
        ['QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4', 'venus.txt'],
        ['QmWSgS32xQEcXMeqd3YPJLrNBLSdsfYCep2U7CFkyrjXwY', '']
      ])
    })

    it('pins only the wrapper when wrapping', async () => {
      const root = await rootOf(content, [{ path: 'wrapped-alone.txt', content: bytes('wrapped alone\n') }], { wrapWithDirectory: true })
      const file = (await content.ls(root)).entries[0].cid.toString()
      const pins = await collect(content.pinLs('all', [root, file]))
      assert.deepEqual(pins.map(p => [p.cid.toString(), p.type]), [[root, 'recursive'], [file, 'indirect']])
    })
  })

  describe('hash, inline, trickle, mode and mtime', () => {
    /** Every block under `root`, read back and checked against its own CID, and the DAG's total size. */
    async function walk (root: CID): Promise<{ blocks: CID[], size: number }> {
      const blocks: CID[] = []
      let size = 0
      const stack = [root]
      while (stack.length > 0) {
        const cid = stack.pop() as CID
        blocks.push(cid)
        const block = await content.blockGet(cid.toString())
        size += block.byteLength
        const hasher = hashers[Object.keys(hashers).find(name => hashers[name].code === cid.multihash.code) ?? '']
        assert.deepEqual((await hasher.digest(block)).digest, cid.multihash.digest, `${cid} holds other bytes`)
        if (cid.code === dagPb.code) stack.push(...dagPb.decode(block).Links.map(l => l.Hash))
      }
      return { blocks, size }
    }

    it('hashes with sha2-512, as CIDv1 with raw leaves [add_test shortStringCidV1Sha512]', async () => {
      const [[cid]] = await added(content.addAll([{ content: bytes('hello world') }], { hash: 'sha2-512', pin: false }))
      assert.equal(cid, 'bafkrgqbqt3gerhas23vuzrapkdeqf4vu2dwxp3srdj6hvg6nhsug2tgyn6mj3u23yx7utftq3i2ckw2fwdh5qmhid5qf3t35yvkc5e5ottlw6')
    })

    it('hashes every block of a DAG with the hash asked, links and sizes included', async () => {
      for (const hash of ['sha2-512', 'blake2b-256', 'sha3-256']) {
        const events = await collect(content.addAll([{ path: 'd/big.bin', content: new Uint8Array(300_000).fill(3) }, { path: 'd/small.txt', content: bytes('small\n') }], { hash, chunker: 'size-65536', pin: false }))
        const root = events.at(-1)
        assert.ok(root?.type === 'entry' && root.name === 'd')
        const { blocks, size } = await walk(root.cid)
        assert.equal(blocks.length, 1 + 1 + 5 + 1, hash)
        assert.ok(blocks.every(cid => cid.version === 1 && cid.multihash.code === hashers[hash].code), hash)
        // The size Kubo reports is that of the whole DAG, its longer CIDs included.
        assert.equal(root.size, size, hash)
      }
      await assert.rejects(collect(content.addAll([{ content: bytes('x') }], { hash: 'sha2-512', cidVersion: 0 })), { name: 'InvalidParameterError', message: /CIDv0 only supports sha2-256/ })
      await assert.rejects(collect(content.addAll([{ content: bytes('x') }], { hash: 'md5' })), { name: 'InvalidParameterError' })
    })

    it('inlines blocks of at most inline-limit bytes as identity CIDs, as Kubo\'s --inline', async () => {
      const [[small]] = await added(content.addAll([{ content: bytes('hello') }], { inline: true, pin: false }))
      const leaf = encodeFileLeaf(bytes('hello'))
      assert.equal(small, CID.createV1(dagPb.code, identity.digest(leaf)).toString())
      const [[big]] = await added(content.addAll([{ content: bytes('x'.repeat(40)) }], { inline: true, pin: false }))
      assert.equal(CID.parse(big).version, 0)
      const [[limit]] = await added(content.addAll([{ content: bytes('x'.repeat(40)) }], { inline: true, inlineLimit: 64, pin: false }))
      assert.equal(CID.parse(limit).multihash.code, identity.code)
      // A directory of inlined files links to them by their identity CIDs.
      const [, [dir]] = await added(content.addAll([{ path: 'w/a', content: bytes('a') }], { inline: true, pin: false }))
      assert.equal(dagPb.decode(await content.blockGet(dir)).Links[0].Hash.multihash.code, identity.code)
      await assert.rejects(collect(content.addAll([{ content: bytes('x') }], { inline: true, inlineLimit: 129 })), { name: 'InvalidParameterError' })
    })

    it('lays a file out as a trickle DAG with trickle, as Kubo\'s --trickle', async () => {
      // 200 chunks: balanced puts 174 under one node and 26 under another; trickle puts
      // 174 leaves right under the root, then a subtree holding the other 26.
      const data = new Uint8Array(200 * 16).fill(9)
      const [[balanced]] = await added(content.addAll([{ content: data }], { chunker: 'size-16', pin: false }))
      const [[trickled]] = await added(content.addAll([{ content: data }], { chunker: 'size-16', trickle: true, pin: false }))
      assert.equal(dagPb.decode(await content.blockGet(balanced)).Links.length, 2)
      const links = dagPb.decode(await content.blockGet(trickled)).Links
      assert.equal(links.length, 175)
      assert.equal(decoder.decode(await content.readFile(trickled)), decoder.decode(data))
    })

    it('stores mode and mtime in the UnixFS node, a one-chunk file as one node with its data, and reports them', async () => {
      const mtime = { secs: 1_700_000_000n, nsecs: 5 }
      const events = await collect(content.addAll([{ path: 'm.txt', content: bytes('with metadata\n') }], { mode: 0o600, mtime, pin: false }))
      const entry = events.at(-1)
      assert.ok(entry?.type === 'entry')
      const expected = dagPb.encode({ Data: new UnixFS({ type: 'file', data: bytes('with metadata\n'), mode: 0o600, mtime }).marshal(), Links: [] })
      assert.equal(entry.cid.toString(), CID.createV0(await sha256.digest(expected)).toString())
      assert.deepEqual([entry.mode, entry.mtime], [0o600, mtime])
      // A file's own mode wins over the option's; directories sent take the option's too.
      const dir = await collect(content.addAll([{ path: 'md' }, { path: 'md/own.txt', content: bytes('own\n'), mode: 0o640 }], { mode: 0o700, pin: false }))
      const [file, parent] = dir.filter(e => e.type === 'entry')
      assert.ok(file.type === 'entry' && parent.type === 'entry')
      assert.deepEqual([file.mode, parent.mode], [0o640, 0o700])
      assert.equal(UnixFS.unmarshal(dagPb.decode(await content.blockGet(parent.cid.toString())).Data as Uint8Array).mode, 0o700)
      await assert.rejects(collect(content.addAll([{ content: bytes('x') }], { mode: 0o17777 })), { name: 'InvalidParameterError' })
    })
  })

  describe('options', () => {
    it('stores nothing and pins nothing with only-hash', async () => {
      const data = bytes('only hashed, never stored\n')
      const lines = await added(content.addAll([{ path: 'dir/only-hash.txt', content: data }], { onlyHash: true }))
      assert.equal(lines.length, 2)
      for (const [cid] of lines) {
        assert.equal(await content.helia.blockstore.has(CID.parse(cid)), false, `${cid} was stored`)
        assert.equal(await content.helia.pins.isPinned(CID.parse(cid)), false, `${cid} was pinned`)
      }
      // The same bytes added for real give the same CIDs.
      assert.deepEqual(await added(content.addAll([{ path: 'dir/only-hash.txt', content: data }], { pin: false })), lines)
    })

    it('pins the root recursively by default', async () => {
      const cid = await rootOf(content, [{ path: 'pinned.txt', content: bytes('pinned by default\n') }])
      assert.deepEqual((await collect(content.pinLs('all', [cid]))).map(p => p.type), ['recursive'])
      assert.equal(await content.helia.blockstore.has(CID.parse(cid)), true)
    })

    it('stores but does not pin with pin: false', async () => {
      const cid = await rootOf(content, [{ path: 'unpinned.txt', content: bytes('not pinned\n') }], { pin: false })
      assert.equal(await content.helia.blockstore.has(CID.parse(cid)), true)
      await assert.rejects(collect(content.pinLs('all', [cid])), { name: 'PinError' })
    })

    it('asks a pin function once, after every file was read', async () => {
      const asked: number[] = []
      let read = 0
      async function * counted (): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < 3; i++) {
          read++
          yield bytes(`piece ${i}\n`)
        }
      }
      const cid = await rootOf(content, [{ path: 'asked.txt', content: counted() }], { pin: () => { asked.push(read); return false } })
      assert.deepEqual(asked, [3])
      await assert.rejects(collect(content.pinLs('all', [cid])), { name: 'PinError' })
    })

    it('reports progress per file as bytes read so far, before the file\'s entry', async () => {
      const events = await collect(content.addAll([
        { path: 'three-chunks.bin', content: new Uint8Array(600_000).fill(7) },
        { path: 'small.txt', content: bytes('small\n') }
      ], { progress: true, pin: false }))
      const shape = events.map(e => e.type === 'progress' ? ['progress', e.name, e.bytes] : ['entry', e.name, e.size])
      assert.deepEqual(shape, [
        ['progress', 'three-chunks.bin', 262_144],
        ['progress', 'three-chunks.bin', 524_288],
        ['progress', 'three-chunks.bin', 600_000],
        ['entry', 'three-chunks.bin', 600_194],
        ['progress', 'small.txt', 6],
        ['entry', 'small.txt', 14]
      ])
      // An entry's size is that of its whole DAG, as Kubo's add reports it: root and leaves.
      const root = events.find(e => e.type === 'entry')
      assert.ok(root?.type === 'entry')
      const blocks = [root.cid.toString(), ...(await content.ls(root.cid.toString())).entries.map(e => e.cid.toString())]
      assert.equal(blocks.length, 4)
      let total = 0
      for (const cid of blocks) total += (await content.blockStat(cid)).size
      assert.equal(total, 600_194)
    })

    it('reports no progress unless asked', async () => {
      const events = await collect(content.addAll([{ path: 'quiet.txt', content: bytes('quiet\n') }], { pin: false }))
      assert.deepEqual(events.map(e => e.type), ['entry'])
    })

    it('rejects a chunker other than size-N, before reading anything', async () => {
      for (const chunker of ['rabin', 'rabin-36-512-1024', 'buzhash', 'size-0', 'size--1', 'size-abc', 'size-1.5', 'size-1310721', 'size-', '262144']) {
        let read = false
        const source = (function * () { read = true; yield { path: 'x', content: bytes('x') } })()
        await assert.rejects(collect(content.addAll(source, { chunker })), { name: 'InvalidParameterError' }, chunker)
        assert.equal(read, false, chunker)
      }
    })

    it('rejects a CID version other than 0 and 1', async () => {
      await assert.rejects(collect(content.addAll([{ content: bytes('x') }], { cidVersion: 2 as any })), { name: 'InvalidParameterError' })
    })

    it('stops on an aborted signal', async () => {
      const controller = new AbortController()
      controller.abort()
      await assert.rejects(collect(content.addAll([{ path: 'aborted.txt', content: bytes('never\n') }], { signal: controller.signal })), { name: 'AbortError' })
    })
  })

  describe('parseChunker', () => {
    it('defaults to Kubo\'s 256 KiB and reads size-N up to 1.25 MiB', () => {
      assert.equal(parseChunker(undefined), 262_144)
      assert.equal(parseChunker(''), 262_144)
      assert.equal(parseChunker('size-1'), 1)
      assert.equal(parseChunker('size-262144'), 262_144)
      assert.equal(parseChunker('size-1310720'), 1_310_720)
      assert.throws(() => parseChunker('size-1310721'), { name: 'InvalidParameterError' })
    })
  })

  describe('pinning what it added', () => {
    it('reads back only the nodes with links, not the leaves it wrote, and syncs the store once', async () => {
      const store = new MemoryBlockstore()
      const reads: string[] = []
      const order: string[] = []
      const get = store.get.bind(store)
      store.get = (cid, options) => { reads.push(cid.toString()); return get(cid, options) }
      const sync = async (): Promise<void> => { order.push('sync') }
      const counted = await startContent({ blockstore: Object.assign(store, { sync }) })
      try {
        const events = await collect(counted.addAll([{ path: 'big', content: deterministicRandom(3 * MiB, 'pinning') }], { rawLeaves: false }))
        const root = (events.at(-1) as { cid: CID }).cid
        // Twelve leaves of 256 KiB and their parent: only the parent is read, to find the leaves.
        assert.deepEqual(reads.map(r => CID.parse(r).multihash.bytes.toString()), [root.multihash.bytes.toString()])
        assert.deepEqual((await collect(counted.pinLs('recursive'))).map(p => p.cid.toString()), [root.toString()])
        assert.equal((await collect(counted.pinLs('indirect'))).length, 12)
        assert.deepEqual(order, ['sync'])
      } finally {
        await counted.stop()
      }
    })
  })

  describe('addAll with a stub of its components', () => {
    it('puts every block into the blockstore and pins the root through pins.add', async () => {
      const puts: string[] = []
      const pinned: Array<{ cid: string, depth: number | undefined, metadata: unknown }> = []
      const components = {
        blockstore: {
          put: async (cid: CID) => { puts.push(cid.toString()); return cid },
          get: async function * () { throw new Error('not read') }
        },
        pins: {
          get: async () => { throw Object.assign(new Error('not pinned'), { name: 'NotFoundError' }) },
          add: async function * (cid: CID, options: { depth?: number, metadata?: unknown }) {
            pinned.push({ cid: cid.toString(), depth: options.depth, metadata: options.metadata })
            yield cid
          }
        },
        guard: new BlockGuard()
      } as any
      const events: AddEvent[] = await collect(addAll(components, [{ path: 'hello', content: bytes('hello world\n') }]))
      assert.deepEqual(events.map(e => e.type === 'entry' ? e.cid.toString() : e.type), ['QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'])
      assert.deepEqual(puts, ['QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'])
      assert.deepEqual(pinned, [{ cid: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', depth: Infinity, metadata: { cid: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o' } }])
    })
  })
})
