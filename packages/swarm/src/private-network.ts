import { preSharedKey } from '@libp2p/pnet'
import type { ConnectionProtector, MessageStream } from '@libp2p/interface'

/**
 * Largest write handed to the pnet cipher at once. xsalsa20's WASM ciphers
 * share one memory that starts at 640 KiB; a larger update grows it, which
 * leaves every other cipher with a stale view that grows it again on each
 * update, until WebAssembly refuses (RangeError: Maximum memory size
 * exceeded). Sending 200 MB to two peers at once did that. Fixed upstream in
 * js-libp2p PR #3585, not yet released as @libp2p/pnet.
 */
export const PNET_MAX_WRITE = 64 * 1024

type ProtectorFactory = ReturnType<typeof preSharedKey>

/**
 * libp2p's pre-shared-key protector (Kubo's swarm.key, XSalsa20), with writes
 * cut into PNET_MAX_WRITE pieces through the stream's own `maxMessageSize`.
 */
export function privateNetwork (init: { psk: Uint8Array }): ProtectorFactory {
  const factory = preSharedKey(init)
  return () => {
    const inner = factory()
    const protector: ConnectionProtector = {
      async protect (connection, options) {
        const boxed = await inner.protect(connection, options) as MessageStream & { maxMessageSize?: number }
        boxed.maxMessageSize = PNET_MAX_WRITE
        return boxed
      }
    }
    return protector
  }
}
