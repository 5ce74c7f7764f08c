/** The part of sodium-native (libsodium's bindings, which ship no types) that the swarm uses. */
declare module 'sodium-native' {
  /** Bytes of the state of a `crypto_stream_xor` (XSalsa20) key stream. */
  // eslint-disable-next-line camelcase -- libsodium's own name
  export const crypto_stream_xor_STATEBYTES: number
  export function crypto_stream_xor_init (state: Uint8Array, nonce: Uint8Array, key: Uint8Array): void
  /** XORs `message` with the next `message.byteLength` bytes of the key stream into `ciphertext`, which may be `message`. */
  export function crypto_stream_xor_update (state: Uint8Array, ciphertext: Uint8Array, message: Uint8Array): void
  /** Seals `message` into `ciphertext`, which has room for it and the 16-byte tag; `nsec` is always null. */
  export function crypto_aead_chacha20poly1305_ietf_encrypt (ciphertext: Uint8Array, message: Uint8Array, ad: Uint8Array | null, nsec: null, nonce: Uint8Array, key: Uint8Array): number
  /** Opens `ciphertext` into `message` (its length less the tag; may share its memory), or throws if the tag does not verify. */
  export function crypto_aead_chacha20poly1305_ietf_decrypt (message: Uint8Array, nsec: null, ciphertext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): number
}
