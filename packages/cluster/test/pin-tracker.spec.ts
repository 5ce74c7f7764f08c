import assert from 'node:assert/strict'
import { setImmediate as turn } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { logger } from '@libp2p/logger'
import { MemoryDatastore } from 'datastore-core/memory'
import { Key } from 'interface-datastore'
import { encodeCommand, encodeJoinContext } from '../src/commands.ts'
import { PinTracker } from '../src/pin-tracker.ts'
import { ClusterState } from '../src/state.ts'
import type { Command, CommandBody } from '../src/commands.ts'

const SELF = 'n1'
const PINS = 50

/** A one-node state whose allocations a tracker follows, with a content that only records what it is asked. */
async function setup (options: { pinTimeoutMs?: number, hang?: Set<string> } = {}): Promise<{ state: ClusterState, apply: (body: CommandBody) => unknown, tracker: PinTracker, pinned: Set<string>, unpinned: string[], scans: () => number, datastore: MemoryDatastore, notes: string[] }> {
  const state = new ClusterState()
  let index = 0
  const apply = (body: CommandBody): unknown => state.apply(encodeCommand({ ...body, at: 0, by: SELF } as Command), ++index, 1)
  state.applyConfChange({ changes: [{ type: 'add-node', nodeId: SELF }] }, { voters: [SELF], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    encodeJoinContext({ addrs: [], at: 0, by: SELF }), ++index, 1)
  const pinned = new Set<string>()
  const unpinned: string[] = []
  let scans = 0
  const datastore = new MemoryDatastore()
  const notes: string[] = []
  const tracker = new PinTracker({
    content: {
      // As the content's PinStore does: the notes go into the same datastore with the pin.
      pinAdd: async (cid, _recursive, pinOptions) => {
        // A pin whose blocks never come: it ends only when its signal does.
        if (options.hang?.has(cid) === true) {
          await new Promise((_resolve, reject) => { pinOptions?.signal?.addEventListener('abort', () => { reject(pinOptions.signal?.reason) }, { once: true }) })
        }
        for (const note of pinOptions?.notes ?? []) {
          notes.push(note.key.toString())
          await datastore.put(note.key, note.value)
        }
        pinned.add(cid)
      },
      pinRm: async (cid) => { pinned.delete(cid); unpinned.push(cid) }
    },
    datastore,
    dial: async () => {},
    log: logger('test:pin-tracker')
  }, {
    allocated: () => {
      scans++
      return state.pinsAllocatedTo(SELF)
    },
    allocation: (cid) => state.pins.get(cid)?.allocations.includes(SELF) === true ? state.pins.get(cid) : undefined,
    ...(options.pinTimeoutMs == null ? {} : { pinTimeoutMs: options.pinTimeoutMs, backoffMs: 60_000 })
  })
  state.onAllocationChange = (cid) => { tracker.changed(cid) }
  await tracker.start()
  return { state, apply, tracker, pinned, unpinned, scans: () => scans, datastore, notes }
}

/** Lets the tracker's passes and pins run, up to a bounded number of turns of the event loop. */
async function until (what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await turn()
  assert.ok(done(), what)
}

describe('PinTracker', () => {
  it('pins each newly allocated pin without looking at the whole pinset again', async () => {
    const { apply, tracker, pinned, scans } = await setup()
    const cids = Array.from({ length: PINS }, (_, i) => `cid-${i}`)
    for (const cid of cids) {
      apply({ op: 'pin.add', cid, name: '', rmin: 1, rmax: 1, size: 0 })
      await turn()
    }
    await until('every pin pinned', () => pinned.size === PINS)
    assert.equal(scans(), 1, 'the pinset was read whole only at start')
    assert.equal(tracker.queueLength(), 0)
    await tracker.stop()
  })

  it('unpins what is no longer allocated, and after a snapshot looks at everything again', async () => {
    const { state, apply, tracker, pinned, unpinned, scans } = await setup()
    for (let i = 0; i < 4; i++) apply({ op: 'pin.add', cid: `cid-${i}`, name: '', rmin: 1, rmax: 1, size: 0 })
    const snapshot = state.snapshot()
    await until('4 pinned', () => pinned.size === 4)
    apply({ op: 'pin.rm', cid: 'cid-0' })
    await until('cid-0 unpinned', () => unpinned.includes('cid-0'))
    assert.equal(tracker.status('cid-0'), undefined)

    apply({ op: 'pin.add', cid: 'cid-4', name: '', rmin: 1, rmax: 1, size: 0 })
    await until('cid-4 pinned', () => pinned.has('cid-4'))
    // back to before cid-0 went and cid-4 came
    state.restore(snapshot)
    await until('as the snapshot has it', () => pinned.has('cid-0') && !pinned.has('cid-4'))
    assert.deepEqual([...pinned].sort(), ['cid-0', 'cid-1', 'cid-2', 'cid-3'])
    assert.equal(scans(), 2)
    await tracker.stop()
  })

  it('marks each pin it makes through the pin itself, as a note written with it, and takes the mark off when it unpins', async () => {
    const { apply, tracker, pinned, unpinned, datastore, notes } = await setup()
    apply({ op: 'pin.add', cid: 'cid-0', name: '', rmin: 1, rmax: 1, size: 0 })
    await until('cid-0 pinned', () => pinned.has('cid-0'))
    assert.deepEqual(notes, ['/cluster/pinned/cid-0'])
    apply({ op: 'pin.rm', cid: 'cid-0' })
    await until('cid-0 unpinned', () => unpinned.includes('cid-0'))
    const mark = new Key('/cluster/pinned/cid-0')
    for (let i = 0; i < 100 && await datastore.has(mark); i++) await turn()
    assert.equal(await datastore.has(mark), false)
    await tracker.stop()
  })

  it('gives up a pin that takes longer than its timeout, and reports it as an error to retry', async () => {
    const { apply, tracker, pinned } = await setup({ pinTimeoutMs: 50, hang: new Set(['cid-slow']) })
    apply({ op: 'pin.add', cid: 'cid-slow', name: '', rmin: 1, rmax: 1, size: 0 })
    apply({ op: 'pin.add', cid: 'cid-fast', name: '', rmin: 1, rmax: 1, size: 0 })
    await until('cid-fast pinned', () => pinned.has('cid-fast'))
    for (let i = 0; i < 100 && tracker.status('cid-slow')?.status !== 'error'; i++) await new Promise(resolve => setTimeout(resolve, 10))
    assert.deepEqual([tracker.status('cid-slow')?.status, tracker.status('cid-slow')?.error], ['error', 'pinning took longer than 50 ms'])
    assert.equal(pinned.has('cid-slow'), false)
    await tracker.stop()
  })
})
