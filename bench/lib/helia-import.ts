/**
 * The content bench's add peer, run as its own process: Helia's importer
 * (ipfs-unixfs-importer) with Kubo's defaults (CIDv0, 256 KiB chunks,
 * balanced DAG of 174 links, dag-pb leaves) reading a file into blockstore-fs,
 * as an application on the libraries underneath the daemon would add it.
 *
 *   node bench/lib/helia-import.ts <file> <blockstore dir> [<warm-up file>]
 *
 * Prints one JSON line: the root CID and the seconds from the first byte read
 * to the last block stored. A warm-up file is imported first, untimed, as
 * the daemon's warm-up add is: both are then timed with their code compiled.
 */
import { createReadStream } from 'node:fs'
import { FsBlockstore } from 'blockstore-fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const [file, dir, warmup] = process.argv.slice(2)
if (file == null || dir == null) {
  process.stderr.write('usage: node bench/lib/helia-import.ts <file> <blockstore dir> [<warm-up file>]\n')
  process.exit(2)
}
const blockstore = new FsBlockstore(dir)
await blockstore.open()

/** Kubo's defaults: CIDv0, 256 KiB chunks, a balanced DAG of 174 links, dag-pb leaves. */
async function importFile (path: string): Promise<string | undefined> {
  let root: string | undefined
  for await (const entry of importer([{ content: createReadStream(path) }], blockstore, {
    cidVersion: 0,
    rawLeaves: false,
    chunker: fixedSize({ chunkSize: 262_144 }),
    layout: balanced({ maxChildrenPerNode: 174 })
  })) root = entry.cid.toString()
  return root
}

if (warmup != null) await importFile(warmup)
const t0 = performance.now()
const root = await importFile(file)
const seconds = (performance.now() - t0) / 1000
await blockstore.close()
process.stdout.write(`${JSON.stringify({ root, seconds })}\n`)
