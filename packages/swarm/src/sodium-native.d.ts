/** The part of sodium-native (libsodium's bindings, which ship no types) that the private network uses. */
declare module 'sodium-native' {
  /** Bytes of the state of a `crypto_stream_xor` (XSalsa20) key stream. */
  export const crypto_stream_xor_STATEBYTES: number
  export function crypto_stream_xor_init (state: Uint8Array, nonce: Uint8Array, key: Uint8Array): void
  /** XORs `message` with the next `message.byteLength` bytes of the key stream into `ciphertext`, which may be `message`. */
  export function crypto_stream_xor_update (state: Uint8Array, ciphertext: Uint8Array, message: Uint8Array): void
}
