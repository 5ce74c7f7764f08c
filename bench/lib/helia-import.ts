/**
 * The content bench's add peer, run as its own process: Helia's importer
 * (ipfs-unixfs-importer) with Kubo's defaults (CIDv0, 256 KiB chunks,
 * balanced DAG of 174 links, dag-pb leaves) reading a file into blockstore-fs,
 * as an application on the libraries underneath the daemon would add it.
 *
 *   node bench/lib/helia-import.ts <file> <blockstore dir>
 *
 * Prints one JSON line: the root CID and the seconds from the first byte read
 * to the last block stored.
 */
import { createReadStream } from 'node:fs'
import { FsBlockstore } from 'blockstore-fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const [file, dir] = process.argv.slice(2)
if (file == null || dir == null) {
  process.stderr.write('usage: node bench/lib/helia-import.ts <file> <blockstore dir>\n')
  process.exit(2)
}
const blockstore = new FsBlockstore(dir)
await blockstore.open()
const t0 = performance.now()
let root: string | undefined
for await (const entry of importer([{ content: createReadStream(file) }], blockstore, {
  cidVersion: 0,
  rawLeaves: false,
  chunker: fixedSize({ chunkSize: 262_144 }),
  layout: balanced({ maxChildrenPerNode: 174 })
})) root = entry.cid.toString()
const seconds = (performance.now() - t0) / 1000
await blockstore.close()
process.stdout.write(`${JSON.stringify({ root, seconds })}\n`)
