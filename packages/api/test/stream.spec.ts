import assert from 'node:assert/strict'
import { finished } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { coalesced, requestDeadline } from '../src/stream.ts'
import type { Readable } from 'node:stream'
import type { FastifyRequest } from 'fastify'

const withTimeout = (timeout: string): FastifyRequest => ({ query: { timeout } }) as unknown as FastifyRequest

describe("Kubo's timeout option", () => {
  it('takes fractions of a ms and durations below one, which timers refuse, and runs out', async () => {
    for (const timeout of ['1.5ms', '10ns', '1us']) {
      const signal = requestDeadline(withTimeout(timeout))
      await sleep(20)
      assert.equal(signal?.aborted, true, timeout)
    }
  })

  it('takes durations past what a timer holds as no deadline soon, not one at once', async () => {
    for (const timeout of ['600h', '100000h']) {
      const signal = requestDeadline(withTimeout(timeout))
      await sleep(20)
      assert.equal(signal?.aborted, false, timeout)
    }
  })
})

/** The chunks a Readable emits, each as written (its async iterator would join those buffered), with the ms since the start at which each came. */
async function chunks (readable: Readable): Promise<Array<{ text: string, at: number }>> {
  const start = performance.now()
  const got: Array<{ text: string, at: number }> = []
  readable.on('data', (chunk: Buffer) => { got.push({ text: chunk.toString(), at: performance.now() - start }) })
  await finished(readable)
  return got
}

describe('streamed frames', () => {
  it('writes frames that come faster than the window together, the first at once', async () => {
    const frames = async function * () { for (let i = 0; i < 20; i++) yield `${i}\n` }
    const got = await chunks(coalesced(frames(), 50))
    assert.equal(got.map(c => c.text).join(''), Array.from({ length: 20 }, (_, i) => `${i}\n`).join(''))
    assert.equal(got[0].text, '0\n')
    assert.ok(got.length <= 3, JSON.stringify(got))
  })

  it('writes each frame at once when they come slower than the window', async () => {
    const frames = async function * () {
      for (let i = 0; i < 5; i++) {
        await sleep(30)
        yield `${i}\n`
      }
    }
    const got = await chunks(coalesced(frames(), 5))
    assert.deepEqual(got.map(c => c.text), ['0\n', '1\n', '2\n', '3\n', '4\n'])
  })

  it('sends what it holds with the end, without waiting out the window', async () => {
    const frames = async function * () { yield 'a\n'; yield 'b\n'; yield 'done\n' }
    const got = await chunks(coalesced(frames(), 10_000))
    assert.deepEqual(got.map(c => c.text), ['a\n', 'b\ndone\n'])
    assert.ok(got[1].at < 1000, `${got[1].at} ms`)
  })

  it('pulls no further ahead of a client that reads slower than frames come than its buffer holds', async () => {
    const frame = `${'x'.repeat(16 * 1024)}\n`
    let pulled = 0
    const frames = async function * () {
      for (let i = 0; i < 40; i++) {
        pulled++
        yield frame
      }
    }
    const readable = coalesced(frames(), 0)
    let read = 0
    let ahead = 0
    for await (const chunk of readable) {
      ahead = Math.max(ahead, pulled * frame.length - read)
      read += (chunk as Buffer).length
      await sleep(5)
    }
    assert.equal(read, 40 * frame.length)
    assert.ok(ahead <= readable.readableHighWaterMark + 3 * frame.length, `${ahead} bytes ahead`)
  })

  it('ends the source when the stream is destroyed', async () => {
    let ended = false
    const frames = async function * () {
      try {
        for (let i = 0; i < 1000; i++) {
          await sleep(1)
          yield `${i}\n`
        }
      } finally {
        ended = true
      }
    }
    const readable = coalesced(frames(), 0)
    const first = await readable[Symbol.asyncIterator]().next()
    assert.equal(String(first.value), '0\n')
    readable.destroy()
    await sleep(20)
    assert.equal(ended, true)
  })
})
