/**
 * The other side of hash-threads.ts: SHA-256 of each block it is sent, the
 * block sent back with its digest, in the order they came.
 */
import { createHash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'
import type { HashReply, HashRequest } from './hash-threads.ts'

const port = parentPort
if (port == null) throw new Error('hash-worker.ts runs as a worker thread')
port.on('message', ({ id, block }: HashRequest) => {
  const digest = createHash('sha256').update(block).digest()
  const reply: HashReply = { id, block, digest: new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength) }
  port.postMessage(reply, [block.buffer])
})
