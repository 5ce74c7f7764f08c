import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createMemoryCluster } from './helpers/memory-cluster.ts'
import type { MemoryCluster, MemoryNode } from './helpers/memory-cluster.ts'
import type { ReadOptions } from '../src/interface.ts'

const TIMINGS = { voters: 1, tickMs: 50, heartbeatMs: 500, nodeTimeoutMs: 2_000 }
const TIMEOUT_MS = 60_000

describe('findModel, the registry read that every request naming a model makes', () => {
  let cluster: MemoryCluster
  let node: MemoryNode
  let cid: string
  /** Every getModel the node makes, and whether it was local; `local` answers as given instead of from the applied state. */
  const spy = (local?: () => never): { reads: Array<[string, boolean]>, restore: () => void } => {
    const reads: Array<[string, boolean]> = []
    const getModel = node.cluster.getModel
    node.cluster.getModel = async (id: string, options?: ReadOptions) => {
      reads.push([id, options?.local === true])
      if (options?.local === true && local != null) local()
      return getModel.call(node.cluster, id, options)
    }
    return { reads, restore: () => { node.cluster.getModel = getModel } }
  }

  before(async () => {
    cluster = await createMemoryCluster(TIMINGS)
    await cluster.grow(1, { wave: 1, joinTimeoutMs: TIMEOUT_MS })
    node = cluster.nodes[0]
    cid = (await node.content.blockPut(randomBytes(64))).toString()
    await node.cluster.registerModel({ modelId: 'known:latest', modelCID: cid, replicationFactor: 1 })
  })

  after(async () => {
    assert.deepEqual(await cluster?.stop(10_000), [], 'every node stops in time')
  })

  it('answers a known id from the applied state, and reads through the leader only for an id it lacks', async () => {
    const { reads, restore } = spy()
    try {
      assert.equal((await node.cluster.findModel('known:latest'))?.modelCID, cid)
      assert.equal(await node.cluster.findModel('unknown:latest'), undefined)
    } finally {
      restore()
    }
    assert.deepEqual(reads, [['known:latest', true], ['unknown:latest', true], ['unknown:latest', false]])
  })

  it('finds what the applied state lacks but the leader has: a registration made at another node a moment ago', async () => {
    const { reads, restore } = spy(() => { throw new Error('not applied here yet') })
    try {
      assert.equal((await node.cluster.findModel('known:latest'))?.modelCID, cid)
    } finally {
      restore()
    }
    assert.deepEqual(reads, [['known:latest', true], ['known:latest', false]])
  })
})
