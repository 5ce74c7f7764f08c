import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { getBlock } from './blocks.ts'
import { codecByCode } from './codecs.ts'
import { NotFoundError } from './errors.ts'
import { parsePath } from './paths.ts'
import { resolveEntry } from './read.ts'
import type { ReadOptions } from './blocks.ts'
import type { Blocks } from '@helia/interface'

export interface DagResolution {
  /** The last block the path reaches. */
  cid: CID
  /** What is left of the path inside that block's node, with a leading slash as Kubo's RemPath; empty when none is. */
  remPath: string
}

/** A UnixFS HAMT shard, whose entries' names are spread over its sub-shards. */
function isShard (node: dagPb.PBNode): boolean {
  try {
    return node.Data != null && UnixFS.unmarshal(node.Data).type === 'hamt-sharded-directory'
  } catch {
    return false
  }
}

/**
 * Resolves an IPLD path as Kubo's dag/resolve: through named links of dag-pb
 * nodes (UnixFS directories, sharded ones too) and through the fields of
 * other codecs' nodes, following each link met; a path that ends inside a
 * node gives that node's block and the rest of the path.
 */
export async function dagResolve (blocks: Pick<Blocks, 'get'>, path: string, options: ReadOptions = {}): Promise<DagResolution> {
  const parsed = parsePath(path)
  let cid = parsed.cid
  let rest = parsed.rest
  while (rest.length > 0) {
    if (cid.code === dagPb.code) {
      const node = dagPb.decode(await getBlock(blocks, cid, options))
      if (isShard(node)) cid = (await resolveEntry(blocks, `/ipfs/${cid}/${rest[0]}`, options)).cid
      else {
        // Any dag-pb node, UnixFS or not (Data that is not UnixFS at all), resolves by its links' names.
        const link = node.Links.find(l => l.Name === rest[0])
        if (link == null) throw new NotFoundError(`no link named ${JSON.stringify(rest[0])} under ${cid}`)
        cid = link.Hash
      }
      rest = rest.slice(1)
      continue
    }
    let value: unknown = codecByCode(cid.code).decode(await getBlock(blocks, cid, options))
    let used = 0
    while (used < rest.length) {
      const next = value != null && typeof value === 'object' && !(value instanceof Uint8Array) && Object.hasOwn(value, rest[used])
        ? (value as Record<string, unknown>)[rest[used]]
        : undefined
      if (next === undefined) throw new NotFoundError(`no link named ${JSON.stringify(rest[used])} under ${cid}`)
      value = next
      used++
      if (CID.asCID(value) != null) break
    }
    const link = CID.asCID(value)
    if (link == null) return { cid, remPath: '/' + rest.join('/') }
    cid = link
    rest = rest.slice(used)
  }
  return { cid, remPath: '' }
}
