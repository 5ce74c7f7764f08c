import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import * as dagJose from 'dag-jose'
import { CompactSign, generateKeyPair } from 'jose'
import { CID } from 'multiformats/cid'
import { base32 } from 'multiformats/bases/base32'
import { dagGet, dagPut, getBlock, putBlock } from '../src/blocks.ts'
import { added, bytes, decoder, rootOf, startContent } from './fixtures/node.ts'
import type { Content } from '../src/content.ts'

// Expected CIDs come from Kubo:
//  [t0040] ipfs/kubo test/sharness/t0040-add-and-cat.sh
//  [t0050] ipfs/kubo test/sharness/t0050-block.sh
//  [t0053] ipfs/kubo test/sharness/t0053-dag.sh (its dag-cbor, dag-pb and dag-json forms of one
//          node come from https://github.com/ipld/codec-fixtures, fixture dagpb_Data_some)
//  [add_test] ipfs/kubo test/cli/add_test.go

const DAG_CBOR_NODE = Buffer.from('omREYXRhRQABAgMEZUxpbmtzgA==', 'base64')
const DAG_PB_NODE = Buffer.from('CgUAAQIDBA==', 'base64')
const DAG_JSON_NODE = bytes('{"Data":{"/":{"bytes":"AAECAwQ"}},"Links":[]}')
const AS_DAG_CBOR = 'bafyreieculsmrexh3ty5jentbvuku452o27mst4h2tq2rb2zntqhgcstji'
const AS_DAG_PB = 'bafybeibazl2z4vqp2tmwcfag6wirmtpnomxknqcgrauj7m2yisrz3qjbom'
const AS_DAG_JSON = 'baguqeerajwksxu3lxpomdwxvosl542zl3xknhjgxtq3277gafrhl6vdw5tcq'

/** Blocks in a Map: exactly the Pick<Blocks, 'get' | 'put' | 'has'> the block functions take. */
function mapBlocks (): { blocks: Map<string, Uint8Array>, store: any } {
  const blocks = new Map<string, Uint8Array>()
  const store = {
    put: async (cid: CID, block: Uint8Array) => { blocks.set(cid.toString(), block); return cid },
    has: async (cid: CID) => blocks.has(cid.toString()),
    get: async function * (cid: CID) {
      const block = blocks.get(cid.toString())
      if (block == null) throw Object.assign(new Error(`no block ${cid}`), { name: 'NotFoundError' })
      yield block
    }
  }
  return { blocks, store }
}

describe('blocks', () => {
  let content: Content

  before(async () => {
    content = await startContent()
  })

  after(async () => {
    await content?.stop()
  })

  describe('block put, get and stat', () => {
    it('stores raw bytes as a CIDv1 raw block by default, as Kubo\'s block put [t0040 raw-leaves mars.txt, t0050]', async () => {
      const cid = await content.blockPut(bytes('Hello Mars!\n'))
      assert.equal(cid.toString(), 'bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4')
      assert.equal(decoder.decode(await content.blockGet(cid.toString())), 'Hello Mars!\n')
      assert.equal(decoder.decode(await content.blockGet(`/ipfs/${cid}`)), 'Hello Mars!\n')
      const stat = await content.blockStat(cid.toString())
      assert.deepEqual([stat.cid.toString(), stat.size], [cid.toString(), 12])
    })

    it('hashes with sha2-512 on request [add_test shortStringCidV1Sha512]', async () => {
      const cid = await content.blockPut(bytes('hello world'), { mhtype: 'sha2-512' })
      assert.equal(cid.toString(), 'bafkrgqbqt3gerhas23vuzrapkdeqf4vu2dwxp3srdj6hvg6nhsug2tgyn6mj3u23yx7utftq3i2ckw2fwdh5qmhid5qf3t35yvkc5e5ottlw6')
      assert.equal(cid.multihash.code, 0x13)
    })

    it('stores a dag-cbor and a dag-pb node under their codecs [t0053]', async () => {
      assert.equal((await content.blockPut(DAG_CBOR_NODE, { cidCodec: 'dag-cbor' })).toString(), AS_DAG_CBOR)
      assert.equal((await content.blockPut(DAG_PB_NODE, { cidCodec: 'dag-pb' })).toString(), AS_DAG_PB)
      assert.equal((await content.blockPut(DAG_JSON_NODE, { cidCodec: 'dag-json' })).toString(), AS_DAG_JSON)
    })

    it('takes Kubo\'s legacy format names: cbor, protobuf, and raw', async () => {
      assert.equal((await content.blockPut(DAG_CBOR_NODE, { format: 'cbor' })).toString(), AS_DAG_CBOR)
      assert.equal((await content.blockPut(DAG_PB_NODE, { format: 'protobuf' })).toString(), AS_DAG_PB)
      assert.equal((await content.blockPut(bytes('Hello Mars!\n'), { format: 'raw' })).toString(), 'bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4')
    })

    it('makes a CIDv0 dag-pb block with format v0 [t0040 mars.txt]', async () => {
      // The dag-pb node that Kubo's add makes of "Hello Mars!\n" is QmPrrH...: put back as v0, it keeps that CID.
      const [[mars]] = await added(content.addAll([{ path: 'mars.txt', content: bytes('Hello Mars!\n') }], { pin: false }))
      const node = await content.blockGet(mars)
      assert.equal(mars, 'QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN')
      const cid = await content.blockPut(node, { format: 'v0' })
      assert.equal(cid.toString(), 'QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN')
      assert.equal(cid.version, 0)
      // The empty dag-pb node is Kubo's `ipfs object new`.
      assert.equal((await content.blockPut(new Uint8Array(0), { format: 'v0' })).toString(), 'QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n')
    })

    it('gets and stats the block a path names, as Kubo resolves /ipfs/ paths [t0040 planets]', async () => {
      const planets = await rootOf(content, [
        { path: 'planets/mars.txt', content: bytes('Hello Mars!\n') },
        { path: 'planets/venus.txt', content: bytes('Hello Venus!\n') }
      ], { pin: false })
      assert.equal(planets, 'QmWSgS32xQEcXMeqd3YPJLrNBLSdsfYCep2U7CFkyrjXwY')
      assert.deepEqual(await content.blockGet(`/ipfs/${planets}/venus.txt`), await content.blockGet('QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4'))
      const stat = await content.blockStat(`${planets}/mars.txt`)
      assert.equal(stat.cid.toString(), 'QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN')
      assert.equal(stat.size, (await content.blockGet('QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN')).byteLength)
      await assert.rejects(content.blockGet(`${planets}/pluto.txt`), { name: 'NotFoundError' })
    })

    it('refuses a CIDv0 with another hash than sha2-256 [t0050 "put with sha3 and cidv0 fails"]', async () => {
      await assert.rejects(content.blockPut(new Uint8Array(0), { format: 'v0', mhtype: 'sha2-512' }), { name: 'InvalidParameterError' })
    })

    it('stores bytes that do not decode with the chosen codec, as Kubo does: a block is what its CID says', async () => {
      const bad = bytes('Hello Mars!\n')
      for (const options of [{ cidCodec: 'dag-cbor' }, { cidCodec: 'dag-pb' }, { cidCodec: 'dag-json' }, { format: 'v0' }]) {
        const cid = await content.blockPut(bad, options)
        assert.equal(Buffer.from(cid.multihash.digest).toString('hex'), createHash('sha256').update(bad).digest('hex'))
        assert.deepEqual(await content.blockGet(cid.toString()), bad)
      }
    })

    it('refuses a block over 1 MiB unless allowBigBlock, as Kubo\'s block put and dag put', async () => {
      const limit = new Uint8Array(1_048_576).fill(7)
      assert.equal((await content.blockStat((await content.blockPut(limit)).toString())).size, 1_048_576)
      const big = new Uint8Array(1_048_577).fill(7)
      await assert.rejects(content.blockPut(big), { name: 'InvalidParameterError', message: /over 1MiB.*allow-big-block/ })
      assert.equal((await content.blockStat((await content.blockPut(big, { allowBigBlock: true })).toString())).size, 1_048_577)
      const bigNode = bytes(JSON.stringify({ s: 'x'.repeat(1_048_576) }))
      await assert.rejects(content.dagPut(bigNode), { name: 'InvalidParameterError', message: /over 1MiB/ })
      assert.equal((await content.dagPut(bigNode, { allowBigBlock: true })).code, 0x71)
    })

    it('hashes with the sha3, keccak, blake2 and blake3 functions Kubo takes', async () => {
      const input = bytes('hello world')
      for (const [mhtype, code, nodeHash] of [['sha3-256', 0x16, 'sha3-256'], ['sha3-512', 0x14, 'sha3-512'], ['blake2b-512', 0xb240, 'blake2b512'], ['blake2s-256', 0xb260, 'blake2s256']] as const) {
        const cid = await content.blockPut(input, { mhtype })
        assert.equal(cid.multihash.code, code)
        assert.equal(Buffer.from(cid.multihash.digest).toString('hex'), createHash(nodeHash).update(input).digest('hex'), mhtype)
      }
      // Known answers: keccak-256 of "hello world" (Ethereum's hash) and BLAKE3's.
      assert.equal(Buffer.from((await content.blockPut(input, { mhtype: 'keccak-256' })).multihash.digest).toString('hex'), '47173285a8d7341e5e972fc677286384f802f8ef42a5ec5f03bbfa254cb01fad')
      assert.equal(Buffer.from((await content.blockPut(input, { mhtype: 'blake3' })).multihash.digest).toString('hex'), 'd74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24')
      const inline = await content.blockPut(input, { mhtype: 'identity' })
      assert.deepEqual([inline.multihash.code, decoder.decode(inline.multihash.digest)], [0, 'hello world'])
      await assert.rejects(content.blockPut(new Uint8Array(129), { mhtype: 'identity' }), { name: 'InvalidParameterError' })
    })

    it('refuses an unknown codec or hash, git-raw and md5 among them', async () => {
      await assert.rejects(content.blockPut(bytes('x'), { cidCodec: 'git-raw' }), { name: 'InvalidParameterError' })
      await assert.rejects(content.blockPut(bytes('x'), { mhtype: 'md5' }), { name: 'InvalidParameterError' })
    })

    it('refuses a bad CID with InvalidCIDError', async () => {
      await assert.rejects(content.blockGet('bafy-nope'), { name: 'InvalidCIDError' })
      await assert.rejects(content.blockStat(''), { name: 'InvalidCIDError' })
    })

    it('waits for a block it does not have until the signal aborts', async () => {
      // With no peers a missing block cannot arrive; the caller's deadline ends the wait.
      const missing = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
      await assert.rejects(getBlock(content.helia.blockstore, CID.parse(missing), { signal: AbortSignal.timeout(200) }), { name: 'LoadBlockFailedError' })
    })

    it('puts and gets through a stub of exactly get, put and has', async () => {
      const { blocks, store } = mapBlocks()
      const cid = await putBlock(store, bytes('Hello Venus!\n'))
      assert.deepEqual([...blocks.keys()], ['bafkreihfsphazrk2ilejpekyltjeh5k4yvwgjuwg26ueafohqioeo3sdca']) // [t0040 raw-leaves venus.txt]
      assert.equal(decoder.decode(await getBlock(store, cid)), 'Hello Venus!\n')
    })
  })

  describe('dag put and get', () => {
    let foo: string
    let bar: string
    let baz: string
    let ipldObject: Uint8Array

    before(async () => {
      [foo, bar, baz] = await Promise.all(['foo\n', 'bar\n', 'baz\n'].map(async text => rootOf(content, [{ content: bytes(text) }], { pin: false })))
      ipldObject = bytes(`{"hello":"world","cats":[{"/":"${foo}"},{"water":{"/":"${bar}"}}],"magic":{"/":"${baz}"},"sub":{"dict":"ionary","beep":[0,"bop"]}}`)
    })

    it('stores dag-json input as dag-cbor by default, or as dag-json [t0053]', async () => {
      assert.equal((await content.dagPut(ipldObject)).toString(), 'bafyreiblwimnjbqcdoeafiobk6q27jcw64ew7n2fmmhdpldd63edmjecde')
      assert.equal((await content.dagPut(ipldObject, { inputCodec: 'dag-json', storeCodec: 'dag-cbor' })).toString(), 'bafyreiblwimnjbqcdoeafiobk6q27jcw64ew7n2fmmhdpldd63edmjecde')
      assert.equal((await content.dagPut(ipldObject, { storeCodec: 'dag-json' })).toString(), 'baguqeera6gviseelmbzn2ugoddo5vulxlshqs3kw5ymgsb6w4cabnoh4ldpa')
    })

    it('stores one node given in any of dag-cbor, dag-json and dag-pb as any of them [t0053]', async () => {
      const inputs: Array<[string, Uint8Array]> = [['dag-cbor', DAG_CBOR_NODE], ['dag-json', DAG_JSON_NODE], ['dag-pb', DAG_PB_NODE]]
      for (const [inputCodec, input] of inputs) {
        const stored = await Promise.all(['dag-cbor', 'dag-pb', 'dag-json'].map(async storeCodec => (await content.dagPut(input, { inputCodec, storeCodec })).toString()))
        assert.deepEqual(stored, [AS_DAG_CBOR, AS_DAG_PB, AS_DAG_JSON], inputCodec)
      }
    })

    it('stores small objects with Kubo\'s CIDs [t0053 "dag put multiple files"]', async () => {
      assert.equal((await content.dagPut(bytes('{"foo":"bar"}'))).toString(), 'bafyreiblaotetvwobe7cu2uqvnddr6ew2q3cu75qsoweulzku2egca4dxq')
      assert.equal((await content.dagPut(bytes('{"foo":"baz"}'))).toString(), 'bafyreibqp7zvp6dvrqhtkbwuzzk7jhtmfmngtiqjajqpm6gtw55o7kqzfi')
    })

    it('resolves paths through fields and list indexes [t0053 "resolving sub-objects works"]', async () => {
      const cid = (await content.dagPut(ipldObject)).toString()
      const get = async (path: string): Promise<string> => decoder.decode(await content.dagGet(path))
      assert.equal(await get(`${cid}/hello`), '"world"')
      assert.equal(await get(`${cid}/sub`), '{"beep":[0,"bop"],"dict":"ionary"}')
      assert.equal(await get(`${cid}/sub/beep`), '[0,"bop"]')
      assert.equal(await get(`${cid}/sub/beep/0`), '0')
      assert.equal(await get(`/ipfs/${cid}/sub/beep/1`), '"bop"')
    })

    it('follows links into other blocks [t0053 "can call dag get with a path"]', async () => {
      const cid = (await content.dagPut(ipldObject)).toString()
      assert.equal(decoder.decode(await content.dagGet(`${cid}/cats/0`)), '{"Data":{"/":{"bytes":"CAISBGZvbwoYBA"}},"Links":[]}')
      assert.equal(decoder.decode(await content.dagGet(`${cid}/cats/1/water`)), decoder.decode(await content.dagGet(bar)))
      assert.equal(decoder.decode(await content.dagGet(`${cid}/magic`)), decoder.decode(await content.dagGet(baz)))
    })

    it('resolves a path through a link to a field of the linked node [t0053 "dag resolve"]', async () => {
      const nested = await content.dagPut(bytes('{"data":123}'))
      const outer = await content.dagPut(bytes(`{"obj":{"/":"${nested}"}}`))
      assert.equal(decoder.decode(await content.dagGet(`${outer}/obj/data`)), '123')
      // t0053's dag stat: the two blocks are 8 and 54 - 8 bytes.
      assert.equal((await content.blockStat(nested.toString())).size, 8)
      assert.equal((await content.blockStat(outer.toString())).size, 46)
    })

    it('prints a UnixFS node as dag-json [t0053 "can view protobuf object with dag get"]', async () => {
      const cid = await rootOf(content, [{ content: bytes('foobar\n') }], { pin: false })
      assert.equal(decoder.decode(await content.dagGet(cid)), '{"Data":{"/":{"bytes":"CAISB2Zvb2JhcgoYBw"}},"Links":[]}')
    })

    it('walks dag-pb links by name and reads dag-pb fields [t0053 "traversals using /ipld/ work"]', async () => {
      const pb = await content.dagPut(DAG_PB_NODE, { inputCodec: 'dag-pb', storeCodec: 'dag-pb' })
      assert.equal(decoder.decode(await content.dagGet(`${pb}/Data`)), '{"/":{"bytes":"AAECAwQ"}}')
      const planets = await rootOf(content, [
        { path: 'planets/mars.txt', content: bytes('Hello Mars!\n') },
        { path: 'planets/venus.txt', content: bytes('Hello Venus!\n') }
      ], { pin: false })
      assert.equal(planets, 'QmWSgS32xQEcXMeqd3YPJLrNBLSdsfYCep2U7CFkyrjXwY') // [t0040]
      assert.deepEqual(await content.dagGet(`${planets}/venus.txt`), await content.dagGet('QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4'))
    })

    it('transcodes a dag-pb node to dag-cbor [t0053 "can get dag-pb block transcoded as dag-cbor"]', async () => {
      const pb = await content.dagPut(DAG_PB_NODE, { inputCodec: 'dag-pb', storeCodec: 'dag-pb' })
      const cbor = await content.dagGet(pb.toString(), 'dag-cbor')
      assert.equal(createHash('sha256').update(cbor).digest('hex'), '82a2e4c892e7dcf1d491b30d68aa73ba76bec94f87d4e1a887596ce0730a534a')
      assert.equal((await content.dagPut(cbor, { inputCodec: 'dag-cbor' })).toString(), AS_DAG_CBOR)
    })

    it('round-trips a directory through dag-json back to dag-pb [t0053 "dag put with json dag-pb works"]', async () => {
      const dir = await rootOf(content, [{ path: 'test_file', content: bytes('foo\n') }], { wrapWithDirectory: true, pin: false })
      const json = await content.dagGet(dir)
      const again = await content.dagPut(json, { storeCodec: 'dag-pb', inputCodec: 'dag-json' })
      assert.equal(again.toString(), CID.parse(dir).toV1().toString(base32))
      const raw = await content.blockGet(dir)
      assert.equal((await content.dagPut(raw, { storeCodec: 'dag-pb', inputCodec: 'dag-pb' })).toString(), again.toString())
    })

    it('prints whole blocks with output codec raw, and refuses raw with a path', async () => {
      const cid = (await content.dagPut(ipldObject)).toString()
      assert.deepEqual(await content.dagGet(cid, 'raw'), await content.blockGet(cid))
      await assert.rejects(content.dagGet(`${cid}/hello`, 'raw'), { name: 'InvalidParameterError' })
    })

    it('fails on a missing field with NotFoundError', async () => {
      const cid = (await content.dagPut(ipldObject)).toString()
      await assert.rejects(content.dagGet(`${cid}/nope`), { name: 'NotFoundError' })
      await assert.rejects(content.dagGet(`${cid}/sub/beep/7`), { name: 'NotFoundError' })
      await assert.rejects(content.dagGet(`${cid}/hello/deeper`), { name: 'NotFoundError' })
    })

    it('refuses bad input, codecs and hashes with InvalidParameterError', async () => {
      await assert.rejects(content.dagPut(bytes('{"a":')), { name: 'InvalidParameterError' })
      await assert.rejects(content.dagPut(Uint8Array.of(0xff), { inputCodec: 'dag-cbor' }), { name: 'InvalidParameterError' })
      await assert.rejects(content.dagPut(bytes('{}'), { storeCodec: 'git-raw' }), { name: 'InvalidParameterError' })
      await assert.rejects(content.dagPut(bytes('{}'), { hash: 'md5' }), { name: 'InvalidParameterError' })
      // dag-pb cannot hold arbitrary fields.
      await assert.rejects(content.dagPut(bytes('{"hello":"world"}'), { storeCodec: 'dag-pb' }), { name: 'InvalidParameterError' })
      const cid = (await content.dagPut(bytes('{}'))).toString()
      await assert.rejects(content.dagGet(cid, 'yaml'), { name: 'InvalidParameterError' })
    })

    it('stores a dag-jose JWS and reads it back, through its link too', async () => {
      const payloadCid = await content.dagPut(bytes('{"hello":"jose"}'))
      const { privateKey } = await generateKeyPair('ES256')
      const jws = await new CompactSign(payloadCid.bytes).setProtectedHeader({ alg: 'ES256' }).sign(privateKey)
      const encoded = dagJose.encode(jws)
      const cid = await content.dagPut(encoded, { inputCodec: 'dag-jose', storeCodec: 'dag-jose' })
      assert.equal(cid.code, 0x85)
      assert.deepEqual(await content.blockGet(cid.toString()), encoded)
      assert.equal(decoder.decode(await content.dagGet(`${cid}/link`)), '{"hello":"jose"}')
      const asJson = JSON.parse(decoder.decode(await content.dagGet(cid.toString())))
      assert.deepEqual([asJson.link['/'], asJson.signatures.length], [payloadCid.toString(), 1])
      assert.equal((await content.blockPut(encoded, { cidCodec: 'dag-jose' })).toString(), cid.toString())
    })

    it('puts and gets through a stub of exactly get, put and has', async () => {
      const { blocks, store } = mapBlocks()
      const cid = await dagPut(store, bytes('{"foo":"bar"}'))
      assert.deepEqual([...blocks.keys()], ['bafyreiblaotetvwobe7cu2uqvnddr6ew2q3cu75qsoweulzku2egca4dxq'])
      assert.equal(decoder.decode(await dagGet(store, `${cid}/foo`)), '"bar"')
    })
  })
})
