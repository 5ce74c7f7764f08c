import { pushable } from 'it-pushable'
import { CID } from 'multiformats/cid'
import { blockKey } from './blocks.ts'
import { GcError } from './errors.ts'
import { descendants, pinnedCID } from './pins.ts'
import type { Blocks, Pins } from '@helia/interface'
import type { AbortOptions, Logger } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'

/**
 * What an add or a pull in flight keeps from GC: every block it writes or
 * reads, until it is released once its pins are made (or it failed).
 */
export interface Hold {
  /**
   * Keeps `cid` until release. Call it before writing or reading the block:
   * it waits out a deletion of the block already under way, so that what the
   * caller then writes or fetches stays.
   */
  keep(cid: CID): Promise<void>
  release(): void
}

/** `blockstore.put` with each block held before it is written. */
export function heldPut (blockstore: Pick<Blocks, 'put'>, hold: Hold): Blocks['put'] {
  return async (cid, bytes, options) => {
    await hold.keep(cid)
    return blockstore.put(cid, bytes, options)
  }
}

/**
 * The in-flight set between GC and the adds and pulls running beside it, in
 * place of Kubo's blockstore GC lock: nothing waits for a GC to end, and a GC
 * never waits for an add. A GC skips every held block; a block is held before
 * it is written or read, and GC's check and the start of its deletion happen
 * in one turn of the event loop, so a block is either deleted before an add
 * writes it again or kept. Releases during a GC take effect when it ends,
 * because its mark may predate the pins those operations just made.
 */
export class BlockGuard {
  readonly #held = new Map<string, number>()
  readonly #deleting = new Map<string, Promise<void>>()
  #runs = 0
  #deferred: Array<() => void> = []
  /** Collections run one at a time, as under Kubo's GC lock. */
  #queue: Promise<void> = Promise.resolve()

  hold (): Hold {
    const keys = new Set<string>()
    let released = false
    return {
      keep: async (cid) => {
        const key = blockKey(cid)
        if (!released && !keys.has(key)) {
          keys.add(key)
          this.#held.set(key, (this.#held.get(key) ?? 0) + 1)
        }
        await this.#deleting.get(key)
      },
      release: () => {
        if (released) return
        released = true
        const drop = (): void => {
          for (const key of keys) {
            const count = (this.#held.get(key) ?? 1) - 1
            if (count === 0) this.#held.delete(key)
            else this.#held.set(key, count)
          }
        }
        if (this.#runs > 0) this.#deferred.push(drop)
        else drop()
      }
    }
  }

  held (cid: CID): boolean {
    return this.#held.has(blockKey(cid))
  }

  /** Runs `remove` unless the block is held; false when it is. */
  async delete (cid: CID, remove: () => Promise<void>): Promise<boolean> {
    const key = blockKey(cid)
    if (this.#held.has(key)) return false
    const pending = this.#deleting.get(key)
    if (pending != null) {
      await pending
      return true
    }
    const deletion = remove()
    const settled = deletion.then(() => {}, () => {})
    this.#deleting.set(key, settled)
    try {
      await deletion
    } finally {
      if (this.#deleting.get(key) === settled) this.#deleting.delete(key)
    }
    return true
  }

  /** Runs a collection (a mark and what follows it) after those before it, holding releases until it ends. */
  async collect<T> (run: () => Promise<T>): Promise<T> {
    const turn = this.#queue.then(async () => {
      this.#runs++
      try {
        return await run()
      } finally {
        if (--this.#runs === 0) {
          const deferred = this.#deferred
          this.#deferred = []
          for (const drop of deferred) drop()
        }
      }
    })
    this.#queue = turn.then(() => {}, () => {})
    return turn
  }
}

/** Why a block is kept: pinned itself, under a recursive pin (the root), allocated to this node by the cluster, or in the files/* tree. */
export type Keeper = 'recursive' | 'direct' | 'allocated' | 'mfs' | CID

export interface GcComponents {
  /**
   * The local store itself: GC neither fetches nor goes through Helia's lock.
   * With `compact`, a store that deletes by appending gives the room back
   * once a collection ends.
   */
  blockstore: Pick<Blockstore, 'get' | 'has' | 'delete' | 'getAll'> & { compact?(options?: AbortOptions): Promise<void> }
  pins: Pick<Pins, 'ls'>
  guard: BlockGuard
  /** Roots kept with everything under them though not pinned here (yet): the cluster's allocations. */
  keep?: () => Iterable<string>
  /** The root of the files/* tree, kept with everything under it, as Kubo's GC keeps it. */
  mfsRoot?: () => CID | undefined
  log?: Logger
}

/**
 * Every local block that must stay, by multihash, with why, as Kubo's GC
 * colours its set: pinned blocks, the DAGs under recursive pins and under the
 * cluster's allocations, walked in the local store only. A block that is not
 * here cannot be deleted, so a DAG with missing parts is walked as far as it
 * is local.
 */
export async function markLive (components: GcComponents, options: AbortOptions = {}): Promise<Map<string, Keeper>> {
  const live = new Map<string, Keeper>()
  const roots: Array<{ cid: CID, depth: number, keeper: Keeper }> = []
  for await (const pin of components.pins.ls(options)) {
    const cid = pinnedCID(pin)
    live.set(blockKey(cid), pin.depth === 0 ? 'direct' : 'recursive')
    if (pin.depth > 0) roots.push({ cid, depth: pin.depth, keeper: cid })
  }
  for (const text of components.keep?.() ?? []) {
    const cid = CID.parse(text)
    if (!live.has(blockKey(cid))) live.set(blockKey(cid), 'allocated')
    roots.push({ cid, depth: Infinity, keeper: 'allocated' })
  }
  const mfs = components.mfsRoot?.()
  if (mfs != null) {
    if (!live.has(blockKey(mfs))) live.set(blockKey(mfs), 'mfs')
    roots.push({ cid: mfs, depth: Infinity, keeper: 'mfs' })
  }
  // Blocks walked under some root: a walk that meets one again need not go below it.
  const seen = new Set<string>()
  for (const root of roots) {
    for await (const cid of descendants(components.blockstore, root.cid, { ...options, seen, depth: root.depth, skipMissing: true })) {
      const key = blockKey(cid)
      if (!live.has(key)) live.set(key, root.keeper)
    }
  }
  return live
}

export type GcResult = { cid: CID } | { error: Error }

/**
 * Removes every local block that nothing keeps (pins, cluster allocations,
 * adds and pulls in flight), yielding each one removed as a raw CIDv1, as
 * Kubo reports them, and each failure to delete one; a failure does not stop
 * the sweep, which then ends with a GcError. A failed mark removes nothing.
 */
export async function * collectGarbage (components: GcComponents, options: AbortOptions = {}): AsyncGenerator<GcResult> {
  let failed = 0
  yield * collecting<GcResult>(components.guard, async (push) => {
    const live = await markLive(components, options)
    for await (const { cid } of components.blockstore.getAll(options)) {
      if (live.has(blockKey(cid))) continue
      try {
        if (await components.guard.delete(cid, async () => { await components.blockstore.delete(cid, options) })) push({ cid })
      } catch (err: any) {
        failed++
        components.log?.error('gc could not remove %c - %e', cid, err)
        push({ error: new Error(`could not remove ${cid}: ${err.message}`) })
      }
    }
    await components.blockstore.compact?.(options)
  })
  if (failed > 0) throw new GcError(`garbage collection incomplete: could not remove ${failed} blocks`)
}

/**
 * Runs a collection in its turn and streams what it finds as it goes. A
 * client that stops reading does not stop it: as in Kubo, a GC once begun
 * runs to its end, unless its signal aborts.
 */
async function * collecting<T> (guard: BlockGuard, run: (push: (item: T) => void) => Promise<void>): AsyncGenerator<T> {
  const items = pushable<T>({ objectMode: true })
  guard.collect(async () => { await run(item => { items.push(item) }) }).then(() => items.end(), (err) => items.end(err))
  yield * items
}

export interface BlockRmOptions extends AbortOptions {
  /** Kubo's `force`: a block that is not here is no error. */
  force?: boolean
}

export interface BlockRmResult {
  /** The CID as given. */
  cid: CID
  /** Why it was not removed, in Kubo's words. */
  error?: string
}

function pinnedMessage (keeper: Keeper): string {
  if (keeper instanceof CID) return `pinned via ${keeper}`
  if (keeper === 'mfs') return 'in use by the files (MFS) tree'
  return keeper === 'allocated' ? 'pinned: allocated to this node by the cluster' : `pinned: ${keeper}`
}

/**
 * Removes blocks as Kubo's block/rm: one result per CID; a pinned block (or
 * one the cluster allocated here, or one an add or pull in flight holds) is
 * refused, and one not here too unless `force`.
 */
export async function * removeBlocks (components: GcComponents, cids: CID[], options: BlockRmOptions = {}): AsyncGenerator<BlockRmResult> {
  yield * collecting<BlockRmResult>(components.guard, async (push) => {
    const live = await markLive(components, options)
    for (const cid of cids) {
      const keeper = live.get(blockKey(cid))
      try {
        if (keeper != null) {
          push({ cid, error: pinnedMessage(keeper) })
        } else if (options.force !== true && !await components.blockstore.has(cid, options)) {
          push({ cid, error: `ipld: could not find ${cid}` })
        } else if (!await components.guard.delete(cid, async () => { await components.blockstore.delete(cid, options) })) {
          push({ cid, error: 'in use by an add or a pin in progress' })
        } else {
          push({ cid })
        }
      } catch (err: any) {
        push({ cid, error: err.message })
      }
    }
    await components.blockstore.compact?.(options)
  })
}
