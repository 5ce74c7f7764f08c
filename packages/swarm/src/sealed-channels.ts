/**
 * Sealed channels for one protocol between members, offered and taken over
 * their libp2p connection: the asking member opens a stream of the offer
 * protocol and reads one length-prefixed ChannelOffer (protocols/blocks.proto),
 * then connects to it (askSealedChannel); the serving member answers each
 * such stream with a fresh offer from its listener and hands the channel that
 * comes of it to the protocol (SealedChannels). The offer travels only under
 * noise, which authenticated the peer, so that only that peer learns the key
 * (sealed-channel.ts says why that is enough). Block streams and training's
 * gradient streams use it.
 */
import { lpStream } from '@libp2p/utils'
import { ChannelOffer } from '../../../protocols/blocks.js'
import { dialSealed, SealedChannelError, SealedListener } from './sealed-channel.ts'
import type { SealedStream } from './sealed-channel.ts'
import type { AbortOptions, Connection, Libp2p, Logger, PeerId, Stream } from '@libp2p/interface'

/** The connection encrypter under which a channel's key may travel: it authenticated the peer's id. */
const NOISE = '/noise'
/** An offer is a port, a 16-byte token and a 32-byte key. */
const MAX_OFFER_BYTES = 1024
/** How long an asker may leave an offer unread. */
const OFFER_WRITE_MS = 10_000

export interface SealedChannelsComponents {
  /** Read when the service starts: a node's libp2p may be made after its services. */
  libp2p: () => Pick<Libp2p, 'handle' | 'unhandle'>
  log: Logger
}

export interface SealedChannelsInit {
  /** The interface the channels listen on: the swarm's host. */
  host: string
  /** The libp2p protocol on which offers are asked for. */
  offerProtocol: string
  /** Who may have a channel; others are refused their offer. */
  allow: (peer: PeerId) => boolean
  /** Each channel accepted, with the peer its offer was made for. */
  onStream: (stream: SealedStream, peer: PeerId) => void
}

/**
 * A channel to the peer of `connection`, which must be TCP (the channel
 * connects to the address the peer was reached at) under noise, asked for on
 * `offerProtocol`.
 */
export async function askSealedChannel (connection: Connection, offerProtocol: string, log: Logger, options: AbortOptions = {}): Promise<SealedStream> {
  const parts = connection.remoteAddr.getComponents()
  const host = parts.find(c => c.name === 'ip4' || c.name === 'ip6')?.value
  if (connection.encryption !== NOISE || host == null || !parts.some(c => c.name === 'tcp')) {
    throw new SealedChannelError(`the connection is not TCP under noise (${connection.remoteAddr.toString()}, ${connection.encryption ?? 'no encryption'})`)
  }
  const stream = await connection.newStream(offerProtocol, options)
  let offer: ChannelOffer
  try {
    offer = ChannelOffer.decode(await lpStream(stream, { maxDataLength: MAX_OFFER_BYTES }).read(options))
  } finally {
    stream.abort(new SealedChannelError('offer read'))
  }
  return dialSealed(host, offer, log, options)
}

/** The serving end: answers each offer stream of its protocol with a fresh offer, and hands over the channels taken. */
export class SealedChannels {
  readonly #c: SealedChannelsComponents
  readonly #init: SealedChannelsInit
  readonly #listener: SealedListener
  #shutdown = new AbortController()

  constructor (components: SealedChannelsComponents, init: SealedChannelsInit) {
    this.#c = components
    this.#init = init
    this.#listener = new SealedListener({ host: init.host, log: components.log, onStream: (stream, offer) => { init.onStream(stream, offer.context as PeerId) } })
  }

  async start (): Promise<void> {
    this.#shutdown = new AbortController()
    await this.#c.libp2p().handle(this.#init.offerProtocol, async (stream, connection) => { await this.#offer(stream, connection) }, { runOnLimitedConnection: false })
  }

  /** Refuses further offers and connections; channels already made are their protocol's to end. */
  async stop (): Promise<void> {
    this.#shutdown.abort(new SealedChannelError('the node is stopping'))
    await this.#c.libp2p().unhandle(this.#init.offerProtocol).catch((err: Error) => { this.#c.log('unhandle failed - %e', err) })
    await this.#listener.stop()
  }

  async #offer (stream: Stream, connection: Connection): Promise<void> {
    try {
      if (connection.encryption !== NOISE) throw new SealedChannelError('channels are offered only under noise')
      if (!this.#init.allow(connection.remotePeer)) throw new SealedChannelError(`${connection.remotePeer.toString()} may not have a channel`)
      const signal = AbortSignal.any([this.#shutdown.signal, AbortSignal.timeout(OFFER_WRITE_MS)])
      const offer = await this.#listener.offer(connection.remotePeer, { signal })
      await lpStream(stream).write(ChannelOffer.encode(offer), { signal })
      await stream.close({ signal })
    } catch (err: any) {
      this.#c.log('offering a channel to %p failed - %e', connection.remotePeer, err)
      stream.abort(err)
    }
  }
}
