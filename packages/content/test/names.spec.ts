import assert from 'node:assert/strict'
import { createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createIPNSRecord, IPNSEntry } from '@helia/ipns'
import { ed25519Crypto } from '@ipshipyard/crypto'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { bytes, rootOf, startContent } from './fixtures/node.ts'
import type { Content } from '../src/content.ts'

const HELLO = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o' // "hello world\n", as Kubo adds it
// Helia signs /ipfs/ values with the CID made v1; the record carries the path as published, so that
// resolving gives it back, CIDv0 and all, as Kubo does.
const HELLO_V1 = 'bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby'

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
      assert.equal(await content.names.resolve(selfName), `/ipfs/${HELLO}`)
      assert.equal(await content.names.resolve(`/ipns/${selfName}`), `/ipfs/${HELLO}`)
      // Published as CIDv1, it resolves as CIDv1.
      await content.names.publish(HELLO_V1)
      assert.equal(await content.names.resolve(selfName), `/ipfs/${HELLO_V1}`)
      await content.names.publish(HELLO)
    })

    it('resolves the node by its peer id and by a base32 name too', async () => {
      assert.equal(await content.names.resolve(content.swarm.peerId.toString()), `/ipfs/${HELLO}`)
      assert.equal(await content.names.resolve(content.swarm.peerId.toCID().toString()), `/ipfs/${HELLO}`)
    })

    it('publishes a path, kept as given, and appends what follows the name when resolving', async () => {
      const dir = await rootOf(content, [{ path: 'site/index.html', content: bytes('<h1>hi</h1>\n') }])
      assert.deepEqual(await content.names.publish(`/ipfs/${dir}/`), { name: selfName, value: `/ipfs/${dir}` })
      assert.equal(await content.names.resolve(`/ipns/${selfName}/index.html`), `/ipfs/${dir}/index.html`)
      const published = await content.names.publish(`${dir}/index.html`)
      assert.equal(published.value, `/ipfs/${dir}/index.html`)
      assert.equal(await content.names.resolve(selfName), `/ipfs/${dir}/index.html`)
    })

    it('publishes under a generated key, under that key\'s name', async () => {
      const key = await content.names.generateKey('site-key')
      try {
        assert.notEqual(key.id, selfName)
        assert.match(key.id, /^k51qzi5uqu5d/)
        const published = await content.names.publish(HELLO, { key: 'site-key' })
        assert.deepEqual(published, { name: key.id, value: `/ipfs/${HELLO}` })
        assert.equal(await content.names.resolve(key.id), `/ipfs/${HELLO}`)
        // A republish replaces the value.
        const other = await rootOf(content, [{ content: bytes('second version\n') }])
        await content.names.publish(`/ipfs/${other}`, { key: 'site-key' })
        assert.equal(await content.names.resolve(key.id, { nocache: true }), `/ipfs/${other}`)
      } finally {
        await content.names.removeKey('site-key')
      }
    })

    it('resolves names that point to names, unless asked not to recurse', async () => {
      const key = await content.names.generateKey('alias')
      try {
        await content.names.publish(HELLO)
        assert.deepEqual(await content.names.publish(`/ipns/${selfName}`, { key: 'alias' }), { name: key.id, value: `/ipns/${selfName}` })
        assert.equal(await content.names.resolve(key.id), `/ipfs/${HELLO}`)
        assert.equal(await content.names.resolve(key.id, { recursive: false }), `/ipns/${selfName}`)
      } finally {
        await content.names.removeKey('alias')
      }
    })

    it('answers the path a record carries as published only when it names what the record signs', async () => {
      const key = await ed25519Crypto().generatePrivateKey()
      const name = key.publicKey.toCID().toString(base36)
      const other = await rootOf(content, [{ content: bytes('not what was signed\n') }])
      const record = await createIPNSRecord(key, `/ipfs/${HELLO}`, 1n, 60_000, { data: { _nodeDaemonPath: `/ipfs/${other}` } })
      await content.names.putRecord(`/ipns/${name}`, IPNSEntry.encode(record), { allowOffline: true })
      assert.equal(await content.names.resolve(name), `/ipfs/${HELLO_V1}`)
    })

    it('fails with NotFoundError on a name that was never published', async () => {
      const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toCID().toString(base36)
      await assert.rejects(content.names.resolve(stranger), { name: 'NotFoundError' })
    })

    it('refuses what is not an IPNS name with InvalidParameterError', async () => {
      await assert.rejects(content.names.resolve('not-a-name'), { name: 'InvalidParameterError' })
      await assert.rejects(content.names.resolve(`/ipns/${HELLO.slice(0, 10)}`), { name: 'InvalidParameterError' })
    })

    it('resolves DNSLink names through the TXT record of _dnslink.<domain>, then of the domain', async () => {
      const asked: string[] = []
      const txt: Record<string, string[][]> = {
        '_dnslink.example.com': [['v=spf1 -all'], ['dnslink=/ipfs/', HELLO]],
        'bare.example.org': [['dnslink=/ipns/example.com']],
        '_dnslink.bad.example.net': [['dnslink=not a path']]
      }
      const dns = await startContent({
        resolveTxt: async (hostname) => {
          asked.push(hostname)
          const records = txt[hostname]
          if (records == null) throw Object.assign(new Error(`queryTxt ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' })
          return records
        }
      })
      try {
        // A record may come in chunks; they are joined, as DNS TXT strings are.
        assert.equal(await dns.names.resolve('/ipns/example.com'), `/ipfs/${HELLO}`)
        assert.equal(await dns.names.resolve('example.com/a/b'), `/ipfs/${HELLO}/a/b`)
        assert.equal(await dns.names.resolve('/ipns/bare.example.org'), `/ipfs/${HELLO}`)
        assert.equal(await dns.names.resolve('/ipns/bare.example.org', { recursive: false }), '/ipns/example.com')
        assert.deepEqual(asked.slice(-2), ['_dnslink.bare.example.org', 'bare.example.org'])
        await assert.rejects(dns.names.resolve('/ipns/bad.example.net'), { name: 'NotFoundError', message: /no \/ipfs\/ or \/ipns\/ path/ })
        await assert.rejects(dns.names.resolve('/ipns/none.example.net'), { name: 'NotFoundError', message: /no dnslink= TXT record at _dnslink.none.example.net/ })
      } finally {
        await dns.stop()
      }
      const offline = await startContent({ resolveTxt: async () => { throw Object.assign(new Error('queryTxt ECONNREFUSED example.com'), { code: 'ECONNREFUSED' }) } })
      try {
        await assert.rejects(offline.names.resolve('/ipns/example.com'), { name: 'NotFoundError', message: /DNS did not answer \(queryTxt ECONNREFUSED/ })
      } finally {
        await offline.stop()
      }
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

    it('makes an RSA key of 2048 bits by default, or of the size asked, and publishes with it', async () => {
      const rsa = await content.names.generateKey('rsa-key', { type: 'rsa' })
      try {
        // Kubo's base36 names of RSA keys start k2k4r8: their multihash is a sha2-256 of the public key.
        assert.match(rsa.id, /^k2k4r8/)
        const pem = await content.names.exportKey('rsa-key', 'pem-pkcs8-cleartext')
        assert.equal(createPrivateKey(Buffer.from(pem)).asymmetricKeyDetails?.modulusLength, 2048)
        assert.deepEqual(await content.names.publish(HELLO, { key: 'rsa-key' }), { name: rsa.id, value: `/ipfs/${HELLO}` })
        assert.match(await content.names.resolve(rsa.id), /^\/ipfs\//)
        await assert.rejects(content.names.generateKey('small', { type: 'rsa', size: 1024 }), { name: 'InvalidParameterError' })
        await assert.rejects(content.names.generateKey('sized', { type: 'ed25519', size: 2048 }), { name: 'InvalidParameterError' })
        await assert.rejects(content.names.generateKey('dsa', { type: 'dsa' }), { name: 'InvalidParameterError' })
      } finally {
        await content.names.removeKey('rsa-key')
      }
      const big = await content.names.generateKey('rsa-3072', { type: 'rsa', size: 3072 })
      const pem = await content.names.exportKey('rsa-3072', 'pem-pkcs8-cleartext')
      assert.equal(createPrivateKey(Buffer.from(pem)).asymmetricKeyDetails?.modulusLength, 3072)
      assert.equal((await content.names.removeKey('rsa-3072')).id, big.id)
    })

    it('renames a key, keeping its id, and replaces an existing one only with force', async () => {
      const a = await content.names.generateKey('ren-a')
      const b = await content.names.generateKey('ren-b')
      assert.deepEqual(await content.names.renameKey('ren-a', 'ren-c'), { was: 'ren-a', now: 'ren-c', id: a.id, overwrite: false })
      await assert.rejects(content.names.renameKey('ren-c', 'ren-b'), { name: 'KeyExistsError' })
      assert.deepEqual(await content.names.renameKey('ren-c', 'ren-b', { force: true }), { was: 'ren-c', now: 'ren-b', id: a.id, overwrite: true })
      assert.deepEqual((await content.names.listKeys()).filter(k => k.name.startsWith('ren-')), [{ name: 'ren-b', id: a.id }])
      assert.notEqual(a.id, b.id)
      await assert.rejects(content.names.renameKey('self', 'x'), { name: 'InvalidParameterError' })
      await assert.rejects(content.names.renameKey('ren-b', 'self', { force: true }), { name: 'InvalidParameterError' })
      await assert.rejects(content.names.renameKey('no-such-key', 'x'), { name: 'NotFoundError' })
      await content.names.removeKey('ren-b')
    })

    it('exports and imports keys in both of Kubo\'s formats, and reads keys made elsewhere', async () => {
      const made = await content.names.generateKey('exported')
      try {
        for (const format of ['libp2p-protobuf-cleartext', 'pem-pkcs8-cleartext'] as const) {
          const bytes = await content.names.exportKey('exported', format)
          assert.deepEqual(await content.names.importKey(`copy-${format}`, bytes, { format }), { name: `copy-${format}`, id: made.id })
          await content.names.removeKey(`copy-${format}`)
        }
        await assert.rejects(content.names.exportKey('self'), { name: 'InvalidParameterError' })
        await assert.rejects(content.names.importKey('exported', await content.names.exportKey('exported')), { name: 'KeyExistsError' })
      } finally {
        await content.names.removeKey('exported')
      }
      // A libp2p key's id is its peer id; a PEM from OpenSSL (node:crypto here) gives the same key.
      const libp2pKey = await generateKeyPair('Ed25519')
      const imported = await content.names.importKey('from-libp2p', privateKeyToProtobuf(libp2pKey))
      assert.equal(imported.id, peerIdFromPrivateKey(libp2pKey).toCID().toString(base36))
      await content.names.removeKey('from-libp2p')
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const rsaPem = Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }))
      const rsa = await content.names.importKey('from-pem', rsaPem, { format: 'pem-pkcs8-cleartext' })
      assert.deepEqual(Buffer.from(await content.names.exportKey('from-pem', 'pem-pkcs8-cleartext')), rsaPem)
      assert.match(rsa.id, /^k2k4r8/)
      await content.names.removeKey('from-pem')
      // ECDSA only with allowAnyKeyType, as Kubo's --allow-any-key-type; garbage is refused.
      const ec = Buffer.from(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }))
      await assert.rejects(content.names.importKey('ec', ec, { format: 'pem-pkcs8-cleartext' }), { name: 'InvalidParameterError', message: /only RSA or Ed25519/ })
      await content.names.importKey('ec', ec, { format: 'pem-pkcs8-cleartext', allowAnyKeyType: true })
      await content.names.removeKey('ec')
      await assert.rejects(content.names.importKey('junk', bytes('not a key')), { name: 'InvalidParameterError' })
      await assert.rejects(content.names.importKey('junk', bytes('not a key'), { format: 'pem-pkcs8-cleartext' }), { name: 'InvalidParameterError' })
    })
  })
})
