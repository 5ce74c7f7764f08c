/**
 * The replicated state machine of the simulator: string keys and values,
 * with a session per client so that a proposal delivered twice (the network
 * duplicates MsgProp) takes effect once, as in the Raft dissertation §6.3.
 */

export interface Command {
  /** Client id. */
  c: string
  /** The client's sequence number of the operation. */
  s: number
  k: string
  v: string
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function encodeCommand (cmd: Command): Uint8Array {
  return encoder.encode(JSON.stringify(cmd))
}

export function decodeCommand (data: Uint8Array): Command {
  return JSON.parse(decoder.decode(data)) as Command
}

export class KvStore {
  private readonly values = new Map<string, string>()
  /** Highest sequence number applied per client. */
  private readonly sessions = new Map<string, number>()

  get (key: string): string | null {
    return this.values.get(key) ?? null
  }

  /**
   * Applies a command unless its client already applied this or a later
   * one: a client moves on after a timeout, so an older operation arriving
   * late is one whose outcome it never learned, and dropping it is allowed.
   */
  apply (cmd: Command): 'applied' | 'duplicate' | 'stale' {
    const last = this.sessions.get(cmd.c) ?? 0
    if (cmd.s === last) return 'duplicate'
    if (cmd.s < last) return 'stale'
    this.sessions.set(cmd.c, cmd.s)
    this.values.set(cmd.k, cmd.v)
    return 'applied'
  }

  /** Deterministic bytes (sorted), so equal states give equal snapshots. */
  serialize (): Uint8Array {
    const sorted = (m: Map<string, string | number>): Array<[string, string | number]> =>
      [...m.entries()].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
    return encoder.encode(JSON.stringify({ values: sorted(this.values), sessions: sorted(this.sessions) }))
  }

  static restore (data: Uint8Array): KvStore {
    const kv = new KvStore()
    if (data.byteLength === 0) return kv
    const parsed = JSON.parse(decoder.decode(data)) as { values: Array<[string, string]>, sessions: Array<[string, number]> }
    for (const [k, v] of parsed.values) kv.values.set(k, v)
    for (const [c, s] of parsed.sessions) kv.sessions.set(c, s)
    return kv
  }
}
