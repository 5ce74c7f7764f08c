/**
 * Options for `pbStream`/`lpStream` of a protocol whose messages run to
 * `maxBytes`. libp2p's byte stream buffers at most 4 MiB by default whatever
 * maxDataLength says, so a larger message was refused with "Read buffer
 * overflow": the buffer must hold one whole message and its length prefix.
 */
export function messageStreamOptions (maxBytes: number): { maxDataLength: number, maxBufferSize: number } {
  return { maxDataLength: maxBytes, maxBufferSize: maxBytes + 16 }
}
