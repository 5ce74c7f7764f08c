import type { FastifyInstance } from 'fastify'

/** Kubo's diag/cmds entry: a Kubo RPC request, running or recently ended. */
export interface RequestLogEntry {
  id: number
  /** The command's path under /api/v0/ (`pin/ls`), as Kubo names it. */
  command: string
  args: string[]
  options: Record<string, unknown>
  startTime: Date
  endTime?: Date
}

/** As Kubo, ended requests leave the log at once unless diag/cmds/set-time says to keep them. */
const DEFAULT_KEEP_MS = 0
/** Ended entries past this many go first, whatever their age, so that a busy node's log stays small. */
const MAX_ENTRIES = 1000
/** Query parameters that are credentials, never shown. */
const SECRET_OPTIONS = new Set(['api_key'])

/** The Kubo RPC requests this node is serving and has served lately: Kubo's request log, behind diag/cmds. */
export class RequestLog {
  private nextId = 0
  private readonly entries = new Map<number, RequestLogEntry>()
  private keepMs = DEFAULT_KEEP_MS

  /** Records each /api/v0/ request from its start to its answer. */
  register (app: FastifyInstance): void {
    app.addHook('onRequest', async (request, reply) => {
      const path = request.url.split('?')[0]
      if (!path.startsWith('/api/v0/') || request.headers.upgrade != null) return
      const query = { ...(request.query as Record<string, unknown> | undefined) }
      const arg = query.arg
      delete query.arg
      for (const secret of SECRET_OPTIONS) delete query[secret]
      const entry = this.start(path.slice('/api/v0/'.length), arg == null ? [] : [arg].flat().map(String), query)
      // The response's close, not onResponse: a streamed answer (log/tail, pubsub/sub) takes the reply over and never reaches that hook.
      reply.raw.once('close', () => { entry.endTime = new Date() })
    })
  }

  private start (command: string, args: string[], options: Record<string, unknown>): RequestLogEntry {
    this.prune()
    const entry: RequestLogEntry = { id: this.nextId++, command, args, options, startTime: new Date() }
    this.entries.set(entry.id, entry)
    return entry
  }

  /** Running requests first in the order they came, ended ones kept for the keep time. */
  report (): RequestLogEntry[] {
    this.prune()
    return [...this.entries.values()]
  }

  /** Kubo's diag/cmds/clear: forgets the requests that ended. */
  clear (): void {
    for (const [id, entry] of this.entries) if (entry.endTime != null) this.entries.delete(id)
  }

  /** Kubo's diag/cmds/set-time: how long ended requests stay in the log. */
  setKeepTime (ms: number): void {
    this.keepMs = ms
    this.prune()
  }

  private prune (): void {
    const oldest = Date.now() - this.keepMs
    let excess = this.entries.size - MAX_ENTRIES
    for (const [id, entry] of this.entries) {
      if (entry.endTime == null) continue
      if (entry.endTime.getTime() < oldest || excess > 0) {
        this.entries.delete(id)
        excess--
      }
    }
  }
}
