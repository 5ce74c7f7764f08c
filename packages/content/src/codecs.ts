import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import { blake2b, blake2s } from '@noble/hashes/blake2.js'
import { blake3 } from '@noble/hashes/blake3.js'
import { keccak_224 as keccak224, keccak_256 as keccak256, keccak_384 as keccak384, keccak_512 as keccak512, sha3_224 as sha3224, sha3_256 as sha3256, sha3_384 as sha3384, sha3_512 as sha3512 } from '@noble/hashes/sha3.js'
import * as dagJose from 'dag-jose'
import * as json from 'multiformats/codecs/json'
import * as raw from 'multiformats/codecs/raw'
import { from } from 'multiformats/hashes/hasher'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { InvalidParameterError } from './errors.ts'
import type { BlockCodec } from 'multiformats/codecs/interface'
import type { MultihashHasher } from 'multiformats/hashes/interface'

/**
 * The IPLD codecs the daemon reads and writes, by their multicodec names.
 * git-raw is not among them: no maintained codec for it is published on npm.
 */
export const codecs: Record<string, BlockCodec<number, any>> = {
  'dag-pb': dagPb,
  'dag-cbor': dagCbor,
  'dag-json': dagJson,
  'dag-jose': dagJose as unknown as BlockCodec<number, any>,
  json,
  raw
}

const noble = (name: string, code: number, hash: (bytes: Uint8Array) => Uint8Array): MultihashHasher =>
  from({ name, code, encode: bytes => hash(bytes) as Uint8Array<ArrayBuffer> })

/** The multihash functions Kubo accepts for add, block/put and dag/put (it refuses insecure ones such as sha1 and md5). */
export const hashers: Record<string, MultihashHasher> = {
  identity: identity as unknown as MultihashHasher,
  'sha2-256': sha256,
  'sha2-512': sha512,
  'sha3-224': noble('sha3-224', 0x17, sha3224),
  'sha3-256': noble('sha3-256', 0x16, sha3256),
  'sha3-384': noble('sha3-384', 0x15, sha3384),
  'sha3-512': noble('sha3-512', 0x14, sha3512),
  'keccak-224': noble('keccak-224', 0x1a, keccak224),
  'keccak-256': noble('keccak-256', 0x1b, keccak256),
  'keccak-384': noble('keccak-384', 0x1c, keccak384),
  'keccak-512': noble('keccak-512', 0x1d, keccak512),
  'blake2b-256': noble('blake2b-256', 0xb220, bytes => blake2b(bytes, { dkLen: 32 })),
  'blake2b-512': noble('blake2b-512', 0xb240, bytes => blake2b(bytes, { dkLen: 64 })),
  'blake2s-256': noble('blake2s-256', 0xb260, bytes => blake2s(bytes, { dkLen: 32 })),
  blake3: noble('blake3', 0x1e, bytes => blake3(bytes, { dkLen: 32 }))
}

/** Kubo (boxo's verifcid) refuses identity CIDs whose digest is longer than this. */
export const MAX_IDENTITY_DIGEST = 128

/** The hasher of a multihash code, for CIDs the node made or verifies. */
export function hasherByCode (code: number): MultihashHasher | undefined {
  return Object.values(hashers).find(h => h.code === code)
}

export function codecByName (name: string): BlockCodec<number, any> {
  const codec = codecs[name]
  if (codec == null) throw new InvalidParameterError(`unsupported codec ${JSON.stringify(name)}; use one of ${Object.keys(codecs).join(', ')}`)
  return codec
}

export function codecByCode (code: number): BlockCodec<number, any> {
  const codec = Object.values(codecs).find(c => c.code === code)
  if (codec == null) throw new InvalidParameterError(`unsupported codec 0x${code.toString(16)}`)
  return codec
}

export function hasherByName (name: string): MultihashHasher {
  const hasher = hashers[name]
  if (hasher == null) throw new InvalidParameterError(`unsupported hash ${JSON.stringify(name)}; use one of ${Object.keys(hashers).join(', ')}`)
  return hasher
}

/** The digest of `bytes` with `hasher`, refusing an identity digest longer than Kubo allows. */
export async function digestOf (hasher: MultihashHasher, bytes: Uint8Array): Promise<Awaited<ReturnType<MultihashHasher['digest']>>> {
  if (hasher.code === identity.code && bytes.byteLength > MAX_IDENTITY_DIGEST) {
    throw new InvalidParameterError(`an identity hash holds at most ${MAX_IDENTITY_DIGEST} bytes, not ${bytes.byteLength}`)
  }
  return hasher.digest(bytes)
}
