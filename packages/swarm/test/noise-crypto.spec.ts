import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { noiseCrypto } from '../src/noise-crypto.ts'

/** Noise types its lists with its own copy of uint8arraylist; the class is the same. */
type NoiseList = Parameters<typeof noiseCrypto.chaCha20Poly1305Decrypt>[0]
const list = (...chunks: Uint8Array[]): NoiseList => new Uint8ArrayList(...chunks) as unknown as NoiseList
const bytes = (data: Uint8Array | NoiseList): Buffer => Buffer.from(data.subarray())

describe('noise crypto on libsodium', () => {
  const k = randomBytes(32)
  const nonce = randomBytes(12)
  const ad = randomBytes(32)
  // Either side of the 1200 bytes where noise's default switches ciphers, and a whole frame.
  const sizes = [0, 1, 1199, 1200, 65519]

  it('seals and opens as noise\'s default crypto does, both ways', () => {
    for (const size of sizes) {
      const plaintext = randomBytes(size)
      const ours = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))
      assert.deepEqual(ours, bytes(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)), `sealed ${size} bytes`)
      assert.deepEqual(bytes(noiseCrypto.chaCha20Poly1305Decrypt(Buffer.from(ours), nonce, ad, k)), plaintext, `opened ${size} bytes`)
      assert.deepEqual(bytes(defaultCrypto.chaCha20Poly1305Decrypt(Buffer.from(ours), nonce, ad, k)), plaintext)
    }
  })

  it('takes frames split across reads', () => {
    const plaintext = randomBytes(5000)
    const sealed = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))
    assert.deepEqual(bytes(noiseCrypto.chaCha20Poly1305Encrypt(list(plaintext.subarray(0, 7), plaintext.subarray(7)), nonce, ad, k)), sealed)
    assert.deepEqual(bytes(noiseCrypto.chaCha20Poly1305Decrypt(list(sealed.subarray(0, 100), sealed.subarray(100, 4000), sealed.subarray(4000)), nonce, ad, k)), plaintext)
  })

  it('opens in place, into the dst noise offers', () => {
    const plaintext = randomBytes(65519)
    const frame = bytes(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))
    const dst = frame.subarray(0, frame.byteLength - 16)
    assert.equal(noiseCrypto.chaCha20Poly1305Decrypt(frame, nonce, ad, k, dst), dst)
    assert.deepEqual(Buffer.from(dst), plaintext)
  })

  it('refuses a frame that was changed or sealed with other associated data', () => {
    const frame = bytes(noiseCrypto.chaCha20Poly1305Encrypt(randomBytes(2000), nonce, ad, k))
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(Buffer.from(frame), nonce, randomBytes(32), k))
    frame[10] ^= 1
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(frame, nonce, ad, k))
  })
})
