import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { bytes, collect, decoder, startContent } from './fixtures/node.ts'
import type { Content } from '../src/content.ts'
import type { PubsubMessage } from '../src/pubsub.ts'

/** The next message, or a failure after `ms`: no test waits for ever. */
async function nextWithin (sub: AsyncGenerator<PubsubMessage>, ms = 5_000): Promise<IteratorResult<PubsubMessage>> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`no message within ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([sub.next(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

function seqnoOf (msg: PubsubMessage): bigint {
  return new DataView(msg.seqno.buffer, msg.seqno.byteOffset, msg.seqno.byteLength).getBigUint64(0)
}

describe('pubsub', () => {
  let content: Content

  before(async () => {
    content = await startContent()
  })

  after(async () => {
    await content?.stop()
  })

  it('delivers a message published to a topic the node itself listens to (emitSelf)', async () => {
    const sub = content.topics.subscribe('greetings')
    try {
      assert.deepEqual(content.topics.topics(), ['greetings'])
      await content.topics.publish('greetings', bytes('hello'))
      const { value, done } = await nextWithin(sub)
      assert.equal(done, false)
      assert.equal(value.topic, 'greetings')
      assert.equal(decoder.decode(value.data), 'hello')
      assert.equal(value.from, content.swarm.peerId.toString())
      assert.equal(value.seqno.byteLength, 8)
    } finally {
      await sub.return(undefined)
    }
    assert.deepEqual(content.topics.topics(), [])
  })

  it('delivers in order, with big-endian sequence numbers that count up by one', async () => {
    const sub = content.topics.subscribe('ordered')
    try {
      for (let i = 0; i < 5; i++) await content.topics.publish('ordered', bytes(`m${i}`))
      const got: PubsubMessage[] = []
      for (let i = 0; i < 5; i++) got.push((await nextWithin(sub)).value)
      assert.deepEqual(got.map(m => decoder.decode(m.data)), ['m0', 'm1', 'm2', 'm3', 'm4'])
      const first = seqnoOf(got[0])
      assert.deepEqual(got.map(m => seqnoOf(m) - first), [0n, 1n, 2n, 3n, 4n])
    } finally {
      await sub.return(undefined)
    }
  })

  it('gives each reader of a topic every message, and no message of other topics', async () => {
    const a = content.topics.subscribe('shared')
    const b = content.topics.subscribe('shared')
    const other = content.topics.subscribe('other')
    try {
      await content.topics.publish('other', bytes('elsewhere'))
      await content.topics.publish('shared', bytes('for both'))
      assert.equal(decoder.decode((await nextWithin(a)).value.data), 'for both')
      assert.equal(decoder.decode((await nextWithin(b)).value.data), 'for both')
      assert.equal(decoder.decode((await nextWithin(other)).value.data), 'elsewhere')
    } finally {
      await Promise.all([a.return(undefined), b.return(undefined), other.return(undefined)])
    }
  })

  it('stays subscribed while one reader is left and leaves the topic after the last', async () => {
    const a = content.topics.subscribe('last-one-out')
    const b = content.topics.subscribe('last-one-out')
    await content.topics.publish('last-one-out', bytes('1'))
    await nextWithin(a)
    await nextWithin(b)
    await a.return(undefined)
    assert.deepEqual(content.topics.topics(), ['last-one-out'])
    await content.topics.publish('last-one-out', bytes('2'))
    assert.equal(decoder.decode((await nextWithin(b)).value.data), '2')
    await b.return(undefined)
    assert.deepEqual(content.topics.topics(), [])
  })

  it('leaves the topic when a reader goes away before reading anything', async () => {
    const sub = content.topics.subscribe('never-read')
    assert.deepEqual(content.topics.topics(), ['never-read'])
    assert.deepEqual(await sub.return(undefined), { done: true, value: undefined })
    assert.deepEqual(content.topics.topics(), [])
  })

  it('ends a reader when its signal aborts, and leaves the topic', async () => {
    const controller = new AbortController()
    const sub = content.topics.subscribe('aborted', { signal: controller.signal })
    const pending = nextWithin(sub)
    controller.abort()
    assert.deepEqual(await pending, { done: true, value: undefined })
    assert.deepEqual(content.topics.topics(), [])
  })

  it('does not subscribe at all with an already aborted signal', async () => {
    const sub = content.topics.subscribe('too-late', { signal: AbortSignal.abort() })
    assert.deepEqual(content.topics.topics(), [])
    assert.deepEqual(await collect(sub), [])
  })

  it('keeps at most 1024 unread messages per reader, dropping newer ones', async () => {
    const controller = new AbortController()
    const sub = content.topics.subscribe('flood', { signal: controller.signal })
    for (let i = 0; i < 1100; i++) await content.topics.publish('flood', bytes(String(i)))
    await sleep(100)
    controller.abort()
    const got = (await collect(sub)).map(m => decoder.decode(m.data))
    assert.equal(got.length, 1024)
    assert.deepEqual(got.slice(0, 3), ['0', '1', '2'])
    assert.equal(got.at(-1), '1023')
  })

  it('refuses an empty topic with InvalidParameterError', async () => {
    assert.throws(() => content.topics.subscribe(''), { name: 'InvalidParameterError' })
    await assert.rejects(content.topics.publish('', bytes('x')), { name: 'InvalidParameterError' })
  })

  it('knows no peers on an isolated node', () => {
    assert.deepEqual(content.topics.peers(), [])
    assert.deepEqual(content.topics.peers('greetings'), [])
  })
})
