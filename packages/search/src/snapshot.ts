/**
 * A collection's LanceDB directory as content and back: a snapshot is the
 * directory added as a UnixFS DAG (files that did not change since the last
 * snapshot are linked by their CIDs, unread), and a replica is that DAG written
 * back to disk under its CID, where LanceDB opens it.
 */
import { createReadStream } from 'node:fs'
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, normalize, relative, sep } from 'node:path'
import type { Content, DirectoryEntry } from '@node-daemon/content'
import type { AbortOptions } from '@libp2p/interface'

/** Written last into a replica's directory: its absence marks one left half-written. */
const COMPLETE = '.complete'

async function * filesUnder (root: string, dir = root): AsyncGenerator<string> {
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield * filesUnder(root, path)
    else if (entry.isFile() && entry.name !== COMPLETE) yield path
  }
}

/** What snapshots of one directory learnt of its files: by path, the file as it was (size, mtime, inode) and the CID and DAG size it gave. */
export type SnapshotCache = Map<string, { size: number, mtimeMs: number, ino: number, cid: DirectoryEntry['cid'], dagSize: number }>

/**
 * Adds the directory as one DAG and answers its CID. Not pinned here: the
 * cluster pins the head with the collection's replication factor. Files the
 * cache knows unchanged, whose root block is still here, are linked by the
 * CID they gave before, not read again: LanceDB writes a file once and never
 * changes it, so a snapshot costs what was written since the last one.
 */
export async function snapshotDirectory (content: Pick<Content, 'addAll' | 'linkDirectory' | 'blockStat'>, dir: string, options: AbortOptions & { cache?: SnapshotCache } = {}): Promise<string> {
  const cache = options.cache ?? new Map()
  const entries: DirectoryEntry[] = []
  const seen = new Set<string>()
  for await (const file of filesUnder(dir)) {
    const path = relative(dir, file).split(sep).join('/')
    const { size, mtimeMs, ino } = await stat(file)
    let known = cache.get(path)
    // A file's blocks may have gone since (a GC here, where another node holds the head's pin): it is added again.
    if (known == null || known.size !== size || known.mtimeMs !== mtimeMs || known.ino !== ino || !(await isLocal(content, known.cid, options))) {
      for await (const event of content.addAll([{ content: createReadStream(file) }], { pin: false, cidVersion: 1, rawLeaves: true, signal: options.signal })) {
        if (event.type === 'entry') known = { size, mtimeMs, ino, cid: event.cid, dagSize: event.size }
      }
      if (known == null) throw new Error(`adding ${path} gave no CID`)
      cache.set(path, known)
    }
    seen.add(path)
    entries.push({ path, cid: known.cid, size: known.dagSize })
  }
  for (const path of cache.keys()) if (!seen.has(path)) cache.delete(path)
  if (entries.length === 0) throw new Error('nothing to snapshot in the collection\'s directory')
  return (await content.linkDirectory(entries, { cidVersion: 1, signal: options.signal })).toString()
}

async function isLocal (content: Pick<Content, 'blockStat'>, cid: DirectoryEntry['cid'], options: AbortOptions): Promise<boolean> {
  try {
    await content.blockStat(cid.toString(), { offline: true, signal: options.signal })
    return true
  } catch (err: any) {
    if (err.name === 'NotFoundError') return false
    throw err
  }
}

/** Whether a replica of the snapshot is complete on disk. */
export async function hasReplica (dir: string): Promise<boolean> {
  return stat(join(dir, COMPLETE)).then(() => true, () => false)
}

/** Writes the snapshot `cid` to `dir` (fetching its blocks from the cluster where this node lacks them), replacing what was there. */
export async function writeReplica (content: Pick<Content, 'ls' | 'cat'>, cid: string, dir: string, options: AbortOptions = {}): Promise<void> {
  const tmp = `${dir}.part-${process.pid}-${Date.now()}`
  try {
    await writeTree(content, cid, '', tmp, options)
    await writeFile(join(tmp, COMPLETE), cid)
    await rm(dir, { recursive: true, force: true })
    await rename(tmp, dir)
  } catch (err) {
    await rm(tmp, { recursive: true, force: true })
    throw err
  }
}

async function writeTree (content: Pick<Content, 'ls' | 'cat'>, cid: string, prefix: string, root: string, options: AbortOptions): Promise<void> {
  await mkdir(join(root, prefix), { recursive: true })
  const { entries } = await content.ls(prefix === '' ? cid : `${cid}/${prefix}`, options)
  for (const entry of entries) {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    const target = normalize(join(root, path))
    // A snapshot is content anyone could have made: no entry may write outside the replica.
    if (!target.startsWith(root + sep)) throw new Error(`unsafe path in snapshot ${cid}`)
    if (entry.type === 'directory') {
      await writeTree(content, cid, path, root, options)
      continue
    }
    await mkdir(dirname(target), { recursive: true })
    const handle = await open(target, 'w')
    try {
      for await (const chunk of content.cat(`${cid}/${path}`, options)) await handle.write(chunk)
    } finally {
      await handle.close()
    }
  }
}
