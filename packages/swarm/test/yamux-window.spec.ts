import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { defaultLogger } from '@libp2p/logger'
import { Uint8ArrayList } from 'uint8arraylist'
import { halveYamuxWindowUpdates } from '../src/yamux-window.ts'

/** Yamux's frame types (the spec's numbers): data, and the window update a receiver sends back. */
const DATA = 0
const WINDOW_UPDATE = 1
/** js-yamux's initial window per stream, 256 KiB. */
const WINDOW = 256 * 1024

/** An established stream that records the frames it sends, fed `count` data frames of `size` bytes; the window updates it sent back. */
function updatesFor (count: number, size: number): number[] {
  const updates: number[] = []
  const stream = new YamuxStream({
    id: '1',
    streamId: 1,
    direction: 'inbound',
    log: defaultLogger().forComponent('test:yamux-window'),
    state: StreamState.Established,
    getRTT: () => -1,
    sendFrame: (header) => {
      if (header.type === WINDOW_UPDATE) updates.push(header.length)
      return true
    }
  })
  for (let i = 0; i < count; i++) {
    // yamux has a Uint8ArrayList of its own version, the same at run time.
    stream.handleData({ header: { type: DATA, flag: 0, streamID: 1, length: size, version: 0 }, data: new Uint8ArrayList(new Uint8Array(size)) as never })
  }
  return updates
}

describe('yamux window updates', () => {
  it('are sent once the remote has used half the window, not after every small frame', () => {
    halveYamuxWindowUpdates()
    // 500 frames of 300 bytes, a Raft follower's appends: 150,000 bytes, past half the window once.
    const updates = updatesFor(500, 300)
    assert.equal(updates.length, 1)
    assert.ok(updates[0] >= WINDOW / 2, `an update of ${updates[0]} bytes`)
  })

  it('give back the whole window under a bulk stream, so that its writer never waits for one', () => {
    halveYamuxWindowUpdates()
    // 64 KiB frames: an update at every second frame, each giving back what the two took.
    const updates = updatesFor(16, 64 * 1024)
    assert.deepEqual(updates, Array.from({ length: 8 }, () => 128 * 1024))
  })
})
