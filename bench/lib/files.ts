import { createHash, randomFillSync } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'

export const MB = 1_048_576
const WRITE_CHUNK = 4 * MB
const READ_CHUNK = MB
const MAX_PASSES = 1000

/**
 * Writes `bytes` of random data: incompressible, and with no repeated 256 KiB
 * chunk, so that the blockstore cannot deduplicate anything.
 */
export async function writeRandomFile (path: string, bytes: number): Promise<void> {
  const handle = await open(path, 'wx')
  try {
    const buffer = Buffer.allocUnsafe(WRITE_CHUNK)
    for (let written = 0; written < bytes;) {
      const n = Math.min(WRITE_CHUNK, bytes - written)
      randomFillSync(buffer, 0, n)
      let off = 0
      // write() may write less than asked; each round makes progress or throws.
      while (off < n) off += (await handle.write(buffer, off, n - off)).bytesWritten
      written += n
    }
  } finally {
    await handle.close()
  }
}

/**
 * Single-core SHA-256 over a file's bytes with node:crypto, timing only the
 * hashing (the file is read from the page cache in 1 MiB chunks, as the add
 * reads it). A small file is hashed over and over, in one digest, until at
 * least `minBytes` went through, so that the figure is not a few milliseconds
 * of noise. Returns the throughput in MB/s and the digest of one pass.
 */
export async function sha256Throughput (path: string, minBytes = 0): Promise<{ mbps: number, hex: string }> {
  let seconds = 0
  let total = 0
  let hex = ''
  // Each pass hashes the whole file; an empty file makes one pass.
  for (let pass = 0; pass === 0 || (total < minBytes && total > 0 && pass < MAX_PASSES); pass++) {
    const hash = createHash('sha256')
    for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK }) as AsyncIterable<Buffer>) {
      const t = performance.now()
      hash.update(chunk)
      seconds += (performance.now() - t) / 1000
      total += chunk.length
    }
    const t = performance.now()
    const digest = hash.digest('hex')
    seconds += (performance.now() - t) / 1000
    if (pass === 0) hex = digest
  }
  return { mbps: total / MB / seconds, hex }
}

/** The head of a multipart/form-data file part, in the layout Kubo's clients send; its bytes follow, then `\r\n`. */
export const multipartHead = (boundary: string, name: string): string =>
  `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${encodeURIComponent(name)}"\r\nContent-Type: application/octet-stream\r\n\r\n`

/** The end of a multipart/form-data body. */
export const multipartEnd = (boundary: string): string => `--${boundary}--\r\n`

/** A multipart/form-data body of one file part, streamed from disk. */
export async function * multipartFile (path: string, name: string, boundary: string): AsyncGenerator<Uint8Array> {
  const encoder = new TextEncoder()
  yield encoder.encode(multipartHead(boundary, name))
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK }) as AsyncIterable<Buffer>) yield chunk
  yield encoder.encode(`\r\n${multipartEnd(boundary)}`)
}

/**
 * Single-core SHA-256 of a file as a baseline: after one pass to warm up, the
 * median of `runs` runs of at least `minBytes` each, against the noise of a
 * shared machine.
 */
export async function sha256Baseline (path: string, runs = 3, minBytes = 100 * MB): Promise<{ mbps: number, hex: string }> {
  await sha256Throughput(path)
  const results: Array<{ mbps: number, hex: string }> = []
  for (let i = 0; i < runs; i++) results.push(await sha256Throughput(path, minBytes))
  results.sort((a, b) => a.mbps - b.mbps)
  return results[Math.floor(results.length / 2)]
}
