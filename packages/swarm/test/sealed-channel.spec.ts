import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { EventEmitter, once } from 'node:events'
import { connect, createServer } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { defaultLogger } from '@libp2p/logger'
import { Uint8ArrayList } from 'uint8arraylist'
import { dialSealed, MAX_SEALED_FRAME_BYTES, SealedChannelError, SealedListener, SealedStream } from '../src/sealed-channel.ts'
import type { SealedOffer } from '../src/sealed-channel.ts'
import type { Server, Socket } from 'node:net'

const log = defaultLogger().forComponent('test:sealed')

/** Everything a stream delivers until its remote end closes, bounded by a deadline. */
async function readAll (stream: SealedStream, timeoutMs = 10_000): Promise<Buffer> {
  const all = new Uint8ArrayList()
  const deadline = AbortSignal.timeout(timeoutMs)
  for await (const chunk of stream) {
    deadline.throwIfAborted()
    all.append(chunk)
  }
  return Buffer.from(all.subarray())
}

/**
 * A TCP relay between the asker and the listener that records what passes
 * towards the listener and may change it: an outsider on the path.
 */
async function relay (port: number, tamper?: (data: Buffer) => Buffer): Promise<{ port: number, seen: Buffer[], server: Server }> {
  const seen: Buffer[] = []
  const server = createServer((inbound: Socket) => {
    const outbound = connect(port, '127.0.0.1')
    inbound.on('data', (data: Buffer) => {
      seen.push(Buffer.from(data))
      outbound.write(tamper?.(data) ?? data)
    })
    outbound.on('data', (data: Buffer) => { inbound.write(data) })
    inbound.on('end', () => { outbound.end() })
    outbound.on('end', () => { inbound.end() })
    inbound.on('error', () => { outbound.destroy() })
    outbound.on('error', () => { inbound.destroy() })
    inbound.on('close', () => { outbound.destroy() })
    outbound.on('close', () => { inbound.destroy() })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address == null || typeof address === 'string') throw new Error('no relay address')
  return { port: address.port, seen, server }
}

/** The part of a socket a SealedStream uses, handing what is written to `write`; with `held`, it keeps what is written unsent, as a socket whose peer does not read. */
function fakeSocket (write: (data: Uint8Array) => void, held = false): Socket {
  const socket = Object.assign(new EventEmitter(), {
    destroyed: false,
    writableNeedDrain: false,
    writableLength: 0,
    setNoDelay () {},
    cork () {},
    uncork () {},
    write (data: Uint8Array) {
      write(data)
      if (!held) return true
      socket.writableLength += data.byteLength
      socket.writableNeedDrain = true
      return false
    },
    end () {},
    destroy () {},
    pause () {},
    resume () {}
  })
  return socket as unknown as Socket
}

describe('sealed channels', () => {
  const accepted: Array<{ stream: SealedStream, context: unknown }> = []
  let listener: SealedListener
  const waiters: Array<() => void> = []

  before(() => {
    listener = new SealedListener({
      host: '127.0.0.1',
      log,
      onStream: (stream, offer) => {
        accepted.push({ stream, context: offer.context })
        waiters.shift()?.()
      }
    })
  })
  after(async () => {
    for (const { stream } of accepted) stream.abort(new Error('test over'))
    await listener.stop()
  })

  async function nextAccepted (): Promise<{ stream: SealedStream, context: unknown }> {
    const count = accepted.length
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('no channel accepted within 5 s')) }, 5_000)
      waiters.push(() => { clearTimeout(timer); resolve() })
    })
    return accepted[count]
  }

  it('carries bytes both ways, with half-closes, to the peer its offer was made for', async () => {
    const offer = await listener.offer('peer-b')
    const accepting = nextAccepted()
    const asker = await dialSealed('127.0.0.1', offer, log)
    const { stream: server, context } = await accepting
    assert.equal(context, 'peer-b')
    const request = randomBytes(1_000_000)
    const answer = randomBytes(5 * 1024 * 1024)
    asker.send(request.subarray(0, 100))
    asker.send(new Uint8ArrayList(request.subarray(100, 5000), request.subarray(5000)))
    await asker.close()
    assert.deepEqual(await readAll(server), request)
    // The asker's half-close leaves the server's side writable.
    for (let at = 0; at < answer.byteLength; at += 300_000) {
      if (!server.send(answer.subarray(at, at + 300_000))) await server.onDrain()
    }
    await server.close()
    assert.deepEqual(await readAll(asker), answer)
  })

  it('takes each offer once, and a connection without one not at all', async () => {
    const offer = await listener.offer('once')
    const accepting = nextAccepted()
    const first = await dialSealed('127.0.0.1', offer, log)
    await accepting
    const before = accepted.length
    const again = await dialSealed('127.0.0.1', offer, log)
    const guessed = await dialSealed('127.0.0.1', { ...offer, token: new Uint8Array(randomBytes(16)) }, log)
    again.send(Buffer.from('hello'))
    guessed.send(Buffer.from('hello'))
    // The listener closes both sockets without a word.
    assert.equal((await readAll(again)).byteLength, 0)
    assert.equal((await readAll(guessed)).byteLength, 0)
    assert.equal(accepted.length, before)
    first.abort(new Error('done'))
  })

  it('shows an outsider on the path neither the bytes nor the key', async () => {
    const offer = await listener.offer('watched')
    const path = await relay(offer.port)
    try {
      const accepting = nextAccepted()
      const asker = await dialSealed('127.0.0.1', { ...offer, port: path.port }, log)
      const { stream: server } = await accepting
      const secret = Buffer.from('the weights of a model nobody outside the cluster may read '.repeat(1000))
      asker.send(secret)
      await asker.close()
      assert.deepEqual(await readAll(server), secret)
      const wire = Buffer.concat(path.seen)
      assert.ok(wire.byteLength > secret.byteLength, 'the frames went through the relay')
      assert.equal(wire.indexOf(secret.subarray(0, 32)), -1, 'the plaintext is not on the wire')
      assert.equal(wire.indexOf(Buffer.from(offer.key)), -1, 'the key is not on the wire')
      server.abort(new Error('done'))
    } finally {
      path.server.close()
    }
  })

  it('ends the channel at a frame changed on the way, delivering nothing of it', async () => {
    const offer = await listener.offer('tampered')
    let passed = 0
    // Flips one bit of the first frame's ciphertext, after the token.
    const path = await relay(offer.port, (data) => {
      const at = 16 + 4 + 10 - passed
      passed += data.byteLength
      if (at < 0 || at >= data.byteLength) return data
      const changed = Buffer.from(data)
      changed[at] ^= 1
      return changed
    })
    try {
      const accepting = nextAccepted()
      const asker = await dialSealed('127.0.0.1', { ...offer, port: path.port }, log)
      const { stream: server } = await accepting
      const closed = once(server, 'close') as Promise<[{ error?: Error }]>
      asker.send(Buffer.from('a request the outsider wants to change'))
      let got = 0
      server.addEventListener('message', (evt) => { got += evt.data.byteLength })
      const [event] = await closed
      assert.equal(event.error?.name, SealedChannelError.name)
      assert.equal(got, 0)
      asker.abort(new Error('done'))
    } finally {
      path.server.close()
    }
  })

  it('refuses frames sealed under another key', async () => {
    const offer: SealedOffer = await listener.offer('forger')
    const accepting = nextAccepted()
    const forger = await dialSealed('127.0.0.1', { ...offer, key: new Uint8Array(randomBytes(32)) }, log)
    const { stream: server } = await accepting
    const closed = once(server, 'close') as Promise<[{ error?: Error }]>
    forger.send(Buffer.from('a forged request'))
    const [event] = await closed
    assert.equal(event.error?.name, SealedChannelError.name)
    forger.abort(new Error('done'))
  })

  it('deciphers frames as their bytes come, from reads of a reused buffer split anywhere, and hands each on only once its tag verified', async () => {
    const key = new Uint8Array(randomBytes(32))
    const wire: Buffer[] = []
    const sender = new SealedStream(fakeSocket(data => wire.push(Buffer.from(data))), key, 'server', log, 'fake-server')
    const receiver = new SealedStream(fakeSocket(() => {}), key, 'asker', log, 'fake-asker')
    const got: Buffer[] = []
    receiver.addEventListener('message', (evt) => { got.push(Buffer.from(evt.data.subarray())) })
    // One frame of 4 MiB, as each of a gradient's frames is, and small ones around it.
    const payloads = [randomBytes(3), randomBytes(4 * 1024 * 1024), randomBytes(70_000)]
    for (const payload of payloads) sender.send(payload)
    // Frames are written at the end of the tick.
    await new Promise(resolve => setImmediate(resolve))
    const bytes = Buffer.concat(wire)
    const read = Buffer.alloc(2048)
    // Reads of 1 to 2,047 bytes, so that headers and tags are split too.
    let size = 1
    const t0 = performance.now()
    for (let at = 0; at < bytes.byteLength - 1; at += size, size = (size * 7 + 3) % 2047 + 1) {
      const n = bytes.copy(read, 0, at, Math.min(at + size, bytes.byteLength - 1))
      receiver.receive(read.subarray(0, n))
      // The next read overwrites the buffer: nothing may still point into it.
      read.fill(0)
    }
    const ms = performance.now() - t0
    // The last frame lacks the last byte of its tag: it is not handed on.
    assert.equal(got.length, payloads.length - 1)
    receiver.receive(bytes.subarray(bytes.byteLength - 1))
    assert.deepEqual(got.map(b => b.toString('hex')), payloads.map(p => p.toString('hex')))
    assert.ok(ms < 2000, `${ms.toFixed(0)} ms to open a 4 MiB frame from reads of 2 KiB at most`)
    // A byte changed in the large frame: what was deciphered of it before its tag came is dropped, and the channel ends.
    const altered = Buffer.from(bytes)
    altered[2 * 1024 * 1024] ^= 1
    const second = new SealedStream(fakeSocket(() => {}), key, 'asker', log, 'fake-asker-2')
    const lengths: number[] = []
    second.addEventListener('message', (evt) => { lengths.push(evt.data.byteLength) })
    const closed = once(second, 'close') as Promise<[{ error?: Error }]>
    for (let at = 0; at < altered.byteLength; at += 65_536) second.receive(altered.subarray(at, at + 65_536))
    assert.equal((await closed)[0].error?.name, SealedChannelError.name)
    assert.deepEqual(lengths, [3])
    sender.abort(new Error('done'))
    receiver.abort(new Error('done'))
  })

  it('writes small frames at the end of the tick, all at once, and a large send as it is sealed', async () => {
    const key = new Uint8Array(randomBytes(32))
    const writes: number[] = []
    const sender = new SealedStream(fakeSocket(data => writes.push(data.byteLength)), key, 'server', log, 'fake-batching')
    for (let i = 0; i < 3; i++) sender.send(randomBytes(100))
    assert.equal(writes.length, 0, 'a small frame was written before the tick ended')
    await new Promise(resolve => setImmediate(resolve))
    assert.ok(writes.length > 0)
    writes.length = 0
    // Three frames' worth: the first is written before the others are sealed.
    sender.send(randomBytes(3 * 4 * 1024 * 1024))
    assert.ok(writes.length > 0, 'a gradient-sized send waited for the end of the tick')
    sender.abort(new Error('done'))
  })

  it('seals frames ahead of a socket that has not sent the first yet, up to a bound', async () => {
    const key = new Uint8Array(randomBytes(32))
    let written = 0
    const sender = new SealedStream(fakeSocket(data => { written += data.byteLength }, true), key, 'server', log, 'fake-held')
    // Five frames' worth of a gradient, to a peer that reads nothing meanwhile.
    sender.send(randomBytes(5 * 4 * 1024 * 1024))
    assert.ok(written > MAX_SEALED_FRAME_BYTES + 1024, `${written} bytes sealed, one frame, before the first was sent`)
    assert.ok(written < 5 * 4 * 1024 * 1024, 'the whole send was sealed, unbounded')
    sender.abort(new Error('done'))
  })
})
