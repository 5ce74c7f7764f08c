import { base64 } from 'multiformats/bases/base64'
import { CID } from 'multiformats/cid'
import { codecByCode, codecByName, digestOf, hasherByName } from './codecs.ts'
import { InvalidParameterError, NotFoundError, TimeoutError } from './errors.ts'
import { parsePath } from './paths.ts'
import type { Blocks } from '@helia/interface'
import type { AbortOptions } from '@libp2p/interface'

export interface BlockPutOptions extends AbortOptions {
  /** Multicodec of the block; Kubo's default is raw. */
  cidCodec?: string
  /** Multihash function; default sha2-256. */
  mhtype?: string
  /** Legacy Kubo option: `v0` means dag-pb with a CIDv0. */
  format?: string
  /** Kubo's `allow-big-block`: store a block over 1 MiB, which bitswap peers will not exchange. */
  allowBigBlock?: boolean
}

export interface DagPutOptions extends AbortOptions {
  storeCodec?: string
  inputCodec?: string
  hash?: string
  allowBigBlock?: boolean
}

/** Kubo's soft block limit: the largest block bitswap peers exchange. */
export const SOFT_BLOCK_LIMIT = 1_048_576

function checkBlockSize (bytes: Uint8Array, allowBigBlock = false): void {
  if (!allowBigBlock && bytes.byteLength > SOFT_BLOCK_LIMIT) {
    throw new InvalidParameterError('produced block is over 1MiB: big blocks can\'t be exchanged with other peers. consider using UnixFS for automatic chunking of bigger files, or pass --allow-big-block to override')
  }
}

type BlockComponents = Pick<Blocks, 'get' | 'put' | 'has'>

export interface ReadOptions extends AbortOptions {
  /** Local blocks only: one that is not here is a NotFoundError at once, as with Kubo's `offline`. */
  offline?: boolean
}

/**
 * `blocks` (Helia's, which fetch what is not local) with Kubo's `offline`
 * turned into a NotFoundError, and a block that is not local waiting for the
 * network at most `fetchTimeoutMs`, then failing with a TimeoutError: content
 * that no node has ends in a timeout, while a long transfer that keeps
 * receiving blocks is not cut short.
 */
export function boundedFetches (blocks: Pick<Blocks, 'get' | 'has'>, fetchTimeoutMs?: number): Pick<Blocks, 'get' | 'has'> {
  return {
    has: blocks.has.bind(blocks),
    async * get (cid, options: ReadOptions = {}) {
      if (options.offline === true) {
        try {
          yield * blocks.get(cid, options)
        } catch (err: any) {
          if (err.name === 'BlockNotFoundWhileOfflineError') throw new NotFoundError(`block ${cid} is not on this node, and the request is offline`)
          throw err
        }
        return
      }
      if (fetchTimeoutMs == null || await blocks.has(cid, options)) {
        yield * blocks.get(cid, options)
        return
      }
      const deadline = AbortSignal.timeout(fetchTimeoutMs)
      try {
        yield * blocks.get(cid, { ...options, signal: options.signal == null ? deadline : AbortSignal.any([options.signal, deadline]) })
      } catch (err) {
        if (deadline.aborted && options.signal?.aborted !== true) throw new TimeoutError(`no node provided block ${cid} within ${fetchTimeoutMs} ms`)
        throw err
      }
    }
  }
}

/** Blocks are stored by multihash: the CIDv0 and the CIDv1 of the same bytes are one block. */
export const blockKey = (cid: CID): string => base64.baseEncode(cid.multihash.bytes)

export async function getBlock (blocks: Pick<Blocks, 'get'>, cid: CID, options: ReadOptions = {}): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const chunk of blocks.get(cid, options)) chunks.push(chunk)
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
}

function decodeOrThrow (codecName: string, bytes: Uint8Array): unknown {
  try {
    return codecByName(codecName).decode(bytes)
  } catch (err: any) {
    if (err instanceof InvalidParameterError) throw err
    throw new InvalidParameterError(`data is not valid ${codecName}: ${err.message}`)
  }
}

/**
 * Stores bytes as one block under a CID of the chosen codec. As Kubo's block
 * put, the bytes are not decoded: a block is what its hash says it is.
 */
export async function putBlock (blocks: BlockComponents, bytes: Uint8Array, options: BlockPutOptions = {}): Promise<CID> {
  const v0 = options.format === 'v0'
  const codecName = v0 ? 'dag-pb' : (options.cidCodec ?? options.format ?? 'raw')
  const codec = codecByName(codecName === 'protobuf' ? 'dag-pb' : codecName === 'cbor' ? 'dag-cbor' : codecName)
  const hasher = hasherByName(options.mhtype ?? 'sha2-256')
  if (v0 && hasher.name !== 'sha2-256') throw new InvalidParameterError('CIDv0 needs sha2-256')
  checkBlockSize(bytes, options.allowBigBlock)
  const digest = await digestOf(hasher, bytes)
  const cid = v0 ? CID.createV0(digest as any) : CID.createV1(codec.code, digest)
  await blocks.put(cid, bytes, options)
  return cid
}

export async function statBlock (blocks: Pick<Blocks, 'get'>, cid: CID, options: ReadOptions = {}): Promise<{ cid: CID, size: number }> {
  const bytes = await getBlock(blocks, cid, options)
  return { cid, size: bytes.byteLength }
}

/** Encodes a node given in `inputCodec` into `storeCodec`, as Kubo's dag/put. */
export async function dagPut (blocks: BlockComponents, bytes: Uint8Array, options: DagPutOptions = {}): Promise<CID> {
  const inputCodec = options.inputCodec ?? 'dag-json'
  const store = codecByName(options.storeCodec ?? 'dag-cbor')
  const node = decodeOrThrow(inputCodec, bytes)
  let encoded: Uint8Array
  try {
    encoded = store.encode(node)
  } catch (err: any) {
    throw new InvalidParameterError(`cannot encode the node as ${store.name}: ${err.message}`)
  }
  checkBlockSize(encoded, options.allowBigBlock)
  const digest = await digestOf(hasherByName(options.hash ?? 'sha2-256'), encoded)
  const cid = CID.createV1(store.code, digest)
  await blocks.put(cid, encoded, options)
  return cid
}

/**
 * Reads a node, walks `path` through its fields and links, and encodes what it
 * reaches in `outputCodec` (dag-json by default), as Kubo's dag/get.
 */
export async function dagGet (blocks: Pick<Blocks, 'get'>, path: string, outputCodec = 'dag-json', options: ReadOptions = {}): Promise<Uint8Array> {
  const { cid, rest } = parsePath(path)
  const output = codecByName(outputCodec)
  let current: CID = cid
  let node: unknown = codecByCode(cid.code).decode(await getBlock(blocks, cid, options))
  for (const segment of rest) {
    // asCID, not instanceof: dag-jose's links come from its own copy of multiformats.
    const link = CID.asCID(node)
    if (link != null) {
      current = link
      node = codecByCode(current.code).decode(await getBlock(blocks, current, options))
    }
    const next = dagPbLink(node, segment) ?? (node != null && typeof node === 'object' ? (node as Record<string, unknown>)[segment] : undefined)
    if (next === undefined) throw new NotFoundError(`no field or link named ${JSON.stringify(segment)} in ${current}`)
    node = next
  }
  // A path that ends on a link prints the node linked to, as Kubo's dag get does.
  const last = rest.length > 0 ? CID.asCID(node) : null
  if (last != null) {
    node = codecByCode(last.code).decode(await getBlock(blocks, last, options))
  }
  if (output.name === 'raw') {
    if (rest.length > 0) throw new InvalidParameterError('output-codec raw can only print whole blocks')
    return getBlock(blocks, cid, options)
  }
  try {
    return output.encode(node)
  } catch (err: any) {
    throw new InvalidParameterError(`cannot encode the node as ${output.name}: ${err.message}`)
  }
}

/** dag-pb links are addressed by their names, as in Kubo's path resolution. */
function dagPbLink (node: unknown, segment: string): CID | undefined {
  const links = (node as { Links?: Array<{ Name?: string, Hash: CID }> } | null)?.Links
  if (!Array.isArray(links) || (node as Record<string, unknown>)[segment] !== undefined) return undefined
  return links.find(l => l.Name === segment)?.Hash
}
