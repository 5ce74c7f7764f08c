/**
 * The rooms of document 000's WebRTC signaling socket: clients of this node
 * join a room, get an id, and relay offers, answers and ICE candidates to
 * one another. The node reads nothing in them but their type and recipient:
 * the media flows between the browsers.
 */
import { randomBytes } from 'node:crypto'
import { BadRequestError } from './errors.ts'

/** A room holds at most so many clients: signaling is for a call or a small mesh, not a broadcast. */
export const MAX_ROOM_SIZE = 16
/** Largest signaling message: an SDP offer with many codecs and candidates stays well under it. */
export const MAX_SIGNAL_BYTES = 64 * 1024
/** A client that leaves so much unread is dropped rather than buffered without end. */
export const MAX_UNREAD_BYTES = 1_048_576

export const SIGNAL_TYPES = ['offer', 'answer', 'candidate'] as const
export type SignalType = typeof SIGNAL_TYPES[number]

/** The room is at its MAX_ROOM_SIZE. */
export class RoomFullError extends Error {
  static name = 'RoomFullError'
  name = 'RoomFullError'
}

/** A signaling message over MAX_SIGNAL_BYTES. */
export class SignalTooLargeError extends Error {
  static name = 'SignalTooLargeError'
  name = 'SignalTooLargeError'
}

/** A message `to` a client that is not in the room (it never was, or left). */
export class SignalPeerNotFoundError extends Error {
  static name = 'SignalPeerNotFoundError'
  name = 'SignalPeerNotFoundError'
}

/** What the rooms need of a client's socket. */
export interface SignalingClient {
  /** Sends a JSON text message. */
  send: (message: object) => void
  /** Bytes sent and not yet written out to the client. */
  unread: () => number
  /** Ends the client's socket with a code and a reason. */
  drop: (code: number, reason: string) => void
}

/** A message from a client, checked: a signal type, an optional recipient, the rest relayed as it came. */
export interface Signal {
  type: SignalType
  to?: string
  [field: string]: unknown
}

/** A text message from a client as a Signal, or the reason it is not one. */
export function parseSignal (text: string): Signal {
  if (Buffer.byteLength(text) > MAX_SIGNAL_BYTES) throw new SignalTooLargeError(`a signaling message is at most ${MAX_SIGNAL_BYTES} bytes`)
  let message: unknown
  try {
    message = JSON.parse(text)
  } catch {
    throw new BadRequestError('a signaling message is a JSON object')
  }
  if (message == null || typeof message !== 'object' || Array.isArray(message)) throw new BadRequestError('a signaling message is a JSON object')
  const { type, to } = message as { type?: unknown, to?: unknown }
  if (typeof type !== 'string' || !(SIGNAL_TYPES as readonly string[]).includes(type)) throw new BadRequestError(`"type" must be one of ${SIGNAL_TYPES.join(', ')}`)
  if (to !== undefined && typeof to !== 'string') throw new BadRequestError('"to" is the id of a client of the room, a string')
  return message as Signal
}

/**
 * The rooms, each a map of client ids to clients; a room exists while it has
 * a client. Ids are random, so that one client cannot guess another room's.
 */
export class SignalingRooms {
  readonly #rooms = new Map<string, Map<string, SignalingClient>>()

  /** Adds a client: it is told its id and who is there, the others that it came. */
  join (room: string, client: SignalingClient): string {
    const members = this.#rooms.get(room) ?? new Map<string, SignalingClient>()
    if (members.size >= MAX_ROOM_SIZE) throw new RoomFullError(`room ${room} has ${MAX_ROOM_SIZE} clients, as many as a room takes`)
    const id = randomBytes(8).toString('hex')
    this.#broadcast(members, { type: 'join', id })
    client.send({ type: 'welcome', id, room, peers: [...members.keys()] })
    members.set(id, client)
    this.#rooms.set(room, members)
    return id
  }

  /** Removes a client; the others are told it left. */
  leave (room: string, id: string): void {
    const members = this.#rooms.get(room)
    if (members?.delete(id) !== true) return
    if (members.size === 0) this.#rooms.delete(room)
    else this.#broadcast(members, { type: 'leave', id })
  }

  /** Relays a signal from `from` to its `to`, or to every other client of the room; `from` is the room's, never the sender's word. */
  relay (room: string, from: string, signal: Signal): void {
    const members = this.#rooms.get(room) ?? new Map<string, SignalingClient>()
    const message = { ...signal, from }
    if (signal.to == null) {
      this.#broadcast(members, message, from)
      return
    }
    const to = members.get(signal.to)
    if (to == null || signal.to === from) throw new SignalPeerNotFoundError(`no other client ${signal.to} in room ${room}`)
    this.#deliver(to, message)
  }

  #broadcast (members: Map<string, SignalingClient>, message: object, except?: string): void {
    for (const [id, client] of members) if (id !== except) this.#deliver(client, message)
  }

  #deliver (client: SignalingClient, message: object): void {
    if (client.unread() > MAX_UNREAD_BYTES) client.drop(4429, 'too many signaling messages left unread')
    else client.send(message)
  }
}
