import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { privateNetwork, PNET_MAX_WRITE } from '../src/private-network.ts'
import { swarmOptions } from '../src/options.ts'
import type { Swarm } from '../src/options.ts'
import type { Stream } from '@libp2p/interface'

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

  it('hands the cipher at most PNET_MAX_WRITE bytes at once, however much is written', async () => {
    const [out, inb] = multiaddrConnectionPair()
    const sizes: number[] = []
    const raw = out.send.bind(out)
    out.send = (data) => { sizes.push(data.byteLength); return raw(data) }
    const protector = privateNetwork({ psk: key })()
    const [a, b] = await Promise.all([protector.protect(out), protector.protect(inb)])
    const got = createHash('sha256')
    let n = 0
    b.addEventListener('message', (evt) => {
      got.update(evt.data.subarray())
      n += evt.data.byteLength
    })
    const data = randomBytes(4 * CHUNK)
    a.send(data)
    for (let i = 0; i < 500 && n < data.byteLength; i++) await new Promise(resolve => setTimeout(resolve, 10))
    assert.equal(got.digest('hex'), createHash('sha256').update(data).digest('hex'))
    // after the 24-byte nonce: every write within the bound
    assert.ok(sizes.length > 4 * CHUNK / PNET_MAX_WRITE, `${sizes.length} writes`)
    assert.ok(Math.max(...sizes) <= PNET_MAX_WRITE, `largest write ${Math.max(...sizes)}`)
  })

  it('carries large concurrent transfers on several connections without exhausting the cipher memory', async () => {
    // One node sending to two others at once, as a model replicating does: before
    // writes were cut, this grew xsalsa20's shared WASM memory until it failed.
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
