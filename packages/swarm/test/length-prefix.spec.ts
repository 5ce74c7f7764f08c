import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import { quietLengthPrefixes } from '../src/length-prefix.ts'

/** A frame as noise writes one: a 2-byte big-endian length, then the bytes. */
function frame (bytes: number[]): Uint8Array {
  return Uint8Array.of(bytes.length >> 8, bytes.length & 0xff, ...bytes)
}

describe('length-prefixed decoding', () => {
  it('waits for the next frame without throwing, and still reads frames that come in pieces', () => {
    quietLengthPrefixes()
    let thrown = 0
    // Noise's length reader: a RangeError when fewer than two bytes are there.
    const decoder = new LengthPrefixedDecoder({
      encodingLength: () => 2,
      lengthDecoder: (data: Uint8ArrayList | Uint8Array) => {
        if (data.length < 2) {
          thrown++
          throw new RangeError('Could not decode int16BE')
        }
        return data instanceof Uint8Array ? (data[0] << 8) + data[1] : data.getUint16(0)
      }
    })
    const read: number[][] = []
    const feed = (chunk: Uint8Array): void => { for (const buf of decoder.decode(chunk)) read.push([...buf.subarray()]) }
    for (let i = 0; i < 100; i++) feed(frame([i, i + 1]))
    assert.equal(read.length, 100)
    assert.equal(thrown, 0, 'a frame read whole leaves an empty buffer, and an empty buffer is not an error')
    // Two frames cut mid-prefix and mid-body.
    const both = [...frame([7, 8, 9]), ...frame([10])]
    feed(Uint8Array.from(both.slice(0, 1)))
    feed(Uint8Array.from(both.slice(1, 4)))
    feed(Uint8Array.from(both.slice(4)))
    assert.deepEqual(read.slice(100), [[7, 8, 9], [10]])
    assert.equal(thrown, 1, 'only the lone first byte of a prefix is too short to read')
  })
})
