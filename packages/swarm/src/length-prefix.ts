import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

/** The decoder's own field: how it reads a frame's length from the front of what it holds. */
interface LengthReader {
  lengthDecoder: (data: Uint8ArrayList | Uint8Array) => number
}

let quiet = false

/**
 * libp2p's length-prefixed decoder asks for the next frame's length after
 * every frame, and learns that none has arrived from the RangeError its
 * length reader throws on an empty buffer. Noise reads every chunk of every
 * connection through one, so each message a node received cost it an error
 * and its stack (async frames included): 5-8% of a Raft member's time. Here
 * an empty buffer reads as a length of 0, for which the decoder, wanting a
 * prefix of at least a byte, waits for more as it did after the error.
 */
export function quietLengthPrefixes (): void {
  if (quiet) return
  quiet = true
  const readers = new WeakSet<object>()
  const decode = LengthPrefixedDecoder.prototype.decode
  LengthPrefixedDecoder.prototype.decode = function (this: LengthPrefixedDecoder, buf: Uint8ArrayList | Uint8Array) {
    if (!readers.has(this)) {
      readers.add(this)
      const reader = this as unknown as LengthReader
      const length = reader.lengthDecoder
      reader.lengthDecoder = data => data.byteLength === 0 ? 0 : length(data)
    }
    return decode.call(this, buf)
  }
}
