import { CompactedError, SnapshotOutOfDateError, UnavailableError } from './errors.ts'
import { limitSize } from './util.ts'
import { NONE } from './types.ts'
import type { ConfState, Entry, HardState, Snapshot, Storage } from './types.ts'

export function emptyConfState (): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }
}

/**
 * The log kept in memory, as etcd's MemoryStorage: `ents[0]` is a dummy entry
 * holding the index and term of the last snapshot. Durable storage keeps one
 * of these as its cache and writes through to disk.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: NONE, commit: 0 }
  private snap: Snapshot
  private ents: Entry[]

  /**
   * A new log whose initial membership is `confState`, held as a genesis
   * snapshot at index 0. Every node of a cluster starts from the same genesis,
   * those that join later too: membership changes are entries of the log, so a
   * joining node (not in the genesis, hence unable to campaign) learns the
   * current membership by replaying the log, or from a snapshot.
   */
  constructor (confState: ConfState = emptyConfState()) {
    this.snap = { metadata: { index: 0, term: 0, confState: cloneConfState(confState) }, data: new Uint8Array(0) }
    this.ents = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }]
  }

  initialState (): { hardState: HardState, confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.snap.metadata.confState) }
  }

  setHardState (hs: HardState): void {
    this.hardState = { ...hs }
  }

  entries (lo: number, hi: number, maxSize?: number): Entry[] {
    const offset = this.ents[0].index
    if (lo <= offset) throw new CompactedError()
    if (hi > this.lastIndex() + 1) throw new UnavailableError(`entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`)
    // only the dummy entry: nothing but the snapshot
    if (this.ents.length === 1) throw new UnavailableError()
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize)
  }

  term (index: number): number {
    const offset = this.ents[0].index
    if (index < offset) throw new CompactedError()
    if (index - offset >= this.ents.length) throw new UnavailableError()
    return this.ents[index - offset].term
  }

  lastIndex (): number {
    return this.ents[0].index + this.ents.length - 1
  }

  firstIndex (): number {
    return this.ents[0].index + 1
  }

  snapshot (): Snapshot {
    return this.snap
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot (snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) throw new SnapshotOutOfDateError()
    this.snap = snap
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: 'normal', data: new Uint8Array(0) }]
  }

  /**
   * Records a snapshot of the application state at `index` (already applied),
   * so that followers far behind can be sent it. Follow with `compact()`.
   */
  createSnapshot (index: number, confState: ConfState | undefined, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError()
    const offset = this.ents[0].index
    if (index > this.lastIndex()) throw new UnavailableError(`snapshot ${index} is out of bound lastindex(${this.lastIndex()})`)
    this.snap = {
      metadata: { index, term: this.ents[index - offset].term, confState: cloneConfState(confState ?? this.snap.metadata.confState) },
      data
    }
    return this.snap
  }

  /** Drops the entries up to and including `compactIndex`. */
  compact (compactIndex: number): void {
    const offset = this.ents[0].index
    if (compactIndex <= offset) throw new CompactedError()
    if (compactIndex > this.lastIndex()) throw new UnavailableError(`compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`)
    const i = compactIndex - offset
    const dummy: Entry = { term: this.ents[i].term, index: this.ents[i].index, type: 'normal', data: new Uint8Array(0) }
    this.ents = [dummy, ...this.ents.slice(i + 1)]
  }

  /** Appends entries, replacing any conflicting suffix of the log. */
  append (entries: Entry[]): void {
    if (entries.length === 0) return
    const first = this.firstIndex()
    const last = entries[0].index + entries.length - 1
    // entries wholly older than the snapshot are already part of it
    if (last < first) return
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index)
    const offset = entries[0].index - this.ents[0].index
    if (offset > this.ents.length) {
      throw new UnavailableError(`missing log entry [last: ${this.lastIndex()}, append at: ${entries[0].index}]`)
    }
    // in place: copying the log on every append would cost O(log) per Ready
    this.ents.length = offset
    for (const e of entries) this.ents.push(e)
  }
}

export function cloneConfState (cs: ConfState): ConfState {
  return {
    voters: [...cs.voters],
    learners: [...cs.learners],
    votersOutgoing: [...cs.votersOutgoing],
    learnersNext: [...cs.learnersNext],
    autoLeave: cs.autoLeave
  }
}
