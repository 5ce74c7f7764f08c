/**
 * The filesystem calls the Raft storage makes, and no more: node:fs by
 * default, a simulated disk that loses what was not synced in the simulation.
 */
import { writeSync } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'

export interface RaftFile {
  write (bytes: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>
  /**
   * The same, on the calling thread: for the log's small appends, which the
   * page cache takes at once, a round trip through libuv's thread pool (two
   * thread wake-ups) costs more than the copy.
   */
  writeSync (bytes: Uint8Array, offset: number, length: number, position: number): number
  /** Makes the file's data durable (its name needs the directory synced). */
  datasync (): Promise<void>
  /** On a directory: makes the names created, renamed and removed in it durable. */
  sync (): Promise<void>
  stat (): Promise<{ size: number }>
  truncate (length: number): Promise<void>
  close (): Promise<void>
}

export interface RaftFs {
  /** Creates the directory and its missing parents; answers the first one it created, undefined when it existed. */
  mkdir (path: string): Promise<string | undefined>
  readdir (path: string): Promise<string[]>
  readFile (path: string, options?: { signal?: AbortSignal }): Promise<Uint8Array>
  rename (from: string, to: string): Promise<void>
  rm (path: string, options?: { force?: boolean }): Promise<void>
  /** 'r' reads (directories too), 'r+' writes an existing file, 'w' creates or empties one. */
  open (path: string, flags: 'r' | 'r+' | 'w'): Promise<RaftFile>
}

function nodeFile (handle: FileHandle): RaftFile {
  return {
    write: async (bytes, offset, length, position) => await handle.write(bytes, offset, length, position),
    writeSync: (bytes, offset, length, position) => writeSync(handle.fd, bytes, offset, length, position),
    datasync: async () => { await handle.datasync() },
    sync: async () => { await handle.sync() },
    stat: async () => await handle.stat(),
    truncate: async (length) => { await handle.truncate(length) },
    close: async () => { await handle.close() }
  }
}

export const nodeFs: RaftFs = {
  mkdir: async (path) => await mkdir(path, { recursive: true }),
  readdir: async (path) => await readdir(path),
  readFile: async (path, options) => await readFile(path, options),
  rename,
  rm,
  open: async (path, flags) => nodeFile(await open(path, flags))
}
