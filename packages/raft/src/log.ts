import { CompactedError, UnavailableError } from './errors.ts'
import { limitSize } from './util.ts'
import type { Entry, Snapshot, Storage } from './types.ts'

/**
 * Entries and a snapshot not yet on stable storage. `entries[i]` has index
 * `offset + i`; a pending snapshot (received from the leader) comes before them.
 * Entries below `offsetInProgress` are being written already (handed out by a
 * Ready advanced before its write finished) and are not handed out again.
 */
class Unstable {
  snapshot?: Snapshot
  entries: Entry[] = []
  offset: number
  offsetInProgress: number

  constructor (offset: number) {
    this.offset = offset
    this.offsetInProgress = offset
  }

  maybeFirstIndex (): number | undefined {
    return this.snapshot == null ? undefined : this.snapshot.metadata.index + 1
  }

  maybeLastIndex (): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1
    return this.snapshot?.metadata.index
  }

  maybeTerm (i: number): number | undefined {
    if (i < this.offset) {
      return this.snapshot != null && this.snapshot.metadata.index === i ? this.snapshot.metadata.term : undefined
    }
    const last = this.maybeLastIndex()
    if (last === undefined || i > last) return undefined
    return this.entries[i - this.offset].term
  }

  /** Entries up to (i, t) reached stable storage, unless a newer leader replaced them meanwhile. */
  stableTo (i: number, t: number): void {
    if (i < this.offset || this.maybeTerm(i) !== t) return
    this.entries = this.entries.slice(i + 1 - this.offset)
    this.offset = i + 1
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset)
  }

  /** Entries up to (i, t) are being written, unless a newer leader replaced them meanwhile. */
  acceptInProgress (i: number, t: number): void {
    if (i < this.offsetInProgress || this.maybeTerm(i) !== t) return
    this.offsetInProgress = i + 1
  }

  stableSnapTo (i: number): void {
    if (this.snapshot != null && this.snapshot.metadata.index === i) this.snapshot = undefined
  }

  restore (s: Snapshot): void {
    this.offset = s.metadata.index + 1
    this.offsetInProgress = this.offset
    this.entries = []
    this.snapshot = s
  }

  truncateAndAppend (ents: Entry[]): void {
    const after = ents[0].index
    // what replaces entries being written must be written again, after them
    this.offsetInProgress = Math.min(this.offsetInProgress, after)
    if (after === this.offset + this.entries.length) {
      this.entries = this.entries.concat(ents)
    } else if (after <= this.offset) {
      // the whole unstable tail is replaced
      this.offset = after
      this.entries = ents
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents)
    }
  }

  slice (lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset)
  }
}

/**
 * The log as Raft sees it: stable entries in `storage`, newer ones in
 * `unstable`, and the commit and apply cursors.
 */
export class RaftLog {
  readonly storage: Storage
  readonly unstable: Unstable
  committed: number
  applied: number
  private readonly maxApplyingSize: number

  constructor (storage: Storage, maxApplyingSize: number) {
    this.storage = storage
    this.maxApplyingSize = maxApplyingSize
    const first = storage.firstIndex()
    this.unstable = new Unstable(storage.lastIndex() + 1)
    // the snapshot's entries are committed and applied by definition
    this.committed = first - 1
    this.applied = first - 1
  }

  firstIndex (): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex()
  }

  lastIndex (): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex()
  }

  lastTerm (): number {
    const t = this.term(this.lastIndex())
    if (t === undefined) throw new Error(`unexpected missing term of the last entry ${this.lastIndex()}`)
    return t
  }

  /** The term of entry i, or undefined when it is compacted or beyond the log. */
  term (i: number): number | undefined {
    const dummy = this.firstIndex() - 1
    if (i < dummy || i > this.lastIndex()) return undefined
    const t = this.unstable.maybeTerm(i)
    if (t !== undefined) return t
    try {
      return this.storage.term(i)
    } catch (err) {
      if (err instanceof CompactedError || err instanceof UnavailableError) return undefined
      throw err
    }
  }

  matchTerm (i: number, t: number): boolean {
    return this.term(i) === t
  }

  /** A candidate's log is at least as up to date as ours (§5.4.1). */
  isUpToDate (lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm()
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex())
  }

  /**
   * Appends a leader's entries after (index, logTerm) if our log holds that
   * entry, truncating a conflicting suffix. Returns the index of the last new
   * entry, or undefined when the logs disagree at `index`.
   */
  maybeAppend (index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined
    const lastNew = index + ents.length
    const ci = this.findConflict(ents)
    if (ci !== 0) {
      if (ci <= this.committed) throw new Error(`entry ${ci} conflicts with committed entry [committed(${this.committed})]`)
      this.append(ents.slice(ci - (index + 1)))
    }
    this.commitTo(Math.min(committed, lastNew))
    return lastNew
  }

  append (ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex()
    if (ents[0].index - 1 < this.committed) throw new Error(`after(${ents[0].index - 1}) is out of range [committed(${this.committed})]`)
    this.unstable.truncateAndAppend(ents)
    return this.lastIndex()
  }

  /** The first entry whose term differs from ours (or that we lack), 0 when all match. */
  findConflict (ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index
    }
    return 0
  }

  /**
   * The last index at or below `index` whose term is at most `term`: where a
   * leader should probe next, skipping a whole term of conflicts at once.
   */
  findConflictByTerm (index: number, term: number): { index: number, term: number } {
    for (; index > 0; index--) {
      const ours = this.term(index)
      if (ours === undefined) return { index, term: 0 }
      if (ours <= term) return { index, term: ours }
    }
    return { index: 0, term: 0 }
  }

  commitTo (toCommit: number): void {
    if (this.committed >= toCommit) return
    if (this.lastIndex() < toCommit) throw new Error(`tocommit(${toCommit}) is out of range [lastIndex(${this.lastIndex()})]`)
    this.committed = toCommit
  }

  /** Commits up to maxIndex if that entry is of the current term (§5.4.2). */
  maybeCommit (maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex)
      return true
    }
    return false
  }

  appliedTo (i: number): void {
    if (i === 0) return
    if (this.committed < i || i < this.applied) throw new Error(`applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`)
    this.applied = i
  }

  stableTo (i: number, t: number): void {
    this.unstable.stableTo(i, t)
  }

  stableSnapTo (i: number): void {
    this.unstable.stableSnapTo(i)
  }

  hasNextUnstableEnts (): boolean {
    return this.unstable.offsetInProgress < this.unstable.offset + this.unstable.entries.length
  }

  /** Unstable entries not being written already. */
  nextUnstableEnts (): Entry[] {
    const u = this.unstable
    return u.offsetInProgress === u.offset ? u.entries : u.entries.slice(u.offsetInProgress - u.offset)
  }

  acceptInProgress (i: number, t: number): void {
    this.unstable.acceptInProgress(i, t)
  }

  hasPendingSnapshot (): boolean {
    return this.unstable.snapshot != null
  }

  hasNextCommittedEnts (): boolean {
    if (this.hasPendingSnapshot()) return false
    return this.committed > Math.max(this.applied, this.firstIndex() - 1)
  }

  /** Committed entries not yet handed to the application, up to the size cap. */
  nextCommittedEnts (): Entry[] {
    if (!this.hasNextCommittedEnts()) return []
    const lo = Math.max(this.applied + 1, this.firstIndex())
    return this.slice(lo, this.committed + 1, this.maxApplyingSize)
  }

  /** Entries from i to the end, at most maxSize bytes (at least one). Throws CompactedError. */
  entries (i: number, maxSize?: number): Entry[] {
    if (i > this.lastIndex()) return []
    return this.slice(i, this.lastIndex() + 1, maxSize)
  }

  snapshot (): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot()
  }

  restore (s: Snapshot): void {
    this.committed = s.metadata.index
    this.unstable.restore(s)
  }

  slice (lo: number, hi: number, maxSize?: number): Entry[] {
    if (lo > hi) throw new Error(`invalid slice ${lo} > ${hi}`)
    if (lo < this.firstIndex()) throw new CompactedError()
    if (hi > this.lastIndex() + 1) throw new Error(`slice[${lo},${hi}) out of bound [${this.firstIndex()},${this.lastIndex()}]`)
    if (lo === hi) return []
    let ents: Entry[] = []
    const uoff = this.unstable.offset
    if (lo < uoff) {
      const stored = this.storage.entries(lo, Math.min(hi, uoff), maxSize)
      // the size limit cut the stored part short: the unstable part cannot follow
      if (stored.length < Math.min(hi, uoff) - lo) return stored
      ents = stored
    }
    if (hi > uoff) {
      const unstable = this.unstable.slice(Math.max(lo, uoff), hi)
      ents = ents.length > 0 ? ents.concat(unstable) : unstable
    }
    return limitSize(ents, maxSize)
  }
}
