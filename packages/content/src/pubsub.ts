import { pushable } from 'it-pushable'
import { InvalidParameterError } from './errors.ts'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import type { AbortOptions } from '@libp2p/interface'

export interface PubsubMessage {
  from: string
  topic: string
  data: Uint8Array
  /** 8 bytes, big-endian, as Kubo encodes gossipsub sequence numbers. */
  seqno: Uint8Array
}

/** Keeps per-subscription queues bounded so a slow reader cannot grow memory without end. */
const MAX_QUEUED_MESSAGES = 1024

function toPubsubMessage (msg: Message): PubsubMessage {
  const seqno = new Uint8Array(8)
  if (msg.type === 'signed') new DataView(seqno.buffer).setBigUint64(0, msg.sequenceNumber)
  return { from: msg.type === 'signed' ? msg.from.toString() : '', topic: msg.topic, data: msg.data, seqno }
}

function checkTopic (topic: string): void {
  if (typeof topic !== 'string' || topic.length === 0) throw new InvalidParameterError('a topic is required')
}

/**
 * Gossipsub topics shared by many local subscribers: the node subscribes to a
 * topic while at least one reader is listening and leaves it after the last.
 */
export class Topics {
  private readonly getPubsub: () => GossipSub
  private readonly readers = new Map<string, Set<(msg: PubsubMessage) => void>>()
  private readonly onMessage = (evt: CustomEvent<Message>): void => {
    const readers = this.readers.get(evt.detail.topic)
    if (readers == null) return
    const msg = toPubsubMessage(evt.detail)
    for (const reader of readers) reader(msg)
  }

  /** libp2p exists only once Helia has started, hence the getter. */
  constructor (getPubsub: () => GossipSub) {
    this.getPubsub = getPubsub
  }

  private get pubsub (): GossipSub {
    return this.getPubsub()
  }

  start (): void {
    this.pubsub.addEventListener('message', this.onMessage)
  }

  stop (): void {
    this.pubsub.removeEventListener('message', this.onMessage)
    for (const topic of this.readers.keys()) this.pubsub.unsubscribe(topic)
    this.readers.clear()
  }

  async publish (topic: string, data: Uint8Array): Promise<void> {
    checkTopic(topic)
    await this.pubsub.publish(topic, data)
  }

  /**
   * Messages on `topic` until the signal aborts or the reader stops iterating.
   * The subscription is live when this returns, before the first read.
   */
  subscribe (topic: string, options: AbortOptions = {}): AsyncGenerator<PubsubMessage> {
    checkTopic(topic)
    const queue = pushable<PubsubMessage>({ objectMode: true })
    const reader = (msg: PubsubMessage): void => {
      if (queue.readableLength < MAX_QUEUED_MESSAGES) queue.push(msg)
    }
    let readers = this.readers.get(topic)
    if (readers == null) {
      readers = new Set()
      this.readers.set(topic, readers)
      this.pubsub.subscribe(topic)
    }
    readers.add(reader)
    const leave = (): void => {
      options.signal?.removeEventListener('abort', leave)
      queue.end()
      const current = this.readers.get(topic)
      if (current?.delete(reader) === true && current.size === 0) {
        this.readers.delete(topic)
        this.pubsub.unsubscribe(topic)
      }
    }
    options.signal?.addEventListener('abort', leave, { once: true })
    if (options.signal?.aborted === true) leave()
    const messages = (async function * () {
      try {
        yield * queue
      } finally {
        leave()
      }
    })()
    // return() on a generator that never started skips its finally: leave here as well.
    const close = messages.return.bind(messages)
    messages.return = async (value) => {
      leave()
      return close(value)
    }
    return messages
  }

  /** The user's topics: the daemon's own (under /node-daemon/, e.g. cluster heartbeats) are not theirs to see. */
  topics (): string[] {
    return this.pubsub.getTopics().filter(t => !t.startsWith('/node-daemon/'))
  }

  peers (topic?: string): string[] {
    const peers = topic == null || topic === '' ? this.pubsub.getPeers() : this.pubsub.getSubscribers(topic)
    return peers.map(p => p.toString())
  }
}
