import { Type } from 'typebox'
import { option } from '../args.ts'
import { BadRequestError, envelope } from '../errors.ts'
import { batchJson, closeDataLoader, dataLoader } from '../loaders.ts'
import { kuboOperation } from '../operations.ts'
import { requestDeadline, requestSignal, sendNdjson } from '../stream.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'
import type { WebSocket } from 'ws'

const Epoch = Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description: 'The pass to stream; the next one unless given (the same epoch gives the same batches again)' })

const BatchesQuery = Type.Object({
  loader_id: Type.Optional(Type.String()),
  epoch: Type.Optional(Epoch)
})

/** A JSON message sent when the socket has written it: a slow client holds the loader back instead of the node's memory. */
async function sendJson (socket: WebSocket, value: object): Promise<void> {
  await new Promise<void>((resolve, reject) => { socket.send(JSON.stringify(value), err => { if (err == null) resolve(); else reject(err) }) })
}

function epochOf (value: unknown): number | undefined {
  if (value == null || value === '') return undefined
  const epoch = Number(value)
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new BadRequestError(`epoch must be a whole number from 0, got ${JSON.stringify(value)}`)
  return epoch
}

/**
 * Document 000's data loader: POST ai/dataloader makes a loader or answers
 * its status; its batches stream as NDJSON from ai/dataloader/batches, or
 * over the WebSocket /ws/v0/dataloader/{id}, one pass per stream.
 */
export const dataLoaderRoutes: Routes = (app, { node, shutdown }) => {
  const loaders = node.training.loaders

  kuboOperation(app, node, dataLoader, {
    path: 'ai/dataloader',
    summary: dataLoader.summary,
    schema: { body: dataLoader.input },
    input: (request) => request.body
  })

  kuboOperation(app, node, closeDataLoader, {
    path: 'ai/dataloader/close',
    summary: closeDataLoader.summary,
    schema: { querystring: Type.Object({ loader_id: Type.Optional(Type.String()) }) },
    input: (request) => ({ loader_id: option(request, 'loader_id') })
  })

  kuboRoute(app, {
    path: 'ai/dataloader/batches',
    get: true,
    permission: dataLoader.permission,
    tags: dataLoader.tags,
    summary: 'One pass of a data loader as NDJSON, a batch per line: {loader_id, epoch, batch, size, records}; a failure ends it with an error line',
    schema: { querystring: BatchesQuery },
    handler: async (request, reply) => {
      const id = option<string>(request, 'loader_id')
      if (id == null || id === '') throw new BadRequestError('argument "loader_id" is required')
      const batches = loaders.batches(id, { epoch: epochOf(option(request, 'epoch')), signal: AbortSignal.any([requestSignal(reply), shutdown]) })
      return sendNdjson(reply, (async function * () { for await (const batch of batches) yield batchJson(batch) })(), envelope)
    }
  })

  app.get('/ws/v0/dataloader/:id', {
    permission: dataLoader.permission,
    websocket: true,
    schema: {
      tags: dataLoader.tags,
      summary: 'WebSocket: one pass of a data loader, a batch per message {loader_id, epoch, batch, size, records}, then {"done": true, "batches": n}; an error is document 000\'s envelope',
      params: Type.Object({ id: Type.String() }),
      querystring: Type.Object({ epoch: Type.Optional(Epoch) })
    }
  }, (socket, request) => {
    const controller = new AbortController()
    socket.once('close', () => { controller.abort(new Error('client disconnected')) })
    const deadline = requestDeadline(request)
    const signal = AbortSignal.any([controller.signal, shutdown, ...deadline == null ? [] : [deadline]])
    void (async () => {
      let count = 0
      try {
        const { id } = request.params as { id: string }
        for await (const batch of loaders.batches(id, { epoch: (request.query as { epoch?: number }).epoch, signal })) {
          if (socket.readyState !== socket.OPEN) return
          await sendJson(socket, batchJson(batch))
          count++
        }
        if (socket.readyState !== socket.OPEN) return
        await sendJson(socket, { done: true, batches: count })
        socket.close(1000, 'done')
      } catch (err: any) {
        if (socket.readyState !== socket.OPEN) return
        socket.send(JSON.stringify(envelope(err)))
        socket.close(1008, 'error')
      }
    })()
  })
}
