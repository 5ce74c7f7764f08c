import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import sodium from 'sodium-native'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'

const TAG_BYTES = 16

/** A frame in one piece: noise hands over a list when a frame spans several reads. */
const contiguous = (data: Uint8Array | { subarray: () => Uint8Array }): Uint8Array => data instanceof Uint8Array ? data : data.subarray()

/**
 * Noise's default crypto with its ChaCha20-Poly1305 on libsodium. Node's
 * cipher, which the default uses for frames of 1200 bytes and more, makes a key
 * object and three buffers per 64 KiB frame; libsodium seals into one buffer
 * and opens in place, into the `dst` that noise offers for it.
 */
export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    const m = contiguous(plaintext)
    const c = Buffer.allocUnsafe(m.byteLength + TAG_BYTES)
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(c, m, ad, null, nonce, k)
    return c
  },
  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
    const c = contiguous(ciphertext)
    const m = dst?.byteLength === c.byteLength - TAG_BYTES ? dst : Buffer.allocUnsafe(c.byteLength - TAG_BYTES)
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(m, null, c, ad, nonce, k)
    return m
  }
}
