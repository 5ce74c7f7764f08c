/**
 * How much of a file this process has memory-mapped, read from
 * /proc/self/maps (Linux): a file read into the heap has no mapping, so a
 * test can tell weights left in the file from weights copied.
 */
import { readFile } from 'node:fs/promises'

/** Bytes of `path` mapped into this process, over all its mappings (worker threads share them). */
export async function mappedBytes (path: string): Promise<number> {
  let bytes = 0
  for (const line of (await readFile('/proc/self/maps', 'utf8')).split('\n')) {
    // address perms offset dev inode path; the path, the sixth field, may hold spaces.
    const [range, , , , , ...rest] = line.split(/\s+/)
    if (rest.join(' ') !== path) continue
    const [start, end] = range.split('-').map(hex => BigInt(`0x${hex}`))
    bytes += Number(end - start)
  }
  return bytes
}
