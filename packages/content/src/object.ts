import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { getBlock } from './blocks.ts'
import { InvalidParameterError, NotFoundError } from './errors.ts'
import type { ReadOptions } from './blocks.ts'
import type { Blocks } from '@helia/interface'
import type { PBLink, PBNode } from '@ipld/dag-pb'

/** Kubo's object/diff change types (boxo's dagutils). */
export const ChangeType = { Add: 0, Remove: 1, Mod: 2 } as const

export interface ObjectChange {
  type: typeof ChangeType[keyof typeof ChangeType]
  path: string
  before?: CID
  after?: CID
}

export interface ObjectPatchOptions extends ReadOptions {
  /** Kubo's `create`: make the missing directories of a path such as a/b/c. */
  create?: boolean
  /** Kubo's `allow-non-unixfs`: edit dag-pb nodes that are not UnixFS directories. */
  allowNonUnixfs?: boolean
}

type Reads = Pick<Blocks, 'get'>
type Writes = Pick<Blocks, 'get' | 'put'>

async function readNode (blocks: Reads, cid: CID, options: ReadOptions): Promise<PBNode> {
  if (cid.code !== dagPb.code) throw new InvalidParameterError(`${cid} is not a dag-pb node`)
  return dagPb.decode(await getBlock(blocks, cid, options))
}

/** What Kubo's object patch edits: a flat UnixFS directory, or any dag-pb node with allow-non-unixfs. */
function checkEditable (node: PBNode, cid: CID, options: ObjectPatchOptions): void {
  if (options.allowNonUnixfs === true) return
  let type: string | undefined
  try {
    type = node.Data == null ? undefined : UnixFS.unmarshal(node.Data).type
  } catch {}
  if (type === 'hamt-sharded-directory') throw new InvalidParameterError(`${cid} is a HAMT-sharded directory, which object patch cannot edit; use files/* instead`)
  if (type !== 'directory') throw new InvalidParameterError(`${cid} is not a UnixFS directory; pass allow-non-unixfs to edit it as plain dag-pb`)
}

/** Stores a node with its links in Kubo's order (by name, byte-wise), as a CID of the given version. */
async function writeNode (blocks: Writes, node: PBNode, version: 0 | 1, options: ReadOptions): Promise<CID> {
  const sorted = dagPb.prepare({ Data: node.Data, Links: [...node.Links].sort((a, b) => Buffer.compare(Buffer.from(a.Name ?? ''), Buffer.from(b.Name ?? ''))) })
  const bytes = dagPb.encode(sorted)
  const digest = await sha256.digest(bytes)
  const cid = version === 0 ? CID.createV0(digest) : CID.createV1(dagPb.code, digest)
  await blocks.put(cid, bytes, options)
  return cid
}

/** A link's Tsize: the node's block and everything under it, as the links in it count. */
async function cumulativeSize (blocks: Reads, cid: CID, options: ReadOptions): Promise<number> {
  const bytes = await getBlock(blocks, cid, options)
  if (cid.code !== dagPb.code) return bytes.byteLength
  return dagPb.decode(bytes).Links.reduce((sum, link) => sum + (link.Tsize ?? 0), bytes.byteLength)
}

const withoutLink = (node: PBNode, name: string): PBLink[] => node.Links.filter(link => link.Name !== name)

/**
 * Kubo's object/patch/add-link: the root with `name` linking to `child`
 * (a link of that name replaced), stored, and its new CID. A name with
 * slashes goes through the directories on the way, made with `create`.
 */
export async function addLink (blocks: Writes, root: CID, name: string, child: CID, options: ObjectPatchOptions = {}): Promise<CID> {
  const [first, ...rest] = splitName(name)
  const node = await readNode(blocks, root, options)
  checkEditable(node, root, options)
  let target = child
  if (rest.length > 0) {
    const existing = node.Links.find(link => link.Name === first)
    let dir: CID
    if (existing != null) {
      dir = existing.Hash
    } else if (options.create === true) {
      dir = await writeNode(blocks, { Data: new UnixFS({ type: 'directory' }).marshal(), Links: [] }, 0, options)
    } else {
      throw new NotFoundError(`no link named ${JSON.stringify(first)} under ${root}`)
    }
    target = await addLink(blocks, dir, rest.join('/'), child, options)
  }
  const link: PBLink = { Name: first, Hash: target, Tsize: await cumulativeSize(blocks, target, options) }
  return writeNode(blocks, { Data: node.Data, Links: [...withoutLink(node, first), link] }, root.version, options)
}

/** Kubo's object/patch/rm-link: the root without the link `name` (a path through directories with slashes), stored. */
export async function rmLink (blocks: Writes, root: CID, name: string, options: ObjectPatchOptions = {}): Promise<CID> {
  const [first, ...rest] = splitName(name)
  const node = await readNode(blocks, root, options)
  checkEditable(node, root, options)
  const existing = node.Links.find(link => link.Name === first)
  if (existing == null) throw new NotFoundError(`no link named ${JSON.stringify(first)} under ${root}`)
  if (rest.length === 0) return writeNode(blocks, { Data: node.Data, Links: withoutLink(node, first) }, root.version, options)
  const changed = await rmLink(blocks, existing.Hash, rest.join('/'), options)
  const link: PBLink = { Name: first, Hash: changed, Tsize: await cumulativeSize(blocks, changed, options) }
  return writeNode(blocks, { Data: node.Data, Links: [...withoutLink(node, first), link] }, root.version, options)
}

function splitName (name: string): string[] {
  const parts = name.split('/').filter(p => p !== '')
  if (parts.length === 0) throw new InvalidParameterError('a link name is required')
  return parts
}

/** A file (or any DAG) already stored, to be linked at `path` in a directory: `size` is its cumulative size, the link's Tsize. */
export interface DirectoryEntry {
  path: string
  cid: CID
  size: number
}

/**
 * A UnixFS directory, with the directories on the entries' paths, linking to
 * DAGs already stored, as the importer would have made it from their bytes:
 * a directory most of whose files did not change since it was last added is
 * linked again without reading those files.
 */
export async function linkDirectory (blocks: Writes, entries: DirectoryEntry[], version: 0 | 1, options: ReadOptions = {}): Promise<{ cid: CID, size: number }> {
  interface Tree { files: Map<string, DirectoryEntry>, dirs: Map<string, Tree> }
  const tree = (): Tree => ({ files: new Map(), dirs: new Map() })
  const root = tree()
  for (const entry of entries) {
    const parts = splitName(entry.path)
    let at = root
    for (const part of parts.slice(0, -1)) {
      let next = at.dirs.get(part)
      if (next == null) at.dirs.set(part, next = tree())
      at = next
    }
    const name = parts[parts.length - 1]
    if (at.files.has(name) || at.dirs.has(name)) throw new InvalidParameterError(`${entry.path} is named twice`)
    at.files.set(name, entry)
  }
  const write = async (dir: Tree): Promise<{ cid: CID, size: number }> => {
    const links: PBLink[] = [...dir.files].map(([name, e]) => ({ Name: name, Hash: e.cid, Tsize: e.size }))
    for (const [name, sub] of dir.dirs) {
      if (dir.files.has(name)) throw new InvalidParameterError(`${name} is both a file and a directory`)
      const { cid, size } = await write(sub)
      links.push({ Name: name, Hash: cid, Tsize: size })
    }
    const node = { Data: new UnixFS({ type: 'directory' }).marshal(), Links: links }
    const cid = await writeNode(blocks, node, version, options)
    return { cid, size: dagPb.encode(dagPb.prepare(node)).byteLength + links.reduce((sum, l) => sum + (l.Tsize ?? 0), 0) }
  }
  return write(root)
}

const MAX_DIFF_DEPTH = 256

/**
 * Kubo's object/diff: the links added, removed and changed from `a` to `b`,
 * into the sub-DAGs whose links both have (boxo's dagutils.Diff).
 */
export async function diff (blocks: Reads, a: CID, b: CID, options: ReadOptions = {}, depth = 0): Promise<ObjectChange[]> {
  if (depth > MAX_DIFF_DEPTH) throw new InvalidParameterError(`the DAGs are more than ${MAX_DIFF_DEPTH} levels deep`)
  const linksOf = async (cid: CID): Promise<PBLink[] | undefined> => cid.code === dagPb.code ? (await readNode(blocks, cid, options)).Links : (await getBlock(blocks, cid, options), undefined)
  const [linksA, linksB] = await Promise.all([linksOf(a), linksOf(b)])
  if ((linksA ?? []).length === 0 && (linksB ?? []).length === 0) return a.equals(b) ? [] : [{ type: ChangeType.Mod, path: '', before: a, after: b }]
  if (linksA == null || linksB == null) throw new InvalidParameterError('expected protobuf dag node')
  const out: ObjectChange[] = []
  let onlyA = linksA
  let onlyB = linksB
  for (const link of linksA) {
    const other = linksB.find(l => l.Name === link.Name)
    if (other == null) continue
    if (!other.Hash.equals(link.Hash)) {
      for (const change of await diff(blocks, link.Hash, other.Hash, options, depth + 1)) {
        out.push({ ...change, path: change.path === '' ? link.Name ?? '' : `${link.Name ?? ''}/${change.path}` })
      }
    }
    onlyA = onlyA.filter(l => l.Name !== link.Name)
    onlyB = onlyB.filter(l => l.Name !== link.Name)
  }
  for (const link of onlyA) out.push({ type: ChangeType.Remove, path: link.Name ?? '', before: link.Hash })
  for (const link of onlyB) out.push({ type: ChangeType.Add, path: link.Name ?? '', after: link.Hash })
  return out
}
