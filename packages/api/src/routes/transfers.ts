import { Type } from 'typebox'
import { transferId, transfersJson } from '../cluster-views.ts'
import { TransferNotFoundError } from '../errors.ts'
import { LocalQuery, readOptions } from '../reads.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'
import type { Node } from '@node-daemon/daemon'
import type { ReadOptions } from '@node-daemon/cluster'
import type { Static } from 'typebox'

const TransferParams = Type.Object({ id: Type.String({ description: 'Transfer id, as the list gives it' }) })

/** Document 002's transfers: every replica a node is fetching now. */
export async function transfers (node: Node, options: ReadOptions): Promise<Array<{ id: string, cid: string, node: string }>> {
  const [pins, reports, models] = await Promise.all([node.cluster.pins(options), node.cluster.pinStatus(undefined, options), node.cluster.getAllModels(options)])
  return transfersJson(pins, reports, models) as Array<{ id: string, cid: string, node: string }>
}

async function transfer (node: Node, id: string, options: ReadOptions): Promise<{ id: string, cid: string, node: string }> {
  const found = (await transfers(node, options)).find(t => t.id === id)
  if (found == null) throw new TransferNotFoundError(`no node is fetching ${id}`)
  return found
}

/**
 * Document 002's transfers: a model (or any pin) on its way to a node that
 * the cluster allocated it to. Cancelling one takes that replica away through
 * Raft, which stops the node's fetch and keeps it from starting again.
 */
export const transferRoutes: Routes = (app, { node }) => {
  app.get('/api/v1/transfers', {
    permission: 'cluster:read',
    schema: { querystring: LocalQuery, tags: ['distributed'], summary: 'Pins and models being fetched by a node: bytes done and total, rate (bytes/s) and ETA' }
  }, async (_request, reply) => {
    const list = await transfers(node, readOptions(reply))
    return { transfers: list, count: list.length }
  })

  app.get('/api/v1/transfers/:id', {
    permission: 'cluster:read',
    schema: { params: TransferParams, querystring: LocalQuery, tags: ['distributed'], summary: 'One transfer' }
  }, async (request, reply) => transfer(node, (request.params as Static<typeof TransferParams>).id, readOptions(reply)))

  app.delete('/api/v1/transfers/:id', {
    permission: 'cluster:admin',
    schema: { params: TransferParams, tags: ['distributed'], summary: "Cancel a transfer: the node's replica of the pin is taken away, which stops its fetch (400 for the pin's only replica: unpin it instead)" }
  }, async (request, reply) => {
    const signal = requestSignal(reply)
    const found = await transfer(node, (request.params as Static<typeof TransferParams>).id, { signal })
    const pin = await node.cluster.deallocate(found.cid, found.node, { signal })
    return { success: true, id: transferId(found.cid, found.node), cancelled: true, nodes: pin.allocations }
  })
}
