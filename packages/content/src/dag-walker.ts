import * as dagPb from '@ipld/dag-pb'
import { createUnsafe } from 'multiformats/block'
import { MAX_BLOCK_BYTES } from './block-stream.ts'
import { boundedFetches, getBlock } from './blocks.ts'
import type { ReadOptions } from './blocks.ts'
import type { GraphNode, GraphWalkerFactory, WalkOptions } from '@helia/interface'
import type { BlockView } from 'multiformats/block/interface'
import type { CID } from 'multiformats/cid'

export interface WindowedWalkerInit {
  /** Blocks being read (or fetched) or waiting to be taken, at most. Default 32. */
  maxBlocks?: number
  /**
   * Bytes those blocks may hold, at most, as far as the DAG tells: a dag-pb
   * link carries the size of what it links to; any other link counts as the
   * largest block. Default 8 MiB. One block is always read, whatever its size.
   */
  maxBytes?: number
  /** Called before each block is read or fetched: an add or a pull keeps it from GC this way. */
  keep?: (cid: CID) => Promise<void>
  /** How long a block that is not local may take to arrive (see boundedFetches). */
  fetchTimeoutMs?: number
  /** Called with each block's bytes as the walk hands it on: how far a pin that fetches has come. */
  onBlock?: (bytes: number) => void
  /**
   * Local blocks known to link to nothing (the leaves an add just wrote): the
   * walk hands them on without reading them, as nodes with no bytes, since
   * the pinner only needs their CIDs. Reading them back was 13-19% of an add.
   */
  linkless?: (cid: CID) => boolean
}

const NO_BYTES = new Uint8Array(0)

/**
 * Local blocks read at once. The pinner is slower than the disk, so more would
 * only queue on libuv's threadpool ahead of the pinner's own datastore writes
 * and of the blocks the node serves to peers meanwhile.
 */
const LOCAL_READS = 2

interface Pending {
  cid: CID
  depth: number
  path: CID[]
  /** Bytes the block holds at most, as its parent's link tells. */
  size: number
}

/** The children to walk, each with the size its link promises. */
function childrenOf (block: BlockView<unknown, number, number, 0 | 1>, include: (child: CID) => boolean): Array<{ cid: CID, size: number }> {
  const sized = (size: number | undefined): number => size != null && size > 0 ? Math.min(size, MAX_BLOCK_BYTES) : MAX_BLOCK_BYTES
  const children = block.cid.code === dagPb.code
    ? (block.value as dagPb.PBNode).Links.map(link => ({ cid: link.Hash, size: sized(link.Tsize) }))
    : [...block.links()].map(([, cid]) => ({ cid, size: MAX_BLOCK_BYTES }))
  return children.filter(child => include(child.cid))
}

/**
 * A walk for the pinner, which needs every block of a DAG once, in any order.
 * Helia's walkers read ahead into a queue that grows as far as the pinner lags
 * (pinning a file just added held hundreds of its 256 KiB blocks), and reading
 * one block at a time instead brought a DAG that is not local one round trip
 * per block. This one reads up to `maxBlocks` blocks at once through the
 * blockstore, which fetches, verifies and stores what is missing, and yields
 * them as they arrive; a block keeps its slot until the pinner has taken it.
 * Memory stays bounded whatever the DAG's size: the blocks in the window, and
 * the CIDs still to read, taken newest first so that they are the links of the
 * few nodes on the way down.
 */
export function windowedWalker (init: WindowedWalkerInit = {}): GraphWalkerFactory {
  const maxBlocks = Math.max(1, init.maxBlocks ?? 32)
  const maxBytes = init.maxBytes ?? 8 * 1024 * 1024
  return (components) => ({
    async * walk<T> (root: CID, options: WalkOptions<T> & ReadOptions = {}): AsyncGenerator<GraphNode<T>> {
      const blockstore = boundedFetches(components.blockstore, init.fetchTimeoutMs)
      const { offline } = options
      const maxDepth = options.depth ?? Infinity
      const pending: Pending[] = [{ cid: root, depth: 0, path: [root], size: MAX_BLOCK_BYTES }]
      // A whole DAG is walked once per block, as Kubo's pinner does: a DAG that links to the
      // same blocks many times over (a chain's parents) was walked once per path, without end.
      // A walk to a depth takes every path, as a block met deeper first may be met shallower later.
      const queued = maxDepth === Infinity ? new Set([root.toString()]) : undefined
      const ready: Array<{ node: GraphNode<T>, size: number }> = []
      // Ends the reads in flight with the walk, whether it finished, failed or was abandoned.
      const walking = new AbortController()
      const signal = options.signal == null ? walking.signal : AbortSignal.any([options.signal, walking.signal])
      /** Reads in flight by CID: a block linked twice at once is fetched once. */
      const reading = new Map<string, Promise<Uint8Array>>()
      let blocks = 0
      let bytes = 0
      let failure: { error: unknown } | undefined
      let wake = (): void => {}

      let diskReads = 0
      const diskQueue: Array<() => void> = []
      const fetchOrRead = async (cid: CID): Promise<Uint8Array> => {
        if (!await blockstore.has(cid, { signal })) return getBlock(blockstore, cid, { signal, offline })
        while (diskReads >= LOCAL_READS) await new Promise<void>(resolve => { diskQueue.push(resolve) })
        diskReads++
        try {
          return await getBlock(blockstore, cid, { signal, offline })
        } finally {
          diskReads--
          diskQueue.shift()?.()
        }
      }
      const read = (cid: CID): Promise<Uint8Array> => {
        const key = cid.toString()
        let block = reading.get(key)
        if (block == null) {
          block = init.keep == null ? fetchOrRead(cid) : init.keep(cid).then(async () => fetchOrRead(cid))
          reading.set(key, block)
          block.catch(() => {}).finally(() => { reading.delete(key) })
        }
        return block
      }
      const start = async ({ cid, depth, path, size }: Pending): Promise<void> => {
        try {
          const codec = await components.getCodec(cid.code)
          let block
          if (init.linkless?.(cid) === true) {
            await init.keep?.(cid)
            block = createUnsafe({ cid, bytes: NO_BYTES, value: cid.code === dagPb.code ? { Links: [] } : NO_BYTES, codec })
          } else {
            block = createUnsafe({ cid, bytes: await read(cid), codec })
          }
          if (depth < maxDepth) {
            const children = childrenOf(block, child => options.includeChild?.(child, block) !== false)
            // Each walk starts each node's children at a random one (and wraps round): nodes that
            // fetch one DAG at once (a pin replicated to several) then hold different blocks at
            // any moment and can fetch them from each other, not all from the first holder.
            const turn = Math.floor(Math.random() * children.length)
            for (const child of [...children.slice(turn), ...children.slice(0, turn)].reverse()) {
              if (queued?.has(child.cid.toString()) === true) continue
              queued?.add(child.cid.toString())
              pending.push({ cid: child.cid, depth: depth + 1, path: [...path, child.cid], size: child.size })
            }
          }
          ready.push({ node: { block, depth, path }, size })
          fill()
        } catch (error) {
          failure ??= { error }
        }
        wake()
      }
      const fill = (): void => {
        while (pending.length > 0 && blocks < maxBlocks && !signal.aborted) {
          const next = pending[pending.length - 1]
          if (blocks > 0 && bytes + next.size > maxBytes) return
          pending.pop()
          blocks++
          bytes += next.size
          void start(next)
        }
      }

      try {
        fill()
        while (blocks > 0) {
          while (ready.length === 0 && failure == null) await new Promise<void>(resolve => { wake = resolve })
          // An abort shows as the failure of whichever read it cut short: report the abort itself.
          options.signal?.throwIfAborted()
          if (failure != null) throw failure.error
          const { node, size } = ready.shift() as { node: GraphNode<T>, size: number }
          yield node
          init.onBlock?.(node.block.bytes.byteLength)
          // The pinner asks for the next block once done with this one: its slot is free.
          blocks--
          bytes -= size
          fill()
        }
      } finally {
        // Only a walk that failed or was abandoned has reads in flight: aborting after every
        // finished walk made a DOMException and an event each time, a tenth of a cluster pin.
        if (blocks > 0) walking.abort()
      }
    }
  })
}
