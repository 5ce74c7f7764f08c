import { createPrivateKey } from 'node:crypto'
import { privateKeyFromProtobuf, privateKeyFromRaw, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { InvalidParameterError } from './errors.ts'
import type { CryptoLoader, PrivateKey } from '@helia/interface'

/** The formats of Kubo's key import and export. */
export const KEY_FORMATS = ['libp2p-protobuf-cleartext', 'pem-pkcs8-cleartext'] as const
export type KeyFormat = typeof KEY_FORMATS[number]

/** The key types Kubo imports without allow-any-key-type. */
const PLAIN_TYPES = new Set(['RSA', 'Ed25519'])

export function checkKeyFormat (format: string): KeyFormat {
  if (!(KEY_FORMATS as readonly string[]).includes(format)) {
    throw new InvalidParameterError(`unrecognized format ${JSON.stringify(format)}; use one of ${KEY_FORMATS.join(', ')}`)
  }
  return format as KeyFormat
}

/** A private key in Kubo's export format. */
export function encodeKey (key: PrivateKey, format: KeyFormat): Uint8Array {
  if (format === 'libp2p-protobuf-cleartext') return key.toProtobuf()
  try {
    return Buffer.from(createPrivateKey({ key: key.toJWK() as any, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }))
  } catch (err: any) {
    throw new InvalidParameterError(`a ${key.type} key cannot be written as PKCS#8: ${err.message}`)
  }
}

/**
 * A private key from Kubo's export formats. PEM goes through Node's parser to
 * the raw forms @libp2p/crypto reads (PKCS#1 for RSA, SEC1 for ECDSA, seed and
 * public key for Ed25519), then to the protobuf Helia's keychain stores.
 */
export async function decodeKey (bytes: Uint8Array, format: KeyFormat, getCrypto: CryptoLoader, allowAnyType = false): Promise<PrivateKey> {
  let protobuf: Uint8Array
  let type: string
  try {
    const key = format === 'libp2p-protobuf-cleartext' ? privateKeyFromProtobuf(bytes) : privateKeyFromRaw(rawOfPem(bytes))
    protobuf = privateKeyToProtobuf(key)
    type = key.type
  } catch (err: any) {
    if (err instanceof InvalidParameterError) throw err
    throw new InvalidParameterError(`the key is not a ${format} private key: ${err.message}`)
  }
  if (!allowAnyType && !PLAIN_TYPES.has(type)) {
    throw new InvalidParameterError(`key type ${type} is not allowed to be imported, only RSA or Ed25519; use flag --allow-any-key-type if you are sure of what you're doing`)
  }
  try {
    return await (await getCrypto(type)).privateKeyFromProtobuf(protobuf)
  } catch (err: any) {
    throw new InvalidParameterError(`${type} keys cannot be used here: ${err.message}`)
  }
}

function rawOfPem (pem: Uint8Array): Uint8Array {
  const key = createPrivateKey({ key: Buffer.from(pem), format: 'pem' })
  switch (key.asymmetricKeyType) {
    case 'rsa': return key.export({ type: 'pkcs1', format: 'der' })
    case 'ec': return key.export({ type: 'sec1', format: 'der' })
    case 'ed25519': {
      const jwk = key.export({ format: 'jwk' })
      return Buffer.concat([Buffer.from(jwk.d ?? '', 'base64url'), Buffer.from(jwk.x ?? '', 'base64url')])
    }
    default: throw new InvalidParameterError(`${key.asymmetricKeyType ?? 'this'} keys are not supported`)
  }
}
