import { Type } from 'typebox'
import { AuthorizationError } from '@node-daemon/access'
import { isReservedProtocol, MAX_PEER_ID_LENGTH, openStream, parsePeerId } from '@node-daemon/swarm'
import { BadRequestError, closeCodeOf, closeReason, envelope } from '../errors.ts'
import type { Routes } from '../server.ts'
import type { Stream } from '@libp2p/interface'
import type { FastifyRequest } from 'fastify'
import type { Static } from 'typebox'
import type { WebSocket } from 'ws'

const StreamQuery = Type.Object({
  peer: Type.String({ minLength: 1, maxLength: MAX_PEER_ID_LENGTH, description: 'The peer id to open the stream to, another node than this one' }),
  protocol: Type.String({ pattern: '^/[\\x21-\\x7e]{1,255}$', description: 'The libp2p protocol id, e.g. /my-app/echo/1.0.0' })
})

/**
 * Bytes the route holds for each direction before it stops reading that
 * direction's source: the WebSocket is paused while the libp2p stream's send
 * buffer is full, and the libp2p stream is paused while more than this waits
 * to go out on the WebSocket. Memory per socket stays near twice this.
 */
const HIGH_WATER = 4 * 1_048_576
/** How long the peer may take to be dialled and to agree on the protocol. */
const OPEN_TIMEOUT_MS = 30_000
/** How long a clean close may wait for what is queued to reach the peer before the stream is reset. */
const CLOSE_TIMEOUT_MS = 10_000

/**
 * Refuses before the upgrade, as an HTTP answer, a peer id that is not one,
 * this node itself (libp2p dials other peers only), and a stream to a protocol
 * the node itself speaks without every permission (document 002's admin
 * token, the loopback user, a key with "*"), not only the route's
 * cluster:admin: such a stream acts as this node towards the cluster, and a
 * stray Raft or bitswap frame would come from its peer id.
 */
function mayOpen (self: string): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    const { peer, protocol } = request.query as Static<typeof StreamQuery>
    if (parsePeerId(peer).toString() === self) throw new BadRequestError('peer is this node: a stream goes to another node')
    if (isReservedProtocol(protocol) && request.principal?.permissions.has('auth:admin') !== true) {
      throw new AuthorizationError(`${protocol} is one of the node's own protocols: a stream to it needs the auth:admin permission`)
    }
  }
}

/** The client's text frames: {"end": true} closes the writing side, as a half-close. */
function isEnd (text: string): boolean {
  try {
    return (JSON.parse(text) as { end?: unknown } | null)?.end === true
  } catch {
    return false
  }
}

/**
 * Joins a WebSocket and a libp2p stream: binary frames each way, with
 * backpressure (see HIGH_WATER) and half-closes as {"end": true} text frames.
 * The socket closes with 1000 once both sides ended, with 4000 + the HTTP
 * status of an error otherwise (its envelope sent first as a text frame).
 */
function pipe (socket: WebSocket, stream: Stream, shutdown: AbortSignal): void {
  let queued = 0
  let remoteEnded = false
  let localEnded = false
  const sendText = (value: object): void => { if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(value)) }
  const close = (code: number, reason: string): void => {
    if (socket.readyState !== socket.OPEN) return
    // Paused, the socket would not read the client's answer to the close: the close would wait out ws's 30 s.
    socket.resume()
    socket.close(code, closeReason(reason))
  }
  const fail = (err: Error): void => {
    sendText(envelope(err))
    close(closeCodeOf(err), err.message)
    stream.abort(err)
  }
  const finishIfDone = (): void => {
    if (remoteEnded && localEnded && queued === 0) close(1000, 'both sides ended')
  }

  stream.addEventListener('message', (evt) => {
    const bytes = evt.data.subarray()
    queued += bytes.byteLength
    if (queued > HIGH_WATER) stream.pause()
    socket.send(bytes, { binary: true }, () => {
      queued -= bytes.byteLength
      if (queued < HIGH_WATER / 4 && stream.readStatus === 'paused') stream.resume()
      finishIfDone()
    })
  })
  stream.addEventListener('remoteCloseWrite', () => {
    remoteEnded = true
    sendText({ end: true })
    finishIfDone()
  })
  stream.addEventListener('drain', () => { socket.resume() })
  stream.addEventListener('close', (evt) => {
    if (evt.error != null) fail(evt.error)
    else if (!(remoteEnded && localEnded)) close(1000, 'the stream closed')
  })

  socket.on('message', (data, isBinary) => {
    try {
      if (!isBinary) {
        if (!isEnd(data.toString())) throw new BadRequestError('send the data as binary frames; the only text message is {"end": true}')
        if (!localEnded) {
          localEnded = true
          void stream.close().then(finishIfDone, fail)
        }
        return
      }
      if (localEnded) throw new BadRequestError('binary frame after {"end": true}')
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer)
      if (!stream.send(bytes)) socket.pause()
    } catch (err: any) {
      fail(err)
    }
  })
  const stop = (): void => { close(1001, 'the daemon is stopping') }
  shutdown.addEventListener('abort', stop, { once: true })
  socket.once('close', () => {
    shutdown.removeEventListener('abort', stop)
    if (stream.status !== 'open') return
    // A socket gone before it ended its side: what it sent still reaches the peer, then the stream ends.
    stream.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) }).catch((err: Error) => { stream.abort(err) })
  })
}

/**
 * Document 000's /ws/v0/stream/bidirectional: a duplex libp2p stream of a
 * named protocol to a peer, binary frames in and out.
 */
export const p2pStreamRoutes: Routes = (app, { node, shutdown }) => {
  app.get('/ws/v0/stream/bidirectional', {
    permission: 'cluster:admin',
    websocket: true,
    preHandler: mayOpen(node.peerId),
    schema: {
      querystring: StreamQuery,
      tags: ['streaming'],
      summary: 'WebSocket: a duplex libp2p stream of `protocol` to `peer`. Binary frames go to the peer and its bytes come back as binary frames; {"end": true} as text half-closes either way. Closes 1000 when both sides ended, 4000 + HTTP status on an error. The node\'s own protocols (/node-daemon/, /ipfs/, /libp2p/, /meshsub/) need auth:admin'
    }
  }, (socket, request) => {
    const { peer, protocol } = request.query as Static<typeof StreamQuery>
    // Frames wait here until the stream is open: the client may write at once.
    socket.pause()
    const signal = AbortSignal.any([shutdown, AbortSignal.timeout(OPEN_TIMEOUT_MS)])
    const gone = new AbortController()
    socket.once('close', () => { gone.abort(new Error('the client closed the socket')) })
    openStream(node.swarm, parsePeerId(peer), protocol, AbortSignal.any([signal, gone.signal])).then((stream) => {
      if (gone.signal.aborted) {
        stream.abort(gone.signal.reason)
        return
      }
      stream.maxReadBufferLength = HIGH_WATER * 2
      pipe(socket, stream, shutdown)
      socket.resume()
    }, (err: Error) => {
      request.log.info({ peer, protocol }, `stream not opened: ${err.message}`)
      if (socket.readyState !== socket.OPEN) return
      // Paused, the socket would not read the client's answer to the close: the close would wait out ws's 30 s.
      socket.resume()
      socket.send(JSON.stringify(envelope(err)))
      socket.close(closeCodeOf(err), closeReason(err.message))
    })
  })
}
