/**
 * Group commit of the commands one node proposes: those that arrive while
 * earlier ones are still on their way through Raft wait, and then go
 * together as one `batch` entry. Each entry costs the log a write, the
 * followers a message each way and every node's pin tracker a look, so a
 * burst of pin requests costs a few entries rather than one per pin. Each
 * caller still hears its own command's outcome once the entry is applied
 * here, i.e. committed.
 */
import type { BatchOutcome } from './state.ts'
import type { Command } from './commands.ts'

/**
 * Batches of one node in Raft at once. With two, the second slot mostly took
 * the one or two requests that came just after a full batch left, and the
 * daemons spent about a third more CPU per pin in the ingestion bench.
 */
const IN_FLIGHT = 1
/** Commands in one entry: a batch of pin requests stays well under Raft's 1 MiB message. */
const MAX_BATCH = 256

interface Queued {
  command: Command
  resolve: (value: unknown) => void
  reject: (err: Error) => void
}

export interface GroupCommitInit {
  /** Proposes one command as it is, resolving with what applying it gave. */
  propose: (command: Command) => Promise<unknown>
  /** Proposes several as one `batch` entry, resolving with their outcomes in order. */
  proposeBatch: (commands: Command[]) => Promise<BatchOutcome[]>
}

export class GroupCommit {
  private readonly init: GroupCommitInit
  private queue: Queued[] = []
  private inFlight = 0
  private scheduled = false

  constructor (init: GroupCommitInit) {
    this.init = init
  }

  /** Resolves with the command's own outcome once its entry is applied; an abort leaves it to be applied or not. */
  async submit (command: Command, signal?: AbortSignal): Promise<unknown> {
    signal?.throwIfAborted()
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.queue = this.queue.filter(q => q !== queued)
        reject(signal?.reason)
      }
      const done = (): void => { signal?.removeEventListener('abort', onAbort) }
      const queued: Queued = {
        command,
        resolve: (value) => { done(); resolve(value) },
        reject: (err) => { done(); reject(err) }
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.queue.push(queued)
      this.schedule()
    })
  }

  /** Flushes after the current turn of the event loop, so that requests arriving together go together. */
  private schedule (): void {
    if (this.scheduled || this.inFlight >= IN_FLIGHT || this.queue.length === 0) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.flush()
    })
  }

  private flush (): void {
    if (this.inFlight >= IN_FLIGHT || this.queue.length === 0) return
    const batch = this.queue.splice(0, MAX_BATCH)
    this.inFlight++
    void this.send(batch).finally(() => {
      this.inFlight--
      this.schedule()
    })
    this.schedule()
  }

  private async send (batch: Queued[]): Promise<void> {
    try {
      if (batch.length === 1) {
        batch[0].resolve(await this.init.propose(batch[0].command))
        return
      }
      const outcomes = await this.init.proposeBatch(batch.map(q => q.command))
      batch.forEach((q, i) => {
        const outcome = outcomes[i]
        if ('error' in outcome) q.reject(outcome.error)
        else q.resolve(outcome.value)
      })
    } catch (err: any) {
      for (const q of batch) q.reject(err)
    }
  }
}
