import { TypedEventEmitter } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import * as varint from 'uint8-varint'
import { Uint8ArrayList } from 'uint8arraylist'
import { decodeEntry, decodeMessage, encodeMessage } from './codec.ts'
import { RaftIdleError, RaftProtocolError, RaftStoppedError } from './errors.ts'
import type { Proposed } from './codec.ts'
import type { Connection, Libp2p, Logger, PeerId, Startable, Stream } from '@libp2p/interface'
import type { Message, MessageType } from '@node-daemon/raft'

/** Versioned id of the Raft protocol; the wire format is protocols/raft.proto. */
export const RAFT_PROTOCOL = '/node-daemon/raft/1.0.0'

export interface RaftTransportInit {
  /** Default RAFT_PROTOCOL; a cluster of its own (e.g. in tests) may pick another. */
  protocol?: string
  /** Largest message sent or accepted, snapshots included. Default 16 MiB. */
  maxMessageBytes?: number
  /**
   * Whether a peer may send this node Raft messages; streams from others are
   * closed at once. Called for each inbound stream, so it may follow
   * membership as it changes.
   */
  isMember: (peerId: string) => boolean
  /**
   * Whether a member may lead and vote. From the others only what a learner
   * sends is taken (answers to appends and heartbeats, proposals, read-index
   * requests): appends, heartbeats, snapshots, votes and their answers,
   * read-index answers and leadership transfers are dropped, since a learner
   * that sent them could take followers over. Default: every member.
   */
  mayLead?: (peerId: string) => boolean
  /**
   * Whether to take what a member proposes in a MsgProp (a follower forwards
   * its proposals to the leader so), entry by entry. A message with an entry
   * refused, or one that does not decode, is dropped whole; its proposer
   * times out as if it were lost. Default: everything.
   */
  mayPropose?: (peerId: string, proposal: Proposed) => boolean
  /** Messages waiting for one peer; beyond it new ones are dropped. Default 4096. */
  maxQueuedMessages?: number
  /** Bytes waiting for one peer; beyond it new messages are dropped. Default 64 MiB. */
  maxQueuedBytes?: number
  /** Bytes written to a stream at once, at least one message. Default 1 MiB. */
  maxBatchBytes?: number
  /** An inbound stream without messages for this long is closed. Default 30 s. */
  idleTimeoutMs?: number
  /** Opening a stream (dial included) gives up after this long. Default 5 s. */
  dialTimeoutMs?: number
  /** A peer that does not take written bytes for this long loses its stream. Default 10 s. */
  writeTimeoutMs?: number
  /** After a failed dial, messages to the peer are dropped for this long before it is dialled again. Default 500 ms. */
  redialDelayMs?: number
}

export interface RaftTransportComponents {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol' | 'peerId' | 'logger' | 'addEventListener' | 'removeEventListener'>
}

export interface RaftTransportEvents {
  /** A message from a member, its `from` checked against the sending peer. */
  message: CustomEvent<Message>
  /** Messages to this peer were dropped because it could not be reached: tell the library with reportUnreachable. */
  unreachable: CustomEvent<string>
  /** A MsgSnap to `to` was written out (`failure` false) or dropped: tell the library with reportSnapshot. */
  'snapshot-status': CustomEvent<{ to: string, failure: boolean }>
  /** The last connection to a member closed: if it led, it may have died (see RawNode.forgetLeader). */
  disconnect: CustomEvent<string>
}

/** Counters, for tests and metrics. */
export interface RaftTransportStats {
  sent: number
  received: number
  /** Messages dropped on the way out: queue full, oversized, or the peer unreachable. */
  dropped: number
  /** Inbound streams refused (not a member) or ended for breaking the protocol. */
  refused: number
  /** Messages from members dropped because the member may not send them (mayLead, mayPropose). */
  forbidden: number
}

/** What the driver needs of a transport; tests may pass one of their own. */
export interface RaftTransport extends TypedEventEmitter<RaftTransportEvents> {
  /** Queues messages for their peers and returns at once; messages may be dropped, as Raft allows. */
  send (messages: Message[]): void
  /**
   * The other members: streams to anyone else are closed and their queues
   * dropped. Streams to those in `eager` (by default all) open at once;
   * to the others, at their first message.
   */
  setPeers (peerIds: Iterable<string>, eager?: Iterable<string>): void
}

interface Queued {
  bytes: Uint8Array
  /** Set for MsgSnap, whose fate the library wants to hear of. */
  snapshotTo?: string
}

interface Peer {
  id: string
  queue: Queued[]
  queuedBytes: number
  stream?: Stream
  writing: boolean
  /** Until then messages are dropped rather than dialled for. */
  redialAt: number
}

/** What a member that may not lead sends: Raft's learner and follower traffic. */
const FOLLOWER_MESSAGES: ReadonlySet<MessageType> = new Set(['MsgAppResp', 'MsgHeartbeatResp', 'MsgProp', 'MsgReadIndex'])

/** What ends an inbound stream as the sender's fault: a forged sender, garbage, or an oversized message. */
const PROTOCOL_ERRORS = new Set(['RaftProtocolError', 'RaftCodecError', 'InvalidMessageLengthError', 'InvalidParametersError'])

function lengthPrefixed (batch: Queued[]): Uint8ArrayList {
  const list = new Uint8ArrayList()
  for (const q of batch) list.append(varint.encode(q.bytes.byteLength), q.bytes)
  return list
}

/**
 * Raft messages over libp2p: one long-lived outbound stream per peer, written
 * in batches from a bounded queue, so that `send` never blocks the driver;
 * what cannot be queued or delivered is dropped and reported, as Raft only
 * needs best-effort delivery. Inbound streams carry messages one way and are
 * read until they close, idle out, or break the protocol.
 */
export class Libp2pRaftTransport extends TypedEventEmitter<RaftTransportEvents> implements RaftTransport, Startable {
  readonly stats: RaftTransportStats = { sent: 0, received: 0, dropped: 0, refused: 0, forbidden: 0 }
  private readonly libp2p: RaftTransportComponents['libp2p']
  private readonly init: Required<Omit<RaftTransportInit, 'mayLead' | 'mayPropose'>> & Pick<RaftTransportInit, 'mayLead' | 'mayPropose'>
  private readonly log: Logger
  private readonly peers = new Map<string, Peer>()
  private readonly inbound = new Set<Stream>()
  private shutdown = new AbortController()
  private started = false

  constructor (components: RaftTransportComponents, init: RaftTransportInit) {
    super()
    this.libp2p = components.libp2p
    this.init = {
      protocol: init.protocol ?? RAFT_PROTOCOL,
      maxMessageBytes: init.maxMessageBytes ?? 16 * 1024 * 1024,
      isMember: init.isMember,
      mayLead: init.mayLead,
      mayPropose: init.mayPropose,
      maxQueuedMessages: init.maxQueuedMessages ?? 4096,
      maxQueuedBytes: init.maxQueuedBytes ?? 64 * 1024 * 1024,
      maxBatchBytes: init.maxBatchBytes ?? 1024 * 1024,
      idleTimeoutMs: init.idleTimeoutMs ?? 30_000,
      dialTimeoutMs: init.dialTimeoutMs ?? 5_000,
      writeTimeoutMs: init.writeTimeoutMs ?? 10_000,
      redialDelayMs: init.redialDelayMs ?? 500
    }
    this.log = components.libp2p.logger.forComponent('node-daemon:raft-transport')
  }

  isStarted (): boolean {
    return this.started
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    if (this.init.isMember(id)) this.safeDispatchEvent('disconnect', { detail: id })
  }

  async start (): Promise<void> {
    if (this.started) return
    this.shutdown = new AbortController()
    await this.libp2p.handle(this.init.protocol, (stream, connection) => this.receive(stream, connection), {
      // One stream per member and direction; a few more let a reconnecting peer open its new one before the old is gone.
      maxInboundStreams: 64,
      maxOutboundStreams: 64
    })
    this.libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.started = true
  }

  async stop (): Promise<void> {
    this.started = false
    this.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    this.shutdown.abort(new RaftStoppedError('the transport is stopping'))
    // A stopped libp2p may refuse to update its registrar.
    await this.libp2p.unhandle(this.init.protocol).catch((err: Error) => { this.log('unhandle failed - %e', err) })
    for (const peer of this.peers.values()) this.dropPeer(peer)
    this.peers.clear()
    for (const stream of this.inbound) stream.abort(new RaftStoppedError('the transport is stopping'))
    this.inbound.clear()
  }

  send (messages: Message[]): void {
    const touched = new Set<Peer>()
    for (const m of messages) {
      const snapshotTo = m.type === 'MsgSnap' ? m.to : undefined
      if (!this.started) {
        this.drop({ bytes: new Uint8Array(0), snapshotTo })
        continue
      }
      const bytes = encodeMessage(m)
      if (bytes.byteLength > this.init.maxMessageBytes) {
        this.log.error('dropping a %s of %d bytes to %s: over the %d byte cap', m.type, bytes.byteLength, m.to, this.init.maxMessageBytes)
        this.drop({ bytes, snapshotTo })
        continue
      }
      const peer = this.peerFor(m.to)
      if (peer.redialAt > Date.now() ||
        peer.queue.length >= this.init.maxQueuedMessages ||
        peer.queuedBytes + bytes.byteLength > this.init.maxQueuedBytes) {
        this.drop({ bytes, snapshotTo })
        if (peer.redialAt > Date.now()) this.safeDispatchEvent('unreachable', { detail: peer.id })
        continue
      }
      peer.queue.push({ bytes, snapshotTo })
      peer.queuedBytes += bytes.byteLength
      touched.add(peer)
    }
    for (const peer of touched) void this.write(peer)
  }

  setPeers (peerIds: Iterable<string>, eager: Iterable<string> = peerIds): void {
    const keep = new Set(peerIds)
    for (const [id, peer] of this.peers) {
      if (keep.has(id)) continue
      this.dropPeer(peer)
      this.peers.delete(id)
    }
    // Streams open now, not at the first message: followers send each other nothing until the leader dies, and their votes then should not wait for a dial.
    for (const id of eager) {
      if (this.started && keep.has(id) && !this.peers.has(id)) void this.connect(this.peerFor(id))
    }
  }

  private peerFor (id: string): Peer {
    let peer = this.peers.get(id)
    if (peer == null) {
      peer = { id, queue: [], queuedBytes: 0, writing: false, redialAt: 0 }
      this.peers.set(id, peer)
    }
    return peer
  }

  private drop (q: Queued): void {
    this.stats.dropped++
    if (q.snapshotTo != null) this.safeDispatchEvent('snapshot-status', { detail: { to: q.snapshotTo, failure: true } })
  }

  /** Closes the peer's stream and drops what waits for it. */
  private dropPeer (peer: Peer, why: Error = new RaftStoppedError('the peer is no longer a member')): void {
    for (const q of peer.queue) this.drop(q)
    peer.queue = []
    peer.queuedBytes = 0
    peer.stream?.abort(why)
    peer.stream = undefined
  }

  /** Writes the peer's queue until it is empty; one writer per peer at a time. */
  private async write (peer: Peer): Promise<void> {
    if (peer.writing) return
    peer.writing = true
    try {
      while (peer.queue.length > 0 && this.started) {
        const stream = peer.stream ?? await this.open(peer)
        let bytes = 0
        let n = 0
        while (n < peer.queue.length && (n === 0 || bytes + peer.queue[n].bytes.byteLength <= this.init.maxBatchBytes)) {
          bytes += peer.queue[n].bytes.byteLength
          n++
        }
        const batch = peer.queue.splice(0, n)
        peer.queuedBytes -= bytes
        try {
          if (!stream.send(lengthPrefixed(batch))) {
            await stream.onDrain({ signal: AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.init.writeTimeoutMs)]) })
          }
        } catch (err) {
          for (const q of batch) this.drop(q)
          throw err
        }
        this.stats.sent += batch.length
        for (const q of batch) {
          if (q.snapshotTo != null) this.safeDispatchEvent('snapshot-status', { detail: { to: q.snapshotTo, failure: false } })
        }
      }
    } catch (err: any) {
      if (this.started) {
        this.log('sending to %s failed - %e', peer.id, err)
        this.dropPeer(peer, err)
        this.safeDispatchEvent('unreachable', { detail: peer.id })
      }
    } finally {
      peer.writing = false
    }
  }

  /** Opens the peer's stream ahead of its first message; one that fails is dialled again when a message comes. */
  private async connect (peer: Peer): Promise<void> {
    if (peer.writing) return
    peer.writing = true
    try {
      await this.open(peer)
    } catch (err: any) {
      // not unreachable: nothing was dropped, and a message may yet come after redialDelayMs
      peer.redialAt = 0
      this.log('opening a stream to %s failed - %e', peer.id, err)
    } finally {
      peer.writing = false
    }
    if (peer.queue.length > 0) void this.write(peer)
  }

  private async open (peer: Peer): Promise<Stream> {
    let stream: Stream
    try {
      // Dials by peer id: libp2p reuses a connection or finds addresses in its peer store.
      stream = await this.libp2p.dialProtocol(peerIdFromString(peer.id), this.init.protocol, {
        signal: AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.init.dialTimeoutMs)])
      })
    } catch (err) {
      peer.redialAt = Date.now() + this.init.redialDelayMs
      throw err
    }
    if (!this.started || this.peers.get(peer.id) !== peer) {
      stream.abort(new RaftStoppedError('the peer is no longer a member'))
      throw new RaftStoppedError('the peer left while its stream opened')
    }
    peer.redialAt = 0
    peer.stream = stream
    stream.addEventListener('close', () => {
      if (peer.stream === stream) peer.stream = undefined
    }, { once: true })
    return stream
  }

  /**
   * Reads one inbound stream. The sender must be a member and every message
   * must come from it: a member cannot speak for another (but see
   * MsgTransferLeader below). The stream closes
   * after idleTimeoutMs without messages; the sender opens a new one when it
   * next has something to say.
   */
  private async receive (stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString()
    if (!this.started || !this.init.isMember(from)) {
      this.stats.refused++
      stream.abort(new RaftProtocolError(`${from} is not a member`))
      return
    }
    this.inbound.add(stream)
    // A reset rather than a close: the sender never reads, so only a reset tells it to open a new stream.
    const idle = setTimeout(() => {
      stream.abort(new RaftIdleError(`no message for ${this.init.idleTimeoutMs} ms`))
    }, this.init.idleTimeoutMs)
    // maxDataLength is the cap that matters; the buffer may hold one chunk of many small messages besides.
    const decoder = new LengthPrefixedDecoder({ maxDataLength: this.init.maxMessageBytes, maxBufferSize: 2 * this.init.maxMessageBytes })
    try {
      for await (const chunk of stream) {
        idle.refresh()
        for (const bytes of decoder.decode(chunk)) {
          const m = decodeMessage(bytes)
          // MsgTransferLeader names the transferee in `from` (etcd's convention), so a follower forwarding it speaks for another member.
          if (m.from !== from && (m.type !== 'MsgTransferLeader' || !this.init.isMember(m.from))) {
            throw new RaftProtocolError(`${from} sent a ${m.type} from ${m.from}`)
          }
          if (!this.permitted(from, m)) {
            this.stats.forbidden++
            this.log('dropped a %s from %s, which may not send it', m.type, from)
            continue
          }
          this.stats.received++
          this.safeDispatchEvent('message', { detail: m })
        }
      }
      if (stream.writeStatus === 'writable') await stream.close({ signal: AbortSignal.timeout(5_000) })
    } catch (err: any) {
      if (PROTOCOL_ERRORS.has(err.name)) {
        this.stats.refused++
        this.log.error('%s broke the raft protocol - %e', from, err)
      } else {
        this.log('inbound raft stream from %s ended - %e', from, err)
      }
      stream.abort(err)
    } finally {
      clearTimeout(idle)
      this.inbound.delete(stream)
    }
  }

  /** Whether the member `from` may send `m`: see mayLead and mayPropose. */
  private permitted (from: string, m: Message): boolean {
    if (!FOLLOWER_MESSAGES.has(m.type)) return this.init.mayLead?.(from) ?? true
    const mayPropose = this.init.mayPropose
    if (m.type !== 'MsgProp' || mayPropose == null) return true
    return m.entries.every(e => {
      try {
        const proposal = decodeEntry(e)
        return proposal != null && mayPropose(from, proposal)
      } catch {
        return false
      }
    })
  }
}

export function createRaftTransport (components: RaftTransportComponents, init: RaftTransportInit): Libp2pRaftTransport {
  return new Libp2pRaftTransport(components, init)
}
