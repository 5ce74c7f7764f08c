import { Type } from 'typebox'
import { jobIdOfTask } from '@node-daemon/cluster'
import { ack, errorMessage, noticeMessage, parseClientMessage } from '@node-daemon/worker'
import { StepRequest, StepResponse } from '@node-daemon/training'
import type { Routes } from '../server.ts'
import type { ExternalWorker } from '@node-daemon/training'
import type { ClientMessage, ServerMessage } from '@node-daemon/worker'
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
 * frames, a StepRequest out and a StepResponse back. A worker is held to the
 * cluster's rule for nodes: pinged every heartbeat, and let go when nothing
 * came back for the node timeout, so that its job drops it and goes on.
 */
export const workerRoutes: Routes = (app, { node, shutdown }) => {
  app.get('/api/workers/ws', {
    permission: 'training',
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
    let pending: { round: bigint, resolve: (r: StepResponse) => void, reject: (err: Error) => void } | undefined
    // Steps given up on (a deadline, a pause) whose answers may still come: they are dropped, in order, as they do.
    let owed = 0
    const worker: ExternalWorker = {
      id,
      async step (step, signal) {
        if (pending != null) throw new Error(`worker ${id} is still computing a step`)
        signal.throwIfAborted()
        return new Promise<StepResponse>((resolve, reject) => {
          const onAbort = (): void => {
            pending = undefined
            owed++
            reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
          }
          signal.addEventListener('abort', onAbort, { once: true })
          pending = {
            round: step.round,
            resolve: (r) => { signal.removeEventListener('abort', onAbort); resolve(r) },
            reject: (err) => { signal.removeEventListener('abort', onAbort); reject(err) }
          }
          socket.send(StepRequest.encode(step))
        })
      },
      notify (notice) { send(noticeMessage(notice)) }
    }
    const answer = (data: Buffer): void => {
      let response: StepResponse
      try {
        response = StepResponse.decode(data)
      } catch {
        pending?.reject(new Error(`worker ${id} sent a binary frame that is not a StepResponse`))
        pending = undefined
        socket.close(UNSUPPORTED_DATA, 'a binary frame must be a StepResponse')
        return
      }
      if (pending != null && response.round === pending.round) {
        const step = pending
        pending = undefined
        step.resolve(response)
      } else if (owed > 0) {
        owed--
      } else {
        socket.close(UNSUPPORTED_DATA, 'a binary frame answers a step, and none was asked')
      }
    }
    /** Progress and results of a task the worker was given only; any other is refused. */
    const report = async (message: Extract<ClientMessage, { type: 'task_progress' | 'task_result' }>): Promise<ServerMessage> => {
      node.training.workerSeen(id)
      const jobId = jobIdOfTask(message.task_id)
      if (jobId == null || !await node.training.gaveJob(id, jobId, { signal: shutdown })) return errorMessage('NOT_FOUND', `task ${message.task_id} was never given to worker ${id}`)
      return ack(`${message.type}_ack`, message.task_id)
    }
    // Answers go out in the order the messages came, though some need a read of the job table.
    let replies = Promise.resolve()
    const reply = (answer: () => ServerMessage | Promise<ServerMessage>): void => {
      replies = replies.then(async () => { send(await answer()) }).catch((err: Error) => { send(errorMessage('INTERNAL_ERROR', err.message)) })
    }
    try {
      node.training.attachWorker(worker)
    } catch (err: any) {
      socket.close(POLICY_VIOLATION, err.message)
      return
    }
    const stop = (): void => { socket.close(GOING_AWAY, 'the daemon is stopping') }
    shutdown.addEventListener('abort', stop, { once: true })
    const { heartbeatMs, nodeTimeoutMs } = node.config.cluster
    let heard = Date.now()
    const pinger = setInterval(() => {
      // A worker whose process hangs or whose machine is gone answers nothing, not even a ping, while its socket stays open.
      if (Date.now() - heard > nodeTimeoutMs) socket.terminate()
      else socket.ping()
    }, heartbeatMs)
    socket.on('pong', () => { heard = Date.now() })

    socket.on('message', (data: Buffer, isBinary: boolean) => {
      heard = Date.now()
      if (isBinary) {
        answer(data)
        return
      }
      let message: ClientMessage
      try {
        message = parseClientMessage(data.toString())
      } catch (err: any) {
        reply(() => errorMessage('INVALID_REQUEST', err.message))
        return
      }
      switch (message.type) {
        case 'task_request':
          reply(() => ack('task_request_ack'))
          node.training.requestWork(id, { signal: shutdown }).catch((err: Error) => { send(errorMessage('INTERNAL_ERROR', err.message)) })
          break
        case 'heartbeat':
          node.training.workerSeen(id, message.system_info)
          reply(() => ack('heartbeat_ack'))
          break
        case 'task_progress':
        case 'task_result':
          reply(async () => report(message))
          break
      }
    })
    socket.once('close', () => {
      clearInterval(pinger)
      shutdown.removeEventListener('abort', stop)
      pending?.reject(new Error(`worker ${id} disconnected`))
      pending = undefined
      void node.training.detachWorker(id)
    })
  })
}
