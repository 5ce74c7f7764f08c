import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { appendFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { MemoryStorage, RawNode } from '@node-daemon/raft'
import { Rng } from '../../raft/test/sim/rng.ts'
import { nodeFs } from '../src/fs.ts'
import { openRaftStorage } from '../src/storage.ts'
import { CRASH_CONF_STATE, entryData, snapshotData } from './fixtures/storage-entries.ts'
import { SimDisk } from './sim/disk.ts'
import { Process, Scheduler } from './sim/scheduler.ts'
import type { RaftFs } from '../src/fs.ts'
import type { RaftStorage, RaftStorageInit } from '../src/storage.ts'
import type { ConfState, Entry, HardState, Snapshot, Storage } from '@node-daemon/raft'

const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: ['d'], votersOutgoing: [], learnersNext: [], autoLeave: false }
const WRITER = fileURLToPath(new URL('./fixtures/storage-writer.ts', import.meta.url))

function entry (index: number, term = 1, text = `e${index}`): Entry {
  return { term, index, type: index % 5 === 0 ? 'conf-change' : 'normal', data: new TextEncoder().encode(text) }
}

function entries (from: number, to: number, term = 1, text?: (i: number) => string): Entry[] {
  const out: Entry[] = []
  for (let i = from; i <= to; i++) out.push(entry(i, term, text?.(i)))
  return out
}

/** Everything a Storage answers, for comparing two of them. */
function dump (s: Storage): { first: number, last: number, entries: Entry[], state: ReturnType<Storage['initialState']>, snapshot: Snapshot } {
  const first = s.firstIndex()
  const last = s.lastIndex()
  return { first, last, entries: last >= first ? s.entries(first, last + 1) : [], state: s.initialState(), snapshot: s.snapshot() }
}

async function segments (dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith('.log')).sort()
}

/** A simulated disk holding /repo, and the storage opened in `path` on it by a process (by name, or a filesystem of its own), run in its virtual time. */
function simulated (): { sched: Scheduler, disk: SimDisk, open: (who: string | RaftFs, init?: RaftStorageInit, path?: string) => Promise<RaftStorage> } {
  const sched = new Scheduler()
  const disk = new SimDisk(sched, new Rng(1), { op: 0.5, sync: 2 })
  disk.mkdirSynced('/repo')
  const open = async (who: string | RaftFs, init: RaftStorageInit = {}, path = '/repo/raft'): Promise<RaftStorage> =>
    await sched.settle(openRaftStorage(path, init, {}, { fs: typeof who === 'string' ? disk.fsFor(new Process(who)) : who }))
  return { sched, disk, open }
}

describe('raft storage', () => {
  let root: string
  let n = 0
  const fresh = (): string => join(root, `log-${n++}`)

  before(async () => { root = await mkdtemp(join(tmpdir(), 'node-daemon-raft-storage-')) })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  it('starts a new log from the bootstrap membership and ignores it once a log exists', async () => {
    const dir = fresh()
    let s = await openRaftStorage(dir, { confState: CONF })
    assert.deepEqual(s.initialState(), { hardState: { term: 0, vote: '', commit: 0 }, confState: CONF })
    assert.equal(s.firstIndex(), 1)
    assert.equal(s.lastIndex(), 0)
    await s.close()
    s = await openRaftStorage(dir, { confState: { ...CONF, voters: ['z'] } })
    assert.deepEqual(s.initialState().confState, CONF)
    assert.deepEqual(s.snapshot(), { metadata: { index: 0, term: 0, confState: CONF }, data: new Uint8Array(0) })
    await s.close()
  })

  it('appends to the log on the calling thread, waiting on the thread pool only for the fsync', async () => {
    const calls: string[] = []
    const fs: RaftFs = {
      ...nodeFs,
      open: async (path, flags) => {
        const file = await nodeFs.open(path, flags)
        return {
          ...file,
          write: async (...args) => { calls.push('write'); return await file.write(...args) },
          writeSync: (...args) => { calls.push('writeSync'); return file.writeSync(...args) },
          datasync: async () => { calls.push('datasync'); await file.datasync() }
        }
      }
    }
    const dir = fresh()
    const s = await openRaftStorage(dir, { confState: CONF }, {}, { fs })
    calls.length = 0
    await s.save({ entries: entries(1, 3), hardState: { term: 1, vote: 'a', commit: 0 } }, true)
    await s.save({ entries: [], hardState: { term: 1, vote: 'a', commit: 3 } }, false)
    assert.deepEqual(calls, ['writeSync', 'datasync', 'writeSync'])
    await s.close()
    const reopened = await openRaftStorage(dir)
    assert.deepEqual(reopened.entries(1, 4), entries(1, 3))
    assert.equal(reopened.initialState().hardState.commit, 3)
    await reopened.close()
  })

  it('round-trips entries, hard state and a replaced conflicting suffix across reopen', async () => {
    const dir = fresh()
    let s = await openRaftStorage(dir, { confState: CONF })
    await s.save({ entries: entries(1, 10), hardState: { term: 1, vote: 'a', commit: 3 } }, true)
    await s.save({ entries: entries(11, 12) }, false)
    // a new leader overwrites 8.. with its own entries of term 2
    await s.save({ entries: entries(8, 9, 2, (i) => `new${i}`), hardState: { term: 2, vote: 'b', commit: 7 } }, true)
    const expected = dump(s)
    assert.equal(expected.last, 9)
    assert.deepEqual(expected.entries, [...entries(1, 7), ...entries(8, 9, 2, (i) => `new${i}`)])
    await s.close()
    s = await openRaftStorage(dir)
    assert.deepEqual(dump(s), expected)
    assert.deepEqual(s.initialState().hardState, { term: 2, vote: 'b', commit: 7 })
    // the log goes on after a reopen
    await s.save({ entries: entries(10, 10, 2) }, true)
    await s.close()
    s = await openRaftStorage(dir)
    assert.equal(s.lastIndex(), 10)
    assert.equal(s.term(10), 2)
    await s.close()
  })

  it('replaces the whole log with a snapshot from the leader', async () => {
    const dir = fresh()
    let s = await openRaftStorage(dir, { confState: CONF })
    await s.save({ entries: entries(1, 30), hardState: { term: 1, vote: 'a', commit: 5 } }, true)
    const snapshot: Snapshot = { metadata: { index: 20, term: 3, confState: { ...CONF, voters: ['a', 'b'] } }, data: new TextEncoder().encode('state at 20') }
    await s.save({ snapshot, entries: entries(21, 22, 3), hardState: { term: 3, vote: '', commit: 22 } }, true)
    const expected = dump(s)
    assert.deepEqual({ first: expected.first, last: expected.last }, { first: 21, last: 22 })
    assert.equal(s.term(20), 3)
    await s.close()
    s = await openRaftStorage(dir)
    assert.deepEqual(dump(s), expected)
    assert.throws(() => s.entries(20, 22), { name: 'CompactedError' })
    assert.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.snap')), ['snap-0000000000000020.snap'])
    await s.close()
  })

  it('takes snapshots keeping recent entries and deletes the segments and snapshots they cover', async () => {
    const dir = fresh()
    let s = await openRaftStorage(dir, { confState: CONF, segmentBytes: 1024 })
    for (let i = 1; i <= 200; i += 10) await s.save({ entries: entries(i, i + 9, 1, (j) => `entry ${j}`.padEnd(40, '-')), hardState: { term: 1, vote: 'a', commit: i + 9 } }, true)
    const before = await segments(dir)
    assert.ok(before.length > 5, `${before.length} segments`)
    const firstSegment = await readFile(join(dir, before[0]))
    const snap = await s.createSnapshot(150, undefined, new TextEncoder().encode('at 150'), 20)
    assert.deepEqual(snap.metadata, { index: 150, term: 1, confState: CONF })
    assert.equal(s.firstIndex(), 131)
    assert.throws(() => s.term(129), { name: 'CompactedError' })
    const after = await segments(dir)
    assert.ok(after.length < before.length, `${after.length} of ${before.length} segments left`)
    assert.equal(after[0] > before[0], true)
    assert.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.snap')), ['snap-0000000000000150.snap'])
    // keepEntries 0 drops everything up to the snapshot
    await s.createSnapshot(190, { ...CONF, learners: [] }, new TextEncoder().encode('at 190'), 0)
    assert.equal(s.firstIndex(), 191)
    const expected = dump(s)
    await s.close()
    // as if the deletion of the oldest segment never reached the disk while later ones did
    await writeFile(join(dir, before[0]), firstSegment)
    s = await openRaftStorage(dir, { segmentBytes: 1024 })
    assert.deepEqual(dump(s), expected)
    assert.deepEqual(s.initialState().confState, { ...CONF, learners: [] })
    assert.ok(!(await segments(dir)).includes(before[0]))
    await assert.rejects(s.createSnapshot(190, undefined, new Uint8Array(0)), { name: 'SnapshotOutOfDateError' })
    await s.close()
  })

  it('rotates segments and replays all of them, keeping entries a snapshot left', async () => {
    const dir = fresh()
    let s = await openRaftStorage(dir, { confState: CONF, segmentBytes: 512 })
    for (let i = 1; i <= 120; i += 4) await s.save({ entries: entries(i, i + 3, 1, (j) => `data for ${j}`.padEnd(30, '.')), hardState: { term: 1, vote: 'a', commit: i } }, true)
    assert.ok((await segments(dir)).length > 5)
    await s.createSnapshot(100, undefined, new TextEncoder().encode('at 100'), 60)
    await s.save({ entries: entries(121, 125, 2) }, true)
    const expected = dump(s)
    assert.equal(expected.first, 41)
    await s.close()
    s = await openRaftStorage(dir, { segmentBytes: 512 })
    assert.deepEqual(dump(s), expected)
    await s.close()
  })

  it('truncates a write cut short at the tail of the last segment and appends after it', async () => {
    const cases: Array<[string, (file: string) => Promise<void>]> = [
      ['a record cut short', async (file) => { await truncate(file, (await stat(file)).size - 5) }],
      ['a frame header cut short', async (file) => { await appendFile(file, Uint8Array.of(40, 0, 0)) }],
      ['garbage', async (file) => { await appendFile(file, Uint8Array.from({ length: 100 }, (_, i) => (i * 37 + 200) % 256)) }],
      ['zeros', async (file) => { await appendFile(file, new Uint8Array(4096)) }]
    ]
    for (const [name, damage] of cases) {
      const dir = fresh()
      let s = await openRaftStorage(dir, { confState: CONF })
      await s.save({ entries: entries(1, 5), hardState: { term: 1, vote: 'a', commit: 5 } }, true)
      await s.save({ entries: entries(6, 6) }, true)
      await s.close()
      const file = join(dir, (await segments(dir))[0])
      await damage(file)
      s = await openRaftStorage(dir)
      assert.equal(s.lastIndex(), name === 'a record cut short' ? 5 : 6, name)
      assert.deepEqual(s.entries(1, s.lastIndex() + 1), entries(1, s.lastIndex()), name)
      assert.deepEqual(s.initialState().hardState, { term: 1, vote: 'a', commit: 5 }, name)
      await s.save({ entries: entries(s.lastIndex() + 1, 9) }, true)
      await s.close()
      s = await openRaftStorage(dir)
      assert.deepEqual(s.entries(1, 10), entries(1, 9), name)
      await s.close()
    }
  })

  it('recovers a leader\'s snapshot whose hard state record was torn off: committed through the snapshot, in its term', async () => {
    const dir = fresh()
    let s = await openRaftStorage(dir, { confState: CONF })
    await s.save({ entries: entries(1, 3), hardState: { term: 1, vote: 'a', commit: 2 } }, true)
    // one save, one write: the snapshot record, then the hard state committing it, cut short by a crash
    await s.save({ snapshot: { metadata: { index: 10, term: 3, confState: CONF }, data: Uint8Array.of(10) }, entries: [], hardState: { term: 4, vote: 'b', commit: 10 } }, true)
    await s.close()
    const file = join(dir, (await segments(dir))[0])
    await truncate(file, (await stat(file)).size - 3)
    s = await openRaftStorage(dir)
    assert.equal(s.snapshot().metadata.index, 10)
    assert.deepEqual(s.initialState().hardState, { term: 3, vote: '', commit: 10 })
    // the library starts from it
    assert.doesNotThrow(() => new RawNode({ id: 'a', storage: s, applied: 10 }))
    await s.close()
  })

  it('refuses damage that is not a torn tail: a bad record before good ones, in an older segment, or a missing snapshot', async () => {
    const dir = fresh()
    let s = await openRaftStorage(dir, { confState: CONF })
    await s.save({ entries: entries(1, 3, 1, (i) => `first batch ${i}`) }, true)
    await s.save({ entries: entries(4, 6, 1, (i) => `second batch ${i}`) }, true)
    await s.close()
    const file = join(dir, (await segments(dir))[0])
    const bytes = await readFile(file)
    const at = bytes.indexOf('first batch 2')
    assert.ok(at > 0)
    bytes[at] ^= 0x01
    await writeFile(file, bytes)
    await assert.rejects(openRaftStorage(dir), { name: 'RaftStorageCorruptError', message: /damaged record/ })

    const rotated = fresh()
    s = await openRaftStorage(rotated, { confState: CONF, segmentBytes: 256 })
    for (let i = 1; i <= 40; i += 4) await s.save({ entries: entries(i, i + 3, 1, (j) => `rotated ${j}`.padEnd(30)) }, true)
    await s.close()
    const older = join(rotated, (await segments(rotated))[0])
    const olderBytes = await readFile(older)
    // the last byte of a whole segment: a torn tail only counts in the last one
    await writeFile(older, olderBytes.subarray(0, olderBytes.byteLength - 1))
    await assert.rejects(openRaftStorage(rotated), { name: 'RaftStorageCorruptError' })

    const noSnapshot = fresh()
    s = await openRaftStorage(noSnapshot, { confState: CONF })
    await s.save({ entries: entries(1, 3) }, true)
    await s.close()
    await rm(join(noSnapshot, 'snap-0000000000000000.snap'))
    await assert.rejects(openRaftStorage(noSnapshot), { name: 'RaftStorageCorruptError', message: /missing/ })
  })

  it('answers reads as MemoryStorage does, before and after reopen', async () => {
    const dir = fresh()
    const s = await openRaftStorage(dir, { confState: CONF })
    const m = new MemoryStorage(CONF)
    const both = async (saved: { entries: Entry[], hardState?: HardState }): Promise<void> => {
      m.append(saved.entries)
      if (saved.hardState !== undefined) m.setHardState(saved.hardState)
      await s.save(saved, true)
    }
    const answer = (st: Storage, f: (st: Storage) => unknown): unknown => {
      try {
        return f(st)
      } catch (err) {
        return (err as Error).name
      }
    }
    const compare = (a: Storage, b: Storage, label: string): void => {
      for (let lo = 0; lo <= 24; lo++) {
        for (let hi = lo; hi <= 24; hi++) {
          for (const maxSize of [undefined, 0, 40]) {
            assert.deepEqual(answer(a, (st) => st.entries(lo, hi, maxSize)), answer(b, (st) => st.entries(lo, hi, maxSize)), `${label} entries(${lo}, ${hi}, ${maxSize})`)
          }
        }
        assert.deepEqual(answer(a, (st) => st.term(lo)), answer(b, (st) => st.term(lo)), `${label} term(${lo})`)
      }
      assert.deepEqual(dump(a), dump(b), label)
    }
    compare(s, m, 'empty')
    await both({ entries: entries(1, 20), hardState: { term: 1, vote: 'c', commit: 12 } })
    await both({ entries: entries(15, 18, 2) })
    compare(s, m, 'appended')
    m.createSnapshot(10, undefined, Uint8Array.of(10))
    m.compact(7)
    await s.createSnapshot(10, undefined, Uint8Array.of(10), 3)
    compare(s, m, 'compacted')
    await s.close()
    const reopened = await openRaftStorage(dir)
    compare(reopened, m, 'reopened')
    await reopened.close()
  })

  it('writes overlapping saves in call order and refuses a gap without changing anything', async () => {
    const dir = fresh()
    let s = await openRaftStorage(dir, { confState: CONF })
    const saves: Array<Promise<void>> = []
    for (let i = 1; i <= 50; i++) saves.push(s.save({ entries: [entry(i)], hardState: { term: 1, vote: '', commit: Math.min(i - 1, 30) } }, i % 2 === 0))
    saves.push(s.save({ entries: entries(40, 41, 2) }, true))
    await Promise.all(saves)
    const expected = dump(s)
    assert.equal(expected.last, 41)
    await assert.rejects(s.save({ entries: [entry(43)], hardState: { term: 9, vote: '', commit: 1 } }, true), { name: 'UnavailableError' })
    await assert.rejects(s.save({ entries: [entry(42), entry(44)] }, true), { name: 'RangeError' })
    assert.deepEqual(dump(s), expected)
    await s.close()
    await assert.rejects(s.save({ entries: [entry(42)] }, true), { name: 'RaftStorageClosedError' })
    s = await openRaftStorage(dir)
    assert.deepEqual(dump(s), expected)
    await s.close()
  })

  it('keeps a new log through a power loss: the directories it creates are synced in their parents', async () => {
    const { sched, disk, open } = simulated()
    const s = await open('first', { confState: CONF }, '/repo/node/raft')
    await sched.settle(s.save({ entries: entries(1, 3), hardState: { term: 2, vote: 'b', commit: 2 } }, true))
    // the worst case: only what was synced survives
    disk.powerLoss(true)
    const reopened = await open('second', {}, '/repo/node/raft')
    assert.deepEqual(reopened.initialState(), { hardState: { term: 2, vote: 'b', commit: 2 }, confState: CONF })
    assert.deepEqual(reopened.entries(1, 4), entries(1, 3))
  })

  it('makes what it reads durable on open, since a killed writer\'s last writes may be in the page cache only', async () => {
    const { sched, disk, open } = simulated()
    const writer = new Process('writer')
    const s = await open(disk.fsFor(writer), { confState: CONF })
    await sched.settle(s.save({ entries: entries(1, 3), hardState: { term: 1, vote: 'a', commit: 1 } }, true))
    // written, not yet synced, when the process is killed: the kernel keeps it
    await sched.settle(s.save({ entries: entries(4, 5) }, false))
    writer.alive = false
    const reader = await open('reader')
    // Raft now takes entries 4 and 5 as stable, and may acknowledge them to a leader
    assert.equal(reader.lastIndex(), 5)
    disk.powerLoss(true)
    const after = await open('after')
    assert.deepEqual(after.entries(1, 6), entries(1, 5))
  })

  it('makes the names it reads durable on open: a segment renamed into place by a killed writer whose directory was not synced yet', async () => {
    const { sched, disk, open } = simulated()
    const writer = new Process('writer')
    const fs = disk.fsFor(writer)
    // killed right after it renames its second segment into place, before it syncs the directory
    const killed: RaftFs = { ...fs, rename: async (from, to) => { await fs.rename(from, to); if (to.endsWith('wal-0000000000000002.log')) writer.alive = false } }
    const s = await open(killed, { confState: CONF, segmentBytes: 256 })
    const long = (i: number): string => `entry ${i}`.padEnd(30)
    await sched.settle(s.save({ entries: entries(1, 20, 1, long), hardState: { term: 1, vote: 'a', commit: 1 } }, true))
    await sched.run(sched.now + 1_000, () => false)
    assert.equal(writer.alive, false, 'the writer rotated to a second segment')
    const next = await open('next', { segmentBytes: 256 })
    await sched.settle(next.save({ entries: [entry(21)], hardState: { term: 1, vote: 'a', commit: 21 } }, true))
    disk.powerLoss(true)
    const after = await open('after')
    assert.deepEqual(after.entries(1, 22), [...entries(1, 20, 1, long), entry(21)])
  })

  it('syncs a save that carries a leader\'s snapshot, which Raft does not count as a must-sync', async () => {
    const { sched, disk, open } = simulated()
    const s = await open('first', { confState: CONF })
    await sched.settle(s.save({ entries: entries(1, 3), hardState: { term: 1, vote: 'a', commit: 2 } }, true))
    // the follower acknowledges the snapshot's index to the leader once this resolves
    await sched.settle(s.save({ snapshot: { metadata: { index: 10, term: 2, confState: CONF }, data: Uint8Array.of(10) }, entries: [], hardState: { term: 2, vote: '', commit: 10 } }, false))
    disk.powerLoss(true)
    const after = await open('after')
    assert.deepEqual(after.snapshot().metadata, { index: 10, term: 2, confState: CONF })
    assert.equal(after.lastIndex(), 10)
  })

  it('stops opening when the signal aborts', async () => {
    await assert.rejects(openRaftStorage(fresh(), {}, { signal: AbortSignal.abort() }), { name: 'AbortError' })
  })

  it('loses no acknowledged entry when the writer is killed with SIGKILL at random moments', async (t) => {
    const dir = fresh()
    let acked = 0
    for (let round = 0; round < 5; round++) {
      const child = spawn(process.execPath, [WRITER, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
      const exited = once(child, 'exit')
      let out = ''
      const firstAck = new Promise<void>((resolve) => {
        child.stdout.setEncoding('utf8')
        child.stdout.on('data', (chunk: string) => {
          out += chunk
          if (out.includes('\n')) resolve()
        })
      })
      try {
        await Promise.race([firstAck, exited, sleep(15_000, undefined, { ref: false })])
        assert.ok(out.includes('\n'), `round ${round}: the writer acknowledged nothing`)
        await sleep(50 + Math.floor(Math.random() * 250))
      } finally {
        child.kill('SIGKILL')
        await exited
      }
      // only whole lines: the last may have been cut by the kill
      const lines = out.slice(0, out.lastIndexOf('\n')).split('\n').map(Number)
      assert.ok(lines[0] > acked, `round ${round} went on from ${acked}`)
      acked = lines[lines.length - 1]

      const s = await openRaftStorage(dir)
      try {
        const { first, last, entries: log, state, snapshot } = dump(s)
        t.diagnostic(`round ${round}: acknowledged ${lines.length} saves through ${acked}, log ${first}..${last}, snapshot ${snapshot.metadata.index}, ${(await segments(dir)).length} segments`)
        assert.ok(last >= acked, `acknowledged ${acked}, log ends at ${last}`)
        assert.equal(log.length, last - first + 1)
        log.forEach((e, i) => { assert.deepEqual(e, { term: 1, index: first + i, type: 'normal', data: entryData(first + i) }) })
        assert.ok(state.hardState.commit >= acked && state.hardState.commit <= last)
        assert.deepEqual(state.confState, CRASH_CONF_STATE)
        assert.ok(snapshot.metadata.index >= first - 1)
        if (snapshot.metadata.index > 0) assert.deepEqual(snapshot.data, snapshotData(snapshot.metadata.index))
      } finally {
        await s.close()
      }
    }
  })
})
