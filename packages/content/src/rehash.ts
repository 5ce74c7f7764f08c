import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { blockKey } from './blocks.ts'
import { digestOf } from './codecs.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { WritableStorage } from 'ipfs-unixfs-importer'
import type { MultihashHasher } from 'multiformats/hashes/interface'

export interface RehashInit {
  hasher: MultihashHasher
  /** Blocks of at most this many bytes get an identity CID, as Kubo's `add --inline`. */
  inlineLimit?: number
}

interface Rehashed {
  cid: CID
  /** How much larger the block and everything under it became (longer CIDs in its links). */
  grew: number
}

/**
 * The UnixFS importer hashes every block with sha2-256. For Kubo's `add
 * --hash` and `--inline` this sits between the importer and the blockstore:
 * each block is stored under the CID the options ask for, its dag-pb links
 * rewritten to the children's new CIDs, with their Tsize grown by what the
 * longer CIDs add below them. The importer writes children before parents,
 * so every link is known when its parent arrives.
 */
export class Rehasher {
  readonly store: WritableStorage
  private readonly init: RehashInit
  private readonly done = new Map<string, Rehashed>()

  constructor (target: WritableStorage, init: RehashInit) {
    this.store = {
      put: async (cid: CID, bytes: Uint8Array, options?: AbortOptions) => {
        const { cid: next, bytes: stored } = await this.rehash(cid, bytes)
        await target.put(next, stored, options)
        return cid
      }
    }
    this.init = init
  }

  /** The CID a block the importer named `cid` was stored under. */
  cidOf (cid: CID): CID {
    return this.done.get(blockKey(cid))?.cid ?? cid
  }

  /** A cumulative size the importer gave for `cid`, as it is with the new CIDs. */
  sizeOf (cid: CID, size: number): number {
    return size + (this.done.get(blockKey(cid))?.grew ?? 0)
  }

  private async rehash (cid: CID, bytes: Uint8Array): Promise<{ cid: CID, bytes: Uint8Array }> {
    let grew = 0
    let stored = bytes
    if (cid.code === dagPb.code) {
      const node = dagPb.decode(bytes)
      if (node.Links.length > 0) {
        const Links = node.Links.map(link => {
          const child = this.done.get(blockKey(link.Hash))
          if (child == null) return link
          grew += child.grew
          return { ...link, Hash: child.cid, Tsize: link.Tsize == null ? undefined : link.Tsize + child.grew }
        })
        stored = dagPb.encode({ ...node, Links })
      }
    }
    grew += stored.byteLength - bytes.byteLength
    const { hasher, inlineLimit } = this.init
    let next: CID
    if (inlineLimit != null && stored.byteLength <= inlineLimit) {
      next = CID.createV1(cid.code, identity.digest(stored))
    } else {
      const digest = await digestOf(hasher, stored)
      next = cid.version === 0 && hasher.code === sha256.code ? CID.createV0(digest as any) : CID.createV1(cid.code, digest)
    }
    this.done.set(blockKey(cid), { cid: next, grew })
    return { cid: next, bytes: stored }
  }
}
