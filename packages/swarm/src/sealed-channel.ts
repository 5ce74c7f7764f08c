/**
 * Sealed channels: bulk streams between two members of a cluster on a TCP
 * connection of their own, enciphered once, where a libp2p stream is
 * enciphered twice (pnet, then noise) and framed three times (noise's 64 KiB
 * frames, yamux's, the protocol's).
 *
 * Why one layer is enough for bulk streams between members, in the threat
 * model of a private cluster (members share the pnet key; outsiders must
 * neither read nor join; members authenticate each other by peer id):
 *
 * - The channel's key is fresh and random, made by the serving member for one
 *   connection, and handed to the asking member inside a libp2p stream on
 *   their existing connection: under pnet (outsiders cannot read it) and under
 *   noise, whose handshake authenticated both peer ids (no other member can
 *   read it either). So the key is known to exactly the two peers, and proving
 *   it proves the peer id the key was given to.
 * - Every frame is sealed with AES-256-GCM under that key (one key each way,
 *   nonces a frame counter that never repeats under a key), the frame's
 *   length as associated data: a frame that was read, altered, replayed,
 *   reordered, dropped or cut is refused by the tag check or the counter, and
 *   the connection ends. That is what noise gives a libp2p connection; pnet
 *   gives it confidentiality from outsiders only, which the channel's key
 *   gives too (pnet's XSalsa20 has no tag, so it adds no integrity).
 * - Joining: the listener takes a connection only if its first 16 bytes are
 *   the single-use token of an offer it made and that has not expired, and
 *   every frame after must verify under the offer's key. An outsider who
 *   connects, or replays a recorded connection, gets nothing but a closed
 *   socket; one who sees a token on the wire and races the member to it wins
 *   a connection it cannot read or write, which costs the member a fallback
 *   to the libp2p stream (denial of service, which any on-path attacker has).
 * - What an outsider learns that pnet hides: that the port speaks this
 *   protocol, and the frames' lengths (noise frames show theirs to members).
 *
 * So the channel keeps every property the two layers gave bulk streams, and
 * one more: other members cannot read it, as they could read pnet alone.
 * Only bulk streams use it: block streams, and training's gradient streams
 * (tens of MB a step each way); Raft and cluster messages stay on libp2p.
 * AES-GCM runs on AES-NI through OpenSSL, several times the speed of
 * noise's ChaCha20-Poly1305 on this hardware.
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, randomBytes } from 'node:crypto'
import { createServer, connect } from 'node:net'
import { StreamStateError } from '@libp2p/interface'
import { AbstractStream } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import type { AbortOptions, Logger } from '@libp2p/interface'
import type { SendResult } from '@libp2p/utils'
import type { DecipherGCM, KeyObject } from 'node:crypto'
import type { Server, Socket } from 'node:net'

const TOKEN_BYTES = 16
const KEY_BYTES = 32
const TAG_BYTES = 16
const HEADER_BYTES = 4
const NONCE_BYTES = 12
/** The largest frame's plaintext: a block of 4 MiB and its framing, with room to spare. */
export const MAX_SEALED_FRAME_BYTES = 4 * 1024 * 1024 + 64 * 1024
/** How long an offer waits for its connection, and a connection for its token. */
const OFFER_TTL_MS = 30_000
/** Offers outstanding at once: more means a member asks for channels it does not use. */
const MAX_OFFERS = 256
/**
 * The asker's socket reads into one buffer of this size, reused: a read then
 * holds several frames (blocks), each deciphered straight out of it into one
 * buffer of its own, where 64 KiB reads cut every block into pieces that were
 * deciphered apart and joined again.
 */
const ASKER_READ_BYTES = 1024 * 1024
/** Sealed bytes written without waiting for the tick's end: a block's worth of many small frames waits, a large frame does not. */
const FLUSH_BYTES = 1024 * 1024
/**
 * Sealed bytes the socket may hold unsent before sealing waits for it to
 * drain. Its own mark (16 KiB) stopped a large send after each frame until
 * the other end had read it all: a process switch each way per 4 MiB frame
 * on busy cores, where frames sealed ahead keep the connection full.
 */
const SEAL_AHEAD_BYTES = 8 * 1024 * 1024

/** A frame failed its tag check, or a connection broke the channel's framing. */
export class SealedChannelError extends Error {
  static name = 'SealedChannelError'
  name = 'SealedChannelError'
}

/** What the asking member needs to open a channel: where, the token to present, and the key. */
export interface SealedOffer {
  port: number
  token: Uint8Array<ArrayBuffer>
  key: Uint8Array<ArrayBuffer>
}

/** A direction's key, made a KeyObject once: given as bytes, every frame's cipher would make one. */
const directionKey = (key: Uint8Array, direction: 'asker' | 'server'): KeyObject => createSecretKey(createHmac('sha256', key).update(`node-daemon sealed channel ${direction}`).digest())

/**
 * One end of a sealed channel: a libp2p Stream over a TCP socket, so that a
 * protocol written for libp2p streams runs on it unchanged.
 */
export class SealedStream extends AbstractStream {
  private readonly socket: Socket
  private readonly sendKey: KeyObject
  private readonly receiveKey: KeyObject
  private readonly sendNonce = Buffer.alloc(NONCE_BYTES)
  private readonly receiveNonce = Buffer.alloc(NONCE_BYTES)
  /** The frame being read: its header came, its bytes are deciphered as they come, its tag is awaited. */
  private frame?: { length: number, decipher: DecipherGCM, received: number, plaintext: Uint8ArrayList }
  /** A header's and a tag's bytes, which may come split over reads; `gathered` counts those of the one being read (never both at once). */
  private readonly head = Buffer.alloc(HEADER_BYTES)
  private readonly tag = Buffer.alloc(TAG_BYTES)
  private gathered = 0
  /** Sealed frames not yet handed to the socket: the frames of one tick go in one write. */
  private outgoing: Buffer[] = []
  private outgoingBytes = 0

  constructor (socket: Socket, key: Uint8Array, role: 'asker' | 'server', log: Logger, id: string) {
    super({ id, log, direction: role === 'asker' ? 'outbound' : 'inbound', maxMessageSize: MAX_SEALED_FRAME_BYTES, maxReadBufferLength: 4 * MAX_SEALED_FRAME_BYTES })
    this.socket = socket
    this.sendKey = directionKey(key, role)
    this.receiveKey = directionKey(key, role === 'asker' ? 'server' : 'asker')
    socket.setNoDelay(true)
    // The asker's socket hands its reads to receive() itself (see dialSealed).
    if (role === 'server') socket.on('data', (data: Buffer) => { this.receive(data) })
    socket.on('drain', () => { this.onMuxerDrain() })
    socket.on('end', () => { this.onRemoteCloseWrite() })
    socket.on('error', (err) => { this.abort(err) })
    socket.on('close', () => { this.onTransportClosed() })
  }

  /**
   * Seals `data` as one frame. Frames are written at the end of the tick, all
   * in one write: a block stream's requests are small and many, and a system
   * call each cost the asker more than deciphering the blocks they brought.
   * A large frame is sealed FLUSH_BYTES at a time, and each piece written
   * once sealed, so that a gradient's frame is on its way, and deciphered at
   * the other end, while the rest of it is sealed, not after.
   */
  sendData (data: Uint8ArrayList): SendResult {
    const header = Buffer.allocUnsafe(HEADER_BYTES)
    header.writeUInt32BE(data.byteLength)
    const cipher = createCipheriv('aes-256-gcm', this.sendKey, nextNonce(this.sendNonce), { authTagLength: TAG_BYTES })
    cipher.setAAD(header)
    if (this.outgoing.length === 0) process.nextTick(() => { this.flush() })
    this.outgoing.push(header)
    for (const chunk of data) {
      for (let at = 0; at < chunk.byteLength; at += FLUSH_BYTES) {
        const sealed = cipher.update(chunk.subarray(at, at + FLUSH_BYTES))
        this.outgoing.push(sealed)
        this.outgoingBytes += sealed.byteLength
        if (this.outgoingBytes >= FLUSH_BYTES) this.flush()
      }
    }
    cipher.final()
    this.outgoing.push(cipher.getAuthTag())
    return { sentBytes: data.byteLength, canSendMore: this.socket.writableLength < SEAL_AHEAD_BYTES }
  }

  private flush (): void {
    const frames = this.outgoing
    this.outgoing = []
    this.outgoingBytes = 0
    if (this.socket.destroyed) return
    this.socket.cork()
    let more = true
    for (const part of frames) more = this.socket.write(part)
    this.socket.uncork()
    // The socket's 'drain' resumes sending.
    if (!more) this.onMuxerNeedsDrain()
  }

  sendReset (): void {
    this.socket.destroy()
  }

  sendPause (): void {
    this.socket.pause()
  }

  sendResume (): void {
    this.socket.resume()
  }

  async sendCloseWrite (options?: AbortOptions): Promise<void> {
    options?.signal?.throwIfAborted()
    this.flush()
    this.socket.end()
  }

  async sendCloseRead (): Promise<void> {}

  /**
   * Deciphers each frame's bytes as they arrive, straight out of the read
   * that brought them, and hands the frame on once its tag verified; a frame
   * that does not verify ends the channel. Nothing of `data` is kept, so the
   * asker's socket reads into one buffer it reuses. Frames were opened once
   * whole: every read's bytes of a large frame were copied to wait for the
   * rest, and all of it was deciphered after its last byte came, on the path
   * of a round trip (a gradient's 4 MiB there and back took 3x what TCP
   * took).
   */
  receive (data: Uint8Array): void {
    let at = 0
    while (at < data.byteLength) {
      const frame = this.frame
      if (frame == null) {
        at += this.gather(this.head, data, at)
        if (this.gathered < HEADER_BYTES) return
        this.gathered = 0
        const length = this.head.readUInt32BE(0)
        if (length > MAX_SEALED_FRAME_BYTES) {
          this.abort(new SealedChannelError(`a frame of ${length} bytes, more than ${MAX_SEALED_FRAME_BYTES}`))
          return
        }
        const decipher = createDecipheriv('aes-256-gcm', this.receiveKey, nextNonce(this.receiveNonce), { authTagLength: TAG_BYTES })
        decipher.setAAD(this.head)
        this.frame = { length, decipher, received: 0, plaintext: new Uint8ArrayList() }
      } else if (frame.received < frame.length) {
        const end = Math.min(data.byteLength, at + frame.length - frame.received)
        frame.plaintext.append(frame.decipher.update(data.subarray(at, end)))
        frame.received += end - at
        at = end
      } else {
        at += this.gather(this.tag, data, at)
        if (this.gathered < TAG_BYTES) return
        this.gathered = 0
        this.frame = undefined
        frame.decipher.setAuthTag(this.tag)
        try {
          frame.decipher.final()
        } catch {
          this.abort(new SealedChannelError('a frame failed its authentication'))
          return
        }
        if (this.readStatus === 'closed' || this.readStatus === 'closing') continue
        this.onData(frame.plaintext)
      }
    }
  }

  /** Copies what `data` has, from `at`, of the header or the tag being read into `into`; returns the bytes taken. */
  private gather (into: Buffer, data: Uint8Array, at: number): number {
    const n = Math.min(into.byteLength - this.gathered, data.byteLength - at)
    into.set(data.subarray(at, at + n), this.gathered)
    this.gathered += n
    return n
  }
}

/** The next nonce of a direction: a 96-bit frame counter, incremented before each use. */
function nextNonce (nonce: Buffer): Buffer {
  for (let i = NONCE_BYTES - 1; i >= 0; i--) {
    nonce[i] = (nonce[i] + 1) & 0xff
    if (nonce[i] !== 0) break
  }
  return nonce
}

/**
 * The serving end: a TCP listener that takes connections only for offers it
 * made. Started on the first offer, so that a node that never serves a bulk
 * stream never listens.
 */
export class SealedListener {
  private readonly host: string
  private readonly log: Logger
  private readonly onStream: (stream: SealedStream, offer: { context: unknown }) => void
  private readonly offers = new Map<string, { key: Uint8Array, context: unknown, timer: NodeJS.Timeout }>()
  private server?: Server
  private listening?: Promise<number>
  private streams = 0

  /** `onStream` gets each accepted channel with the context its offer was made with (who it was made for). */
  constructor (init: { host: string, log: Logger, onStream: (stream: SealedStream, offer: { context: unknown }) => void }) {
    this.host = init.host
    this.log = init.log
    this.onStream = init.onStream
  }

  /** A single-use offer of a channel, valid for OFFER_TTL_MS; `context` comes back with the channel. */
  async offer (context: unknown, options: AbortOptions = {}): Promise<SealedOffer> {
    if (this.offers.size >= MAX_OFFERS) throw new SealedChannelError(`${MAX_OFFERS} channel offers are outstanding`)
    const port = await this.listen(options)
    const token = randomBytes(TOKEN_BYTES)
    const key = randomBytes(KEY_BYTES)
    const id = token.toString('hex')
    const timer = setTimeout(() => { this.offers.delete(id) }, OFFER_TTL_MS)
    timer.unref()
    this.offers.set(id, { key, context, timer })
    return { port, token, key }
  }

  async stop (): Promise<void> {
    for (const { timer } of this.offers.values()) clearTimeout(timer)
    this.offers.clear()
    const server = this.server
    this.server = undefined
    this.listening = undefined
    if (server == null) return
    server.close()
    // Accepted channels belong to the block stream, which aborts them as it stops.
  }

  private async listen (options: AbortOptions): Promise<number> {
    this.listening ??= new Promise<number>((resolve, reject) => {
      const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => { this.accept(socket) })
      server.once('error', reject)
      server.listen(0, this.host, () => {
        server.off('error', reject)
        server.on('error', (err) => { this.log.error('sealed channel listener failed - %e', err) })
        const address = server.address()
        if (address == null || typeof address === 'string') {
          reject(new SealedChannelError('the listener has no TCP address'))
          return
        }
        resolve(address.port)
      })
      this.server = server
    })
    const listening = this.listening
    listening.catch(() => { if (this.listening === listening) this.listening = undefined })
    options.signal?.throwIfAborted()
    return listening
  }

  /** Reads the token, then hands over the channel of its offer; anything else closes the socket. */
  private accept (socket: Socket): void {
    const deadline = setTimeout(() => { socket.destroy() }, OFFER_TTL_MS)
    let head = Buffer.alloc(0)
    const onData = (data: Buffer): void => {
      head = Buffer.concat([head, data])
      if (head.byteLength < TOKEN_BYTES) return
      socket.off('data', onData)
      clearTimeout(deadline)
      const id = head.subarray(0, TOKEN_BYTES).toString('hex')
      const offer = this.offers.get(id)
      if (offer == null) {
        socket.destroy()
        return
      }
      this.offers.delete(id)
      clearTimeout(offer.timer)
      socket.pause()
      const stream = new SealedStream(socket, offer.key, 'server', this.log, `sealed-in-${++this.streams}`)
      this.onStream(stream, { context: offer.context })
      // Bytes that came with the token are the first frames.
      if (head.byteLength > TOKEN_BYTES) socket.unshift(head.subarray(TOKEN_BYTES))
      socket.resume()
    }
    socket.on('data', onData)
    socket.on('error', () => { socket.destroy() })
  }
}

let dialled = 0

/** The asking end: connects to `host` at the offer's port, presents the token, and seals with the offer's key. */
export async function dialSealed (host: string, offer: SealedOffer, log: Logger, options: AbortOptions = {}): Promise<SealedStream> {
  options.signal?.throwIfAborted()
  /** The stream the socket's reads go to, once it exists. */
  const reader: { stream?: SealedStream } = {}
  const socket = connect({
    host,
    port: offer.port,
    noDelay: true,
    allowHalfOpen: true,
    // Nothing comes before the first request, which the stream below sends; a byte that did would fail the next frame's check.
    onread: { buffer: Buffer.allocUnsafe(ASKER_READ_BYTES), callback: (bytes, buffer) => { reader.stream?.receive(buffer.subarray(0, bytes)); return true } }
  })
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { socket.destroy(); reject(options.signal?.reason) }
    const done = (err?: Error): void => {
      options.signal?.removeEventListener('abort', onAbort)
      socket.off('connect', done)
      socket.off('error', done)
      if (err != null) reject(err)
      else resolve()
    }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    socket.once('connect', done)
    socket.once('error', done)
  })
  if (socket.destroyed) throw new StreamStateError('the sealed channel closed as it opened')
  socket.write(offer.token)
  reader.stream = new SealedStream(socket, offer.key, 'asker', log, `sealed-out-${++dialled}`)
  return reader.stream
}
