/**
 * A simulated disk with the durability rules of POSIX, strictly:
 *
 * - A write reaches the page cache at once (reads see it) and the disk only
 *   when its file is fsync'd (datasync or sync) after it.
 * - A name created, renamed or removed in a directory is durable only once
 *   that directory is fsync'd, and a new directory's own name once its parent
 *   is. A rename is atomic.
 * - A process that is killed loses nothing of what it wrote (the kernel keeps
 *   the page cache); a power loss (`powerLoss`) keeps, of each file and each
 *   directory, the synced state plus a random prefix of the changes since,
 *   the last of which may be torn: a write cut short after some of its bytes,
 *   the rest zeros when the file's size got out before its data.
 *
 * Each process sees the disk through `fsFor`, whose calls take virtual time
 * and never return to a process that was killed meanwhile.
 */
import type { RaftFile, RaftFs } from '../../src/fs.ts'
import type { Rng } from '../../../raft/test/sim/rng.ts'
import type { Process, Scheduler } from './scheduler.ts'

type DataChange = { kind: 'write', position: number, bytes: Uint8Array } | { kind: 'truncate', length: number }
type NameChange = (entries: Map<string, Inode>) => void

interface FileInode {
  kind: 'file'
  /** What reads see. */
  data: Bytes
  /** What a power loss keeps for certain. */
  synced: Bytes
  /** Changes since, in order. */
  pending: DataChange[]
}

interface DirInode {
  kind: 'dir'
  entries: Map<string, Inode>
  synced: Map<string, Inode>
  pending: NameChange[]
}

type Inode = FileInode | DirInode

export interface DiskLatency {
  /** Milliseconds of virtual time an ordinary call takes, at most. */
  op: number
  /** Milliseconds an fsync takes, at most. */
  sync: number
}

export interface DiskStats {
  syncs: number
  /** Power losses that cut a change short or dropped one. */
  tornWrites: number
  droppedChanges: number
}

function fsError (code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path })
}

/** A file's bytes, grown in place: segments take many small appends. */
class Bytes {
  private buf: Uint8Array
  size: number

  constructor (buf = new Uint8Array(256), size = 0) {
    this.buf = buf
    this.size = size
  }

  apply (change: DataChange): void {
    const end = change.kind === 'truncate' ? change.length : change.position + change.bytes.byteLength
    if (end > this.buf.byteLength) {
      const grown = new Uint8Array(Math.max(end, 2 * this.buf.byteLength))
      grown.set(this.view())
      this.buf = grown
    }
    // bytes past the end read as zeros once the file grows over them
    if (end > this.size) this.buf.fill(0, this.size, end)
    if (change.kind === 'truncate') this.size = end
    else {
      this.buf.set(change.bytes, change.position)
      this.size = Math.max(this.size, end)
    }
  }

  view (): Uint8Array {
    return this.buf.subarray(0, this.size)
  }

  copy (): Bytes {
    return new Bytes(this.buf.slice(), this.size)
  }
}

function parts (path: string): string[] {
  if (!path.startsWith('/')) throw new Error(`the simulated disk takes absolute paths, not ${path}`)
  return path.split('/').filter(p => p !== '' && p !== '.')
}

export class SimDisk {
  readonly stats: DiskStats = { syncs: 0, tornWrites: 0, droppedChanges: 0 }
  private root: DirInode = { kind: 'dir', entries: new Map(), synced: new Map(), pending: [] }
  private readonly sched: Scheduler
  private readonly latency: DiskLatency
  private readonly rng: Rng
  private worst = false

  constructor (sched: Scheduler, rng: Rng, latency: DiskLatency) {
    this.sched = sched
    this.rng = rng
    this.latency = latency
  }

  /** Creates `path` and its parents durably, as a repository that existed before the run. */
  mkdirSynced (path: string): void {
    let dir = this.root
    for (const name of parts(path)) {
      let next = dir.entries.get(name)
      if (next === undefined) {
        next = { kind: 'dir', entries: new Map(), synced: new Map(), pending: [] }
        dir.entries.set(name, next)
        dir.synced.set(name, next)
      }
      if (next.kind !== 'dir') throw fsError('ENOTDIR', 'mkdir', path)
      dir = next
    }
  }

  /** What survives a power loss: see the file's comment. `worst` keeps only what was synced, for tests that need the worst case every time. */
  powerLoss (worst = false): void {
    this.worst = worst
    this.root = this.settleDir(this.root)
  }

  /** How many of `pending` changes a power loss keeps. */
  private kept (pending: unknown[]): number {
    return this.worst ? 0 : this.rng.int(0, pending.length)
  }

  private settleDir (dir: DirInode): DirInode {
    const keep = this.kept(dir.pending)
    if (keep < dir.pending.length) this.stats.droppedChanges++
    const entries = new Map(dir.synced)
    for (const change of dir.pending.slice(0, keep)) change(entries)
    const settled: DirInode = { kind: 'dir', entries, synced: entries, pending: [] }
    for (const [name, inode] of entries) {
      entries.set(name, inode.kind === 'dir' ? this.settleDir(inode) : this.settleFile(inode))
    }
    settled.synced = new Map(entries)
    return settled
  }

  private settleFile (file: FileInode): FileInode {
    const data = file.synced.copy()
    const keep = this.kept(file.pending)
    for (const change of file.pending.slice(0, keep)) data.apply(change)
    const torn = file.pending[keep]
    if (torn !== undefined) {
      this.stats.droppedChanges++
      if (torn.kind === 'write' && !this.worst && this.rng.chance(0.7)) {
        this.stats.tornWrites++
        const cut = this.rng.int(0, torn.bytes.byteLength - 1)
        // the size may have got out without the data: the rest reads as zeros
        const zeros = this.rng.chance(0.3) ? torn.bytes.byteLength - cut : 0
        const bytes = new Uint8Array(cut + zeros)
        bytes.set(torn.bytes.subarray(0, cut))
        data.apply({ kind: 'write', position: torn.position, bytes })
      }
    }
    return { kind: 'file', data, synced: data.copy(), pending: [] }
  }

  /** The directory holding `path`'s last part, and that part. */
  private locate (path: string, syscall: string): { dir: DirInode, name: string } {
    const names = parts(path)
    const name = names.pop()
    if (name === undefined) throw fsError('EINVAL', syscall, path)
    let dir = this.root
    for (const n of names) {
      const next = dir.entries.get(n)
      if (next?.kind !== 'dir') throw fsError('ENOENT', syscall, path)
      dir = next
    }
    return { dir, name }
  }

  private lookup (path: string, syscall: string): Inode {
    if (parts(path).length === 0) return this.root
    const { dir, name } = this.locate(path, syscall)
    const inode = dir.entries.get(name)
    if (inode === undefined) throw fsError('ENOENT', syscall, path)
    return inode
  }

  private change (dir: DirInode, change: NameChange): void {
    change(dir.entries)
    dir.pending.push(change)
  }

  private write (file: FileInode, change: DataChange): void {
    file.data.apply(change)
    file.pending.push(change)
  }

  /** The filesystem as `proc` sees it. */
  fsFor (proc: Process): RaftFs {
    const call = async <T>(syscall: string, effect: () => T): Promise<T> => {
      if (!proc.alive) return await new Promise<never>(() => {})
      let outcome: { result: T } | { failure: unknown }
      try {
        outcome = { result: effect() }
      } catch (failure) {
        outcome = { failure }
      }
      await this.sched.sleep(this.rng.next() * this.latency.op, proc)
      if ('failure' in outcome) throw outcome.failure
      return outcome.result
    }
    /** Makes the first `count` pending changes durable once the fsync's time has passed. */
    const fsync = async (inode: Inode): Promise<void> => {
      if (!proc.alive) return await new Promise<never>(() => {})
      const count = inode.pending.length
      await this.sched.sleep(this.rng.next() * this.latency.sync, proc)
      this.stats.syncs++
      if (inode.kind === 'file') {
        for (const change of inode.pending.splice(0, count)) inode.synced.apply(change)
      } else {
        const synced = new Map(inode.synced)
        for (const change of inode.pending.splice(0, count)) change(synced)
        inode.synced = synced
      }
    }
    const handle = (inode: Inode, writable: boolean, path: string): RaftFile => {
      let open = true
      const usable = (syscall: string, write: boolean): FileInode => {
        if (!open) throw fsError('EBADF', syscall, path)
        if (inode.kind !== 'file' || (write && !writable)) throw fsError(inode.kind === 'dir' ? 'EISDIR' : 'EBADF', syscall, path)
        return inode
      }
      return {
        write: async (bytes, offset, length, position) => await call('write', () => {
          this.write(usable('write', true), { kind: 'write', position, bytes: bytes.slice(offset, offset + length) })
          return { bytesWritten: length }
        }),
        writeSync: (bytes, offset, length, position) => {
          // a killed process runs no more code of its own, but a continuation may still call here: its write goes nowhere
          if (proc.alive) this.write(usable('write', true), { kind: 'write', position, bytes: bytes.slice(offset, offset + length) })
          return length
        },
        truncate: async (length) => { await call('ftruncate', () => { this.write(usable('ftruncate', true), { kind: 'truncate', length }) }) },
        stat: async () => await call('fstat', () => ({ size: usable('fstat', false).data.size })),
        datasync: async () => {
          usable('fdatasync', false)
          await fsync(inode)
        },
        sync: async () => {
          if (!open) throw fsError('EBADF', 'fsync', path)
          await fsync(inode)
        },
        close: async () => { await call('close', () => { open = false }) }
      }
    }
    return {
      mkdir: async (path) => await call('mkdir', () => {
        let dir = this.root
        let first: string | undefined
        const names = parts(path)
        names.forEach((name, i) => {
          let next = dir.entries.get(name)
          if (next === undefined) {
            const made: DirInode = { kind: 'dir', entries: new Map(), synced: new Map(), pending: [] }
            this.change(dir, (entries) => { entries.set(name, made) })
            next = made
            first ??= '/' + names.slice(0, i + 1).join('/')
          }
          if (next.kind !== 'dir') throw fsError('ENOTDIR', 'mkdir', path)
          dir = next
        })
        return first
      }),
      readdir: async (path) => await call('scandir', () => {
        const dir = this.lookup(path, 'scandir')
        if (dir.kind !== 'dir') throw fsError('ENOTDIR', 'scandir', path)
        return [...dir.entries.keys()].sort()
      }),
      readFile: async (path, options) => await call('open', () => {
        options?.signal?.throwIfAborted()
        const file = this.lookup(path, 'open')
        if (file.kind !== 'file') throw fsError('EISDIR', 'read', path)
        return file.data.view().slice()
      }),
      rename: async (from, to) => await call('rename', () => {
        const src = this.locate(from, 'rename')
        const dst = this.locate(to, 'rename')
        const inode = src.dir.entries.get(src.name)
        if (inode === undefined) throw fsError('ENOENT', 'rename', from)
        if (src.dir !== dst.dir) throw new Error('the simulated disk renames within one directory only')
        this.change(src.dir, (entries) => {
          entries.delete(src.name)
          entries.set(dst.name, inode)
        })
      }),
      rm: async (path, options) => await call('rm', () => {
        const { dir, name } = this.locate(path, 'rm')
        if (!dir.entries.has(name)) {
          if (options?.force === true) return
          throw fsError('ENOENT', 'rm', path)
        }
        this.change(dir, (entries) => { entries.delete(name) })
      }),
      open: async (path, flags) => await call('open', () => {
        if (flags !== 'w') return handle(this.lookup(path, 'open'), flags === 'r+', path)
        const { dir, name } = this.locate(path, 'open')
        const existing = dir.entries.get(name)
        if (existing?.kind === 'dir') throw fsError('EISDIR', 'open', path)
        if (existing !== undefined) {
          this.write(existing, { kind: 'truncate', length: 0 })
          return handle(existing, true, path)
        }
        const file: FileInode = { kind: 'file', data: new Bytes(), synced: new Bytes(), pending: [] }
        this.change(dir, (entries) => { entries.set(name, file) })
        return handle(file, true, path)
      })
    }
  }
}
