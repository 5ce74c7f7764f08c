import { Type } from 'typebox'
import { ack, errorMessage, noticeMessage, parseClientMessage } from '@node-daemon/worker'
import { StepRequest, StepResponse } from '@node-daemon/training'
import type { Routes } from '../server.ts'
import type { ExternalWorker } from '@node-daemon/training'
import type { ServerMessage } from '@node-daemon/worker'
import type { Static } from 'typebox'

const WorkerQuery = Type.Object({
  client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'The client id, for a client that cannot set the Client-ID header' }))
})

/** Document 004's close codes. */
const POLICY_VIOLATION = 1008
const UNSUPPORTED_DATA = 1003
const GOING_AWAY = 1001

const CLIENT_ID = /^[\w.:@-]{1,128}$/

/**
 * Document 004's worker WebSocket (its port 8765; here a path of the API
 * port): JSON messages both ways, and the steps of a training job as binary
 * frames, a StepRequest out and a StepResponse back.
 */
export const workerRoutes: Routes = (app, { node, shutdown }) => {
  app.get('/api/workers/ws', {
    websocket: true,
    schema: {
      querystring: WorkerQuery,
      tags: ['clients'],
      summary: 'WebSocket for external training workers (document 004): task_request, task_progress, task_result and heartbeat in; task, control and acks out; steps as binary protobuf frames'
    }
  }, (socket, request) => {
    const header = request.headers['client-id']
    const id = (Array.isArray(header) ? header[0] : header) ?? (request.query as Static<typeof WorkerQuery>).client_id
    if (id == null || !CLIENT_ID.test(id)) {
      socket.close(POLICY_VIOLATION, 'a Client-ID header (letters, digits and ._:@-, at most 128) is required')
      return
    }
    const send = (message: ServerMessage): void => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message))
    }
    let pending: { resolve: (r: StepResponse) => void, reject: (err: Error) => void } | undefined
    const worker: ExternalWorker = {
      id,
      async step (step, signal) {
        if (pending != null) throw new Error(`worker ${id} is still computing a step`)
        return new Promise<StepResponse>((resolve, reject) => {
          const onAbort = (): void => {
            pending = undefined
            reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
          }
          signal.addEventListener('abort', onAbort, { once: true })
          pending = {
            resolve: (r) => { signal.removeEventListener('abort', onAbort); resolve(r) },
            reject: (err) => { signal.removeEventListener('abort', onAbort); reject(err) }
          }
          socket.send(StepRequest.encode(step))
        })
      },
      notify (notice) { send(noticeMessage(notice)) }
    }
    try {
      node.training.attachWorker(worker)
    } catch (err: any) {
      socket.close(POLICY_VIOLATION, err.message)
      return
    }
    const stop = (): void => { socket.close(GOING_AWAY, 'the daemon is stopping') }
    shutdown.addEventListener('abort', stop, { once: true })

    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const answer = pending
        pending = undefined
        if (answer == null) {
          socket.close(UNSUPPORTED_DATA, 'a binary frame answers a step, and none was asked')
          return
        }
        try {
          answer.resolve(StepResponse.decode(data))
        } catch (err: any) {
          answer.reject(err)
          socket.close(UNSUPPORTED_DATA, 'a binary frame must be a StepResponse')
        }
        return
      }
      let message
      try {
        message = parseClientMessage(data.toString())
      } catch (err: any) {
        send(errorMessage('INVALID_REQUEST', err.message))
        return
      }
      switch (message.type) {
        case 'task_request':
          send(ack('task_request_ack'))
          node.training.requestWork(id, { signal: shutdown }).catch((err: Error) => { send(errorMessage('INTERNAL_ERROR', err.message)) })
          break
        case 'heartbeat':
          node.training.workerSeen(id, message.system_info)
          send(ack('heartbeat_ack'))
          break
        case 'task_progress':
          node.training.workerSeen(id)
          send(ack('task_progress_ack', message.task_id))
          break
        case 'task_result':
          node.training.workerSeen(id)
          send(ack('task_result_ack', message.task_id))
          break
      }
    })
    socket.once('close', () => {
      shutdown.removeEventListener('abort', stop)
      pending?.reject(new Error(`worker ${id} disconnected`))
      pending = undefined
      void node.training.detachWorker(id)
    })
  })
}
