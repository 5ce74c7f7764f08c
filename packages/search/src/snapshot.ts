/**
 * A collection's LanceDB directory as content and back: a snapshot is the
 * directory added as a UnixFS DAG (files that did not change since the last
 * snapshot give the same blocks again), and a replica is that DAG written
 * back to disk under its CID, where LanceDB opens it.
 */
import { createReadStream } from 'node:fs'
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, normalize, relative, sep } from 'node:path'
import type { Content } from '@node-daemon/content'
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

/** Adds the directory as one DAG and answers its CID. Not pinned here: the cluster pins the head with the collection's replication factor. */
export async function snapshotDirectory (content: Pick<Content, 'addDirectory'>, dir: string, options: AbortOptions = {}): Promise<string> {
  const source = async function * () {
    for await (const path of filesUnder(dir)) yield { path: relative(dir, path).split(sep).join('/'), content: createReadStream(path) }
  }
  const cid = await content.addDirectory(source(), { pin: false, cidVersion: 1, rawLeaves: true, signal: options.signal })
  if (cid == null) throw new Error('nothing to snapshot in the collection\'s directory')
  return cid.toString()
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
