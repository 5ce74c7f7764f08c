import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { bytes, rootOf, startContent } from './fixtures/node.ts'
import type { Content } from '../src/content.ts'

const HELLO = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o' // "hello world\n", as Kubo adds it
// Helia signs /ipfs/ values with the CID made v1, so a name resolves to the CIDv1 of
// what was published (Kubo would give back the CIDv0 as published): the same content.
const HELLO_V1 = 'bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby'

function v1 (cid: string): string {
  return CID.parse(cid).toV1().toString()
}

describe('names', () => {
  let content: Content
  let selfName: string

  before(async () => {
    content = await startContent()
    // Kubo prints IPNS names as base36 CIDv1 of the libp2p-key codec.
    selfName = content.swarm.peerId.toCID().toString(base36)
    assert.equal(await rootOf(content, [{ content: bytes('hello world\n') }]), HELLO)
  })

  after(async () => {
    await content?.stop()
  })

  describe('publish and resolve', () => {
    it('publishes under the node\'s own key by default and resolves it locally', async () => {
      assert.match(selfName, /^k51qzi5uqu5d/)
      const published = await content.names.publish(HELLO)
      assert.deepEqual(published, { name: selfName, value: `/ipfs/${HELLO}` })
      assert.equal(v1(HELLO), HELLO_V1)
      assert.equal(await content.names.resolve(selfName), `/ipfs/${HELLO_V1}`)
      assert.equal(await content.names.resolve(`/ipns/${selfName}`), `/ipfs/${HELLO_V1}`)
    })

    it('resolves the node by its peer id and by a base32 name too', async () => {
      assert.equal(await content.names.resolve(content.swarm.peerId.toString()), `/ipfs/${HELLO_V1}`)
      assert.equal(await content.names.resolve(content.swarm.peerId.toCID().toString()), `/ipfs/${HELLO_V1}`)
    })

    it('publishes a path, kept as given, and appends what follows the name when resolving', async () => {
      const dir = await rootOf(content, [{ path: 'site/index.html', content: bytes('<h1>hi</h1>\n') }])
      assert.deepEqual(await content.names.publish(`/ipfs/${dir}/`), { name: selfName, value: `/ipfs/${dir}` })
      assert.equal(await content.names.resolve(`/ipns/${selfName}/index.html`), `/ipfs/${v1(dir)}/index.html`)
      const published = await content.names.publish(`${dir}/index.html`)
      assert.equal(published.value, `/ipfs/${dir}/index.html`)
      assert.equal(await content.names.resolve(selfName), `/ipfs/${v1(dir)}/index.html`)
    })

    it('publishes under a generated key, under that key\'s name', async () => {
      const key = await content.names.generateKey('site-key')
      try {
        assert.notEqual(key.id, selfName)
        assert.match(key.id, /^k51qzi5uqu5d/)
        const published = await content.names.publish(HELLO, { key: 'site-key' })
        assert.deepEqual(published, { name: key.id, value: `/ipfs/${HELLO}` })
        assert.equal(await content.names.resolve(key.id), `/ipfs/${HELLO_V1}`)
        // A republish replaces the value.
        const other = await rootOf(content, [{ content: bytes('second version\n') }])
        await content.names.publish(`/ipfs/${other}`, { key: 'site-key' })
        assert.equal(await content.names.resolve(key.id, { nocache: true }), `/ipfs/${v1(other)}`)
      } finally {
        await content.names.removeKey('site-key')
      }
    })

    it('resolves names that point to names, unless asked not to recurse', async () => {
      const key = await content.names.generateKey('alias')
      try {
        await content.names.publish(HELLO)
        assert.deepEqual(await content.names.publish(`/ipns/${selfName}`, { key: 'alias' }), { name: key.id, value: `/ipns/${selfName}` })
        assert.equal(await content.names.resolve(key.id), `/ipfs/${HELLO_V1}`)
        assert.equal(await content.names.resolve(key.id, { recursive: false }), `/ipns/${selfName}`)
      } finally {
        await content.names.removeKey('alias')
      }
    })

    it('fails with NotFoundError on a name that was never published', async () => {
      const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toCID().toString(base36)
      await assert.rejects(content.names.resolve(stranger), { name: 'NotFoundError' })
    })

    it('refuses what is not an IPNS name with InvalidParameterError', async () => {
      await assert.rejects(content.names.resolve('not-a-name'), { name: 'InvalidParameterError' })
      await assert.rejects(content.names.resolve(`/ipns/${HELLO.slice(0, 10)}`), { name: 'InvalidParameterError' })
    })

    it('refuses to publish under a key it does not have, or a value that is no path', async () => {
      await assert.rejects(content.names.publish(HELLO, { key: 'no-such-key' }), { name: 'NotFoundError' })
      await assert.rejects(content.names.publish('not-a-cid'), { name: 'InvalidCIDError' })
    })
  })

  describe('keys', () => {
    it('lists self first, then the others by name, with their IPNS names', async () => {
      const b = await content.names.generateKey('b-key')
      const a = await content.names.generateKey('a-key')
      try {
        assert.deepEqual(await content.names.listKeys(), [
          { name: 'self', id: selfName },
          { name: 'a-key', id: a.id },
          { name: 'b-key', id: b.id }
        ])
        // The id of a key is the libp2p-key CID of its public key.
        const cid = CID.parse(a.id, base36)
        assert.equal(cid.code, 0x72)
        assert.equal(cid.version, 1)
      } finally {
        await content.names.removeKey('a-key')
        await content.names.removeKey('b-key')
      }
      assert.deepEqual(await content.names.listKeys(), [{ name: 'self', id: selfName }])
    })

    it('refuses a second key of the same name with KeyExistsError', async () => {
      const first = await content.names.generateKey('twice')
      try {
        await assert.rejects(content.names.generateKey('twice'), { name: 'KeyExistsError' })
        assert.deepEqual((await content.names.listKeys()).filter(k => k.name === 'twice'), [first])
      } finally {
        await content.names.removeKey('twice')
      }
    })

    it('refuses the names self, empty and with a slash', async () => {
      for (const name of ['self', '', 'a/b']) {
        await assert.rejects(content.names.generateKey(name), { name: 'InvalidParameterError' }, JSON.stringify(name))
      }
    })

    it('removes a key, returning it, after which it cannot publish', async () => {
      const key = await content.names.generateKey('short-lived')
      assert.deepEqual(await content.names.removeKey('short-lived'), key)
      await assert.rejects(content.names.publish(HELLO, { key: 'short-lived' }), { name: 'NotFoundError' })
      await assert.rejects(content.names.removeKey('short-lived'), { name: 'NotFoundError' })
    })

    it('never removes self', async () => {
      await assert.rejects(content.names.removeKey('self'), { name: 'InvalidParameterError' })
      assert.equal((await content.names.listKeys())[0].id, selfName)
    })

    it('keeps the identity as self when it is set again', async () => {
      const before = await content.names.listKeys()
      await content.start()
      assert.deepEqual(await content.names.listKeys(), before)
    })
  })
})
