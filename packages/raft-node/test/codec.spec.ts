import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeMessage, decodeProposal, encodeMessage, encodeProposal } from '../src/codec.ts'
import type { Message, MessageType } from '@node-daemon/raft'

const ALL_TYPES: MessageType[] = [
  'MsgHup', 'MsgBeat', 'MsgProp', 'MsgApp', 'MsgAppResp', 'MsgVote', 'MsgVoteResp',
  'MsgPreVote', 'MsgPreVoteResp', 'MsgSnap', 'MsgHeartbeat', 'MsgHeartbeatResp',
  'MsgUnreachable', 'MsgSnapStatus', 'MsgCheckQuorum', 'MsgTransferLeader',
  'MsgTimeoutNow', 'MsgReadIndex', 'MsgReadIndexResp'
]

function message (over: Partial<Message> = {}): Message {
  return { type: 'MsgApp', to: 'b', from: 'a', term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...over }
}

describe('raft codec', () => {
  it('round-trips every message type', () => {
    for (const type of ALL_TYPES) {
      const m = message({ type })
      assert.deepEqual(decodeMessage(encodeMessage(m)), m, type)
    }
  })

  it('uses etcd numbering on the wire', () => {
    // MsgApp is 3 and MsgPreVote 17 in etcd's raftpb: the field tag 0x08 then the varint.
    assert.deepEqual([...encodeMessage(message({ type: 'MsgApp' })).subarray(0, 2)], [0x08, 3])
    assert.deepEqual([...encodeMessage(message({ type: 'MsgPreVote' })).subarray(0, 2)], [0x08, 17])
  })

  it('round-trips entries, snapshots, context and the largest safe integers', () => {
    const big = Number.MAX_SAFE_INTEGER
    const m = message({
      term: big,
      logTerm: big - 1,
      index: 2 ** 40,
      commit: 2 ** 33 + 7,
      reject: true,
      rejectHint: 12,
      context: Uint8Array.of(1, 2, 3),
      entries: [
        { term: 5, index: 2 ** 35, type: 'normal', data: Uint8Array.of(9, 8, 7) },
        { term: 5, index: 2 ** 35 + 1, type: 'conf-change', data: new Uint8Array(0) }
      ],
      snapshot: {
        metadata: {
          index: 1000,
          term: 4,
          confState: { voters: ['a', 'b'], learners: ['c'], votersOutgoing: ['a', 'd'], learnersNext: ['d'], autoLeave: true }
        },
        data: new Uint8Array(4096).fill(0xab)
      }
    })
    assert.deepEqual(decodeMessage(encodeMessage(m)), m)
  })

  it('gives each decoded entry bytes of its own, not a view of the frame the log would keep alive', () => {
    const frame = new Uint8Array(65536)
    const encoded = encodeMessage(message({ entries: [{ term: 1, index: 1, type: 'normal', data: new Uint8Array(300).fill(7) }] }))
    frame.set(encoded, 100)
    const [entry] = decodeMessage(frame.subarray(100, 100 + encoded.byteLength)).entries
    assert.deepEqual(entry.data, new Uint8Array(300).fill(7))
    assert.equal(entry.data.buffer.byteLength, 300)
  })

  it('keeps context absent when not set, and empty when empty', () => {
    assert.equal('context' in decodeMessage(encodeMessage(message())), false)
    assert.equal('snapshot' in decodeMessage(encodeMessage(message())), false)
    assert.deepEqual(decodeMessage(encodeMessage(message({ context: new Uint8Array(0) }))).context, new Uint8Array(0))
  })

  it('refuses unknown message types, integers above 2^53 and garbage with RaftCodecError', () => {
    // type 99 as a varint: protons refuses values its enum lacks
    assert.throws(() => decodeMessage(Uint8Array.of(0x08, 99)), { name: 'RaftCodecError', message: /enum/ })
    // term = 2^54, written by hand (the encoder refuses it): field 4, a varint of 8 bytes
    const huge = Uint8Array.of(0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20)
    assert.throws(() => decodeMessage(huge), { name: 'RaftCodecError', message: /varint/ })
    assert.throws(() => decodeMessage(Uint8Array.of(0x3a, 0x7f)), { name: 'RaftCodecError' })
    assert.throws(() => decodeMessage(Uint8Array.of(0x3a, 0x02, 0x18, 0x09)), { name: 'RaftCodecError', message: /enum/ })
  })

  it('round-trips proposals', () => {
    const p = { id: Uint8Array.from({ length: 16 }, (_, i) => i), command: new TextEncoder().encode('set x 1') }
    assert.deepEqual(decodeProposal(encodeProposal(p)), p)
    assert.throws(() => decodeProposal(Uint8Array.of(0x0a, 0x10)), { name: 'RaftCodecError' })
  })
})
