import { Type } from 'typebox'
import { BadRequestError, closeCodeOf, closeReason, envelope } from '../errors.ts'
import { MAX_ROOM_SIZE, MAX_SIGNAL_BYTES, parseSignal, SIGNAL_TYPES, SignalingRooms } from '../signaling.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

const RoomQuery = Type.Object({
  room: Type.String({ pattern: '^[\\w.:-]{1,128}$', description: 'The room to join: letters, digits and ._:-, at most 128' })
})

/**
 * Document 000's /ws/v0/webrtc: a signaling relay between the WebSocket
 * clients of a room on this node (signaling.ts). A malformed message closes
 * the socket with 4000 + its HTTP status, after the envelope as a text frame;
 * a message to a client no longer there is only answered with an error, as
 * it may have left a moment before.
 */
export const webrtcRoutes: Routes = (app, { shutdown }) => {
  const rooms = new SignalingRooms()
  app.get('/ws/v0/webrtc', {
    permission: 'swarm',
    websocket: true,
    schema: {
      querystring: RoomQuery,
      tags: ['streaming'],
      summary: `WebSocket: WebRTC signaling in a room of at most ${MAX_ROOM_SIZE} clients. Joining gives {"type": "welcome", "id", "room", "peers"}, the others {"type": "join", "id"}, and {"type": "leave", "id"} when one goes; {"type": ${SIGNAL_TYPES.map(t => `"${t}"`).join(' | ')}, "to"?, ...} (at most ${MAX_SIGNAL_BYTES} bytes) goes to "to" or to every other client, with "from". Bad messages close with 4400 or 4413`
    }
  }, (socket, request) => {
    const { room } = request.query as Static<typeof RoomQuery>
    const fail = (err: Error): void => {
      request.log.info({ room }, `signaling: ${err.message}`)
      if (socket.readyState !== socket.OPEN) return
      socket.send(JSON.stringify({ type: 'error', ...envelope(err) }))
      socket.close(closeCodeOf(err), closeReason(err.message))
    }
    let id: string
    try {
      id = rooms.join(room, {
        send: (message) => { if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message)) },
        unread: () => socket.bufferedAmount,
        drop: (code, reason) => { socket.close(code, reason) }
      })
    } catch (err: any) {
      fail(err)
      return
    }
    socket.on('message', (data, isBinary) => {
      try {
        if (isBinary) throw new BadRequestError('signaling messages are JSON text')
        rooms.relay(room, id, parseSignal(data.toString()))
      } catch (err: any) {
        if (err.name === 'SignalPeerNotFoundError') socket.send(JSON.stringify({ type: 'error', ...envelope(err) }))
        else fail(err)
      }
    })
    const stop = (): void => { socket.close(1001, 'the daemon is stopping') }
    shutdown.addEventListener('abort', stop, { once: true })
    socket.once('close', () => {
      shutdown.removeEventListener('abort', stop)
      rooms.leave(room, id)
    })
  })
}
