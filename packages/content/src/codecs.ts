import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import * as json from 'multiformats/codecs/json'
import * as raw from 'multiformats/codecs/raw'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { InvalidParameterError } from './errors.ts'
import type { BlockCodec } from 'multiformats/codecs/interface'
import type { MultihashHasher } from 'multiformats/hashes/interface'

/** The IPLD codecs the daemon reads and writes, by their multicodec names. */
export const codecs: Record<string, BlockCodec<number, any>> = {
  'dag-pb': dagPb,
  'dag-cbor': dagCbor,
  'dag-json': dagJson,
  json,
  raw
}

export const hashers: Record<string, MultihashHasher> = {
  'sha2-256': sha256,
  'sha2-512': sha512
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
