import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { preSharedKey } from '@libp2p/pnet'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { formatSwarmKey, parseSwarmKey, privateNetwork } from '../src/private-network.ts'
import { swarmOptions } from '../src/options.ts'
import type { Swarm } from '../src/options.ts'
import type { ConnectionProtector, Stream } from '@libp2p/interface'

const PROTOCOL = '/node-daemon/test/sink/1.0.0'
const CHUNK = 1024 * 1024
const CHUNKS = 48

function swarmKey (): Uint8Array {
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}\n`)
}

/** Reads a stream to its end and hashes it. */
async function digest (stream: Stream): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of stream) hash.update(chunk.subarray())
  return hash.digest('hex')
}

async function send (stream: Stream, chunks: Uint8Array[]): Promise<void> {
  for (const chunk of chunks) {
    if (!stream.send(chunk)) await stream.onDrain({ signal: AbortSignal.timeout(30_000) })
  }
  await stream.close({ signal: AbortSignal.timeout(30_000) })
}

describe('private network', () => {
  const key = swarmKey()
  const nodes: Swarm[] = []
  const received = new Map<string, Promise<string>>()

  before(async () => {
    for (let i = 0; i < 3; i++) {
      const node = await createLibp2p(swarmOptions({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', port: 0, swarmKey: key }))
      await node.handle(PROTOCOL, (stream, connection) => {
        received.set(`${connection.remotePeer.toString()}>${node.peerId.toString()}`, digest(stream))
      })
      nodes.push(node)
    }
  })

  after(async () => {
    await Promise.allSettled(nodes.map(async n => n.stop()))
  })

  /** Protects both ends of an in-memory connection pair, one with each protector, and sends `data` from the first. */
  async function roundTrip (left: ConnectionProtector, right: ConnectionProtector, data: Uint8Array[]): Promise<{ sent: string, got: string }> {
    const [out, inb] = multiaddrConnectionPair()
    const [a, b] = await Promise.all([left.protect(out), right.protect(inb)])
    const got = createHash('sha256')
    const sent = createHash('sha256')
    let n = 0
    b.addEventListener('message', (evt) => {
      got.update(evt.data.subarray())
      n += evt.data.byteLength
    })
    let total = 0
    for (const chunk of data) {
      sent.update(chunk)
      total += chunk.byteLength
      a.send(chunk)
    }
    for (let i = 0; i < 500 && n < total; i++) await new Promise(resolve => setTimeout(resolve, 10))
    return { sent: sent.digest('hex'), got: got.digest('hex') }
  }

  it('speaks @libp2p/pnet\'s protocol (Kubo\'s), both ways, across writes of any size', async () => {
    // Sizes that cut XSalsa20's 64-byte blocks anywhere, so the key stream must carry on across writes.
    const data = [1, 63, 64, 65, 4096, 100_003, CHUNK, 7].map(size => randomBytes(size))
    for (const [left, right] of [[privateNetwork({ psk: key })(), preSharedKey({ psk: key })()], [preSharedKey({ psk: key })(), privateNetwork({ psk: key })()]]) {
      const { sent, got } = await roundTrip(left, right, data)
      assert.equal(got, sent)
    }
  })

  it('hands what is sent in one turn of the event loop to the connection in one write, the bytes unchanged', async () => {
    const [out, inb] = multiaddrConnectionPair()
    const [a, b] = await Promise.all([privateNetwork({ psk: key })().protect(out), preSharedKey({ psk: key })().protect(inb)])
    let writes = 0
    const write = out.send.bind(out)
    out.send = (data) => { writes++; return write(data) }
    const got: Buffer[] = []
    b.addEventListener('message', (evt) => { got.push(Buffer.from(evt.data.subarray())) })
    const data = [1, 63, 64, 65, 4096].map(size => randomBytes(size))
    for (const chunk of data) a.send(chunk)
    const total = data.reduce((sum, chunk) => sum + chunk.byteLength, 0)
    for (let i = 0; i < 500 && Buffer.concat(got).byteLength < total; i++) await new Promise(resolve => setTimeout(resolve, 10))
    assert.deepEqual(Buffer.concat(got), Buffer.concat(data))
    assert.equal(writes, 1)
  })

  it('gives garbage, not the bytes, to a side with another key', async () => {
    const { sent, got } = await roundTrip(privateNetwork({ psk: key })(), privateNetwork({ psk: swarmKey() })(), [randomBytes(4096)])
    assert.notEqual(got, sent)
  })

  it('reads swarm.key files in /base16/ and /base64/, and refuses others', () => {
    const raw = randomBytes(32)
    assert.deepEqual(parseSwarmKey(formatSwarmKey(raw)), raw)
    assert.deepEqual(parseSwarmKey(`/key/swarm/psk/1.0.0/\r\n/base64/\r\n${raw.toString('base64')}\r\n`), raw)
    for (const bad of ['/key/swarm/psk/1.0.0/\n/base16/\nabcd\n', `/key/swarm/psk/2.0.0/\n/base16/\n${raw.toString('hex')}\n`, `/key/swarm/psk/1.0.0/\n/bin/\n${raw.toString('hex')}\n`]) {
      assert.throws(() => parseSwarmKey(bad), { name: 'InvalidSwarmKeyError' })
    }
    assert.throws(() => privateNetwork({ psk: new TextEncoder().encode('not a key') }), { name: 'InvalidSwarmKeyError' })
  })

  it('carries large concurrent transfers on several connections', async () => {
    // One node sending to two others at once, as a model replicating does (this
    // once exhausted the WASM memory of @libp2p/pnet's cipher).
    const [from, ...to] = nodes
    const chunks = Array.from({ length: CHUNKS }, () => randomBytes(CHUNK))
    const sent = createHash('sha256')
    for (const c of chunks) sent.update(c)
    const want = sent.digest('hex')
    await Promise.all(to.map(async peer => {
      const stream = await from.dialProtocol(peer.getMultiaddrs()[0], PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      await send(stream, chunks)
    }))
    for (const peer of to) {
      const got = await received.get(`${from.peerId.toString()}>${peer.peerId.toString()}`)
      assert.equal(got, want)
    }
  })
})
