import { randomBytes } from 'node:crypto'
import { InvalidParametersError } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils'
import sodium from 'sodium-native'
import { HandshakeFailedError, InvalidSwarmKeyError } from './errors.ts'
import type { AbortOptions, ConnectionProtector, Logger, MessageStream, MultiaddrConnection } from '@libp2p/interface'
import type { SendResult } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

/** The first line of a swarm.key file: Kubo's and libp2p's version 1 pre-shared key. */
const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/'
const KEY_BYTES = 32
/** XSalsa20's nonce; each side sends its own before anything else. */
const NONCE_BYTES = 24
/** How long the nonce exchange may take when the upgrader gives no signal, as @libp2p/pnet. */
const EXCHANGE_TIMEOUT_MS = 1_000
/** Enciphered bytes held for the end of the turn at most: more go out at once. */
const FLUSH_BYTES = 64 * 1024

/**
 * The 32-byte key of a swarm.key file (`/key/swarm/psk/1.0.0/`, then
 * `/base16/` or `/base64/`, then the key), as Kubo reads it.
 */
export function parseSwarmKey (data: Uint8Array | string): Uint8Array {
  const [header, codec, value] = (typeof data === 'string' ? data : new TextDecoder().decode(data)).split(/\r?\n/).map(l => l.trim())
  if (header !== SWARM_KEY_HEADER) throw new InvalidSwarmKeyError(`not a swarm key: it does not start with ${SWARM_KEY_HEADER}`)
  let key: Buffer | undefined
  if (codec === '/base16/' && /^[0-9a-f]{64}$/i.test(value ?? '')) key = Buffer.from(value, 'hex')
  else if (codec === '/base64/' && value != null) key = Buffer.from(value, 'base64')
  if (key?.byteLength !== KEY_BYTES) throw new InvalidSwarmKeyError(`no ${KEY_BYTES}-byte key in /base16/ or /base64/`)
  return key
}

/** A swarm.key file, in the /base16/ form libp2p writes, for a 32-byte key. */
export function formatSwarmKey (key: Uint8Array): Uint8Array {
  if (key.byteLength !== KEY_BYTES) throw new InvalidSwarmKeyError(`a swarm key has ${KEY_BYTES} bytes, not ${key.byteLength}`)
  return new TextEncoder().encode(`${SWARM_KEY_HEADER}\n/base16/\n${Buffer.from(key).toString('hex')}\n`)
}

/** One direction's XSalsa20 key stream, carried on across writes. */
function keyStream (nonce: Uint8Array, key: Uint8Array): Buffer {
  const state = Buffer.alloc(sodium.crypto_stream_xor_STATEBYTES)
  sodium.crypto_stream_xor_init(state, nonce, key)
  return state
}

/**
 * A connection XORed with XSalsa20 each way: the key stream of the sender's
 * nonce outbound, of the remote's inbound. Received bytes are deciphered in
 * place, since nothing else holds them; sent ones go to a new buffer, since the
 * layer above (noise) may still hold what it hands us.
 *
 * What is sent in one turn of the event loop goes to the socket in one write:
 * each Raft message, yamux frame and RPC answer was a system call of its own,
 * and joined, the cluster nodes' time in socket writes fell by a third in the
 * pin ingestion bench.
 * The end of the turn (setImmediate), not of the tick as sealed channels do:
 * a node answers many messages of one poll phase, each in its own tick.
 */
class XSalsa20Connection extends AbstractMultiaddrConnection {
  private readonly inner: MultiaddrConnection
  private readonly inbound: Buffer
  private readonly outbound: Buffer
  private outgoing: Buffer[] = []
  private outgoingBytes = 0

  constructor (inner: MultiaddrConnection, key: Uint8Array, localNonce: Uint8Array, remoteNonce: Uint8Array, log: Logger) {
    super({ log, remoteAddr: inner.remoteAddr, direction: inner.direction })
    this.inner = inner
    this.inbound = keyStream(remoteNonce, key)
    this.outbound = keyStream(localNonce, key)
    inner.addEventListener('message', (evt) => {
      const data = evt.data
      if (data instanceof Uint8Array) {
        sodium.crypto_stream_xor_update(this.inbound, data, data)
      } else {
        for (const chunk of data) sodium.crypto_stream_xor_update(this.inbound, chunk, chunk)
      }
      this.onData(data)
    })
    inner.addEventListener('drain', () => { this.onMuxerDrain() })
    inner.addEventListener('close', (evt) => {
      if (evt.error == null) this.onTransportClosed()
      else if (evt.local === true) this.abort(evt.error)
      else this.onRemoteReset()
    })
  }

  sendData (data: Uint8ArrayList): SendResult {
    const out = Buffer.allocUnsafe(data.byteLength)
    let offset = 0
    for (const chunk of data) {
      sodium.crypto_stream_xor_update(this.outbound, out.subarray(offset, offset + chunk.byteLength), chunk)
      offset += chunk.byteLength
    }
    if (this.outgoing.length === 0) {
      setImmediate(() => {
        // The connection's 'drain' resumes sending.
        if (!this.flush()) this.onMuxerNeedsDrain()
      })
    }
    this.outgoing.push(out)
    this.outgoingBytes += out.byteLength
    return { sentBytes: out.byteLength, canSendMore: this.outgoingBytes < FLUSH_BYTES || this.flush() }
  }

  /** Hands what this turn enciphered to the connection as one buffer; false when the connection is full. */
  private flush (): boolean {
    if (this.outgoing.length === 0) return true
    const out = this.outgoing.length === 1 ? this.outgoing[0] : Buffer.concat(this.outgoing, this.outgoingBytes)
    this.outgoing = []
    this.outgoingBytes = 0
    // A connection that closed meanwhile takes nothing more, and says so by throwing.
    if (this.inner.status !== 'open') return true
    return this.inner.send(out)
  }

  sendReset (err: Error): void {
    this.outgoing = []
    this.outgoingBytes = 0
    this.inner.abort(err)
  }

  sendPause (): void {
    this.inner.pause()
  }

  sendResume (): void {
    this.inner.resume()
  }

  async sendClose (options?: AbortOptions): Promise<void> {
    this.flush()
    await this.inner.close(options)
  }
}

const isMultiaddrConnection = (stream: MessageStream): stream is MultiaddrConnection => 'remoteAddr' in stream

/**
 * The private-network protector of Kubo and libp2p (swarm.key, XSalsa20),
 * wire-compatible with @libp2p/pnet, on libsodium: its WASM cipher ran at
 * about 430 MB/s and was an eighth of the CPU of a transfer on each side;
 * libsodium's runs at over 2 GB/s.
 */
export function privateNetwork (init: { psk: Uint8Array }): () => ConnectionProtector {
  const key = parseSwarmKey(init.psk)
  return () => ({
    async protect (connection: MessageStream, options: AbortOptions = { signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS) }): Promise<MessageStream> {
      if (!isMultiaddrConnection(connection)) throw new InvalidParametersError('a private network protects connections, not streams')
      const localNonce = randomBytes(NONCE_BYTES)
      const bytes = byteStream(connection)
      let remote: Uint8ArrayList
      try {
        [remote] = await Promise.all([
          bytes.read({ ...options, bytes: NONCE_BYTES }),
          bytes.write(localNonce, options)
        ])
      } catch (err: any) {
        // A peer outside any private network waits for the multistream header and sends no nonce: say what that means, not just "timeout".
        throw new HandshakeFailedError(`no private-network nonce from the peer (${err.message}): it is not in a private network`, { cause: err })
      }
      return new XSalsa20Connection(bytes.unwrap(), key, localNonce, remote.subarray(), connection.log.newScope('pnet'))
    }
  })
}
