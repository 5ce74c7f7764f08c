/**
 * Between the library's types and the wire format of protocols/raft.proto.
 * The library names message and entry types with strings, the wire with
 * etcd-numbered enums. Terms and indexes are uint64 on the wire and numbers
 * here: protons' `jstype = JS_NUMBER` decoder refuses a value above 2^53 - 1,
 * so a peer cannot smuggle in one that rounds.
 */
import { decodeConfChange } from '@node-daemon/raft'
import { RaftEntry, RaftMessage, RaftProposal } from '../../../protocols/raft.js'
import { RaftCodecError } from './errors.ts'
import type { ConfChange, ConfState, Entry, EntryType, Message, MessageType, Snapshot } from '@node-daemon/raft'
import type { RaftConfState, RaftSnapshot } from '../../../protocols/raft.js'
import type { Uint8ArrayList } from 'uint8arraylist'

const MESSAGE_TYPE_TO_WIRE: Record<MessageType, RaftMessage.Type> = {
  MsgHup: RaftMessage.Type.MSG_HUP,
  MsgBeat: RaftMessage.Type.MSG_BEAT,
  MsgProp: RaftMessage.Type.MSG_PROP,
  MsgApp: RaftMessage.Type.MSG_APP,
  MsgAppResp: RaftMessage.Type.MSG_APP_RESP,
  MsgVote: RaftMessage.Type.MSG_VOTE,
  MsgVoteResp: RaftMessage.Type.MSG_VOTE_RESP,
  MsgPreVote: RaftMessage.Type.MSG_PRE_VOTE,
  MsgPreVoteResp: RaftMessage.Type.MSG_PRE_VOTE_RESP,
  MsgSnap: RaftMessage.Type.MSG_SNAP,
  MsgHeartbeat: RaftMessage.Type.MSG_HEARTBEAT,
  MsgHeartbeatResp: RaftMessage.Type.MSG_HEARTBEAT_RESP,
  MsgUnreachable: RaftMessage.Type.MSG_UNREACHABLE,
  MsgSnapStatus: RaftMessage.Type.MSG_SNAP_STATUS,
  MsgCheckQuorum: RaftMessage.Type.MSG_CHECK_QUORUM,
  MsgTransferLeader: RaftMessage.Type.MSG_TRANSFER_LEADER,
  MsgTimeoutNow: RaftMessage.Type.MSG_TIMEOUT_NOW,
  MsgReadIndex: RaftMessage.Type.MSG_READ_INDEX,
  MsgReadIndexResp: RaftMessage.Type.MSG_READ_INDEX_RESP
}

const MESSAGE_TYPE_FROM_WIRE = invert(MESSAGE_TYPE_TO_WIRE)

const ENTRY_TYPE_TO_WIRE: Record<EntryType, RaftEntry.Type> = {
  normal: RaftEntry.Type.NORMAL,
  'conf-change': RaftEntry.Type.CONF_CHANGE
}

const ENTRY_TYPE_FROM_WIRE = invert(ENTRY_TYPE_TO_WIRE)

function invert<K extends string, V extends string> (table: Record<K, V>): Map<V, K> {
  return new Map(Object.entries(table).map(([k, v]) => [v as V, k as K]))
}

function lookup<V, K> (table: Map<V, K>, value: V, what: string): K {
  const found = table.get(value)
  if (found === undefined) throw new RaftCodecError(`unknown ${what} ${String(value)}`)
  return found
}

function entryToWire (e: Entry): RaftEntry {
  return { term: e.term, index: e.index, type: ENTRY_TYPE_TO_WIRE[e.type], data: e.data as Uint8Array<ArrayBuffer> }
}

/**
 * An entry with bytes of its own: decoded, its data is a view of the frame it
 * came in, often a 64 KiB read, which the log would then keep alive for the
 * entry's few hundred bytes until compaction.
 */
function entryFromWire (e: RaftEntry): Entry {
  return {
    term: e.term,
    index: e.index,
    type: lookup(ENTRY_TYPE_FROM_WIRE, e.type, 'entry type'),
    data: e.data.slice()
  }
}

function confStateToWire (cs: ConfState): RaftConfState {
  return { voters: cs.voters, learners: cs.learners, votersOutgoing: cs.votersOutgoing, learnersNext: cs.learnersNext, autoLeave: cs.autoLeave }
}

function confStateFromWire (cs: RaftConfState | undefined): ConfState {
  return {
    voters: cs?.voters ?? [],
    learners: cs?.learners ?? [],
    votersOutgoing: cs?.votersOutgoing ?? [],
    learnersNext: cs?.learnersNext ?? [],
    autoLeave: cs?.autoLeave ?? false
  }
}

function snapshotToWire (s: Snapshot): RaftSnapshot {
  return { index: s.metadata.index, term: s.metadata.term, confState: confStateToWire(s.metadata.confState), data: s.data as Uint8Array<ArrayBuffer> }
}

function snapshotFromWire (s: RaftSnapshot): Snapshot {
  return {
    metadata: { index: s.index, term: s.term, confState: confStateFromWire(s.confState) },
    data: s.data
  }
}

/** A message in its wire form, without the length prefix. */
export function encodeMessage (m: Message): Uint8Array {
  return RaftMessage.encode({
    type: MESSAGE_TYPE_TO_WIRE[m.type],
    to: m.to,
    from: m.from,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries.map(entryToWire),
    commit: m.commit,
    snapshot: m.snapshot == null ? undefined : snapshotToWire(m.snapshot),
    reject: m.reject,
    rejectHint: m.rejectHint,
    context: m.context as Uint8Array<ArrayBuffer> | undefined
  })
}

/** Decodes one message; throws RaftCodecError on anything malformed. */
export function decodeMessage (bytes: Uint8Array | Uint8ArrayList): Message {
  let w: RaftMessage
  try {
    w = RaftMessage.decode(bytes)
  } catch (err: any) {
    throw new RaftCodecError(`malformed raft message: ${err.message}`)
  }
  const m: Message = {
    type: lookup(MESSAGE_TYPE_FROM_WIRE, w.type, 'message type'),
    to: w.to,
    from: w.from,
    term: w.term,
    logTerm: w.logTerm,
    index: w.index,
    entries: w.entries.map(entryFromWire),
    commit: w.commit,
    reject: w.reject,
    rejectHint: w.rejectHint
  }
  if (w.snapshot != null) m.snapshot = snapshotFromWire(w.snapshot)
  if (w.context != null) m.context = w.context
  return m
}

/** What the driver writes as the data of a normal entry. */
export interface Proposal {
  /** Unique per proposal, chosen by the proposer. */
  id: Uint8Array
  command: Uint8Array
}

export function encodeProposal (p: Proposal): Uint8Array {
  return RaftProposal.encode({ id: p.id as Uint8Array<ArrayBuffer>, command: p.command as Uint8Array<ArrayBuffer> })
}

export function decodeProposal (bytes: Uint8Array): Proposal {
  try {
    return RaftProposal.decode(bytes)
  } catch (err: any) {
    throw new RaftCodecError(`malformed proposal: ${err.message}`)
  }
}

/**
 * What an entry proposes, as the application handed it to propose() or
 * proposeConfChange(): a command, or a membership change with the caller's
 * context. `id` is the driver's request id, when the entry carries one.
 */
export type Proposed =
  | { type: 'normal', id: Uint8Array, command: Uint8Array }
  | { type: 'conf-change', id?: Uint8Array, confChange: ConfChange, context: Uint8Array }

/** Unwraps the driver's framing of an entry; undefined for a new leader's empty entry. Throws on anything malformed. */
export function decodeEntry (e: Entry): Proposed | undefined {
  if (e.data.byteLength === 0) return undefined
  if (e.type === 'conf-change') {
    const cc = decodeConfChange(e.data)
    if (cc.context == null || cc.context.byteLength === 0) return { type: 'conf-change', confChange: cc, context: new Uint8Array(0) }
    const { id, command } = decodeProposal(cc.context)
    return { type: 'conf-change', id, confChange: cc, context: command }
  }
  const { id, command } = decodeProposal(e.data)
  return { type: 'normal', id, command }
}
