import { raceSignal } from 'race-signal'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'

/**
 * Options for `pbStream`/`lpStream` of a protocol whose messages run to
 * `maxBytes`. libp2p's byte stream buffers at most 4 MiB by default whatever
 * maxDataLength says, so a larger message was refused with "Read buffer
 * overflow": the buffer must hold one whole message and its length prefix.
 */
export function messageStreamOptions (maxBytes: number): { maxDataLength: number, maxBufferSize: number } {
  return { maxDataLength: maxBytes, maxBufferSize: maxBytes + 16 }
}

/** How long a connection for one request's stream may take to dial. */
const DIAL_TIMEOUT_MS = 30_000

/**
 * Opens a stream of `protocol` to `peer` for one request. libp2p joins
 * concurrent dials to a peer into one, which runs under the first caller's
 * signal: a request that was aborted failed every other request dialing the
 * same peer with its reason. The connection is dialed under a deadline of its
 * own, and only the wait for it and the stream are the request's.
 */
export async function openStream (libp2p: Pick<Libp2p, 'dial'>, peer: PeerId, protocol: string, signal?: AbortSignal): Promise<Stream> {
  const connection = await raceSignal(libp2p.dial(peer, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) }), signal)
  return connection.newStream(protocol, { signal })
}
